//! Network namespaces pinned by a bind mount under a directory berth owns.
//!
//! [`Netns::create`] does what `ip netns add` does, under our own directory: a short-lived
//! thread unshares a new network namespace and bind-mounts its `/proc/thread-self/ns/net`
//! onto `<dir>/<id>`; the thread then exits, so no process is left holding the namespace.
//! The mount alone keeps it alive until [`Netns::remove`].

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const NSFS_MAGIC: libc::c_long = 0x6e73_6673;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "invalid network namespace id {0:?}: use a non-empty name without '/' of at most 200 bytes"
    )]
    InvalidId(String),
    #[error("network namespace {0} already exists")]
    AlreadyExists(PathBuf),
    #[error("network namespace {path}: {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    #[error("network namespace {0}: the helper thread panicked")]
    ThreadPanicked(PathBuf),
}

fn io_err<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Io {
        path: path.to_path_buf(),
        step,
        source,
    }
}

/// A pinned network namespace: a file under the state dir with the namespace bind-mounted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    path: PathBuf,
}

impl Netns {
    /// Creates a new network namespace pinned at `<dir>/<id>`.
    ///
    /// Fails with [`NetnsError::AlreadyExists`] when a namespace is already pinned there; a
    /// leftover plain file (from a crash between create and mount) is reused.
    pub fn create(dir: &Path, id: &str) -> Result<Netns, NetnsError> {
        if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.len() > 200 {
            return Err(NetnsError::InvalidId(id.to_string()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        let path = dir.join(id);
        let ns = Netns { path };
        if ns.is_pinned() {
            return Err(NetnsError::AlreadyExists(ns.path));
        }
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o444)
            .open(&ns.path)
            .map_err(io_err(&ns.path, "create mount point file"))?;
        let target = ns.path.clone();
        let pinned = std::thread::scope(|s| {
            s.spawn(|| unshare_and_pin(&target))
                .join()
                .map_err(|_| NetnsError::ThreadPanicked(target.clone()))
        });
        match pinned {
            Ok(Ok(())) => {
                tracing::debug!(path = %ns.path.display(), "network namespace created");
                Ok(ns)
            }
            Ok(Err(e)) | Err(e) => {
                let _ = fs::remove_file(&ns.path);
                Err(e)
            }
        }
    }

    /// Refers to a namespace pinned at `path` (which may no longer exist).
    pub fn at(path: impl Into<PathBuf>) -> Netns {
        Netns { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when a network namespace is mounted at the path.
    pub fn is_pinned(&self) -> bool {
        is_nsfs(&self.path)
    }

    /// Unmounts and deletes the pin. Succeeds when there is nothing left to remove.
    ///
    /// Copies of the pin in mount namespaces created after it (a shim's, say) go too:
    /// since Linux 3.18, unlinking a file detaches the mounts on it in every namespace,
    /// so the pin dir need not be a shared mount as `ip netns` makes `/run/netns`.
    pub fn remove(&self) -> Result<(), NetnsError> {
        // Stacked mounts are possible if someone pinned twice; peel them all.
        for _ in 0..8 {
            if !self.is_pinned() {
                break;
            }
            let c = cstring(&self.path)?;
            // SAFETY: c is a valid NUL-terminated path; umount2 does not retain it.
            let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
                    return Err(io_err(&self.path, "unmount")(e));
                }
                break;
            }
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.path, "remove mount point file")(e)),
        }
        tracing::debug!(path = %self.path.display(), "network namespace removed");
        Ok(())
    }

    /// Runs `f` on a thread that has joined this namespace; the thread ends afterwards, so
    /// the caller's threads never change namespace.
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = File::open(&self.path).map_err(io_err(&self.path, "open"))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: file is an open nsfs descriptor; setns only affects this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io_err(&self.path, "setns")(io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| NetnsError::ThreadPanicked(self.path.clone()))?
        })
    }

    /// A command that runs `program` inside this namespace (like `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetnsError> {
        let file = File::open(&self.path).map_err(io_err(&self.path, "open"))?;
        let mut cmd = Command::new(program);
        // SAFETY: the closure only calls setns(2), which is async-signal-safe, on a
        // descriptor owned by the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Brings the namespace's `lo` interface up (what the CNI `loopback` plugin does).
    pub fn set_loopback_up(&self) -> Result<(), NetnsError> {
        let path = self.path.clone();
        self.run(move || set_link_up("lo").map_err(io_err(&path, "bring lo up")))?
    }
}

fn cstring(path: &Path) -> Result<std::ffi::CString, NetnsError> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| NetnsError::Io {
        path: path.to_path_buf(),
        step: "path contains a NUL byte",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })
}

fn is_nsfs(path: &Path) -> bool {
    let Ok(c) = cstring(path) else { return false };
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path and st a valid out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == NSFS_MAGIC
}

/// Runs on a dedicated thread: unshare a new netns for this thread and pin it.
fn unshare_and_pin(target: &Path) -> Result<(), NetnsError> {
    // SAFETY: unshare affects only the calling thread's network namespace; this thread
    // exits right after.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io_err(target, "unshare(CLONE_NEWNET)")(
            io::Error::last_os_error(),
        ));
    }
    let src = c"/proc/thread-self/ns/net";
    let dst = cstring(target)?;
    // SAFETY: both are valid NUL-terminated paths; the other arguments may be null for a bind.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io_err(target, "bind-mount the namespace")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into req, a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union field was just filled by SIOCGIFFLAGS.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads req, a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids() {
        let dir = Path::new("/nonexistent-berth-test");
        for id in ["", ".", "..", "a/b"] {
            assert!(matches!(
                Netns::create(dir, id),
                Err(NetnsError::InvalidId(_))
            ));
        }
    }

    #[test]
    fn remove_of_missing_is_ok() {
        assert!(Netns::at("/nonexistent-berth-test/gone").remove().is_ok());
    }
}
