//! `ImageService` over berth-image and berth-snapshotter: references resolved as Docker
//! does, images addressable by id (config digest, or a unique hex prefix), tag or digest.

mod fs_info;
mod pull;
mod resolve;

use std::collections::{BTreeMap, HashMap};

use berth_image::{ImageConfig, ImageRecord};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use crate::error::{instrument, Ids};
use crate::{Cri, CriError};

/// Image configs larger than this are refused (they are a few KiB in practice).
const MAX_CONFIG: u64 = 8 * 1024 * 1024;

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        r: Request<cri::ListImagesRequest>,
    ) -> Reply<cri::ListImagesResponse> {
        instrument("ListImages", Ids::NONE, async {
            list_images(self, r.into_inner())
        })
        .await
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Reply<cri::ImageStatusResponse> {
        instrument("ImageStatus", Ids::NONE, async {
            image_status(self, r.into_inner())
        })
        .await
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Reply<cri::PullImageResponse> {
        instrument(
            "PullImage",
            Ids::NONE,
            pull::pull_image(self, r.into_inner()),
        )
        .await
    }

    async fn remove_image(
        &self,
        r: Request<cri::RemoveImageRequest>,
    ) -> Reply<cri::RemoveImageResponse> {
        instrument("RemoveImage", Ids::NONE, async {
            remove_image(self, r.into_inner())
        })
        .await
    }

    async fn image_fs_info(
        &self,
        r: Request<cri::ImageFsInfoRequest>,
    ) -> Reply<cri::ImageFsInfoResponse> {
        instrument(
            "ImageFsInfo",
            Ids::NONE,
            fs_info::image_fs_info(self, r.into_inner()),
        )
        .await
    }
}

fn spec_ref(spec: Option<&cri::ImageSpec>) -> Result<&str, CriError> {
    match spec.map(|s| s.image.as_str()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(CriError::InvalidArgument(
            "image spec without an image reference".into(),
        )),
    }
}

/// All records grouped by image id (config digest), in name order.
fn by_id(cri: &Cri) -> Result<BTreeMap<String, Vec<ImageRecord>>, CriError> {
    let mut out: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    for r in cri.inner.images.store.list()? {
        out.entry(r.config_digest.to_string()).or_default().push(r);
    }
    Ok(out)
}

fn list_images(
    cri: &Cri,
    req: cri::ListImagesRequest,
) -> Result<cri::ListImagesResponse, CriError> {
    let wanted = match req
        .filter
        .as_ref()
        .and_then(|f| f.image.as_ref())
        .filter(|s| !s.image.is_empty())
    {
        Some(spec) => match resolve::resolve(cri, &spec.image)? {
            Some((id, _)) => Some(id),
            None => return Ok(cri::ListImagesResponse { images: Vec::new() }),
        },
        None => None,
    };
    let mut images = Vec::new();
    for (id, records) in by_id(cri)? {
        if wanted.as_ref().is_some_and(|w| *w != id) {
            continue;
        }
        images.push(to_cri_image(cri, &id, &records)?.0);
    }
    Ok(cri::ListImagesResponse { images })
}

fn image_status(
    cri: &Cri,
    req: cri::ImageStatusRequest,
) -> Result<cri::ImageStatusResponse, CriError> {
    let reference = spec_ref(req.image.as_ref())?;
    // An unknown image is not an error: kubelet asks before pulling.
    let Some((id, records)) = resolve::resolve(cri, reference)? else {
        return Ok(cri::ImageStatusResponse::default());
    };
    let (image, config) = to_cri_image(cri, &id, &records)?;
    let mut info = HashMap::new();
    if req.verbose {
        let detail = serde_json::json!({
            "imageSpec": config,
            "chainID": records.first().and_then(|r| r.chain_id.as_ref()).map(|c| c.to_string()),
            "manifestDigest": records.first().map(|r| r.manifest_digest.to_string()),
            "names": records.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        });
        info.insert("info".to_string(), detail.to_string());
    }
    Ok(cri::ImageStatusResponse {
        image: Some(image),
        info,
    })
}

fn remove_image(
    cri: &Cri,
    req: cri::RemoveImageRequest,
) -> Result<cri::RemoveImageResponse, CriError> {
    let reference = spec_ref(req.image.as_ref())?;
    // Removing what is not there succeeds (kubelet's image GC retries).
    let Some((id, records)) = resolve::resolve(cri, reference)? else {
        return Ok(cri::RemoveImageResponse {});
    };
    let parts = &cri.inner.images;
    for r in &records {
        match parts.store.remove(&r.name) {
            Ok(_) | Err(berth_image::store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (blobs, snaps) = parts.store.gc(&parts.content, &parts.snapshots)?;
    tracing::info!(image = %id, blobs, snapshots = snaps, "image removed");
    Ok(cri::RemoveImageResponse {})
}

/// The CRI view of one image id and its names; also returns the parsed config.
fn to_cri_image(
    cri: &Cri,
    id: &str,
    records: &[ImageRecord],
) -> Result<(cri::Image, ImageConfig), CriError> {
    let first = records
        .first()
        .ok_or_else(|| CriError::Internal(format!("image {id} has no records")))?;
    let raw = cri
        .inner
        .images
        .content
        .read_all(&first.config_digest, MAX_CONFIG)
        .map_err(|e| CriError::Internal(format!("image {id}: reading config: {e}")))?;
    let config: ImageConfig = serde_json::from_slice(&raw)
        .map_err(|e| CriError::Internal(format!("image {id}: parsing config: {e}")))?;
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for r in records {
        let (repo, tagged) = resolve::split_name(&r.name);
        if tagged {
            repo_tags.push(r.name.clone());
        }
        let d = format!("{repo}@{}", r.manifest_digest);
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    let user = config
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let user_part = user.split(':').next().unwrap_or_default();
    let (uid, username) = match user_part.parse::<i64>() {
        Ok(n) => (Some(cri::Int64Value { value: n }), String::new()),
        Err(_) => (None, user_part.to_string()),
    };
    let image = cri::Image {
        id: id.to_string(),
        repo_tags,
        repo_digests,
        size: first.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: id.to_string(),
            ..Default::default()
        }),
        pinned: false,
    };
    Ok((image, config))
}
