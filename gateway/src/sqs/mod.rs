//! The SQS-compatible endpoint.

pub mod md5;
pub mod sigv4;
