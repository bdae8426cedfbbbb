//! Image references as the CRI image service reads them: resolved by berth-image's
//! one resolver (as Docker resolves them), and split into CRI's repo tags and digests.

use berth_image::resolve::{self, ResolveError};
use berth_image::ImageRecord;

use crate::{Cri, CriError};

/// The image id and every record naming it, or `None` when nothing matches.
pub(super) fn resolve(
    cri: &Cri,
    reference: &str,
) -> Result<Option<(String, Vec<ImageRecord>)>, CriError> {
    match resolve::find(&cri.inner.images.store, reference) {
        Ok(found) => Ok(Some((found.id.to_string(), found.records))),
        Err(ResolveError::NotFound(_)) => Ok(None),
        Err(e @ ResolveError::Ambiguous(_)) => Err(CriError::InvalidArgument(e.to_string())),
        Err(ResolveError::Store(e)) => Err(e.into()),
    }
}

/// `registry/repo:tag` → (`registry/repo`, true); `registry/repo@sha256:…` → (…, false).
pub(super) fn split_name(name: &str) -> (&str, bool) {
    if let Some((repo, _)) = name.split_once('@') {
        let repo = match repo.rfind(':') {
            Some(i) if !repo[i..].contains('/') => &repo[..i],
            _ => repo,
        };
        return (repo, false);
    }
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], true),
        _ => (name, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_repo_and_tag_or_digest() {
        assert_eq!(
            split_name("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b", true)
        );
        assert_eq!(
            split_name("127.0.0.1:5000/a/b@sha256:00"),
            ("127.0.0.1:5000/a/b", false)
        );
        assert_eq!(
            split_name("docker.io/library/busybox:1@sha256:00"),
            ("docker.io/library/busybox", false)
        );
    }
}
