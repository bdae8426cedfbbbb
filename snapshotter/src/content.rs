//! The content store: sha256-addressed blobs under `<root>/content/blobs/sha256/<hex>`.
//!
//! A blob is written to a temp file under `<root>/content/ingest/`, hashed and counted as
//! it is written, refused as soon as it passes its declared size, checked against its
//! declared digest, fsynced and renamed into place. A blob file therefore only ever
//! exists complete and verified; an interrupted write leaves a temp file that the next
//! [`ContentStore::open`] removes.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Errors of the content store, each naming the blob or path involved.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("content store: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    #[error("blob {expected}: content has digest {actual} (corrupt or tampered download)")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: {actual} bytes written but {expected} declared")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest}: larger than its declared size of {expected} bytes")]
    TooLarge { digest: String, expected: u64 },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// A sha256-addressed blob store rooted at `<root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`, removing temp files that an
    /// interrupted write left behind.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let blobs = root.join("content/blobs/sha256");
        let ingest = root.join("content/ingest");
        fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(io_err("clean", &ingest))?;
        }
        fs::create_dir_all(&ingest).map_err(io_err("create", &ingest))?;
        Ok(ContentStore { blobs, ingest })
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Size of the blob, or `NotFound`.
    pub fn info(&self, digest: &Digest) -> Result<BlobInfo, ContentError> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(BlobInfo {
                digest: digest.clone(),
                size: m.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens the blob for reading.
    pub fn read(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest.clone())
            } else {
                io_err("open", &path)(e)
            }
        })
    }

    /// Reads a whole blob, refusing one larger than `limit` bytes (manifests, configs).
    pub fn read_all(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ContentError> {
        let file = self.read(digest)?;
        let mut out = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(io_err("read", &self.path(digest)))?;
        if out.len() as u64 > limit {
            return Err(ContentError::TooLarge {
                digest: digest.to_string(),
                expected: limit,
            });
        }
        Ok(out)
    }

    /// Deletes a blob; deleting an absent blob is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let entry = entry.map_err(io_err("list", &self.blobs))?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
            out.push(BlobInfo {
                digest,
                size: meta.len(),
            });
        }
        Ok(out)
    }

    /// Deletes every blob not in `referenced`; returns the deleted blobs.
    pub fn gc(&self, referenced: &HashSet<Digest>) -> Result<Vec<BlobInfo>, ContentError> {
        let mut removed = Vec::new();
        for blob in self.list()? {
            if !referenced.contains(&blob.digest) {
                self.delete(&blob.digest)?;
                tracing::debug!(digest = %blob.digest, "content gc: removed blob");
                removed.push(blob);
            }
        }
        Ok(removed)
    }

    /// Starts writing a blob. With `expected`, writes past its size fail at once and
    /// [`Ingest::commit`] checks digest and size; without, the blob is stored under the
    /// digest of what was written.
    pub fn ingest(&self, expected: Option<BlobInfo>) -> Result<Ingest, ContentError> {
        let tmp = tempfile_in(&self.ingest)?;
        Ok(Ingest {
            store: self.clone(),
            file: Some(tmp.0),
            tmp_path: tmp.1,
            hasher: Sha256::new(),
            written: 0,
            expected,
        })
    }

    /// Writes `bytes` as a blob (verified against `expected` if given).
    pub fn write_blob(
        &self,
        bytes: &[u8],
        expected: Option<BlobInfo>,
    ) -> Result<BlobInfo, ContentError> {
        let mut ingest = self.ingest(expected)?;
        ingest.write_all_checked(bytes)?;
        ingest.commit()
    }
}

fn tempfile_in(dir: &Path) -> Result<(File, PathBuf), ContentError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}.tmp", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
    Err(ContentError::Io {
        op: "create temp file",
        path: dir.to_path_buf(),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// A blob being written. Dropped without [`Ingest::commit`], it leaves nothing behind.
pub struct Ingest {
    store: ContentStore,
    file: Option<File>,
    tmp_path: PathBuf,
    hasher: Sha256,
    written: u64,
    expected: Option<BlobInfo>,
}

impl Ingest {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn label(&self) -> String {
        match &self.expected {
            Some(e) => e.digest.to_string(),
            None => "(unknown digest)".to_string(),
        }
    }

    /// Appends `bytes`, failing with [`ContentError::TooLarge`] past the declared size.
    pub fn write_all_checked(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        if let Some(exp) = &self.expected {
            if self.written + bytes.len() as u64 > exp.size {
                return Err(ContentError::TooLarge {
                    digest: self.label(),
                    expected: exp.size,
                });
            }
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        let path = self.tmp_path.clone();
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes).map_err(io_err("write", &path)),
            None => Err(io_err("write", &path)(io::Error::other(
                "ingest already finished",
            ))),
        }
    }

    /// Verifies digest and size, fsyncs and renames the blob into place.
    pub fn commit(mut self) -> Result<BlobInfo, ContentError> {
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(exp) = &self.expected {
            if self.written != exp.size {
                return Err(ContentError::SizeMismatch {
                    digest: exp.digest.to_string(),
                    expected: exp.size,
                    actual: self.written,
                });
            }
            if actual != exp.digest {
                return Err(ContentError::DigestMismatch {
                    expected: exp.digest.clone(),
                    actual,
                });
            }
        }
        let file = self.file.take();
        if let Some(f) = file {
            f.sync_all().map_err(io_err("fsync", &self.tmp_path))?;
        }
        let dest = self.store.path(&actual);
        fs::rename(&self.tmp_path, &dest).map_err(io_err("rename", &dest))?;
        if let Some(parent) = dest.parent() {
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(BlobInfo {
            digest: actual,
            size: self.written,
        })
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all_checked(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp_path.exists() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_verify_read_gc() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let info = store.write_blob(b"hello", None).unwrap();
        assert_eq!(info.digest, Digest::of(b"hello"));
        assert_eq!(store.read_all(&info.digest, 100).unwrap(), b"hello");
        assert!(matches!(
            store.read_all(&info.digest, 2),
            Err(ContentError::TooLarge { .. })
        ));

        let wrong = BlobInfo {
            digest: Digest::of(b"other"),
            size: 5,
        };
        assert!(matches!(
            store.write_blob(b"hello", Some(wrong)),
            Err(ContentError::DigestMismatch { .. })
        ));
        let short = BlobInfo {
            digest: Digest::of(b"hel"),
            size: 3,
        };
        assert!(matches!(
            store.write_blob(b"hello", Some(short)),
            Err(ContentError::TooLarge { .. })
        ));
        assert_eq!(
            fs::read_dir(dir.path().join("content/ingest"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(store.list().unwrap().len(), 1);

        let keep = store.write_blob(b"keep", None).unwrap();
        let removed = store.gc(&HashSet::from([keep.digest.clone()])).unwrap();
        assert_eq!(removed, vec![info.clone()]);
        assert!(store.contains(&keep.digest));
        assert!(matches!(
            store.info(&info.digest),
            Err(ContentError::NotFound(_))
        ));
    }
}
