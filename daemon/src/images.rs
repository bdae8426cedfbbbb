//! The daemon's image machinery, opened once under `--root` and shared by the front
//! doors (Docker API, CRI) and by container creation.

use std::path::Path;
use std::sync::Arc;

use berth_image::ImageStore;
use berth_snapshotter::{ContentStore, Snapshotter};

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
}

impl Images {
    /// Opens (creating) `<root>/content`, `<root>/snapshots` and `<root>/images`; the
    /// snapshotter removes what a crash left half done.
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
        Ok(Images {
            content,
            snapshots: Arc::new(snapshots),
            store,
        })
    }
}
