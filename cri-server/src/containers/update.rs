//! `UpdateContainerResources`: new CPU and memory limits for the running container
//! through its shim (Task Update, the runtime's `update`), in its bundle's
//! `config.json` (a restart keeps them) and in its record (status reports them).

use std::sync::Arc;

use berth_engine::container_spec::host_limits;
use berth_engine::{self as engine, Engine};
use k8s_cri::v1 as cri;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxMemoryBuilder, LinuxResources, Spec};

use super::cri_record;
use crate::CriError;

/// OCI `linux.resources` (memory, cpu, hugepage limits, unified keys) from CRI's.
fn oci_resources(r: &cri::LinuxContainerResources) -> Result<LinuxResources, CriError> {
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
    let mut out = LinuxResources::default();
    if r.memory_limit_in_bytes > 0 {
        let memory = LinuxMemoryBuilder::default()
            .limit(r.memory_limit_in_bytes)
            .build()
            .map_err(|e| CriError::Internal(format!("building the memory limits: {e}")))?;
        out.set_memory(Some(memory));
    }
    let mut cpu = LinuxCpu::default();
    if r.cpu_shares > 0 {
        cpu.set_shares(Some(r.cpu_shares as u64));
    }
    if r.cpu_quota > 0 {
        cpu.set_quota(Some(r.cpu_quota));
    }
    if r.cpu_period > 0 {
        cpu.set_period(Some(r.cpu_period as u64));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
    }
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }
    let (hugepages, unified) = super::create::cri_host_limits(r);
    if !hugepages.is_empty() {
        out.set_hugepage_limits(Some(
            host_limits::hugepage_limits(&hugepages).map_err(CriError::InvalidArgument)?,
        ));
    }
    if !unified.is_empty() {
        out.set_unified(Some(unified.into_iter().collect()));
    }
    Ok(out)
}

/// `update` merged into `base` field by field (`memory.limit` replaces only itself;
/// `hugepageLimits` replaces the old list; `unified` keys replace theirs).
fn merge(base: &mut LinuxResources, update: &LinuxResources) {
    if let Some(limit) = update.memory().and_then(|m| m.limit()) {
        base.set_memory(Some(with_limit(base.memory().unwrap_or_default(), limit)));
    }
    if let Some(new) = update.cpu() {
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
    if let Some(limits) = update.hugepage_limits() {
        base.set_hugepage_limits(Some(limits.clone()));
    }
    if let Some(keys) = update.unified() {
        let unified = base.unified_mut().get_or_insert_with(Default::default);
        unified.extend(keys.clone());
    }
}

/// `base` with a new limit (the only memory field CRI updates). `LinuxMemory` has no
/// setters, only a builder: the other fields are carried over one by one.
fn with_limit(base: LinuxMemory, limit: i64) -> LinuxMemory {
    let mut b = LinuxMemoryBuilder::default().limit(limit);
    if let Some(v) = base.reservation() {
        b = b.reservation(v);
    }
    if let Some(v) = base.swap() {
        b = b.swap(v);
    }
    if let Some(v) = base.kernel() {
        b = b.kernel(v);
    }
    if let Some(v) = base.kernel_tcp() {
        b = b.kernel_tcp(v);
    }
    if let Some(v) = base.swappiness() {
        b = b.swappiness(v);
    }
    if let Some(v) = base.disable_oom_killer() {
        b = b.disable_oom_killer(v);
    }
    if let Some(v) = base.use_hierarchy() {
        b = b.use_hierarchy(v);
    }
    if let Some(v) = base.check_before_update() {
        b = b.check_before_update(v);
    }
    b.build().unwrap_or(base)
}

pub(crate) async fn update_resources(
    cri: &crate::Cri,
    req: cri::UpdateContainerResourcesRequest,
) -> Result<cri::UpdateContainerResourcesResponse, CriError> {
    let engine = cri.engine("UpdateContainerResources")?;
    let linux = req.linux.ok_or_else(|| {
        CriError::InvalidArgument("UpdateContainerResources without linux resources".into())
    })?;
    update(&engine, &req.container_id, linux).await?;
    Ok(cri::UpdateContainerResourcesResponse {})
}

async fn update(
    engine: &Arc<Engine>,
    id: &str,
    resources: cri::LinuxContainerResources,
) -> Result<(), CriError> {
    let update = oci_resources(&resources)?;
    // Refused before the shim is asked, so the running cgroup and config.json stay
    // as they were.
    let (hugepage_limits, unified) = super::create::cri_host_limits(&resources);
    super::create::check_host_limits(&berth_engine::config::Resources {
        hugepage_limits,
        unified,
        ..Default::default()
    })?;
    let _guard = engine.lock(id).await;
    let mut record = cri_record(engine, id)?;
    let running = record.state.status.has_task();
    let bundle = engine.dir(id);
    let config_json = bundle.join("config.json");
    let (d, cid) = (Arc::clone(engine), id.to_string());
    let update_for_task = update.clone();
    engine::blocking(move || {
        let bytes = std::fs::read(&config_json).map_err(engine::EngineError::internal(format!(
            "reading {}",
            config_json.display()
        )))?;
        let mut spec: Spec = serde_json::from_slice(&bytes).map_err(
            engine::EngineError::internal(format!("parsing {}", config_json.display())),
        )?;
        if running {
            let bytes = serde_json::to_vec(&update_for_task)
                .map_err(engine::EngineError::internal("encoding resources"))?;
            engine::shim_of(&d, &cid)?.update(&cid, &bytes)?;
        }
        let linux = spec.linux_mut().get_or_insert_with(Default::default);
        merge(
            linux.resources_mut().get_or_insert_with(Default::default),
            &update,
        );
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
    engine::put(engine, &record).map_err(CriError::from)?;
    tracing::info!(id, running, "container resources updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn typed(v: Value) -> LinuxResources {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn js(r: &LinuxResources) -> Value {
        serde_json::to_value(r).unwrap_or_default()
    }

    #[test]
    fn cri_resources_become_oci_and_merge_field_by_field() -> Result<(), CriError> {
        let update = oci_resources(&cri::LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_quota: 20_000,
            ..Default::default()
        })?;
        assert_eq!(
            js(&update),
            json!({"memory": {"limit": 128 << 20}, "cpu": {"quota": 20_000}})
        );
        let mut base = typed(
            json!({"devices": [], "cpu": {"shares": 512, "quota": 50_000},
                                    "memory": {"limit": 64 << 20, "swap": -1}}),
        );
        merge(&mut base, &update);
        assert_eq!(
            js(&base),
            json!({"devices": [], "cpu": {"shares": 512, "quota": 20_000},
                   "memory": {"limit": 128 << 20, "swap": -1}})
        );
        let update = oci_resources(&cri::LinuxContainerResources {
            hugepage_limits: vec![cri::HugepageLimit {
                page_size: "2MB".into(),
                limit: 2 << 20,
            }],
            unified: [("memory.high".to_string(), "64M".to_string())].into(),
            ..Default::default()
        })?;
        let mut base = typed(json!({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}],
                                    "unified": {"pids.max": "10"}}));
        merge(&mut base, &update);
        assert_eq!(
            js(&base),
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
