//! Snapshots of a queue's transaction table: every half-message
//! transaction still pending and every decision still remembered, as of a
//! journal offset (the timer checkpoint's `spilled_end` that lists it).
//!
//! The half messages themselves are timer-run entries ([`crate::timer_run`]);
//! this is only the small per-transaction state: who checks it, how often,
//! how many checks so far, and the decision once there is one.
//!
//! Layout (see [`crate::paths`]): `{prefix}/topics/{topic}/timers/{queue}/txns/{epoch:020}-{n:020}.tbl`,
//! immutable once listed, named by the owner of `epoch` (the checkpoint's
//! `next_run` counter is shared with runs, so listed names never repeat).
//!
//! Format: `SHTX`, version u16, then a zstd frame of: row count u64, the
//! producer-group names (count u32, each length u16 + UTF-8), and the rows
//! (fixed fields, little endian, `seq0` delta-coded); then CRC32C of
//! everything before it. Any truncation or flipped byte is an error, never
//! a different table.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{Result, TieringError};

const MAGIC: &[u8; 4] = b"SHTX";
const VERSION: u16 = 1;

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnDecision {
    Pending,
    Committed,
    RolledBack,
}

/// One transaction: its half messages are journal offsets `seq0..seq0+n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRow {
    pub seq0: u64,
    pub n: u32,
    /// The random bits of the first half message's id (a transaction id
    /// must match them, so a guessed id misses).
    pub rand: u32,
    pub producer_group: String,
    pub born_ms: i64,
    pub check_after_ms: u32,
    /// Checks offered so far.
    pub checks: u32,
    pub next_check_ms: i64,
    pub decision: TxnDecision,
    /// When decided (0 while pending).
    pub decided_ms: i64,
}

/// The file name of snapshot `n` of the owner of `epoch`.
pub fn table_name(epoch: u64, n: u64) -> String {
    format!("{epoch:020}-{n:020}.tbl")
}

/// Whether `name` is one [`table_name`] writes.
pub fn is_table_name(name: &str) -> bool {
    name.strip_suffix(".tbl")
        .and_then(|s| s.split_once('-'))
        .is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|p| p.len() == 20 && p.bytes().all(|c| c.is_ascii_digit()))
        })
}

fn corrupt(what: impl Into<String>) -> TieringError {
    TieringError::Invalid {
        path: "transaction table".to_string(),
        reason: what.into(),
    }
}

/// Encodes `rows` (sorted by `seq0`, as a table keeps them).
pub fn encode(rows: &[TxnRow]) -> Result<Bytes> {
    let mut groups: Vec<&str> = rows.iter().map(|r| r.producer_group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut body = BytesMut::with_capacity(16 + rows.len() * 40);
    body.put_u64_le(rows.len() as u64);
    body.put_u32_le(groups.len() as u32);
    for g in &groups {
        let len =
            u16::try_from(g.len()).map_err(|_| corrupt("a producer group name is too long"))?;
        body.put_u16_le(len);
        body.put_slice(g.as_bytes());
    }
    let mut prev = 0u64;
    for r in rows {
        let group = groups
            .binary_search(&r.producer_group.as_str())
            .map_err(|_| corrupt("group not in its own table"))?;
        let delta = r
            .seq0
            .checked_sub(prev)
            .ok_or_else(|| corrupt("rows are not sorted by seq0"))?;
        prev = r.seq0;
        body.put_u64_le(delta);
        body.put_u32_le(r.n);
        body.put_u32_le(r.rand);
        body.put_u32_le(group as u32);
        body.put_i64_le(r.born_ms);
        body.put_u32_le(r.check_after_ms);
        body.put_u32_le(r.checks);
        body.put_i64_le(r.next_check_ms);
        body.put_u8(match r.decision {
            TxnDecision::Pending => 0,
            TxnDecision::Committed => 1,
            TxnDecision::RolledBack => 2,
        });
        body.put_i64_le(r.decided_ms);
    }
    let packed = zstd::bulk::compress(&body, 3).map_err(|e| corrupt(format!("zstd: {e}")))?;
    let mut out = BytesMut::with_capacity(packed.len() + 18);
    out.put_slice(MAGIC);
    out.put_u16_le(VERSION);
    out.put_u64_le(body.len() as u64);
    out.put_slice(&packed);
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    Ok(out.freeze())
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<TxnRow>> {
    if bytes.len() < 18 || &bytes[..4] != MAGIC {
        return Err(corrupt("not a transaction table"));
    }
    let (head, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(head) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut h = &head[4..];
    let version = h.get_u16_le();
    if version != VERSION {
        return Err(corrupt(format!("unknown version {version}")));
    }
    let raw_len = usize::try_from(h.get_u64_le()).map_err(|_| corrupt("size"))?;
    if raw_len > 1 << 34 {
        return Err(corrupt("implausible size"));
    }
    let body = zstd::bulk::decompress(h, raw_len).map_err(|e| corrupt(format!("zstd: {e}")))?;
    let mut b = body.as_slice();
    let need = |b: &&[u8], n: usize| {
        if b.remaining() < n {
            Err(corrupt("truncated"))
        } else {
            Ok(())
        }
    };
    need(&b, 12)?;
    let count = b.get_u64_le();
    let group_count = b.get_u32_le() as usize;
    let mut groups = Vec::with_capacity(group_count.min(1 << 16));
    for _ in 0..group_count {
        need(&b, 2)?;
        let len = b.get_u16_le() as usize;
        need(&b, len)?;
        let name = std::str::from_utf8(&b[..len]).map_err(|_| corrupt("group name not UTF-8"))?;
        groups.push(name.to_string());
        b.advance(len);
    }
    const ROW: usize = 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8 + 1 + 8;
    if (b.remaining() as u64) != count.saturating_mul(ROW as u64) {
        return Err(corrupt("row count does not match the size"));
    }
    let mut rows = Vec::with_capacity(count as usize);
    let mut seq0 = 0u64;
    for _ in 0..count {
        seq0 = seq0
            .checked_add(b.get_u64_le())
            .ok_or_else(|| corrupt("seq0 overflows"))?;
        let n = b.get_u32_le();
        let rand = b.get_u32_le();
        let group = b.get_u32_le() as usize;
        let producer_group = groups
            .get(group)
            .ok_or_else(|| corrupt("unknown group index"))?
            .clone();
        let born_ms = b.get_i64_le();
        let check_after_ms = b.get_u32_le();
        let checks = b.get_u32_le();
        let next_check_ms = b.get_i64_le();
        let decision = match b.get_u8() {
            0 => TxnDecision::Pending,
            1 => TxnDecision::Committed,
            2 => TxnDecision::RolledBack,
            d => return Err(corrupt(format!("unknown decision {d}"))),
        };
        let decided_ms = b.get_i64_le();
        rows.push(TxnRow {
            seq0,
            n,
            rand,
            producer_group,
            born_ms,
            check_after_ms,
            checks,
            next_check_ms,
            decision,
            decided_ms,
        });
    }
    Ok(rows)
}

/// Writes a snapshot at `path`. Only the owner of the name's epoch writes
/// it, before any checkpoint lists it: a retry after a failed checkpoint
/// write overwrites what nobody reads.
pub async fn put_table(store: &dyn ObjectStore, path: &Path, rows: &[TxnRow]) -> Result<()> {
    let bytes = encode(rows)?;
    let opts = PutOptions {
        mode: PutMode::Overwrite,
        ..Default::default()
    };
    store
        .put_opts(path, PutPayload::from(bytes), opts)
        .await
        .map_err(|e| TieringError::store(format!("writing {path}"), e))?;
    Ok(())
}

/// Reads the snapshot at `path`.
pub async fn read_table(store: &dyn ObjectStore, path: &Path) -> Result<Vec<TxnRow>> {
    let read = async { store.get(path).await?.bytes().await };
    let bytes = read
        .await
        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
    decode(&bytes).map_err(|e| match e {
        TieringError::Invalid { reason, .. } => TieringError::Invalid {
            path: path.to_string(),
            reason,
        },
        e => e,
    })
}

/// Deletes a snapshot no checkpoint lists (missing is fine).
pub async fn delete_table(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(TieringError::store(format!("deleting {path}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row() -> impl Strategy<Value = TxnRow> {
        (
            0u64..1 << 40,
            1u32..100,
            any::<u32>(),
            "[a-z]{1,3}",
            any::<i64>(),
            1000u32..3_600_000,
            0u32..20,
            any::<i64>(),
            0u8..3,
            any::<i64>(),
        )
            .prop_map(
                |(seq0, n, rand, g, born, after, checks, next, d, at)| TxnRow {
                    seq0,
                    n,
                    rand,
                    producer_group: g,
                    born_ms: born,
                    check_after_ms: after,
                    checks,
                    next_check_ms: next,
                    decision: [
                        TxnDecision::Pending,
                        TxnDecision::Committed,
                        TxnDecision::RolledBack,
                    ][d as usize],
                    decided_ms: at,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(mut rows in proptest::collection::vec(row(), 0..200)) {
            rows.sort_by_key(|r| r.seq0);
            rows.dedup_by_key(|r| r.seq0);
            let bytes = encode(&rows).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), rows);
        }

        #[test]
        fn damage_is_an_error(mut rows in proptest::collection::vec(row(), 1..20), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            rows.sort_by_key(|r| r.seq0);
            rows.dedup_by_key(|r| r.seq0);
            let bytes = encode(&rows).unwrap();
            let mut bad = bytes.to_vec();
            let i = at.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(decode(&bad).is_err());
            prop_assert!(decode(&bytes[..i]).is_err());
        }
    }

    #[test]
    fn names_are_recognised() {
        assert!(is_table_name(&table_name(3, 7)));
        assert!(!is_table_name(
            "00000000000000000003-00000000000000000007.run"
        ));
        assert!(!is_table_name("x.tbl"));
    }

    #[tokio::test]
    async fn snapshots_are_written_read_and_deleted() {
        let store = object_store::memory::InMemory::new();
        let path = Path::from("t/txns/a.tbl");
        put_table(&store, &path, &[]).await.unwrap();
        put_table(&store, &path, &[]).await.unwrap();
        assert_eq!(read_table(&store, &path).await.unwrap(), vec![]);
        delete_table(&store, &path).await.unwrap();
        delete_table(&store, &path).await.unwrap();
    }
}
