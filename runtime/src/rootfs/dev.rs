//! /dev inside the container: default and spec devices, the std symlinks, /dev/ptmx.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::create_target;
use super::paths::secure_join;
use crate::error::{Error, Result};

/// One device node to create.
#[derive(Debug, Clone)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets.
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|&(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// A spec device.
pub fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::InvalidSpec(format!(
                "device {}: type 'a' is only valid in cgroup rules",
                d.path().display()
            )))
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::InvalidSpec(format!(
            "device {} is not under /dev",
            d.path().display()
        )));
    }
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major().max(0) as u64,
        minor: d.minor().max(0) as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

fn err(d: &Device, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Init(format!("device {}: {what}: {e}", d.path.display()))
}

/// Creates `devs` under `rootfs`: mknod, or a bind mount of the host node when
/// mknod is not allowed (user namespaces).
pub fn create(rootfs: &Path, devs: &[Device], bind: bool) -> Result<()> {
    for d in devs {
        let dest = secure_join(rootfs, &d.path);
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(|e| err(d, "creating the directory", e))?;
        }
        if bind {
            create_target(&dest, true).map_err(|e| err(d, "creating the mountpoint", e))?;
            mount(
                Some(&d.path),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err(d, "bind mount", e))?;
            continue;
        }
        let _ = fs::remove_file(&dest);
        let dev = makedev(d.major, d.minor);
        mknod(&dest, d.kind, Mode::from_bits_truncate(d.mode), dev)
            .map_err(|e| err(d, "mknod", e))?;
        // mknod applies the umask: set the mode exactly.
        nix::sys::stat::fchmodat(
            None,
            &dest,
            Mode::from_bits_truncate(d.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| err(d, "chmod", e))?;
        if d.uid != 0 || d.gid != 0 {
            chown(
                &dest,
                Some(Uid::from_raw(d.uid)),
                Some(Gid::from_raw(d.gid)),
            )
            .map_err(|e| err(d, "chown", e))?;
        }
    }
    Ok(())
}

/// /dev/fd, stdin, stdout, stderr, core and /dev/ptmx → pts/ptmx.
pub fn symlinks(rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "dev/core"));
    }
    for (target, link) in links {
        let path = rootfs.join(link);
        match symlink(target, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("creating the symlink", path, e)),
        }
    }
    let ptmx = rootfs.join("dev/ptmx");
    if rootfs.join("dev/pts").is_dir() {
        let _ = fs::remove_file(&ptmx);
        symlink("pts/ptmx", &ptmx).map_err(|e| Error::io("creating the symlink", ptmx, e))?;
    }
    Ok(())
}
