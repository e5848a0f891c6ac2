//! The node's stable identity.
//!
//! A node is known to the cluster (heartbeats, queue leases) by its id, so the
//! id must survive restarts. It is either given (`--node-id`) or generated once
//! as `node-<12 hex digits>`; either way it is kept in `{data_dir}/node-id`
//! (one line). The file is written crash-safely: a temporary file is written
//! and fsynced, renamed over `node-id`, and the directory is fsynced, so a
//! crash leaves either the old id or the new one, never a torn file.
//!
//! A given id wins over the file (and replaces it, with a warning when it
//! differs), so dropping the flag later keeps the id the node last ran with.
//! A file whose content is not a valid id is an error, not a reason to pick a
//! new identity silently.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Name of the file under the data directory that keeps the node id.
pub const NODE_ID_FILE: &str = "node-id";

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
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = text.trim();
    check_node_id(id).map_err(|reason| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {reason}; fix or delete the file", path.display()),
        )
    })?;
    Ok(Some(id.to_string()))
}

/// Writes `{dir}/{name}` so that a crash leaves the old content or the new one.
fn write_atomically(dir: &Path, name: &str, content: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), None).unwrap();
        assert!(first.starts_with("node-") && first.len() == 17, "{first}");
        check_node_id(&first).unwrap();
        assert_eq!(resolve(dir.path(), None).unwrap(), first);
        assert_eq!(
            fs::read_to_string(dir.path().join(NODE_ID_FILE)).unwrap(),
            format!("{first}\n")
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
