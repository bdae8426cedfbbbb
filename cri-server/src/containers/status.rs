//! `ContainerStatus` and `ListContainers` from the engine's records.

use std::collections::HashMap;

use berth_engine::{self as engine, ContainerRecord, CriMeta, Engine, Status};
use k8s_cri::v1 as cri;

use super::cri_record;
use crate::CriError;

/// Every container created through CRI.
pub(crate) fn cri_records(engine: &Engine) -> Result<Vec<ContainerRecord>, CriError> {
    Ok(engine::list(engine)
        .map_err(|e| CriError::Internal(e.to_string()))?
        .into_iter()
        .filter(|r| r.cri.is_some())
        .collect())
}

fn state(status: Status) -> cri::ContainerState {
    match status {
        Status::Created => cri::ContainerState::ContainerCreated,
        Status::Running | Status::Paused | Status::Restarting => {
            cri::ContainerState::ContainerRunning
        }
        Status::Exited | Status::Dead => cri::ContainerState::ContainerExited,
        Status::Removing => cri::ContainerState::ContainerUnknown,
    }
}

/// RFC 3339 as Unix nanoseconds; 0 when unset.
fn nanos(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn metadata(meta: &CriMeta) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: meta.name.clone(),
        attempt: meta.attempt,
    }
}

fn image_spec(meta: &CriMeta) -> cri::ImageSpec {
    cri::ImageSpec {
        image: meta.image.clone(),
        ..Default::default()
    }
}

fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) async fn status(
    cri: &crate::Cri,
    req: cri::ContainerStatusRequest,
) -> Result<cri::ContainerStatusResponse, CriError> {
    match cri.inner.engine.as_deref() {
        Some(engine) => container_status(engine, &req.container_id, req.verbose),
        None => Err(CriError::NotFound {
            what: "container",
            id: req.container_id,
        }),
    }
}

pub(crate) async fn list(
    cri: &crate::Cri,
    req: cri::ListContainersRequest,
) -> Result<cri::ListContainersResponse, CriError> {
    // Without an engine there are no containers: an empty list is the truth.
    let containers = match cri.inner.engine.as_deref() {
        Some(engine) => list_containers(engine, req.filter)?,
        None => Vec::new(),
    };
    Ok(cri::ListContainersResponse { containers })
}

pub(crate) fn container_status(
    engine: &Engine,
    id: &str,
    verbose: bool,
) -> Result<cri::ContainerStatusResponse, CriError> {
    let record = cri_record(engine, id)?;
    let Some(meta) = record.cri.as_ref() else {
        return Err(CriError::NotFound {
            what: "container",
            id: id.to_string(),
        });
    };
    let config: cri::ContainerConfig =
        serde_json::from_value(record.request.clone()).unwrap_or_default();
    let s = &record.state;
    let exited = s.status == Status::Exited;
    let (reason, message) = if exited {
        // A start that failed leaves its error in the record.
        if !s.error.is_empty() {
            ("StartError".to_string(), s.error.clone())
        } else if s.oom_killed {
            ("OOMKilled".to_string(), String::new())
        } else if s.exit_code == 0 {
            ("Completed".to_string(), String::new())
        } else {
            ("Error".to_string(), String::new())
        }
    } else {
        (String::new(), String::new())
    };
    let status = cri::ContainerStatus {
        id: record.id.clone(),
        metadata: Some(metadata(meta)),
        state: state(s.status) as i32,
        created_at: meta.created_at,
        started_at: nanos(&s.started_at),
        finished_at: if exited { nanos(&s.finished_at) } else { 0 },
        exit_code: if exited { s.exit_code as i32 } else { 0 },
        image: Some(image_spec(meta)),
        image_ref: record.image_id.clone(),
        image_id: record.image_id.clone(),
        reason,
        message,
        labels: map(&meta.labels),
        annotations: map(&meta.annotations),
        mounts: config.mounts.clone(),
        log_path: record
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|linux| cri::ContainerResources {
                linux: Some(linux),
                ..Default::default()
            }),
        ..Default::default()
    };
    let mut info = HashMap::new();
    if verbose {
        let v = serde_json::json!({
            "sandboxID": meta.sandbox_id,
            "pid": s.pid,
            "snapshotKey": record.snapshot,
            "bundle": engine.dir(&record.id),
            "config": record.request,
        });
        info.insert("info".to_string(), v.to_string());
    }
    Ok(cri::ContainerStatusResponse {
        status: Some(status),
        info,
    })
}

fn list_containers(
    engine: &Engine,
    filter: Option<cri::ContainerFilter>,
) -> Result<Vec<cri::Container>, CriError> {
    let filter = filter.unwrap_or_default();
    let mut out = Vec::new();
    for record in cri_records(engine)? {
        let Some(meta) = record.cri.as_ref() else {
            continue;
        };
        let state = state(record.state.status);
        // Ids and sandbox ids match by prefix, as crictl passes truncated ids.
        if !filter.id.is_empty() && !record.id.starts_with(&filter.id) {
            continue;
        }
        if !filter.pod_sandbox_id.is_empty() && !meta.sandbox_id.starts_with(&filter.pod_sandbox_id)
        {
            continue;
        }
        if let Some(want) = &filter.state {
            if want.state != state as i32 {
                continue;
            }
        }
        if !filter
            .label_selector
            .iter()
            .all(|(k, v)| meta.labels.get(k) == Some(v))
        {
            continue;
        }
        out.push(cri::Container {
            id: record.id.clone(),
            pod_sandbox_id: meta.sandbox_id.clone(),
            metadata: Some(metadata(meta)),
            image: Some(image_spec(meta)),
            image_ref: record.image_id.clone(),
            image_id: record.image_id.clone(),
            state: state as i32,
            created_at: meta.created_at,
            labels: map(&meta.labels),
            annotations: map(&meta.annotations),
        });
    }
    out.sort_by_key(|c| c.created_at);
    Ok(out)
}
