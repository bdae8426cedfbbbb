//! A block I/O weight (`--blkio-weight`), handled as Docker handles it: whether the
//! host supports one ([`weight_supported`]; the Docker API discards an unsupported
//! weight with a warning), and the weight, 10..1000 (0: unset), as OCI
//! `linux.resources.blockIO.weight`.
//!
//! Weights come from the I/O scheduler: since Linux 5.0 only BFQ offers them in a
//! blkio (v1) cgroup, as `blkio.bfq.weight`; on v2, `io.bfq.weight` or blk-iocost's
//! `io.weight`. Most servers run without BFQ, and then no cgroup has a weight file.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxBlockIo;

use super::SpecError;

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
