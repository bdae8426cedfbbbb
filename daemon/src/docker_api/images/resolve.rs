//! Finding images by what clients type: a reference (`busybox`, `host:5000/a/b:t`,
//! `name@sha256:…`), a full ID (`sha256:…`) or a unique ID prefix.

use berth_image::{ImageRecord, Reference};
use berth_snapshotter::Digest;

use super::super::ApiError;
use crate::images::Images;

/// One image (an ID) and every record naming it.
pub struct Found {
    pub id: Digest,
    pub records: Vec<ImageRecord>,
    /// The record the client named, when it used a reference.
    pub by_name: Option<ImageRecord>,
}

/// Every record, grouped by image ID (config digest), in a stable order.
pub fn group(records: Vec<ImageRecord>) -> Vec<(Digest, Vec<ImageRecord>)> {
    let mut out: Vec<(Digest, Vec<ImageRecord>)> = Vec::new();
    for rec in records {
        match out.iter_mut().find(|(id, _)| *id == rec.config_digest) {
            Some((_, recs)) => recs.push(rec),
            None => out.push((rec.config_digest.clone(), vec![rec])),
        }
    }
    out
}

pub fn store_err(err: berth_image::store::StoreError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// Resolves `name`; `No such image: name` when nothing matches.
pub fn find(images: &Images, name: &str) -> Result<Found, ApiError> {
    let records = images.store.list().map_err(store_err)?;
    let not_found = || ApiError::NotFound(format!("No such image: {name}"));
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let by_id = !hex.is_empty()
        && hex.len() <= 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    // A reference first (a name may also look like a hex prefix, e.g. `cafe`).
    if let Ok(r) = Reference::parse(name) {
        let by_ref = records
            .iter()
            .find(|rec| rec.name == r.to_string())
            .cloned();
        let by_ref = by_ref.or_else(|| {
            // `name@sha256:…` matches the image pulled by that repository's digest.
            let digest = r.digest.as_ref()?;
            records
                .iter()
                .find(|rec| {
                    Reference::parse(&rec.name).is_ok_and(|x| x.name() == r.name())
                        && rec.manifest_digest == *digest
                })
                .cloned()
        });
        if let Some(rec) = by_ref {
            let id = rec.config_digest.clone();
            let all = records
                .into_iter()
                .filter(|x| x.config_digest == id)
                .collect();
            return Ok(Found {
                id,
                records: all,
                by_name: Some(rec),
            });
        }
    }
    if !by_id {
        return Err(not_found());
    }
    let groups = group(records);
    let mut matches = groups
        .into_iter()
        .filter(|(id, _)| id.hex().starts_with(hex));
    let Some((id, recs)) = matches.next() else {
        return Err(not_found());
    };
    if matches.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "image ID prefix {name:?} is ambiguous: it matches more than one image"
        )));
    }
    Ok(Found {
        id,
        records: recs,
        by_name: None,
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
