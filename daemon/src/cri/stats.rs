//! `ContainerStats` / `ListContainerStats`: CPU and memory from the container's
//! cgroup (v1 or v2), the writable layer's usage from its snapshot.

use std::path::{Path, PathBuf};

use berth_cri_server::CriError;
use k8s_cri::v1 as cri;

use super::cri_record;
use super::status::cri_records;
use crate::engine::ContainerRecord;
use crate::Daemon;

/// Usage read from one container's cgroup; a missing file reads as none.
#[derive(Debug, Default, PartialEq, Eq)]
struct CgroupUsage {
    cpu_ns: Option<u64>,
    memory_usage: Option<u64>,
    working_set: Option<u64>,
    rss: Option<u64>,
    page_faults: Option<u64>,
    major_page_faults: Option<u64>,
}

fn read_num(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// cgroup v1: cpuacct and memory controllers under `/sys/fs/cgroup/<controller>/<rel>`.
fn v1_usage(root: &Path, rel: &str) -> Option<CgroupUsage> {
    let memory = root.join("memory").join(rel);
    let cpu = root.join("cpuacct").join(rel);
    if !memory.is_dir() && !cpu.is_dir() {
        return None;
    }
    let stat = std::fs::read_to_string(memory.join("memory.stat")).unwrap_or_default();
    let usage = read_num(&memory.join("memory.usage_in_bytes"));
    let inactive = keyed(&stat, "total_inactive_file").unwrap_or(0);
    Some(CgroupUsage {
        cpu_ns: read_num(&cpu.join("cpuacct.usage")),
        memory_usage: usage,
        working_set: usage.map(|u| u.saturating_sub(inactive)),
        rss: keyed(&stat, "total_rss"),
        page_faults: keyed(&stat, "total_pgfault"),
        major_page_faults: keyed(&stat, "total_pgmajfault"),
    })
}

/// cgroup v2: one directory.
fn v2_usage(root: &Path, rel: &str) -> Option<CgroupUsage> {
    let dir = root.join(rel);
    if !dir.join("cgroup.controllers").exists() {
        return None;
    }
    let cpu = std::fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let usage = read_num(&dir.join("memory.current"));
    let inactive = keyed(&stat, "inactive_file").unwrap_or(0);
    Some(CgroupUsage {
        cpu_ns: keyed(&cpu, "usage_usec").map(|us| us * 1000),
        memory_usage: usage,
        working_set: usage.map(|u| u.saturating_sub(inactive)),
        rss: keyed(&stat, "anon"),
        page_faults: keyed(&stat, "pgfault"),
        major_page_faults: keyed(&stat, "pgmajfault"),
    })
}

fn cgroup_usage(cgroups_path: &str) -> CgroupUsage {
    let root = Path::new("/sys/fs/cgroup");
    let rel = cgroups_path.trim_start_matches('/');
    v2_usage(root, rel)
        .or_else(|| v1_usage(root, rel))
        .unwrap_or_default()
}

/// The container's absolute `linux.cgroupsPath` from its bundle.
fn cgroups_path(bundle: &Path) -> Option<String> {
    let bytes = std::fs::read(bundle.join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    spec["linux"]["cgroupsPath"].as_str().map(str::to_string)
}

fn value(v: Option<u64>) -> Option<cri::UInt64Value> {
    v.map(|value| cri::UInt64Value { value })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn cpu_of(usage: &CgroupUsage, at: i64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: value(usage.cpu_ns),
        // Needs two samples; kubelet derives it from usage_core_nano_seconds.
        usage_nano_cores: None,
    }
}

fn memory_of(usage: &CgroupUsage, at: i64) -> cri::MemoryUsage {
    cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: value(usage.working_set),
        usage_bytes: value(usage.memory_usage),
        rss_bytes: value(usage.rss),
        page_faults: value(usage.page_faults),
        major_page_faults: value(usage.major_page_faults),
        available_bytes: None,
    }
}

/// CPU and memory of the cgroup at `cgroup` (absolute in the hierarchy); `None` when
/// no hierarchy has it.
pub(super) fn cgroup_stats(cgroup: &str) -> Option<(cri::CpuUsage, cri::MemoryUsage)> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = cgroup.trim_matches('/');
    if rel.is_empty() {
        return None;
    }
    let usage = v2_usage(root, rel).or_else(|| v1_usage(root, rel))?;
    let at = now_nanos();
    Some((cpu_of(&usage, at), memory_of(&usage, at)))
}

fn stats_of(daemon: &Daemon, record: &ContainerRecord) -> cri::ContainerStats {
    let meta = record.cri.clone().unwrap_or_default();
    let at = now_nanos();
    // An exited container has no cgroup left: no CPU or memory figures.
    let usage = if record.state.status.has_task() {
        cgroups_path(&daemon.engine.dir(&record.id))
            .map(|p| cgroup_usage(&p))
            .unwrap_or_default()
    } else {
        CgroupUsage::default()
    };
    let layer = daemon.images.snapshots.usage(&record.snapshot).ok();
    let snapshots: PathBuf = daemon.config.root.join("snapshots");
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

pub(super) fn stats(daemon: &Daemon, id: &str) -> Result<cri::ContainerStats, CriError> {
    let record = cri_record(daemon, id)?;
    Ok(stats_of(daemon, &record))
}

pub(super) fn list(
    daemon: &Daemon,
    filter: Option<cri::ContainerStatsFilter>,
) -> Result<Vec<cri::ContainerStats>, CriError> {
    let filter = filter.unwrap_or_default();
    Ok(cri_records(daemon)?
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
        .map(|r| stats_of(daemon, &r))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_files_give_the_same_figures() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let v1 = dir.path().join("v1");
        std::fs::create_dir_all(v1.join("memory/pod/c"))?;
        std::fs::create_dir_all(v1.join("cpuacct/pod/c"))?;
        std::fs::write(v1.join("memory/pod/c/memory.usage_in_bytes"), "1000\n")?;
        std::fs::write(
            v1.join("memory/pod/c/memory.stat"),
            "cache 5\ntotal_inactive_file 300\ntotal_rss 600\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
        )?;
        std::fs::write(v1.join("cpuacct/pod/c/cpuacct.usage"), "123456\n")?;
        let v2 = dir.path().join("v2");
        std::fs::create_dir_all(v2.join("pod/c"))?;
        std::fs::write(v2.join("pod/c/cgroup.controllers"), "cpu memory\n")?;
        std::fs::write(v2.join("pod/c/memory.current"), "1000\n")?;
        std::fs::write(
            v2.join("pod/c/memory.stat"),
            "anon 600\ninactive_file 300\npgfault 7\npgmajfault 1\n",
        )?;
        std::fs::write(v2.join("pod/c/cpu.stat"), "usage_usec 123\nuser_usec 100\n")?;
        let want = |cpu| CgroupUsage {
            cpu_ns: Some(cpu),
            memory_usage: Some(1000),
            working_set: Some(700),
            rss: Some(600),
            page_faults: Some(7),
            major_page_faults: Some(1),
        };
        assert_eq!(v1_usage(&v1, "pod/c"), Some(want(123456)));
        assert_eq!(v2_usage(&v2, "pod/c"), Some(want(123000)));
        assert_eq!(v2_usage(&v1, "pod/c"), None);
        Ok(())
    }
}
