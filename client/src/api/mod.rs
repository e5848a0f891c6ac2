//! The calls of the contract, one file per part of API.md, as `impl Client` blocks.

mod groups;
mod ops;
mod produce;
mod query;
mod read;
mod topics;
mod transactions;

pub use query::{KeyQuery, TimerQuery};
