//! Layers and images a build writes: a layer tar into the content store and unpacked
//! into its committed snapshot (keyed by chain ID, as pulled layers are), and an image
//! (config, manifest, record) for a RUN step's container or the build's result.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use berth_engine::images::Images;
use berth_image::config::ImageConfig;
use berth_image::manifest::{self, Descriptor, ImageManifest};
use berth_image::ImageRecord;
use berth_snapshotter::digest::chain_ids;
use berth_snapshotter::{ApplyOptions, Digest};

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        urls: vec![],
        annotations: BTreeMap::new(),
    }
}

/// Stores the layer `write` produces (an uncompressed tar: its digest is its diff ID)
/// and unpacks it onto `diff_ids` (the layers below). Returns its descriptor.
pub fn store_layer(
    images: &Images,
    diff_ids: &[Digest],
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<Descriptor, String> {
    let mut ingest = images
        .content
        .ingest(None)
        .map_err(|e| format!("storing a layer: {e}"))?;
    write(&mut ingest)?;
    let blob = ingest
        .commit()
        .map_err(|e| format!("storing a layer: {e}"))?;
    let mut all = diff_ids.to_vec();
    all.push(blob.digest.clone());
    let chains = chain_ids(&all);
    let chain = chains[chains.len() - 1].to_string();
    let parent = chains.len().checked_sub(2).map(|i| chains[i].to_string());
    if !images.snapshots.exists(&chain) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("build-{}-{n}-{chain}", std::process::id());
        let snaps = &images.snapshots;
        snaps
            .prepare(&key, None)
            .map_err(|e| format!("preparing a layer: {e}"))?;
        let result = (|| {
            let dest = snaps.fs_path(&key).map_err(|e| e.to_string())?;
            let mut f = images
                .content
                .read(&blob.digest)
                .map_err(|e| e.to_string())?;
            berth_snapshotter::apply_layer(&mut f, &dest, &ApplyOptions::default())
                .map_err(|e| e.to_string())?;
            match snaps.commit_layer(&chain, &key, parent.as_deref()) {
                Err(berth_snapshotter::SnapshotError::Exists(_)) => {
                    let _ = snaps.remove(&key);
                    Ok(())
                }
                other => other.map_err(|e| e.to_string()),
            }
        })();
        if let Err(e) = result {
            let _ = snaps.remove(&key);
            return Err(format!("unpacking a layer: {e}"));
        }
    }
    Ok(descriptor(manifest::OCI_LAYER, blob.digest, blob.size))
}

/// The layer directories of an image's root filesystem, top first.
pub fn layer_dirs(images: &Images, diff_ids: &[Digest]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = chain_ids(diff_ids)
        .iter()
        .filter_map(|c| images.snapshots.fs_path(&c.to_string()).ok())
        .collect();
    dirs.reverse();
    dirs
}

/// The image ID a config has (the digest of its JSON as stored).
pub fn config_bytes(config: &ImageConfig) -> Result<Vec<u8>, String> {
    serde_json::to_vec(config).map_err(|e| format!("encoding the image config: {e}"))
}

/// Writes config and manifest and stores the record under `name` (a tag, or the ID
/// for an untagged image). Returns the record and what it replaced.
pub fn write_image(
    images: &Images,
    config: &ImageConfig,
    layers: &[Descriptor],
    name: &str,
) -> Result<(ImageRecord, Option<ImageRecord>), String> {
    let bytes = config_bytes(config)?;
    let cfg = images
        .content
        .write_blob(&bytes, None)
        .map_err(|e| format!("storing the image config: {e}"))?;
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config: descriptor(manifest::OCI_CONFIG, cfg.digest.clone(), cfg.size),
        layers: layers.to_vec(),
        annotations: BTreeMap::new(),
    };
    let m_bytes = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
    let m_info = images
        .content
        .write_blob(&m_bytes, None)
        .map_err(|e| format!("storing the manifest: {e}"))?;
    let diff_sizes = berth_image::store::diff_sizes(&images.snapshots, &config.rootfs.diff_ids)
        .map_err(|e| format!("measuring layers: {e}"))?;
    let rec = ImageRecord {
        name: if name.is_empty() {
            cfg.digest.to_string()
        } else {
            name.to_string()
        },
        index_digest: None,
        manifest_digest: m_info.digest,
        manifest_media_type: manifest::OCI_MANIFEST.into(),
        config_digest: cfg.digest,
        layers: layers.to_vec(),
        diff_ids: config.rootfs.diff_ids.clone(),
        chain_id: chain_ids(&config.rootfs.diff_ids).last().cloned(),
        size: layers.iter().map(|l| l.size).sum(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        diff_sizes: Some(diff_sizes),
    };
    let old = images
        .store
        .get(&rec.name)
        .map_err(|e| format!("reading image {}: {e}", rec.name))?;
    images
        .store
        .put(&rec)
        .map_err(|e| format!("storing image {}: {e}", rec.name))?;
    Ok((rec, old))
}

/// A read-only view of a root filesystem mounted for the length of a step (COPY
/// --from); unmounted and removed by `unmount`, or on drop when a step fails first.
pub struct View<'a> {
    images: &'a Images,
    key: String,
    dir: PathBuf,
    mounted: bool,
}

impl<'a> View<'a> {
    pub fn mount(images: &'a Images, diff_ids: &[Digest]) -> Result<View<'a>, String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("build-view-{}-{n}", std::process::id());
        let dir = images.uploads.join(&key);
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut view = View {
            images,
            key,
            dir,
            mounted: false,
        };
        let Some(top) = chain_ids(diff_ids).last().map(|c| c.to_string()) else {
            // No layers: an empty root.
            return Ok(view);
        };
        let mounts = images
            .snapshots
            .view(&view.key, Some(&top))
            .map_err(|e| format!("a view of the source image: {e}"))?;
        for m in &mounts {
            m.mount(&view.dir)
                .map_err(|e| format!("mounting the source image: {e}"))?;
            view.mounted = true;
        }
        Ok(view)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    fn release(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        if self.mounted {
            match berth_snapshotter::mount::unmount(&self.dir) {
                Ok(()) => self.mounted = false,
                Err(e) => errors.push(format!("unmounting {}: {e}", self.dir.display())),
            }
        }
        if !self.mounted {
            if self.images.snapshots.exists(&self.key) {
                if let Err(e) = self.images.snapshots.remove(&self.key) {
                    errors.push(format!("removing the view {}: {e}", self.key));
                }
            }
            let _ = std::fs::remove_dir(&self.dir);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    pub fn unmount(mut self) -> Result<(), String> {
        self.release()
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(error = %e, "cleaning up a build view");
        }
    }
}
