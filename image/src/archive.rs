//! `save` and `load`: one archive that is both an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) and a `docker save` archive (`manifest.json` naming
//! config and layer files), as Docker 25+ writes it. `load` reads either form, including
//! legacy `docker save` archives with `<id>/layer.tar` layers.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_snapshotter::{BlobInfo, ContentError, ContentStore, Digest, Snapshotter};
use serde::Deserialize;

use crate::config::ImageConfig;
use crate::manifest::{self, Descriptor, ImageManifest, Parsed, Platform};
use crate::pull::{unpack_local, PullError};
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore, StoreError};

/// Save/load errors.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: {op}: {source}")]
    Io { op: String, source: io::Error },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unpack(#[from] PullError),
    #[error("archive: {0}")]
    Invalid(String),
}

fn io(op: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let op = op.into();
    move |source| ArchiveError::Io { op, source }
}

/// Writes `records` (with every blob they need) as one archive to `out`.
pub fn save<W: Write>(
    content: &ContentStore,
    records: &[ImageRecord],
    out: W,
) -> Result<(), ArchiveError> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut written = HashSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    for rec in records {
        for d in std::iter::once(&rec.manifest_digest)
            .chain(std::iter::once(&rec.config_digest))
            .chain(rec.layers.iter().map(|l| &l.digest))
        {
            if written.insert(d.clone()) {
                let info = content.info(d)?;
                let file = content.read(d)?;
                append(
                    &mut tar,
                    &format!("blobs/sha256/{}", d.hex()),
                    info.size,
                    file,
                )?;
            }
        }
        let r = Reference::parse(&rec.name).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let manifest_size = content.info(&rec.manifest_digest)?.size;
        index.push(serde_json::json!({
            "mediaType": rec.manifest_media_type,
            "digest": rec.manifest_digest.to_string(),
            "size": manifest_size,
            "annotations": {
                "io.containerd.image.name": rec.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }));
        docker.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", rec.config_digest.hex()),
            "RepoTags": [familiar(&r)],
            "Layers": rec.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }));
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": index,
    }))
    .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let docker = serde_json::to_vec(&docker).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    for (name, bytes) in [
        ("oci-layout", layout),
        ("index.json", index),
        ("manifest.json", docker),
    ] {
        append(&mut tar, name, bytes.len() as u64, &bytes[..])?;
    }
    tar.into_inner()
        .map_err(io("finish archive"))?
        .flush()
        .map_err(io("flush archive"))
}

/// `busybox:latest` for Docker Hub official images, else the full name.
fn familiar(r: &Reference) -> String {
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let name = if r.registry == crate::reference::DEFAULT_REGISTRY {
        r.repository
            .strip_prefix("library/")
            .unwrap_or(&r.repository)
            .to_string()
    } else {
        r.name()
    };
    format!("{name}:{tag}")
}

fn append<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
) -> Result<(), ArchiveError> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .map_err(io(format!("write {name}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image of an archive into the stores; returns the records written.
pub fn load<R: Read>(
    content: &ContentStore,
    snapshots: &Snapshotter,
    images: &ImageStore,
    archive: R,
    platform: &Platform,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let dir = tempfile::tempdir().map_err(io("temp dir"))?;
    let mut tar = tar::Archive::new(archive);
    // unpack_in refuses entries that would land outside `dir`.
    for entry in tar.entries().map_err(io("read archive"))? {
        let mut entry = entry.map_err(io("read archive"))?;
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Directory
        ) {
            entry
                .unpack_in(dir.path())
                .map_err(io("unpack archive entry"))?;
        }
    }
    let root = dir.path();
    // Prefer the OCI form: it keeps the original manifest (and so its digest).
    if root.join("index.json").is_file() {
        load_oci(content, snapshots, images, root, platform)
    } else if root.join("manifest.json").is_file() {
        load_docker(content, snapshots, images, root)
    } else {
        Err(ArchiveError::Invalid(
            "neither manifest.json nor index.json: not an image archive".into(),
        ))
    }
}

fn inside(root: &Path, rel: &str) -> Result<PathBuf, ArchiveError> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ArchiveError::Invalid(format!(
            "path {rel:?} leaves the archive"
        )));
    }
    Ok(root.join(p))
}

fn store_file(
    content: &ContentStore,
    path: &Path,
    expected: Option<BlobInfo>,
) -> Result<BlobInfo, ArchiveError> {
    let mut file = fs::File::open(path).map_err(io(format!("open {}", path.display())))?;
    let mut ingest = content.ingest(expected)?;
    io::copy(&mut file, &mut ingest).map_err(io(format!("store {}", path.display())))?;
    Ok(ingest.commit()?)
}

fn load_oci(
    content: &ContentStore,
    snapshots: &Snapshotter,
    images: &ImageStore,
    root: &Path,
    platform: &Platform,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let blob = |d: &Digest| root.join("blobs/sha256").join(d.hex());
    let index: manifest::Index =
        serde_json::from_slice(&fs::read(root.join("index.json")).map_err(io("read index.json"))?)
            .map_err(|e| ArchiveError::Invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let Some(name) = desc
            .annotations
            .get("io.containerd.image.name")
            .cloned()
            .or_else(|| {
                desc.annotations
                    .get("org.opencontainers.image.ref.name")
                    .cloned()
            })
        else {
            continue;
        };
        let name = Reference::parse(&name)
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?
            .to_string();
        let info = |d: &Descriptor| {
            Some(BlobInfo {
                digest: d.digest.clone(),
                size: d.size,
            })
        };
        let mut index_digest = None;
        let mut mdesc = desc.clone();
        let mut bytes =
            fs::read(blob(&mdesc.digest)).map_err(io(format!("read manifest {}", mdesc.digest)))?;
        if let Parsed::Index(inner) = parse(&bytes, &mdesc)? {
            store_file(content, &blob(&mdesc.digest), info(&mdesc))?;
            index_digest = Some(mdesc.digest.clone());
            mdesc = manifest::select(&inner, platform)
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?
                .clone();
            bytes = fs::read(blob(&mdesc.digest))
                .map_err(io(format!("read manifest {}", mdesc.digest)))?;
        }
        let Parsed::Image(m) = parse(&bytes, &mdesc)? else {
            return Err(ArchiveError::Invalid(format!(
                "{}: nested index",
                mdesc.digest
            )));
        };
        store_file(content, &blob(&mdesc.digest), info(&mdesc))?;
        store_file(content, &blob(&m.config.digest), info(&m.config))?;
        for l in &m.layers {
            store_file(content, &blob(&l.digest), info(l))?;
        }
        let media = m
            .media_type
            .clone()
            .unwrap_or_else(|| mdesc.media_type.clone());
        out.push(finish(
            content,
            snapshots,
            images,
            name,
            index_digest,
            mdesc.digest.clone(),
            media,
            &m,
        )?);
    }
    Ok(out)
}

fn parse(bytes: &[u8], desc: &Descriptor) -> Result<Parsed, ArchiveError> {
    manifest::parse(bytes, Some(&desc.media_type))
        .map_err(|e| ArchiveError::Invalid(format!("{}: {e}", desc.digest)))
}

fn load_docker(
    content: &ContentStore,
    snapshots: &Snapshotter,
    images: &ImageStore,
    root: &Path,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(
        &fs::read(root.join("manifest.json")).map_err(io("read manifest.json"))?,
    )
    .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config = store_file(content, &inside(root, &e.config)?, None)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let path = inside(root, l)?;
            let media_type = sniff(&path)?;
            let info = store_file(content, &path, None)?;
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest: info.digest,
                size: info.size,
                platform: None,
                urls: vec![],
                annotations: BTreeMap::new(),
            });
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: config.digest,
                size: config.size,
                platform: None,
                urls: vec![],
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&m).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let mdigest = content.write_blob(&bytes, None)?.digest;
        for tag in e.repo_tags.unwrap_or_default() {
            let name = Reference::parse(&tag)
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?
                .to_string();
            out.push(finish(
                content,
                snapshots,
                images,
                name,
                None,
                mdigest.clone(),
                manifest::OCI_MANIFEST.into(),
                &m,
            )?);
        }
    }
    Ok(out)
}

/// The layer media type by magic number: gzip, zstd or plain tar.
pub(crate) fn sniff(path: &Path) -> Result<&'static str, ArchiveError> {
    let mut magic = [0u8; 4];
    let mut f = fs::File::open(path).map_err(io(format!("open {}", path.display())))?;
    let n = f
        .read(&mut magic)
        .map_err(io(format!("read {}", path.display())))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => manifest::OCI_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => manifest::OCI_LAYER_ZSTD,
        _ => manifest::OCI_LAYER,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    content: &ContentStore,
    snapshots: &Snapshotter,
    images: &ImageStore,
    name: String,
    index_digest: Option<Digest>,
    manifest_digest: Digest,
    manifest_media_type: String,
    m: &ImageManifest,
) -> Result<ImageRecord, ArchiveError> {
    let cfg_bytes = content.read_all(&m.config.digest, crate::pull::MAX_CONFIG_BYTES)?;
    let cfg = ImageConfig::parse(&cfg_bytes)
        .map_err(|e| ArchiveError::Invalid(format!("config {}: {e}", m.config.digest)))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(ArchiveError::Invalid(format!(
            "{name}: {} layers but {} diff_ids",
            m.layers.len(),
            cfg.rootfs.diff_ids.len()
        )));
    }
    let chain_id = unpack_local(content, snapshots, &m.layers, &cfg.rootfs.diff_ids)?;
    let diff_sizes = crate::store::diff_sizes(snapshots, &cfg.rootfs.diff_ids)
        .map_err(|e| ArchiveError::Unpack(e.into()))?;
    let rec = ImageRecord {
        name,
        index_digest,
        manifest_digest,
        manifest_media_type,
        config_digest: m.config.digest.clone(),
        layers: m.layers.clone(),
        diff_ids: cfg.rootfs.diff_ids.clone(),
        chain_id,
        size: m.layers.iter().map(|l| l.size).sum(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        diff_sizes: Some(diff_sizes),
    };
    images.put(&rec)?;
    Ok(rec)
}
