//! `ListMetricDescriptors` / `ListPodSandboxMetrics`: cAdvisor-named metrics for
//! kubelet's CRI metrics mode (`PodAndContainerStatsFromCRI`), read live from each
//! container's cgroup (v1 or v2) and each pod's network namespace.
//!
//! Every metric carries the label keys `id`, `name`, `image` (the container's id, CRI
//! name and image; `<pod id>`, `POD` and an empty image for pod-level metrics), plus
//! `interface` for network metrics and `failure_type`, `scope` for memory failures.
//! kubelet appends `namespace`, `pod` and `container` itself, so they are not ours to
//! send. Values are whole numbers (the CRI `Metric` holds a `uint64`): `*_seconds_total`
//! counters are truncated to whole seconds, as containerd and CRI-O do. Timestamps are
//! 0: every figure is gathered at the call, not cached.

use std::sync::Arc;

use berth_engine::Engine;
use berth_runtime::CgroupSample;
use cri::MetricType::{Counter, Gauge};
use k8s_cri::v1 as cri;

use super::pod_net::{self, InterfaceCounters};
use crate::containers::{self, missing};
use crate::sandbox::store::{SandboxRecord, SandboxState};
use crate::{Cri, CriError};

const BASE_LABELS: [&str; 3] = ["id", "name", "image"];
const NS_PER_SECOND: u64 = 1_000_000_000;

/// A metric taken from a cgroup sample.
struct CgroupMetric {
    name: &'static str,
    help: &'static str,
    kind: cri::MetricType,
    value: fn(&CgroupSample) -> Option<u64>,
}

fn seconds(ns: Option<u64>) -> Option<u64> {
    ns.map(|ns| ns / NS_PER_SECOND)
}

const CGROUP_METRICS: &[CgroupMetric] = &[
    CgroupMetric {
        name: "container_cpu_usage_seconds_total",
        help: "Cumulative CPU time consumed in seconds.",
        kind: Counter,
        value: |s| seconds(s.cpu_usage_ns),
    },
    CgroupMetric {
        name: "container_cpu_user_seconds_total",
        help: "Cumulative user CPU time consumed in seconds.",
        kind: Counter,
        value: |s| seconds(s.cpu_user_ns),
    },
    CgroupMetric {
        name: "container_cpu_system_seconds_total",
        help: "Cumulative system CPU time consumed in seconds.",
        kind: Counter,
        value: |s| seconds(s.cpu_system_ns),
    },
    CgroupMetric {
        name: "container_cpu_cfs_periods_total",
        help: "Number of elapsed CFS enforcement periods.",
        kind: Counter,
        value: |s| s.cfs_periods,
    },
    CgroupMetric {
        name: "container_cpu_cfs_throttled_periods_total",
        help: "Number of CFS periods in which the container was throttled.",
        kind: Counter,
        value: |s| s.cfs_throttled_periods,
    },
    CgroupMetric {
        name: "container_cpu_cfs_throttled_seconds_total",
        help: "Total time the container was throttled, in seconds.",
        kind: Counter,
        value: |s| seconds(s.cfs_throttled_ns),
    },
    CgroupMetric {
        name: "container_memory_usage_bytes",
        help: "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        kind: Gauge,
        value: |s| s.memory_usage,
    },
    CgroupMetric {
        name: "container_memory_max_usage_bytes",
        help: "Maximum memory usage recorded in bytes.",
        kind: Gauge,
        value: |s| s.memory_max_usage,
    },
    CgroupMetric {
        name: "container_memory_working_set_bytes",
        help: "Current working set in bytes (usage less inactive file pages).",
        kind: Gauge,
        value: |s| s.memory_working_set,
    },
    CgroupMetric {
        name: "container_memory_rss",
        help: "Size of anonymous and swap cache memory in bytes.",
        kind: Gauge,
        value: |s| s.memory_rss,
    },
    CgroupMetric {
        name: "container_memory_cache",
        help: "Number of bytes of page cache memory.",
        kind: Gauge,
        value: |s| s.memory_cache,
    },
    CgroupMetric {
        name: "container_memory_mapped_file",
        help: "Size of memory mapped files in bytes.",
        kind: Gauge,
        value: |s| s.memory_mapped_file,
    },
    CgroupMetric {
        name: "container_memory_swap",
        help: "Container swap usage in bytes.",
        kind: Gauge,
        value: |s| s.memory_swap,
    },
    CgroupMetric {
        name: "container_memory_failcnt",
        help: "Number of times memory usage hit the limit (cgroup v1).",
        kind: Counter,
        value: |s| s.memory_failcnt,
    },
    CgroupMetric {
        name: "container_memory_total_active_file_bytes",
        help: "Current total active file memory in bytes.",
        kind: Gauge,
        value: |s| s.memory_active_file,
    },
    CgroupMetric {
        name: "container_memory_total_inactive_file_bytes",
        help: "Current total inactive file memory in bytes.",
        kind: Gauge,
        value: |s| s.memory_inactive_file,
    },
    CgroupMetric {
        name: "container_oom_events_total",
        help: "Count of out of memory kills observed for the container.",
        kind: Counter,
        value: |s| s.oom_kills,
    },
    CgroupMetric {
        name: "container_processes",
        help: "Number of processes running inside the container.",
        kind: Gauge,
        value: |s| s.processes,
    },
    CgroupMetric {
        name: "container_threads",
        help: "Number of threads running inside the container.",
        kind: Gauge,
        value: |s| s.threads,
    },
    CgroupMetric {
        name: "container_threads_max",
        help: "Maximum number of threads allowed inside the container (absent when unlimited).",
        kind: Gauge,
        value: |s| s.threads_max,
    },
];

const MEMORY_FAILURES: &str = "container_memory_failures_total";

/// Network counters per interface.
struct NetMetric {
    name: &'static str,
    help: &'static str,
    value: fn(&InterfaceCounters) -> u64,
}

const NET_METRICS: &[NetMetric] = &[
    NetMetric {
        name: "container_network_receive_bytes_total",
        help: "Cumulative count of bytes received.",
        value: |c| c.rx_bytes,
    },
    NetMetric {
        name: "container_network_receive_packets_total",
        help: "Cumulative count of packets received.",
        value: |c| c.rx_packets,
    },
    NetMetric {
        name: "container_network_receive_packets_dropped_total",
        help: "Cumulative count of packets dropped while receiving.",
        value: |c| c.rx_dropped,
    },
    NetMetric {
        name: "container_network_receive_errors_total",
        help: "Cumulative count of errors encountered while receiving.",
        value: |c| c.rx_errors,
    },
    NetMetric {
        name: "container_network_transmit_bytes_total",
        help: "Cumulative count of bytes transmitted.",
        value: |c| c.tx_bytes,
    },
    NetMetric {
        name: "container_network_transmit_packets_total",
        help: "Cumulative count of packets transmitted.",
        value: |c| c.tx_packets,
    },
    NetMetric {
        name: "container_network_transmit_packets_dropped_total",
        help: "Cumulative count of packets dropped while transmitting.",
        value: |c| c.tx_dropped,
    },
    NetMetric {
        name: "container_network_transmit_errors_total",
        help: "Cumulative count of errors encountered while transmitting.",
        value: |c| c.tx_errors,
    },
];

fn labels(extra: &[&str]) -> Vec<String> {
    BASE_LABELS
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

pub(super) fn descriptors() -> cri::ListMetricDescriptorsResponse {
    let mut descriptors: Vec<cri::MetricDescriptor> = CGROUP_METRICS
        .iter()
        .map(|m| cri::MetricDescriptor {
            name: m.name.into(),
            help: m.help.into(),
            label_keys: labels(&[]),
        })
        .collect();
    descriptors.push(cri::MetricDescriptor {
        name: MEMORY_FAILURES.into(),
        help: "Cumulative count of memory allocation failures (page faults).".into(),
        label_keys: labels(&["failure_type", "scope"]),
    });
    descriptors.extend(NET_METRICS.iter().map(|m| cri::MetricDescriptor {
        name: m.name.into(),
        help: m.help.into(),
        label_keys: labels(&["interface"]),
    }));
    cri::ListMetricDescriptorsResponse { descriptors }
}

fn metric(name: &str, kind: cri::MetricType, label_values: Vec<String>, v: u64) -> cri::Metric {
    cri::Metric {
        name: name.into(),
        timestamp: 0,
        metric_type: kind as i32,
        label_values,
        value: Some(cri::UInt64Value { value: v }),
    }
}

/// The metrics of one cgroup sample under the base label values `base`.
fn cgroup_metrics(sample: &CgroupSample, base: &[String]) -> Vec<cri::Metric> {
    let mut out: Vec<cri::Metric> = CGROUP_METRICS
        .iter()
        .filter_map(|m| Some(metric(m.name, m.kind, base.to_vec(), (m.value)(sample)?)))
        .collect();
    // v1 `total_*` and v2 counts cover the cgroup's descendants: hierarchy scope.
    for (kind, v) in [
        ("pgfault", sample.page_faults),
        ("pgmajfault", sample.major_page_faults),
    ] {
        if let Some(v) = v {
            let mut values = base.to_vec();
            values.extend([kind.to_string(), "hierarchy".to_string()]);
            out.push(metric(MEMORY_FAILURES, Counter, values, v));
        }
    }
    out
}

fn network_metrics(counters: &[InterfaceCounters], base: &[String]) -> Vec<cri::Metric> {
    let mut out = Vec::new();
    for c in counters {
        for m in NET_METRICS {
            let mut values = base.to_vec();
            values.push(c.name.clone());
            out.push(metric(m.name, Counter, values, (m.value)(c)));
        }
    }
    out
}

pub(super) async fn list(cri: &Cri) -> Result<cri::ListPodSandboxMetricsResponse, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("ListPodSandboxMetrics"))?;
    let mut pod_metrics = Vec::new();
    for record in cri.inner.sandboxes.list()? {
        // A stopped pod has no network namespace and no running container left.
        if record.state != SandboxState::Ready {
            continue;
        }
        pod_metrics.push(pod(&engine, &record).await?);
    }
    Ok(cri::ListPodSandboxMetricsResponse { pod_metrics })
}

async fn pod(
    engine: &Arc<Engine>,
    record: &SandboxRecord,
) -> Result<cri::PodSandboxMetrics, CriError> {
    let mut metrics = Vec::new();
    if let Some(netns) = &record.netns {
        match pod_net::read(netns).await {
            Ok(counters) => {
                let base = vec![record.id.clone(), "POD".to_string(), String::new()];
                metrics = network_metrics(&counters, &base);
            }
            // Stopped under our feet: no figures rather than a failed scrape.
            Err(e) => tracing::debug!(pod = %record.id, error = %e, "no network counters"),
        }
    }
    let mut container_metrics = Vec::new();
    for id in containers::sandbox_containers(engine, &record.id)? {
        // Only a container with a live task has a cgroup to read.
        let Some(cgroup) = containers::stats::container_cgroup(engine, &id) else {
            continue;
        };
        let Some(sample) = containers::stats::cgroup_sample(&cgroup).await else {
            continue;
        };
        let status = match containers::status::container_status(engine, &id, false) {
            Ok(resp) => resp.status.unwrap_or_default(),
            Err(CriError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let name = status.metadata.map(|m| m.name).unwrap_or_default();
        let image = status
            .image
            .map(|i| i.image)
            .filter(|i| !i.is_empty())
            .unwrap_or(status.image_ref);
        let base = vec![id.clone(), name, image];
        container_metrics.push(cri::ContainerMetrics {
            container_id: id,
            metrics: cgroup_metrics(&sample, &base),
        });
    }
    Ok(cri::PodSandboxMetrics {
        pod_sandbox_id: record.id.clone(),
        metrics,
        container_metrics,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Every metric berth sends has a descriptor, with as many label values as keys.
    #[test]
    fn metrics_match_their_descriptors() {
        let keys: HashMap<String, usize> = descriptors()
            .descriptors
            .into_iter()
            .map(|d| (d.name, d.label_keys.len()))
            .collect();
        let sample = CgroupSample {
            cpu_usage_ns: Some(2_500_000_000),
            page_faults: Some(3),
            major_page_faults: Some(1),
            memory_usage: Some(4096),
            ..Default::default()
        };
        let base = vec!["c1".to_string(), "app".to_string(), "img".to_string()];
        let mut all = cgroup_metrics(&sample, &base);
        all.extend(network_metrics(
            &[InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 10,
                ..Default::default()
            }],
            &base,
        ));
        // Absent figures are left out, not sent as zero.
        assert_eq!(all.len(), 2 + 2 + NET_METRICS.len(), "{all:#?}");
        for m in &all {
            assert_eq!(keys.get(&m.name), Some(&m.label_values.len()), "{m:?}");
        }
        let cpu = all
            .iter()
            .find(|m| m.name == "container_cpu_usage_seconds_total")
            .and_then(|m| m.value.as_ref())
            .map(|v| v.value);
        assert_eq!(cpu, Some(2), "whole seconds");
        // kubelet adds these itself; a duplicate label would break its registry.
        for d in descriptors().descriptors {
            for k in ["namespace", "pod", "container"] {
                assert!(!d.label_keys.iter().any(|l| l == k), "{d:?}");
            }
        }
    }
}
