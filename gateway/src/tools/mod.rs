//! The user subcommands of `shale`: they talk to a node over HTTP through
//! [`shale_client`], as any client of the contract would.
//!
//! One file per subcommand (`topic`, `group`, `send`, `consume`, `replay`,
//! `tail`, `cluster`, `completions`), plus [`connect`] (the shared `--url`,
//! `--token`, `--json`, `--ca-cert` flags), [`output`] (tables, JSON,
//! messages as text) and [`time_spec`] (the time syntax of `--from-time`,
//! `group reset --to`, `--deliver-at`).
//!
//! Exit status: 0 on success, 1 when the node answers an error or cannot be
//! reached (the error is printed as `shale: CODE: message`), 2 on a usage
//! error (bad flags or values, or a reset neither confirmed nor `--yes`).

pub mod cluster;
pub mod completions;
pub mod connect;
pub mod consume;
pub mod group;
mod group_reset;
pub mod output;
mod parquet_out;
pub mod replay;
pub mod send;
mod send_input;
pub mod tail;
pub mod time_spec;
pub mod topic;

use std::process::ExitCode;

use clap::Subcommand;

/// The user subcommands, flattened into [`crate::cli::Command`].
#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Create, list, describe, update and delete topics.
    Topic(topic::TopicArgs),
    /// Create, list and describe consumer groups; reset their offsets (with a preview).
    Group(group::GroupArgs),
    /// Produce messages: a body argument, stdin (whole, --lines or --ndjson) or --file.
    Send(send::SendArgs),
    /// Receive messages as a consumer group member (long poll), print them, ack them.
    Consume(consume::ConsumeArgs),
    /// Read a topic's queues by offset or time, to stdout, an NDJSON file or Parquet files.
    Replay(replay::ReplayArgs),
    /// Follow new messages of a topic from the current end of its queues.
    Tail(tail::TailArgs),
    /// The nodes of the cluster and which node owns each queue.
    Cluster(cluster::ClusterArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The node answered an error, or could not be reached.
    #[error("{}", client_error_text(.0))]
    Client(#[from] shale_client::Error),
    /// Bad flags or values: exit status 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else (a file that cannot be written…): exit status 1.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// The exit status this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Usage(_) => 2,
            ToolError::Client(shale_client::Error::Config(_)) => 2,
            ToolError::Client(_) | ToolError::Failed(_) => 1,
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        ToolError::Usage(message.into())
    }

    /// A failure with what was being done.
    pub fn failed(context: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        ToolError::Failed(format!("{context}: {error}"))
    }
}

/// `CODE: message` for API errors; the whole source chain for transport ones
/// (reqwest's own message says little: "error sending request").
fn client_error_text(error: &shale_client::Error) -> String {
    let mut text = error.to_string();
    if let shale_client::Error::Transport { source, .. } = error {
        let mut cause = std::error::Error::source(source);
        while let Some(inner) = cause {
            text.push_str(&format!(": {inner}"));
            cause = inner.source();
        }
    }
    text
}

/// The result type of the subcommands.
pub type ToolResult<T = ()> = Result<T, ToolError>;

/// Runs a user subcommand to completion and maps its outcome to the exit status.
pub fn run(command: ToolCommand) -> ExitCode {
    if let ToolCommand::Completions(args) = &command {
        return finish(completions::run(args));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shale: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            ToolCommand::Topic(args) => topic::run(args).await,
            ToolCommand::Group(args) => group::run(args).await,
            ToolCommand::Send(args) => send::run(args).await,
            ToolCommand::Consume(args) => consume::run(args).await,
            ToolCommand::Replay(args) => replay::run(args).await,
            ToolCommand::Tail(args) => tail::run(args).await,
            ToolCommand::Cluster(args) => cluster::run(args).await,
            ToolCommand::Completions(args) => completions::run(&args),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    finish(outcome)
}

fn finish(outcome: ToolResult) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`shale replay t | head`) is the reader's choice, not a failure.
        Err(ToolError::Failed(message)) if message.ends_with(output::BROKEN_PIPE) => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shale: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
