//! Spec mounts: option parsing and mounting one entry below the new root.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::paths::secure_join;
use crate::error::{Error, Result};

/// A spec mount turned into mount(2) arguments.
#[derive(Debug, Clone)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub typ: String,
    pub source: Option<PathBuf>,
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: String,
    pub bind: bool,
}

/// Splits OCI mount options into flags, propagation and fs data.
pub fn parse(m: &Mount) -> MountPlan {
    let mut flags = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    let mut bind = false;
    for o in m.options().iter().flatten() {
        let (clear, f) = match o.as_str() {
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "dev" => (true, MsFlags::MS_NODEV),
            "nodev" => (false, MsFlags::MS_NODEV),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "remount" => (false, MsFlags::MS_REMOUNT),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "atime" => (true, MsFlags::MS_NOATIME),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "bind" => {
                bind = true;
                (false, MsFlags::MS_BIND)
            }
            "rbind" => {
                bind = true;
                (false, MsFlags::MS_BIND | MsFlags::MS_REC)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                propagation.push(propagation_flag(o).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            "tmpcopyup" | "idmap" | "ridmap" | "nosymfollow" | "defaults" => continue,
            other => {
                data.push(other);
                continue;
            }
        };
        if clear {
            flags.remove(f);
        } else {
            flags.insert(f);
        }
    }
    let typ = m.typ().clone().unwrap_or_default();
    if typ == "bind" {
        bind = true;
        flags.insert(MsFlags::MS_BIND);
    }
    MountPlan {
        destination: m.destination().clone(),
        typ,
        source: m.source().clone(),
        flags,
        propagation,
        data: data.join(","),
        bind,
    }
}

/// The mount flag for a propagation name (`rshared`, `private`, …).
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn fail(m: &MountPlan, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Init(format!(
        "mount {} ({}) on {}: {what}: {e}",
        m.source.as_deref().unwrap_or(Path::new("none")).display(),
        if m.typ.is_empty() { "bind" } else { &m.typ },
        m.destination.display()
    ))
}

/// Creates `dest` as a directory, or as an empty file when `file` is true.
pub fn create_target(dest: &Path, file: bool) -> std::io::Result<()> {
    if file {
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p)?;
        }
        match fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(dest)
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        fs::create_dir_all(dest)
    }
}

/// The flags a remount must keep because the kernel locks them (in user namespaces).
pub fn locked_flags(path: &Path) -> MsFlags {
    let mut out = MsFlags::empty();
    if let Ok(s) = statvfs(path) {
        let f = s.flags();
        if f.contains(FsFlags::ST_NOSUID) {
            out |= MsFlags::MS_NOSUID;
        }
        if f.contains(FsFlags::ST_NODEV) {
            out |= MsFlags::MS_NODEV;
        }
        if f.contains(FsFlags::ST_NOEXEC) {
            out |= MsFlags::MS_NOEXEC;
        }
        if f.contains(FsFlags::ST_NOATIME) {
            out |= MsFlags::MS_NOATIME;
        }
        if f.contains(FsFlags::ST_NODIRATIME) {
            out |= MsFlags::MS_NODIRATIME;
        }
        if f.contains(FsFlags::ST_RELATIME) {
            out |= MsFlags::MS_RELATIME;
        }
    }
    out
}

/// Remounts the bind mount at `path` with `flags` (ro, nosuid…), keeping locked flags.
pub fn remount_bind(path: &Path, flags: MsFlags) -> nix::Result<()> {
    let all = flags | locked_flags(path) | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    mount(None::<&str>, path, None::<&str>, all, None::<&str>)
}

/// Mounts one spec entry below `rootfs`. `cgroup` handles type `cgroup`/`cgroup2` entries.
pub fn mount_one(
    rootfs: &Path,
    m: &MountPlan,
    cgroup: &dyn Fn(&Path, &MountPlan) -> Result<()>,
) -> Result<()> {
    let dest = secure_join(rootfs, &m.destination);
    if m.typ == "cgroup" || m.typ == "cgroup2" {
        fs::create_dir_all(&dest).map_err(|e| fail(m, "creating the mountpoint", e))?;
        return cgroup(&dest, m);
    }
    if m.bind {
        let src = m
            .source
            .as_deref()
            .ok_or_else(|| fail(m, "bind mount", "no source"))?;
        let meta = fs::metadata(src).map_err(|e| fail(m, "source", e))?;
        create_target(&dest, !meta.is_dir()).map_err(|e| fail(m, "creating the mountpoint", e))?;
        let bind_flags = m.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        mount(Some(src), &dest, None::<&str>, bind_flags, None::<&str>)
            .map_err(|e| fail(m, "bind", e))?;
        let extra = m.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(&dest, extra).map_err(|e| fail(m, "remounting with options", e))?;
        }
    } else {
        fs::create_dir_all(&dest).map_err(|e| fail(m, "creating the mountpoint", e))?;
        let src = m.source.as_deref().unwrap_or(Path::new(m.typ.as_str()));
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        let res = mount(Some(src), &dest, Some(m.typ.as_str()), m.flags, data);
        match res {
            Ok(()) => {}
            // sysfs cannot be mounted in a user namespace that does not own the
            // network namespace: bind the host's /sys instead, as runc does.
            Err(nix::errno::Errno::EPERM) if m.typ == "sysfs" => {
                mount(
                    Some("/sys"),
                    &dest,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| fail(m, "bind of /sys", e))?;
                remount_bind(&dest, m.flags & !MsFlags::MS_REMOUNT)
                    .map_err(|e| fail(m, "remount of /sys", e))?;
            }
            Err(e) => return Err(fail(m, "mount", e)),
        }
    }
    for p in &m.propagation {
        mount(None::<&str>, &dest, None::<&str>, *p, None::<&str>)
            .map_err(|e| fail(m, "propagation", e))?;
    }
    Ok(())
}
