//! One berthd per root: an exclusive `flock` on `<root>/berthd.lock` held for the
//! daemon's lifetime. The kernel drops it when the process dies, even on `kill -9`,
//! so a crashed daemon never blocks its successor.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Errors taking the root lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another berthd (pid {pid}) is already running on root {root}; stop it or use another --root")]
    Held { root: PathBuf, pid: String },
    #[error("locking root {root}: {source}")]
    Io {
        root: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the daemon runs; the lock is released when this is dropped.
#[derive(Debug)]
pub struct RootLock {
    _file: File,
}

impl RootLock {
    /// Takes the lock on `root` (which must exist) and records our pid in it.
    pub fn acquire(root: &Path) -> Result<RootLock, LockError> {
        let io = |source| LockError::Io {
            root: root.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join("berthd.lock"))
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(LockError::Held {
                    root: root.to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RootLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_the_same_root_is_refused_until_the_first_is_dropped() {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(err) => panic!("tempdir: {err}"),
        };
        let first = RootLock::acquire(dir.path());
        assert!(first.is_ok());
        // flock locks belong to the open file description, so a second open in the
        // same process conflicts just as another process would.
        let second = RootLock::acquire(dir.path());
        let msg = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("already running"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        assert!(RootLock::acquire(dir.path()).is_ok());
    }
}
