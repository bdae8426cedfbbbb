//! `import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::Path;

use berth_snapshotter::{ContentStore, Digest, Snapshotter};
use sha2::{Digest as _, Sha256};

use crate::archive::{finish, sniff, ArchiveError};
use crate::config::{ContainerConfig, History, ImageConfig, RootFs};
use crate::manifest::{self, Descriptor, ImageManifest, Platform};
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore};

/// Imports `tarball` as the image `name` for `platform`, with `config` as its runtime
/// defaults (Cmd, Env, …).
pub fn import(
    content: &ContentStore,
    snapshots: &Snapshotter,
    images: &ImageStore,
    tarball: &Path,
    name: &str,
    platform: &Platform,
    config: Option<ContainerConfig>,
) -> Result<ImageRecord, ArchiveError> {
    let name = Reference::parse(name)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?
        .to_string();
    let media_type = sniff(tarball)?;
    let open = || {
        fs::File::open(tarball).map_err(|source| ArchiveError::Io {
            op: format!("open {}", tarball.display()),
            source,
        })
    };
    // The diff ID: sha256 of the uncompressed tar.
    let file = BufReader::with_capacity(1 << 20, open()?);
    let mut reader: Box<dyn Read> = match media_type {
        manifest::OCI_LAYER_GZIP => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        manifest::OCI_LAYER_ZSTD => Box::new(
            zstd::stream::read::Decoder::with_buffer(file).map_err(|source| ArchiveError::Io {
                op: "zstd".into(),
                source,
            })?,
        ),
        _ => Box::new(file),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::Io {
                    op: format!("read {}", tarball.display()),
                    source,
                })
            }
        };
        hasher.update(&buf[..n]);
    }
    let diff_id = Digest::from_hasher(hasher);
    let mut ingest = content.ingest(None)?;
    io::copy(&mut open()?, &mut ingest).map_err(|source| ArchiveError::Io {
        op: "store layer".into(),
        source,
    })?;
    let layer = ingest.commit()?;
    // As Docker does, an import records when it happened (so each import is a new image).
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let cfg = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        author: None,
        comment: None,
        config: config.or_else(|| Some(ContainerConfig::default())),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(created.clone()),
            // Not the tarball's path: the daemon imports from a spooled temp file.
            comment: Some("Imported from a root filesystem tarball".into()),
            ..History::default()
        }],
    };
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let cfg_info = content.write_blob(&cfg_bytes, None)?;
    let desc = |media_type: &str, digest: Digest, size: u64| Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        urls: vec![],
        annotations: BTreeMap::new(),
    };
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config: desc(manifest::OCI_CONFIG, cfg_info.digest, cfg_info.size),
        layers: vec![desc(media_type, layer.digest, layer.size)],
        annotations: BTreeMap::new(),
    };
    let m_bytes = serde_json::to_vec(&m).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let m_digest = content.write_blob(&m_bytes, None)?.digest;
    finish(
        content,
        snapshots,
        images,
        name,
        None,
        m_digest,
        manifest::OCI_MANIFEST.into(),
        &m,
    )
}
