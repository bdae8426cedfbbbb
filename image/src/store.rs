//! Image records: name → manifest digest, config digest, layers, top chain ID.
//!
//! One JSON file per name under `<root>/images/`, written to a temp file, fsynced and
//! renamed, so a record exists only once everything it points at is in place. (The
//! daemon keeps its own database; this store is what the library and its tests use.)

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use berth_snapshotter::{ContentStore, Digest, Snapshotter};
use serde::{Deserialize, Serialize};

use crate::manifest::Descriptor;

/// Image store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("image record {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("garbage collection: {0}")]
    Gc(String),
}

/// What berth knows about one named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The normalised reference (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The digest of the index the manifest was selected from, if any.
    pub index_digest: Option<Digest>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    /// Layer descriptors (compressed blobs), bottom first.
    pub layers: Vec<Descriptor>,
    /// Diff IDs of the layers, bottom first.
    pub diff_ids: Vec<Digest>,
    /// The snapshot of the top layer (`None` for an image without layers).
    pub chain_id: Option<Digest>,
    /// Sum of the compressed layer sizes.
    pub size: u64,
    pub created: u64,
}

impl ImageRecord {
    /// Every blob this image needs kept.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out = vec![self.manifest_digest.clone(), self.config_digest.clone()];
        out.extend(self.index_digest.clone());
        out.extend(self.layers.iter().map(|l| l.digest.clone()));
        out
    }
}

/// Named image records under `<root>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let dir = root.join("images");
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(ImageStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Digest::of(name.as_bytes()).hex()))
    }

    /// Writes (or replaces) a record atomically.
    pub fn put(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let path = self.path(&record.name);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|source| StoreError::Io {
            op: "write",
            path,
            source,
        })
    }

    /// The record named `name` (normalised), if any.
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StoreError::Json { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// Every record.
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            op: "list",
            path: self.dir.clone(),
            source,
        })? {
            let entry = entry.map_err(|source| StoreError::Io {
                op: "list",
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let b = fs::read(&path).map_err(|source| StoreError::Io {
                op: "read",
                path: path.clone(),
                source,
            })?;
            out.push(
                serde_json::from_slice(&b).map_err(|source| StoreError::Json { path, source })?,
            );
        }
        out.sort_by(|a: &ImageRecord, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Gives the image `source` another name.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord, StoreError> {
        let mut rec = self
            .get(source)?
            .ok_or_else(|| StoreError::NotFound(source.to_string()))?;
        rec.name = target.to_string();
        self.put(&rec)?;
        Ok(rec)
    }

    /// Removes the name `name`; returns the removed record. Content is only freed by
    /// [`ImageStore::gc`], once no name refers to it.
    pub fn remove(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let rec = self
            .get(name)?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let path = self.path(name);
        fs::remove_file(&path).map_err(|source| StoreError::Io {
            op: "remove",
            path,
            source,
        })?;
        Ok(rec)
    }

    /// Removes blobs and committed snapshots no remaining image refers to (shared
    /// layers stay while any image uses them). Active snapshots (containers) and their
    /// parents are always kept. Returns (blobs removed, snapshots removed).
    pub fn gc(
        &self,
        content: &ContentStore,
        snapshots: &Snapshotter,
    ) -> Result<(usize, usize), StoreError> {
        let records = self.list()?;
        let blobs: HashSet<Digest> = records.iter().flat_map(|r| r.blobs()).collect();
        let chains: HashSet<String> = records
            .iter()
            .flat_map(|r| berth_snapshotter::digest::chain_ids(&r.diff_ids))
            .map(|d| d.to_string())
            .collect();
        let removed_snaps = snapshots
            .gc(&chains)
            .map_err(|e| StoreError::Gc(e.to_string()))?;
        let removed_blobs = content
            .gc(&blobs)
            .map_err(|e| StoreError::Gc(e.to_string()))?;
        Ok((removed_blobs.len(), removed_snaps.len()))
    }
}
