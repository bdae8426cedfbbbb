//! `GET /containers/{id}/export` (the root filesystem as a tar) and
//! `GET /containers/{id}/changes` (`docker diff`).

use std::sync::Arc;

use berth_engine::archive;
use serde_json::json;

use super::super::images::stream::{channel_body, ChannelWriter};
use super::super::{ApiError, Reply};
use crate::Daemon;

pub async fn export(daemon: &Arc<Daemon>, id: &str) -> Result<Reply, ApiError> {
    let (tx, body) = channel_body(8);
    archive::export(&daemon.engine, id, move || ChannelWriter::new(tx)).await?;
    if let Ok(record) = berth_engine::find(&daemon.engine, id) {
        daemon.engine.events_log.container(&record, "export", []);
    }
    Ok(Reply::stream("application/x-tar", body))
}

pub async fn changes(daemon: &Arc<Daemon>, id: &str) -> Result<Reply, ApiError> {
    let changes = archive::changes(&daemon.engine, id).await?;
    let list: Vec<_> = changes
        .iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind.docker_kind()}))
        .collect();
    Ok(Reply::json(&json!(list)))
}
