//! `ContainerStats` / `ListContainerStats`: CPU and memory from the container's
//! cgroup (v1 or v2, read by [`berth_runtime::cgroups::sample_at`]), the writable
//! layer's usage from its snapshot.

use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::{ContainerRecord, Engine};
use berth_runtime::cgroups::{sample_at, CgroupSample};
use k8s_cri::v1 as cri;

use super::cri_record;
use super::status::cri_records;
use crate::CriError;

fn value(v: Option<u64>) -> Option<cri::UInt64Value> {
    v.map(|value| cri::UInt64Value { value })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn cpu_of(usage: &CgroupSample, at: i64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: value(usage.cpu_usage_ns),
        // Needs two samples; kubelet derives it from usage_core_nano_seconds.
        usage_nano_cores: None,
    }
}

fn memory_of(usage: &CgroupSample, at: i64) -> cri::MemoryUsage {
    cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: value(usage.memory_working_set),
        usage_bytes: value(usage.memory_usage),
        rss_bytes: value(usage.memory_rss),
        page_faults: value(usage.page_faults),
        major_page_faults: value(usage.major_page_faults),
        available_bytes: None,
    }
}

/// CPU and memory of the cgroup at `cgroup` (absolute in the hierarchy); `None` when
/// no hierarchy has it.
pub(crate) fn cgroup_stats(cgroup: &str) -> Option<(cri::CpuUsage, cri::MemoryUsage)> {
    let usage = sample_at(cgroup)?;
    let at = now_nanos();
    Some((cpu_of(&usage, at), memory_of(&usage, at)))
}

fn stats_of(engine: &Engine, record: &ContainerRecord) -> cri::ContainerStats {
    let meta = record.cri.clone().unwrap_or_default();
    let at = now_nanos();
    // An exited container has no cgroup left: no CPU or memory figures.
    let usage = if record.state.status.has_task() {
        berth_engine::cgroup_path(&engine.dir(&record.id))
            .and_then(|p| sample_at(&p))
            .unwrap_or_default()
    } else {
        CgroupSample::default()
    };
    let layer = engine.images.snapshots.usage(&record.snapshot).ok();
    let snapshots: PathBuf = engine.root().join("snapshots");
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: record.id.clone(),
            metadata: Some(cri::ContainerMetadata {
                name: meta.name.clone(),
                attempt: meta.attempt,
            }),
            labels: meta.labels.clone().into_iter().collect(),
            annotations: meta.annotations.clone().into_iter().collect(),
        }),
        cpu: Some(cpu_of(&usage, at)),
        memory: Some(memory_of(&usage, at)),
        writable_layer: Some(cri::FilesystemUsage {
            timestamp: at,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: snapshots.display().to_string(),
            }),
            used_bytes: value(layer.as_ref().map(|u| u.size)),
            inodes_used: value(layer.as_ref().map(|u| u.inodes)),
        }),
        swap: None,
    }
}

/// The cgroup of CRI container `id` while it has a task.
pub(crate) fn container_cgroup(engine: &Engine, id: &str) -> Option<String> {
    let record = cri_record(engine, id).ok()?;
    if !record.state.status.has_task() {
        return None;
    }
    berth_engine::cgroup_path(&engine.dir(&record.id))
}

pub(crate) async fn stats(
    cri: &crate::Cri,
    req: cri::ContainerStatsRequest,
) -> Result<cri::ContainerStatsResponse, CriError> {
    match cri.inner.engine.clone() {
        Some(engine) => Ok(cri::ContainerStatsResponse {
            stats: Some(container_stats_blocking(engine, req.container_id).await?),
        }),
        None => Err(CriError::NotFound {
            what: "container",
            id: req.container_id,
        }),
    }
}

pub(crate) async fn list_stats(
    cri: &crate::Cri,
    req: cri::ListContainerStatsRequest,
) -> Result<cri::ListContainerStatsResponse, CriError> {
    // Without an engine there are no containers, so no stats.
    let stats = match cri.inner.engine.clone() {
        Some(engine) => tokio::task::spawn_blocking(move || list_stats_of(&engine, req.filter))
            .await
            .map_err(|e| CriError::Internal(format!("stats task: {e}")))??,
        None => Vec::new(),
    };
    Ok(cri::ListContainerStatsResponse { stats })
}

/// CPU, memory and writable-layer usage of one container, read off the runtime.
pub(crate) async fn container_stats_blocking(
    engine: Arc<Engine>,
    id: String,
) -> Result<cri::ContainerStats, CriError> {
    tokio::task::spawn_blocking(move || container_stats(&engine, &id))
        .await
        .map_err(|e| CriError::Internal(format!("stats task: {e}")))?
}

/// Everything berth reads from a cgroup (absolute in the hierarchy) for metrics;
/// `None` when no hierarchy has it.
pub(crate) async fn cgroup_sample(cgroup: &str) -> Option<CgroupSample> {
    let cgroup = cgroup.to_string();
    let read = tokio::task::spawn_blocking(move || sample_at(&cgroup));
    read.await.ok().flatten()
}

fn container_stats(engine: &Engine, id: &str) -> Result<cri::ContainerStats, CriError> {
    let record = cri_record(engine, id)?;
    Ok(stats_of(engine, &record))
}

fn list_stats_of(
    engine: &Engine,
    filter: Option<cri::ContainerStatsFilter>,
) -> Result<Vec<cri::ContainerStats>, CriError> {
    let filter = filter.unwrap_or_default();
    Ok(cri_records(engine)?
        .into_iter()
        .filter(|r| {
            let Some(meta) = r.cri.as_ref() else {
                return false;
            };
            r.id.starts_with(&filter.id)
                && meta.sandbox_id.starts_with(&filter.pod_sandbox_id)
                && filter
                    .label_selector
                    .iter()
                    .all(|(k, v)| meta.labels.get(k) == Some(v))
        })
        .map(|r| stats_of(engine, &r))
        .collect())
}
