//! The container's filesystem as dockerd shows it to `cp`: its root filesystem with
//! its volumes and bind mounts on top, and nothing of `/proc`, `/sys` or `/dev`.
//!
//! The view is built on a thread of its own that left berthd's mount namespace
//! (`unshare(CLONE_FS | CLONE_NEWNS)`, everything made private): a stopped
//! container's snapshot is mounted there, a running one's root (mounted by its shim
//! in the host namespace) is already there; the bind mounts of its spec are put on
//! their destinations, each resolved inside the root with `openat2(RESOLVE_IN_ROOT)`
//! and mounted through its `/proc/self/fd` link. Nothing of it is visible outside
//! the thread, and what the thread mounted is unmounted before it ends, so a start
//! right after finds the snapshot free.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::fsutil::{check, cstring, fstat, open_in_root};
use super::ArchiveError;

/// What the view is built from, read before its thread starts.
pub struct ViewSpec {
    /// `<bundle>/rootfs`.
    pub rootfs: PathBuf,
    /// The snapshot's mounts, used when the rootfs is not mounted already.
    pub snapshot_mounts: Vec<berth_snapshotter::Mount>,
    /// The spec's bind mounts: (host source, container destination, read-only).
    pub binds: Vec<(PathBuf, String, bool)>,
    /// The spec's `root.readonly`.
    pub readonly_rootfs: bool,
}

impl ViewSpec {
    /// Reads the bundle's `config.json`.
    pub fn read(
        bundle: &Path,
        snapshot_mounts: Vec<berth_snapshotter::Mount>,
    ) -> Result<ViewSpec, ArchiveError> {
        let path = bundle.join("config.json");
        let text = std::fs::read(&path).map_err(|e| ArchiveError::io("read", &path, e))?;
        let spec: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| ArchiveError::Internal(format!("{}: {e}", path.display())))?;
        let readonly_rootfs = spec["root"]["readonly"].as_bool().unwrap_or(false);
        let mut binds = Vec::new();
        for m in spec["mounts"].as_array().into_iter().flatten() {
            let options: Vec<&str> = m["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str())
                .collect();
            let is_bind = m["type"].as_str() == Some("bind")
                || options.iter().any(|o| *o == "bind" || *o == "rbind");
            let (Some(src), Some(dst)) = (m["source"].as_str(), m["destination"].as_str()) else {
                continue;
            };
            let pseudo = ["/proc", "/sys", "/dev"]
                .iter()
                .any(|p| dst == *p || dst.starts_with(&format!("{p}/")));
            if !is_bind || pseudo || !src.starts_with('/') {
                continue;
            }
            binds.push((PathBuf::from(src), dst.to_string(), options.contains(&"ro")));
        }
        // Parents before children, as the runtime mounts them.
        binds.sort_by_key(|(_, d, _)| Path::new(d).components().count());
        Ok(ViewSpec {
            rootfs: bundle.join("rootfs"),
            snapshot_mounts,
            binds,
            readonly_rootfs,
        })
    }
}

/// The container's root, open, with its mounts in place (only on the view's thread).
pub struct View {
    root: OwnedFd,
    rootfs: PathBuf,
    pub readonly_rootfs: bool,
    root_dev: u64,
    mounted: Vec<PathBuf>,
}

impl View {
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The path of an open file inside the container (`/etc/passwd`), or `None` if it
    /// is not under the root any more.
    pub fn container_path(&self, fd: BorrowedFd) -> Option<PathBuf> {
        let host = super::fsutil::fd_path(fd).ok()?;
        let rel = host.strip_prefix(&self.rootfs).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// Whether `fd` is on the root filesystem itself rather than a volume or bind.
    pub fn on_rootfs(&self, fd: BorrowedFd) -> bool {
        fstat(fd)
            .map(|st| st.st_dev == self.root_dev)
            .unwrap_or(true)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // The root fd would keep the mounts busy.
        let root = std::mem::replace(
            &mut self.root,
            match std::fs::File::open("/") {
                Ok(f) => f.into(),
                Err(_) => return,
            },
        );
        drop(root);
        for target in self.mounted.drain(..).rev() {
            if let Err(e) = berth_snapshotter::mount::unmount(&target) {
                tracing::warn!("unmounting {} from a cp view: {e}", target.display());
            }
        }
    }
}

/// Runs `f` with the container's view on a thread of its own and returns its result.
pub fn run<T: Send + 'static>(
    spec: ViewSpec,
    f: impl FnOnce(&View) -> Result<T, ArchiveError> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, ArchiveError>> {
    std::thread::Builder::new()
        .name("berth-cp".into())
        .spawn(move || {
            let view = build(spec)?;
            f(&view)
        })
        .unwrap_or_else(|e| {
            std::thread::spawn(move || {
                Err(ArchiveError::Internal(format!("starting a cp thread: {e}")))
            })
        })
}

fn build(spec: ViewSpec) -> Result<View, ArchiveError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS | nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| ArchiveError::Internal(format!("unshare of a mount namespace: {e}")))?;
    // SAFETY: constant C strings; making every mount of this thread's private
    // namespace private so nothing it does propagates back to the host.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map_err(|e| ArchiveError::Internal(format!("making mounts private: {e}")))?;
    // SAFETY: umask only changes this thread's file-creation mask (CLONE_FS is
    // unshared): modes from a tar are applied exactly.
    unsafe { libc::umask(0) };
    let mut mounted = Vec::new();
    let mounted_already = is_mountpoint(&spec.rootfs);
    if !mounted_already {
        for m in &spec.snapshot_mounts {
            m.mount(&spec.rootfs).map_err(|e| {
                ArchiveError::Internal(format!("mounting the container's filesystem: {e}"))
            })?;
            mounted.push(spec.rootfs.clone());
        }
    }
    let root_file =
        std::fs::File::open(&spec.rootfs).map_err(|e| ArchiveError::io("open", &spec.rootfs, e))?;
    let root: OwnedFd = root_file.into();
    let root_dev = fstat(root.as_fd())
        .map_err(|e| ArchiveError::io("stat", &spec.rootfs, e))?
        .st_dev;
    let mut view = View {
        root,
        rootfs: spec.rootfs.clone(),
        readonly_rootfs: spec.readonly_rootfs,
        root_dev,
        mounted,
    };
    for (source, dest, ro) in &spec.binds {
        let target = match open_in_root(view.root(), Path::new(dest), libc::O_PATH) {
            Ok(fd) => fd,
            // Not there (never started): the runtime makes it at start; nothing to see.
            Err(_) => continue,
        };
        // Where the mount lands, to unmount it afterwards.
        let Some(inside) = view.container_path(target.as_fd()) else {
            continue;
        };
        let src = cstring(source.as_os_str().as_bytes())
            .map_err(|e| ArchiveError::io("mount", source, e))?;
        let tgt = CString::new(format!("/proc/self/fd/{}", target.as_raw_fd()))
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        let mut flags = libc::MS_BIND | libc::MS_REC;
        // SAFETY: valid C strings; the target is the fd resolved inside the root.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            tracing::debug!("cp view: binding {} on {dest}: {e}", source.display());
            continue;
        }
        let host_target = spec
            .rootfs
            .join(inside.strip_prefix("/").unwrap_or(&inside));
        view.mounted.push(host_target.clone());
        if *ro {
            flags |= libc::MS_REMOUNT | libc::MS_RDONLY;
            let t = cstring(host_target.as_os_str().as_bytes())
                .map_err(|e| ArchiveError::io("mount", &host_target, e))?;
            // SAFETY: valid C string; remounting the bind just made read-only.
            check(unsafe {
                libc::mount(
                    std::ptr::null(),
                    t.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                )
            })
            .map_err(|e| ArchiveError::io("remount read-only", &host_target, e))?;
        }
    }
    Ok(view)
}

fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}
