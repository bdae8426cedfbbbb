//! `UpdateContainerResources`: new CPU and memory limits for the running container
//! through its shim (Task Update, the runtime's `update`), in its bundle's
//! `config.json` (a restart keeps them) and in its record (status reports them).

use std::sync::Arc;

use berth_cri_server::CriError;
use k8s_cri::v1 as cri;
use serde_json::{json, Map, Value};

use super::cri_record;
use crate::container_spec::host_limits;
use crate::engine;
use crate::Daemon;

/// OCI `linux.resources` (memory, cpu, hugepage limits, unified keys) from CRI's.
fn oci_resources(r: &cri::LinuxContainerResources) -> Result<Value, CriError> {
    for (name, v) in [
        ("memory_limit_in_bytes", r.memory_limit_in_bytes),
        ("cpu_shares", r.cpu_shares),
        ("cpu_period", r.cpu_period),
        ("cpu_quota", r.cpu_quota),
    ] {
        if v < 0 {
            return Err(CriError::InvalidArgument(format!("{name} {v} is negative")));
        }
    }
    let mut memory = Map::new();
    if r.memory_limit_in_bytes > 0 {
        memory.insert("limit".into(), json!(r.memory_limit_in_bytes));
    }
    let mut cpu = Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    let mut out = Map::new();
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    let (hugepages, unified) = super::create::cri_host_limits(r);
    if !hugepages.is_empty() {
        out.insert(
            "hugepageLimits".into(),
            json!(host_limits::hugepage_limits(&hugepages).map_err(CriError::InvalidArgument)?),
        );
    }
    if !unified.is_empty() {
        out.insert("unified".into(), json!(unified));
    }
    Ok(Value::Object(out))
}

/// `update` merged into `base` key by key (`memory.limit` replaces only itself; a
/// list such as `hugepageLimits` replaces the old one).
fn merge(base: &mut Value, update: &Value) {
    let (Some(base), Some(update)) = (base.as_object_mut(), update.as_object()) else {
        return;
    };
    for (section, fields) in update {
        let Some(fields) = fields.as_object() else {
            base.insert(section.clone(), fields.clone());
            continue;
        };
        let slot = base.entry(section.clone()).or_insert_with(|| json!({}));
        if let Some(slot) = slot.as_object_mut() {
            for (k, v) in fields {
                slot.insert(k.clone(), v.clone());
            }
        }
    }
}

pub(super) async fn update_resources(
    daemon: &Arc<Daemon>,
    id: &str,
    resources: cri::LinuxContainerResources,
) -> Result<(), CriError> {
    let update = oci_resources(&resources)?;
    // Refused before the shim is asked, so the running cgroup and config.json stay
    // as they were.
    let (hugepage_limits, unified) = super::create::cri_host_limits(&resources);
    super::create::check_host_limits(&crate::container_spec::HostConfig {
        hugepage_limits,
        unified,
        ..Default::default()
    })?;
    let _guard = daemon.engine.lock(id).await;
    let mut record = cri_record(daemon, id)?;
    let running = record.state.status.has_task();
    let bundle = daemon.engine.dir(id);
    let config_json = bundle.join("config.json");
    let (d, cid) = (Arc::clone(daemon), id.to_string());
    let update_for_task = update.clone();
    engine::blocking(move || {
        let bytes = std::fs::read(&config_json).map_err(engine::EngineError::internal(format!(
            "reading {}",
            config_json.display()
        )))?;
        let mut spec: Value = serde_json::from_slice(&bytes).map_err(
            engine::EngineError::internal(format!("parsing {}", config_json.display())),
        )?;
        if running {
            let bytes = serde_json::to_vec(&update_for_task)
                .map_err(engine::EngineError::internal("encoding resources"))?;
            engine::shim_of(&d, &cid)?.update(&cid, &bytes)?;
        }
        merge(&mut spec["linux"]["resources"], &update);
        let tmp = config_json.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(engine::EngineError::internal("encoding config.json"))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &config_json))
            .map_err(engine::EngineError::internal(format!(
                "writing {}",
                config_json.display()
            )))?;
        Ok(())
    })
    .await
    .map_err(CriError::from)?;
    // The CRI config in the record reports the new resources in ContainerStatus.
    let mut config: cri::ContainerConfig =
        serde_json::from_value(record.request.clone()).unwrap_or_default();
    config.linux.get_or_insert_with(Default::default).resources = Some(resources);
    record.request = serde_json::to_value(&config)
        .map_err(|e| CriError::Internal(format!("encoding the container config: {e}")))?;
    engine::put(daemon, &record).map_err(CriError::from)?;
    tracing::info!(id, running, "container resources updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_resources_become_oci_and_merge_field_by_field() -> Result<(), CriError> {
        let update = oci_resources(&cri::LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_quota: 20_000,
            ..Default::default()
        })?;
        assert_eq!(
            update,
            json!({"memory": {"limit": 128 << 20}, "cpu": {"quota": 20_000}})
        );
        let mut base = json!({"devices": [], "cpu": {"shares": 512, "quota": 50_000}});
        merge(&mut base, &update);
        assert_eq!(
            base,
            json!({"devices": [], "cpu": {"shares": 512, "quota": 20_000},
                   "memory": {"limit": 128 << 20}})
        );
        let update = oci_resources(&cri::LinuxContainerResources {
            hugepage_limits: vec![cri::HugepageLimit {
                page_size: "2MB".into(),
                limit: 2 << 20,
            }],
            unified: [("memory.high".to_string(), "64M".to_string())].into(),
            ..Default::default()
        })?;
        let mut base = json!({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}],
                              "unified": {"pids.max": "10"}});
        merge(&mut base, &update);
        assert_eq!(
            base,
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
                   "unified": {"pids.max": "10", "memory.high": "64M"}})
        );
        assert!(oci_resources(&cri::LinuxContainerResources {
            cpu_shares: -1,
            ..Default::default()
        })
        .is_err());
        Ok(())
    }
}
