//! Finding images by what clients type, the one resolver of every front door (the
//! Docker API, the engine's create, the CRI image service), as Docker resolves them:
//! a reference (`busybox`, `host:5000/a/b:t`, `name@sha256:…`) first, then a full ID
//! (`sha256:…`) or a unique ID prefix.

use berth_snapshotter::Digest;

use crate::store::{ImageRecord, ImageStore, StoreError};
use crate::Reference;

/// Why a name resolves to no single image.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("image ID prefix {0:?} is ambiguous: it matches more than one image")]
    Ambiguous(String),
    #[error("image store: {0}")]
    Store(#[from] StoreError),
}

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

/// Resolves `name`; `No such image: name` when nothing matches.
pub fn find(store: &ImageStore, name: &str) -> Result<Found, ResolveError> {
    let records = store.list()?;
    let not_found = || ResolveError::NotFound(name.to_string());
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
        return Err(ResolveError::Ambiguous(name.to_string()));
    }
    Ok(Found {
        id,
        records: recs,
        by_name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, config: &Digest, manifest: &Digest) -> ImageRecord {
        ImageRecord {
            name: name.to_string(),
            index_digest: None,
            manifest_digest: manifest.clone(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: config.clone(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            chain_id: None,
            size: 0,
            created: 0,
            diff_sizes: Some(Vec::new()),
        }
    }

    #[test]
    fn names_digests_ids_and_prefixes_resolve_like_docker() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let images = ImageStore::open(root.path())?;
        // Two images whose IDs share their first hex digit, the first with two names.
        let configs: Vec<Digest> = (0u32..)
            .map(|i| Digest::of(&i.to_le_bytes()))
            .take(64)
            .collect();
        let (a, b) = configs
            .iter()
            .enumerate()
            .find_map(|(i, x)| {
                configs[i + 1..]
                    .iter()
                    .find(|y| y.hex()[..1] == x.hex()[..1] && y.hex()[..2] != x.hex()[..2])
                    .map(|y| (x.clone(), y.clone()))
            })
            .ok_or("no two digests share a first digit")?;
        let manifest = Digest::of(b"manifest a");
        images.put(&record("docker.io/library/busybox:latest", &a, &manifest))?;
        images.put(&record("127.0.0.1:5000/app:1", &a, &manifest))?;
        images.put(&record(
            "docker.io/library/other:2",
            &b,
            &Digest::of(b"m b"),
        ))?;

        let found = find(&images, "busybox")?;
        assert_eq!(found.id, a);
        assert_eq!(found.records.len(), 2, "both names of the image");
        assert_eq!(
            found.by_name.map(|r| r.name).as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        let by_digest = find(&images, &format!("busybox@{manifest}"))?;
        assert_eq!(by_digest.id, a);
        assert_eq!(find(&images, &a.to_string())?.id, a);
        assert_eq!(find(&images, &a.hex()[..2])?.id, a);
        assert_eq!(find(&images, &b.hex()[..12])?.id, b);
        assert!(matches!(
            find(&images, &a.hex()[..1]),
            Err(ResolveError::Ambiguous(_))
        ));
        assert!(matches!(
            find(&images, "nothere"),
            Err(ResolveError::NotFound(_))
        ));
        assert!(matches!(
            find(
                &images,
                "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            Err(ResolveError::NotFound(_))
        ));
        Ok(())
    }
}
