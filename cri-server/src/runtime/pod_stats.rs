//! `PodSandboxStats` / `ListPodSandboxStats`: the pod's cgroup usage (its cgroup
//! parent, as kubelet makes one per pod; else the sum of its containers), its network
//! counters from inside its network namespace, its process count, and each of its
//! containers' stats.

use std::sync::Arc;

use berth_engine::Engine;
use k8s_cri::v1 as cri;

use super::pod_net::{self, InterfaceCounters, DEFAULT_INTERFACE};
use crate::containers::{self, missing};
use crate::sandbox::store::{SandboxRecord, SandboxState};
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
    let ids = containers::sandbox_containers(&engine, &record.id)?;
    let mut containers = Vec::new();
    for id in ids.iter() {
        match containers::stats::container_stats_blocking(Arc::clone(&engine), id.clone()).await {
            Ok(s) => containers.push(s),
            // Removed since it was listed.
            Err(CriError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let parent = cgroup_parent(record);
    let pod = if parent.is_empty() {
        None
    } else {
        containers::stats::cgroup_stats(parent)
    };
    let (cpu, memory) = match pod {
        Some((cpu, memory)) => (cpu, memory),
        None => sum(&containers),
    };
    let at = now_nanos();
    let network = match &record.netns {
        // A stopped pod's namespace is gone with its network.
        Some(netns) if record.state == SandboxState::Ready => match pod_net::read(netns).await {
            Ok(counters) => Some(network_usage(&counters, at)),
            Err(e) => {
                tracing::debug!(pod = %record.id, error = %e, "no network counters");
                None
            }
        },
        // Host network: the node's interfaces are not the pod's.
        _ => None,
    };
    let process = Some(cri::ProcessUsage {
        timestamp: at,
        process_count: Some(cri::UInt64Value {
            value: process_count(cri, &engine, record, &ids).await,
        }),
    });
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
            network,
            process,
            containers,
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

fn cgroup_parent(record: &SandboxRecord) -> &str {
    record
        .config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or_default()
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `eth0` as the default interface, every other one (loopback left out) after it.
fn network_usage(counters: &[InterfaceCounters], at: i64) -> cri::NetworkUsage {
    let usage = |c: &InterfaceCounters| cri::NetworkInterfaceUsage {
        name: c.name.clone(),
        rx_bytes: Some(cri::UInt64Value { value: c.rx_bytes }),
        rx_errors: Some(cri::UInt64Value { value: c.rx_errors }),
        tx_bytes: Some(cri::UInt64Value { value: c.tx_bytes }),
        tx_errors: Some(cri::UInt64Value { value: c.tx_errors }),
    };
    cri::NetworkUsage {
        timestamp: at,
        default_interface: counters
            .iter()
            .find(|c| c.name == DEFAULT_INTERFACE)
            .map(usage),
        interfaces: counters
            .iter()
            .filter(|c| c.name != DEFAULT_INTERFACE)
            .map(usage)
            .collect(),
    }
}

/// The pod's processes: those in its cgroup parent when it has one (else in its
/// containers' cgroups: none for a pod with no running container), plus berth's pod
/// init when the pod shares a PID namespace (the init runs outside the pod's cgroups).
async fn process_count(
    cri: &Cri,
    engine: &Arc<Engine>,
    record: &SandboxRecord,
    containers: &[String],
) -> u64 {
    let parent = cgroup_parent(record);
    let mut count = None;
    if !parent.is_empty() {
        count = containers::stats::cgroup_sample(parent)
            .await
            .and_then(|s| s.processes);
    }
    let count = match count {
        Some(n) => n,
        None => {
            let mut n = 0;
            for id in containers {
                let Some(cgroup) = containers::stats::container_cgroup(engine, id) else {
                    continue;
                };
                if let Some(sample) = containers::stats::cgroup_sample(&cgroup).await {
                    n += sample.processes.unwrap_or(0);
                }
            }
            n
        }
    };
    count + u64::from(pod_init_alive(cri, record))
}

/// Whether the pod's init (see [`berth_engine::pod::init`]) is alive.
fn pod_init_alive(cri: &Cri, record: &SandboxRecord) -> bool {
    cri.inner.pods.init_pid(&record.id, &record.dir).is_some()
}
