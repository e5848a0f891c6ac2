//! Where `shale send` gets its messages: the body argument, all of stdin,
//! stdin line by line (`--lines`), stdin as NDJSON message objects
//! (`--ndjson`), or one message per file (`--file`).
//!
//! Stdin is read incrementally, so sending a file of millions of lines needs
//! the memory of one batch. `--lines` sends each line as it is (without its
//! `\n` or `\r\n`; empty lines are skipped). An `--ndjson` line is a message
//! object of a produce request (`body` or `body_base64`, `tag`, `keys`,
//! `properties`, `message_group`, `delay_ms`, `deliver_at_ms`, `queue`,
//! `dedup_id`); other fields are ignored, and so are properties named
//! `shale.*` (reserved: the node sets them, e.g. `shale.dedup_id`), so the
//! output of `shale replay` can be sent again.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use shale_client::ProduceMessage;

use super::{ToolError, ToolResult};

/// Prefix of the property names only the node sets.
const RESERVED: &str = "shale.";

/// A source of message bodies or objects.
#[derive(Debug)]
pub enum Input {
    /// One message, the body argument.
    Body(Option<String>),
    /// One message, all of stdin.
    Stdin(bool),
    /// One message per line of stdin.
    Lines(std::io::StdinLock<'static>, u64),
    /// One message object per line of stdin.
    Ndjson(std::io::StdinLock<'static>, u64),
    /// One message per file.
    Files(std::vec::IntoIter<PathBuf>),
}

impl Input {
    pub fn body(body: String) -> Self {
        Input::Body(Some(body))
    }

    pub fn stdin() -> Self {
        Input::Stdin(false)
    }

    pub fn lines() -> Self {
        Input::Lines(std::io::stdin().lock(), 0)
    }

    pub fn ndjson() -> Self {
        Input::Ndjson(std::io::stdin().lock(), 0)
    }

    pub fn files(files: Vec<PathBuf>) -> Self {
        Input::Files(files.into_iter())
    }

    /// The next message, None at the end (blocking read).
    pub fn next_message(&mut self) -> ToolResult<Option<ProduceMessage>> {
        match self {
            Input::Body(body) => Ok(body.take().map(ProduceMessage::text)),
            Input::Stdin(done) => {
                if *done {
                    return Ok(None);
                }
                *done = true;
                let mut body = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut body)
                    .map_err(|e| ToolError::failed("reading stdin", e))?;
                Ok(Some(ProduceMessage::bytes(body)))
            }
            Input::Lines(stdin, number) => loop {
                let Some(line) = read_line(stdin, number)? else {
                    return Ok(None);
                };
                if !line.is_empty() {
                    return Ok(Some(ProduceMessage::bytes(line)));
                }
            },
            Input::Ndjson(stdin, number) => loop {
                let Some(line) = read_line(stdin, number)? else {
                    return Ok(None);
                };
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let mut message: ProduceMessage = serde_json::from_slice(&line).map_err(|e| {
                    ToolError::usage(format!("stdin line {number}: not a message object: {e}"))
                })?;
                if message.body.is_some() && message.body_base64.is_some() {
                    return Err(ToolError::usage(format!(
                        "stdin line {number}: both body and body_base64"
                    )));
                }
                message
                    .properties
                    .retain(|name, _| !name.starts_with(RESERVED));
                return Ok(Some(message));
            },
            Input::Files(files) => {
                let Some(path) = files.next() else {
                    return Ok(None);
                };
                let body = std::fs::read(&path)
                    .map_err(|e| ToolError::failed(format!("reading {}", path.display()), e))?;
                Ok(Some(ProduceMessage::bytes(body)))
            }
        }
    }
}

/// One line without its end of line, None at the end of input.
fn read_line(stdin: &mut impl BufRead, number: &mut u64) -> ToolResult<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = stdin
        .read_until(b'\n', &mut line)
        .map_err(|e| ToolError::failed("reading stdin", e))?;
    if n == 0 {
        return Ok(None);
    }
    *number += 1;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(Some(line))
}

/// About how many bytes `message` adds to a JSON request (bodies escaped at
/// worst a little: the batch limit keeps far below the 32 MiB of a request).
pub fn estimated_bytes(message: &ProduceMessage) -> usize {
    let body = message.body.as_ref().map_or(0, |b| b.len() + b.len() / 8);
    let b64 = message.body_base64.as_ref().map_or(0, String::len);
    let keys: usize = message.keys.iter().map(|k| k.len() + 4).sum();
    let properties: usize = message
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 6)
        .sum();
    body + b64 + keys + properties + 160
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_line_ends() {
        let mut input = std::io::Cursor::new(b"a\r\nb\n\nc".to_vec());
        let mut number = 0;
        let mut lines = Vec::new();
        while let Some(line) = read_line(&mut input, &mut number).unwrap() {
            lines.push(line);
        }
        assert_eq!(
            lines,
            vec![b"a".to_vec(), b"b".to_vec(), vec![], b"c".to_vec()]
        );
        assert_eq!(number, 4);
    }
}
