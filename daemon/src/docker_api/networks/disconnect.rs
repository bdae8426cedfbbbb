//! `POST /networks/{id}/disconnect`: `{"Container", "Force"}`.

use std::sync::Arc;

use berth_engine::networks::connect;
use hyper::StatusCode;
use serde_json::Value;

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    req: &mut ApiRequest,
    network: String,
) -> Result<Reply, ApiError> {
    let body: Value = req.json().await?;
    let container = super::container_of(&body)?;
    let force = body["Force"].as_bool().unwrap_or(false);
    connect::disconnect(&daemon.engine, &container, &network, force).await?;
    Ok(Reply::empty(StatusCode::OK))
}
