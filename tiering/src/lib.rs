//! shale-tiering: the object-store tier of Shale.
//!
//! Sealed hot segments become Parquet objects under
//! `{prefix}/topics/{topic}/queues/{queue}/segments/{base_offset:020}.parquet`,
//! listed in per-queue manifests written with compare-and-swap. This crate
//! knows nothing of HTTP; it depends only on `shale-hot`.
//!
//! The crate is intentionally empty until the tiering capability lands; the
//! gateway does not depend on it yet.
