//! Whether the kernel's OOM killer struck inside a container's memory cgroup, read
//! after its exit and before the shim deletes the task (which removes the cgroup).

use std::path::{Path, PathBuf};

/// True when the container's memory cgroup counted an OOM kill (through the one
/// cgroup reader, berth-runtime's `sample_at`).
pub(crate) fn oom_killed(bundle: &Path) -> bool {
    cgroup_path(bundle)
        .and_then(|cgroup| berth_runtime::cgroups::sample_at(&cgroup))
        .and_then(|sample| sample.oom_kills)
        .is_some_and(|kills| kills > 0)
}

/// The container's `linux.cgroupsPath` from its bundle's `config.json`.
pub fn cgroup_path(bundle: &Path) -> Option<String> {
    let bytes = std::fs::read(PathBuf::from(bundle).join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    spec["linux"]["cgroupsPath"].as_str().map(str::to_string)
}
