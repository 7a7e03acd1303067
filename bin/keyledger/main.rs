//! `keyledger`: the server (`keyledger serve`) and its command-line client in one binary.
//!
//! This file only parses flags, sets up logging, picks a runtime and turns the outcome into
//! an exit code; the client commands live in `cli`, the server wiring in `serve`.

mod cli;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

use cli::Outcome;

/// sled allocates and frees a copy of a tree node on nearly every write; mimalloc's per-thread
/// free lists make that far cheaper than glibc's malloc (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Shown at the end of `--help`.
const AFTER_LONG_HELP: &str = "\
Exit codes:
  0  success
  1  usage error, server unreachable, or any other failure
  2  the server answered with an error; its message and code are printed, e.g.
     `error: key not found (not_found)`
  3  `keyledger verify`: the key is not valid (or lacks the permission)

Logging goes to standard error; set RUST_LOG (e.g. RUST_LOG=debug) to change its level
(default: info for `serve`, warn for the client commands).";

/// An API-key service: a Raft-replicated, hash-chained ledger of key lifecycle events.
///
/// `keyledger serve` runs a node; every other command is a client of a node's HTTP API.
#[derive(Parser)]
#[command(name = "keyledger", version, after_long_help = AFTER_LONG_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a keyledger node: the HTTP API and a member of the cluster.
    Serve(serve::ServeArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` go to stdout and succeed; usage errors exit with 1.
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(cli::EXIT_FAILURE) } else { ExitCode::SUCCESS };
        }
    };

    let serving = matches!(cli.command, Command::Serve(_));
    init_tracing(if serving { LevelFilter::INFO } else { LevelFilter::WARN });

    let runtime = match &cli.command {
        Command::Serve(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.worker_threads {
                builder.worker_threads(threads.into());
            }
            builder.enable_all().build()
        }
        Command::Client(_) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };

    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)).map(|()| Outcome::Success),
        Command::Client(command) => runtime.block_on(cli::run(command)),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => match cli::report(&err) {
            Some(message) => {
                eprintln!("error: {message}");
                ExitCode::from(cli::exit_code_for(&err))
            }
            // Output cut short by a closed pipe (`| head`): not a failure.
            None => ExitCode::SUCCESS,
        },
    }
}

/// Logs to stderr, filtered by `RUST_LOG` when set, else at `default` and above (openraft's
/// own chatter at `warn`: elections and membership changes are logged by keyledger itself).
fn init_tracing(default: LevelFilter) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(format!("{default},openraft=warn")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
