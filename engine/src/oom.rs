//! Whether the kernel's OOM killer struck inside a container's memory cgroup, read
//! after its exit and before the shim deletes the task (which removes the cgroup).

use std::path::{Path, PathBuf};

/// True when the container's memory cgroup counted an OOM kill.
pub(crate) fn oom_killed(bundle: &Path) -> bool {
    let Some(cgroup) = cgroups_path(bundle) else {
        return false;
    };
    let rel = cgroup.trim_start_matches('/');
    [
        // cgroup v1: `oom_kill N` in memory.oom_control (Linux ≥ 4.13).
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
        // cgroup v2: `oom_kill N` in memory.events.
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .is_some_and(|text| oom_kills(&text) > 0)
}

/// The container's absolute `linux.cgroupsPath` from its bundle's `config.json`.
fn cgroups_path(bundle: &Path) -> Option<String> {
    let bytes = std::fs::read(PathBuf::from(bundle).join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    spec["linux"]["cgroupsPath"]
        .as_str()
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
}

fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oom_kills_in_v1_and_v2_files() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(oom_kills("oom_kill_disable 0\n"), 0);
    }
}
