//! Reading a cgroup's figures for CRI stats and metrics, from v2 (one directory) or v1
//! (one directory per controller). A file the kernel does not offer reads as none.

use std::path::{Path, PathBuf};

use berth_cri_server::engine::CgroupSample;

/// Where every cgroup hierarchy is mounted.
pub(super) const ROOT: &str = "/sys/fs/cgroup";

fn read_num(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Lines of `file` in `dir` and every cgroup below it (cgroup.procs, tasks).
fn count_lines(dir: &Path, file: &str) -> Option<u64> {
    let own = std::fs::read_to_string(dir.join(file)).ok()?;
    let mut n = own.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
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

/// cgroup v2: `<root>/<rel>` holds every controller's files.
pub(super) fn v2(root: &Path, rel: &str) -> Option<CgroupSample> {
    let dir = root.join(rel);
    if !dir.join("cgroup.controllers").exists() {
        return None;
    }
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let cpu = text("cpu.stat");
    let mem = text("memory.stat");
    let usec = |k: &str| keyed(&cpu, k).map(|us| us.saturating_mul(1000));
    let usage = read_num(&dir.join("memory.current"));
    let inactive = keyed(&mem, "inactive_file");
    Some(CgroupSample {
        cpu_usage_ns: usec("usage_usec"),
        cpu_user_ns: usec("user_usec"),
        cpu_system_ns: usec("system_usec"),
        cfs_periods: keyed(&cpu, "nr_periods"),
        cfs_throttled_periods: keyed(&cpu, "nr_throttled"),
        cfs_throttled_ns: usec("throttled_usec"),
        memory_usage: usage,
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
        processes: count_lines(&dir, "cgroup.procs"),
        threads: read_num(&dir.join("pids.current"))
            .or_else(|| count_lines(&dir, "cgroup.threads")),
        threads_max: limit(&dir.join("pids.max")),
    })
}

/// cgroup v1: `<root>/<controller>/<rel>` per controller.
pub(super) fn v1(root: &Path, rel: &str) -> Option<CgroupSample> {
    let at = |controller: &str| -> PathBuf { root.join(controller).join(rel) };
    let (memory, cpuacct, cpu, pids) = (at("memory"), at("cpuacct"), at("cpu"), at("pids"));
    if !memory.is_dir() && !cpuacct.is_dir() && !pids.is_dir() {
        return None;
    }
    let mem = std::fs::read_to_string(memory.join("memory.stat")).unwrap_or_default();
    let acct = std::fs::read_to_string(cpuacct.join("cpuacct.stat")).unwrap_or_default();
    let throttling = std::fs::read_to_string(cpu.join("cpu.stat")).unwrap_or_default();
    let tick_ns = 1_000_000_000 / ticks_per_second();
    let ticks = |k: &str| keyed(&acct, k).map(|t| t.saturating_mul(tick_ns));
    let usage = read_num(&memory.join("memory.usage_in_bytes"));
    let inactive = keyed(&mem, "total_inactive_file");
    // Processes from whichever hierarchy has the cgroup (they all hold the same ones).
    let procs_dir = [&pids, &memory, &cpuacct].into_iter().find(|d| d.is_dir());
    Some(CgroupSample {
        cpu_usage_ns: read_num(&cpuacct.join("cpuacct.usage")),
        cpu_user_ns: ticks("user"),
        cpu_system_ns: ticks("system"),
        cfs_periods: keyed(&throttling, "nr_periods"),
        cfs_throttled_periods: keyed(&throttling, "nr_throttled"),
        cfs_throttled_ns: keyed(&throttling, "throttled_time"),
        memory_usage: usage,
        memory_max_usage: read_num(&memory.join("memory.max_usage_in_bytes")),
        memory_working_set: usage.map(|u| u.saturating_sub(inactive.unwrap_or(0))),
        memory_rss: keyed(&mem, "total_rss"),
        memory_cache: keyed(&mem, "total_cache"),
        memory_mapped_file: keyed(&mem, "total_mapped_file"),
        memory_swap: keyed(&mem, "total_swap"),
        memory_failcnt: read_num(&memory.join("memory.failcnt")),
        memory_active_file: keyed(&mem, "total_active_file"),
        memory_inactive_file: inactive,
        page_faults: keyed(&mem, "total_pgfault"),
        major_page_faults: keyed(&mem, "total_pgmajfault"),
        oom_kills: std::fs::read_to_string(memory.join("memory.oom_control"))
            .ok()
            .and_then(|t| keyed(&t, "oom_kill")),
        processes: procs_dir.and_then(|d| count_lines(d, "cgroup.procs")),
        threads: read_num(&pids.join("pids.current"))
            .or_else(|| procs_dir.and_then(|d| count_lines(d, "tasks"))),
        threads_max: limit(&pids.join("pids.max")),
    })
}

/// The cgroup at `cgroup` (absolute in the hierarchy), v2 first; `None` when no
/// hierarchy has it.
pub(super) fn read(cgroup: &str) -> Option<CgroupSample> {
    let rel = cgroup.trim_matches('/');
    if rel.is_empty() {
        return None;
    }
    let root = Path::new(ROOT);
    v2(root, rel).or_else(|| v1(root, rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)
    }

    #[test]
    fn v1_and_v2_files_give_the_same_figures() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let v1_root = dir.path().join("v1");
        let c = |ctrl: &str, f: &str| v1_root.join(ctrl).join("pod/c").join(f);
        write(&c("memory", "memory.usage_in_bytes"), "1000\n")?;
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

        let v2_root = dir.path().join("v2");
        let f = |name: &str| v2_root.join("pod/c").join(name);
        write(&f("cgroup.controllers"), "cpu memory pids\n")?;
        write(&f("memory.current"), "1000\n")?;
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

        let want = |failcnt| CgroupSample {
            cpu_usage_ns: Some(3_000_000_000),
            cpu_user_ns: Some(2_000_000_000),
            cpu_system_ns: Some(1_000_000_000),
            cfs_periods: Some(10),
            cfs_throttled_periods: Some(4),
            cfs_throttled_ns: Some(5000),
            memory_usage: Some(1000),
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
            threads: Some(3),
            threads_max: None,
        };
        assert_eq!(v1(&v1_root, "pod/c"), Some(want(Some(2))));
        assert_eq!(v2(&v2_root, "pod/c"), Some(want(None)));
        assert_eq!(v2(&v1_root, "pod/c"), None);
        assert_eq!(v1(&v1_root, "pod/other"), None);
        Ok(())
    }
}
