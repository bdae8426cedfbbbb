//! Changing a container's limits and restart policy after its creation (`docker
//! update`): checked first, then written to the running container's cgroup through its
//! shim (Task Update), merged into its bundle's `config.json` (a restart keeps them)
//! and its record.

use std::path::Path;
use std::sync::Arc;

use oci_spec::runtime::{
    LinuxCpu, LinuxMemory, LinuxMemoryBuilder, LinuxPids, LinuxResources, Spec,
};

use crate::restart_policy::RestartPolicy;
use crate::{blocking, find, get, put, shim_of, Engine, EngineError};

/// The CFS period `cpus` is expressed in (Docker's).
const CPU_PERIOD: u64 = 100_000;

/// What to change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Bytes, at least 6 MiB.
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, bytes; -1: unlimited.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    /// CPUs in billionths (exclusive with period/quota).
    pub nano_cpus: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// 0 or less: unlimited.
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
}

impl Update {
    /// The OCI resources this update writes (only what it changes).
    fn resources(&self, current: &LinuxResources) -> Result<LinuxResources, EngineError> {
        let invalid = |m: &str| EngineError::Invalid(m.to_string());
        if self.memory.is_some_and(|m| m > 0 && m < 6 << 20) {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        if self.memory.is_some_and(|m| m < 0) {
            return Err(invalid("memory limit cannot be negative"));
        }
        if self.nano_cpus.is_some() && (self.cpu_quota.is_some() || self.cpu_period.is_some()) {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        let old_swap = current.memory().and_then(|m| m.swap()).unwrap_or(0);
        let new_memory = self.memory.filter(|m| *m > 0);
        if let (Some(m), Some(s)) = (new_memory, self.memory_swap) {
            if s > 0 && s < m {
                return Err(invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
        }
        // Memory alone may not pass the memory-plus-swap total already set.
        if new_memory.is_some_and(|m| self.memory_swap.is_none() && old_swap > 0 && m > old_swap) {
            return Err(invalid("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"));
        }
        let mut out = LinuxResources::default();
        let mut memory = LinuxMemoryBuilder::default();
        if let Some(m) = new_memory {
            memory = memory.limit(m);
        }
        if let Some(r) = self.memory_reservation {
            memory = memory.reservation(r);
        }
        if let Some(s) = self.memory_swap {
            memory = memory.swap(s);
        }
        let memory = memory
            .build()
            .map_err(EngineError::internal("building the memory limits"))?;
        if memory != LinuxMemory::default() {
            out.set_memory(Some(memory));
        }
        let mut cpu = LinuxCpu::default();
        if let Some(n) = self.nano_cpus {
            cpu.set_period(Some(CPU_PERIOD));
            // 0: no quota (the kernel's -1).
            let quota = n * CPU_PERIOD as i64 / 1_000_000_000;
            cpu.set_quota(Some(if quota > 0 { quota } else { -1 }));
        }
        if let Some(p) = self.cpu_period {
            cpu.set_period(Some(p));
        }
        if let Some(q) = self.cpu_quota {
            cpu.set_quota(Some(if q > 0 { q } else { -1 }));
        }
        if let Some(s) = self.cpu_shares {
            cpu.set_shares(Some(s));
        }
        if let Some(c) = &self.cpuset_cpus {
            cpu.set_cpus(Some(c.clone()));
        }
        if let Some(m) = &self.cpuset_mems {
            cpu.set_mems(Some(m.clone()));
        }
        if cpu != LinuxCpu::default() {
            out.set_cpu(Some(cpu));
        }
        if let Some(limit) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(if limit > 0 { limit } else { -1 });
            out.set_pids(Some(pids));
        }
        Ok(out)
    }
}

/// Applies `update` to the container `reference`; `patch_request` lets the front door
/// bring its stored request up to date (what inspect answers from). Returns warnings.
pub async fn update(
    engine: &Arc<Engine>,
    reference: &str,
    update: Update,
    patch_request: impl FnOnce(&mut serde_json::Value) + Send,
) -> Result<Vec<String>, EngineError> {
    let id = find(engine, reference)?.id;
    let _guard = engine.lock(&id).await;
    let mut record = get(engine, &id)?;
    if let Some(policy) = &update.restart_policy {
        policy
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if record.auto_remove && !matches!(policy.name.as_str(), "" | "no") {
            return Err(EngineError::Invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
    }
    let mut warnings = Vec::new();
    let mut update = update;
    if update.memory_swap.is_some_and(|s| s != 0) && !swap_accounting() {
        warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".to_string());
        update.memory_swap = None;
    }
    let running = record.state.status.has_task();
    let config_json = engine.dir(&id).join("config.json");
    let (d, cid, u) = (Arc::clone(engine), id.clone(), update.clone());
    blocking(move || {
        let mut spec = read_spec(&config_json)?;
        let linux = spec.linux_mut().get_or_insert_with(Default::default);
        let current = linux.resources().clone().unwrap_or_default();
        let changes = u.resources(&current)?;
        if changes == LinuxResources::default() {
            return Ok(());
        }
        if running {
            let bytes = serde_json::to_vec(&changes)
                .map_err(EngineError::internal("encoding resources"))?;
            shim_of(&d, &cid)?.update(&cid, &bytes)?;
        }
        let mut merged = current;
        merge(&mut merged, &changes);
        linux.set_resources(Some(merged));
        write_spec(&config_json, &spec)
    })
    .await?;
    if let Some(policy) = update.restart_policy {
        record.restart_policy = policy;
    }
    patch_request(&mut record.request);
    put(engine, &record)?;
    engine
        .events_log
        .container(&record, "update", std::iter::empty());
    tracing::info!(id, running, "container updated");
    Ok(warnings)
}

/// Whether the host's memory cgroup limits swap (v1's memsw files; v2 always can).
fn swap_accounting() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    !v1.is_dir() || v1.join("memory.memsw.limit_in_bytes").exists()
}

fn read_spec(path: &Path) -> Result<Spec, EngineError> {
    let bytes = std::fs::read(path)
        .map_err(EngineError::internal(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(EngineError::internal(format!("parsing {}", path.display())))
}

fn write_spec(path: &Path, spec: &Spec) -> Result<(), EngineError> {
    let tmp = path.with_extension("json.tmp");
    let bytes =
        serde_json::to_vec_pretty(spec).map_err(EngineError::internal("encoding config.json"))?;
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(EngineError::internal(format!("writing {}", path.display())))
}

/// `changes` merged into `base` field by field.
fn merge(base: &mut LinuxResources, changes: &LinuxResources) {
    if let Some(new) = changes.memory() {
        let old = base.memory().unwrap_or_default();
        let mut b = LinuxMemoryBuilder::default();
        if let Some(v) = new.limit().or(old.limit()) {
            b = b.limit(v);
        }
        if let Some(v) = new.reservation().or(old.reservation()) {
            b = b.reservation(v);
        }
        if let Some(v) = new.swap().or(old.swap()) {
            b = b.swap(v);
        }
        if let Some(v) = old.swappiness() {
            b = b.swappiness(v);
        }
        if let Some(v) = old.disable_oom_killer() {
            b = b.disable_oom_killer(v);
        }
        base.set_memory(Some(b.build().unwrap_or(old)));
    }
    if let Some(new) = changes.cpu() {
        let cpu = base.cpu_mut().get_or_insert_with(Default::default);
        if let Some(v) = new.shares() {
            cpu.set_shares(Some(v));
        }
        if let Some(v) = new.quota() {
            cpu.set_quota(Some(v));
        }
        if let Some(v) = new.period() {
            cpu.set_period(Some(v));
        }
        if let Some(v) = new.cpus() {
            cpu.set_cpus(Some(v.clone()));
        }
        if let Some(v) = new.mems() {
            cpu.set_mems(Some(v.clone()));
        }
    }
    if let Some(p) = changes.pids() {
        base.set_pids(Some(*p));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn typed(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn updates_become_oci_changes_and_merge() -> Result<(), EngineError> {
        let current = typed(json!({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}}));
        let u = Update {
            memory: Some(128 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(0),
            ..Default::default()
        };
        let changes = u.resources(&current)?;
        assert_eq!(
            serde_json::to_value(&changes).unwrap_or_default(),
            json!({"memory": {"limit": 128 << 20}, "cpu": {"period": 100_000, "quota": 50_000},
                   "pids": {"limit": -1}})
        );
        let mut merged = current;
        merge(&mut merged, &changes);
        assert_eq!(
            serde_json::to_value(&merged).unwrap_or_default(),
            json!({"memory": {"limit": 128 << 20},
                   "cpu": {"shares": 512, "period": 100_000, "quota": 50_000},
                   "pids": {"limit": -1}})
        );
        Ok(())
    }

    #[test]
    fn bad_updates_are_refused() {
        let none = LinuxResources::default();
        let small = Update {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert!(small
            .resources(&none)
            .is_err_and(|e| e.to_string().contains("6MB")));
        let both = Update {
            nano_cpus: Some(1),
            cpu_quota: Some(1),
            ..Default::default()
        };
        assert!(both.resources(&none).is_err());
        let swapped = typed(json!({"memory": {"limit": 64 << 20, "swap": 96 << 20}}));
        let above = Update {
            memory: Some(128 << 20),
            ..Default::default()
        };
        assert!(above
            .resources(&swapped)
            .is_err_and(|e| e.to_string().contains("memoryswap")));
    }
}
