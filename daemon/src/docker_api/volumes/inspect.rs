//! `GET /volumes/{name}`.

use std::sync::Arc;

use berth_engine::volumes;

use super::super::{ApiError, Reply};
use super::shape;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, name: String) -> Result<Reply, ApiError> {
    let engine = Arc::clone(&daemon.engine);
    let volume = berth_engine::blocking(move || volumes::get(&engine, &name)).await?;
    Ok(Reply::json(&shape::volume(&volume)))
}
