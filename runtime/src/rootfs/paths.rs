//! Resolving a path inside the container root without escaping it through `..`
//! or symlinks (every symlink is resolved relative to the root).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// `root` joined with `unsafe_path`, symlinks resolved inside `root`.
/// The last component may not exist yet (it is then appended as is).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> PathBuf {
    let mut parts: Vec<PathBuf> = Vec::new(); // resolved components below root
    let mut pending: Vec<std::ffi::OsString> = unsafe_path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            parts.pop();
            continue;
        }
        let mut cur = root.to_path_buf();
        cur.extend(parts.iter());
        cur.push(&name);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(target) = fs::read_link(&cur) else {
                    parts.push(PathBuf::from(&name));
                    continue;
                };
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => parts.push(PathBuf::from(&name)),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts.iter());
    out
}

/// A path as a C string for syscalls.
pub fn cstr(p: &Path) -> std::ffi::CString {
    // Paths from the spec cannot contain NUL bytes (JSON strings could: replace them).
    let bytes: Vec<u8> = p
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == 0 { b'_' } else { b })
        .collect();
    std::ffi::CString::new(bytes).unwrap_or_default()
}

#[allow(dead_code)]
pub(crate) fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("../../../../x", root.join("a/up")).unwrap();
        assert_eq!(secure_join(root, Path::new("/a/b/c")), root.join("a/b/c"));
        assert_eq!(
            secure_join(root, Path::new("/a/link/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, Path::new("/a/up/y")), root.join("x/y"));
        assert_eq!(secure_join(root, Path::new("/../../etc")), root.join("etc"));
    }
}
