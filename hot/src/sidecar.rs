//! An append-only sidecar file of fixed-size entries (the `.index` and
//! `.keys` files of a segment).
//!
//! Invariant: the file always holds a header plus whole entries. It is
//! created by a crash-safe replace; an append that fails is cut back to the
//! last whole entry, so a later append never lands misaligned.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct SidecarFile {
    file: File,
    path: PathBuf,
    len: u64,
    synced_len: u64,
}

impl SidecarFile {
    /// Replaces the file at `path` with `image` (crash-safe) and opens it for appending.
    pub(crate) fn rewrite(path: &Path, image: &[u8]) -> std::io::Result<Self> {
        crate::durable_file::write_atomic(path, image)?;
        let file = OpenOptions::new().append(true).open(path)?;
        let len = image.len() as u64;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
            synced_len: len,
        })
    }

    /// Appends whole entries; all or nothing.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// A handle to fsync if entries were added since the last call (for group commit).
    pub(crate) fn take_unsynced(&mut self) -> Option<File> {
        if self.len == self.synced_len {
            return None;
        }
        self.synced_len = self.len;
        self.file.try_clone().ok()
    }

    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Another handle to the file (to fsync it without `&mut`).
    pub(crate) fn handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
