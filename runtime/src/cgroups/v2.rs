//! cgroup v2: one directory in the unified tree; controllers enabled in each
//! ancestor's cgroup.subtree_control on the way down.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{blkio, write};
use crate::error::{Error, Result};

pub(super) fn create(mount: &Path, dir: &Path) -> Result<()> {
    for _ in 0..super::MKDIR_TRIES {
        if create_levels(mount, dir)? {
            return Ok(());
        }
    }
    Err(super::vanishing(dir))
}

/// One try of [`create`]; false when a level vanished under us (see
/// [`super::MKDIR_TRIES`]).
fn create_levels(mount: &Path, dir: &Path) -> Result<bool> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        // Enable what the parent offers for its children, best effort: a
        // controller busy elsewhere (or bound to v1) just stays off.
        if let Ok(avail) = fs::read_to_string(cur.join("cgroup.controllers")) {
            let enabled =
                fs::read_to_string(cur.join("cgroup.subtree_control")).unwrap_or_default();
            for ctrl in avail.split_whitespace() {
                if !enabled.split_whitespace().any(|e| e == ctrl) {
                    let _ = fs::write(cur.join("cgroup.subtree_control"), format!("+{ctrl}"));
                }
            }
        }
        cur.push(c);
        match fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::Cgroup(format!("creating {}: {e}", cur.display()))),
        }
    }
    Ok(true)
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), as the OCI/runc conversion does.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub(super) fn apply(dir: &Path, res: &LinuxResources) -> Result<()> {
    if let Some(cpu) = res.cpu() {
        if let Some(s) = cpu.shares().filter(|s| *s > 0) {
            write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let q = cpu
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            let p = cpu.period().unwrap_or(100_000);
            write(dir, "cpu.max", &format!("{q} {p}"))?;
        }
        if let Some(c) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", c)?;
        }
        if let Some(m) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", m)?;
        }
    }
    if let Some(mem) = res.memory() {
        if let Some(l) = mem.limit() {
            write(dir, "memory.max", &limit(l))?;
        }
        if let Some(r) = mem.reservation() {
            write(dir, "memory.low", &limit(r))?;
        }
        if let Some(s) = mem.swap() {
            // OCI swap is memory+swap; v2 memory.swap.max is swap alone.
            let v = match (s, mem.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(dir, "memory.swap.max", &v)?;
        }
    }
    if let Some(p) = res.pids() {
        write(
            dir,
            "pids.max",
            &if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        )?;
    }
    if let Some(b) = res.block_io() {
        blkio::apply_v2(dir, b)?;
    }
    for h in res.hugepage_limits().iter().flatten() {
        write(
            dir,
            &format!("hugetlb.{}.max", h.page_size()),
            &h.limit().to_string(),
        )?;
    }
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::warn!(
            "device cgroup rules are not enforced on cgroup v2 (no eBPF device filter yet)"
        );
    }
    for (k, v) in res.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::Cgroup(format!("invalid unified key {k:?}")));
        }
        write(dir, k, v)?;
    }
    Ok(())
}
