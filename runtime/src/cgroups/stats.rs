//! Reading a cgroup's figures: the one reader behind the shim's stats ([`Stats`]) and
//! the CRI's stats and metrics ([`CgroupSample`]), from v2 (one directory) or v1 (one
//! directory per controller). A file the kernel does not offer reads as none.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CgroupPaths, CGROUP_ROOT};

/// Figures read from one cgroup (v1 or v2); what the hierarchy does not offer is
/// `None`. Times in nanoseconds, sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupSample {
    pub cpu_usage_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    /// The memory limit; `None` when unlimited on v2 (v1 reports a huge number).
    pub memory_limit: Option<u64>,
    pub memory_max_usage: Option<u64>,
    /// Usage less inactive file pages, as kubelet and cAdvisor count it.
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    pub memory_swap: Option<u64>,
    /// Times usage hit the limit (v1 only).
    pub memory_failcnt: Option<u64>,
    pub memory_active_file: Option<u64>,
    pub memory_inactive_file: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
    pub oom_kills: Option<u64>,
    /// Processes (thread group leaders) in the cgroup and its descendants.
    pub processes: Option<u64>,
    /// The pids controller's count of tasks in the cgroup and its descendants.
    pub pids_current: Option<u64>,
    /// Tasks (threads) in the cgroup and its descendants: `pids_current`, or counted
    /// from the task lists without a pids controller.
    pub threads: Option<u64>,
    /// The pids limit; `None` when unlimited.
    pub threads_max: Option<u64>,
    /// Bytes read and written on block devices.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// memory.stat as the kernel wrote it (v1's or v2's keys), in its order.
    pub memory_stat: Vec<(String, u64)>,
    /// Bytes read and written per block device.
    pub io_service_bytes: Vec<DeviceBytes>,
}

/// One block device's bytes for one operation: `Read`/`Write` (v1's names) or
/// `read`/`write` (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBytes {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub bytes: u64,
}

/// Usage of one container's cgroup, as the shim reports it. Missing files read as zero.
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

impl From<&CgroupSample> for Stats {
    fn from(s: &CgroupSample) -> Self {
        let z = |v: Option<u64>| v.unwrap_or(0);
        Stats {
            cpu_usage_ns: z(s.cpu_usage_ns),
            cpu_user_ns: z(s.cpu_user_ns),
            cpu_system_ns: z(s.cpu_system_ns),
            memory_usage: z(s.memory_usage),
            memory_limit: z(s.memory_limit),
            memory_max_usage: z(s.memory_max_usage),
            pids_current: z(s.pids_current),
            pids_limit: z(s.threads_max),
            io_read_bytes: z(s.io_read_bytes),
            io_write_bytes: z(s.io_write_bytes),
        }
    }
}

/// The v1 controllers [`locate`] looks for.
const V1_CONTROLLERS: [&str; 5] = ["memory", "cpuacct", "cpu", "pids", "blkio"];

/// The cgroup at `cgroup` (absolute in the hierarchy) under /sys/fs/cgroup, v2 first;
/// `None` when no hierarchy has it.
pub fn sample_at(cgroup: &str) -> Option<CgroupSample> {
    locate(Path::new(CGROUP_ROOT), cgroup).map(|p| sample(&p))
}

/// The directories of the cgroup `cgroup` under `root`: `<root>/<rel>` when it is a v2
/// cgroup, else `<root>/<controller>/<rel>` for each v1 controller that has it.
fn locate(root: &Path, cgroup: &str) -> Option<CgroupPaths> {
    let rel = cgroup.trim_matches('/');
    if rel.is_empty() {
        return None;
    }
    let dir = root.join(rel);
    if dir.join("cgroup.controllers").exists() {
        return Some(CgroupPaths {
            unified: Some(dir),
            v1: Vec::new(),
        });
    }
    let v1: Vec<(String, PathBuf)> = V1_CONTROLLERS
        .iter()
        .map(|c| (c.to_string(), root.join(c).join(rel)))
        .filter(|(_, d)| d.is_dir())
        .collect();
    // cpu (throttling) or blkio alone do not make a container's cgroup.
    let found = |name: &str| v1.iter().any(|(c, _)| c == name);
    if !found("memory") && !found("cpuacct") && !found("pids") {
        return None;
    }
    Some(CgroupPaths { unified: None, v1 })
}

/// Everything the cgroup's files say.
pub(super) fn sample(paths: &CgroupPaths) -> CgroupSample {
    match &paths.unified {
        Some(dir) => v2(dir),
        None => v1(&paths.v1),
    }
}

fn read_num(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Lines of `file` in `dir` and every cgroup below it (cgroup.procs, tasks).
fn count_lines(dir: &Path, file: &str) -> Option<u64> {
    let own = fs::read_to_string(dir.join(file)).ok()?;
    let mut n = own.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            n += count_lines(&entry.path(), file).unwrap_or(0);
        }
    }
    Some(n)
}

/// `max` (no limit) reads as none.
fn limit(path: &Path) -> Option<u64> {
    read_num(path)
}

/// The clock ticks per second cpuacct.stat counts in.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant; no pointers involved.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// cgroup v2: `dir` holds every controller's files.
fn v2(dir: &Path) -> CgroupSample {
    let text = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
    let cpu = text("cpu.stat");
    let mem = text("memory.stat");
    let usec = |k: &str| keyed(&cpu, k).map(|us| us.saturating_mul(1000));
    let usage = read_num(&dir.join("memory.current"));
    let inactive = keyed(&mem, "inactive_file");
    let pids_current = read_num(&dir.join("pids.current"));
    let io_service_bytes = io_v2(dir);
    let (io_read_bytes, io_write_bytes) = io_totals(io_service_bytes.as_deref());
    CgroupSample {
        cpu_usage_ns: usec("usage_usec"),
        cpu_user_ns: usec("user_usec"),
        cpu_system_ns: usec("system_usec"),
        cfs_periods: keyed(&cpu, "nr_periods"),
        cfs_throttled_periods: keyed(&cpu, "nr_throttled"),
        cfs_throttled_ns: usec("throttled_usec"),
        memory_usage: usage,
        memory_limit: limit(&dir.join("memory.max")),
        memory_max_usage: read_num(&dir.join("memory.peak")),
        memory_working_set: usage.map(|u| u.saturating_sub(inactive.unwrap_or(0))),
        memory_rss: keyed(&mem, "anon"),
        memory_cache: keyed(&mem, "file"),
        memory_mapped_file: keyed(&mem, "file_mapped"),
        memory_swap: read_num(&dir.join("memory.swap.current")),
        memory_failcnt: None,
        memory_active_file: keyed(&mem, "active_file"),
        memory_inactive_file: inactive,
        page_faults: keyed(&mem, "pgfault"),
        major_page_faults: keyed(&mem, "pgmajfault"),
        oom_kills: keyed(&text("memory.events"), "oom_kill"),
        processes: count_lines(dir, "cgroup.procs"),
        pids_current,
        threads: pids_current.or_else(|| count_lines(dir, "cgroup.threads")),
        threads_max: limit(&dir.join("pids.max")),
        io_read_bytes,
        io_write_bytes,
        memory_stat: stat_lines(&mem),
        io_service_bytes: io_service_bytes.unwrap_or_default(),
    }
}

/// `key value` lines of a stat file, in order.
fn stat_lines(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `major:minor` of a device column.
fn device(s: &str) -> Option<(u64, u64)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Read and written bytes summed over devices (none when the file is missing).
fn io_totals(entries: Option<&[DeviceBytes]>) -> (Option<u64>, Option<u64>) {
    let Some(entries) = entries else {
        return (None, None);
    };
    let sum = |op: &str| {
        entries
            .iter()
            .filter(|e| e.op.eq_ignore_ascii_case(op))
            .fold(0u64, |a, e| a.saturating_add(e.bytes))
    };
    (Some(sum("read")), Some(sum("write")))
}

/// io.stat: `<major>:<minor> rbytes=N wbytes=N rios=N ...` per device.
fn io_v2(dir: &Path) -> Option<Vec<DeviceBytes>> {
    let text = fs::read_to_string(dir.join("io.stat")).ok()?;
    let mut out = Vec::new();
    for l in text.lines() {
        let mut fields = l.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(device) else {
            continue;
        };
        for kv in fields {
            let (op, v) = match kv.split_once('=') {
                Some(("rbytes", v)) => ("read", v),
                Some(("wbytes", v)) => ("write", v),
                _ => continue,
            };
            let bytes = v.parse().unwrap_or(0);
            out.push(DeviceBytes {
                major,
                minor,
                op: op.to_string(),
                bytes,
            });
        }
    }
    Some(out)
}

/// cgroup v1: `dirs` holds (controllers of the hierarchy, e.g. "cpu,cpuacct";
/// directory) per hierarchy.
fn v1(dirs: &[(String, PathBuf)]) -> CgroupSample {
    let find = |name: &str| {
        dirs.iter()
            .find(|(c, _)| c.split(',').any(|x| x == name))
            .map(|(_, d)| d.as_path())
    };
    let file = |ctrl: &str, f: &str| find(ctrl).map(|d| d.join(f));
    let num = |ctrl: &str, f: &str| file(ctrl, f).and_then(|p| read_num(&p));
    let text = |ctrl: &str, f: &str| {
        file(ctrl, f)
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let mem = text("memory", "memory.stat");
    let acct = text("cpuacct", "cpuacct.stat");
    let throttling = text("cpu", "cpu.stat");
    let tick_ns = 1_000_000_000 / ticks_per_second();
    let ticks = |k: &str| keyed(&acct, k).map(|t| t.saturating_mul(tick_ns));
    let usage = num("memory", "memory.usage_in_bytes");
    let inactive = keyed(&mem, "total_inactive_file");
    let pids_current = num("pids", "pids.current");
    // Processes from whichever hierarchy has the cgroup (they all hold the same ones).
    let procs_dir = find("pids")
        .or_else(|| find("memory"))
        .or_else(|| find("cpuacct"));
    let io_service_bytes = find("blkio").and_then(io_v1);
    let (io_read_bytes, io_write_bytes) = io_totals(io_service_bytes.as_deref());
    CgroupSample {
        cpu_usage_ns: num("cpuacct", "cpuacct.usage"),
        cpu_user_ns: ticks("user"),
        cpu_system_ns: ticks("system"),
        cfs_periods: keyed(&throttling, "nr_periods"),
        cfs_throttled_periods: keyed(&throttling, "nr_throttled"),
        cfs_throttled_ns: keyed(&throttling, "throttled_time"),
        memory_usage: usage,
        memory_limit: num("memory", "memory.limit_in_bytes"),
        memory_max_usage: num("memory", "memory.max_usage_in_bytes"),
        memory_working_set: usage.map(|u| u.saturating_sub(inactive.unwrap_or(0))),
        memory_rss: keyed(&mem, "total_rss"),
        memory_cache: keyed(&mem, "total_cache"),
        memory_mapped_file: keyed(&mem, "total_mapped_file"),
        memory_swap: keyed(&mem, "total_swap"),
        memory_failcnt: num("memory", "memory.failcnt"),
        memory_active_file: keyed(&mem, "total_active_file"),
        memory_inactive_file: inactive,
        page_faults: keyed(&mem, "total_pgfault"),
        major_page_faults: keyed(&mem, "total_pgmajfault"),
        oom_kills: file("memory", "memory.oom_control")
            .and_then(|p| fs::read_to_string(p).ok())
            .and_then(|t| keyed(&t, "oom_kill")),
        processes: procs_dir.and_then(|d| count_lines(d, "cgroup.procs")),
        pids_current,
        threads: pids_current.or_else(|| procs_dir.and_then(|d| count_lines(d, "tasks"))),
        threads_max: file("pids", "pids.max").and_then(|p| limit(&p)),
        io_read_bytes,
        io_write_bytes,
        memory_stat: stat_lines(&mem),
        io_service_bytes: io_service_bytes.unwrap_or_default(),
    }
}

/// blkio.throttle.io_service_bytes: `<major>:<minor> <Read|Write|...> N` per device and
/// operation, then `Total N`.
fn io_v1(dir: &Path) -> Option<Vec<DeviceBytes>> {
    let text = fs::read_to_string(dir.join("blkio.throttle.io_service_bytes")).ok()?;
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [dev, op, v] = f[..] {
            let Some((major, minor)) = device(dev) else {
                continue;
            };
            if matches!(
                op,
                "Read" | "Write" | "Sync" | "Async" | "Discard" | "Total"
            ) {
                out.push(DeviceBytes {
                    major,
                    minor,
                    op: op.to_string(),
                    bytes: v.parse().unwrap_or(0),
                });
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, text)
    }

    /// The same figures as v1 files under `<root>/<controller>/pod/c` and as v2 files
    /// under `<root>/pod/c`.
    fn fake_cgroups(v1_root: &Path, v2_root: &Path) -> std::io::Result<()> {
        let c = |ctrl: &str, f: &str| v1_root.join(ctrl).join("pod/c").join(f);
        write(&c("memory", "memory.usage_in_bytes"), "1000\n")?;
        write(&c("memory", "memory.limit_in_bytes"), "8192\n")?;
        write(&c("memory", "memory.max_usage_in_bytes"), "4000\n")?;
        write(&c("memory", "memory.failcnt"), "2\n")?;
        write(
            &c("memory", "memory.stat"),
            "cache 5\ntotal_cache 400\ntotal_rss 600\ntotal_mapped_file 50\ntotal_swap 0\n\
             total_active_file 100\ntotal_inactive_file 300\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
        )?;
        write(
            &c("memory", "memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )?;
        write(&c("cpuacct", "cpuacct.usage"), "3000000000\n")?;
        write(
            &c("cpuacct", "cpuacct.stat"),
            &format!(
                "user {}\nsystem {}\n",
                2 * ticks_per_second(),
                ticks_per_second()
            ),
        )?;
        write(
            &c("cpu", "cpu.stat"),
            "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n",
        )?;
        write(&c("pids", "pids.current"), "3\n")?;
        write(&c("pids", "pids.max"), "max\n")?;
        write(&c("pids", "cgroup.procs"), "10\n11\n")?;
        write(&v1_root.join("pids/pod/c/sub/cgroup.procs"), "12\n")?;
        write(
            &c("blkio", "blkio.throttle.io_service_bytes"),
            "8:0 Read 20\n8:0 Write 30\n8:0 Sync 50\n8:0 Total 50\n\
             8:16 Read 1\n8:16 Write 2\nTotal 53\n",
        )?;

        let f = |name: &str| v2_root.join("pod/c").join(name);
        write(&f("cgroup.controllers"), "cpu memory pids io\n")?;
        write(&f("memory.current"), "1000\n")?;
        write(&f("memory.max"), "8192\n")?;
        write(&f("memory.peak"), "4000\n")?;
        write(
            &f("memory.stat"),
            "anon 600\nfile 400\nfile_mapped 50\nactive_file 100\ninactive_file 300\n\
             pgfault 7\npgmajfault 1\n",
        )?;
        write(&f("memory.swap.current"), "0\n")?;
        write(
            &f("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n",
        )?;
        write(
            &f("cpu.stat"),
            "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n\
             nr_periods 10\nnr_throttled 4\nthrottled_usec 5\n",
        )?;
        write(&f("pids.current"), "3\n")?;
        write(&f("pids.max"), "max\n")?;
        write(&f("cgroup.procs"), "10\n11\n")?;
        write(&v2_root.join("pod/c/sub/cgroup.procs"), "12\n")?;
        write(
            &f("io.stat"),
            "8:0 rbytes=20 wbytes=30 rios=1 wios=2 dbytes=0 dios=0\n\
             8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
        )?;
        Ok(())
    }

    fn want(failcnt: Option<u64>) -> CgroupSample {
        CgroupSample {
            cpu_usage_ns: Some(3_000_000_000),
            cpu_user_ns: Some(2_000_000_000),
            cpu_system_ns: Some(1_000_000_000),
            cfs_periods: Some(10),
            cfs_throttled_periods: Some(4),
            cfs_throttled_ns: Some(5000),
            memory_usage: Some(1000),
            memory_limit: Some(8192),
            memory_max_usage: Some(4000),
            memory_working_set: Some(700),
            memory_rss: Some(600),
            memory_cache: Some(400),
            memory_mapped_file: Some(50),
            memory_swap: Some(0),
            memory_failcnt: failcnt,
            memory_active_file: Some(100),
            memory_inactive_file: Some(300),
            page_faults: Some(7),
            major_page_faults: Some(1),
            oom_kills: Some(3),
            processes: Some(3),
            pids_current: Some(3),
            threads: Some(3),
            threads_max: None,
            io_read_bytes: Some(21),
            io_write_bytes: Some(32),
            memory_stat: Vec::new(),
            io_service_bytes: Vec::new(),
        }
    }

    #[test]
    fn v1_and_v2_files_give_the_same_figures() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (v1_root, v2_root) = (dir.path().join("v1"), dir.path().join("v2"));
        fake_cgroups(&v1_root, &v2_root)?;
        let read = |root: &Path, cgroup: &str| locate(root, cgroup).map(|p| sample(&p));
        let (v1, v2) = (read(&v1_root, "/pod/c"), read(&v2_root, "/pod/c"));
        // The raw blocks keep each version's own names.
        let key = |s: &Option<CgroupSample>, k: &str| {
            s.as_ref()
                .and_then(|s| s.memory_stat.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
        };
        assert_eq!(key(&v1, "total_rss"), Some(600));
        assert_eq!(key(&v2, "anon"), Some(600));
        let dev = |s: &Option<CgroupSample>| {
            s.as_ref().map(|s| {
                let e = &s.io_service_bytes[0];
                (e.major, e.minor, e.op.to_ascii_lowercase(), e.bytes)
            })
        };
        assert_eq!(dev(&v1), Some((8, 0, "read".to_string(), 20)));
        assert_eq!(dev(&v2), Some((8, 0, "read".to_string(), 20)));
        let common = |s: Option<CgroupSample>| {
            s.map(|s| CgroupSample {
                memory_stat: Vec::new(),
                io_service_bytes: Vec::new(),
                ..s
            })
        };
        assert_eq!(common(v1), Some(want(Some(2))));
        assert_eq!(common(v2), Some(want(None)));
        // Each layout is found only where it is.
        assert!(locate(&v1_root, "/pod/c").is_some_and(|p| p.unified.is_none()));
        assert!(locate(&v2_root, "/pod/c").is_some_and(|p| p.unified.is_some()));
        assert_eq!(read(&v1_root, "pod/other"), None);
        assert_eq!(read(&v2_root, "pod/other"), None);
        assert_eq!(read(&v1_root, "/"), None);
        Ok(())
    }

    /// A runtime-made v1 cgroup lists its hierarchies by their joined controllers
    /// ("cpu,cpuacct"); the figures are those of the per-controller layout.
    #[test]
    fn joined_v1_hierarchies_are_found_by_controller() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (v1_root, v2_root) = (dir.path().join("v1"), dir.path().join("v2"));
        fake_cgroups(&v1_root, &v2_root)?;
        // Join cpu and cpuacct into one directory, as hosts mount them.
        let joined = v1_root.join("cpu,cpuacct/pod/c");
        fs::create_dir_all(&joined)?;
        for f in ["cpuacct.usage", "cpuacct.stat"] {
            fs::rename(v1_root.join("cpuacct/pod/c").join(f), joined.join(f))?;
        }
        fs::rename(v1_root.join("cpu/pod/c/cpu.stat"), joined.join("cpu.stat"))?;
        let at = |ctrls: &str| (ctrls.to_string(), v1_root.join(ctrls).join("pod/c"));
        let paths = CgroupPaths {
            unified: None,
            v1: vec![
                at("blkio"),
                at("cpu,cpuacct"),
                at("memory"),
                at("pids"),
                at("systemd"),
            ],
        };
        let got = sample(&paths);
        assert_eq!(got.memory_stat.len(), 9);
        assert_eq!(
            CgroupSample {
                memory_stat: Vec::new(),
                io_service_bytes: Vec::new(),
                ..got
            },
            want(Some(2))
        );
        Ok(())
    }

    /// Nothing to read: every figure is none, and the shim's stats are zero.
    #[test]
    fn missing_files_read_as_none_and_stats_as_zero() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let paths = CgroupPaths {
            unified: None,
            v1: vec![("memory".into(), dir.path().join("gone"))],
        };
        let empty = sample(&paths);
        assert_eq!(empty, CgroupSample::default());
        assert_eq!(Stats::from(&empty), Stats::default());
        let v2 = CgroupPaths {
            unified: Some(dir.path().join("gone")),
            v1: Vec::new(),
        };
        assert_eq!(sample(&v2), CgroupSample::default());
        Ok(())
    }

    /// The shim's stats and the CRI's sample of the same cgroup agree, on v1 and v2;
    /// an unlimited v2 memory.max and pids.max are zero in the stats, as before.
    #[test]
    fn stats_and_sample_agree() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (v1_root, v2_root) = (dir.path().join("v1"), dir.path().join("v2"));
        fake_cgroups(&v1_root, &v2_root)?;
        for root in [&v1_root, &v2_root] {
            let paths = locate(root, "/pod/c").ok_or(std::io::ErrorKind::NotFound)?;
            let stats = paths.stats().map_err(std::io::Error::other)?;
            let s = sample(&paths);
            assert_eq!(
                stats,
                Stats {
                    cpu_usage_ns: 3_000_000_000,
                    cpu_user_ns: 2_000_000_000,
                    cpu_system_ns: 1_000_000_000,
                    memory_usage: 1000,
                    memory_limit: 8192,
                    memory_max_usage: 4000,
                    pids_current: 3,
                    pids_limit: 0,
                    io_read_bytes: 21,
                    io_write_bytes: 32,
                },
                "{}",
                root.display()
            );
            assert_eq!(Some(stats.cpu_usage_ns), s.cpu_usage_ns);
            assert_eq!(Some(stats.cpu_user_ns), s.cpu_user_ns);
            assert_eq!(Some(stats.cpu_system_ns), s.cpu_system_ns);
            assert_eq!(Some(stats.memory_usage), s.memory_usage);
            assert_eq!(Some(stats.memory_max_usage), s.memory_max_usage);
            assert_eq!(Some(stats.pids_current), s.threads);
        }
        write(&v2_root.join("pod/c/memory.max"), "max\n")?;
        write(&v2_root.join("pod/c/pids.max"), "7\n")?;
        let paths = locate(&v2_root, "/pod/c").ok_or(std::io::ErrorKind::NotFound)?;
        let stats = paths.stats().map_err(std::io::Error::other)?;
        assert_eq!((stats.memory_limit, stats.pids_limit), (0, 7));
        assert_eq!(sample(&paths).memory_limit, None);
        Ok(())
    }
}
