//! shale-gateway: the HTTP API of a Shale node and the `shale` command.
//!
//! - [`config`]: node settings (defaults < `shale.toml` < `SHALE_*` env < flags).
//! - [`state`]: everything a running node holds ([`state::AppState`]).
//! - [`app`]: `fn app(state) -> Router`, the HTTP API of `../shared/API.md`.
//! - [`server`]: binding, the `shale listening on …` line, background work, SIGTERM drain.
//! - [`cli`]: the `shale` command line; [`bench`]: `shale bench`.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod error;
pub mod groups;
pub mod message;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod server;
pub mod sql_filter;
pub mod state;
pub mod tiered;
pub mod topics;
pub mod validate;
