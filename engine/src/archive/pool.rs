//! Threads writing an upload's regular files (`PUT /archive`, `cp SRC C:DEST`):
//! `berth_snapshotter::writers` (each directory's files to one writer, a byte budget).
//!
//! The extracting thread reads the tar, resolves each file's parent
//! (`openat2(RESOLVE_IN_ROOT)`) and hands the file over with its data in memory; a
//! writer makes it with one `openat(parent, name, O_CREAT | O_EXCL | O_NOFOLLOW)`,
//! exactly as the extracting thread would, and sets its owner, mode, attributes and
//! times on the open fd. The writers are spawned by the extracting thread, so they
//! share its private mount namespace and its umask (`CLONE_FS`); they touch files
//! through the fds they are given only, and all of them are joined before the view is
//! torn down.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_snapshotter::writers::{Limits, WriteJob, Writers};

use super::fsutil::{check, open_at};
use super::ArchiveError;

/// Files up to this size go to the pool with their data in memory; larger ones are
/// written by the extracting thread as they stream.
pub const MAX_FILE: u64 = 2 << 20;

/// Writer threads: creation is mostly kernel time waiting on inode tables, which
/// overlaps even on a machine with few cores. Up to 32 MiB of file data in berthd's
/// memory per upload.
const LIMITS: Limits = Limits {
    threads: 4,
    queue: 4096,
    budget: 32 << 20,
};

pub struct FileJob {
    pub parent: Arc<OwnedFd>,
    pub name: CString,
    /// The file's path inside the container, for errors.
    pub shown: PathBuf,
    /// The entry's path under the target directory (what [`Pool::pending`] checks).
    pub rel: PathBuf,
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl WriteJob for FileJob {
    fn path(&self) -> &Path {
        &self.rel
    }

    fn bytes(&self) -> usize {
        self.data.len()
    }
}

pub type Pool = Writers<FileJob, ArchiveError>;

/// The writers of one upload, started on (and sharing the namespaces of) the
/// extracting thread.
pub fn start() -> Pool {
    Writers::start("cp-in", LIMITS, write, |m| ArchiveError::Internal(m.into()))
}

/// One file: created with `O_EXCL | O_NOFOLLOW` under its parent's fd, its data in
/// one write, then owner, mode (after the owner: chown clears set-id bits),
/// attributes (after the data: a write clears `security.capability`) and times.
pub fn write(job: &FileJob) -> Result<(), ArchiveError> {
    let err = |op, e| ArchiveError::io(op, &job.shown, e);
    let fd = open_at(
        job.parent.as_fd(),
        &job.name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )
    .map_err(|e| err("create", e))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&job.data).map_err(|e| err("write", e))?;
    finish_file(
        file.as_fd(),
        &job.shown,
        (job.uid, job.gid),
        job.mode,
        &job.xattrs,
    )?;
    let t = libc::timespec {
        tv_sec: job.mtime as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: valid fd and two timespecs. A failure leaves the time of
    // extraction, which is not an error (as for the other entries).
    unsafe { libc::futimens(file.as_raw_fd(), [t, t].as_ptr()) };
    Ok(())
}

/// Owner, mode and attributes of a file or directory just made, on its fd.
pub fn finish_file(
    fd: std::os::fd::BorrowedFd,
    shown: &std::path::Path,
    (uid, gid): (u32, u32),
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
) -> Result<(), ArchiveError> {
    // SAFETY: valid fd. Owner first: chown clears set-id bits.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
        .map_err(|e| ArchiveError::io("chown", shown, e))?;
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
        .map_err(|e| ArchiveError::io("chmod", shown, e))?;
    set_xattrs(fd, shown, xattrs)
}

/// Sets the entry's carried attributes. One the filesystem does not support is
/// skipped with a warning, as dockerd does; other failures are errors.
pub fn set_xattrs(
    fd: std::os::fd::BorrowedFd,
    shown: &std::path::Path,
    xattrs: &[(String, Vec<u8>)],
) -> Result<(), ArchiveError> {
    for (name, value) in xattrs {
        if let Err(e) = berth_snapshotter::xattrs::set_fd(fd, name, value) {
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                tracing::warn!(
                    path = %shown.display(),
                    xattr = %name,
                    "extended attribute not supported by the target filesystem: skipped"
                );
                continue;
            }
            return Err(ArchiveError::Io {
                op: "setxattr",
                path: format!("{} ({name})", shown.display()),
                source: e,
            });
        }
    }
    Ok(())
}
