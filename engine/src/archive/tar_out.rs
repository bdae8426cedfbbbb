//! Writes the tar of one object of the container: a file, a link, or a directory
//! with everything under it. Directories are walked through fds (`openat` of one
//! name with `O_NOFOLLOW`), so a link swapped in during the walk is archived as a
//! link, never followed. Files' and directories' `user.*` and
//! `security.capability` attributes go before their entries in PAX `SCHILY.xattr.`
//! records, as Docker writes them.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::fsutil::{cstring, list_dir, lstat_at, open_at, readlink_at};
use super::view::View;
use super::Target;

pub fn write<W: Write>(view: &View, target: Target, rebase: &str, out: W) -> io::Result<()> {
    let _ = view;
    let mut w = Writer::new(out);
    match target {
        Target::Itself(fd) => {
            let st = super::fsutil::fstat(fd.as_fd())?;
            let dir = open_at(fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            w.dir(dir, &st, rebase.as_bytes())?;
        }
        Target::Entry { parent, name } => {
            let st = lstat_at(parent.as_fd(), &name)?;
            w.entry(parent.as_fd(), &name, &st, rebase.as_bytes())?;
        }
    }
    w.finish()
}

/// The tar of the whole root: its entries at the top (`bin/`, `etc/passwd`), as
/// `docker export` writes them.
pub fn write_root<W: Write>(view: &View, out: W) -> io::Result<()> {
    let mut w = Writer::new(out);
    let dir = open_at(view.root(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for child in list_dir(dir.try_clone()?)? {
        let c = cstring(&child)?;
        let st = match lstat_at(dir.as_fd(), &c) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        w.entry(dir.as_fd(), &c, &st, &child)?;
    }
    w.finish()
}

/// Copies file data in large reads; the tar crate's builder copies 8 KiB at a time.
const COPY_BUF: usize = 1 << 20;

struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Hard links: (dev, ino) of files with more than one link → their first name.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Self {
        Writer {
            out,
            buf: vec![0; COPY_BUF],
            links: HashMap::new(),
        }
    }

    /// The end-of-archive blocks.
    fn finish(mut self) -> io::Result<()> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()
    }

    /// Writes a header block, then `size` bytes of `body` padded to a block.
    fn raw(&mut self, h: &tar::Header, size: u64, mut body: impl Read) -> io::Result<()> {
        self.out.write_all(h.as_bytes())?;
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = body.read(&mut self.buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its header",
                ));
            }
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        let pad = (512 - (size % 512) as usize) % 512;
        self.out.write_all(&[0u8; 512][..pad])
    }
    fn entry(
        &mut self,
        parent: BorrowedFd,
        name: &CStr,
        st: &libc::stat,
        tar_name: &[u8],
    ) -> io::Result<()> {
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let dir = match open_at(parent, name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                    Ok(d) => d,
                    // Swapped for something else meanwhile: archive what is there now.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ENOTDIR)
                            || e.raw_os_error() == Some(libc::ELOOP) =>
                    {
                        let st = lstat_at(parent, name)?;
                        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                            return Err(e);
                        }
                        return self.entry(parent, name, &st, tar_name);
                    }
                    // Gone since it was listed: skipped, as tar(1) does.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let st = super::fsutil::fstat(dir.as_fd())?;
                self.dir(dir, &st, tar_name)
            }
            libc::S_IFREG => self.file(parent, name, st, tar_name),
            libc::S_IFLNK => {
                let target = match readlink_at(parent, name) {
                    Ok(t) => t,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        // Replaced by something else since its lstat.
                        let st = lstat_at(parent, name)?;
                        return self.entry(parent, name, &st, tar_name);
                    }
                    Err(e) => return Err(e),
                };
                let mut h = header(st, tar::EntryType::Symlink);
                self.append(&mut h, tar_name, Some(&target), io::empty())
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header(st, kind);
                if kind != tar::EntryType::Fifo {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
                self.append(&mut h, tar_name, None, io::empty())
            }
            // Sockets are not archived (as dockerd).
            _ => Ok(()),
        }
    }

    fn dir(&mut self, dir: OwnedFd, st: &libc::stat, tar_name: &[u8]) -> io::Result<()> {
        let mut name = tar_name.to_vec();
        if !name.ends_with(b"/") {
            name.push(b'/');
        }
        self.xattrs(dir.as_fd())?;
        let mut h = header(st, tar::EntryType::Directory);
        self.append(&mut h, &name, None, io::empty())?;
        for child in list_dir(dir.try_clone()?)? {
            let c = cstring(&child)?;
            let cst = match lstat_at(dir.as_fd(), &c) {
                Ok(s) => s,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let mut child_name = name.clone();
            child_name.extend_from_slice(&child);
            self.entry(dir.as_fd(), &c, &cst, &child_name)?;
        }
        Ok(())
    }

    fn file(
        &mut self,
        parent: BorrowedFd,
        name: &CStr,
        st: &libc::stat,
        tar_name: &[u8],
    ) -> io::Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = header(st, tar::EntryType::Link);
                h.set_size(0);
                return self.append(&mut h, tar_name, Some(&first), io::empty());
            }
            self.links.insert(key, tar_name.to_vec());
        }
        // O_NONBLOCK: a fifo swapped in must not hang the copy.
        let fd = match open_at(parent, name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                let st = lstat_at(parent, name)?;
                return self.entry(parent, name, &st, tar_name);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        let st = super::fsutil::fstat(fd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return self.entry(parent, name, &st, tar_name);
        }
        self.xattrs(fd.as_fd())?;
        let file = std::fs::File::from(fd);
        let mut h = header(&st, tar::EntryType::Regular);
        let size = st.st_size.max(0) as u64;
        // A file that shrinks while read is padded, one that grows is cut: the
        // header's size is what the reader of the tar counts on.
        let body = file.take(size).chain(io::repeat(0)).take(size);
        self.append(&mut h, tar_name, None, body)
    }

    /// A PAX extended header with the carried attributes of `fd`, when it has any
    /// (the next entry is the one they belong to).
    fn xattrs(&mut self, fd: BorrowedFd) -> io::Result<()> {
        let x = berth_snapshotter::xattrs::read_fd(fd)?;
        if x.is_empty() {
            return Ok(());
        }
        let body = berth_snapshotter::xattrs::pax_body(&x);
        let mut h = tar::Header::new_ustar();
        let name = b"././@PaxHeader";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(body.len() as u64);
        h.set_cksum();
        self.raw(&h, body.len() as u64, body.as_slice())
    }

    /// Appends an entry, with GNU long-name records for names over 100 bytes.
    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        body: impl Read,
    ) -> io::Result<()> {
        if let Some(link) = link {
            if link.len() > 100 {
                self.long(b'K', link)?;
            }
            let l = &mut h.as_old_mut().linkname;
            let n = link.len().min(100);
            l[..n].copy_from_slice(&link[..n]);
        }
        if name.len() > 100 {
            self.long(b'L', name)?;
        }
        let field = &mut h.as_old_mut().name;
        let n = name.len().min(100);
        field[..n].copy_from_slice(&name[..n]);
        h.set_cksum();
        let size = h.size()?;
        self.raw(h, size, body)
    }

    fn long(&mut self, kind: u8, value: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let name = b"././@LongLink";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(kind));
        let mut data = value.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.raw(&h, data.len() as u64, data.as_slice())
    }
}

fn header(st: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(if kind == tar::EntryType::Regular {
        st.st_size.max(0) as u64
    } else {
        0
    });
    h
}
