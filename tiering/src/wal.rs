//! OBJECT write-ahead chunks: what a node's group commit puts in the object
//! store before it acknowledges OBJECT produces.
//!
//! One chunk per commit, at `wal/{node}/{incarnation:020}/{seq:020}.wal`
//! ([`crate::paths::Layout::wal_chunk`]), written create-only and never
//! changed. A chunk holds one *section* per queue it commits: the queue's
//! topic (with the topic's creation time, so a topic deleted and created
//! again under the same name is never confused with its predecessor), the
//! queue number, and records in the hot tier's own encoding (each with its
//! offset, store time, id and CRC).
//!
//! ```text
//! "SWAL" | version u16 | sections u32 |
//!   per section: topic len u16 | topic | topic created_ms i64 | queue u32 | records u32 | bytes u32 | records
//! | crc32c u32 of everything before it
//! ```
//!
//! Invariants: a chunk either decodes whole (its CRC and every record's CRC
//! hold, every length is in bounds) or is an error, never a partial list;
//! records within a section are in offset order. Which chunks still matter,
//! and who replays them, is the broker's business (its `wal` module): this
//! module only writes, lists, reads and deletes them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use shale_hot::Record;

use crate::error::{Result, TieringError};
use crate::paths::Layout;

const MAGIC: &[u8; 4] = b"SWAL";
const VERSION: u16 = 1;

/// One queue's records in a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSection {
    pub topic: String,
    /// The topic's creation time: its generation.
    pub topic_created_ms: i64,
    pub queue: u32,
    /// In offset order.
    pub records: Vec<Record>,
}

impl WalSection {
    /// Offset after the section's last record (0 when empty).
    pub fn end_offset(&self) -> u64 {
        self.records.last().map_or(0, |r| r.offset + 1)
    }
}

/// A chunk's place: whose it is and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    pub node: String,
    pub incarnation: u64,
    pub seq: u64,
}

/// Encodes `sections` as one chunk.
pub fn encode_chunk(sections: &[WalSection]) -> Result<Bytes> {
    let mut out = BytesMut::new();
    out.put_slice(MAGIC);
    out.put_u16_le(VERSION);
    out.put_u32_le(count(sections.len(), "sections")?);
    for s in sections {
        let topic = s.topic.as_bytes();
        out.put_u16_le(
            u16::try_from(topic.len()).map_err(|_| invalid("a topic name is too long"))?,
        );
        out.put_slice(topic);
        out.put_i64_le(s.topic_created_ms);
        out.put_u32_le(s.queue);
        out.put_u32_le(count(s.records.len(), "records")?);
        let encoded: Vec<Vec<u8>> = s.records.iter().map(Record::encode).collect();
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        out.put_u32_le(count(bytes, "section bytes")?);
        for e in &encoded {
            out.put_slice(e);
        }
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    Ok(out.freeze())
}

/// Decodes a chunk, checking its CRC and every record's.
pub fn decode_chunk(bytes: &[u8]) -> std::result::Result<Vec<WalSection>, String> {
    if bytes.len() < MAGIC.len() + 2 + 4 + 4 {
        return Err(format!("{} bytes is too short for a chunk", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    let mut b = body;
    if &b[..4] != MAGIC {
        return Err("not a write-ahead chunk (bad magic)".into());
    }
    b.advance(4);
    let version = b.get_u16_le();
    if version != VERSION {
        return Err(format!("unknown chunk version {version}"));
    }
    let n = b.get_u32_le() as usize;
    let mut sections = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let topic_len = take_u16(&mut b, i)? as usize;
        let topic = take_bytes(&mut b, topic_len, i)?;
        let topic = String::from_utf8(topic.to_vec())
            .map_err(|_| format!("section {i}: the topic name is not UTF-8"))?;
        if b.remaining() < 8 + 4 + 4 + 4 {
            return Err(format!("section {i} is truncated"));
        }
        let topic_created_ms = b.get_i64_le();
        let queue = b.get_u32_le();
        let records_n = b.get_u32_le() as usize;
        let len = b.get_u32_le() as usize;
        let mut recs = take_bytes(&mut b, len, i)?;
        let mut records = Vec::with_capacity(records_n.min(65_536));
        while !recs.is_empty() {
            let r = shale_hot::decode(recs).map_err(|e| format!("section {i}: {e}"))?;
            recs = &recs[r.encoded_len()..];
            if records
                .last()
                .is_some_and(|p: &Record| p.offset >= r.offset)
            {
                return Err(format!("section {i}: records out of offset order"));
            }
            records.push(r);
        }
        if records.len() != records_n {
            return Err(format!(
                "section {i}: {} records where the header says {records_n}",
                records.len()
            ));
        }
        sections.push(WalSection {
            topic,
            topic_created_ms,
            queue,
            records,
        });
    }
    if b.has_remaining() {
        return Err(format!("{} bytes after the last section", b.remaining()));
    }
    Ok(sections)
}

fn take_u16(b: &mut &[u8], section: usize) -> std::result::Result<u16, String> {
    if b.remaining() < 2 {
        return Err(format!("section {section} is truncated"));
    }
    Ok(b.get_u16_le())
}

fn take_bytes<'a>(
    b: &mut &'a [u8],
    len: usize,
    section: usize,
) -> std::result::Result<&'a [u8], String> {
    if b.remaining() < len {
        return Err(format!("section {section} is truncated"));
    }
    let (head, tail) = b.split_at(len);
    *b = tail;
    Ok(head)
}

fn count(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(&format!("too many {what} for one chunk")))
}

fn invalid(reason: &str) -> TieringError {
    TieringError::Invalid {
        path: "write-ahead chunk".into(),
        reason: reason.into(),
    }
}

/// Writes chunk `id` (create-only). A chunk already there is this writer's
/// own earlier attempt (a retried PUT whose first answer was lost): sequence
/// numbers are never reused within an incarnation.
pub async fn put_chunk(
    store: &dyn ObjectStore,
    layout: &Layout,
    id: &ChunkId,
    bytes: Bytes,
) -> Result<()> {
    let path = layout.wal_chunk(&id.node, id.incarnation, id.seq);
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(TieringError::store(format!("writing {path}"), e)),
    }
}

/// The chunks of one incarnation of a node, in sequence order.
pub async fn list_chunks(
    store: &dyn ObjectStore,
    layout: &Layout,
    node: &str,
    incarnation: u64,
) -> Result<Vec<ChunkId>> {
    let dir = layout.wal_dir(node, incarnation);
    let metas: Vec<_> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {dir}"), e))?;
    let mut ids: Vec<ChunkId> = metas
        .iter()
        .filter_map(|m| parse_seq(m.location.filename()?))
        .map(|seq| ChunkId {
            node: node.to_string(),
            incarnation,
            seq,
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Every chunk under the prefix, of every node and incarnation (the janitor).
pub async fn list_all_chunks(store: &dyn ObjectStore, layout: &Layout) -> Result<Vec<ChunkId>> {
    let root = layout.wal_root();
    let metas: Vec<_> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {root}"), e))?;
    let mut ids: Vec<ChunkId> = metas
        .iter()
        .filter_map(|m| {
            let parts: Vec<_> = m.location.parts().collect();
            let [.., node, inc, file] = parts.as_slice() else {
                return None;
            };
            let incarnation = parse_fixed(inc.as_ref())?;
            Some(ChunkId {
                node: node.as_ref().to_string(),
                incarnation,
                seq: parse_seq(file.as_ref())?,
            })
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Reads and decodes chunk `id`; `None` if it is gone (collected).
pub async fn read_chunk(
    store: &dyn ObjectStore,
    layout: &Layout,
    id: &ChunkId,
) -> Result<Option<Vec<WalSection>>> {
    let path = layout.wal_chunk(&id.node, id.incarnation, id.seq);
    let bytes = match store.get(&path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| TieringError::store(format!("reading {path}"), e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(TieringError::store(format!("reading {path}"), e)),
    };
    decode_chunk(&bytes)
        .map(Some)
        .map_err(|reason| TieringError::Invalid {
            path: path.to_string(),
            reason,
        })
}

/// Deletes chunk `id` (a missing one is fine).
pub async fn delete_chunk(store: &dyn ObjectStore, layout: &Layout, id: &ChunkId) -> Result<()> {
    let path = layout.wal_chunk(&id.node, id.incarnation, id.seq);
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(TieringError::store(format!("deleting {path}"), e)),
    }
}

fn parse_seq(name: &str) -> Option<u64> {
    parse_fixed(name.strip_suffix(".wal")?)
}

fn parse_fixed(digits: &str) -> Option<u64> {
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use shale_hot::{MessageId, Record};

    fn record(offset: u64, body: &str) -> Record {
        Record {
            offset,
            store_ms: 1_000 + offset as i64,
            born_ms: 900,
            deliver_at_ms: None,
            message_id: MessageId::new(1_000 + offset as i64, 3, offset, 7),
            tag: Some("t".into()),
            keys: vec!["k".into()],
            properties: vec![("p".into(), "v".into())],
            message_group: None,
            body: Bytes::from(body.to_string()),
        }
    }

    fn sections() -> Vec<WalSection> {
        vec![
            WalSection {
                topic: "orders".into(),
                topic_created_ms: 5,
                queue: 3,
                records: vec![record(10, "a"), record(11, "bb")],
            },
            WalSection {
                topic: "é".into(),
                topic_created_ms: 6,
                queue: 0,
                records: vec![record(0, "")],
            },
        ]
    }

    #[test]
    fn chunks_round_trip() {
        let bytes = encode_chunk(&sections()).unwrap();
        assert_eq!(decode_chunk(&bytes).unwrap(), sections());
        assert_eq!(sections()[0].end_offset(), 12);
    }

    #[test]
    fn every_damaged_byte_and_every_truncation_is_an_error() {
        let bytes = encode_chunk(&sections()).unwrap().to_vec();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                decode_chunk(&bad).is_err(),
                "flipped byte {i} went unnoticed"
            );
            assert!(
                decode_chunk(&bytes[..i]).is_err(),
                "truncation at {i} went unnoticed"
            );
        }
    }

    #[tokio::test]
    async fn chunks_are_listed_per_incarnation_and_overall_and_deleted() {
        let store = InMemory::new();
        let layout = Layout::new(Path::from("p"));
        let id = |node: &str, incarnation, seq| ChunkId {
            node: node.into(),
            incarnation,
            seq,
        };
        let bytes = encode_chunk(&sections()).unwrap();
        for c in [id("a", 1, 2), id("a", 1, 1), id("a", 2, 1), id("b", 1, 1)] {
            put_chunk(&store, &layout, &c, bytes.clone()).await.unwrap();
        }
        // A retried create of the same chunk is not an error.
        put_chunk(&store, &layout, &id("a", 1, 1), bytes.clone())
            .await
            .unwrap();
        let a1 = list_chunks(&store, &layout, "a", 1).await.unwrap();
        assert_eq!(a1, vec![id("a", 1, 1), id("a", 1, 2)]);
        assert_eq!(list_all_chunks(&store, &layout).await.unwrap().len(), 4);
        let read = read_chunk(&store, &layout, &id("b", 1, 1)).await.unwrap();
        assert_eq!(read, Some(sections()));
        delete_chunk(&store, &layout, &id("b", 1, 1)).await.unwrap();
        delete_chunk(&store, &layout, &id("b", 1, 1)).await.unwrap();
        assert_eq!(
            read_chunk(&store, &layout, &id("b", 1, 1)).await.unwrap(),
            None
        );
    }
}
