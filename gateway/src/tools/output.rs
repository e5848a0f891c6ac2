//! What the subcommands print: aligned tables for people, JSON for scripts,
//! and messages as one line of text or one NDJSON line.
//!
//! Tables are plain columns separated by two spaces (no borders, so `awk`
//! and `cut` still work); the last column is not padded. Times are RFC 3339
//! in UTC, sizes in binary units.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use shale_client::Message;

use super::{ToolError, ToolResult};

/// The tail of the error message of a write to a closed pipe; [`super::run`]
/// ends quietly with status 0 on it.
pub const BROKEN_PIPE: &str = "(broken pipe)";

/// Turns an I/O error of writing to stdout into a [`ToolError`].
pub fn write_error(error: std::io::Error) -> ToolError {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return ToolError::Failed(format!("stdout closed {BROKEN_PIPE}"));
    }
    ToolError::failed("writing to stdout", error)
}

/// A table of text cells.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, header first.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i == last {
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> ToolResult {
        print_text(&self.render())
    }
}

/// Writes `text` to stdout.
pub fn print_text(text: &str) -> ToolResult {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).map_err(write_error)?;
    stdout.flush().map_err(write_error)
}

/// Writes `value` as one line of JSON to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> ToolResult {
    let mut line =
        serde_json::to_string(value).map_err(|e| ToolError::failed("encoding JSON", e))?;
    line.push('\n');
    print_text(&line)
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`-` when 0 or negative).
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

/// A duration of milliseconds as `3d`, `1h 30m`, `250ms`.
pub fn duration(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Bytes in binary units (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `-` for an empty cell.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "-".into(),
    }
}

/// A message as one line: `QUEUE:OFFSET TAG KEYS BODY`; newlines in the body
/// are written `\n`, a body that is not UTF-8 as `base64:…`.
pub fn message_line(message: &Message) -> String {
    let body = match (&message.body, &message.body_base64) {
        (Some(text), _) => text
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r"),
        (None, Some(b64)) => format!("base64:{b64}"),
        (None, None) => String::new(),
    };
    format!(
        "{}:{}  {}  {}  {}\n",
        message.queue,
        message
            .offset
            .map_or_else(|| "-".to_string(), |o| o.to_string()),
        or_dash(message.tag.as_deref()),
        or_dash(Some(&message.keys.join(","))),
        body
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_all_but_the_last_column() {
        let mut table = Table::new(&["NAME", "QUEUES", "TYPE"]);
        table.row(vec!["orders".into(), "8".into(), "NORMAL".into()]);
        table.row(vec!["a".into(), "1024".into(), "FIFO".into()]);
        assert_eq!(
            table.render(),
            "NAME    QUEUES  TYPE\norders  8       NORMAL\na       1024    FIFO\n"
        );
    }

    #[test]
    fn units() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(259_200_000), "3days");
        assert_eq!(time(0), "-");
        assert_eq!(time(1_790_000_000_123), "2026-09-21T14:13:20.123Z");
    }

    #[test]
    fn messages_print_on_one_line() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "message_id": "m", "topic": "t", "queue": 2, "offset": 7, "tag": "created",
            "keys": ["a", "b"], "properties": {}, "born_ms": 1, "store_ms": 2,
            "body": "two\nlines"
        }))
        .unwrap();
        assert_eq!(message_line(&message), "2:7  created  a,b  two\\nlines\n");
    }
}
