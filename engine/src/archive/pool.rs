//! Threads writing an upload's regular files (`PUT /archive`, `cp SRC C:DEST`).
//!
//! Creating a file is where extraction spends its time (the filesystem's inode
//! allocation, not the data), and it overlaps well across threads. The extracting
//! thread reads the tar, resolves each file's parent (`openat2(RESOLVE_IN_ROOT)`) and
//! hands the file over with its data in memory; a writer makes it with one
//! `openat(parent, name, O_CREAT | O_EXCL | O_NOFOLLOW)`, exactly as the extracting
//! thread would, and sets its owner, mode, attributes and times on the open fd.
//! The extracting thread waits for every handed-over file ([`Pool::drain`]) before
//! an entry that could change what a pending name means (a link, a removal, the
//! same name again), so the tar's order is kept where it matters.
//!
//! The writers are spawned by the extracting thread, so they share its private
//! mount namespace and its umask (`CLONE_FS`); they touch files through the fds
//! they are given only, and all of them are joined before the view is torn down.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::fsutil::{check, open_at};
use super::ArchiveError;

/// Files up to this size go to the pool with their data in memory; larger ones are
/// written by the extracting thread as they stream.
pub const MAX_FILE: u64 = 2 << 20;

/// Writer threads: creation is mostly kernel time waiting on inode tables, which
/// overlaps even on a machine with few cores.
const THREADS: usize = 4;

/// Files queued beyond those being written (at most `MAX_FILE` each).
const QUEUE: usize = 16;

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

#[derive(Default)]
struct State {
    in_flight: usize,
    error: Option<ArchiveError>,
}

pub struct Pool {
    tx: Option<SyncSender<FileJob>>,
    state: Arc<(Mutex<State>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
    /// Names handed over since the last drain.
    names: HashSet<PathBuf>,
}

impl Pool {
    pub fn start() -> Pool {
        let (tx, rx) = sync_channel::<FileJob>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let threads = (0..THREADS)
            .filter_map(|i| {
                let rx = rx.clone();
                let state = state.clone();
                std::thread::Builder::new()
                    .name(format!("cp-in-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let r = write(&job);
                        let (m, cv) = &*state;
                        let Ok(mut s) = m.lock() else { return };
                        s.in_flight -= 1;
                        if let Err(e) = r {
                            s.error.get_or_insert(e);
                        }
                        cv.notify_all();
                    })
                    .ok()
            })
            .collect();
        Pool {
            tx: Some(tx),
            state,
            threads,
            names: HashSet::new(),
        }
    }

    /// Whether a file of this name (under the target) was handed over since the
    /// last drain.
    pub fn pending(&self, rel: &std::path::Path) -> bool {
        self.names.contains(rel)
    }

    /// Hands a file over; the first error of a writer, if one failed meanwhile.
    pub fn submit(&mut self, job: FileJob) -> Result<(), ArchiveError> {
        let gone = || ArchiveError::Internal("the file writers are gone".into());
        let Some(tx) = self.tx.as_ref().filter(|_| !self.threads.is_empty()) else {
            // No thread could be started: write it here.
            return write(&job);
        };
        {
            let (m, _) = &*self.state;
            let mut s = m.lock().map_err(|_| gone())?;
            if let Some(e) = s.error.take() {
                return Err(e);
            }
            s.in_flight += 1;
        }
        self.names.insert(job.rel.clone());
        if tx.send(job).is_err() {
            return Err(gone());
        }
        Ok(())
    }

    /// Waits until every file handed over is written; the first writer's error.
    pub fn drain(&mut self) -> Result<(), ArchiveError> {
        self.names.clear();
        let gone = || ArchiveError::Internal("a file writer failed".into());
        let (m, cv) = &*self.state;
        let mut s = m.lock().map_err(|_| gone())?;
        while s.in_flight > 0 {
            s = cv.wait(s).map_err(|_| gone())?;
        }
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the channel ends each writer once the queue is empty; joining
        // them here means no writer outlives the extraction (nor the view).
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
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
