//! cgroup v1: one directory per mounted controller hierarchy.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{blkio, devices, write};
use crate::error::{Error, Result};

/// mkdir -p `dir` below `mount`; cpuset levels get cpus/mems from their parent.
pub(super) fn create(mount: &Path, dir: &Path, cpuset: bool) -> Result<()> {
    for _ in 0..super::MKDIR_TRIES {
        if create_levels(mount, dir, cpuset)? {
            return Ok(());
        }
    }
    Err(super::vanishing(dir))
}

/// One try of [`create`]; false when a level vanished under us (see
/// [`super::MKDIR_TRIES`]).
fn create_levels(mount: &Path, dir: &Path, cpuset: bool) -> Result<bool> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        match fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::Cgroup(format!("creating {}: {e}", cur.display()))),
        }
        if !cpuset {
            continue;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_to_string(cur.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read_to_string(parent.join(f)).unwrap_or_default();
                write(&cur, f, theirs.trim())?;
            }
        }
    }
    Ok(true)
}

fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Writes the limits of controller `ctrl` in `dir`.
pub(super) fn apply(ctrl: &str, dir: &Path, res: &LinuxResources) -> Result<()> {
    match ctrl {
        "cpu" => {
            if let Some(cpu) = res.cpu() {
                if let Some(s) = cpu.shares() {
                    write(dir, "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = cpu.period() {
                    write(dir, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = cpu.quota() {
                    write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
                if let Some(p) = cpu.realtime_period() {
                    write(dir, "cpu.rt_period_us", &p.to_string())?;
                }
                if let Some(r) = cpu.realtime_runtime() {
                    write(dir, "cpu.rt_runtime_us", &r.to_string())?;
                }
            }
        }
        "cpuset" => {
            if let Some(cpu) = res.cpu() {
                if let Some(c) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                    write(dir, "cpuset.cpus", c)?;
                }
                if let Some(m) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                    write(dir, "cpuset.mems", m)?;
                }
            }
        }
        "memory" => {
            if let Some(mem) = res.memory() {
                apply_memory(dir, mem)?;
            }
        }
        "pids" => {
            if let Some(p) = res.pids() {
                let v = if p.limit() > 0 {
                    p.limit().to_string()
                } else {
                    "max".into()
                };
                write(dir, "pids.max", &v)?;
            }
        }
        "blkio" => {
            if let Some(b) = res.block_io() {
                blkio::apply_v1(dir, b)?;
            }
        }
        "hugetlb" => {
            for h in res.hugepage_limits().iter().flatten() {
                write(
                    dir,
                    &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                    &h.limit().to_string(),
                )?;
            }
        }
        "devices" => {
            for rule in devices::rules(res) {
                let file = if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(dir, file, &rule.to_string())?;
            }
        }
        "net_cls" => {
            if let Some(id) = res.network().as_ref().and_then(|n| n.class_id()) {
                write(dir, "net_cls.classid", &id.to_string())?;
            }
        }
        "net_prio" => {
            for p in res
                .network()
                .as_ref()
                .and_then(|n| n.priorities().clone())
                .iter()
                .flatten()
            {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn apply_memory(dir: &Path, mem: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let limit = mem.limit();
    let swap = mem.swap();
    let memsw = exists(dir, "memory.memsw.limit_in_bytes");
    if let Some(sw) = swap {
        if !memsw && Some(sw) != limit && sw != -1 {
            return Err(Error::Cgroup(
                "memory.swap is set but the kernel has no swap accounting (memory.memsw.limit_in_bytes missing)".into(),
            ));
        }
    }
    match (limit, swap.filter(|_| memsw)) {
        (Some(l), Some(s)) => {
            // The memory limit may not exceed memsw: order the writes by direction.
            if write(dir, "memory.limit_in_bytes", &l.to_string()).is_err() {
                write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                write(dir, "memory.limit_in_bytes", &l.to_string())?;
            } else {
                write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
        }
        (Some(l), None) => write(dir, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) => write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = mem.reservation() {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = mem.swappiness() {
        if s <= 100 {
            write(dir, "memory.swappiness", &s.to_string())?;
        } else {
            return Err(Error::Cgroup(format!("memory.swappiness {s} is above 100")));
        }
    }
    if mem.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}
