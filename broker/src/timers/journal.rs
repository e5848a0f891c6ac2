//! Writing and reading a queue's timer journal and its saved fire state.
//!
//! A journal record is either a scheduled message as produced (its
//! `deliver_at_ms` set, its id minted by [`MessageId::scheduled`]) or a
//! recall record (property [`RECALL_PROPERTY`] = the recalled timer's
//! offset, `deliver_at_ms` = its delivery time, empty body). Both go in
//! under the index lock, so the index and the journal agree on every offset.

use std::path::Path;

use bytes::Bytes;
use shale_hot::{AppendRequest, Appended, MessageId, Record, durable_file};

use super::index::{FireState, Key};
use super::{RECALL_PROPERTY, TimerQueue};
use crate::error::{BrokerError, BrokerResult};
use crate::txn::records::{PARKED_AT, decided_halves, half_key};

/// Frame magic of a saved fire state.
const STATE_MAGIC: [u8; 4] = *b"SHTF";
/// 1: a bare [`FireState`] (before the object-store checkpoint); 2: [`LocalState`].
const STATE_VERSION: u16 = 2;

/// The fire state saved locally, with the checkpoint epoch it was saved
/// under (`None`: saved before checkpoints existed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalState {
    pub epoch: Option<u64>,
    pub state: FireState,
}

impl TimerQueue {
    /// Appends scheduled messages (each with `deliver_at_ms`) and indexes
    /// them. Blocking (a journal append).
    pub fn schedule(&self, batch: &[AppendRequest]) -> BrokerResult<Vec<Appended>> {
        let mut due = Vec::with_capacity(batch.len());
        for r in batch {
            due.push(r.deliver_at_ms.ok_or_else(|| {
                BrokerError::internal("scheduling", "a delay message without deliver_at_ms")
            })?);
        }
        let queue = self.queue;
        // A half message's id carries its birth, not its (never) due time.
        let mint = |i: usize, offset: u64| {
            let at = match due[i] {
                PARKED_AT => batch[i].born_ms,
                at => at,
            };
            MessageId::scheduled(at, queue, offset, rand::random::<u32>())
        };
        let mut index = self.index.lock();
        let appended = self.journal.append_minted(batch, &mint)?;
        let mut txns = self.txns.lock();
        for ((a, at), r) in appended.iter().zip(&due).zip(batch) {
            index.insert((*at, a.offset));
            if let Some(begin) = crate::txn::records::begin_of(r, a) {
                txns.apply(begin);
            }
        }
        Ok(appended)
    }

    /// Recalls the pending timer `key` (one only in runs was found pending
    /// there by the caller): marks it in the index and appends its recall
    /// record. Blocking.
    pub fn append_recall(&self, key: Key) -> BrokerResult<super::index::Recall> {
        let mut index = self.index.lock();
        let source = index.source_of(key);
        // Journal appends happen under the index lock: this is the record's offset.
        let found = index.recall(key, self.journal.max_offset());
        if found != super::index::Recall::Recalled {
            return Ok(found);
        }
        let record = AppendRequest {
            born_ms: 0,
            deliver_at_ms: Some(key.0),
            tag: None,
            keys: Vec::new(),
            properties: vec![(RECALL_PROPERTY.to_string(), key.1.to_string())],
            message_group: None,
            body: Bytes::new(),
        };
        match self.journal.append(&[record]) {
            Ok(a) => {
                index.skip_journal_to(a[0].offset + 1);
                Ok(found)
            }
            Err(e) => {
                index.unrecall(key, source);
                Err(e.into())
            }
        }
    }

    /// Saves the index's fire state if it changed since the last save. Blocking.
    pub fn save_state(&self) -> BrokerResult<()> {
        let (state, version) = {
            let index = self.index.lock();
            (index.state(), index.version())
        };
        if *self.saved_version.lock() == version {
            return Ok(());
        }
        let local = LocalState {
            epoch: Some(self.epoch),
            state,
        };
        write_state(&self.state_path, &local)?;
        *self.saved_version.lock() = version;
        Ok(())
    }
}

/// What a journal record is.
#[derive(Debug)]
pub enum Entry {
    Timer(Key),
    Recall(Key),
    /// A transaction's decision: it ends the half messages at these offsets.
    Decision(std::ops::Range<u64>),
}

impl Entry {
    /// The timers a record ends (a recall's one, a decision's halves).
    pub fn ended(&self) -> Vec<Key> {
        match self {
            Entry::Timer(_) => Vec::new(),
            Entry::Recall(k) => vec![*k],
            Entry::Decision(seqs) => seqs.clone().map(half_key).collect(),
        }
    }
}

/// Classifies a journal record; `None` for one that is neither (skipped).
pub fn entry_of(r: &Record) -> Option<Entry> {
    if let Some(halves) = decided_halves(r) {
        return Some(Entry::Decision(halves));
    }
    let at = r.deliver_at_ms?;
    match r.properties.iter().find(|(k, _)| k == RECALL_PROPERTY) {
        Some((_, v)) => v.parse().ok().map(|seq| Entry::Recall((at, seq))),
        None => Some(Entry::Timer((at, r.offset))),
    }
}

/// Reads the saved fire state (`None`: never saved).
pub fn read_state(path: &Path) -> BrokerResult<Option<LocalState>> {
    let framed = durable_file::read_framed(path, STATE_MAGIC)
        .map_err(|e| BrokerError::internal("reading the timer fire state", e.to_string()))?;
    let Some((version, bytes)) = framed else {
        return Ok(None);
    };
    let bad = |e: serde_json::Error| {
        BrokerError::internal(
            "reading the timer fire state",
            format!("{}: {e}", path.display()),
        )
    };
    match version {
        1 => serde_json::from_slice(&bytes)
            .map(|state| Some(LocalState { epoch: None, state }))
            .map_err(bad),
        _ => serde_json::from_slice(&bytes).map(Some).map_err(bad),
    }
}

fn write_state(path: &Path, state: &LocalState) -> BrokerResult<()> {
    let fail = |e: String| BrokerError::internal("saving the timer fire state", e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    let json = serde_json::to_vec(state).map_err(|e| fail(e.to_string()))?;
    durable_file::write_framed(path, STATE_MAGIC, STATE_VERSION, &json)
        .map_err(|e| fail(format!("{}: {e}", path.display())))
}
