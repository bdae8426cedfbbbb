//! Extracts an uploaded tar into a directory of the container, as dockerd does:
//! entry names are taken relative to that directory and may not leave it (`..`),
//! links may not point out of it (relative symlinks, hard links), and a path through
//! a symlink the tar or the container made is followed inside the container's root
//! only. Every parent is resolved with `openat2(RESOLVE_IN_ROOT)`; every entry is
//! made with one `*at` call on one name relative to its parent's fd, and its owner,
//! mode and times are set through that fd or with `AT_SYMLINK_NOFOLLOW`, so a link
//! swapped in by the container is never followed. Regular files are written by a
//! pool of threads ([`super::pool`]) with that same one-`openat` discipline.
//! `user.*` and `security.capability` attributes from PAX `SCHILY.xattr.` records
//! are set on files and directories.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_snapshotter::xattrs::{self, Found, XattrTap};

use super::fsutil::{check, cstring, lstat_at, open_at, open_in_root, remove_all_at};
use super::pool::{self, FileJob, Pool};
use super::view::View;
use super::ArchiveError;

/// `PUT` query parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// `noOverwriteDirNonDir`: refuse to replace a directory with a non-directory
    /// and the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: files belong to the container's user instead of the ids in
    /// the tar.
    pub copy_uid_gid: bool,
}

pub fn extract(
    view: &View,
    dir: OwnedFd,
    path: &str,
    user: &str,
    input: Box<dyn Read + Send>,
    opts: ExtractOptions,
) -> Result<(), ArchiveError> {
    let dest = view
        .container_path(dir.as_fd())
        .ok_or_else(|| ArchiveError::Internal(format!("{path}: not inside the container")))?;
    let on_rootfs = view.on_rootfs(dir.as_fd());
    if on_rootfs && view.readonly_rootfs {
        return Err(ArchiveError::ReadOnly(
            "container rootfs is marked read-only",
        ));
    }
    if read_only(dir.as_fd()) {
        return Err(ArchiveError::ReadOnly(if on_rootfs {
            "container rootfs is marked read-only"
        } else {
            "mounted volume is marked read-only"
        }));
    }
    let owner = if opts.copy_uid_gid {
        Some(super::user::resolve(view, user)?)
    } else {
        None
    };
    let mut input = BufReader::with_capacity(256 << 10, input);
    let gz = input
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut x = Extractor {
        view,
        dest,
        path: path.to_string(),
        opts,
        owner,
        parents: HashMap::new(),
        dir_times: Vec::new(),
        buf: vec![0; COPY_BUF],
        pool: pool::start(),
        found: Found::default(),
    };
    let tap = XattrTap::new(reader);
    x.found = tap.found();
    let mut archive = tar::Archive::new(tap);
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::Invalid(format!("reading the tar: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| ArchiveError::Invalid(format!("reading the tar: {e}")))?;
        x.entry(entry)?;
    }
    x.pool.drain()?;
    // Directories' times last: filling them changed them.
    for (parent, name, mtime) in x.dir_times.iter().rev() {
        set_times(parent.as_fd(), name, *mtime);
    }
    Ok(())
}

fn read_only(fd: BorrowedFd) -> bool {
    // SAFETY: statvfs is plain data; valid fd and out pointer.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut s) };
    rc == 0 && (s.f_flag & libc::ST_RDONLY) != 0
}

struct Extractor<'v> {
    view: &'v View,
    /// The target directory's path inside the container.
    dest: PathBuf,
    /// The path as the client gave it, for messages.
    path: String,
    opts: ExtractOptions,
    owner: Option<(u32, u32)>,
    /// Parent directories resolved so far, by their path under `dest`.
    parents: HashMap<PathBuf, Arc<OwnedFd>>,
    dir_times: Vec<(Arc<OwnedFd>, std::ffi::CString, u64)>,
    /// Large files' data goes through this, in writes of up to its size.
    buf: Vec<u8>,
    /// Writes the other regular files.
    pool: Pool,
    /// The entries' extended attributes, as the tap under the tar reader found them.
    found: Found,
}

/// The size of [`Extractor::buf`] (`io::copy` would write 8 KiB at a time).
const COPY_BUF: usize = 1 << 20;

/// Copies `from` into `to` in writes of up to `buf.len()` bytes.
fn copy_large(mut from: impl Read, to: &mut impl Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let mut n = 0;
        while n < buf.len() {
            match from.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Cleans an entry name lexically against the target directory; `None` when it
/// climbs out of it.
fn clean(name: &[u8]) -> Option<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let mut p = PathBuf::new();
    for c in parts {
        p.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(c));
    }
    Some(p)
}

impl Extractor<'_> {
    fn invalid(&self, msg: String) -> ArchiveError {
        ArchiveError::Invalid(msg)
    }

    fn io(&self, op: &'static str, rel: &Path, e: io::Error) -> ArchiveError {
        ArchiveError::io(op, self.dest.join(rel), e)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<R>) -> Result<(), ArchiveError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean(&raw)
            .ok_or_else(|| self.invalid(format!("{shown:?} is outside of {:?}", self.path)))?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            // The target directory itself (`./`): it exists already.
            return Ok(());
        };
        let is_file = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        // The same name again, or an entry that changes what names mean (a link,
        // a node), waits for every file handed to the pool.
        if self.pool.pending(&rel) || !(is_file || kind == tar::EntryType::Directory) {
            self.pool.drain()?;
        }
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = self.parent(&parent_rel)?;
        let cname = super::fsutil::cname(&name).map_err(|e| self.io("name", &rel, e))?;
        let is_dir = kind == tar::EntryType::Directory;
        // What is there already.
        match lstat_at(parent.as_fd(), &cname) {
            Ok(st) => {
                let there_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let full = self.dest.join(&rel).display().to_string();
                if self.opts.no_overwrite_dir_non_dir && there_dir && !is_dir {
                    return Err(self.invalid(format!(
                        "cannot overwrite directory {full:?} with non-directory {shown:?}"
                    )));
                }
                if self.opts.no_overwrite_dir_non_dir && !there_dir && is_dir {
                    return Err(self.invalid(format!(
                        "cannot overwrite non-directory {full:?} with directory {shown:?}"
                    )));
                }
                if !(there_dir && is_dir) {
                    self.pool.drain()?;
                    remove_all_at(parent.as_fd(), &cname)
                        .map_err(|e| self.io("remove", &rel, e))?;
                    self.parents.clear();
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(self.io("lstat", &rel, e)),
        }
        let xattrs: Vec<_> = xattrs::take(&self.found, entry.raw_header_position())
            .into_iter()
            .filter(|(n, _)| xattrs::carried(n.as_bytes()))
            .collect();
        let h = entry.header();
        let size = h.size().unwrap_or(0);
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0);
        let (uid, gid) = match self.owner {
            Some(o) => o,
            None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let p = parent.as_fd();
        if !xattrs.is_empty() && !is_file && !is_dir {
            // The kernel takes user.* attributes on files and directories only.
            tracing::warn!(entry = %shown, "extended attributes of a {kind:?} entry not set");
        }
        match kind {
            tar::EntryType::Directory => {
                // SAFETY: valid fd and C string.
                let rc = unsafe { libc::mkdirat(p.as_raw_fd(), cname.as_ptr(), mode & 0o777) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(self.io("mkdir", &rel, e));
                    }
                }
                let fd = open_at(p, &cname, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| self.io("open", &rel, e))?;
                pool::finish_file(fd.as_fd(), &self.dest.join(&rel), (uid, gid), mode, &xattrs)?;
                self.dir_times.push((parent.clone(), cname, mtime));
                return Ok(());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous if size <= pool::MAX_FILE => {
                let mut data = Vec::with_capacity(size as usize);
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| self.invalid(format!("reading the tar: {e}")))?;
                self.pool.submit(FileJob {
                    shown: self.dest.join(&rel),
                    parent: parent.clone(),
                    name: cname,
                    rel,
                    data,
                    uid,
                    gid,
                    mode,
                    mtime,
                    xattrs,
                })?;
                return Ok(());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = open_at(
                    p,
                    &cname,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
                .map_err(|e| self.io("create", &rel, e))?;
                let mut file = std::fs::File::from(fd);
                copy_large(&mut entry, &mut file, &mut self.buf)
                    .map_err(|e| self.io("write", &rel, e))?;
                pool::finish_file(
                    file.as_fd(),
                    &self.dest.join(&rel),
                    (uid, gid),
                    mode,
                    &xattrs,
                )?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                // A relative link may not point out of the target directory.
                if !target.starts_with(b"/") {
                    let mut joined = parent_rel.as_os_str().as_encoded_bytes().to_vec();
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    if clean(&joined).is_none() {
                        return Err(self.invalid(format!(
                            "invalid symlink {:?} -> {:?}",
                            self.dest.join(&rel).display().to_string(),
                            String::from_utf8_lossy(&target)
                        )));
                    }
                }
                let t = cstring(&target).map_err(|e| self.io("symlink", &rel, e))?;
                // SAFETY: valid C strings and fd.
                check(unsafe { libc::symlinkat(t.as_ptr(), p.as_raw_fd(), cname.as_ptr()) })
                    .map_err(|e| self.io("symlink", &rel, e))?;
                self.parents.clear();
                lchown(p, &cname, uid, gid).map_err(|e| self.io("lchown", &rel, e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let shown_t = String::from_utf8_lossy(&target).into_owned();
                let trel = clean(&target)
                    .filter(|t| t.file_name().is_some())
                    .ok_or_else(|| {
                        self.invalid(format!("invalid hardlink {shown:?} -> {shown_t:?}"))
                    })?;
                let tparent = self.parent(trel.parent().unwrap_or(Path::new("")))?;
                let tname = trel
                    .file_name()
                    .map(super::fsutil::cname)
                    .transpose()
                    .map_err(|e| self.io("link", &rel, e))?
                    .ok_or_else(|| {
                        self.invalid(format!("invalid hardlink {shown:?} -> {shown_t:?}"))
                    })?;
                // SAFETY: valid fds and C strings; no AT_SYMLINK_FOLLOW: a link is
                // linked as itself.
                check(unsafe {
                    libc::linkat(
                        tparent.as_raw_fd(),
                        tname.as_ptr(),
                        p.as_raw_fd(),
                        cname.as_ptr(),
                        0,
                    )
                })
                .map_err(|e| self.io("link", &rel, e))?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (t, dev) = match kind {
                    tar::EntryType::Char => (libc::S_IFCHR, true),
                    tar::EntryType::Block => (libc::S_IFBLK, true),
                    _ => (libc::S_IFIFO, false),
                };
                let h = entry.header();
                let rdev = if dev {
                    libc::makedev(
                        h.device_major().ok().flatten().unwrap_or(0),
                        h.device_minor().ok().flatten().unwrap_or(0),
                    )
                } else {
                    0
                };
                // SAFETY: valid fd and C string. The thread's umask is 0.
                check(unsafe {
                    libc::mknodat(p.as_raw_fd(), cname.as_ptr(), t | (mode & 0o777), rdev)
                })
                .map_err(|e| self.io("mknod", &rel, e))?;
                lchown(p, &cname, uid, gid).map_err(|e| self.io("lchown", &rel, e))?;
            }
            other => {
                return Err(self.invalid(format!(
                    "unhandled tar header type {} for {shown:?}",
                    other.as_byte()
                )))
            }
        }
        set_times(p, &cname, mtime);
        Ok(())
    }

    /// The fd of a directory under the target (`rel` relative to it), made with its
    /// missing parents (mode 0755) when absent.
    fn parent(&mut self, rel: &Path) -> Result<Arc<OwnedFd>, ArchiveError> {
        if let Some(fd) = self.parents.get(rel) {
            return Ok(fd.clone());
        }
        // A file still pending could be this directory's name or one above it:
        // the lookup sees what the tar's order says is there.
        self.pool.drain()?;
        let full = self.dest.join(rel);
        let fd = match open_in_root(self.view.root(), &full, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && rel.file_name().is_some() => {
                let up = self.parent(rel.parent().unwrap_or(Path::new("")))?;
                let name = rel
                    .file_name()
                    .map(super::fsutil::cname)
                    .transpose()
                    .map_err(|e| self.io("mkdir", rel, e))?
                    .ok_or_else(|| self.invalid(format!("bad path {}", rel.display())))?;
                // SAFETY: valid fd and C string.
                let rc = unsafe { libc::mkdirat(up.as_raw_fd(), name.as_ptr(), 0o755) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(self.io("mkdir", rel, e));
                    }
                } else if let Some((uid, gid)) = self.owner {
                    lchown(up.as_fd(), &name, uid, gid).map_err(|e| self.io("lchown", rel, e))?;
                }
                open_in_root(self.view.root(), &full, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| self.io("open", rel, e))?
            }
            Err(e) => return Err(self.io("open", rel, e)),
        };
        let fd = Arc::new(fd);
        self.parents.insert(rel.to_path_buf(), fd.clone());
        Ok(fd)
    }
}

fn lchown(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string; the last component is not followed.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn set_times(dir: BorrowedFd, name: &CStr, mtime: u64) {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid fd, C string and two timespecs; the last component is not
    // followed. A failure leaves the time of extraction, which is not an error.
    unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_keeps_entries_inside() {
        assert_eq!(clean(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(clean(b"a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(clean(b"/etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert!(clean(b"../x").is_none());
        assert!(clean(b"a/../../x").is_none());
        assert_eq!(clean(b"./").unwrap(), PathBuf::new());
    }
}
