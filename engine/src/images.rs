//! The engine's image machinery, opened once under `--root` and shared by the front
//! doors (Docker API, CRI) and by container creation.

use std::path::Path;
use std::sync::Arc;

use berth_image::{ImageRecord, ImageStore};
use berth_snapshotter::{ContentStore, Snapshotter};
use tokio::sync::RwLock;

pub use berth_image::resolve;

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("opening the content store under {root}: {source}")]
    Content {
        root: std::path::PathBuf,
        source: berth_snapshotter::ContentError,
    },
    #[error("opening the snapshotter under {root}: {source}")]
    Snapshots {
        root: std::path::PathBuf,
        source: berth_snapshotter::SnapshotError,
    },
    #[error("creating the upload directory {path}: {source}")]
    Uploads {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("opening the image store under {root}: {source}")]
    Images {
        root: std::path::PathBuf,
        source: berth_image::store::StoreError,
    },
}

/// Blobs, snapshots and image records under one root.
pub struct Images {
    pub content: ContentStore,
    pub snapshots: Arc<Snapshotter>,
    pub store: ImageStore,
    /// Held shared by everything that writes content not yet named by a record (pull,
    /// load, import), and exclusively by garbage collection, so a collection never
    /// frees the blobs of an image being written.
    pub gc_lock: RwLock<()>,
    /// Request bodies (load, import) are spooled here; emptied at start.
    pub uploads: std::path::PathBuf,
}

/// The record name that keeps an image whose last tag moved elsewhere (Docker's
/// `<none>:<none>`): its ID, which no normalised reference can look like.
pub fn dangling_name(record: &ImageRecord) -> String {
    record.config_digest.to_string()
}

/// Whether a record is a dangling image (no tag left).
pub fn is_dangling(name: &str) -> bool {
    name.starts_with("sha256:")
}

impl Images {
    /// Opens (creating) `<root>/content`, `<root>/snapshots` and the image database
    /// `<root>/images.db`; the snapshotter removes what a crash left half done, and
    /// records of an older berth get their layers' unpacked sizes measured.
    pub fn open(root: &Path) -> Result<Images, ImagesError> {
        let content = ContentStore::open(root).map_err(|source| ImagesError::Content {
            root: root.to_path_buf(),
            source,
        })?;
        let snapshots = Snapshotter::open(root).map_err(|source| ImagesError::Snapshots {
            root: root.to_path_buf(),
            source,
        })?;
        let store = ImageStore::open(root).map_err(|source| ImagesError::Images {
            root: root.to_path_buf(),
            source,
        })?;
        match store.backfill_diff_sizes(&snapshots) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                images = n,
                "measured the unpacked layer sizes of older image records"
            ),
            // Sizes only: the images work without them, so the daemon still starts.
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure the unpacked layer sizes of older image records")
            }
        }
        let uploads = root.join("uploads");
        // What a crash left of earlier uploads is garbage: start empty.
        let _ = std::fs::remove_dir_all(&uploads);
        std::fs::create_dir_all(&uploads).map_err(|source| ImagesError::Uploads {
            path: uploads.clone(),
            source,
        })?;
        Ok(Images {
            uploads,
            content,
            snapshots: Arc::new(snapshots),
            store,
            gc_lock: RwLock::new(()),
        })
    }

    /// Keeps the image `old` as a dangling record when its name now points at another
    /// image and no other name refers to it (as Docker leaves `<none>:<none>`).
    pub fn keep_dangling(
        &self,
        old: Option<ImageRecord>,
    ) -> Result<(), berth_image::store::StoreError> {
        let Some(mut rec) = old else { return Ok(()) };
        rec.name = dangling_name(&rec);
        self.store.put_unless_named(&rec).map(|_| ())
    }

    /// Frees blobs and snapshots that no image refers to; waits for writers to finish.
    pub async fn gc(
        &self,
    ) -> Result<berth_image::store::Collected, berth_image::store::StoreError> {
        let _guard = self.gc_lock.write().await;
        self.store.collect(&self.content, &self.snapshots)
    }
}
