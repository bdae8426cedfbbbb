//! `GET /networks/{id}?verbose=&scope=`: one network with its containers. `verbose`
//! adds only swarm's service details, so it changes nothing here; a `scope` other
//! than `local` finds nothing, as on a dockerd without swarm.

use std::sync::Arc;

use berth_engine::networks;

use super::super::{ApiError, ApiRequest, Reply};
use super::shape;
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    req: &ApiRequest,
    reference: String,
) -> Result<Reply, ApiError> {
    req.query_bool("verbose")?;
    if req
        .query("scope")
        .is_some_and(|s| !s.is_empty() && s != "local")
    {
        return Err(ApiError::NotFound(format!("network {reference} not found")));
    }
    let engine = Arc::clone(&daemon.engine);
    let network = berth_engine::blocking(move || networks::get(&engine, &reference)).await?;
    Ok(Reply::json(&shape::network(&network, true)))
}
