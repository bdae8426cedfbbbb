//! `HostConfig.BlkioWeight` (`--blkio-weight`), handled as Docker handles it: on a
//! host without block I/O weight support the weight is discarded with a warning in
//! the create answer; elsewhere it must be 10..1000 (0: unset) and becomes OCI
//! `linux.resources.blockIO.weight`.
//!
//! Weights come from the I/O scheduler: since Linux 5.0 only BFQ offers them in a
//! blkio (v1) cgroup, as `blkio.bfq.weight`; on v2, `io.bfq.weight` or blk-iocost's
//! `io.weight`. Most servers run without BFQ, and then no cgroup has a weight file.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxBlockIo;
use serde_json::{json, Value};

use super::SpecError;

/// Docker's warning when it discards a weight (daemon/daemon_unix.go).
pub const WEIGHT_DISCARDED: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

/// Docker's error for a weight out of range.
const OUT_OF_RANGE: &str = "Range of blkio weight is from 10 to 1000";

/// The container's `blockIO`, when it asks for a weight.
pub fn block_io(weight: u16) -> Result<Option<LinuxBlockIo>, SpecError> {
    match weight {
        0 => Ok(None),
        10..=1000 => {
            let mut block_io = LinuxBlockIo::default();
            block_io.set_weight(Some(weight));
            Ok(Some(block_io))
        }
        _ => Err(SpecError::Resources(OUT_OF_RANGE.into())),
    }
}

/// Discards a `HostConfig.BlkioWeight` the host cannot apply (set to 0, so the
/// container runs without it and inspect shows none, as with Docker) and returns
/// the warnings for the create answer. `supported` is asked only when a weight is set.
pub fn discard_unsupported_weight(
    body: &mut Value,
    supported: impl FnOnce() -> bool,
) -> Vec<String> {
    let Some(hc) = body.get_mut("HostConfig").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    // Values that are not a u16 are left for the request's parsing to refuse.
    let asked = hc
        .get("BlkioWeight")
        .and_then(Value::as_u64)
        .is_some_and(|w| (1..=u64::from(u16::MAX)).contains(&w));
    if !asked || supported() {
        return Vec::new();
    }
    hc.insert("BlkioWeight".into(), json!(0));
    vec![WEIGHT_DISCARDED.to_string()]
}

/// Whether containers on this host can be given a block I/O weight.
pub fn weight_supported() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    let bfq = bfq_registered(Path::new("/sys/block"));
    if root.join("cgroup.controllers").exists() {
        let offered = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == "io"));
        // io.cost.qos: blk-iocost, whose io.weight children get.
        return offered && (bfq || root.join("io.cost.qos").exists());
    }
    match blkio_mount() {
        Some(mount) => v1_supported(&mount, bfq),
        None => false,
    }
}

/// v1: the weight files of a child cgroup (the root shows none): berthd's own
/// parent, else any. Without a child, whether BFQ (which adds blkio.bfq.weight to
/// every child) is a registered I/O scheduler.
fn v1_supported(mount: &Path, bfq: bool) -> bool {
    let has = |dir: &Path| {
        ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .any(|f| dir.join(f).exists())
    };
    if has(mount) {
        return true;
    }
    let child = Some(mount.join("berth"))
        .filter(|d| d.is_dir())
        .or_else(|| {
            std::fs::read_dir(mount)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.is_dir())
        });
    match child {
        Some(dir) => has(&dir),
        None => bfq,
    }
}

/// The v1 blkio hierarchy's mount point.
fn blkio_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            return None;
        }
        let opts = post.nth(1)?;
        opts.split(',')
            .any(|o| o == "blkio")
            .then(|| pre.split(' ').nth(4).map(PathBuf::from))?
    })
}

/// BFQ is one of the I/O schedulers a block device can pick.
fn bfq_registered(sys_block: &Path) -> bool {
    std::fs::read_dir(sys_block).is_ok_and(|d| {
        d.flatten().any(|e| {
            std::fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| {
                s.split_whitespace()
                    .any(|x| x.trim_matches(['[', ']']) == "bfq")
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_out_of_docker_range_are_refused() {
        assert!(block_io(0).is_ok_and(|b| b.is_none()));
        assert_eq!(
            block_io(300).ok().flatten().and_then(|b| b.weight()),
            Some(300)
        );
        assert!(block_io(10).is_ok() && block_io(1000).is_ok());
        for w in [1, 9, 1001, u16::MAX] {
            let err = block_io(w).err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(OUT_OF_RANGE), "{w}");
        }
    }

    /// The host without weight support, whatever the machine the test runs on: the
    /// weight is discarded from the request with Docker's warning.
    #[test]
    fn an_unsupported_weight_is_discarded_with_dockers_warning() {
        let mut body = json!({"Image": "x", "HostConfig": {"BlkioWeight": 300, "Memory": 0}});
        let warnings = discard_unsupported_weight(&mut body, || false);
        assert_eq!(warnings, vec![WEIGHT_DISCARDED.to_string()]);
        assert_eq!(body["HostConfig"]["BlkioWeight"], 0);
        // Docker discards before it checks the range: no error for 5 either.
        let mut low = json!({"HostConfig": {"BlkioWeight": 5}});
        assert_eq!(discard_unsupported_weight(&mut low, || false).len(), 1);
        assert_eq!(low["HostConfig"]["BlkioWeight"], 0);
    }

    #[test]
    fn a_supported_or_unset_weight_is_kept_and_the_host_asked_only_when_set() {
        let mut body = json!({"HostConfig": {"BlkioWeight": 300}});
        assert!(discard_unsupported_weight(&mut body, || true).is_empty());
        assert_eq!(body["HostConfig"]["BlkioWeight"], 300);
        for mut body in [
            json!({"HostConfig": {"BlkioWeight": 0}}),
            json!({"HostConfig": {}}),
            json!({"Image": "x"}),
            json!({"HostConfig": "not an object"}),
            // Not a u16: the request's parsing refuses it.
            json!({"HostConfig": {"BlkioWeight": -1}}),
            json!({"HostConfig": {"BlkioWeight": 70000}}),
        ] {
            let before = body.clone();
            let warnings =
                discard_unsupported_weight(&mut body, || panic!("host probed for {before}"));
            assert!(warnings.is_empty());
            assert_eq!(body, before);
        }
    }

    #[test]
    fn bfq_is_found_among_the_schedulers() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        let queue = dir.path().join("vda/queue");
        std::fs::create_dir_all(&queue)?;
        std::fs::write(queue.join("scheduler"), "none [mq-deadline] kyber\n")?;
        assert!(!bfq_registered(dir.path()));
        std::fs::write(queue.join("scheduler"), "none [mq-deadline] kyber bfq\n")?;
        assert!(bfq_registered(dir.path()));
        Ok(())
    }

    /// A v1 blkio hierarchy stands in as a temp dir: a child's weight files decide;
    /// with no child, BFQ's presence does.
    #[test]
    fn v1_support_is_read_from_a_child_cgroup() -> Result<(), std::io::Error> {
        let mount = tempfile::tempdir()?;
        assert!(!v1_supported(mount.path(), false));
        assert!(v1_supported(mount.path(), true));
        let child = mount.path().join("some-child");
        std::fs::create_dir(&child)?;
        assert!(!v1_supported(mount.path(), true));
        std::fs::write(child.join("blkio.bfq.weight"), "100\n")?;
        assert!(v1_supported(mount.path(), false));
        Ok(())
    }

    /// This machine, as the tests run on it: a blkio child cgroup has a weight file
    /// exactly when BFQ is a registered scheduler (CFQ, the other source of weights, left
    /// Linux in 5.0).
    #[test]
    fn the_probe_reads_this_host() {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() || blkio_mount().is_none() {
            eprintln!("skipped: no cgroup v1 blkio hierarchy on this host");
            return;
        }
        assert_eq!(
            weight_supported(),
            bfq_registered(Path::new("/sys/block")),
            "blkio weight files vs BFQ in /sys/block/*/queue/scheduler"
        );
    }
}
