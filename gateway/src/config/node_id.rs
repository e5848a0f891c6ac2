//! The node's stable identity.
//!
//! A node is known to the cluster (heartbeats, queue leases) by its id, so the
//! id must survive restarts. It is either given (`--node-id`) or generated once
//! as `node-<12 hex digits>`; either way it is kept in `{data_dir}/node-id`.
//! The file is a [`shale_hot::durable_file`] frame (magic `SHNI`, version 1,
//! payload the id in UTF-8) written crash-safely (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves either the old id or the
//! new one, and a damaged file is an error rather than a different id. A file
//! written before the frame existed (the id on one line) is still read; it is
//! framed the next time the id is written.
//!
//! A given id wins over the file (and replaces it, with a warning when it
//! differs), so dropping the flag later keeps the id the node last ran with.
//! A file whose content is not a valid id is an error, not a reason to pick a
//! new identity silently.

use std::io;
use std::path::Path;

use shale_hot::durable_file::{self, LEGACY_VERSION};

/// Name of the file under the data directory that keeps the node id.
pub const NODE_ID_FILE: &str = "node-id";

/// Magic of the node-id file's frame.
pub const NODE_ID_MAGIC: [u8; 4] = *b"SHNI";

/// Format version of the node-id file's payload.
const NODE_ID_VERSION: u16 = 1;

/// Longest node id accepted (ids appear in object-store keys).
pub const MAX_NODE_ID_LEN: usize = 64;

/// Checks `id` is 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_node_id(id: &str) -> Result<(), String> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let starts_well = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if id.len() > MAX_NODE_ID_LEN || !valid_chars || !starts_well {
        return Err(format!(
            "`{id}` is not a node id (1-{MAX_NODE_ID_LEN} characters of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
        ));
    }
    Ok(())
}

/// The id this node runs with: `explicit` if given, else the one kept in
/// `data_dir`, else a new one. The result is kept in `{data_dir}/node-id`.
/// `data_dir` must exist.
pub fn resolve(data_dir: &Path, explicit: Option<&str>) -> io::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    let kept = read_kept(&path)?;
    match (explicit, kept) {
        (Some(id), Some(kept)) if id == kept => Ok(kept),
        (Some(id), kept) => {
            if let Some(kept) = kept {
                tracing::warn!(previous = %kept, new = %id, "node id changed by --node-id / SHALE_NODE_ID / node_id");
            }
            write_atomically(data_dir, NODE_ID_FILE, id)?;
            Ok(id.to_string())
        }
        (None, Some(kept)) => Ok(kept),
        (None, None) => {
            let id = generate();
            write_atomically(data_dir, NODE_ID_FILE, &id)?;
            tracing::info!(node_id = %id, path = %path.display(), "generated a new node id");
            Ok(id)
        }
    }
}

/// A new random id: `node-` and 12 hex digits (48 random bits).
pub fn generate() -> String {
    format!("node-{}", hex::encode(rand::random::<[u8; 6]>()))
}

fn read_kept(path: &Path) -> io::Result<Option<String>> {
    let Some((version, payload)) = durable_file::read_framed(path, NODE_ID_MAGIC)? else {
        return Ok(None);
    };
    let invalid = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {reason}; fix or delete the file", path.display()),
        )
    };
    let text = match version {
        // Before the frame: the id on one line.
        LEGACY_VERSION | NODE_ID_VERSION => {
            String::from_utf8(payload).map_err(|_| invalid("the node id is not UTF-8".into()))?
        }
        other => return Err(invalid(format!("unknown node-id format version {other}"))),
    };
    let id = if version == LEGACY_VERSION {
        text.trim()
    } else {
        text.as_str()
    };
    check_node_id(id).map_err(invalid)?;
    Ok(Some(id.to_string()))
}

/// Keeps `id` in `{dir}/{name}`, framed, so that a crash leaves the old id or the new one.
fn write_atomically(dir: &Path, name: &str, id: &str) -> io::Result<()> {
    durable_file::write_framed(
        &dir.join(name),
        NODE_ID_MAGIC,
        NODE_ID_VERSION,
        id.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), None).unwrap();
        assert!(first.starts_with("node-") && first.len() == 17, "{first}");
        check_node_id(&first).unwrap();
        assert_eq!(resolve(dir.path(), None).unwrap(), first);
        let path = dir.path().join(NODE_ID_FILE);
        assert_eq!(
            durable_file::read_framed(&path, NODE_ID_MAGIC).unwrap(),
            Some((NODE_ID_VERSION, first.clone().into_bytes()))
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [NODE_ID_FILE]);
    }

    #[test]
    fn explicit_id_wins_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let generated = resolve(dir.path(), None).unwrap();
        assert_eq!(resolve(dir.path(), Some("gateway-a")).unwrap(), "gateway-a");
        assert_ne!(generated, "gateway-a");
        // Dropping the flag keeps the id the node last ran with.
        assert_eq!(resolve(dir.path(), None).unwrap(), "gateway-a");
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NODE_ID_FILE), "not a valid id!\n").unwrap();
        let err = resolve(dir.path(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("fix or delete"), "{err}");
    }

    #[test]
    fn file_bytes_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        resolve(dir.path(), Some("n-1")).unwrap();
        let expected: [u8; 17] = [
            b'S', b'H', b'N', b'I', // magic
            0x01, 0x00, // version 1
            0x03, 0x00, 0x00, 0x00, // 3 payload bytes
            0x0f, 0x6b, 0x20, 0x45, // CRC32C of 01 00 03 00 00 00 "n-1"
            b'n', b'-', b'1',
        ];
        assert_eq!(fs::read(dir.path().join(NODE_ID_FILE)).unwrap(), expected);
    }

    #[test]
    fn a_legacy_one_line_file_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NODE_ID_FILE);
        fs::write(&path, "node-0123456789ab\n").unwrap();
        assert_eq!(resolve(dir.path(), None).unwrap(), "node-0123456789ab");
        assert_eq!(
            resolve(dir.path(), Some("node-0123456789ab")).unwrap(),
            "node-0123456789ab"
        );
        // Reading leaves it as it was (an older binary can still read it)...
        assert_eq!(fs::read(&path).unwrap(), b"node-0123456789ab\n");
        // ...and a new id is written framed.
        assert_eq!(resolve(dir.path(), Some("other")).unwrap(), "other");
        assert_eq!(
            durable_file::read_framed(&path, NODE_ID_MAGIC).unwrap(),
            Some((NODE_ID_VERSION, b"other".to_vec()))
        );
        assert_eq!(resolve(dir.path(), None).unwrap(), "other");
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), None).unwrap();
        let path = dir.path().join(NODE_ID_FILE);
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = resolve(dir.path(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "the damaged file is kept for a look"
        );
        assert!(!first.is_empty());
    }

    #[test]
    fn id_syntax() {
        for id in ["n", "node-0123456789ab", "a.b_c-d", &"x".repeat(64)] {
            check_node_id(id).unwrap();
        }
        for id in [
            "",
            "-leading",
            ".hidden",
            "has space",
            "slash/y",
            &"x".repeat(65),
        ] {
            assert!(check_node_id(id).is_err(), "{id:?} should be refused");
        }
    }
}
