//! Finding images by what clients type: a reference (`busybox`, `host:5000/a/b:t`,
//! `name@sha256:…`), a full ID (`sha256:…`) or a unique ID prefix.

use berth_engine::images::resolve::ResolveError;
use berth_image::{ImageRecord, Reference};

use super::super::ApiError;

pub use berth_engine::images::resolve::{group, Found};
use berth_engine::images::Images;

pub fn store_err(err: berth_image::store::StoreError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// Resolves `name`; `No such image: name` when nothing matches.
pub fn find(images: &Images, name: &str) -> Result<Found, ApiError> {
    berth_engine::images::resolve::find(&images.store, name).map_err(|e| match e {
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

/// What a record's name is, as a Docker reference: a tag (`repo:tag`), a digest
/// reference (`repo@sha256:…`), or neither (a dangling record, named by its image ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Tag,
    Digest,
    None,
}

pub fn ref_kind(name: &str) -> RefKind {
    if berth_engine::images::is_dangling(name) {
        return RefKind::None;
    }
    match Reference::parse(name) {
        Ok(r) if r.digest.is_some() => RefKind::Digest,
        Ok(r) if r.tag.is_some() => RefKind::Tag,
        _ => RefKind::None,
    }
}

/// The repository of a reference (`docker.io/library/busybox`), `None` for a dangling
/// record.
pub fn repository(name: &str) -> Option<String> {
    if berth_engine::images::is_dangling(name) {
        return None;
    }
    Reference::parse(name).ok().map(|r| r.name())
}

/// The records that are references (tags and digests), in the store's order (by
/// normalised name, the order of Docker's reference store).
pub fn references(records: &[ImageRecord]) -> Vec<&ImageRecord> {
    records
        .iter()
        .filter(|r| ref_kind(&r.name) != RefKind::None)
        .collect()
}

/// The `RepoTags` and `RepoDigests` of `refs` (familiar names, in order).
pub fn tags_digests<'a>(
    refs: impl IntoIterator<Item = &'a ImageRecord>,
) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for rec in refs {
        match ref_kind(&rec.name) {
            RefKind::Tag => tags.push(familiar(&rec.name)),
            RefKind::Digest => digests.push(familiar(&rec.name)),
            RefKind::None => {}
        }
    }
    (tags, digests)
}

/// The `RepoTags` and `RepoDigests` of an image's records.
pub fn repo_tags_digests(records: &[ImageRecord]) -> (Vec<String>, Vec<String>) {
    tags_digests(references(records))
}

/// Docker's `reference.FamiliarMatch`: `pattern` against the familiar reference
/// (`busybox:1.36`, `busybox@sha256:…`), else against its familiar repository
/// (`busybox`).
pub fn familiar_match(pattern: &super::filters::Pattern, name: &str) -> bool {
    pattern.matches(&familiar(name))
        || repository(name).is_some_and(|repo| pattern.matches(&familiar(&repo)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_told_apart_and_matched_by_familiar_names() {
        let tag = "docker.io/library/busybox:1.36";
        let digest = format!(
            "docker.io/library/busybox@{}",
            berth_snapshotter::Digest::of(b"m")
        );
        let dangling = berth_snapshotter::Digest::of(b"c").to_string();
        assert_eq!(ref_kind(tag), RefKind::Tag);
        assert_eq!(ref_kind(&digest), RefKind::Digest);
        assert_eq!(ref_kind(&dangling), RefKind::None);
        assert_eq!(repository(&dangling), None);
        let p = |s: &str| super::super::filters::Pattern::parse(s).unwrap();
        assert!(familiar_match(&p("busybox"), tag));
        assert!(familiar_match(&p("busybox"), &digest));
        assert!(familiar_match(&p("busybox:1*"), tag));
        assert!(!familiar_match(&p("busybox:1*"), &digest));
        assert!(!familiar_match(&p("library/busybox"), tag));
        assert!(familiar_match(&p("*/busybox"), "127.0.0.1:5000/busybox:1"));
        assert!(!familiar_match(&p("busy*"), "127.0.0.1:5000/busybox:1"));
    }

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
