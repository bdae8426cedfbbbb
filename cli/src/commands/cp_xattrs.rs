//! The extended attributes `berth cp` carries, on the host side: `user.*` and
//! `security.capability` (what berthd archives and applies too), read from and set
//! on host paths; the snapshotter's `xattrs` module reads and writes the records
//! (PAX `SCHILY.xattr.`, Docker's form) and finds them under the tar reader.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_snapshotter::xattrs::{read_path, PAX_PREFIX};

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// The carried attributes of `path` (not followed), as PAX records' keys and values.
pub fn pax_of(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    Ok(read_path(path)?
        .into_iter()
        .map(|(k, v)| (format!("{PAX_PREFIX}{k}"), v))
        .collect())
}

/// Sets attributes on `path` (not followed). One the filesystem does not support is
/// skipped with a warning on stderr, as the docker CLI does.
pub fn set(path: &Path, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let c = cpath(path)?;
    for (name, value) in xattrs {
        let k = CString::new(name.as_str())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: valid C strings; value points to value.len() readable bytes.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                k.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                eprintln!(
                    "warning: {}: extended attribute {name} not supported by the filesystem: skipped",
                    path.display()
                );
                continue;
            }
            return Err(io::Error::new(
                e.kind(),
                format!("setting {name} on {}: {e}", path.display()),
            ));
        }
    }
    Ok(())
}
