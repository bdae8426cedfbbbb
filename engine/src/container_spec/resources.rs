//! The config's resources as OCI `linux.resources`.

use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxMemoryBuilder, LinuxPids, LinuxResources, Spec,
};

use super::{blkio, defaults, host_limits, linux_mut, Container, SpecError};
use crate::config::Resources;

/// The CFS period Docker uses to express `--cpus`.
const CPU_PERIOD: i64 = 100_000;

/// `linux.resources`: device rules, memory, CPU, pids, block I/O, hugepages, unified.
pub(super) fn with_resources(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let config = c.config();
    let resources = resources(
        &config.resources,
        defaults::device_rules(config.security.privileged),
    )?;
    linux_mut(spec).set_resources(Some(resources));
    Ok(())
}

pub fn resources(
    hc: &Resources,
    devices: Vec<LinuxDeviceCgroup>,
) -> Result<LinuxResources, SpecError> {
    let mut memory = LinuxMemoryBuilder::default();
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
        memory = memory.limit(hc.memory);
    }
    if hc.memory_reservation > 0 {
        memory = memory.reservation(hc.memory_reservation);
    }
    if hc.memory_swap != 0 {
        memory = memory.swap(hc.memory_swap);
    }
    // cgroup v1 only (memory.oom_control); a cgroup v2 host has no such switch, and
    // the Docker API discards it there with Docker's warning before it comes here.
    if hc.oom_kill_disable {
        memory = memory.disable_oom_killer(true);
    }
    let memory = memory.build()?;
    let mut cpu = LinuxCpu::default();
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(SpecError::Resources(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".to_string(),
        ));
    }
    if hc.nano_cpus > 0 {
        cpu.set_period(Some(CPU_PERIOD as u64));
        cpu.set_quota(Some(hc.nano_cpus * CPU_PERIOD / 1_000_000_000));
    }
    if hc.cpu_period > 0 {
        cpu.set_period(Some(hc.cpu_period as u64));
    }
    if hc.cpu_quota > 0 {
        cpu.set_quota(Some(hc.cpu_quota));
    }
    if hc.cpu_shares > 0 {
        cpu.set_shares(Some(hc.cpu_shares as u64));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(hc.cpuset_cpus.clone()));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.set_mems(Some(hc.cpuset_mems.clone()));
    }
    let mut out = LinuxResources::default();
    out.set_devices(Some(devices));
    if memory != LinuxMemory::default() {
        out.set_memory(Some(memory));
    }
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }
    if let Some(limit) = hc.pids_limit.filter(|l| *l > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        out.set_pids(Some(pids));
    }
    // A weight the host cannot apply was discarded before (`blkio`), with a warning.
    out.set_block_io(blkio::block_io(hc.blkio_weight)?);
    // Whether the host can apply these is checked before the spec is built
    // (`host_limits::check`); the runtime refuses them too rather than skip them.
    if !hc.hugepage_limits.is_empty() {
        out.set_hugepage_limits(Some(
            host_limits::hugepage_limits(&hc.hugepage_limits).map_err(SpecError::Resources)?,
        ));
    }
    if !hc.unified.is_empty() {
        out.set_unified(Some(hc.unified.clone().into_iter().collect()));
    }
    Ok(out)
}
