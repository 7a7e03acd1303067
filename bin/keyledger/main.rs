//! `keyledger`: the server (`keyledger serve`) and its command-line client in one binary.
//!
//! This file only parses flags, sets up logging, picks a runtime and turns the outcome into
//! an exit code; the client commands live in `cli`, the server wiring in `serve`.

mod cli;
mod generate;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
(default: info for `serve`, or its --log-level; warn for the client commands).
`serve` also reads its settings from KEYLEDGER_* variables and a TOML file (--config);
see docs/configuration.md.";

/// An API-key service: a Raft-replicated, hash-chained ledger of key lifecycle events.
///
/// `keyledger serve` runs a node; every other command is a client of a node's HTTP API.
#[derive(Parser)]
#[command(name = "keyledger", version, after_long_help = format!("{}\n\n{AFTER_LONG_HELP}", cli::examples::TOP))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a keyledger node: the HTTP API and a member of the cluster.
    #[command(after_long_help = cli::examples::SERVE)]
    Serve(serve::ServeArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// Print a shell completion script, e.g. `keyledger completions bash > /etc/bash_completion.d/keyledger`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write every page into a directory with --out.
    Man {
        /// Write keyledger.1 and one page per subcommand (keyledger-apikey-create.1, ...) here.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    // `serve --config FILE` adds the file's settings to the command line before it is read.
    let resolved = match serve::config::resolve(Cli::command(), std::env::args_os().collect()) {
        Ok(resolved) => resolved,
        Err(serve::config::ResolveError::Usage(err)) => return usage_error(&err),
        Err(serve::config::ResolveError::Config(message)) => {
            eprintln!("error: {message}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    let cli = match Cli::from_arg_matches(&resolved.matches) {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };

    // Generated documentation needs neither logging nor a runtime.
    let generated = match &cli.command {
        Command::Completions { shell } => {
            Some(generate::completions(*shell, Cli::command()).map_err(anyhow::Error::from))
        }
        Command::Man { out } => Some(generate::man(out.as_deref(), Cli::command())),
        _ => None,
    };
    if let Some(result) = generated {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => match cli::report(&err) {
                Some(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(cli::EXIT_FAILURE)
                }
                None => ExitCode::SUCCESS,
            },
        };
    }

    let json_logs = match &cli.command {
        Command::Serve(args) if args.print_config => {
            print!("{}", resolved.describe(&Cli::command()));
            return ExitCode::SUCCESS;
        }
        Command::Serve(args) => {
            init_tracing(args.log_level, args.log_format, args.access_log, args.access_log_verifications);
            args.log_format == serve::LogFormat::Json
        }
        Command::Client(_) | Command::Completions { .. } | Command::Man { .. } => {
            init_tracing(LevelFilter::WARN, serve::LogFormat::Text, true, false);
            false
        }
    };

    let runtime = match &cli.command {
        Command::Serve(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.worker_threads {
                builder.worker_threads(threads.into());
            }
            builder.enable_all().build()
        }
        Command::Client(_) | Command::Completions { .. } | Command::Man { .. } => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
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
        Command::Completions { .. } | Command::Man { .. } => Ok(Outcome::Success),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => match cli::report(&err) {
            // With JSON logs every line of a node's stderr is a JSON object, its last words too.
            Some(message) if json_logs => {
                tracing::error!(error = %message, "keyledger serve stopped on an error");
                ExitCode::from(cli::exit_code_for(&err))
            }
            Some(message) => {
                eprintln!("error: {message}");
                ExitCode::from(cli::exit_code_for(&err))
            }
            // Output cut short by a closed pipe (`| head`): not a failure.
            None => ExitCode::SUCCESS,
        },
    }
}

/// `--help` and `--version` go to stdout and succeed; usage errors exit with 1.
fn usage_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(cli::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Logs to stderr, filtered by `RUST_LOG` when set, else at `level` and above (openraft's
/// own chatter at `warn`: elections and membership changes are logged by keyledger itself).
/// `access_log: false` turns the access log's target off whatever the filter says, and
/// verifications' lines are off unless `access_log_verifications`; `Json`
/// writes one JSON object per line, and panics are logged as such a line too.
fn init_tracing(level: LevelFilter, format: serve::LogFormat, access_log: bool, access_log_verifications: bool) {
    let mut directives = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => directives,
        _ => format!("{level},openraft=warn"),
    };
    if !access_log {
        directives = format!("{directives},{}=off", keyledger_api::ACCESS_TARGET);
    } else if !access_log_verifications {
        directives = format!("{directives},{}=off", keyledger_api::VERIFY_ACCESS_TARGET);
    }
    let filter = EnvFilter::new(directives);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        serve::LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).init();
        }
        serve::LogFormat::Json => {
            builder.json().with_ansi(false).init();
            std::panic::set_hook(Box::new(|panic| {
                let location = panic.location().map(ToString::to_string).unwrap_or_default();
                let payload = panic.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                tracing::error!(panic = message, %location, "panicked");
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_help_example_parses() {
        let mut checked = 0;
        for text in cli::examples::ALL {
            for words in cli::examples::invocations(text) {
                if let Err(err) = Cli::try_parse_from(&words) {
                    panic!("the example `{}` does not parse:\n{err}", words.join(" "));
                }
                checked += 1;
            }
        }
        assert!(checked >= 25, "only {checked} examples found");
    }

    #[test]
    fn an_address_may_be_repeated_or_comma_separated() {
        let first = ["keyledger", "cluster", "status", "--address", "http://a:1,http://b:2", "--address", "c:3"];
        assert!(Cli::try_parse_from(first).is_ok());
    }
}
