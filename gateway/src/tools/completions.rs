//! `shale completions SHELL`: a completion script for bash, zsh, fish,
//! elvish or PowerShell, generated from the command definition itself.
//!
//! `shale completions bash > /etc/bash_completion.d/shale`, or
//! `source <(shale completions zsh)`.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{ToolResult, output};

/// `shale completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: Shell,
}

/// Writes the script to stdout.
pub fn run(args: &CompletionsArgs) -> ToolResult {
    let mut command = crate::cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "shale", &mut script);
    output::print_text(&String::from_utf8_lossy(&script))
}
