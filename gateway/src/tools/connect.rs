//! The flags every user subcommand shares, and the client they make.
//!
//! `--url` (`SHALE_URL`, default `http://127.0.0.1:8080`), `--token`
//! (`SHALE_TOKEN`), `--ca-cert` (a PEM CA for a node serving HTTPS with a
//! private CA) and `--json` (machine output). They are global: they may come
//! before or after a nested subcommand (`shale topic --json list`).

use std::path::PathBuf;

use clap::Args;
use shale_client::{Client, ClientBuilder};

use super::{ToolError, ToolResult};

/// Where the node is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Base URL of a node (any node of a cluster serves any request)
    #[arg(
        long,
        env = "SHALE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,

    /// Bearer token, when the node has an auth file
    #[arg(long, env = "SHALE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// PEM file of a CA to trust besides the system roots (HTTPS with a private CA)
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,

    /// Machine output: JSON (NDJSON for streams of messages) instead of tables and text
    #[arg(long, global = true)]
    pub json: bool,
}

impl ConnectArgs {
    /// The client of `--url` with the token and CA.
    pub fn client(&self) -> ToolResult<Client> {
        let mut builder = ClientBuilder::new(&self.url);
        if let Some(token) = &self.token {
            builder = builder.token(token);
        }
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| ToolError::usage(format!("--ca-cert {}: {e}", path.display())))?;
            builder = builder.add_root_certificate_pem(pem);
        }
        builder.build().map_err(|e| ToolError::usage(e.to_string()))
    }
}
