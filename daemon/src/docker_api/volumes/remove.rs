//! `DELETE /volumes/{name}?force=`: 204; in use is a 409 even with `force`, which
//! only makes a missing volume no error (dockerd's rules).

use std::sync::Arc;

use berth_engine::volumes;
use hyper::StatusCode;

use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub async fn handle(
    daemon: &Arc<Daemon>,
    req: &ApiRequest,
    name: String,
) -> Result<Reply, ApiError> {
    let force = req.query_bool("force")?;
    let engine = Arc::clone(&daemon.engine);
    berth_engine::blocking(move || volumes::remove(&engine, &name, force)).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
