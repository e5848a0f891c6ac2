//! shale-tiering: the object-store tier of Shale.
//!
//! Sealed hot segments become Parquet objects under
//! `{prefix}/topics/{topic}/queues/{queue}/segments/{base_offset:020}.parquet`,
//! listed in a per-queue manifest written with compare-and-swap under the
//! queue's epoch. That public prefix holds exactly the committed segments:
//! an upload goes to a staging key unique to the owner's epoch first and is
//! copied there only after the manifest lists it ([`uploader`]), so a fenced
//! owner can neither leave an uncommitted file there nor overwrite one. This crate knows nothing of HTTP; it depends only on
//! `shale-hot`. Every object-store access goes through `object_store`, with
//! behaviour (retries, fault injection) added by wrapping it.
//!
//! What is here so far: the object-store URL, the retrying and fault-injecting
//! wrappers, the bucket layout, fenced versioned objects ([`fenced`]) and the
//! two kinds built on them: queue manifests and consumer-group checkpoints
//! ([`group_checkpoint`]). The Parquet uploader, cold reads and retention
//! build on these.

pub mod cold_reader;
pub mod error;
pub mod fault_store;
pub mod fenced;
pub mod group_checkpoint;
pub mod lease;
pub mod manifest;
pub mod object_url;
pub mod objects;
pub mod parquet_segment;
pub mod paths;
pub mod retention;
pub mod retry_store;
pub mod tier;
pub mod timer_checkpoint;
pub mod timer_run;
pub mod txn_table;
pub mod uploader;
pub mod wal;

pub use error::{Result, TieringError};
pub use fault_store::{FaultStore, Faults};
pub use fenced::{FencedObject, Versioned};
pub use group_checkpoint::{
    CheckpointKey, GroupCheckpoints, HeldEntry, InflightEntry, QueueCheckpoint,
};
pub use lease::{NodeLease, NodeRecord, NodeState};
pub use manifest::{FencedManifest, QueueManifest, QueueOwner, SegmentEntry};
pub use object_url::{ObjectStoreUrl, open_object_store};
pub use retry_store::{RetryPolicy, RetryStore};
pub use tier::{Acquired, Tier};
pub use timer_checkpoint::{FencedTimerCheckpoint, RunMeta, TimerCheckpoint};
pub use timer_run::{BlockMeta, EncodedRun, RunEntry, RunFooter, RunSummary, RunWriter, TimerKey};
