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

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use shale_client::Message;
use shale_hot::{MessageId, Record};
use shale_tiering::parquet_segment::{records_to_batch, writer_properties};

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
    pending: Vec<Record>,
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
        self.pending.push(to_record(&message)?);
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
        // Bloom filters sized for a row group of about 1 MiB of small messages.
        let properties = writer_properties(16_384)
            .map_err(|e| ToolError::failed("Parquet writer settings", e))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(properties))
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
        let batch = records_to_batch(&self.schema, &self.pending)
            .map_err(|e| ToolError::failed("building a Parquet batch", e))?;
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

/// A replayed message as the tier's record, so its row is built by the
/// tier's own code ([`shale_tiering::parquet_segment::records_to_batch`]).
fn to_record(m: &Message) -> ToolResult<Record> {
    let body = m.body_bytes().ok_or_else(|| {
        ToolError::Failed(format!(
            "message {} has a body_base64 that is not base64",
            m.message_id
        ))
    })?;
    let message_id: MessageId = m
        .message_id
        .parse()
        .map_err(|e| ToolError::failed(format!("message id {}", m.message_id), e))?;
    Ok(Record {
        offset: m.offset.unwrap_or_default(),
        store_ms: m.store_ms.unwrap_or_default(),
        born_ms: m.born_ms,
        deliver_at_ms: m.deliver_at_ms,
        message_id,
        tag: m.tag.clone(),
        keys: m.keys.clone(),
        properties: m
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        message_group: m.message_group.clone(),
        body: body.into(),
    })
}
