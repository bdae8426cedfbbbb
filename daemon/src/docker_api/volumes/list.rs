//! `GET /volumes`: the volumes the `dangling`, `driver`, `label` and `name` filters
//! take, as `{"Volumes": […], "Warnings": null}`.

use std::sync::Arc;

use berth_engine::volumes::{self, VolumeFilter};
use serde_json::{json, Value};

use super::super::images::filters::{self, Filters};
use super::super::{ApiError, ApiRequest, Reply};
use super::shape;
use crate::Daemon;

pub async fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let f = filters::parse(req.query("filters"))?;
    filters::only(&f, &["dangling", "driver", "label", "name"])?;
    let filter = VolumeFilter {
        dangling: filters::boolean(&f, "dangling")?,
        ..labels_and_names(&f)
    };
    let engine = Arc::clone(&daemon.engine);
    let list = berth_engine::blocking(move || volumes::list(&engine, &filter)).await?;
    let list: Vec<Value> = list.iter().map(shape::volume).collect();
    Ok(Reply::json(&json!({ "Volumes": list, "Warnings": null })))
}

/// The `label`, `label!`, `name` and `driver` parts of a filter.
pub fn labels_and_names(f: &Filters) -> VolumeFilter {
    let values = |k: &str| f.get(k).cloned().unwrap_or_default();
    VolumeFilter {
        dangling: None,
        labels: values("label"),
        not_labels: values("label!"),
        names: values("name"),
        drivers: values("driver"),
    }
}
