//! The request and answer shapes of the contract, with serde.
//!
//! They match the OpenAPI document the node serves (`/openapi.json`):
//! requests serialize only what is set, answers ignore fields they do not know.

pub mod groups;
pub mod messages;
pub mod ops;
pub mod topics;
