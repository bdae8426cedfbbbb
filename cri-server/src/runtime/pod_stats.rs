//! `PodSandboxStats` / `ListPodSandboxStats`: the pod's cgroup usage (its cgroup
//! parent, as kubelet makes one per pod; else the sum of its containers) and each of
//! its containers' stats.

use k8s_cri::v1 as cri;

use crate::engine::missing;
use crate::sandbox::store::SandboxRecord;
use crate::{Cri, CriError};

pub(super) async fn stats(
    cri: &Cri,
    req: cri::PodSandboxStatsRequest,
) -> Result<cri::PodSandboxStatsResponse, CriError> {
    let record = cri.sandbox(&req.pod_sandbox_id)?;
    Ok(cri::PodSandboxStatsResponse {
        stats: Some(stats_of(cri, &record, "PodSandboxStats").await?),
    })
}

pub(super) async fn list(
    cri: &Cri,
    req: cri::ListPodSandboxStatsRequest,
) -> Result<cri::ListPodSandboxStatsResponse, CriError> {
    let filter = req.filter.unwrap_or_default();
    let mut stats = Vec::new();
    for record in cri.inner.sandboxes.list()? {
        let labels = &record.config.labels;
        if record.id.starts_with(&filter.id)
            && filter
                .label_selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        {
            stats.push(stats_of(cri, &record, "ListPodSandboxStats").await?);
        }
    }
    Ok(cri::ListPodSandboxStatsResponse { stats })
}

async fn stats_of(
    cri: &Cri,
    record: &SandboxRecord,
    rpc: &str,
) -> Result<cri::PodSandboxStats, CriError> {
    let engine = cri.inner.engine.clone().ok_or_else(|| missing(rpc))?;
    let mut containers = Vec::new();
    for id in engine.sandbox_containers(&record.id).await? {
        match engine.stats(&id).await {
            Ok(s) => containers.push(s),
            // Removed since it was listed.
            Err(CriError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let parent = record
        .config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or_default();
    let pod = if parent.is_empty() {
        None
    } else {
        engine.cgroup_stats(parent).await
    };
    let (cpu, memory) = match pod {
        Some((cpu, memory)) => (cpu, memory),
        None => sum(&containers),
    };
    let config = &record.config;
    Ok(cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: record.id.clone(),
            metadata: config.metadata.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(cpu),
            memory: Some(memory),
            containers,
            ..Default::default()
        }),
        windows: None,
    })
}

/// A pod without a cgroup of its own uses what its containers use.
fn sum(containers: &[cri::ContainerStats]) -> (cri::CpuUsage, cri::MemoryUsage) {
    let at = containers
        .iter()
        .filter_map(|c| c.cpu.as_ref().map(|u| u.timestamp))
        .max()
        .unwrap_or(0);
    let total = |f: &dyn Fn(&cri::ContainerStats) -> Option<u64>| {
        let values: Vec<u64> = containers.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| cri::UInt64Value {
            value: values.iter().sum(),
        })
    };
    let cpu = cri::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: total(&|c| {
            Some(c.cpu.as_ref()?.usage_core_nano_seconds.as_ref()?.value)
        }),
        usage_nano_cores: None,
    };
    let mem = |f: fn(&cri::MemoryUsage) -> Option<&cri::UInt64Value>| {
        total(&move |c: &cri::ContainerStats| Some(f(c.memory.as_ref()?)?.value))
    };
    let memory = cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: mem(|m| m.working_set_bytes.as_ref()),
        usage_bytes: mem(|m| m.usage_bytes.as_ref()),
        rss_bytes: mem(|m| m.rss_bytes.as_ref()),
        page_faults: mem(|m| m.page_faults.as_ref()),
        major_page_faults: mem(|m| m.major_page_faults.as_ref()),
        available_bytes: None,
    };
    (cpu, memory)
}
