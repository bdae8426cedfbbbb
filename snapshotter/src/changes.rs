//! A writable snapshot's changes against its parents, read from its overlay upper
//! directory as `docker diff` reports them: each path in the upper is added (`A`)
//! or, when a lower layer has it, changed (`C`; a directory when its size, mode or
//! mtime differ, or when anything under it changed); a whiteout (a 0/0
//! character device) and an opaque directory (`trusted.overlay.opaque=y`) over a
//! lower one read as deletions (`D`). Paths come in lexical walk order.
//!
//! The upper belongs to a container, which may swap anything in it while the walk
//! runs: directories are opened one name at a time with `O_NOFOLLOW` and read
//! through their fd, and lower layers are looked up with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, as overlay itself merges by name without following links.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

impl ChangeKind {
    /// Docker's numbers (`Kind` in `/containers/{id}/changes`).
    pub fn docker_kind(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute inside the container (`/etc/hosts`).
    pub path: String,
    pub kind: ChangeKind,
}

/// The changes of `upper` over `lowers` (topmost first).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let lowers: Vec<OwnedFd> = lowers
        .iter()
        .map(|l| File::open(l).map(OwnedFd::from))
        .collect::<io::Result<_>>()?;
    let root: OwnedFd = File::open(upper)?.into();
    let mut w = Walk {
        lowers,
        out: Vec::new(),
    };
    w.dir(&root, Path::new("/"))?;
    Ok(w.out)
}

struct Walk {
    lowers: Vec<OwnedFd>,
    out: Vec<Change>,
}

impl Walk {
    fn dir(&mut self, dir: &OwnedFd, path: &Path) -> io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for name in names {
            let child = path.join(&name);
            let c = CString::new(name.as_bytes()).map_err(io::Error::other)?;
            let Ok(st) = lstat_at(dir, &c) else { continue };
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            let whiteout = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0;
            let mut sub = None;
            if is_dir {
                sub = open_dir_at(dir, &c).ok();
            }
            let opaque = sub.as_ref().is_some_and(is_opaque);
            let kind = if whiteout || (opaque && self.lower(&child).is_some()) {
                Some(ChangeKind::Deleted)
            } else {
                match self.lower(&child) {
                    None => Some(ChangeKind::Added),
                    Some(l) if is_dir && l.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        let same = l.st_mode == st.st_mode
                            && l.st_size == st.st_size
                            && l.st_mtime == st.st_mtime
                            && l.st_mtime_nsec == st.st_mtime_nsec;
                        (!same).then_some(ChangeKind::Modified)
                    }
                    Some(_) => Some(ChangeKind::Modified),
                }
            };
            if let Some(kind) = kind {
                // Whatever changed under a directory changed it, and its parents.
                let missing: Vec<PathBuf> = path
                    .ancestors()
                    .filter(|a| *a != Path::new("/") && !self.reported(a))
                    .map(Path::to_path_buf)
                    .collect();
                for a in missing.iter().rev() {
                    self.push(a, ChangeKind::Modified);
                }
                self.push(&child, kind);
            }
            if let Some(sub) = sub {
                self.dir(&sub, &child)?;
            }
        }
        Ok(())
    }

    fn reported(&self, path: &Path) -> bool {
        let path = path.display().to_string();
        self.out.iter().any(|c| c.path == path)
    }

    fn push(&mut self, path: &Path, kind: ChangeKind) {
        let path = path.display().to_string();
        // A directory reported once (as the parent of a change, then itself).
        if self.out.iter().any(|c| c.path == path) {
            return;
        }
        self.out.push(Change { path, kind });
    }

    /// The path's stat in the topmost lower layer that has it (a whiteout there
    /// means it is gone).
    fn lower(&self, path: &Path) -> Option<libc::stat> {
        let rel = path.strip_prefix("/").ok()?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = CString::new(rel.file_name()?.as_bytes()).ok()?;
        for layer in &self.lowers {
            let Ok(dir) = beneath(layer, parent) else {
                continue;
            };
            if let Ok(st) = lstat_at(&dir, &name) {
                if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0 {
                    return None;
                }
                return Some(st);
            }
        }
        None
    }
}

fn lstat_at(dir: &OwnedFd, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and out pointer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn open_dir_at(dir: &OwnedFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 2];
    // SAFETY: valid fd, C string and buffer with its length.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// A directory of a layer reached without following any link and without leaving it.
fn beneath(layer: &OwnedFd, rel: &Path) -> io::Result<OwnedFd> {
    let p = if rel.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        rel.as_os_str()
    };
    let c = CString::new(p.as_bytes()).map_err(io::Error::other)?;
    // SAFETY: open_how is plain data; zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: valid fd, C string, and `how` with its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            layer.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_deleted() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("etc")).unwrap();
        std::fs::write(lower.path().join("etc/passwd"), "x").unwrap();
        std::fs::write(lower.path().join("gone"), "x").unwrap();
        std::fs::create_dir_all(upper.path().join("etc")).unwrap();
        std::fs::write(upper.path().join("etc/passwd"), "y").unwrap();
        std::fs::create_dir_all(upper.path().join("new/sub")).unwrap();
        std::fs::create_dir_all(lower.path().join("a/b")).unwrap();
        std::fs::write(lower.path().join("a/b/c"), "x").unwrap();
        std::fs::create_dir_all(upper.path().join("a/b")).unwrap();
        std::fs::write(upper.path().join("a/b/c"), "y").unwrap();
        for d in ["a/b", "a"] {
            let t = std::fs::metadata(lower.path().join(d))
                .unwrap()
                .modified()
                .unwrap();
            std::fs::File::open(upper.path().join(d))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let root = nix_like_root();
        if root {
            // A whiteout needs mknod (root).
            let c = CString::new(upper.path().join("gone").as_os_str().as_bytes()).unwrap();
            // SAFETY: valid C string.
            assert_eq!(
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) },
                0
            );
        }
        let got = changes(upper.path(), &[lower.path().to_path_buf()]).unwrap();
        let shown: Vec<String> = got
            .iter()
            .map(|c| format!("{:?} {}", c.kind, c.path))
            .collect();
        assert!(
            shown.contains(&"Modified /etc/passwd".to_string()),
            "{shown:?}"
        );
        assert!(shown.contains(&"Added /new".to_string()), "{shown:?}");
        assert!(shown.contains(&"Added /new/sub".to_string()), "{shown:?}");
        let a = shown.iter().position(|s| s == "Modified /a").expect("C /a");
        let ab = shown
            .iter()
            .position(|s| s == "Modified /a/b")
            .expect("C /a/b");
        let abc = shown
            .iter()
            .position(|s| s == "Modified /a/b/c")
            .expect("C /a/b/c");
        assert!(a < ab && ab < abc, "{shown:?}");
        if root {
            assert!(shown.contains(&"Deleted /gone".to_string()), "{shown:?}");
        }
    }

    fn nix_like_root() -> bool {
        // SAFETY: getuid cannot fail.
        unsafe { libc::getuid() == 0 }
    }
}
