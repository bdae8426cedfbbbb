//! Finding images by what clients type: a reference (`busybox`, `host:5000/a/b:t`,
//! `name@sha256:…`), a full ID (`sha256:…`) or a unique ID prefix.

use berth_image::{ImageRecord, Reference};

use super::super::ApiError;
use crate::images::resolve::ResolveError;
pub use crate::images::resolve::{group, Found};
use crate::images::Images;

pub fn store_err(err: berth_image::store::StoreError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// Resolves `name`; `No such image: name` when nothing matches.
pub fn find(images: &Images, name: &str) -> Result<Found, ApiError> {
    crate::images::resolve::find(images, name).map_err(|e| match e {
        ResolveError::NotFound(_) => ApiError::NotFound(e.to_string()),
        ResolveError::Ambiguous(_) => ApiError::BadRequest(e.to_string()),
        ResolveError::Store(e) => store_err(e),
    })
}

/// Docker's short form of a normalised name: `docker.io/library/busybox:latest` →
/// `busybox:latest`, `docker.io/me/app:1` → `me/app:1`; other registries unchanged.
pub fn familiar(name: &str) -> String {
    let rest = match name.strip_prefix("docker.io/") {
        Some(rest) => rest,
        None => return name.to_string(),
    };
    rest.strip_prefix("library/").unwrap_or(rest).to_string()
}

/// The `RepoTags` and `RepoDigests` of an image's records.
pub fn repo_tags_digests(records: &[ImageRecord]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for rec in records {
        if crate::images::is_dangling(&rec.name) {
            continue;
        }
        let Ok(r) = Reference::parse(&rec.name) else {
            continue;
        };
        if r.tag.is_some() {
            tags.push(familiar(&rec.name));
        }
        let d = format!("{}@{}", familiar(&r.name()), rec.manifest_digest);
        if !digests.contains(&d) {
            digests.push(d);
        }
    }
    tags.sort();
    digests.sort();
    (tags, digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_drop_the_hub_prefixes() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/me/app:1"), "me/app:1");
        assert_eq!(familiar("127.0.0.1:5000/a/b:t"), "127.0.0.1:5000/a/b:t");
    }
}
