//! `keyledger-chaos`: runs the chaos harness once, prints its summary, and exits 0 only when
//! every check passed (1 on a violation or an inconclusive check, 2 when the run itself could
//! not be carried out). `scripts/chaos` builds and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use keyledger_chaos::{random_seed, run, Config, Network};

#[derive(Debug, Parser)]
#[command(name = "keyledger-chaos", about = "Kill and partition a 3-node keyledger cluster under load, then check it")]
struct Args {
    /// SIGKILL-and-restart faults.
    #[arg(long, default_value_t = 100)]
    kills: u32,
    /// Partitions (one node cut off from its peers), where network namespaces can be made.
    #[arg(long, default_value_t = 50)]
    partitions: u32,
    /// Replays a run's nemesis schedule and the workers' choices (default: a random seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the traffic going at least this many seconds.
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    workers: usize,
    /// Run on loopback ports with kills only, even where namespaces are possible.
    #[arg(long)]
    no_partitions: bool,
    /// Verify with local (possibly stale) reads instead of linearizable ones: a check of the
    /// harness itself, which must then find violations.
    #[arg(long)]
    local_reads: bool,
    /// The `keyledger` binary (default: the one next to this program).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Make the run's directory in here.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the run's directory (history.jsonl, nemesis.log, node logs) even when it passed.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let binary = match args
        .binary
        .clone()
        .or_else(|| std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("keyledger"))))
    {
        Some(path) => path,
        None => {
            eprintln!("keyledger-chaos: cannot find the keyledger binary; pass --binary");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    println!("keyledger chaos: seed {seed}, {} kills, {} partitions", args.kills, args.partitions);
    let config = Config {
        kills: args.kills,
        partitions: args.partitions,
        min_duration: Duration::from_secs(args.duration),
        workers: args.workers,
        network: if args.no_partitions { Network::Loopback } else { Network::Auto },
        parent_dir: args.dir,
        local_reads: args.local_reads,
        keep: args.keep,
        ..Config::new(binary, seed)
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("keyledger-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // On Ctrl-C the run is dropped, and with it the nodes and the namespaces.
    let outcome = runtime.block_on(async {
        tokio::select! {
            report = run(&config) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(report)) => {
            print!("{}", report.summary);
            if report.passed() {
                println!("PASS (seed {seed})");
                ExitCode::SUCCESS
            } else {
                println!("FAIL (seed {seed})");
                ExitCode::from(1)
            }
        }
        Some(Err(e)) => {
            eprintln!("keyledger-chaos: the run failed (seed {seed}): {e:#}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("keyledger-chaos: interrupted (seed {seed}); nodes stopped, namespaces removed");
            ExitCode::from(2)
        }
    }
}
