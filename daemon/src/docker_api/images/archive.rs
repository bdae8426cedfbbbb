//! `GET /images/get?names=…` and `GET /images/{name}/get` (save: a tar that is both an
//! OCI layout and a `docker save` archive), `POST /images/load` (either form).

use std::sync::Arc;

use berth_engine::images::is_dangling;
use berth_image::Platform;
use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use super::resolve::{familiar, find};
use super::stream::{channel_body, spool_body, ChannelWriter, Messages};
use crate::Daemon;

pub fn save(daemon: &Arc<Daemon>, names: &[String]) -> Result<Reply, ApiError> {
    if names.is_empty() {
        return Err(ApiError::BadRequest(
            "save needs at least one image (names=…)".into(),
        ));
    }
    let mut records = Vec::new();
    for name in names {
        let found = find(&daemon.engine.images, name)?;
        let picked: Vec<_> = match found.by_name {
            Some(rec) => vec![rec],
            None => found.records,
        };
        for rec in picked {
            if !records
                .iter()
                .any(|r: &berth_image::ImageRecord| r.name == rec.name)
            {
                records.push(rec);
            }
        }
    }
    // Every blob is checked before the reply starts: a missing one is an error
    // status, not a truncated archive.
    for rec in &records {
        for digest in rec.blobs() {
            daemon.engine.images.content.info(&digest).map_err(|e| {
                ApiError::Internal(format!("cannot save {}: blob {digest}: {e}", rec.name))
            })?;
        }
    }
    for rec in &records {
        let id = rec.config_digest.to_string();
        daemon.engine.events_log.image("save", &id, Some(&id));
    }
    let (tx, body) = channel_body(8);
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter::new(tx);
        if let Err(e) = berth_image::archive::save(&d.engine.images.content, &records, out) {
            // The status line is gone already: the client sees a truncated tar.
            tracing::error!(error = %e, "save failed while streaming");
        }
    });
    Ok(Reply::stream("application/x-tar", body))
}

pub async fn load(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Reply, ApiError> {
    // `quiet` only hides progress bars, which berth does not send for a load.
    req.query_bool("quiet")?;
    let tmp = spool_body(&mut req, &daemon.engine.images.uploads).await?;
    let d = daemon.clone();
    let records = tokio::spawn(async move {
        let _writing = d.engine.images.gc_lock.read().await;
        let d2 = d.clone();
        tokio::task::spawn_blocking(move || {
            let before = d2.engine.images.store.list().unwrap_or_default();
            let file = std::fs::File::open(tmp.path())
                .map_err(|e| ApiError::Internal(format!("reopening the upload: {e}")))?;
            let i = &d2.engine.images;
            let loaded = berth_image::archive::load(
                &i.content,
                &i.snapshots,
                &i.store,
                std::io::BufReader::with_capacity(1 << 20, file),
                &Platform::default(),
            )
            .map_err(|e| ApiError::BadRequest(format!("load: {e}")))?;
            for rec in &loaded {
                let old = before.iter().find(|o| o.name == rec.name);
                if old.is_some_and(|o| o.config_digest != rec.config_digest) {
                    if let Err(e) = i.keep_dangling(old.cloned()) {
                        tracing::warn!(error = %e, "cannot keep the replaced image as dangling");
                    }
                }
            }
            Ok::<_, ApiError>(loaded)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("load task: {e}")))?
    })
    .await
    .map_err(|e| ApiError::Internal(format!("load task: {e}")))??;
    for rec in &records {
        let id = rec.config_digest.to_string();
        daemon.engine.events_log.image("load", &id, Some(&id));
    }
    let (msgs, reply) = Messages::new();
    tokio::spawn(async move {
        for rec in records {
            let line = if is_dangling(&rec.name) {
                format!("Loaded image ID: {}\n", rec.config_digest)
            } else {
                format!("Loaded image: {}\n", familiar(&rec.name))
            };
            msgs.send(json!({ "stream": line })).await;
        }
    });
    Ok(reply)
}
