//! Small crash-safety helpers over the file system.
//!
//! - [`fsync_dir`] makes a create/rename/unlink in a directory durable.
//! - [`allocate`] reserves real blocks (not a sparse hole) so that later
//!   writes through a memory map can never fault on a full disk: the
//!   "disk full" moment is always an error returned here, before any byte of
//!   a record is written.
//!
//! The crash-safe replace of a whole file is [`crate::durable_file::write_atomic`].

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// fsyncs a directory so that entries created, renamed or removed in it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes sure `file` has real blocks for bytes `[0, len)`, growing its size to `len`.
pub(crate) fn allocate(file: &File, current: u64, len: u64) -> std::io::Result<()> {
    if len <= current {
        return Ok(());
    }
    // SAFETY: plain syscall on a valid, open descriptor; no memory is passed.
    let rc = unsafe {
        libc::posix_fallocate(
            file.as_raw_fd(),
            current as libc::off_t,
            (len - current) as libc::off_t,
        )
    };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => {
            // File systems without fallocate: write zeros, which also reserves blocks.
            write_zeros(file, current, len)
        }
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}
