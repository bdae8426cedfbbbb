//! The extended attributes a tar carries, as Docker writes them: a PAX record
//! `SCHILY.xattr.<name>` per attribute in the extended header before the entry.
//!
//! Only `user.*` attributes and `security.capability` (file capabilities) travel:
//! `trusted.*` is overlayfs's own bookkeeping and `security.selinux` and the like
//! belong to the host's policy, not to the files. Used by the layer writer
//! ([`crate::diff`]) and by the engine's `cp`/`export` archives; the layer applier
//! ([`crate::apply`]) reads the records back.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The PAX record key prefix Docker, GNU tar and Go's archive/tar use.
pub const PAX_PREFIX: &str = "SCHILY.xattr.";

/// Whether an attribute of this name is archived and applied.
pub fn carried(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// The carried attributes of an open file or directory, in name order.
pub fn read_fd(fd: BorrowedFd) -> io::Result<Vec<(String, Vec<u8>)>> {
    let raw = fd.as_raw_fd();
    read(
        // SAFETY: valid fd; the buffer and its length are passed together.
        |buf| unsafe { libc::flistxattr(raw, buf.as_mut_ptr().cast(), buf.len()) },
        // SAFETY: valid fd and C string; the buffer and its length go together.
        |name, buf| unsafe {
            libc::fgetxattr(raw, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        },
    )
}

/// The carried attributes of `path`, its last component not followed.
pub fn read_path(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    read(
        // SAFETY: valid C string; the buffer and its length are passed together.
        |buf| unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
        // SAFETY: valid C strings; the buffer and its length go together.
        |name, buf| unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        },
    )
}

/// Lists with one call in the common case (no attributes, or a few short names),
/// asking for the size only when the first buffer is too small.
fn read(
    list: impl Fn(&mut [u8]) -> isize,
    get: impl Fn(&CStr, &mut [u8]) -> isize,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        let n = list(&mut names);
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // No xattr support on this filesystem: nothing to carry.
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Some(libc::ERANGE) => {
                let want = list(&mut []);
                if want < 0 {
                    return Err(io::Error::last_os_error());
                }
                names = vec![0u8; want as usize + 64];
            }
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        if !carried(name) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(name) else {
            continue;
        };
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut value = vec![0u8; 256];
        loop {
            let got = get(&cname, &mut value);
            if got >= 0 {
                value.truncate(got as usize);
                out.push((text.to_string(), value));
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Removed since the listing.
                Some(libc::ENODATA) => break,
                Some(libc::ERANGE) => {
                    let want = get(&cname, &mut []);
                    if want < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    value = vec![0u8; want as usize + 64];
                }
                _ => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Sets one attribute on an open file or directory.
pub fn set_fd(fd: BorrowedFd, name: &str, value: &[u8]) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid fd and C string; value points to value.len() readable bytes.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A tar stream read through unchanged while its PAX extended headers' `SCHILY.xattr.`
/// records are noted, by the offset of the header of the entry they belong to (what
/// `tar::Entry::raw_header_position` says). The tar crate's own PAX reader splits
/// records at every newline, so it cannot read a binary value holding one (a
/// `security.capability` often does); records are length-prefixed, and read so here.
pub struct XattrTap<R> {
    inner: R,
    /// Bytes of the stream handed out so far.
    pos: u64,
    state: TapState,
    /// The records of the last extended header, for the next entry.
    pending: Vec<(String, Vec<u8>)>,
    /// A PAX `size` record for the next entry.
    pax_size: Option<u64>,
    found: Found,
}

/// The attributes noted by an [`XattrTap`], by entry header offset.
pub type Found =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, Vec<(String, Vec<u8>)>>>>;

enum TapState {
    /// Gathering a header block.
    Header(Box<[u8; 512]>, usize),
    /// Gathering an extended header's records (`left` bytes still to come).
    Pax(Vec<u8>, u64),
    /// Passing over data and padding.
    Skip(u64),
}

impl<R: io::Read> XattrTap<R> {
    pub fn new(inner: R) -> Self {
        XattrTap {
            inner,
            pos: 0,
            state: TapState::Header(Box::new([0; 512]), 0),
            pending: Vec::new(),
            pax_size: None,
            found: Found::default(),
        }
    }

    /// Where the attributes go; take an entry's with [`take`].
    pub fn found(&self) -> Found {
        self.found.clone()
    }

    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                TapState::Header(block, filled) => {
                    let n = (512 - *filled).min(data.len());
                    block[*filled..*filled + n].copy_from_slice(&data[..n]);
                    *filled += n;
                    data = &data[n..];
                    if *filled < 512 {
                        continue;
                    }
                    let at = self.pos - data.len() as u64 - 512;
                    let block = std::mem::replace(block, Box::new([0; 512]));
                    self.state = TapState::Header(Box::new([0; 512]), 0);
                    self.header(&block, at);
                }
                TapState::Pax(buf, left) => {
                    let n = (*left).min(data.len() as u64) as usize;
                    buf.extend_from_slice(&data[..n]);
                    *left -= n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        let buf = std::mem::take(buf);
                        let pad = (512 - buf.len() as u64 % 512) % 512;
                        self.state = TapState::Skip(pad);
                        self.records(&buf);
                    }
                }
                TapState::Skip(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = TapState::Header(Box::new([0; 512]), 0);
                    }
                }
            }
            if let TapState::Skip(0) = self.state {
                self.state = TapState::Header(Box::new([0; 512]), 0);
            }
        }
    }

    fn header(&mut self, block: &[u8; 512], at: u64) {
        if block.iter().all(|b| *b == 0) {
            return;
        }
        let h = tar::Header::from_byte_slice(block);
        let size = h.entry_size().unwrap_or(0);
        let padded = |n: u64| n.div_ceil(512) * 512;
        match h.entry_type() {
            tar::EntryType::XHeader => {
                // Extended headers are small; a huge one is not read into memory.
                if size <= 1 << 20 {
                    self.state = TapState::Pax(Vec::with_capacity(size as usize), size);
                    if size == 0 {
                        self.state = TapState::Header(Box::new([0; 512]), 0);
                    }
                } else {
                    self.state = TapState::Skip(padded(size));
                }
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {
                self.state = TapState::Skip(padded(size));
            }
            _ => {
                let size = self.pax_size.take().unwrap_or(size);
                let x = std::mem::take(&mut self.pending);
                if !x.is_empty() {
                    if let Ok(mut f) = self.found.lock() {
                        f.insert(at, x);
                    }
                }
                self.state = TapState::Skip(padded(size));
            }
        }
    }

    /// `<length> <key>=<value>\n` records, the length counting the whole record.
    fn records(&mut self, mut buf: &[u8]) {
        while let Some(sp) = buf.iter().position(|b| *b == b' ') {
            let Some(len) = std::str::from_utf8(&buf[..sp])
                .ok()
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > sp + 1 && *l <= buf.len())
            else {
                return;
            };
            let record = &buf[sp + 1..len - 1];
            buf = &buf[len..];
            let Some(eq) = record.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            if let Some(name) = key.strip_prefix(PAX_PREFIX.as_bytes()) {
                if let Ok(name) = std::str::from_utf8(name) {
                    self.pending.push((name.to_string(), value.to_vec()));
                }
            } else if key == b"size" {
                self.pax_size = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
        }
    }
}

impl<R: io::Read> io::Read for XattrTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        self.observe(&buf[..n]);
        Ok(n)
    }
}

/// The attributes of the entry whose header is at `at` (all `SCHILY.xattr.` records;
/// [`carried`] says which `cp` keeps).
pub fn take(found: &Found, at: u64) -> Vec<(String, Vec<u8>)> {
    found
        .lock()
        .ok()
        .and_then(|mut f| f.remove(&at))
        .unwrap_or_default()
}

/// The body of a PAX extended header (`x`) holding `xattrs` as `SCHILY.xattr.`
/// records: each record is `<length> <key>=<value>\n`, the length counting itself.
pub fn pax_body(xattrs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in xattrs {
        // " " + key + "=" + value + "\n"
        let rest = 1 + PAX_PREFIX.len() + name.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(PAX_PREFIX.as_bytes());
        body.extend_from_slice(name.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_read_back_with_the_tar_crate() {
        let xattrs = vec![
            // A newline in a binary value, which the tar crate's PAX reader
            // cannot split right.
            (
                "security.capability".to_string(),
                vec![1u8, 0, 0, 2, 0, 10, 0x20, 0],
            ),
            ("user.k".to_string(), b"v".repeat(95)),
        ];
        let body = pax_body(&xattrs);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(body.len() as u64);
        h.set_path("PaxHeader").unwrap();
        h.set_cksum();
        b.append(&h, body.as_slice()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_path("f").unwrap();
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        // Read in small pieces: the tap sees headers split across reads.
        let tap = XattrTap::new(Chunks(data.as_slice()));
        let found = tap.found();
        let mut ar = tar::Archive::new(tap);
        let mut entries = ar.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("f"));
        assert_eq!(take(&found, e.raw_header_position()), xattrs);
        assert!(entries.next().is_none());
    }

    struct Chunks<'a>(&'a [u8]);

    impl io::Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(100);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn only_user_and_capability_attributes_travel() {
        assert!(carried(b"user.mime_type"));
        assert!(carried(b"security.capability"));
        assert!(!carried(b"trusted.overlay.opaque"));
        assert!(!carried(b"security.selinux"));
    }
}
