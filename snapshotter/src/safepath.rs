//! Resolving tar entry names inside a directory without ever leaving it.
//!
//! An entry name is cleaned lexically (`.` dropped; `..` and absolute names refused),
//! then its parent directories are walked one component at a time with `lstat`: a
//! missing parent is created as a directory (mode 0755), a parent that is a symlink or
//! not a directory makes the entry refused. The directory being filled belongs to the
//! applier alone while a layer is applied, so nothing can swap a component between the
//! check and the use.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

/// Why an entry name cannot be placed inside the root.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("entry {0:?}: absolute path refused")]
    Absolute(String),
    #[error("entry {0:?}: `..` component refused (would leave the layer)")]
    DotDot(String),
    #[error("entry {name:?}: parent {parent:?} is a symlink; refusing to write through it")]
    ThroughSymlink { name: String, parent: String },
    #[error("entry {name:?}: parent {parent:?} is not a directory")]
    NotDir { name: String, parent: String },
    #[error("entry {name:?}: {op} {path}: {source}")]
    Io {
        name: String,
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Cleans a tar entry name into a relative path with only normal components; the empty
/// path stands for the root itself.
pub fn clean(name: &[u8]) -> Result<PathBuf, PathError> {
    let display = String::from_utf8_lossy(name).into_owned();
    let path = Path::new(OsStr::from_bytes(name));
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute(display)),
            Component::ParentDir => return Err(PathError::DotDot(display)),
            Component::CurDir => {}
            Component::Normal(c) => out.push(c),
        }
    }
    Ok(out)
}

/// Walks and creates parent directories of relative paths inside one root, remembering
/// those already checked.
pub struct Resolver {
    root: PathBuf,
    checked: HashSet<PathBuf>,
}

impl Resolver {
    pub fn new(root: &Path) -> Self {
        Resolver {
            root: root.to_path_buf(),
            checked: HashSet::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Forgets checked directories: call after removing or replacing anything.
    pub fn invalidate(&mut self) {
        self.checked.clear();
    }

    /// Ensures every parent of `rel` is a real directory inside the root (creating
    /// missing ones) and returns the full path of `rel`.
    pub fn prepare_parent(&mut self, rel: &Path) -> Result<PathBuf, PathError> {
        if let Some(parent) = rel.parent() {
            self.ensure_dir(parent, rel)?;
        }
        Ok(self.root.join(rel))
    }

    /// Ensures `dir` (relative) and all its parents are real directories.
    pub fn ensure_dir(&mut self, dir: &Path, for_entry: &Path) -> Result<(), PathError> {
        if dir.as_os_str().is_empty() || self.checked.contains(dir) {
            return Ok(());
        }
        let mut sofar = PathBuf::new();
        for comp in dir.components() {
            sofar.push(comp);
            if self.checked.contains(&sofar) {
                continue;
            }
            let full = self.root.join(&sofar);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(PathError::ThroughSymlink {
                        name: for_entry.display().to_string(),
                        parent: sofar.display().to_string(),
                    })
                }
                Ok(m) if !m.is_dir() => {
                    return Err(PathError::NotDir {
                        name: for_entry.display().to_string(),
                        parent: sofar.display().to_string(),
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(|source| PathError::Io {
                            name: for_entry.display().to_string(),
                            op: "mkdir",
                            path: full.clone(),
                            source,
                        })?;
                }
                Err(source) => {
                    return Err(PathError::Io {
                        name: for_entry.display().to_string(),
                        op: "lstat",
                        path: full,
                        source,
                    })
                }
            }
            self.checked.insert(sofar.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_refuses_escapes() {
        assert_eq!(clean(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(clean(b"./").unwrap(), PathBuf::new());
        assert!(matches!(clean(b"/etc/passwd"), Err(PathError::Absolute(_))));
        assert!(matches!(clean(b"a/../../x"), Err(PathError::DotDot(_))));
        assert!(matches!(clean(b"../x"), Err(PathError::DotDot(_))));
    }

    #[test]
    fn refuses_symlink_parent() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        let mut r = Resolver::new(dir.path());
        assert!(matches!(
            r.prepare_parent(Path::new("link/x")),
            Err(PathError::ThroughSymlink { .. })
        ));
        let p = r.prepare_parent(Path::new("a/b/c")).unwrap();
        assert_eq!(p, dir.path().join("a/b/c"));
        assert!(dir.path().join("a/b").is_dir());
    }
}
