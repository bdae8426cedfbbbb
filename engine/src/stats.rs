//! A running container's usage at one instant: its cgroup through berth-runtime's one
//! reader, its interfaces from its network namespace (`/proc/<pid>/net/dev`), and the
//! host's figures a client needs to make percentages of them (CPU time of the whole
//! machine, online CPUs, memory).

use berth_runtime::cgroups::sample_at;
pub use berth_runtime::cgroups::{CgroupSample, DeviceBytes};

use crate::record::ContainerRecord;
use crate::Engine;

/// One interface's counters, as /proc/net/dev has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// What one read of a container gives.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Unix nanoseconds of the read.
    pub at: i64,
    /// Zero figures for a container without a task.
    pub cgroup: CgroupSample,
    /// The container's own interfaces (loopback left out); empty when it has no
    /// namespace of its own or no task.
    pub networks: Vec<NetDev>,
    /// CPU time of the whole host, in nanoseconds (all CPUs, all modes but guest).
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    /// The host's memory, the limit of a container without one.
    pub host_memory: u64,
}

/// Reads `record`'s usage now (blocking: a few small files).
pub fn sample(engine: &Engine, record: &ContainerRecord, own_netns: bool) -> Sample {
    let running = record.state.status.has_task() && record.state.pid > 0;
    let cgroup = running
        .then(|| crate::oom::cgroup_path(&engine.dir(&record.id)))
        .flatten()
        .and_then(|p| sample_at(&p))
        .unwrap_or_default();
    let networks = match running && own_netns {
        true => std::fs::read_to_string(format!("/proc/{}/net/dev", record.state.pid))
            .map(|t| parse_net_dev(&t))
            .unwrap_or_default(),
        false => Vec::new(),
    };
    let (system_cpu_ns, online_cpus) = std::fs::read_to_string("/proc/stat")
        .map(|t| parse_proc_stat(&t, ticks_per_second()))
        .unwrap_or((0, 0));
    let host_memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total(&t))
        .unwrap_or(0);
    Sample {
        at: crate::unix_nanos(),
        cgroup,
        networks,
        system_cpu_ns,
        online_cpus,
        host_memory,
    }
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant; no pointers involved.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// `/proc/net/dev`: two header lines, then `name: rx… tx…` per interface.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if n.len() < 12 {
                return None;
            }
            Some(NetDev {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

/// The host's CPU time (the first seven fields of the `cpu` line, as Docker sums
/// them) in nanoseconds, and the number of `cpuN` lines.
pub fn parse_proc_stat(text: &str, hz: u64) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(7).map(|v| v.parse::<u64>().unwrap_or(0)).sum();
                total = ticks.saturating_mul(1_000_000_000 / hz.max(1));
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 100 2 0 1 0 0 0 0 300 4 0 0 0 0 0 0\n";
        let nets = parse_net_dev(dev);
        assert_eq!(nets.len(), 1);
        assert_eq!(
            (
                nets[0].name.as_str(),
                nets[0].rx_bytes,
                nets[0].rx_dropped,
                nets[0].tx_bytes,
                nets[0].tx_packets
            ),
            ("eth0", 100, 1, 300, 4)
        );
        let stat = "cpu  10 1 5 100 2 0 1 7 0 0\ncpu0 5 0 2 50 1 0 0 0 0 0\ncpu1 5 1 3 50 1 0 1 0 0 0\nintr 1\n";
        assert_eq!(parse_proc_stat(stat, 100), (119 * 10_000_000, 2));
        assert_eq!(mem_total("MemTotal:  2048 kB\n"), Some(2048 * 1024));
    }
}
