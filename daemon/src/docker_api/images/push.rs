//! `POST /images/{name}/push?tag=…`: pushes a local image (or every tag of a
//! repository when no tag is given) with the client's `X-Registry-Auth`.

use std::sync::Arc;

use berth_image::push::PushError;
use berth_image::{Reference, RegistryError};
use berth_snapshotter::Digest;
use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use super::registry_auth;
use super::resolve::store_err;
use super::stream::Messages;
use crate::Daemon;

fn push_error(err: &PushError) -> ApiError {
    let msg = err.to_string();
    match err {
        PushError::Reference(_) => ApiError::BadRequest(msg),
        PushError::Registry(RegistryError::NameUnknown { .. } | RegistryError::NotFound { .. }) => {
            ApiError::NotFound(msg)
        }
        _ => ApiError::Internal(msg),
    }
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest, name: &str) -> Result<Reply, ApiError> {
    let images = &daemon.engine.images;
    let tag = req.query("tag").filter(|t| !t.is_empty());
    let repo = Reference::parse(name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let explicit_tag = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    let records: Vec<_> = match tag {
        Some(_) => {
            let target = super::pull::reference(name, tag)?.to_string();
            images
                .store
                .get(&target)
                .map_err(store_err)?
                .into_iter()
                .collect()
        }
        None if explicit_tag => images
            .store
            .get(&repo.to_string())
            .map_err(store_err)?
            .into_iter()
            .collect(),
        None => images
            .store
            .list()
            .map_err(store_err)?
            .into_iter()
            .filter(|r| {
                Reference::parse(&r.name).is_ok_and(|x| x.name() == repo.name() && x.tag.is_some())
            })
            .collect(),
    };
    if records.is_empty() {
        return Err(ApiError::NotFound(format!(
            "An image does not exist locally with the tag: {name}"
        )));
    }
    let auth = registry_auth::from_header(req)?;
    let client = registry_auth::client(daemon, &repo.registry, &auth)?;
    let mut lines =
        vec![json!({ "status": format!("The push refers to repository [{}]", repo.name()) })];
    for rec in &records {
        let report = berth_image::push::push(&client, &images.content, rec, &rec.name)
            .await
            .map_err(|e| push_error(&e))?;
        let from = Reference::parse(&rec.name)
            .map(|r| r.repository)
            .unwrap_or_default();
        for layer in rec.layers.iter().rev() {
            let d = &layer.digest;
            let status = if report.skipped.contains(d) {
                "Layer already exists".to_string()
            } else if report.mounted.contains(d) {
                format!("Mounted from {from}")
            } else {
                "Pushed".to_string()
            };
            lines.push(json!({ "status": status, "progressDetail": {}, "id": short(d) }));
        }
        // The pushed repository now knows the image by its digest, as Docker's does.
        let pushed = report
            .manifest_digest
            .clone()
            .unwrap_or_else(|| rec.manifest_digest.clone());
        images
            .store
            .add_digest_ref(rec, &pushed)
            .map_err(store_err)?;
        let size = images
            .content
            .info(&rec.manifest_digest)
            .map(|i| i.size)
            .unwrap_or(0);
        let tag = Reference::parse(&rec.name)
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_default();
        lines.push(json!({
            "status": format!("{tag}: digest: {} size: {size}", rec.manifest_digest),
        }));
        lines.push(json!({
            "progressDetail": {},
            "aux": { "Tag": tag, "Digest": rec.manifest_digest.to_string(), "Size": size },
        }));
        super::pull::pulled_event(daemon, &rec.name, "push");
    }
    let (msgs, reply) = Messages::new();
    tokio::spawn(async move {
        for line in lines {
            msgs.send(line).await;
        }
    });
    Ok(reply)
}
