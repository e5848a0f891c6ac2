//! shale-gateway: the HTTP API of a Shale node and the `shale` command.
//!
//! - [`config`]: node settings (defaults < `shale.toml` < `SHALE_*` env < flags).
//! - [`state`]: everything a running node holds ([`state::AppState`]).
//! - [`app`]: `fn app(state) -> Router`, the HTTP API of `../shared/API.md`.
//! - [`server`]: binding, the `shale listening on …` line, background work, SIGTERM drain.

pub mod app;
pub mod config;
pub mod state;
