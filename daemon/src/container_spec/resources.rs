//! `HostConfig` limits as OCI `linux.resources`.

use serde_json::{json, Map, Value};

use super::request::HostConfig;
use super::SpecError;
use super::{blkio, host_limits};

/// The CFS period Docker uses to express `--cpus`.
const CPU_PERIOD: i64 = 100_000;

pub fn resources(hc: &HostConfig, devices: Vec<Value>) -> Result<Value, SpecError> {
    let mut memory = Map::new();
    if hc.memory < 0 {
        return Err(SpecError::Resources(format!(
            "memory limit {} is negative",
            hc.memory
        )));
    }
    if hc.memory > 0 {
        if hc.memory < 6 << 20 {
            return Err(SpecError::Resources(
                "Minimum memory limit allowed is 6MB".to_string(),
            ));
        }
        memory.insert("limit".into(), json!(hc.memory));
    }
    if hc.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if hc.memory_swap != 0 {
        memory.insert("swap".into(), json!(hc.memory_swap));
    }
    let mut cpu = Map::new();
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(SpecError::Resources(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".to_string(),
        ));
    }
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(CPU_PERIOD));
        cpu.insert(
            "quota".into(),
            json!(hc.nano_cpus * CPU_PERIOD / 1_000_000_000),
        );
    }
    if hc.cpu_period > 0 {
        cpu.insert("period".into(), json!(hc.cpu_period));
    }
    if hc.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(hc.cpu_quota));
    }
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    let mut out = Map::new();
    out.insert("devices".into(), Value::Array(devices));
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = hc.pids_limit.filter(|l| *l > 0) {
        out.insert("pids".into(), json!({"limit": limit}));
    }
    // A weight the host cannot apply was discarded before (`blkio`), with a warning.
    if let Some(block_io) = blkio::block_io(hc.blkio_weight)? {
        out.insert("blockIO".into(), block_io);
    }
    // Whether the host can apply these is checked before the spec is built
    // (`host_limits::check`); the runtime refuses them too rather than skip them.
    if !hc.hugepage_limits.is_empty() {
        out.insert(
            "hugepageLimits".into(),
            host_limits::hugepage_limits(&hc.hugepage_limits),
        );
    }
    if !hc.unified.is_empty() {
        out.insert("unified".into(), json!(hc.unified));
    }
    Ok(Value::Object(out))
}
