//! Block I/O limits (`linux.resources.blockIO`): weights and throttles, in the v1
//! blkio controller or the v2 io controller.
//!
//! Weights belong to the I/O scheduler. Since Linux 5.0 (CFQ removed) only BFQ offers
//! them, as `blkio.bfq.weight` (v1) or `io.bfq.weight` (v2); blk-iocost adds
//! `io.weight` on v2. A kernel with neither (BFQ not built in and not loaded, as on
//! most servers, whose disks use mq-deadline or none) has no weight file at all, and
//! writing a missing cgroupfs file fails with a bare EACCES. So every file is looked
//! for first, and a limit the host cannot apply is refused with an error naming the
//! limit and what the host lacks.

use std::path::Path;

use oci_spec::runtime::LinuxBlockIo;

use super::write;
use crate::error::{Error, Result};

/// The first of `files` that exists in `dir`.
fn pick<'a>(dir: &Path, files: &[&'a str]) -> Option<&'a str> {
    files.iter().copied().find(|f| dir.join(f).exists())
}

fn no_weight(field: &str, dir: &Path, files: &[&str]) -> Error {
    Error::Cgroup(format!(
        "linux.resources.blockIO.{field} cannot be applied: this host has no block I/O \
         weight support ({} has no {}): the kernel offers no BFQ I/O scheduler \
         (neither built in nor loaded; `modprobe bfq` may add it)",
        dir.display(),
        files.join(" or ")
    ))
}

/// blkio.weight (10..1000) → io.weight (1..10000).
pub(super) fn blkio_to_io_weight(w: u16) -> u64 {
    1 + ((u64::from(w).clamp(10, 1000) - 10) * 9999) / 990
}

/// The four throttles: (OCI field, v1 file, v2 io.max key, devices).
fn throttles(b: &LinuxBlockIo) -> [(&'static str, &'static str, &'static str, Vec<String>); 4] {
    let list = |l: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| {
        l.iter()
            .flatten()
            .map(|d| format!("{}:{} {}", d.major(), d.minor(), d.rate()))
            .collect::<Vec<_>>()
    };
    [
        (
            "throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            "rbps",
            list(b.throttle_read_bps_device()),
        ),
        (
            "throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            "wbps",
            list(b.throttle_write_bps_device()),
        ),
        (
            "throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            "riops",
            list(b.throttle_read_iops_device()),
        ),
        (
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            "wiops",
            list(b.throttle_write_iops_device()),
        ),
    ]
}

/// v1: the blkio controller's files in `dir`.
pub(super) fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    const WEIGHT: [&str; 2] = ["blkio.weight", "blkio.bfq.weight"];
    const WEIGHT_DEVICE: [&str; 2] = ["blkio.weight_device", "blkio.bfq.weight_device"];
    if let Some(w) = b.weight() {
        let file = pick(dir, &WEIGHT).ok_or_else(|| no_weight("weight", dir, &WEIGHT))?;
        write(dir, file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        // CFQ's; BFQ has no leaf weight.
        let file = pick(dir, &["blkio.leaf_weight"])
            .ok_or_else(|| no_leaf_weight("leafWeight", dir, "blkio.leaf_weight"))?;
        write(dir, file, &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let file = pick(dir, &WEIGHT_DEVICE)
                .ok_or_else(|| no_weight("weightDevice", dir, &WEIGHT_DEVICE))?;
            write(dir, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            let file = pick(dir, &["blkio.leaf_weight_device"]).ok_or_else(|| {
                no_leaf_weight("weightDevice[].leafWeight", dir, "blkio.leaf_weight_device")
            })?;
            write(dir, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
        }
    }
    for (field, file, _, devices) in throttles(b) {
        if devices.is_empty() {
            continue;
        }
        if pick(dir, &[file]).is_none() {
            return Err(no_throttling(field, dir, file));
        }
        for d in devices {
            write(dir, file, &d)?;
        }
    }
    Ok(())
}

fn no_leaf_weight(field: &str, dir: &Path, file: &str) -> Error {
    Error::Cgroup(format!(
        "linux.resources.blockIO.{field} cannot be applied: {} has no {file} (leaf weights \
         were the CFQ scheduler's, removed in Linux 5.0; BFQ has none)",
        dir.display()
    ))
}

fn no_throttling(field: &str, dir: &Path, file: &str) -> Error {
    Error::Cgroup(format!(
        "linux.resources.blockIO.{field} cannot be applied: {} has no {file} (the kernel \
         has no block I/O throttling, CONFIG_BLK_DEV_THROTTLING)",
        dir.display()
    ))
}

/// v2: the io controller's files in `dir`.
pub(super) fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    const WEIGHT: [&str; 2] = ["io.bfq.weight", "io.weight"];
    // BFQ takes blkio's scale (1..1000) as is; io.weight (blk-iocost) is 1..10000.
    let weight_value = |file: &str, w: u16| {
        if file == "io.bfq.weight" {
            u64::from(w)
        } else {
            blkio_to_io_weight(w)
        }
    };
    if let Some(w) = b.weight() {
        let file = pick(dir, &WEIGHT).ok_or_else(|| no_weight_v2("weight", dir))?;
        write(dir, file, &format!("default {}", weight_value(file, w)))?;
    }
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(Error::Cgroup(
            "linux.resources.blockIO.leafWeight has no cgroup v2 equivalent (leaf weights were CFQ's, removed in Linux 5.0)".into(),
        ));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let file = pick(dir, &WEIGHT).ok_or_else(|| no_weight_v2("weightDevice", dir))?;
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), weight_value(file, w)),
            )?;
        }
    }
    for (field, _, key, devices) in throttles(b) {
        if devices.is_empty() {
            continue;
        }
        if pick(dir, &["io.max"]).is_none() {
            return Err(Error::Cgroup(format!(
                "linux.resources.blockIO.{field} cannot be applied: {} has no io.max (the io \
                 controller is not enabled there, or the kernel has no block I/O throttling)",
                dir.display()
            )));
        }
        for d in devices {
            // "MAJ:MIN RATE" → "MAJ:MIN key=RATE"
            let (dev, rate) = d.split_once(' ').unwrap_or((&d, "max"));
            write(dir, "io.max", &format!("{dev} {key}={rate}"))?;
        }
    }
    Ok(())
}

fn no_weight_v2(field: &str, dir: &Path) -> Error {
    Error::Cgroup(format!(
        "linux.resources.blockIO.{field} cannot be applied: this host has no block I/O \
         weight support ({} has neither io.bfq.weight nor io.weight): the io controller \
         is not enabled there, or the kernel has neither the BFQ I/O scheduler nor blk-iocost",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn weight(w: u16) -> std::result::Result<LinuxBlockIo, Box<dyn std::error::Error>> {
        Ok(LinuxBlockIoBuilder::default().weight(w).build()?)
    }

    /// A stand-in for a cgroup dir holding `files` (empty, as cgroupfs files read
    /// before a write).
    fn cgroup_dir(files: &[&str]) -> std::result::Result<tempfile::TempDir, std::io::Error> {
        let dir = tempfile::tempdir()?;
        for f in files {
            fs::write(dir.path().join(f), "")?;
        }
        Ok(dir)
    }

    fn read(dir: &tempfile::TempDir, file: &str) -> String {
        fs::read_to_string(dir.path().join(file)).unwrap_or_default()
    }

    /// A host without BFQ (and without CFQ): no weight file, so the weight is refused
    /// by name, not with the EACCES a write to the missing file would give; nothing is
    /// written.
    #[test]
    fn v1_weight_without_a_weight_file_is_refused_by_name() -> TestResult {
        let dir = cgroup_dir(&["blkio.throttle.read_bps_device"])?;
        let err = apply_v1(dir.path(), &weight(300)?)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("blockIO.weight")
                && err.contains("no block I/O weight support")
                && err.contains("BFQ")
                && !err.contains("Permission denied"),
            "{err}"
        );
        assert_eq!(fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn v1_weight_goes_to_the_file_the_host_has() -> TestResult {
        let bfq = cgroup_dir(&["blkio.bfq.weight", "blkio.bfq.weight_device"])?;
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(500u16)
                .build()?])
            .build()?;
        apply_v1(bfq.path(), &b)?;
        assert_eq!(read(&bfq, "blkio.bfq.weight"), "300");
        assert_eq!(read(&bfq, "blkio.bfq.weight_device"), "8:0 500");
        // A CFQ-era kernel: blkio.weight.
        let cfq = cgroup_dir(&["blkio.weight", "blkio.bfq.weight"])?;
        apply_v1(cfq.path(), &weight(20)?)?;
        assert_eq!(read(&cfq, "blkio.weight"), "20");
        assert_eq!(read(&cfq, "blkio.bfq.weight"), "");
        Ok(())
    }

    #[test]
    fn v1_leaf_weights_and_throttles_need_their_files() -> TestResult {
        let dir = cgroup_dir(&["blkio.bfq.weight"])?;
        let leaf = LinuxBlockIoBuilder::default().leaf_weight(300u16).build()?;
        let err = apply_v1(dir.path(), &leaf).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("leafWeight")),
            "{err:?}"
        );
        let throttle = LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(0)
                .rate(1_048_576u64)
                .build()?])
            .build()?;
        let err = apply_v1(dir.path(), &throttle).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("throttleReadBpsDevice")),
            "{err:?}"
        );
        let with = cgroup_dir(&["blkio.throttle.read_bps_device"])?;
        apply_v1(with.path(), &throttle)?;
        assert_eq!(read(&with, "blkio.throttle.read_bps_device"), "8:0 1048576");
        Ok(())
    }

    #[test]
    fn v2_weight_prefers_bfq_then_iocost_else_refuses() -> TestResult {
        let bfq = cgroup_dir(&["io.bfq.weight", "io.weight"])?;
        apply_v2(bfq.path(), &weight(300)?)?;
        assert_eq!(read(&bfq, "io.bfq.weight"), "default 300");
        let iocost = cgroup_dir(&["io.weight"])?;
        apply_v2(iocost.path(), &weight(10)?)?;
        assert_eq!(read(&iocost, "io.weight"), "default 1");
        let none = cgroup_dir(&["io.max"])?;
        let err = apply_v2(none.path(), &weight(300)?)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("blockIO.weight") && err.contains("no block I/O weight support"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn v2_throttles_go_to_io_max() -> TestResult {
        let dir = cgroup_dir(&["io.max"])?;
        let b = LinuxBlockIoBuilder::default()
            .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(253)
                .minor(1)
                .rate(100u64)
                .build()?])
            .build()?;
        apply_v2(dir.path(), &b)?;
        assert_eq!(read(&dir, "io.max"), "253:1 wiops=100");
        let missing = cgroup_dir(&[])?;
        assert!(apply_v2(missing.path(), &b).is_err());
        Ok(())
    }

    #[test]
    fn io_weight_scale() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 1 + (490 * 9999) / 990);
    }
}
