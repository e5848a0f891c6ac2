//! [`FencedObject`]: a shared JSON value in the object store, owned by one
//! writer at a time and fenced by an epoch (STYLE item 7). Queue manifests and
//! consumer-group checkpoints are both built on it.
//!
//! Layout: `{dir}/{seq:020}.json`, one immutable JSON object per version. A
//! new version is written with `PutMode::Create` under the next sequence
//! number, so exactly one of two racing writers can create version N+1 (S3
//! `If-None-Match: *`, a hard link on a local file system, the in-memory
//! store's own check) — this works on every store, including the local file
//! system that has no `PutMode::Update`. The newest version is found by
//! listing the directory; older versions are deleted after a successful write,
//! keeping a few for readers in flight. Because old versions disappear, a
//! stale writer could re-create a deleted sequence number; so every write is
//! followed by a listing, and a writer that sees a version newer than its own
//! is fenced (its orphan version is older than the newest, so no reader ever
//! picks it, and it is deleted).
//!
//! Fencing: a writer becomes the owner by writing a version with a higher
//! epoch ([`Versioned::epoch`]). All its later writes create the version after
//! the one it knows. When that fails, it re-reads the newest: if the epoch
//! moved, another owner took over and this writer gets
//! [`TieringError::Fenced`] and must stop; if the epoch is still its own, the
//! write that "failed" may have landed (an answer lost in transit), so the
//! change is re-applied to what is there now. Changes are therefore
//! idempotent functions of the current value.
//!
//! Invariants:
//! - every stored version passes [`Versioned::check`]: a value failing it is
//!   refused before it is written (so one bad write can never make the object
//!   unreadable), and a stored one failing it is reported as
//!   [`TieringError::Invalid`];
//! - a change never moves the epoch: only [`FencedObject::acquire`] raises it;
//! - an update whose result equals the current value writes nothing.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, TieringError};

/// CAS conflicts tolerated for one change before giving up (with our epoch unchanged).
const MAX_CAS_ATTEMPTS: u32 = 32;
/// Versions kept behind the newest one.
const KEEP_VERSIONS: u64 = 4;

/// A value that can live in a [`FencedObject`]: it carries its owner's epoch
/// and knows its own invariants.
pub trait Versioned: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync {
    /// The owner generation this version was written under.
    fn epoch(&self) -> u64;
    /// Sets the owner generation (only the fencing layer calls this).
    fn set_epoch(&mut self, epoch: u64);
    /// The value's invariants, format number included; the reason when broken.
    fn check(&self) -> std::result::Result<(), String>;
    /// The value of an object that was never written (epoch 0).
    fn empty() -> Self;
}

pub(crate) fn version_path(dir: &Path, seq: u64) -> Path {
    dir.child(format!("{seq:020}.json"))
}

fn parse_seq(p: &Path) -> Option<u64> {
    let name = p.filename()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Sequence numbers of the versions stored under `dir`, ascending.
async fn list_versions(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<u64>> {
    let metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {dir}"), e))?;
    let mut seqs: Vec<u64> = metas
        .iter()
        .filter_map(|m| parse_seq(&m.location))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads the newest version under `dir` with its sequence number; `None` if there is none.
pub async fn read_latest<T: Versioned>(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Option<(T, u64)>> {
    let Some(seq) = list_versions(store, dir).await?.pop() else {
        return Ok(None);
    };
    let path = version_path(dir, seq);
    let got = store
        .get(&path)
        .await
        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
    let invalid = |reason: String| TieringError::Invalid {
        path: path.to_string(),
        reason,
    };
    let value: T = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    value.check().map_err(invalid)?;
    Ok(Some((value, seq)))
}

/// A versioned object owned by this writer at a given epoch.
#[derive(Debug)]
pub struct FencedObject<T> {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// What the object is, for errors (`Fenced { queue: name, .. }`) and logs.
    name: String,
    current: T,
    seq: u64,
}

impl<T: Versioned> FencedObject<T> {
    /// Takes ownership: writes the next version with a raised epoch (a new
    /// object starts from [`Versioned::empty`]).
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        dir: Path,
        name: impl Into<String>,
    ) -> Result<Self> {
        Self::acquire_or(store, dir, name, T::empty()).await
    }

    /// Takes ownership like [`Self::acquire`]; a new object starts from
    /// `initial` instead of the empty value (its epoch is ignored), so that no
    /// placeholder is ever visible to readers.
    pub async fn acquire_or(
        store: Arc<dyn ObjectStore>,
        dir: Path,
        name: impl Into<String>,
        initial: T,
    ) -> Result<Self> {
        let taken = Self::acquire_if(store, dir, name, initial, |_, _| true).await?;
        Ok(taken
            .map(|(me, _)| me)
            .expect("an unconditional takeover is never refused"))
    }

    /// Takes ownership like [`Self::acquire_or`] if `take` agrees: it is called
    /// with the newest stored value (`None` for a new object) and the value
    /// about to be written, which it may change (e.g. to name the new owner),
    /// and answers whether to take over. It is asked again after every lost
    /// race, so its decision is always about the value actually replaced.
    /// `Ok(None)` when it refused; else the owner and the value it replaced.
    pub async fn acquire_if(
        store: Arc<dyn ObjectStore>,
        dir: Path,
        name: impl Into<String>,
        initial: T,
        take: impl Fn(Option<&T>, &mut T) -> bool,
    ) -> Result<Option<(Self, Option<T>)>> {
        let name = name.into();
        let invalid = |reason: String| TieringError::Invalid {
            path: dir.to_string(),
            reason,
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let latest = read_latest::<T>(store.as_ref(), &dir).await?;
            let (mut next, seq) = match &latest {
                None => {
                    let mut fresh = initial.clone();
                    fresh.set_epoch(0);
                    (fresh, 0)
                }
                Some((value, seq)) => (value.clone(), seq + 1),
            };
            let previous = latest.map(|(value, _)| value);
            let epoch = next.epoch() + 1;
            if !take(previous.as_ref(), &mut next) {
                return Ok(None);
            }
            next.set_epoch(epoch);
            next.check().map_err(invalid)?;
            match create(store.as_ref(), &dir, seq, &next).await {
                Ok(()) => {
                    let me = Self {
                        store: store.clone(),
                        dir: dir.clone(),
                        name: name.clone(),
                        current: next,
                        seq,
                    };
                    match me.after_write().await {
                        Ok(()) => return Ok(Some((me, previous))),
                        // A newer version appeared meanwhile: take over from it.
                        Err(TieringError::Fenced { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                // Someone else wrote that version (or ours landed unanswered): read again.
                Err(e) if is_conflict(&e) || is_transient(&e) => continue,
                Err(e) => return Err(TieringError::store(format!("taking over {dir}"), e)),
            }
        }
        Err(TieringError::Contended {
            path: dir.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// The epoch this writer owns the object under.
    pub fn epoch(&self) -> u64 {
        self.current.epoch()
    }

    /// The value as this owner last wrote or read it.
    pub fn value(&self) -> &T {
        &self.current
    }

    /// The directory of the object's versions.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies `change` and writes the result as the next version, resolving
    /// conflicts as the module docs describe. `change` must be idempotent; it
    /// cannot move the epoch (whatever it sets is overwritten), and its result
    /// must pass [`Versioned::check`]. Nothing is written when it changes nothing.
    pub async fn update(
        &mut self,
        change: impl Fn(&mut T) -> std::result::Result<(), String>,
    ) -> Result<()> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut next = self.current.clone();
            let invalid = |reason: String| TieringError::Invalid {
                path: self.dir.to_string(),
                reason,
            };
            change(&mut next).map_err(invalid)?;
            next.set_epoch(self.current.epoch());
            if next == self.current {
                return Ok(());
            }
            next.check().map_err(invalid)?;
            match create(self.store.as_ref(), &self.dir, self.seq + 1, &next).await {
                Ok(()) => {
                    self.current = next;
                    self.seq += 1;
                    return self.after_write().await;
                }
                Err(e) if is_conflict(&e) || is_transient(&e) => self.refresh().await?,
                Err(e) => return Err(TieringError::store(format!("writing {}", self.dir), e)),
            }
        }
        Err(TieringError::Contended {
            path: self.dir.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Re-reads the newest version; fails with `Fenced` if another owner took over.
    pub async fn refresh(&mut self) -> Result<()> {
        let Some((value, seq)) = read_latest::<T>(self.store.as_ref(), &self.dir).await? else {
            return Err(TieringError::Invalid {
                path: self.dir.to_string(),
                reason: format!("{} disappeared", self.name),
            });
        };
        if value.epoch() != self.current.epoch() {
            return Err(self.fenced(value.epoch()));
        }
        self.current = value;
        self.seq = seq;
        Ok(())
    }

    fn fenced(&self, current: u64) -> TieringError {
        TieringError::Fenced {
            queue: self.name.clone(),
            ours: self.current.epoch(),
            current,
        }
    }

    /// Checks that no newer version exists (else this writer is stale: fenced),
    /// then deletes versions older than the few kept (best effort).
    async fn after_write(&self) -> Result<()> {
        let seqs = list_versions(self.store.as_ref(), &self.dir).await?;
        if let Some(newest) = seqs.last().copied().filter(|n| *n > self.seq) {
            let _ = self.store.delete(&version_path(&self.dir, self.seq)).await;
            let current = read_latest::<T>(self.store.as_ref(), &self.dir)
                .await?
                .map_or(0, |(value, _)| value.epoch());
            tracing::warn!(dir = %self.dir, ours = self.seq, newest, "a newer version exists; this writer is fenced");
            return Err(self.fenced(current));
        }
        let floor = self.seq.saturating_sub(KEEP_VERSIONS);
        for old in seqs.into_iter().filter(|s| *s < floor) {
            if let Err(e) = self.store.delete(&version_path(&self.dir, old)).await {
                tracing::debug!(error = %e, "could not delete an old version");
            }
        }
        Ok(())
    }
}

pub(crate) fn is_conflict(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
    )
}

fn is_transient(e: &object_store::Error) -> bool {
    crate::retry_store::is_transient(e)
}

pub(crate) async fn create<T: Serialize>(
    store: &dyn ObjectStore,
    dir: &Path,
    seq: u64,
    value: &T,
) -> object_store::Result<()> {
    let body = serde_json::to_vec(value).map_err(|e| object_store::Error::Generic {
        store: "fenced object",
        source: Box::new(e),
    })?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&version_path(dir, seq), PutPayload::from(body), opts)
        .await
        .map(|_| ())
}
