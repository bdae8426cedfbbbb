//! Applying a layer: a (decompressed) tar stream unpacked into a snapshot directory.
//!
//! Whiteouts become overlay's form (`.wh.name` → a 0:0 character device `name`;
//! `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory). Hard links, symlinks,
//! device nodes, fifos, xattrs, owners, modes and mtimes are kept. Every entry that would
//! land outside the directory — absolute, `..`, through a symlink, a hard link to outside
//! — is refused and the whole apply fails. Nothing is fsynced per file: the caller syncs
//! the filesystem once when the snapshot is committed.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tar::{Archive, EntryType};

use crate::safepath::{clean, PathError, Resolver};

/// Errors while applying a layer; each names the entry involved.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer refused: {0}")]
    Path(#[from] PathError),
    #[error("layer tar is malformed: {0}")]
    Tar(io::Error),
    #[error("entry {name:?}: {op}: {source}")]
    Io {
        name: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("entry {name:?}: hard link target {target:?} does not exist in this layer")]
    LinkTarget { name: String, target: String },
    #[error("entry {name:?}: unsupported tar entry type {kind:?}")]
    Unsupported { name: String, kind: String },
}

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Set owners from the tar (needs root). Default: true when running as root.
    pub chown: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        ApplyOptions { chown: root }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub file_bytes: u64,
    pub whiteouts: u64,
}

struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Applies the tar stream `reader` to the directory `dest`, then drains `reader` to its
/// end (so a hashing reader under it sees the whole stream).
pub fn apply_layer<R: Read>(
    reader: &mut R,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    // The tap reads the entries' xattrs (binary values included) as they pass.
    let tap = crate::xattrs::XattrTap::new(&mut *reader);
    let found = tap.found();
    let mut archive = Archive::new(tap);
    let mut resolver = Resolver::new(dest);
    let mut stats = ApplyStats::default();
    let mut dir_times: Vec<(PathBuf, (i64, i64))> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    for entry in archive.entries().map_err(ApplyError::Tar)? {
        let mut entry = entry.map_err(ApplyError::Tar)?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let rel = clean(&raw_name)?;
        stats.entries += 1;
        let mut meta = read_meta(&mut entry, &name)?;
        meta.xattrs = crate::xattrs::take(&found, entry.raw_header_position())
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        let Some(file_name) = rel.file_name().map(|f| f.as_bytes().to_vec()) else {
            // The root itself ("./"): keep the snapshot directory as created.
            continue;
        };
        if let Some(hidden) = file_name.strip_prefix(b".wh.") {
            apply_whiteout(&mut resolver, &rel, hidden, &name)?;
            stats.whiteouts += 1;
            continue;
        }
        let full = resolver.prepare_parent(&rel)?;
        let existing = fs::symlink_metadata(&full).ok();
        if kind == EntryType::Directory {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove_any(&full, &name)?;
                    resolver.invalidate();
                    mkdir(&full, &name)?;
                }
                None => mkdir(&full, &name)?,
            }
        } else if existing.is_some() {
            remove_any(&full, &name)?;
            resolver.invalidate();
        }
        match kind {
            EntryType::Directory => {}
            EntryType::Regular | EntryType::Continuous => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&full)
                    .map_err(io_at(&name, "create file"))?;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ApplyError::Tar(e)),
                    };
                    file.write_all(&buf[..n])
                        .map_err(io_at(&name, "write file"))?;
                    stats.file_bytes += n as u64;
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ApplyError::Unsupported {
                        name: name.clone(),
                        kind: "symlink without target".into(),
                    })?
                    .into_owned();
                let target = std::ffi::OsStr::from_bytes(&target);
                std::os::unix::fs::symlink(target, &full).map_err(io_at(&name, "symlink"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ApplyError::Unsupported {
                        name: name.clone(),
                        kind: "hard link without target".into(),
                    })?
                    .into_owned();
                let target_rel = clean(&target)?;
                let target_full = resolver.prepare_parent(&target_rel)?;
                match fs::symlink_metadata(&target_full) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(ApplyError::LinkTarget {
                            name,
                            target: String::from_utf8_lossy(&target).into_owned(),
                        })
                    }
                }
                fs::hard_link(&target_full, &full).map_err(io_at(&name, "link"))?;
                // A hard link shares the target's inode and metadata: nothing more to set.
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let fmt = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                mknod(
                    &full,
                    fmt | (meta.mode & 0o7777),
                    libc::makedev(major, minor),
                )
                .map_err(io_at(&name, "mknod"))?;
            }
            other => {
                return Err(ApplyError::Unsupported {
                    name,
                    kind: format!("{other:?}"),
                })
            }
        }
        set_meta(&full, &meta, kind == EntryType::Symlink, opts, &name)?;
        if kind == EntryType::Directory {
            dir_times.push((full, meta.mtime));
        }
    }
    // Directory mtimes last: creating their children changed them.
    for (dir, time) in dir_times.iter().rev() {
        set_times(dir, *time, false).map_err(io_at(&dir.display().to_string(), "utimensat"))?;
    }
    let mut reader = archive.into_inner();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ApplyError::Tar(e)),
        }
    }
    Ok(stats)
}

fn io_at<'a>(name: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        name: name.to_string(),
        op,
        source,
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, ApplyError> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode().unwrap_or(0o644),
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        mtime: (h.mtime().unwrap_or(0) as i64, 0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(ApplyError::Tar)? {
        for ext in exts {
            // A record the tar crate cannot split is an xattr's binary value holding
            // a newline: the xattrs come from the tap under the reader instead.
            let Ok(ext) = ext else { continue };
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).unwrap_or("");
            if key == b"uid" {
                meta.uid = text.parse().map_err(|_| bad_pax(name, "uid"))?;
            } else if key == b"gid" {
                meta.gid = text.parse().map_err(|_| bad_pax(name, "gid"))?;
            } else if key == b"mtime" {
                meta.mtime = parse_pax_time(text).ok_or_else(|| bad_pax(name, "mtime"))?;
            }
        }
    }
    Ok(meta)
}

fn bad_pax(name: &str, key: &str) -> ApplyError {
    ApplyError::Tar(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("entry {name:?}: invalid PAX {key}"),
    ))
}

fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        let n: i64 = digits.parse().ok()?;
        nanos = n * 10i64.pow(9 - digits.len() as u32);
    }
    Some((secs, nanos))
}

fn apply_whiteout(
    resolver: &mut Resolver,
    rel: &Path,
    hidden: &[u8],
    name: &str,
) -> Result<(), ApplyError> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    if hidden == b".wh..opq" {
        resolver.ensure_dir(parent, rel)?;
        let dir = resolver.root().join(parent);
        return setxattr(&dir, b"trusted.overlay.opaque", b"y", false)
            .map_err(io_at(name, "set trusted.overlay.opaque"));
    }
    if hidden.starts_with(b".wh.") || hidden.is_empty() {
        // Other AUFS metadata (`.wh..wh.plnk`, …) has no overlay meaning.
        return Ok(());
    }
    let target_rel = parent.join(std::ffi::OsStr::from_bytes(hidden));
    let full = resolver.prepare_parent(&target_rel)?;
    if fs::symlink_metadata(&full).is_ok() {
        remove_any(&full, name)?;
        resolver.invalidate();
    }
    mknod(&full, libc::S_IFCHR, libc::makedev(0, 0)).map_err(io_at(name, "mknod whiteout"))
}

fn mkdir(path: &Path, name: &str) -> Result<(), ApplyError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(io_at(name, "mkdir"))
}

fn remove_any(path: &Path, name: &str) -> Result<(), ApplyError> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    res.map_err(io_at(name, "remove existing"))
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mknod(path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated path; mknod does not retain it.
    check(unsafe { libc::mknod(c.as_ptr(), mode, dev) })
}

fn setxattr(path: &Path, key: &[u8], value: &[u8], _symlink: bool) -> io::Result<()> {
    let c = cpath(path)?;
    let k = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: path and key are valid C strings, value points to value.len() readable bytes.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn set_times(path: &Path, (secs, nanos): (i64, i64), symlink: bool) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    let times = [ts, ts];
    let flags = if symlink {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: c is a valid path and times points to two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) })
}

fn set_meta(
    path: &Path,
    meta: &Meta,
    symlink: bool,
    opts: &ApplyOptions,
    name: &str,
) -> Result<(), ApplyError> {
    let c = cpath(path).map_err(io_at(name, "path"))?;
    if opts.chown {
        // SAFETY: c is a valid path; lchown does not follow a final symlink.
        check(unsafe { libc::lchown(c.as_ptr(), meta.uid as u32, meta.gid as u32) })
            .map_err(io_at(name, "lchown"))?;
    }
    if !symlink {
        // After chown, which clears set-id bits.
        // SAFETY: c is a valid path; path is known not to be a symlink (we just made it).
        check(unsafe { libc::chmod(c.as_ptr(), meta.mode & 0o7777) })
            .map_err(io_at(name, "chmod"))?;
    }
    for (key, value) in &meta.xattrs {
        if let Err(e) = setxattr(path, key, value, symlink) {
            let key = String::from_utf8_lossy(key);
            if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) && !opts.chown {
                tracing::debug!(entry = name, xattr = %key, "xattr not settable without root: skipped");
                continue;
            }
            return Err(ApplyError::Io {
                name: format!("{name} (xattr {key})"),
                op: "lsetxattr",
                source: e,
            });
        }
    }
    set_times(path, meta.mtime, symlink).map_err(io_at(name, "utimensat"))
}
