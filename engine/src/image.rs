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

/// The image record `reference` names, resolved as the Docker API resolves it (a
/// reference, `name@digest`, an ID or a unique ID prefix).
pub fn find(images: &Images, reference: &str) -> Result<ImageRecord, EngineError> {
    use crate::images::resolve::ResolveError;
    let found = crate::images::resolve::find(&images.store, reference).map_err(|e| match e {
        ResolveError::NotFound(_) => EngineError::image_not_found(reference),
        ResolveError::Ambiguous(_) => EngineError::Invalid(e.to_string()),
        ResolveError::Store(e) => EngineError::internal("the image store")(e),
    })?;
    found
        .by_name
        .or_else(|| found.records.into_iter().next())
        .ok_or_else(|| EngineError::image_not_found(reference))
}

/// The image's config (the parts a container inherits).
pub fn config(images: &Images, record: &ImageRecord) -> Result<ImageConfig, EngineError> {
    let bytes = images
        .content
        .read_all(&record.config_digest, CONFIG_LIMIT)
        .map_err(EngineError::internal(format!(
            "image config {}",
            record.config_digest
        )))?;
    ImageConfig::parse(&bytes).map_err(EngineError::internal(format!(
        "image config {}",
        record.config_digest
    )))
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
        exposed_ports: c.exposed_ports,
    }
}
