//! Overlay snapshots keyed by name (chain IDs for committed image layers).
//!
//! On disk: `<root>/snapshots/<id>/fs` (the layer or writable upper),
//! `<root>/snapshots/<id>/work` (overlay's workdir, active snapshots only) and one
//! metadata file per snapshot, `<root>/snapshots/meta/<sha256 of key>.json`, written to
//! a temp file, fsynced and renamed. Numeric ids keep lowerdir paths short. Directories
//! are created before their metadata and removed after it, so a crash leaves at worst an
//! orphan directory, which [`Snapshotter::open`] deletes.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::mount::Mount;

/// Snapshotter errors, naming the snapshot key involved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0:?} already exists")]
    Exists(String),
    #[error("snapshot {0:?} not found")]
    NotFound(String),
    #[error("snapshot {key:?}: parent {parent:?} is not a committed snapshot")]
    ParentNotCommitted { key: String, parent: String },
    #[error("snapshot {key:?} is {kind:?}, expected {expected:?}")]
    WrongKind {
        key: String,
        kind: Kind,
        expected: Kind,
    },
    #[error("snapshot {key:?} has children ({children:?}); remove them first")]
    HasChildren { key: String, children: Vec<String> },
    #[error("snapshot {key:?}: {op} {path}: {source}")]
    Io {
        key: String,
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("snapshot metadata {path}: {source}")]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable, from `prepare`.
    Active,
    /// Read-only, from `view`.
    View,
    /// Immutable, from `commit`; may be a parent.
    Committed,
}

/// What is recorded about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub key: String,
    pub id: u64,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: u64,
}

/// Disk usage of a snapshot's own directory (hard links counted once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

struct State {
    by_key: BTreeMap<String, SnapshotInfo>,
    next_id: u64,
}

/// The overlay snapshotter rooted at `<root>/snapshots`.
pub struct Snapshotter {
    dir: PathBuf,
    meta_dir: PathBuf,
    state: Mutex<State>,
}

fn io_err<'a>(
    key: &'a str,
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        key: key.to_string(),
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Snapshotter {
    /// Opens (creating if needed) the snapshotter under `root` and removes what a crash
    /// left half done.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        let dir = root.join("snapshots");
        let meta_dir = dir.join("meta");
        fs::create_dir_all(&meta_dir).map_err(io_err("", "create", &meta_dir))?;
        let mut by_key: BTreeMap<String, SnapshotInfo> = BTreeMap::new();
        let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
        for entry in fs::read_dir(&meta_dir).map_err(io_err("", "list", &meta_dir))? {
            let entry = entry.map_err(io_err("", "list", &meta_dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                let _ = fs::remove_file(&path); // a temp file of an interrupted write
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err("", "read", &path))?;
            let info: SnapshotInfo =
                serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Meta {
                    path: path.clone(),
                    source,
                })?;
            // A crash inside commit can leave the active and the committed record of
            // one id: the committed one wins.
            if let Some(other) = by_id.get(&info.id).cloned() {
                let keep_new = info.kind == Kind::Committed;
                let drop_key = if keep_new {
                    other.clone()
                } else {
                    info.key.clone()
                };
                let _ = fs::remove_file(meta_dir.join(meta_name(&drop_key)));
                if keep_new {
                    by_key.remove(&other);
                } else {
                    continue;
                }
            }
            by_id.insert(info.id, info.key.clone());
            by_key.insert(info.key.clone(), info);
        }
        let mut max_id = 0;
        for entry in fs::read_dir(&dir).map_err(io_err("", "list", &dir))? {
            let entry = entry.map_err(io_err("", "list", &dir))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            max_id = max_id.max(id);
            if !by_id.contains_key(&id) {
                tracing::info!(id, "removing orphan snapshot directory");
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(io_err("", "remove orphan", &p))?;
            }
        }
        let next_id = max_id.max(by_id.keys().last().copied().unwrap_or(0)) + 1;
        Ok(Snapshotter {
            dir,
            meta_dir,
            state: Mutex::new(State { by_key, next_id }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// The directory holding a snapshot's files (the layer, or the writable upper).
    pub fn fs_path(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let st = self.lock();
        let info = st
            .by_key
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        Ok(self.id_dir(info.id).join("fs"))
    }

    /// The record of `key`.
    pub fn stat(&self, key: &str) -> Result<SnapshotInfo, SnapshotError> {
        self.lock()
            .by_key
            .get(key)
            .cloned()
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &str) -> bool {
        self.lock().by_key.contains_key(key)
    }

    /// Every snapshot.
    pub fn list(&self) -> Vec<SnapshotInfo> {
        self.lock().by_key.values().cloned().collect()
    }

    /// Creates a writable snapshot on `parent` and returns how to mount it.
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)?;
        self.mounts(key)
    }

    /// Creates a read-only view of `parent` and returns how to mount it.
    pub fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View)?;
        self.mounts(key)
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<(), SnapshotError> {
        let mut st = self.lock();
        if st.by_key.contains_key(key) {
            return Err(SnapshotError::Exists(key.to_string()));
        }
        if let Some(p) = parent {
            match st.by_key.get(p) {
                Some(i) if i.kind == Kind::Committed => {}
                _ => {
                    return Err(SnapshotError::ParentNotCommitted {
                        key: key.to_string(),
                        parent: p.to_string(),
                    })
                }
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        let dir = self.id_dir(id);
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err(key, "create", &fs_dir))?;
        if kind == Kind::Active {
            let work = dir.join("work");
            fs::create_dir_all(&work).map_err(io_err(key, "create", &work))?;
        }
        let info = SnapshotInfo {
            key: key.to_string(),
            id,
            parent: parent.map(str::to_string),
            kind,
            created: now(),
        };
        if let Err(e) = self.write_meta(&info) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        st.by_key.insert(key.to_string(), info);
        Ok(())
    }

    /// The mounts of an active or view snapshot.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let st = self.lock();
        let info = st
            .by_key
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        let mut lowers = Vec::new();
        let mut next = info.parent.clone();
        while let Some(p) = next {
            let pi = st
                .by_key
                .get(&p)
                .ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
            lowers.push(self.id_dir(pi.id).join("fs").display().to_string());
            next = pi.parent.clone();
        }
        let own = self.id_dir(info.id);
        let mount = match info.kind {
            Kind::Active if lowers.is_empty() => Mount {
                kind: "bind".into(),
                source: own.join("fs").display().to_string(),
                options: vec!["rbind".into(), "rw".into()],
            },
            Kind::Active => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("lowerdir={}", lowers.join(":")),
                    format!("upperdir={}", own.join("fs").display()),
                    format!("workdir={}", own.join("work").display()),
                ],
            },
            _ if lowers.len() <= 1 => Mount {
                kind: "bind".into(),
                source: lowers
                    .first()
                    .cloned()
                    .unwrap_or_else(|| own.join("fs").display().to_string()),
                options: vec!["rbind".into(), "ro".into()],
            },
            _ => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![format!("lowerdir={}", lowers.join(":"))],
            },
        };
        Ok(vec![mount])
    }

    /// Commits the active snapshot `key` as the immutable `name` (for builds).
    pub fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.commit_inner(name, key, None)
    }

    /// Commits an unpacked layer: the active snapshot `key` (prepared without a parent,
    /// so layers unpack concurrently) becomes `name` with parent `parent`.
    pub fn commit_layer(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<(), SnapshotError> {
        self.commit_inner(name, key, Some(parent))
    }

    fn commit_inner(
        &self,
        name: &str,
        key: &str,
        parent: Option<Option<&str>>,
    ) -> Result<(), SnapshotError> {
        let mut st = self.lock();
        if st.by_key.contains_key(name) {
            return Err(SnapshotError::Exists(name.to_string()));
        }
        let info = st
            .by_key
            .get(key)
            .cloned()
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        if info.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_string(),
                kind: info.kind,
                expected: Kind::Active,
            });
        }
        let parent = match parent {
            Some(p) => p.map(str::to_string),
            None => info.parent.clone(),
        };
        if let Some(p) = &parent {
            if st.by_key.get(p).map(|i| i.kind) != Some(Kind::Committed) {
                return Err(SnapshotError::ParentNotCommitted {
                    key: name.to_string(),
                    parent: p.clone(),
                });
            }
        }
        let dir = self.id_dir(info.id);
        syncfs(&dir).map_err(io_err(key, "syncfs", &dir))?;
        let committed = SnapshotInfo {
            key: name.to_string(),
            id: info.id,
            parent,
            kind: Kind::Committed,
            created: now(),
        };
        self.write_meta(&committed)?;
        let old = self.meta_dir.join(meta_name(key));
        fs::remove_file(&old).map_err(io_err(key, "remove", &old))?;
        let work = dir.join("work");
        let _ = fs::remove_dir_all(&work);
        st.by_key.remove(key);
        st.by_key.insert(name.to_string(), committed);
        Ok(())
    }

    /// Removes a snapshot that has no children.
    pub fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let mut st = self.lock();
        let info = st
            .by_key
            .get(key)
            .cloned()
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        let children: Vec<String> = st
            .by_key
            .values()
            .filter(|i| i.parent.as_deref() == Some(key))
            .map(|i| i.key.clone())
            .collect();
        if !children.is_empty() {
            return Err(SnapshotError::HasChildren {
                key: key.to_string(),
                children,
            });
        }
        let meta = self.meta_dir.join(meta_name(key));
        fs::remove_file(&meta).map_err(io_err(key, "remove", &meta))?;
        st.by_key.remove(key);
        let dir = self.id_dir(info.id);
        fs::remove_dir_all(&dir).map_err(io_err(key, "remove", &dir))
    }

    /// Disk usage of the snapshot's own files.
    pub fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let path = self.fs_path(key)?;
        let mut usage = Usage::default();
        let mut seen = HashSet::new();
        walk(&path, &mut usage, &mut seen).map_err(io_err(key, "walk", &path))?;
        Ok(usage)
    }

    /// The unpacked size of the snapshot's own files as Docker reports a layer's size
    /// (its `DiffSize`): the apparent sizes of everything but directories (symlinks
    /// count their target's length, whiteouts nothing), each hard-linked inode once.
    pub fn diff_size(&self, key: &str) -> Result<u64, SnapshotError> {
        let path = self.fs_path(key)?;
        let mut size = 0;
        let mut seen = HashSet::new();
        apparent(&path, &mut size, &mut seen).map_err(io_err(key, "walk", &path))?;
        Ok(size)
    }

    /// Committed snapshots whose keys are not in `keep` and that no kept snapshot
    /// depends on are removed; returns the removed keys.
    pub fn gc(&self, keep: &HashSet<String>) -> Result<Vec<String>, SnapshotError> {
        let all = self.list();
        let mut needed: HashSet<String> = HashSet::new();
        for info in &all {
            if keep.contains(&info.key) || info.kind != Kind::Committed {
                let mut next = Some(info.key.clone());
                while let Some(k) = next {
                    next = all
                        .iter()
                        .find(|i| i.key == k)
                        .and_then(|i| i.parent.clone());
                    needed.insert(k);
                }
            }
        }
        let mut removed = Vec::new();
        // Children before parents: repeat until nothing more can go.
        loop {
            let mut progress = false;
            for info in self.list() {
                if !needed.contains(&info.key) && self.remove(&info.key).is_ok() {
                    removed.push(info.key);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        Ok(removed)
    }

    fn write_meta(&self, info: &SnapshotInfo) -> Result<(), SnapshotError> {
        let path = self.meta_dir.join(meta_name(&info.key));
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(info).map_err(|source| SnapshotError::Meta {
            path: path.clone(),
            source,
        })?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.meta_dir)?.sync_all()
        };
        write().map_err(io_err(&info.key, "write metadata", &path))
    }
}

fn meta_name(key: &str) -> String {
    format!("{}.json", Digest::of(key.as_bytes()).hex())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn syncfs(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    // SAFETY: f is an open file descriptor for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn walk(path: &Path, usage: &mut Usage, seen: &mut HashSet<(u64, u64)>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if seen.insert((meta.dev(), meta.ino())) {
        usage.inodes += 1;
        usage.size += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), usage, seen)?;
        }
    }
    Ok(())
}

fn apparent(path: &Path, size: &mut u64, seen: &mut HashSet<(u64, u64)>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            apparent(&entry?.path(), size, seen)?;
        }
    } else if meta.len() > 0 && seen.insert((meta.dev(), meta.ino())) {
        *size += meta.len();
    }
    Ok(())
}
