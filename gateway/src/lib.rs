//! shale-gateway: the HTTP API of a Shale node and the `shale` command.
//!
//! A front-end over `shale_broker`: handlers decode the wire form, make one
//! broker call and encode the answer; the broker knows nothing of HTTP.
//!
//! - [`config`]: node settings (defaults < `shale.toml` < `SHALE_*` env < flags).
//! - [`state`]: the broker and the metrics exporter ([`state::AppState`]).
//! - [`wire`]: the JSON shapes (and OpenAPI schemas) of the broker's types.
//! - [`app`]: `fn app(state) -> Router`, the HTTP API of `../shared/API.md`.
//! - [`auth`]: tokens, rules and the middleware that checks them (`--auth-file`).
//! - [`server`]: binding, the `shale listening on …` line, background work, SIGTERM drain.
//! - [`cli`]: the `shale` command line; [`bench`]: `shale bench`; [`doctor`]:
//!   `shale doctor`, the object-store self-check (also run at node start);
//!   [`tools`]: the user subcommands (`shale topic|group|send|consume|replay|tail|cluster`).

pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod doctor;
pub mod error;
pub mod message;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod server;
pub mod sqs;
pub mod state;
pub mod tools;
pub mod wire;
