//! `POST /volumes/create`: `Name` (empty: a generated one), `Driver` (only `local`),
//! `DriverOpts` (the local driver's `type`, `device`, `o`; anything else refused by name),
//! `Labels`; 201 with the volume, the existing one when the name is taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine::volumes::{self, NewVolume};
use hyper::StatusCode;
use serde::Deserialize;

use super::super::{ApiError, ApiRequest, Reply};
use super::shape;
use crate::Daemon;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// Swarm's cluster volumes.
    #[serde(default)]
    cluster_volume_spec: Option<serde_json::Value>,
}

pub async fn handle(daemon: &Arc<Daemon>, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    let body: CreateBody = req.json().await?;
    if body.cluster_volume_spec.is_some_and(|v| !v.is_null()) {
        return Err(ApiError::BadRequest(
            "ClusterVolumeSpec is not supported by berth (no swarm)".into(),
        ));
    }
    let new = NewVolume {
        name: Some(body.name),
        anonymous: false,
        driver: Some(body.driver),
        labels: body.labels.unwrap_or_default(),
        options: body.driver_opts.unwrap_or_default(),
    };
    let engine = Arc::clone(&daemon.engine);
    let volume = berth_engine::blocking(move || volumes::create(&engine, new)).await?;
    Ok(Reply::json(&shape::volume(&volume)).with_status(StatusCode::CREATED))
}
