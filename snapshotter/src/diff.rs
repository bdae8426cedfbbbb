//! A writable snapshot's changes as a layer tar: the overlay upper directory walked in
//! name order, overlay's whiteouts (a 0:0 character device) written as `.wh.<name>`
//! and opaque directories (`trusted.overlay.opaque=y`) as `<dir>/.wh..wh..opq`, the
//! OCI layer form `apply` reads back. Owners, modes, mtimes, symlinks, hard links
//! (within the layer), fifos and device nodes are kept; nothing is followed. Files'
//! and directories' `user.*` and `security.capability` attributes go in PAX
//! `SCHILY.xattr.` records, as Docker writes them ([`crate::xattrs`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{Builder, EntryType, Header};

fn opaque(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let name = c"trusted.overlay.opaque";
    let mut buf = [0u8; 4];
    // SAFETY: path and name are NUL-terminated; buf is valid for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn header(meta: &fs::Metadata, kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(size);
    h
}

struct Walk<W: Write> {
    out: Builder<W>,
    /// (dev, ino) → the first name written for a hard-linked file.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> Walk<W> {
    /// The PAX header carrying a directory's attributes, when it has any.
    fn xattrs(&mut self, abs: &Path) -> io::Result<()> {
        let x = crate::xattrs::read_path(abs)?;
        self.pax(&x)
    }

    fn xattrs_fd(&mut self, f: &fs::File) -> io::Result<()> {
        let x = crate::xattrs::read_fd(std::os::fd::AsFd::as_fd(f))?;
        self.pax(&x)
    }

    fn pax(&mut self, x: &[(String, Vec<u8>)]) -> io::Result<()> {
        if x.is_empty() {
            return Ok(());
        }
        let keys: Vec<(String, &[u8])> = x
            .iter()
            .map(|(k, v)| (format!("{}{k}", crate::xattrs::PAX_PREFIX), v.as_slice()))
            .collect();
        self.out
            .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    fn dir(&mut self, abs: &Path, rel: &str) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(abs)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let child_abs = abs.join(&name);
            let name = name.to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            self.entry(&child_abs, &child_rel, &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, rel: &str, name: &str) -> io::Result<()> {
        let meta = fs::symlink_metadata(abs)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let parent = rel.strip_suffix(name).unwrap_or("");
            let mut h = header(&meta, EntryType::Regular, 0);
            h.set_mode(0o644);
            self.out
                .append_data(&mut h, format!("{parent}.wh.{name}"), io::empty())?;
            return Ok(());
        }
        if ft.is_dir() {
            self.xattrs(abs)?;
            let mut h = header(&meta, EntryType::Directory, 0);
            self.out
                .append_data(&mut h, format!("{rel}/"), io::empty())?;
            if opaque(abs) {
                let mut h = header(&meta, EntryType::Regular, 0);
                h.set_mode(0o644);
                self.out
                    .append_data(&mut h, format!("{rel}/.wh..wh..opq"), io::empty())?;
            }
            return self.dir(abs, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(abs)?;
            let mut h = header(&meta, EntryType::Symlink, 0);
            self.out.append_link(&mut h, rel, target)?;
            return Ok(());
        }
        if meta.nlink() > 1 && !ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = header(&meta, EntryType::Link, 0);
                let first = first.clone();
                self.out.append_link(&mut h, rel, first)?;
                return Ok(());
            }
            self.links.insert(key, rel.to_string());
        }
        if ft.is_file() {
            let mut h = header(&meta, EntryType::Regular, meta.len());
            let f = fs::File::open(abs)?;
            self.xattrs_fd(&f)?;
            self.out.append_data(&mut h, rel, f)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                EntryType::Fifo
            } else if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let mut h = header(&meta, kind, 0);
            let rdev = meta.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
            self.out.append_data(&mut h, rel, io::empty())?;
        }
        // Sockets are not carried in layers.
        Ok(())
    }
}

/// Writes the changes kept in `upper` (an overlay upper directory) to `out` as a layer
/// tar.
pub fn write_layer<W: Write>(upper: &Path, out: W) -> io::Result<W> {
    let mut walk = Walk {
        out: Builder::new(out),
        links: HashMap::new(),
    };
    walk.out.mode(tar::HeaderMode::Complete);
    walk.dir(upper, "")?;
    walk.out.into_inner()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn upper_dir_to_layer_and_back() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("etc/conf.d")).unwrap();
        fs::write(upper.join("etc/conf.d/a"), "a").unwrap();
        fs::hard_link(upper.join("etc/conf.d/a"), upper.join("etc/b")).unwrap();
        symlink("conf.d/a", upper.join("etc/link")).unwrap();
        // A whiteout as overlay writes it needs mknod (root); test it when we can.
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let p = CString::new(upper.join("etc/gone").as_os_str().as_bytes()).unwrap();
            // SAFETY: p is NUL-terminated.
            assert_eq!(unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR, 0) }, 0);
        }
        let bytes = write_layer(&upper, Vec::new()).unwrap();
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(bytes.as_slice());
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            names.push((
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            ));
        }
        let want_gone = ("etc/.wh.gone".to_string(), EntryType::Regular);
        assert_eq!(names.contains(&want_gone), root);
        assert!(names.contains(&("etc/".into(), EntryType::Directory)));
        assert!(names.contains(&("etc/b".into(), EntryType::Regular)));
        assert!(names.contains(&("etc/conf.d/a".into(), EntryType::Link)));
        assert!(names.contains(&("etc/link".into(), EntryType::Symlink)));
        // Read back with the layer applier: the same tree.
        let back = tmp.path().join("back");
        fs::create_dir(&back).unwrap();
        crate::apply_layer(&mut bytes.as_slice(), &back, &Default::default()).unwrap();
        assert_eq!(fs::read_to_string(back.join("etc/conf.d/a")).unwrap(), "a");
        assert_eq!(
            fs::read_link(back.join("etc/link")).unwrap().to_str(),
            Some("conf.d/a")
        );
        assert_eq!(
            fs::metadata(back.join("etc/b")).unwrap().ino(),
            fs::metadata(back.join("etc/conf.d/a")).unwrap().ino()
        );
        if root {
            let m = fs::symlink_metadata(back.join("etc/gone")).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0);
        }
    }
}
