//! The container's root filesystem: spec mounts, /dev, pivot_root, masked and
//! read-only paths, read-only root. Runs in the container's mount namespace.

pub mod dev;
pub mod mounts;
pub mod paths;

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, pivot_root};

use crate::cgroups::CgroupPaths;
use crate::error::{Error, Result};
use mounts::MountPlan;

/// Everything the init needs to build the root filesystem, computed before fork.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<dev::Device>,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    pub propagation: Option<MsFlags>,
    pub no_pivot: bool,
    pub userns: bool,
    pub cgroup: CgroupPaths,
    pub cgroupns: bool,
}

fn sys(step: &str, path: &Path, e: nix::errno::Errno) -> Error {
    Error::sys(format!("{step} {}", path.display()), e)
}

/// Mounts everything below the rootfs (before pivot_root).
pub fn prepare(p: &RootfsPlan) -> Result<()> {
    // By default our mounts must not propagate back to the host: everything becomes a
    // slave. A shared rootfsPropagation (bidirectional binds) keeps the copies of the
    // host's shared mounts in their peer groups, so binds of them are peers of the
    // host's; then the mount holding the rootfs is made private, so what we mount
    // under the rootfs stays ours (runc does the same).
    let root_prop = match p.propagation {
        Some(f) => f | MsFlags::MS_REC,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, root_prop, None::<&str>)
        .map_err(|e| sys("setting propagation of", Path::new("/"), e))?;
    if root_prop.contains(MsFlags::MS_SHARED) {
        let parent = mount_point_of(&p.rootfs)?;
        mount(
            None::<&str>,
            &parent,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| sys("making private", &parent, e))?;
    }
    mount(
        Some(&p.rootfs),
        &p.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys("bind mounting the rootfs", &p.rootfs, e))?;
    let cgroup_mount = |dest: &Path, m: &MountPlan| mount_cgroup(p, dest, m);
    let mut dev_from_host = false;
    for m in &p.mounts {
        mounts::mount_one(&p.rootfs, m, &cgroup_mount)?;
        if m.destination == Path::new("/dev") && m.bind {
            dev_from_host = true;
        }
    }
    if !dev_from_host {
        let mut devs = dev::defaults();
        devs.extend(p.devices.iter().cloned());
        dev::create(&p.rootfs, &devs, p.userns)?;
        dev::symlinks(&p.rootfs)?;
    }
    Ok(())
}

/// The mount point of the mount `path` lives on: the longest mount point in
/// /proc/self/mountinfo that contains it.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let path = fs::canonicalize(path).map_err(|e| Error::io("resolving", path, e))?;
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading", Path::new("/proc/self/mountinfo"), e))?;
    let best = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.components().count());
    Ok(best.unwrap_or_else(|| PathBuf::from("/")))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\' && octal {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// cgroup mounts: on a v1 host a tmpfs with the container's controller directories
/// bound in; on v2 a cgroup2 mount (in a cgroup namespace) or a bind of the
/// container's directory.
fn mount_cgroup(p: &RootfsPlan, dest: &Path, m: &MountPlan) -> Result<()> {
    let keep = m.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let ro = m.flags & MsFlags::MS_RDONLY;
    if let Some(dir) = &p.cgroup.unified {
        if p.cgroupns {
            return mount(
                Some("cgroup2"),
                dest,
                Some("cgroup2"),
                keep | ro,
                None::<&str>,
            )
            .map_err(|e| sys("mounting cgroup2 on", dest, e));
        }
        mount(
            Some(dir),
            dest,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys("binding", dir, e))?;
        return mounts::remount_bind(dest, keep | ro).map_err(|e| sys("remounting", dest, e));
    }
    if m.typ == "cgroup2" {
        return mount(
            Some("cgroup2"),
            dest,
            Some("cgroup2"),
            keep | ro,
            None::<&str>,
        )
        .map_err(|e| sys("mounting cgroup2 on", dest, e));
    }
    mount(Some("tmpfs"), dest, Some("tmpfs"), keep, Some("mode=755"))
        .map_err(|e| sys("mounting a tmpfs on", dest, e))?;
    for (ctrls, dir) in &p.cgroup.v1 {
        let sub = dest.join(ctrls);
        fs::create_dir_all(&sub).map_err(|e| Error::io("creating", &sub, e))?;
        mount(
            Some(dir),
            &sub,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys("binding", dir, e))?;
        mounts::remount_bind(&sub, keep | ro).map_err(|e| sys("remounting", &sub, e))?;
        if ctrls.contains(',') {
            for c in ctrls.split(',') {
                let _ = std::os::unix::fs::symlink(ctrls, dest.join(c));
            }
        }
    }
    // As runc does, the tmpfs itself stays writable; the hierarchies in it are
    // read-only when the mount asks for it.
    Ok(())
}

/// Makes the rootfs the process's `/` (pivot_root, or MS_MOVE + chroot on initramfs).
pub fn pivot(p: &RootfsPlan) -> Result<()> {
    chdir(&p.rootfs).map_err(|e| sys("chdir", &p.rootfs, e))?;
    let pivoted = if p.no_pivot {
        false
    } else {
        match pivot_root(".", ".") {
            Ok(()) => true,
            Err(nix::errno::Errno::EINVAL) => false, // rootfs on initramfs
            Err(e) => return Err(sys("pivot_root to", &p.rootfs, e)),
        }
    };
    if pivoted {
        // The old root is now stacked under "."; detach it.
        umount2(".", MntFlags::MNT_DETACH)
            .map_err(|e| sys("unmounting the old root", Path::new("/"), e))?;
    } else {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| sys("moving the rootfs onto /", &p.rootfs, e))?;
        chroot(".").map_err(|e| sys("chroot", &p.rootfs, e))?;
    }
    chdir("/").map_err(|e| sys("chdir", Path::new("/"), e))
}

/// After pivot: propagation of `/`, masked and read-only paths, read-only root.
pub fn finish(p: &RootfsPlan) -> Result<()> {
    if let Some(f) = p.propagation {
        mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
            .map_err(|e| sys("setting propagation of", Path::new("/"), e))?;
    }
    for path in &p.readonly {
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| sys("binding read-only path", path, e))?;
        mounts::remount_bind(path, MsFlags::MS_RDONLY | MsFlags::MS_REC)
            .map_err(|e| sys("remounting read-only", path, e))?;
    }
    for path in &p.masked {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let res = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        res.map_err(|e| sys("masking", path, e))?;
    }
    if p.readonly_root {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY)
            .map_err(|e| sys("remounting read-only", Path::new("/"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mountinfo("/a\\040b\\134c"),
            PathBuf::from("/a b\\c")
        );
        assert_eq!(unescape_mountinfo("/plain\\9"), PathBuf::from("/plain\\9"));
    }

    #[test]
    fn the_mount_point_holding_a_path_is_found() -> Result<()> {
        // /proc is a mount point on any Linux host; /proc/self/.. is in it.
        assert_eq!(
            mount_point_of(Path::new("/proc/1"))?,
            PathBuf::from("/proc")
        );
        Ok(())
    }
}
