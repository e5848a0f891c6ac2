//! `shale replay --parquet-dir`: messages as Parquet files with the columns
//! of the public object-store layout (API.md), so the same queries (DuckDB,
//! pyarrow, Spark) run on a replay as on the bucket.
//!
//! Layout under the directory, as in the bucket:
//! `topics/{topic}/queues/{queue}/segments/{first_offset:020}.parquet`, rows
//! in offset order, zstd, bloom filters on `message_id` and `keys`. The
//! schema is the tier's own ([`shale_tiering::parquet_segment::schema`]).
//! A file is written as `….parquet.partial` and renamed when complete, so a
//! reader never sees a half file; a new file starts after about
//! `file_bytes` of encoded data, and at each queue's end. Memory: one row
//! group (about 1 MiB encoded) plus [`BATCH_ROWS`] messages.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use shale_client::Message;

use super::{ToolError, ToolResult};

/// Messages converted to Arrow at a time.
const BATCH_ROWS: usize = 1024;
/// Encoded bytes of a row group (as the tier's segments).
const ROW_GROUP_BYTES: usize = 1 << 20;

/// Writes the messages of one topic into Parquet files under a directory.
pub struct ParquetDir {
    dir: PathBuf,
    topic: String,
    file_bytes: u64,
    schema: SchemaRef,
    open: Option<OpenFile>,
    pending: Vec<Message>,
    /// Complete files written so far.
    pub files: Vec<PathBuf>,
}

struct OpenFile {
    queue: u32,
    partial: PathBuf,
    done: PathBuf,
    writer: ArrowWriter<File>,
}

impl std::fmt::Debug for ParquetDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetDir")
            .field("dir", &self.dir)
            .field("topic", &self.topic)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ParquetDir {
    pub fn new(dir: &Path, topic: &str, file_bytes: u64) -> Self {
        ParquetDir {
            dir: dir.to_owned(),
            topic: topic.to_string(),
            file_bytes,
            schema: shale_tiering::parquet_segment::schema(),
            open: None,
            pending: Vec::with_capacity(BATCH_ROWS),
            files: Vec::new(),
        }
    }

    /// Adds a message (messages of one queue come in offset order).
    pub fn write(&mut self, message: Message) -> ToolResult {
        let Some(first_offset) = message.offset else {
            return Err(ToolError::Failed(format!(
                "message {} has no offset",
                message.message_id
            )));
        };
        if self.open.as_ref().is_some_and(|f| f.queue != message.queue) {
            self.finish_file()?;
        }
        if self.open.is_none() {
            self.open = Some(self.create(message.queue, first_offset)?);
        }
        self.pending.push(message);
        if self.pending.len() >= BATCH_ROWS {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Closes the file being written (end of a queue, or of the replay).
    pub fn finish_file(&mut self) -> ToolResult {
        self.flush_pending()?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        open.writer
            .close()
            .map_err(|e| parquet_error(&open.partial, e))?;
        std::fs::rename(&open.partial, &open.done)
            .map_err(|e| ToolError::failed(format!("renaming {}", open.partial.display()), e))?;
        self.files.push(open.done);
        Ok(())
    }

    fn create(&self, queue: u32, first_offset: u64) -> ToolResult<OpenFile> {
        let folder = self
            .dir
            .join("topics")
            .join(&self.topic)
            .join("queues")
            .join(queue.to_string())
            .join("segments");
        std::fs::create_dir_all(&folder)
            .map_err(|e| ToolError::failed(format!("creating {}", folder.display()), e))?;
        let done = folder.join(format!("{first_offset:020}.parquet"));
        let partial = folder.join(format!("{first_offset:020}.parquet.partial"));
        let file = File::create(&partial)
            .map_err(|e| ToolError::failed(format!("creating {}", partial.display()), e))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(properties()?))
            .map_err(|e| parquet_error(&partial, e))?;
        Ok(OpenFile {
            queue,
            partial,
            done,
            writer,
        })
    }

    fn flush_pending(&mut self) -> ToolResult {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.schema, &self.pending)?;
        self.pending.clear();
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        open.writer
            .write(&batch)
            .map_err(|e| parquet_error(&open.partial, e))?;
        if open.writer.in_progress_size() >= ROW_GROUP_BYTES {
            open.writer
                .flush()
                .map_err(|e| parquet_error(&open.partial, e))?;
        }
        let written = open.writer.bytes_written() + open.writer.in_progress_size();
        if written as u64 >= self.file_bytes {
            self.finish_file()?;
        }
        Ok(())
    }
}

fn parquet_error(path: &Path, error: impl std::fmt::Display) -> ToolError {
    ToolError::failed(format!("writing {}", path.display()), error)
}

/// zstd, chunk statistics, bloom filters on `message_id` and `keys` (the tier's settings).
fn properties() -> ToolResult<WriterProperties> {
    let zstd = ZstdLevel::try_new(3).map_err(|e| ToolError::failed("zstd level", e))?;
    let keys = ColumnPath::new(vec!["keys".into(), "list".into(), "element".into()]);
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_size(usize::MAX)
        .set_column_bloom_filter_enabled(ColumnPath::from("message_id"), true)
        .set_column_bloom_filter_ndv(ColumnPath::from("message_id"), 16_384)
        .set_column_bloom_filter_enabled(keys.clone(), true)
        .set_column_bloom_filter_ndv(keys, 32_768)
        .build())
}

fn to_batch(schema: &SchemaRef, messages: &[Message]) -> ToolResult<RecordBatch> {
    let n = messages.len();
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
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut properties = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
        .with_values_field(Field::new("value", DataType::Utf8, false));
    let mut body = BinaryBuilder::new();
    let mut deliver_at = Int64Builder::with_capacity(n);
    for m in messages {
        let bytes = m.body_bytes().ok_or_else(|| {
            ToolError::Failed(format!(
                "message {} has a body_base64 that is not base64",
                m.message_id
            ))
        })?;
        offset.append_value(m.offset.unwrap_or_default() as i64);
        store_ms.append_value(m.store_ms.unwrap_or_default());
        born_ms.append_value(m.born_ms);
        message_id.append_value(&m.message_id);
        tag.append_option(m.tag.as_deref());
        for key in &m.keys {
            keys.values().append_value(key);
        }
        keys.append(true);
        group.append_option(m.message_group.as_deref());
        for (name, value) in &m.properties {
            properties.keys().append_value(name);
            properties.values().append_value(value);
        }
        properties
            .append(true)
            .map_err(|e| ToolError::failed("building properties", e))?;
        body.append_value(&bytes);
        deliver_at.append_option(m.deliver_at_ms);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(offset.finish()),
        Arc::new(store_ms.finish()),
        Arc::new(born_ms.finish()),
        Arc::new(message_id.finish()),
        Arc::new(tag.finish()),
        Arc::new(keys.finish()),
        Arc::new(group.finish()),
        Arc::new(properties.finish()),
        Arc::new(body.finish()),
        Arc::new(deliver_at.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ToolError::failed("building a Parquet batch", e))
}
