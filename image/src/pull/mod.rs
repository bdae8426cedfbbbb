//! The pull pipeline: resolve → manifest (or index → platform's manifest) → config →
//! layers downloaded concurrently, each hashed, stored and unpacked into its own
//! snapshot as its bytes arrive → snapshots committed in order under their chain IDs →
//! the image record written last. An interrupted pull leaves no record; the next pull
//! skips every layer whose snapshot was committed and redoes the rest.

mod layer;

use std::sync::Arc;

use berth_snapshotter::{ContentError, ContentStore, Digest, SnapshotError, Snapshotter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use layer::LayerError;

use crate::config::ImageConfig;
use crate::manifest::{self, Descriptor, ManifestError, Parsed, Platform};
use crate::reference::{Reference, ReferenceError};
use crate::registry::{Client, RegistryError};
use crate::store::{ImageRecord, ImageStore, StoreError};

/// The largest image config berth accepts.
pub const MAX_CONFIG_BYTES: u64 = 32 << 20;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{what}: {source}")]
    Manifest {
        what: String,
        #[source]
        source: ManifestError,
    },
    #[error("image config {digest}: not a valid image config: {source}")]
    Config {
        digest: Digest,
        source: serde_json::Error,
    },
    #[error("{image}: manifest lists {layers} layers but the config has {diff_ids} diff_ids")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{what}: size {actual} differs from the {expected} bytes the index declares")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("pull task failed: {0}")]
    Task(String),
}

/// Where a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Its snapshot already exists: nothing to do.
    Exists,
    /// Bytes are arriving (and being unpacked as they do).
    Downloading,
    /// Unpacking from a blob already in the content store.
    Unpacking,
    /// Verified and unpacked.
    Done,
}

/// Progress of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub layer: Digest,
    pub done: u64,
    pub total: u64,
    pub state: LayerState,
}

/// Receives progress reports (called from download threads; keep it quick).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Layers downloaded (and unpacked) at once.
    pub max_concurrent_downloads: usize,
    pub progress: Option<ProgressFn>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::default(),
            max_concurrent_downloads: 3,
            progress: None,
        }
    }
}

/// Pulls images into a content store, a snapshotter and an image store.
pub struct Puller {
    client: Arc<Client>,
    content: ContentStore,
    snapshots: Arc<Snapshotter>,
    images: ImageStore,
}

impl Puller {
    /// A puller; removes extraction snapshots that a killed pull left behind.
    pub fn new(
        client: Arc<Client>,
        content: ContentStore,
        snapshots: Arc<Snapshotter>,
        images: ImageStore,
    ) -> Self {
        let me = format!("extract-{}-", std::process::id());
        for info in snapshots.list() {
            if info.key.starts_with("extract-") && !info.key.starts_with(&me) {
                if let Err(e) = snapshots.remove(&info.key) {
                    tracing::warn!(key = %info.key, error = %e, "cannot remove stale extraction snapshot");
                }
            }
        }
        Puller {
            client,
            content,
            snapshots,
            images,
        }
    }

    /// Pulls `reference` and returns its committed record.
    pub async fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
    ) -> Result<ImageRecord, PullError> {
        let r = Reference::parse(reference)?;
        let span = tracing::info_span!("pull", image = %r);
        // Instrumenting (rather than holding an entered guard across awaits) keeps the
        // future `Send`, so daemons can spawn pulls.
        tracing::Instrument::instrument(self.pull_ref(r, opts), span).await
    }

    async fn pull_ref(&self, r: Reference, opts: &PullOptions) -> Result<ImageRecord, PullError> {
        let name = r.to_string();
        let top = self.client.get_manifest(&r, &r.object()).await?;
        let what = format!("{}/{}:{}", r.registry, r.repository, r.object());
        let parsed = manifest::parse(&top.bytes, top.media_type.as_deref()).map_err(|source| {
            PullError::Manifest {
                what: what.clone(),
                source,
            }
        })?;
        let (index_digest, fetched, image_manifest) = match parsed {
            Parsed::Image(m) => (None, top, m),
            Parsed::Index(index) => {
                let desc = manifest::select(&index, &opts.platform)
                    .map_err(|source| PullError::Manifest {
                        what: what.clone(),
                        source,
                    })?
                    .clone();
                let m = self
                    .client
                    .get_manifest(&r, &desc.digest.to_string())
                    .await?;
                if m.bytes.len() as u64 != desc.size {
                    return Err(PullError::SizeMismatch {
                        what: format!("manifest {}", desc.digest),
                        expected: desc.size,
                        actual: m.bytes.len() as u64,
                    });
                }
                let mwhat = format!("{}@{}", r.name(), desc.digest);
                let parsed =
                    manifest::parse(&m.bytes, Some(&desc.media_type)).map_err(|source| {
                        PullError::Manifest {
                            what: mwhat.clone(),
                            source,
                        }
                    })?;
                let Parsed::Image(im) = parsed else {
                    return Err(PullError::Manifest {
                        what: mwhat,
                        source: ManifestError::MediaType("nested index".into()),
                    });
                };
                self.content.write_blob(&top.bytes, None)?;
                (Some(top.digest), m, im)
            }
        };
        let manifest_media_type = image_manifest
            .media_type
            .clone()
            .or(fetched.media_type.clone())
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string());
        for l in &image_manifest.layers {
            manifest::layer_compression(&l.media_type).map_err(|source| PullError::Manifest {
                what: format!("{}@{}", r.name(), fetched.digest),
                source,
            })?;
        }

        let config_bytes = self.config(&r, &image_manifest.config).await?;
        let config = ImageConfig::parse(&config_bytes).map_err(|source| PullError::Config {
            digest: image_manifest.config.digest.clone(),
            source,
        })?;
        if config.rootfs.diff_ids.len() != image_manifest.layers.len() {
            return Err(PullError::LayerCount {
                image: name,
                layers: image_manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        let chain_ids = config.chain_ids();
        self.layers(
            &r,
            &image_manifest.layers,
            &config.rootfs.diff_ids,
            &chain_ids,
            opts,
        )
        .await?;

        let snapshots = self.snapshots.clone();
        let diff_ids = config.rootfs.diff_ids.clone();
        let diff_sizes =
            tokio::task::spawn_blocking(move || crate::store::diff_sizes(&snapshots, &diff_ids))
                .await
                .map_err(|e| PullError::Task(e.to_string()))??;

        // Everything the record points at is in place: now, and only now, the record.
        self.content.write_blob(&fetched.bytes, None)?;
        let record = ImageRecord {
            name: name.clone(),
            index_digest,
            manifest_digest: fetched.digest.clone(),
            manifest_media_type,
            config_digest: image_manifest.config.digest.clone(),
            size: image_manifest.layers.iter().map(|l| l.size).sum(),
            layers: image_manifest.layers.clone(),
            diff_ids: config.rootfs.diff_ids.clone(),
            chain_id: chain_ids.last().cloned(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            diff_sizes: Some(diff_sizes),
        };
        // A pull by tag also names the image by its digest, as Docker's does.
        self.images.put_pulled(&record)?;
        tracing::info!(manifest = %record.manifest_digest, "pulled");
        Ok(record)
    }

    async fn config(&self, r: &Reference, desc: &Descriptor) -> Result<Vec<u8>, PullError> {
        if self.content.contains(&desc.digest) {
            return Ok(self.content.read_all(&desc.digest, MAX_CONFIG_BYTES)?);
        }
        let bytes = self
            .client
            .get_blob_bytes(r, desc, MAX_CONFIG_BYTES)
            .await?;
        self.content.write_blob(
            &bytes,
            Some(berth_snapshotter::BlobInfo {
                digest: desc.digest.clone(),
                size: desc.size,
            }),
        )?;
        Ok(bytes)
    }

    async fn layers(
        &self,
        r: &Reference,
        layers: &[Descriptor],
        diff_ids: &[Digest],
        chain_ids: &[Digest],
        opts: &PullOptions,
    ) -> Result<(), PullError> {
        let sem = Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1)));
        let mut tasks = JoinSet::new();
        let mut keys: Vec<Option<String>> = vec![None; layers.len()];
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, desc) in layers.iter().enumerate() {
            let chain = chain_ids[i].to_string();
            if self.snapshots.exists(&chain) {
                report(opts, desc, desc.size, LayerState::Exists);
                continue;
            }
            let key = format!("extract-{}-{stamp}-{i}-{}", std::process::id(), chain);
            self.snapshots.prepare(&key, None)?;
            keys[i] = Some(key.clone());
            let job = layer::Job {
                client: self.client.clone(),
                reference: r.clone(),
                desc: desc.clone(),
                diff_id: diff_ids[i].clone(),
                content: self.content.clone(),
                dest: self.snapshots.fs_path(&key)?,
                progress: opts.progress.clone(),
            };
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let digest = job.desc.digest.clone();
                job.run()
                    .await
                    .map_err(|source| PullError::Layer { digest, source })
            });
        }
        let mut first_err = None;
        while let Some(res) = tasks.join_next().await {
            let res = res.unwrap_or_else(|e| Err(PullError::Task(e.to_string())));
            // Other layers keep going: their verified blobs stay in the content store,
            // so the next pull does not download them again, and no unpack thread is
            // still writing when the extraction snapshots are removed below.
            if let Err(e) = res {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        if let Some(e) = first_err {
            for key in keys.iter().flatten() {
                let _ = self.snapshots.remove(key);
            }
            return Err(e);
        }
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let chain = chain_ids[i].to_string();
            let parent = i.checked_sub(1).map(|p| chain_ids[p].to_string());
            if self.snapshots.exists(&chain) {
                self.snapshots.remove(key)?; // a concurrent pull committed it first
                continue;
            }
            if let Err(e) = self.snapshots.commit_layer(&chain, key, parent.as_deref()) {
                for k in keys[i..].iter().flatten() {
                    let _ = self.snapshots.remove(k);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Unpacks layers whose blobs are in the content store into committed snapshots (for
/// load and import); returns the top chain ID.
pub(crate) fn unpack_local(
    content: &ContentStore,
    snapshots: &Snapshotter,
    layers: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<Option<Digest>, PullError> {
    let chain_ids = berth_snapshotter::digest::chain_ids(diff_ids);
    for (i, desc) in layers.iter().enumerate() {
        let chain = chain_ids[i].to_string();
        if snapshots.exists(&chain) {
            continue;
        }
        // Unique per call: a daemon may load or import the same layer twice at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("extract-{}-local-{n}-{chain}", std::process::id());
        snapshots.prepare(&key, None)?;
        let result = snapshots
            .fs_path(&key)
            .map_err(PullError::from)
            .and_then(|dest| {
                layer::unpack_stored(content, desc, &diff_ids[i], &dest).map_err(|source| {
                    PullError::Layer {
                        digest: desc.digest.clone(),
                        source,
                    }
                })
            })
            .and_then(|()| {
                let parent = i.checked_sub(1).map(|p| chain_ids[p].to_string());
                match snapshots.commit_layer(&chain, &key, parent.as_deref()) {
                    // A concurrent load committed the same layer first: use it.
                    Err(SnapshotError::Exists(_)) => {
                        let _ = snapshots.remove(&key);
                        Ok(())
                    }
                    other => other.map_err(PullError::from),
                }
            });
        if let Err(e) = result {
            let _ = snapshots.remove(&key);
            return Err(e);
        }
    }
    Ok(chain_ids.last().cloned())
}

fn report(opts: &PullOptions, desc: &Descriptor, done: u64, state: LayerState) {
    if let Some(p) = &opts.progress {
        p(&Progress {
            layer: desc.digest.clone(),
            done,
            total: desc.size,
            state,
        });
    }
}
