//! Sealed segments as Parquet: the public, documented cold format.
//!
//! One object per sealed segment, rows ordered by offset, zstd, columns
//! (API.md "Object-store layout"):
//!
//! ```text
//! offset        INT64                          row-group statistics
//! store_ms      INT64 TIMESTAMP(MILLIS)        row-group statistics
//! born_ms       INT64
//! message_id    STRING                         bloom filter
//! tag           STRING (nullable)
//! keys          LIST<STRING>                   bloom filter (keys.list.element)
//! message_group STRING (nullable)
//! properties    MAP<STRING, STRING>
//! body          BINARY
//! deliver_at_ms INT64 (nullable)               Shale addition; readers may ignore it
//! ```
//!
//! Row groups are cut by encoded size (`row_group_bytes`), so a cold read of
//! one message fetches about that many bytes. Reading selects row groups by
//! their `offset` statistics and skips rows before the wanted offset; with
//! the footer cached, one ranged read of one row group answers a point read.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Buf;
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use shale_hot::{MessageId, Record};

use crate::error::{Result, TieringError};
use crate::manifest::SegmentEntry;

/// The property of a row standing for a message lost to damage on the
/// node's disk before upload (value: why). Such a row has an empty body and
/// is never served as a message: readers get an error for its offset, as
/// the hot tier gave before upload. Producers cannot set `shale.*` properties.
pub const LOST_PROPERTY: &str = "shale.lost";

/// The row that stands for lost offset `offset` (see [`LOST_PROPERTY`]).
pub fn lost_marker(offset: u64, store_ms: i64, queue: u32, reason: &str) -> Record {
    Record {
        offset,
        store_ms,
        born_ms: store_ms,
        deliver_at_ms: None,
        message_id: MessageId::new(store_ms, queue, offset, 0),
        tag: None,
        keys: Vec::new(),
        properties: vec![(LOST_PROPERTY.to_string(), reason.to_string())],
        message_group: None,
        body: Bytes::new(),
    }
}

/// Why `record` was lost, when it is a [`lost_marker`].
pub fn lost_reason(record: &Record) -> Option<&str> {
    record
        .properties
        .iter()
        .find(|(k, _)| k == LOST_PROPERTY)
        .map(|(_, v)| v.as_str())
}

/// Default target size of one row group (before compression).
pub const DEFAULT_ROW_GROUP_BYTES: usize = 1024 * 1024;
/// Rows converted and handed to the writer at a time.
const WRITE_CHUNK_ROWS: usize = 256;

fn invalid(path: impl std::fmt::Display, reason: impl std::fmt::Display) -> TieringError {
    TieringError::Invalid {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// The Arrow schema of a segment object.
pub fn schema() -> SchemaRef {
    let keys_item = Field::new("element", DataType::Utf8, false);
    let entry = Field::new(
        "key_value",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, false),
            ]
            .into(),
        ),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "store_ms",
            DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("born_ms", DataType::Int64, false),
        Field::new("message_id", DataType::Utf8, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("keys", DataType::List(Arc::new(keys_item)), false),
        Field::new("message_group", DataType::Utf8, true),
        Field::new("properties", DataType::Map(Arc::new(entry), false), false),
        Field::new("body", DataType::Binary, false),
        Field::new("deliver_at_ms", DataType::Int64, true),
    ]))
}

/// `records` as one Arrow batch of [`schema`]: the rows of a segment object
/// (also what `shale replay --parquet-dir` writes).
pub fn records_to_batch(schema: &SchemaRef, records: &[Record]) -> Result<RecordBatch> {
    let n = records.len();
    let mut offset = Int64Builder::with_capacity(n);
    let mut store_ms = TimestampMillisecondBuilder::with_capacity(n);
    let mut born_ms = Int64Builder::with_capacity(n);
    let mut message_id = StringBuilder::with_capacity(n, n * 32);
    let mut tag = StringBuilder::new();
    let mut keys = ListBuilder::new(StringBuilder::new()).with_field(Field::new(
        "element",
        DataType::Utf8,
        false,
    ));
    let mut group = StringBuilder::new();
    let mut props = MapBuilder::new(
        Some(arrow_array::builder::MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    )
    .with_values_field(Field::new("value", DataType::Utf8, false));
    let mut body = BinaryBuilder::with_capacity(n, records.iter().map(|r| r.body.len()).sum());
    let mut deliver = Int64Builder::with_capacity(n);
    for r in records {
        offset.append_value(r.offset as i64);
        store_ms.append_value(r.store_ms);
        born_ms.append_value(r.born_ms);
        message_id.append_value(r.message_id.to_string());
        tag.append_option(r.tag.as_deref());
        for k in &r.keys {
            keys.values().append_value(k);
        }
        keys.append(true);
        group.append_option(r.message_group.as_deref());
        for (k, v) in &r.properties {
            props.keys().append_value(k);
            props.values().append_value(v);
        }
        props.append(true).map_err(|e| invalid("segment", e))?;
        body.append_value(&r.body);
        deliver.append_option(r.deliver_at_ms);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(offset.finish()),
        Arc::new(store_ms.finish()),
        Arc::new(born_ms.finish()),
        Arc::new(message_id.finish()),
        Arc::new(tag.finish()),
        Arc::new(keys.finish()),
        Arc::new(group.finish()),
        Arc::new(props.finish()),
        Arc::new(body.finish()),
        Arc::new(deliver.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| invalid("segment", e))
}

/// Bloom filter false-positive rate.
const BLOOM_FPP: f64 = 0.01;

/// `expected_rows`: rows a row group will hold at most, which sizes the bloom
/// filters (the parquet default assumes a million distinct values, about
/// 1 MiB of filter per column and row group — more than the data itself).
pub fn writer_properties(expected_rows: u64) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(3).map_err(|e| invalid("zstd level", e))?;
    let keys = ColumnPath::new(vec!["keys".into(), "list".into(), "element".into()]);
    let id = ColumnPath::from("message_id");
    let ndv = expected_rows.max(1);
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_size(usize::MAX)
        .set_column_bloom_filter_enabled(id.clone(), true)
        .set_column_bloom_filter_ndv(id.clone(), ndv)
        .set_column_bloom_filter_fpp(id, BLOOM_FPP)
        .set_column_bloom_filter_enabled(keys.clone(), true)
        // Messages carry a few keys each, usually one.
        .set_column_bloom_filter_ndv(keys.clone(), ndv.saturating_mul(2))
        .set_column_bloom_filter_fpp(keys, BLOOM_FPP)
        .build())
}

/// Encodes the records of one sealed segment (ascending, contiguous offsets)
/// into a Parquet object, returning its bytes and its manifest entry.
pub fn encode_segment(records: &[Record], row_group_bytes: usize) -> Result<(Bytes, SegmentEntry)> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err(invalid("segment", "a segment needs at least one record"));
    };
    if records.windows(2).any(|w| w[1].offset != w[0].offset + 1) {
        return Err(invalid("segment", "offsets are not contiguous"));
    }
    let schema = schema();
    let mut out = Vec::new();
    // Rows of the biggest row group: the byte target over the smallest record,
    // bounded by the segment.
    let smallest = records
        .iter()
        .map(|r| r.body.len() + 64)
        .min()
        .unwrap_or(64);
    let expected_rows = (row_group_bytes / smallest + 1).min(records.len()) as u64;
    let mut writer = ArrowWriter::try_new(
        &mut out,
        schema.clone(),
        Some(writer_properties(expected_rows)?),
    )
    .map_err(|e| invalid("segment", e))?;
    for chunk in records.chunks(WRITE_CHUNK_ROWS) {
        writer
            .write(&records_to_batch(&schema, chunk)?)
            .map_err(|e| invalid("segment", e))?;
        if writer.in_progress_size() >= row_group_bytes {
            writer.flush().map_err(|e| invalid("segment", e))?;
        }
    }
    writer.close().map_err(|e| invalid("segment", e))?;
    let entry = SegmentEntry {
        base_offset: first.offset,
        end_offset: last.offset + 1,
        min_store_ms: records
            .iter()
            .map(|r| r.store_ms)
            .min()
            .unwrap_or(first.store_ms),
        max_store_ms: records
            .iter()
            .map(|r| r.store_ms)
            .max()
            .unwrap_or(last.store_ms),
        rows: records.len() as u64,
        bytes: out.len() as u64,
        staged_epoch: None,
    };
    Ok((Bytes::from(out), entry))
}

/// Where a row group sits in the queue, from its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupInfo {
    pub first_offset: u64,
    pub rows: u64,
    /// Newest `store_ms` in the group (for seeks by time).
    pub max_store_ms: i64,
}

/// A cold segment's footer, parsed once and cached by the reader.
#[derive(Debug, Clone)]
pub struct SegmentFooter {
    pub meta: ArrowReaderMetadata,
    pub row_groups: Vec<RowGroupInfo>,
}

impl SegmentFooter {
    /// Index of the row group holding `offset`, if any.
    pub fn row_group_of(&self, offset: u64) -> Option<usize> {
        let i = self
            .row_groups
            .partition_point(|g| g.first_offset <= offset)
            .checked_sub(1)?;
        let g = &self.row_groups[i];
        (offset < g.first_offset + g.rows).then_some(i)
    }

    /// Index of the first row group holding a message with `store_ms >= ts`, if any.
    pub fn first_row_group_at_or_after(&self, ts: i64) -> Option<usize> {
        let i = self.row_groups.partition_point(|g| g.max_store_ms < ts);
        (i < self.row_groups.len()).then_some(i)
    }

    /// Bytes this footer roughly takes in memory (cache weight).
    pub fn weight(&self) -> usize {
        self.meta.metadata().memory_size()
    }
}

fn int64_min(stats: Option<&Statistics>) -> Option<i64> {
    match stats? {
        Statistics::Int64(s) => s.min_opt().copied(),
        _ => None,
    }
}

fn int64_max(stats: Option<&Statistics>) -> Option<i64> {
    match stats? {
        Statistics::Int64(s) => s.max_opt().copied(),
        _ => None,
    }
}

/// Reads and parses the footer of the segment object at `path` (`size` bytes long).
pub async fn read_footer(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
) -> Result<SegmentFooter> {
    let mut reader = ParquetObjectReader::new(store, path.clone()).with_file_size(size);
    let meta = ArrowReaderMetadata::load_async(
        &mut reader,
        ArrowReaderOptions::new().with_page_index(false),
    )
    .await
    .map_err(|e| invalid(path, e))?;
    let mut row_groups = Vec::new();
    for rg in meta.metadata().row_groups() {
        let no_stats = || invalid(path, "row group without offset/store_ms statistics");
        let first = int64_min(rg.column(0).statistics()).ok_or_else(no_stats)?;
        let max_store_ms = int64_max(rg.column(1).statistics()).ok_or_else(no_stats)?;
        row_groups.push(RowGroupInfo {
            first_offset: first as u64,
            rows: rg.num_rows() as u64,
            max_store_ms,
        });
    }
    Ok(SegmentFooter { meta, row_groups })
}

/// Indexes of the row groups whose `keys` bloom filter may contain `key`
/// (one small read per row group; a group without a filter is a candidate).
pub async fn row_groups_maybe_with_key(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
    footer: &SegmentFooter,
    key: &str,
) -> Result<Vec<usize>> {
    let keys_column = footer
        .meta
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == "keys.list.element")
        .ok_or_else(|| invalid(path, "no keys column"))?;
    let reader = ParquetObjectReader::new(store, path.clone()).with_file_size(size);
    let mut builder =
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.meta.clone());
    let mut out = Vec::new();
    for rg in 0..footer.row_groups.len() {
        let filter = builder
            .get_row_group_column_bloom_filter(rg, keys_column)
            .await
            .map_err(|e| invalid(path, e))?;
        if filter.is_none_or(|f| f.check(&key)) {
            out.push(rg);
        }
    }
    Ok(out)
}

/// Reads up to `max_rows` records from `from_offset` on, fetching only the row
/// groups that hold them (one ranged GET each, decoded as [`read_row_group`]).
pub async fn read_range(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    footer: &SegmentFooter,
    from_offset: u64,
    max_rows: usize,
) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (index, g) in footer.row_groups.iter().enumerate() {
        if out.len() >= max_rows {
            break;
        }
        if g.first_offset + g.rows <= from_offset {
            continue;
        }
        let rows = read_row_group(store.clone(), path, footer, index).await?;
        let left = max_rows - out.len();
        out.extend(
            rows.into_iter()
                .filter(|r| r.offset >= from_offset)
                .take(left),
        );
    }
    Ok(out)
}

/// Every record of row group `index`: one ranged GET of the group's byte span,
/// decoded on a blocking thread so that decompression never stalls the
/// async workers serving requests.
pub async fn read_row_group(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    footer: &SegmentFooter,
    index: usize,
) -> Result<Vec<Record>> {
    let span = fetch_row_groups(store.as_ref(), path, footer, index..index + 1).await?;
    decode_row_group(span, footer, path, index).await
}

/// The bytes of row groups `groups` (adjacent in the object), in one ranged GET.
pub async fn fetch_row_groups(
    store: &dyn ObjectStore,
    path: &Path,
    footer: &SegmentFooter,
    groups: std::ops::Range<usize>,
) -> Result<FetchedSpan> {
    let meta = footer.meta.metadata();
    let mut spans = Vec::new();
    for index in groups {
        let group = meta
            .row_groups()
            .get(index)
            .ok_or_else(|| invalid(path, format!("no row group {index}")))?;
        spans.extend(group.columns().iter().map(|c| c.byte_range()));
    }
    let start = spans.iter().map(|&(s, _)| s).min().unwrap_or(0);
    let end = spans.iter().map(|&(s, len)| s + len).max().unwrap_or(0);
    let data = store
        .get_range(path, start..end)
        .await
        .map_err(|e| TieringError::store(path.to_string(), e))?;
    Ok(FetchedSpan { start, data })
}

/// Decodes row group `index` out of `span` (which must hold it) on a
/// blocking thread.
pub async fn decode_row_group(
    span: FetchedSpan,
    footer: &SegmentFooter,
    path: &Path,
    index: usize,
) -> Result<Vec<Record>> {
    let (meta, path) = (footer.meta.clone(), path.clone());
    tokio::task::spawn_blocking(move || {
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(span, meta)
            .with_row_groups(vec![index])
            .with_batch_size(8192)
            .build()
            .map_err(|e| invalid(&path, e))?;
        let mut out = Vec::new();
        for batch in reader {
            from_batch(&batch.map_err(|e| invalid(&path, e))?, &path, &mut out)?;
        }
        Ok(out)
    })
    .await
    .map_err(|e| invalid("decoding a row group", e))?
}

/// Bytes of some row groups, fetched from the object: a [`ChunkReader`]
/// that answers for that span only (the footer is already parsed). Cheap to
/// clone (the bytes are shared).
#[derive(Debug, Clone)]
pub struct FetchedSpan {
    start: u64,
    data: Bytes,
}

impl FetchedSpan {
    fn slice(&self, start: u64, len: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .map(|f| f as usize)
            .filter(|f| f.saturating_add(len) <= self.data.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}+{len} are outside the fetched row group"
                ))
            })?;
        Ok(self.data.slice(from..from + len))
    }
}

impl Length for FetchedSpan {
    fn len(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

impl ChunkReader for FetchedSpan {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = self.len().saturating_sub(start) as usize;
        Ok(self.slice(start, rest)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length)
    }
}

/// Converts rows back into records (any Parquet writer's output with our schema).
pub fn from_batch(batch: &RecordBatch, path: &Path, out: &mut Vec<Record>) -> Result<()> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| invalid(path, format!("missing column {name}")))
    };
    let offset = col("offset")?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| invalid(path, "offset is not INT64"))?;
    let store_ms = col("store_ms")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| invalid(path, "store_ms is not TIMESTAMP(MILLIS)"))?;
    let born_ms = col("born_ms")?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| invalid(path, "born_ms is not INT64"))?;
    let message_id = col("message_id")?
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(path, "message_id is not STRING"))?;
    let tag = col("tag")?
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(path, "tag is not STRING"))?;
    let keys = col("keys")?
        .as_list_opt::<i32>()
        .ok_or_else(|| invalid(path, "keys is not LIST"))?;
    let group = col("message_group")?
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(path, "message_group is not STRING"))?;
    let props = col("properties")?
        .as_map_opt()
        .ok_or_else(|| invalid(path, "properties is not MAP"))?;
    let body = col("body")?
        .as_binary_opt::<i32>()
        .ok_or_else(|| invalid(path, "body is not BINARY"))?;
    let deliver = batch
        .column_by_name("deliver_at_ms")
        .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
    // Lists and maps are walked through their offsets into the child arrays
    // (slicing a child array per row costs more than the row itself).
    let key_offsets = keys.value_offsets();
    let key_values = keys
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(path, "keys are not strings"))?;
    let prop_offsets = props.value_offsets();
    let (pk, pv) = (
        props
            .keys()
            .as_string_opt::<i32>()
            .ok_or_else(|| invalid(path, "property names are not strings"))?,
        props
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| invalid(path, "property values are not strings"))?,
    );
    // Bodies share the decoded buffer instead of being copied one by one.
    let bodies = Bytes::from_owner(ArrowBytes(body.values().clone()));
    let body_offsets = body.value_offsets();
    let range = |offsets: &[i32], i: usize| offsets[i] as usize..offsets[i + 1] as usize;
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        let id: MessageId = message_id.value(i).parse().map_err(|e| invalid(path, e))?;
        let mut properties: Vec<(String, String)> = range(prop_offsets, i)
            .map(|j| (pk.value(j).to_string(), pv.value(j).to_string()))
            .collect();
        dedup_properties(&mut properties);
        out.push(Record {
            offset: offset.value(i) as u64,
            store_ms: store_ms.value(i),
            born_ms: born_ms.value(i),
            deliver_at_ms: deliver
                .as_ref()
                .and_then(|d| d.is_valid(i).then(|| d.value(i))),
            message_id: id,
            tag: tag.is_valid(i).then(|| tag.value(i).to_string()),
            keys: range(key_offsets, i)
                .map(|j| key_values.value(j).to_string())
                .collect(),
            properties,
            message_group: group.is_valid(i).then(|| group.value(i).to_string()),
            body: if body.is_valid(i) {
                bodies.slice(range(body_offsets, i))
            } else {
                Bytes::new()
            },
        });
    }
    Ok(())
}

/// An Arrow buffer seen as bytes, so that record bodies can point into it.
struct ArrowBytes(arrow_buffer::Buffer);

impl AsRef<[u8]> for ArrowBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Keeps the first value of a repeated property name (a foreign writer could repeat one).
fn dedup_properties(props: &mut Vec<(String, String)>) {
    if props.len() < 2 {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(props.len());
        props.iter().map(|(k, _)| seen.insert(k.as_str())).collect()
    };
    let mut keep = keep.into_iter();
    props.retain(|_| keep.next().unwrap_or(true));
}
