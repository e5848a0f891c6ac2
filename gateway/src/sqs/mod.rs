//! The SQS-compatible endpoint.

pub mod md5;
