//! `DELETE /networks/{id}`: 204; a network with containers on it is a 403 in
//! dockerd's words, a builtin one too.

use std::sync::Arc;

use berth_engine::networks;
use hyper::StatusCode;

use super::super::{ApiError, Reply};
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, reference: String) -> Result<Reply, ApiError> {
    let engine = Arc::clone(&daemon.engine);
    berth_engine::blocking(move || networks::remove(&engine, &reference)).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
