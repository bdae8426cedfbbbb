//! `POST /containers/create`: Docker's body read and checked as Docker checks it,
//! translated once into berth's container config ([`request::CreateRequest::to_config`])
//! and handed to the engine.

mod blkio;
mod fields;
pub mod log_driver;
mod mounts;
mod oom;
mod request;
mod volumes_from;

use std::sync::Arc;

use berth_engine::restart_policy::RestartPolicy;
use berth_engine::{self as engine, NewContainer};
use hyper::StatusCode;
use serde_json::{json, Value};

pub use request::CreateRequest;
pub use volumes_from::from_tmpfs_flag;

use crate::docker_api::{ApiError, ApiRequest, Reply};
use crate::Daemon;

pub(super) async fn create(daemon: &Arc<Daemon>, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    let name = req
        .query("name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let mut body: Value = req.json().await?;
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "config cannot be empty in order to create a container".into(),
        ));
    }
    // As Docker: a block I/O weight this host cannot apply is dropped, and the answer
    // says so (the docker and berth CLIs print it as "WARNING: ...").
    let mut warnings = blkio::discard_unsupported_weight(
        &mut body,
        berth_engine::container_spec::blkio::weight_supported,
    );
    warnings.extend(oom::discard_unsupported(
        &mut body,
        berth_engine::container_spec::host_limits::oom_kill_disable_supported,
    ));
    let defaults = log_driver::Defaults {
        driver: &daemon.config.log_driver,
        opts: Some(&daemon.config.log_opts),
    };
    let engine = &daemon.engine;
    // A missing source is a bad request, not a 404: docker's run and create read a 404
    // as a missing image and go pulling it (dockerd's 404 sends them to the registry).
    let new = new_container(name, body, &defaults, &|reference| {
        engine::find(engine, reference).map_err(|e| match ApiError::from(e) {
            ApiError::NotFound(m) => ApiError::BadRequest(m),
            other => other,
        })
    })?;
    let id = engine::create(&daemon.engine, new).await?;
    tracing::Span::current().record("container", id.as_str());
    for w in &warnings {
        tracing::warn!(id = %id, "{w}");
    }
    Ok(Reply::json(&json!({"Id": id, "Warnings": warnings})).with_status(StatusCode::CREATED))
}

/// Finds a container (`VolumesFrom`) by id, name or id prefix.
type FindContainer<'a> = &'a dyn Fn(&str) -> Result<engine::ContainerRecord, ApiError>;

/// The container a create body asks for; the body is kept as the record's request.
fn new_container(
    name: Option<String>,
    mut body: Value,
    log_defaults: &log_driver::Defaults<'_>,
    find: FindContainer<'_>,
) -> Result<NewContainer, ApiError> {
    fields::check(&body).map_err(ApiError::BadRequest)?;
    let request: CreateRequest = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::BadRequest(format!("invalid create request: {e}")))?;
    if request.image.is_empty() {
        return Err(ApiError::BadRequest("config.Image is required".into()));
    }
    let hc = &body["HostConfig"];
    let policy: RestartPolicy =
        serde_json::from_value(hc["RestartPolicy"].clone()).unwrap_or_default();
    policy
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let auto_remove = hc["AutoRemove"].as_bool().unwrap_or(false);
    if auto_remove && !matches!(policy.name.as_str(), "" | "no") {
        return Err(ApiError::BadRequest(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    if let Some(n) = &name {
        let n = n.strip_prefix('/').unwrap_or(n);
        if !engine::lookup::valid_name(n) {
            return Err(ApiError::BadRequest(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    // Later sources override earlier ones at the same destination.
    let mut from: Vec<berth_engine::config::Mount> = Vec::new();
    for spec in request.host_config.volumes_from.iter().flatten() {
        let (reference, read_only) = volumes_from::parse(spec).map_err(ApiError::BadRequest)?;
        let source = find(&reference)?;
        for m in volumes_from::mounts_of(&source, read_only) {
            from.retain(|o| o.destination != m.destination);
            from.push(m);
        }
    }
    let config = request
        .to_config_with(from)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // As dockerd: the merged LogConfig is what the container keeps (inspect shows it).
    let (log, log_config) = log_driver::merged(hc, log_defaults)?;
    if let Some(hc) = body["HostConfig"].as_object_mut() {
        hc.insert("LogConfig".into(), log_config);
    } else {
        body["HostConfig"] = json!({ "LogConfig": log_config });
    }
    Ok(NewContainer {
        name: name.map(|n| n.trim_start_matches('/').to_string()),
        config,
        body,
        restart_policy: policy,
        auto_remove,
        log_path: None,
        log,
        cri: None,
        patch_spec: None,
    })
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod spec_tests;
