//! shale-broker: the broker's semantics with no protocol in them.
//!
//! Every front-end (today the HTTP JSON API of `shale-gateway`; later an
//! SQS-compatible endpoint, RocketMQ 5 gRPC, the node-to-node forwarding of a
//! cluster) is a thin layer over [`Broker`]: it decodes its wire form into the
//! Rust types here, makes one call, and encodes the answer. Errors are one
//! [`BrokerError`] whose variants each name a contract code ([`ErrorCode`]);
//! turning a code into a status is the front-end's job.
//!
//! Dependencies flow one way: gateway → broker → tiering → hot. This crate
//! knows nothing of HTTP: no axum, tower, hyper, http or utoipa among its
//! dependencies, and no axum or utoipa anywhere in its tree
//! (`scripts/check-layers.sh`).
//!
//! - [`broker`]: the [`Broker`] handle (storage, topics, groups, the drain
//!   signal) and its background work;
//! - [`cluster`]: membership (node leases), placement and queue ownership;
//! - [`topics`] and [`topic_admin`]: topic metadata, create / patch / delete / describe;
//! - [`produce`]: validation, type rules, queue choice, dedup, durability;
//! - [`queue_view`]: one queue over the hot and the cold tier, seen up to
//!   its visible end ([`visible_end`]: read committed, by the topic's durability);
//! - [`read`]: reads by offset (with long polls), replay, query by id and key;
//! - [`groups`]: consumer groups (receive, ack, retries, DLQ, FIFO, filters,
//!   offsets and reset), with [`sql_filter`] for SQL92 filters;
//! - [`tasks`]: the background work as named periodic jobs;
//! - [`validate`]: the contract's names and limits; [`dedup`]: the produce
//!   de-duplication window; [`metrics`]: the broker's metrics.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod dedup;
pub mod dedup_handover;
pub mod error;
pub mod groups;
pub mod metrics;
pub mod produce;
pub mod queue_view;
pub mod read;
pub mod sql_filter;
pub mod tasks;
pub mod timers;
pub mod topic_admin;
pub mod topic_docs;
pub mod topics;
pub mod txn;
pub mod validate;
pub mod visible_end;
pub mod wal;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::{BrokerError, BrokerResult, ErrorCode, error_chain};
pub use shale_hot::{Clock, ManualClock, MessageId, Record, SystemClock};
pub use topics::{Durability, MessageType, TopicConfig};
