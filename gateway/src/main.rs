//! `shale`: run a node (`shale serve`, the default), a benchmark (`shale
//! bench`), make an auth token (`shale token`), check an object store
//! (`shale doctor`: exit 1 when a check fails, 2 on a bad URL), or use a
//! node as a client (`shale topic|group|send|consume|replay|tail|cluster|
//! completions`, see `shale_gateway::tools`: exit 1 on an API or network
//! error, 2 on a usage error).
//!
//! Exit status: 0 after a clean shutdown, 1 on a runtime failure (port taken,
//! storage error), 2 on invalid settings (flags, `SHALE_*`, config file, TLS
//! files, data directory); clap's usage errors are 2 as well. Errors are one
//! line on stderr; stdout carries only the `shale listening on …` line.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shale_gateway::cli::{Cli, Command, ServeArgs};
use shale_gateway::config::{self, ConfigError};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: glibc's per-thread arenas kept what
/// a busy node had freed (a node that took 10 M delay timers stayed near
/// 770 MiB RssAnon with about 150 MiB live; docs/BENCHMARKS.md, "Delay timers").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_FAILURE: u8 = 1;
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    if let Err(message) = init_logging() {
        eprintln!("shale: {message}");
        return ExitCode::from(EXIT_BAD_SETTINGS);
    }
    match command {
        Command::Serve(args) => serve(args),
        Command::Bench(args) => run_async(shale_gateway::bench::run(args)),
        Command::Doctor(args) => doctor(&args),
        Command::Tool(tool) => shale_gateway::tools::run(tool),
        Command::Token(args) => match shale_gateway::auth::token::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("shale: {message}");
                ExitCode::from(EXIT_BAD_SETTINGS)
            }
        },
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    for name in config::unknown_env_vars() {
        tracing::warn!(variable = %name, "ignoring an environment variable that is not a setting");
    }
    let node_config = match config::load(args.config.as_deref(), &args) {
        Ok(node_config) => node_config,
        Err(error) => {
            eprintln!("shale: {:#}", anyhow::Error::new(error));
            return ExitCode::from(EXIT_BAD_SETTINGS);
        }
    };
    if args.print_config {
        return print_config(&node_config);
    }
    run_async(shale_gateway::server::run(node_config))
}

fn doctor(args: &shale_gateway::doctor::DoctorArgs) -> ExitCode {
    use shale_gateway::doctor::DoctorError;
    let mut status = ExitCode::SUCCESS;
    let work = async {
        match shale_gateway::doctor::run(args).await {
            Ok(()) => {}
            Err(DoctorError::Usage(message)) => {
                eprintln!("shale: {message}");
                status = ExitCode::from(EXIT_BAD_SETTINGS);
            }
            Err(DoctorError::Failed(error)) => {
                eprintln!("shale: {error:#}");
                status = ExitCode::from(EXIT_FAILURE);
            }
        }
        Ok(())
    };
    let ran = run_async(work);
    if ran != ExitCode::SUCCESS {
        return ran;
    }
    status
}

fn print_config(node_config: &config::NodeConfig) -> ExitCode {
    match toml::to_string(node_config) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shale: cannot print the settings: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs `work` on a multi-threaded runtime; maps its error to the exit status.
fn run_async(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shale: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(work);
    // Blocking tasks still running (none after a clean drain) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shale: {error:#}");
            let bad_settings = error.chain().any(|cause| cause.is::<ConfigError>());
            ExitCode::from(if bad_settings {
                EXIT_BAD_SETTINGS
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// Logs to stderr, filtered by `SHALE_LOG`, else `RUST_LOG`, else `info`.
fn init_logging() -> Result<(), String> {
    let (source, directives) = match (std::env::var("SHALE_LOG"), std::env::var("RUST_LOG")) {
        (Ok(filter), _) => ("SHALE_LOG", filter),
        (_, Ok(filter)) => ("RUST_LOG", filter),
        _ => ("default", "info".to_string()),
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|error| format!("invalid {source} `{directives}`: {error}"))?;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    Ok(())
}
