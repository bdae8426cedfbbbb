//! Resource usage read from cgroup files, for the shim's stats.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Usage of one container's cgroup. Missing files read as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub memory_max_usage: u64,
    pub pids_current: u64,
    pub pids_limit: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
}

fn num(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn keyed(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

pub(super) fn v1(dirs: &[(String, PathBuf)]) -> Stats {
    let find = |name: &str| {
        dirs.iter()
            .find(|(c, _)| c.split(',').any(|x| x == name))
            .map(|(_, d)| d)
    };
    let mut s = Stats::default();
    if let Some(d) = find("cpuacct") {
        s.cpu_usage_ns = num(&d.join("cpuacct.usage"));
        let hz = 100; // USER_HZ
        s.cpu_user_ns = keyed(&d.join("cpuacct.stat"), "user") * 1_000_000_000 / hz;
        s.cpu_system_ns = keyed(&d.join("cpuacct.stat"), "system") * 1_000_000_000 / hz;
    }
    if let Some(d) = find("memory") {
        s.memory_usage = num(&d.join("memory.usage_in_bytes"));
        s.memory_limit = num(&d.join("memory.limit_in_bytes"));
        s.memory_max_usage = num(&d.join("memory.max_usage_in_bytes"));
    }
    if let Some(d) = find("pids") {
        s.pids_current = num(&d.join("pids.current"));
        s.pids_limit = num(&d.join("pids.max"));
    }
    if let Some(d) = find("blkio") {
        if let Ok(text) = fs::read_to_string(d.join("blkio.throttle.io_service_bytes")) {
            for l in text.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if let [_, op, v] = f[..] {
                    let v: u64 = v.parse().unwrap_or(0);
                    match op {
                        "Read" => s.io_read_bytes += v,
                        "Write" => s.io_write_bytes += v,
                        _ => {}
                    }
                }
            }
        }
    }
    s
}

pub(super) fn v2(d: &Path) -> Stats {
    let mut s = Stats {
        cpu_usage_ns: keyed(&d.join("cpu.stat"), "usage_usec") * 1000,
        cpu_user_ns: keyed(&d.join("cpu.stat"), "user_usec") * 1000,
        cpu_system_ns: keyed(&d.join("cpu.stat"), "system_usec") * 1000,
        memory_usage: num(&d.join("memory.current")),
        memory_limit: num(&d.join("memory.max")),
        memory_max_usage: num(&d.join("memory.peak")),
        pids_current: num(&d.join("pids.current")),
        pids_limit: num(&d.join("pids.max")),
        ..Stats::default()
    };
    if let Ok(text) = fs::read_to_string(d.join("io.stat")) {
        for l in text.lines() {
            for kv in l.split_whitespace().skip(1) {
                if let Some(v) = kv.strip_prefix("rbytes=") {
                    s.io_read_bytes += v.parse().unwrap_or(0);
                } else if let Some(v) = kv.strip_prefix("wbytes=") {
                    s.io_write_bytes += v.parse().unwrap_or(0);
                }
            }
        }
    }
    s
}
