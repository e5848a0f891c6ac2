//! Durable small files: one crash-safe replace, and one framed format for
//! the small pieces of state a node persists (its id, topic and group
//! metadata), so that each such file has a magic, a version and a checksum.
//!
//! [`write_atomic`] replaces a file so that a crash leaves the old contents or
//! the new, never a mix: it writes `{file_name}.tmp` next to the target,
//! fsyncs it, renames it over the target and fsyncs the directory. One writer
//! per target at a time (the callers serialise their writes); a crash can
//! leave the `.tmp` file behind, which whoever lists the directory may delete.
//!
//! [`write_framed`] writes, through [`write_atomic`]:
//!
//! ```text
//! magic    4 bytes   chosen by the caller, one per kind of file
//! version  u16 LE    the payload's format version, 1 or more
//! len      u32 LE    payload length in bytes
//! crc      u32 LE    CRC32C of the 6 bytes of version and len, then the payload
//! payload  len bytes
//! ```
//!
//! [`read_framed`] checks all of it: a file that starts with the magic but is
//! short, longer than its length says, or fails its CRC is
//! [`DurableFileError::Corrupt`] naming the path — never an empty or partial
//! payload. A file that does *not* start with the magic is a **legacy** file,
//! written before this format existed (plain JSON or text): it is returned
//! whole as version 0 ([`LEGACY_VERSION`]), so the caller parses its old
//! format. That is why framed files never carry version 0. A legacy file gets
//! no checksum protection; it becomes framed the next time its owner writes it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fs_util::fsync_dir;

/// The version [`read_framed`] reports for a legacy file without a frame.
pub const LEGACY_VERSION: u16 = 0;

/// Bytes before the payload: magic, version, length, CRC.
pub const FRAME_HEADER_BYTES: usize = 4 + 2 + 4 + 4;

/// Why a durable file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DurableFileError {
    /// The file exists but could not be read.
    #[error("reading {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file carries the magic but its frame is damaged or torn.
    #[error("{} is corrupt: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl DurableFileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DurableFileError::Io { path, .. } | DurableFileError::Corrupt { path, .. } => path,
        }
    }
}

impl From<DurableFileError> for io::Error {
    /// For callers that speak `io::Result`: a corrupt frame is `InvalidData`;
    /// the message names the path either way.
    fn from(e: DurableFileError) -> Self {
        let message = match &e {
            DurableFileError::Io { source, .. } => format!("{e}: {source}"),
            DurableFileError::Corrupt { .. } => e.to_string(),
        };
        let kind = match &e {
            DurableFileError::Io { source, .. } => source.kind(),
            DurableFileError::Corrupt { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, message)
    }
}

/// Writes `bytes` to `path` crash-safely: `{file_name}.tmp`, fsync, rename
/// over `path`, fsync of the directory. On error the temporary file is removed
/// (best effort) and `path` is unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// The framed image of `payload` (see the module docs).
pub fn frame(magic: [u8; 4], version: u16, payload: &[u8]) -> io::Result<Vec<u8>> {
    if version == LEGACY_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "framed files start at version 1 (0 means a legacy file)",
        ));
    }
    let len = u32::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a framed payload of {} bytes is too large", payload.len()),
        )
    })?;
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[4..10]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Writes `payload` framed with `magic` and `version` (1 or more), crash-safely.
pub fn write_framed(path: &Path, magic: [u8; 4], version: u16, payload: &[u8]) -> io::Result<()> {
    write_atomic(path, &frame(magic, version, payload)?)
}

/// Reads a file written by [`write_framed`] with `magic`: `None` when it does
/// not exist, `(version, payload)` when its frame checks out, and
/// `(LEGACY_VERSION, whole file)` when it does not start with `magic`.
pub fn read_framed(
    path: &Path,
    magic: [u8; 4],
) -> Result<Option<(u16, Vec<u8>)>, DurableFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DurableFileError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    unframe(&bytes, magic)
        .map(Some)
        .map_err(|reason| DurableFileError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
}

/// Checks and strips the frame of a file image (see [`read_framed`]).
pub fn unframe(bytes: &[u8], magic: [u8; 4]) -> Result<(u16, Vec<u8>), String> {
    if !bytes.starts_with(&magic) {
        return Ok((LEGACY_VERSION, bytes.to_vec()));
    }
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than a frame header ({FRAME_HEADER_BYTES})",
            bytes.len()
        ));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let stored = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let payload = &bytes[FRAME_HEADER_BYTES..];
    if payload.len() != len {
        return Err(format!(
            "the frame says {len} payload bytes, the file holds {}",
            payload.len()
        ));
    }
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[4..10]), payload);
    if computed != stored {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    if version == LEGACY_VERSION {
        return Err("a frame with version 0".into());
    }
    Ok((version, payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAGIC: [u8; 4] = *b"TEST";

    #[test]
    fn frame_bytes_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_framed(&path, MAGIC, 1, b"hi").unwrap();
        let expected: [u8; 16] = [
            0x54, 0x45, 0x53, 0x54, // "TEST"
            0x01, 0x00, // version 1
            0x02, 0x00, 0x00, 0x00, // 2 payload bytes
            0x7e, 0xc1, 0x64, 0x1a, // CRC32C of 01 00 02 00 00 00 "hi"
            0x68, 0x69, // "hi"
        ];
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(
            read_framed(&path, MAGIC).unwrap(),
            Some((1, b"hi".to_vec()))
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"], "no temporary file is left behind");
    }

    #[test]
    fn missing_is_none_and_legacy_is_version_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert!(read_framed(&path, MAGIC).unwrap().is_none());
        std::fs::write(&path, b"{\"old\": true}\n").unwrap();
        assert_eq!(
            read_framed(&path, MAGIC).unwrap(),
            Some((LEGACY_VERSION, b"{\"old\": true}\n".to_vec()))
        );
        // Another kind's frame is not ours: legacy as well, for the caller to refuse.
        write_framed(&path, *b"OTHR", 1, b"x").unwrap();
        assert_eq!(
            read_framed(&path, MAGIC).unwrap().unwrap().0,
            LEGACY_VERSION
        );
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let image = frame(MAGIC, 3, b"payload").unwrap();
        // Bits of the magic make it a legacy file; every other bit is corruption.
        for bit in 4 * 8..image.len() * 8 {
            let mut damaged = image.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                unframe(&damaged, MAGIC).is_err(),
                "bit {bit} went unnoticed"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut damaged = image.clone();
        damaged[FRAME_HEADER_BYTES] ^= 0x01;
        std::fs::write(&path, &damaged).unwrap();
        let err = read_framed(&path, MAGIC).unwrap_err();
        assert!(
            matches!(&err, DurableFileError::Corrupt { path: p, reason } if p == &path && reason.contains("checksum")),
            "{err:?}"
        );
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn torn_frames_are_errors_not_empty() {
        let image = frame(MAGIC, 1, b"payload").unwrap();
        for cut in 4..image.len() {
            let err = unframe(&image[..cut], MAGIC).unwrap_err();
            assert!(
                err.contains("shorter") || err.contains("payload bytes"),
                "{cut}: {err}"
            );
        }
        let mut longer = image.clone();
        longer.push(0);
        assert!(unframe(&longer, MAGIC).is_err_and(|e| e.contains("payload bytes")));
    }

    #[test]
    fn version_0_is_not_written_and_unreadable_is_io() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let err = write_framed(&path, MAGIC, LEGACY_VERSION, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists());
        std::fs::create_dir(&path).unwrap();
        let err = read_framed(&path, MAGIC).unwrap_err();
        assert!(
            matches!(&err, DurableFileError::Io { path: p, .. } if p == &path),
            "{err:?}"
        );
    }

    #[test]
    fn a_failed_replace_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"old").unwrap();
        // The temporary name is taken by a directory: the write fails.
        std::fs::create_dir(dir.path().join("state.tmp")).unwrap();
        assert!(
            write_atomic(&path, b"new").is_err_and(|e| e.kind() == io::ErrorKind::IsADirectory)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    proptest! {
        #[test]
        fn round_trips(version in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            write_framed(&path, MAGIC, version, &payload).unwrap();
            prop_assert_eq!(read_framed(&path, MAGIC).unwrap(), Some((version, payload)));
        }
    }
}
