//! Pushing an image from the store to a registry: each blob skipped when the target
//! repository has it (HEAD), mounted from the source repository when both are on the
//! same registry, uploaded otherwise; the manifest last.

use berth_snapshotter::{ContentError, ContentStore, Digest};
use bytes::Bytes;

use crate::reference::{Reference, ReferenceError};
use crate::registry::{Client, RegistryError};
use crate::store::ImageRecord;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("blob {digest} of {image} is not in the content store (was it garbage-collected?): {source}")]
    MissingBlob {
        image: String,
        digest: Digest,
        source: ContentError,
    },
}

/// What a push did with each blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    pub skipped: Vec<Digest>,
    pub mounted: Vec<Digest>,
    pub uploaded: Vec<Digest>,
    pub manifest_digest: Option<Digest>,
}

/// Pushes `record` to `target` (a reference with a tag).
pub async fn push(
    client: &Client,
    content: &ContentStore,
    record: &ImageRecord,
    target: &str,
) -> Result<PushReport, PushError> {
    let target = Reference::parse(target)?;
    let source = Reference::parse(&record.name).ok();
    let mount_from = source
        .as_ref()
        .filter(|s| s.registry == target.registry && s.repository != target.repository)
        .map(|s| s.repository.clone());
    let mut report = PushReport::default();
    let mut blobs: Vec<Digest> = record.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.push(record.config_digest.clone());
    for digest in blobs {
        if client.blob_exists(&target, &digest).await? {
            report.skipped.push(digest);
            continue;
        }
        let data = read(content, record, &digest)?;
        if client
            .upload_blob(&target, &digest, data, mount_from.as_deref())
            .await?
        {
            report.mounted.push(digest);
        } else {
            report.uploaded.push(digest);
        }
    }
    let manifest = read(content, record, &record.manifest_digest)?;
    let object = target
        .tag
        .clone()
        .unwrap_or_else(|| record.manifest_digest.to_string());
    client
        .put_manifest(&target, &object, &record.manifest_media_type, manifest)
        .await?;
    report.manifest_digest = Some(record.manifest_digest.clone());
    Ok(report)
}

fn read(content: &ContentStore, record: &ImageRecord, digest: &Digest) -> Result<Bytes, PushError> {
    let missing = |source| PushError::MissingBlob {
        image: record.name.clone(),
        digest: digest.clone(),
        source,
    };
    let file = content.read(digest).map_err(missing)?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut out).map_err(|e| {
        missing(ContentError::Io {
            op: "read",
            path: content.path(digest),
            source: e,
        })
    })?;
    Ok(Bytes::from(out))
}
