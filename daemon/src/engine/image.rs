//! Finding a container's image in the image store, as Docker resolves names: a
//! reference (`busybox` → `docker.io/library/busybox:latest`), or an image id or its
//! unique prefix.

use berth_image::{ImageConfig, ImageRecord, Reference};

use super::EngineError;
use crate::container_spec::ImageDefaults;
use crate::images::Images;

/// The largest image config berthd reads.
const CONFIG_LIMIT: u64 = 4 << 20;

/// The normalised name of a reference with Docker's default tag.
pub fn normalise(reference: &str) -> Option<String> {
    let r = Reference::parse(reference).ok()?;
    let r = if r.tag.is_none() && r.digest.is_none() {
        r.with_tag("latest").ok()?
    } else {
        r
    };
    Some(r.to_string())
}

/// The image record `reference` names.
pub fn find(images: &Images, reference: &str) -> Result<ImageRecord, EngineError> {
    let internal = |e: berth_image::store::StoreError| EngineError::Internal(e.to_string());
    if let Some(name) = normalise(reference) {
        if let Some(r) = images.store.get(&name).map_err(internal)? {
            return Ok(r);
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let all = images.store.list().map_err(internal)?;
        let mut found = all
            .into_iter()
            .filter(|r| r.config_digest.hex().starts_with(hex));
        if let Some(r) = found.next() {
            return Ok(r);
        }
    }
    Err(EngineError::NotFound(format!("No such image: {reference}")))
}

/// The image's config (the parts a container inherits).
pub fn config(images: &Images, record: &ImageRecord) -> Result<ImageConfig, EngineError> {
    let bytes = images
        .content
        .read_all(&record.config_digest, CONFIG_LIMIT)
        .map_err(|e| {
            EngineError::Internal(format!("image config {}: {e}", record.config_digest))
        })?;
    ImageConfig::parse(&bytes)
        .map_err(|e| EngineError::Internal(format!("image config {}: {e}", record.config_digest)))
}

/// What the image's config contributes to a container's spec.
pub fn defaults(config: &ImageConfig) -> ImageDefaults {
    let c = config.config.clone().unwrap_or_default();
    ImageDefaults {
        user: c.user.unwrap_or_default(),
        env: c.env,
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        working_dir: c.working_dir.unwrap_or_default(),
        stop_signal: c.stop_signal,
    }
}
