//! cgroups, written directly to cgroupfs (v1 controllers, or the v2 unified tree).
//!
//! We write the files ourselves instead of using cgroups-rs: the create hot path
//! needs only a handful of mkdir/write calls, and the host here is hybrid (v1
//! controllers plus an empty cgroup2 at /sys/fs/cgroup/unified), which we want to
//! handle explicitly. The layout is chosen by what /sys/fs/cgroup is: cgroup2 →
//! v2, otherwise every mounted v1 controller hierarchy.

mod blkio;
mod devices;
mod stats;
mod v1;
mod v2;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use stats::{sample_at, CgroupSample, DeviceBytes, Stats};

use crate::error::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The directories of one container's cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// v2: the one directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// v1: (controllers of the hierarchy, e.g. "cpu,cpuacct"; directory).
    #[serde(default)]
    pub v1: Vec<(String, PathBuf)>,
}

/// Whether the host's /sys/fs/cgroup is the cgroup2 unified hierarchy.
pub fn host_is_v2() -> bool {
    nix::sys::statfs::statfs(CGROUP_ROOT)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The mounted v1 hierarchies: (controllers, mountpoint, this process's cgroup in it).
fn v1_hierarchies() -> Result<Vec<(String, PathBuf, String)>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading", "/proc/self/mountinfo", e))?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("reading", "/proc/self/cgroup", e))?;
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let Some(mnt) = pre.split(' ').nth(4) else {
            continue;
        };
        let super_opts = post.nth(1).unwrap_or("");
        let ctrls: Vec<&str> = super_opts
            .split(',')
            .filter(|o| {
                !matches!(*o, "rw" | "ro") && !o.contains('=') && *o != "xattr" && *o != "noprefix"
            })
            .collect();
        // A named hierarchy without controllers (name=systemd): like runc, the
        // container gets a cgroup there too, seen as /sys/fs/cgroup/<name>.
        let named = super_opts.split(',').find_map(|o| o.strip_prefix("name="));
        let (joined, key) = match (ctrls.is_empty(), named) {
            (false, _) => (ctrls.join(","), ctrls.join(",")),
            (true, Some(n)) => (n.to_string(), format!("name={n}")),
            (true, None) => continue,
        };
        let current = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let _ = f.next();
                let c = f.next()?;
                let p = f.next()?;
                (c == key || (!ctrls.is_empty() && c.split(',').any(|x| ctrls.contains(&x))))
                    .then(|| p.to_string())
            })
            .unwrap_or_else(|| "/".into());
        if out
            .iter()
            .any(|(c, _, _): &(String, PathBuf, String)| *c == joined)
        {
            continue;
        }
        out.push((joined, PathBuf::from(mnt), current));
    }
    Ok(out)
}

fn own_v2_cgroup() -> String {
    fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_else(|| "/".into())
}

/// Joins `base` (mountpoint) with the container's cgroup path: absolute paths are
/// from the hierarchy root, relative ones below the runtime's own cgroup.
fn resolve(mount: &Path, own: &str, cgroups_path: &Path) -> PathBuf {
    let rel = if cgroups_path.is_absolute() {
        cgroups_path.to_path_buf()
    } else {
        Path::new(own).join(cgroups_path)
    };
    let mut out = mount.to_path_buf();
    for c in rel.components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// How often a container's cgroup levels are made when one of them vanishes between
/// two mkdirs: an empty parent shared by several users (berthd's /berth) may be
/// removed by one of them (a stopping test daemon) while another creates a child.
const MKDIR_TRIES: usize = 3;

fn vanishing(dir: &Path) -> Error {
    Error::Cgroup(format!(
        "creating {}: a parent cgroup was removed during each of {MKDIR_TRIES} tries",
        dir.display()
    ))
}

/// The default cgroup path of a container without `cgroupsPath`.
pub fn default_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/berth/{id}"))
}

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|e| {
        // cgroupfs cannot create files: writing one the kernel does not offer fails
        // with EACCES, which would read as a permission problem.
        if dir.is_dir() && !path.exists() {
            Error::Cgroup(format!(
                "writing {value:?} to {}: this kernel offers no such cgroup file ({e})",
                path.display()
            ))
        } else {
            Error::Cgroup(format!("writing {value:?} to {}: {e}", path.display()))
        }
    })
}

impl CgroupPaths {
    /// Creates the container's cgroup directories (not yet limited, no process in them).
    pub fn create(cgroups_path: &Path) -> Result<Self> {
        let mut paths = CgroupPaths::default();
        if host_is_v2() {
            let dir = resolve(Path::new(CGROUP_ROOT), &own_v2_cgroup(), cgroups_path);
            v2::create(Path::new(CGROUP_ROOT), &dir)?;
            paths.unified = Some(dir);
            return Ok(paths);
        }
        for (ctrls, mount, own) in v1_hierarchies()? {
            let dir = resolve(&mount, &own, cgroups_path);
            let created = v1::create(&mount, &dir, ctrls.split(',').any(|c| c == "cpuset"));
            paths.v1.push((ctrls, dir));
            if let Err(e) = created {
                paths.remove_quietly();
                return Err(e);
            }
        }
        Ok(paths)
    }

    /// A cgroup rooted in a given cgroup2 mount (used for tests of the v2 code on hybrid hosts).
    pub fn create_v2_in(mount: &Path, cgroups_path: &Path) -> Result<Self> {
        let dir = resolve(mount, "/", cgroups_path);
        v2::create(mount, &dir)?;
        Ok(CgroupPaths {
            unified: Some(dir),
            v1: Vec::new(),
        })
    }

    /// Writes the limits of `res`.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        if let Some(dir) = &self.unified {
            return v2::apply(dir, res);
        }
        if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Cgroup(
                "linux.resources.unified needs a cgroup v2 host; this host has cgroup v1 controllers".into(),
            ));
        }
        // A limit is never dropped silently because its controller is missing
        // (hybrid hosts often leave hugetlb to the empty cgroup2 tree).
        let has = |name: &str| self.v1.iter().any(|(c, _)| c.split(',').any(|x| x == name));
        if res
            .hugepage_limits()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
            && !has("hugetlb")
        {
            return Err(Error::Cgroup(
                "linux.resources.hugepageLimits needs the hugetlb controller, which is not mounted as a cgroup v1 hierarchy on this host".into(),
            ));
        }
        for (ctrls, dir) in &self.v1 {
            for c in ctrls.split(',') {
                v1::apply(c, dir, res)?;
            }
        }
        Ok(())
    }

    /// Moves `pid` into every directory.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let s = pid.to_string();
        if let Some(dir) = &self.unified {
            write(dir, "cgroup.procs", &s)?;
        }
        for (_, dir) in &self.v1 {
            write(dir, "cgroup.procs", &s)?;
        }
        Ok(())
    }

    /// For a v1 cgroup: the `tasks` file of each hierarchy, opened for writing. A
    /// single-threaded process that writes "0" into them joins the cgroup without
    /// the kernel's global threadgroup lock (whose RCU grace period dominates a
    /// cgroup.procs write: ~20 ms here). Empty on v2 (the runtime writes
    /// cgroup.procs instead).
    pub fn open_self_join(&self) -> Result<Vec<std::os::fd::OwnedFd>> {
        if self.unified.is_some() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(self.v1.len());
        for (_, dir) in &self.v1 {
            let path = dir.join("tasks");
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("opening", path, e))?;
            out.push(f.into());
        }
        Ok(out)
    }

    fn main_dir(&self) -> Option<&Path> {
        if let Some(d) = &self.unified {
            return Some(d);
        }
        let pick = |name: &str| {
            self.v1
                .iter()
                .find(|(c, _)| c.split(',').any(|x| x == name))
        };
        pick("pids")
            .or_else(|| pick("freezer"))
            .or_else(|| pick("memory"))
            .or_else(|| self.v1.first())
            .map(|(_, d)| d.as_path())
    }

    /// Pids of every process in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.main_dir() else {
            return Ok(Vec::new());
        };
        let path = dir.join("cgroup.procs");
        let s = match fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn freezer_dir(&self) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == "freezer"))
            .map(|(_, d)| d.as_path())
    }

    /// Freezes (pause) or thaws (resume) every process.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(dir) = &self.unified {
            return write(dir, "cgroup.freeze", if frozen { "1" } else { "0" });
        }
        let dir = self
            .freezer_dir()
            .ok_or_else(|| Error::Cgroup("no freezer controller is mounted".into()))?;
        write(
            dir,
            "freezer.state",
            if frozen { "FROZEN" } else { "THAWED" },
        )?;
        if frozen {
            for _ in 0..1000 {
                match fs::read_to_string(dir.join("freezer.state")) {
                    Ok(s) if s.trim() == "FROZEN" => return Ok(()),
                    Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => return Err(Error::io("reading", dir.join("freezer.state"), e)),
                }
            }
            return Err(Error::Cgroup(format!(
                "{} did not reach FROZEN",
                dir.display()
            )));
        }
        Ok(())
    }

    pub(crate) fn is_frozen(&self) -> bool {
        if let Some(dir) = &self.unified {
            return fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
        }
        self.freezer_dir().is_some_and(|d| {
            fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        })
    }

    /// Everything berth reads from the cgroup's files (the CRI's stats and metrics).
    pub fn sample(&self) -> CgroupSample {
        stats::sample(self)
    }

    /// Resource usage, for the shim's stats: the sample with zero for what is missing.
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats::from(&self.sample()))
    }

    /// Removes the directories, waiting briefly for exiting processes to leave.
    pub fn remove(&self) -> Result<()> {
        let mut errs = Vec::new();
        let dirs = self.unified.iter().chain(self.v1.iter().map(|(_, d)| d));
        for dir in dirs {
            if let Err(e) = rmdir_retry(dir) {
                errs.push(format!("{}: {e}", dir.display()));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::Cgroup(format!("removing {}", errs.join("; "))))
        }
    }

    pub(crate) fn remove_quietly(&self) {
        if let Err(e) = self.remove() {
            tracing::warn!("{e}");
        }
    }
}

fn rmdir_retry(dir: &Path) -> std::io::Result<()> {
    let mut delay = Duration::from_micros(200);
    for _ in 0..40 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
    fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxHugepageLimitBuilder, LinuxResourcesBuilder};

    use super::*;

    fn hugepages(limit: i64) -> std::result::Result<LinuxResources, Box<dyn std::error::Error>> {
        Ok(LinuxResourcesBuilder::default()
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(limit)
                .build()?])
            .build()?)
    }

    /// v1 without a hugetlb hierarchy: the limit is refused, not skipped.
    #[test]
    fn hugepage_limits_without_a_hugetlb_hierarchy_are_refused(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let paths = CgroupPaths {
            unified: None,
            v1: vec![("memory".into(), dir.path().to_path_buf())],
        };
        let err = paths
            .apply(&hugepages(4 << 20)?)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("hugetlb")),
            "{err:?}"
        );
        // Nothing was written for the other controllers either.
        assert_eq!(fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    /// The v2 code on a real cgroup2 tree (the hybrid host's /sys/fs/cgroup/unified,
    /// where hugetlb lives when no v1 hierarchy took it): hugetlb and unified keys
    /// land in their files.
    #[test]
    fn hugepages_and_unified_keys_are_written_on_v2(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        berth_fixtures::require_root();
        // The hybrid host's empty cgroup2, or the whole tree on a v2 host.
        let mount = if host_is_v2() {
            Path::new(CGROUP_ROOT)
        } else {
            Path::new("/sys/fs/cgroup/unified")
        };
        let avail = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
        if !avail.split_whitespace().any(|c| c == "hugetlb") {
            // A v1 hierarchy holds hugetlb here: the v2 files cannot exist.
            eprintln!("skipped: no hugetlb controller in {}", mount.display());
            return Ok(());
        }
        let name = format!("berth-test-hugetlb-{}", std::process::id());
        let paths = CgroupPaths::create_v2_in(mount, Path::new(&format!("/{name}")))?;
        let mut res = hugepages(6 << 20)?;
        res.set_unified(Some(
            [("cgroup.max.descendants".to_string(), "3".to_string())].into(),
        ));
        let applied = paths.apply(&res);
        let dir = mount.join(&name);
        let huge = fs::read_to_string(dir.join("hugetlb.2MB.max"));
        let desc = fs::read_to_string(dir.join("cgroup.max.descendants"));
        let bad_key = {
            let mut r = LinuxResources::default();
            r.set_unified(Some([("../x".to_string(), "1".to_string())].into()));
            paths.apply(&r)
        };
        paths.remove()?;
        applied?;
        assert_eq!(huge?.trim(), (6 << 20).to_string());
        assert_eq!(desc?.trim(), "3");
        assert!(bad_key.is_err());
        Ok(())
    }
}
