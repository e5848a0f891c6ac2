//! The record codec: one message as stored in a segment.
//!
//! Little-endian layout, versioned and checksummed:
//!
//! ```text
//!  0  [u8;2]  magic "SH"            a zero byte here marks the end of written data
//!  2  u8      version (1)
//!  3  u8      flags: 1 = deliver_at_ms set, 2 = tag set, 4 = message_group set
//!  4  u32     total record length in bytes, header included
//!  8  u32     CRC32C of bytes [0, 8) followed by [12, length)
//! 12  u64     offset
//! 20  i64     store_ms
//! 28  i64     born_ms
//! 36  i64     deliver_at_ms (0 unless flag 1)
//! 44  [u8;16] message id
//! 60  u16 len + tag bytes
//!     u16 len + message_group bytes
//!     u16 count, then per key:      u16 len + bytes
//!     u16 count, then per property: u16 len + name, u32 len + value
//!     u32 len + body
//! ```
//!
//! The CRC covers every byte but its own, so a flipped bit anywhere — flags,
//! length, offset, timestamps, id, metadata or body — is detected. The explicit body
//! length must end exactly at the record length: a frame that does not add up
//! is rejected as well.

use bytes::Bytes;

use crate::message_id::MessageId;

/// Magic bytes at the start of every record.
pub const RECORD_MAGIC: [u8; 2] = *b"SH";
/// Current record format version.
pub const RECORD_VERSION: u8 = 1;
/// Size of the fixed header.
pub const RECORD_HEADER_BYTES: usize = 60;
/// Largest encoded record accepted (4 MiB body plus metadata headroom).
pub const MAX_RECORD_BYTES: usize = 5 * 1024 * 1024;

const FLAG_DELIVER_AT: u8 = 1;
const FLAG_TAG: u8 = 2;
const FLAG_GROUP: u8 = 4;

/// A message to append; the queue assigns offset, store time and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendRequest {
    pub born_ms: i64,
    pub deliver_at_ms: Option<i64>,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub message_group: Option<String>,
    pub body: Bytes,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub store_ms: i64,
    pub born_ms: i64,
    pub deliver_at_ms: Option<i64>,
    pub message_id: MessageId,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub message_group: Option<String>,
    pub body: Bytes,
}

impl Record {
    /// The request that stores this record again (its offset, store time and
    /// id aside, which the caller keeps).
    pub fn to_request(&self) -> AppendRequest {
        AppendRequest {
            born_ms: self.born_ms,
            deliver_at_ms: self.deliver_at_ms,
            tag: self.tag.clone(),
            keys: self.keys.clone(),
            properties: self.properties.clone(),
            message_group: self.message_group.clone(),
            body: self.body.clone(),
        }
    }

    /// This record's bytes in the segment encoding (CRC included).
    pub fn encode(&self) -> Vec<u8> {
        encode(
            &self.to_request(),
            self.offset,
            self.store_ms,
            self.message_id,
        )
    }

    /// Bytes this record takes in a segment.
    /// Computed from the fields, without copying any of them (reads call it
    /// once per record).
    pub fn encoded_len(&self) -> usize {
        fields_len(
            self.tag.as_deref(),
            self.message_group.as_deref(),
            &self.keys,
            &self.properties,
            self.body.len(),
        )
    }
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Zero bytes where a record would start: the end of written data.
    End,
    /// The record claims more bytes than are available.
    Truncated { need: usize, have: usize },
    /// Not a record: bad magic, version, length or framing.
    Malformed(String),
    /// The checksum does not match.
    Checksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::End => f.write_str("end of data"),
            DecodeError::Truncated { need, have } => {
                write!(f, "record needs {need} bytes, {have} available")
            }
            DecodeError::Malformed(why) => write!(f, "malformed record: {why}"),
            DecodeError::Checksum { stored, computed } => {
                write!(
                    f,
                    "CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
        }
    }
}

/// The fixed part of a record, read without decoding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub offset: u64,
    pub store_ms: i64,
}

/// Bytes `req` will take once encoded.
pub fn encoded_len(req: &AppendRequest) -> usize {
    fields_len(
        req.tag.as_deref(),
        req.message_group.as_deref(),
        &req.keys,
        &req.properties,
        req.body.len(),
    )
}

fn fields_len(
    tag: Option<&str>,
    group: Option<&str>,
    keys: &[String],
    properties: &[(String, String)],
    body_len: usize,
) -> usize {
    RECORD_HEADER_BYTES
        + 2
        + tag.map_or(0, str::len)
        + 2
        + group.map_or(0, str::len)
        + 2
        + keys.iter().map(|k| 2 + k.len()).sum::<usize>()
        + 2
        + properties
            .iter()
            .map(|(k, v)| 2 + k.len() + 4 + v.len())
            .sum::<usize>()
        + 4
        + body_len
}

/// Checks that `req` fits the format's field widths.
pub fn check_encodable(req: &AppendRequest) -> Result<usize, String> {
    let too_long = |len: usize| len > u16::MAX as usize;
    if req.tag.as_ref().is_some_and(|t| too_long(t.len())) {
        return Err("tag longer than 65535 bytes".into());
    }
    if req
        .message_group
        .as_ref()
        .is_some_and(|g| too_long(g.len()))
    {
        return Err("message_group longer than 65535 bytes".into());
    }
    if req.keys.len() > u16::MAX as usize || req.keys.iter().any(|k| too_long(k.len())) {
        return Err("too many or too long keys".into());
    }
    if req.properties.len() > u16::MAX as usize
        || req.properties.iter().any(|(k, _)| too_long(k.len()))
    {
        return Err("too many properties or too long a property name".into());
    }
    let len = encoded_len(req);
    if len > MAX_RECORD_BYTES {
        return Err(format!("record of {len} bytes exceeds {MAX_RECORD_BYTES}"));
    }
    Ok(len)
}

/// Encodes `req` into `out`, which must be exactly `encoded_len(req)` bytes.
pub fn encode_into(out: &mut [u8], req: &AppendRequest, offset: u64, store_ms: i64, id: MessageId) {
    debug_assert_eq!(out.len(), encoded_len(req));
    let mut flags = 0u8;
    if req.deliver_at_ms.is_some() {
        flags |= FLAG_DELIVER_AT;
    }
    if req.tag.is_some() {
        flags |= FLAG_TAG;
    }
    if req.message_group.is_some() {
        flags |= FLAG_GROUP;
    }
    out[0..2].copy_from_slice(&RECORD_MAGIC);
    out[2] = RECORD_VERSION;
    out[3] = flags;
    let total = out.len() as u32;
    out[4..8].copy_from_slice(&total.to_le_bytes());
    out[12..20].copy_from_slice(&offset.to_le_bytes());
    out[20..28].copy_from_slice(&store_ms.to_le_bytes());
    out[28..36].copy_from_slice(&req.born_ms.to_le_bytes());
    out[36..44].copy_from_slice(&req.deliver_at_ms.unwrap_or(0).to_le_bytes());
    out[44..60].copy_from_slice(&id.0);
    let mut w = Writer {
        buf: out,
        pos: RECORD_HEADER_BYTES,
    };
    w.short_bytes(req.tag.as_deref().unwrap_or("").as_bytes());
    w.short_bytes(req.message_group.as_deref().unwrap_or("").as_bytes());
    w.u16(req.keys.len() as u16);
    for k in &req.keys {
        w.short_bytes(k.as_bytes());
    }
    w.u16(req.properties.len() as u16);
    for (k, v) in &req.properties {
        w.short_bytes(k.as_bytes());
        w.long_bytes(v.as_bytes());
    }
    w.long_bytes(&req.body);
    debug_assert_eq!(w.pos, w.buf.len());
    let crc = record_crc(out);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes into a fresh vector (tests, benchmarks).
pub fn encode(req: &AppendRequest, offset: u64, store_ms: i64, id: MessageId) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(req)];
    encode_into(&mut out, req, offset, store_ms, id);
    out
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn short_bytes(&mut self, b: &[u8]) {
        self.u16(b.len() as u16);
        self.put(b);
    }
    fn long_bytes(&mut self, b: &[u8]) {
        self.put(&(b.len() as u32).to_le_bytes());
        self.put(b);
    }
}

/// Reads the fixed header at the start of `buf` and checks its framing (not the CRC).
pub fn peek_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < RECORD_HEADER_BYTES {
        if buf.iter().take(2).all(|&b| b == 0) {
            return Err(DecodeError::End);
        }
        return Err(DecodeError::Truncated {
            need: RECORD_HEADER_BYTES,
            have: buf.len(),
        });
    }
    if buf[0] == 0 && buf[1] == 0 {
        return Err(DecodeError::End);
    }
    if buf[0..2] != RECORD_MAGIC {
        return Err(DecodeError::Malformed(format!(
            "bad magic {:02x}{:02x}",
            buf[0], buf[1]
        )));
    }
    if buf[2] != RECORD_VERSION {
        return Err(DecodeError::Malformed(format!(
            "unknown version {}",
            buf[2]
        )));
    }
    let len = u32::from_le_bytes(le4(&buf[4..8])) as usize;
    if !(RECORD_HEADER_BYTES + 12..=MAX_RECORD_BYTES).contains(&len) {
        return Err(DecodeError::Malformed(format!("impossible length {len}")));
    }
    if len > buf.len() {
        return Err(DecodeError::Truncated {
            need: len,
            have: buf.len(),
        });
    }
    Ok(Header {
        len,
        offset: u64::from_le_bytes(le8(&buf[12..20])),
        store_ms: i64::from_le_bytes(le8(&buf[20..28])),
    })
}

/// Checks framing and CRC of the record at the start of `buf`.
pub fn verify(buf: &[u8]) -> Result<Header, DecodeError> {
    let h = peek_header(buf)?;
    let stored = u32::from_le_bytes(le4(&buf[8..12]));
    let computed = record_crc(&buf[..h.len]);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(h)
}

/// Decodes the record at the start of `buf`, checking its CRC and framing.
pub fn decode(buf: &[u8]) -> Result<Record, DecodeError> {
    let h = verify(buf)?;
    let rec = &buf[..h.len];
    let flags = rec[3];
    let mut r = Reader {
        buf: rec,
        pos: RECORD_HEADER_BYTES,
    };
    let tag = r.short_str()?;
    let group = r.short_str()?;
    let nkeys = r.u16()? as usize;
    let mut keys = Vec::with_capacity(nkeys.min(64));
    for _ in 0..nkeys {
        keys.push(r.short_str()?);
    }
    let nprops = r.u16()? as usize;
    let mut properties = Vec::with_capacity(nprops.min(64));
    for _ in 0..nprops {
        let k = r.short_str()?;
        let v = r.long_str()?;
        properties.push((k, v));
    }
    let body_len = r.u32()? as usize;
    let body = r.take(body_len)?;
    if r.pos != rec.len() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            rec.len() - r.pos
        )));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&rec[44..60]);
    Ok(Record {
        offset: h.offset,
        store_ms: h.store_ms,
        born_ms: i64::from_le_bytes(le8(&rec[28..36])),
        deliver_at_ms: (flags & FLAG_DELIVER_AT != 0)
            .then(|| i64::from_le_bytes(le8(&rec[36..44]))),
        message_id: MessageId(id),
        tag: (flags & FLAG_TAG != 0).then_some(tag),
        keys,
        properties,
        message_group: (flags & FLAG_GROUP != 0).then_some(group),
        body: Bytes::copy_from_slice(body),
    })
}

/// CRC32C of a whole record image except the CRC field itself.
fn record_crc(rec: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&rec[0..8]), &rec[12..])
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    a
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::Malformed("field runs past the record".into()));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(le4(self.take(4)?)))
    }
    fn short_str(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        utf8(self.take(n)?)
    }
    fn long_str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        utf8(self.take(n)?)
    }
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| DecodeError::Malformed("string field is not UTF-8".into()))
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
