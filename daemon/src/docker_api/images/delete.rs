//! Docker's image delete (`ImageDelete` in moby's `daemon/images/image_delete.go`), for
//! `DELETE /images/{name}` and for prune: what goes, what stays, the
//! `{"Untagged": …}` / `{"Deleted": …}` items, and the conflicts in Docker's words.
//!
//! An image's references are its tag and digest records. By reference: that reference
//! goes (and, when it was the repository's last tag, the repository's digest
//! references); the image goes with its last reference, unless a container uses it.
//! Without force, a reference that is the image's only one (one tag plus digests of
//! its repository) is kept while any container uses the image. By ID: the image goes
//! with all its references, when at most one tag names it, else only with force; a
//! running container always keeps it, a stopped one unless forced. Deleting the image
//! lists its ID, then each of its layers that no other image or container still needs.

use std::collections::HashSet;
use std::sync::Arc;

use berth_engine::store::Kind;
use berth_image::store::StoreError;
use berth_image::{ImageRecord, Reference};
use berth_snapshotter::Digest;
use serde_json::{json, Value};

use super::super::ApiError;
use super::resolve::{familiar, find, ref_kind, references, repository, store_err, RefKind};
use crate::Daemon;

/// A container using an image: its short ID and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub running: bool,
}

/// The containers whose image is `id`.
///
/// Container records (`engine::ContainerRecord`) keep the image ID in `image_id`;
/// paused and restarting containers count as running, as Docker's `IsRunning`.
pub fn users_of(daemon: &Daemon, id: &Digest) -> Result<Vec<User>, ApiError> {
    let containers = daemon.engine.store.list::<Value>(Kind::Container)?;
    let id = id.to_string();
    Ok(containers
        .into_iter()
        .filter(|(_, _, c)| c["image_id"].as_str() == Some(id.as_str()))
        .map(|(cid, _, c)| User {
            id: cid.chars().take(12).collect(),
            running: matches!(
                c["state"]["status"].as_str(),
                Some("running" | "paused" | "restarting")
            ),
        })
        .collect())
}

pub fn short(id: &Digest) -> String {
    id.hex().chars().take(12).collect()
}

fn untagged(name: &str) -> Value {
    json!({ "Untagged": familiar(name) })
}

/// Why an image cannot be deleted (Docker's `imageDeleteConflict`).
struct Conflict {
    hard: bool,
    /// A container uses the image.
    used: bool,
    message: String,
}

impl Conflict {
    fn error(&self, id: &Digest) -> ApiError {
        let how = if self.hard {
            "cannot be forced"
        } else {
            "must be forced"
        };
        ApiError::Conflict(format!(
            "conflict: unable to delete {} ({how}) - {}",
            short(id),
            self.message
        ))
    }
}

/// The conflicts checked: running containers always; references left and stopped
/// containers unless forced (or, for a reference, checked by the caller).
#[derive(Clone, Copy)]
struct Checks {
    references: bool,
    stopped: bool,
}

fn conflict(
    daemon: &Daemon,
    id: &Digest,
    refs: usize,
    checks: Checks,
) -> Result<Option<Conflict>, ApiError> {
    let users = users_of(daemon, id)?;
    if let Some(u) = users.iter().find(|u| u.running) {
        return Ok(Some(Conflict {
            hard: true,
            used: true,
            message: format!("image is being used by running container {}", u.id),
        }));
    }
    if checks.references && refs > 0 {
        return Ok(Some(Conflict {
            hard: false,
            used: false,
            message: "image is referenced in multiple repositories".into(),
        }));
    }
    if checks.stopped {
        if let Some(u) = users.iter().find(|u| !u.running) {
            return Ok(Some(Conflict {
                hard: false,
                used: true,
                message: format!("image is being used by stopped container {}", u.id),
            }));
        }
    }
    Ok(None)
}

/// Whether `name` is the image's ID or a prefix of it (with or without `sha256:`).
fn is_id_prefix(id: &Digest, name: &str) -> bool {
    id.to_string().starts_with(name) || id.hex().starts_with(name)
}

/// Docker's `isSingleReference`: all references in one repository, at most one of them
/// a tag.
fn is_single_reference(refs: &[ImageRecord]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut tag = None;
    let mut digest_repos = HashSet::new();
    for r in refs {
        match ref_kind(&r.name) {
            RefKind::Digest => {
                digest_repos.extend(repository(&r.name));
            }
            _ if tag.is_some() => return false,
            _ => tag = Some(r),
        }
    }
    let single = tag.unwrap_or(&refs[0]);
    digest_repos.len() == 1 && repository(&single.name).is_some_and(|r| digest_repos.contains(&r))
}

fn remove(daemon: &Daemon, name: &str) -> Result<(), ApiError> {
    match daemon.engine.images.store.remove(name) {
        Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

/// The references (tag and digest records) of image `id`, by name.
fn refs_of(daemon: &Daemon, id: &Digest) -> Result<Vec<ImageRecord>, ApiError> {
    let records = daemon
        .engine
        .images
        .store
        .by_config_digest(id)
        .map_err(store_err)?;
    Ok(references(&records).into_iter().cloned().collect())
}

/// Deletes what `name` (a reference, an ID or an ID prefix) names, as Docker's
/// `ImageDelete`; returns the items Docker answers.
pub async fn image_delete(
    daemon: &Arc<Daemon>,
    name: &str,
    force: bool,
) -> Result<Vec<Value>, ApiError> {
    // Held while references come and go, so that no collection frees the blobs of an
    // image between losing its last reference and being kept as dangling.
    let writing = daemon.engine.images.gc_lock.read().await;
    let found = find(&daemon.engine.images, name)?;
    let id = found.id.clone();
    let image = found.records[0].clone();
    let mut items = Vec::new();
    let mut refs = refs_of(daemon, &id)?;
    let quiet = if !is_id_prefix(&id, name) {
        if !force && is_single_reference(&refs) {
            if let Some(u) = users_of(daemon, &id)?.first() {
                return Err(ApiError::Conflict(format!(
                    "conflict: unable to remove repository reference {name:?} (must force) - container {} is using its referenced image {}",
                    u.id,
                    short(&id)
                )));
            }
        }
        let wanted = Reference::parse(name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let reference = wanted.to_string();
        // Found through another record (`name@digest` of an image pulled by tag): the
        // reference itself does not exist.
        if found.by_name.as_ref().map(|r| &r.name) != Some(&reference) {
            return Err(ApiError::NotFound(format!("No such image: {name}")));
        }
        remove(daemon, &reference)?;
        items.push(untagged(&reference));
        refs = refs_of(daemon, &id)?;
        // The repository's last tag gone: its digest references go with it.
        if wanted.digest.is_none() {
            let repo = wanted.name();
            let tag_left = refs.iter().any(|r| {
                ref_kind(&r.name) == RefKind::Tag && repository(&r.name).as_ref() == Some(&repo)
            });
            if !tag_left {
                let (same, rest): (Vec<_>, Vec<_>) = refs.into_iter().partition(|r| {
                    ref_kind(&r.name) == RefKind::Digest
                        && repository(&r.name).as_ref() == Some(&repo)
                });
                for r in same {
                    remove(daemon, &r.name)?;
                    items.push(untagged(&r.name));
                }
                refs = rest;
            }
        }
        if !refs.is_empty() {
            return Ok(items);
        }
        true
    } else {
        if is_single_reference(&refs) {
            let checks = Checks {
                references: false,
                stopped: !force,
            };
            if let Some(c) = conflict(daemon, &id, 0, checks)? {
                return Err(c.error(&id));
            }
            for r in &refs {
                remove(daemon, &r.name)?;
                items.push(untagged(&r.name));
            }
        }
        false
    };
    let deleted = delete_image(daemon, &image, &mut items, force, quiet)?;
    drop(writing);
    if deleted {
        let collected = daemon.engine.images.gc().await.map_err(store_err)?;
        let removed: HashSet<&String> = collected.snapshots.iter().collect();
        for chain in berth_snapshotter::digest::chain_ids(&image.diff_ids)
            .iter()
            .rev()
        {
            if removed.contains(&chain.to_string()) {
                items.push(json!({ "Deleted": chain.to_string() }));
            }
        }
    }
    Ok(items)
}

/// Docker's `imageDeleteHelper`: deletes the records of `image` (its remaining
/// references) unless a conflict keeps it; true when deleted, its layers then left to
/// the caller's collection. `quiet` (after its last reference was removed): a container
/// using it keeps it without an error.
fn delete_image(
    daemon: &Daemon,
    image: &ImageRecord,
    items: &mut Vec<Value>,
    force: bool,
    quiet: bool,
) -> Result<bool, ApiError> {
    let id = &image.config_digest;
    let refs = refs_of(daemon, id)?;
    let checks = Checks {
        references: !force,
        stopped: !force,
    };
    let images = &daemon.engine.images;
    if let Some(c) = conflict(daemon, id, refs.len(), checks)? {
        // The image stays: without references it is listed as `<none>`, as Docker's.
        if refs.is_empty() {
            images
                .keep_dangling(Some(image.clone()))
                .map_err(store_err)?;
        }
        if quiet && (!refs.is_empty() || c.used) {
            return Ok(false);
        }
        return Err(c.error(id));
    }
    for r in images.store.by_config_digest(id).map_err(store_err)? {
        remove(daemon, &r.name)?;
        if ref_kind(&r.name) != RefKind::None {
            items.push(untagged(&r.name));
        }
    }
    items.push(json!({ "Deleted": id.to_string() }));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn record(name: &str) -> ImageRecord {
        ImageRecord {
            name: name.to_string(),
            index_digest: None,
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: String::new(),
            config_digest: Digest::of(b"c"),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            chain_id: None,
            size: 0,
            created: 0,
            diff_sizes: None,
        }
    }

    #[test]
    fn single_references_are_one_tag_and_digests_of_its_repository() {
        let d = Digest::of(b"m");
        let set = |names: &[&str]| names.iter().map(|n| record(n)).collect::<Vec<_>>();
        let tag = "docker.io/library/busybox:1";
        let digest = format!("docker.io/library/busybox@{d}");
        let other_digest = format!("docker.io/library/other@{d}");
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&set(&[tag])));
        assert!(is_single_reference(&set(&[&digest])));
        assert!(is_single_reference(&set(&[tag, &digest])));
        assert!(!is_single_reference(&set(&[
            tag,
            "docker.io/library/busybox:2"
        ])));
        assert!(!is_single_reference(&set(&[tag, &other_digest])));
        assert!(!is_single_reference(&set(&[tag, &digest, &other_digest])));
        assert!(!is_single_reference(&set(&[&digest, &other_digest])));
    }

    #[test]
    fn id_prefixes_with_and_without_the_algorithm() {
        let id = Digest::of(b"c");
        assert!(is_id_prefix(&id, &id.hex()[..12]));
        assert!(is_id_prefix(&id, &id.to_string()[..19]));
        assert!(!is_id_prefix(&id, "busybox"));
    }

    #[test]
    fn containers_using_an_image_are_found() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let daemon = Daemon::start(Config {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            ..Config::default()
        })?;
        let id = Digest::of(b"an image config");
        let other = Digest::of(b"another image config");
        assert_eq!(users_of(&daemon, &id)?, Vec::new());
        for (cid, status) in [("c0ffee", "exited"), ("beef00", "paused")] {
            let cid = cid.repeat(10);
            daemon.engine.store.put(
                Kind::Container,
                &cid,
                None,
                &json!({ "image_id": id.to_string(), "state": { "status": status } }),
            )?;
        }
        let users = users_of(&daemon, &id)?;
        assert_eq!(
            users,
            vec![
                User {
                    id: "beef00beef00".into(),
                    running: true
                },
                User {
                    id: "c0ffeec0ffee".into(),
                    running: false
                },
            ]
        );
        assert_eq!(users_of(&daemon, &other)?, Vec::new());
        Ok(())
    }
}
