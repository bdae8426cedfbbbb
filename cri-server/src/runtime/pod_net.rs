//! A pod's network counters, read from inside its pinned network namespace: the
//! kernel's `/proc/net/dev` as a thread that joined the namespace sees it.

use std::path::{Path, PathBuf};

use berth_cni::Netns;

use crate::CriError;

/// The interface kubelet reports as the pod's own (CNI names it so).
pub(super) const DEFAULT_INTERFACE: &str = "eth0";

/// One interface's cumulative counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct InterfaceCounters {
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

/// Every interface but loopback in `text` (the format of `/proc/net/dev`).
pub(super) fn parse(text: &str) -> Vec<InterfaceCounters> {
    let mut out = Vec::new();
    // Two header lines, then `name: rx(8 fields) tx(8 fields)`.
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if name == "lo" || f.len() < 12 {
            continue;
        }
        out.push(InterfaceCounters {
            name: name.to_string(),
            rx_bytes: f[0],
            rx_packets: f[1],
            rx_errors: f[2],
            rx_dropped: f[3],
            tx_bytes: f[8],
            tx_packets: f[9],
            tx_errors: f[10],
            tx_dropped: f[11],
        });
    }
    out
}

/// The counters of the namespace pinned at `netns`, loopback left out.
pub(super) async fn read(netns: &Path) -> Result<Vec<InterfaceCounters>, CriError> {
    let path: PathBuf = netns.to_path_buf();
    let text = tokio::task::spawn_blocking(move || {
        Netns::at(&path).run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
    })
    .await
    .map_err(|e| CriError::Internal(format!("pod network counters task: {e}")))??
    .map_err(CriError::io("read /proc/thread-self/net/dev in", netns))?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_without_loopback() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0:   12345      67    1    2    0     0          0         0     2345      21    3    4    0     0       0          0
";
        assert_eq!(
            parse(text),
            vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 12345,
                rx_packets: 67,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 2345,
                tx_packets: 21,
                tx_errors: 3,
                tx_dropped: 4,
            }]
        );
    }
}
