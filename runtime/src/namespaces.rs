//! Namespaces: which to create, which to join (opened before fork, so a bad
//! path fails early and cleanly), and the uid/gid maps of a new user namespace.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use crate::error::{Error, Result};

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan {
            user_new: false,
            user_join: None,
            uid_map: String::new(),
            gid_map: String::new(),
            joins: Vec::new(),
            unshare: CloneFlags::empty(),
            cgroup_new: false,
            cgroup_join: None,
            pid: false,
        }
    }
}

/// The namespace work of one container init (or exec'd process).
#[derive(Debug)]
pub struct NsPlan {
    pub user_new: bool,
    pub user_join: Option<OwnedFd>,
    pub uid_map: String,
    pub gid_map: String,
    /// Joined by path, in this order (ipc, uts, net, pid, mnt).
    pub joins: Vec<(CloneFlags, OwnedFd)>,
    /// Created (user and cgroup excluded: they have their own steps).
    pub unshare: CloneFlags,
    pub cgroup_new: bool,
    pub cgroup_join: Option<OwnedFd>,
    /// The init must be forked once more (new or joined pid namespace).
    pub pid: bool,
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

fn open_ns(path: &Path) -> Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::io("opening namespace", path, e))
}

fn maps(list: &[LinuxIdMapping]) -> String {
    let mut s = String::new();
    for m in list {
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    s
}

impl NsPlan {
    pub fn from_spec(linux: &Linux) -> Result<Self> {
        let mut p = NsPlan::default();
        let order = [
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
        ];
        let nss = linux.namespaces().clone().unwrap_or_default();
        let mut seen = Vec::new();
        for ns in &nss {
            if seen.contains(&ns.typ()) {
                return Err(Error::InvalidSpec(format!(
                    "namespace {} listed twice",
                    ns.typ()
                )));
            }
            seen.push(ns.typ());
        }
        for ns in &nss {
            let path = ns.path().as_deref().filter(|p| !p.as_os_str().is_empty());
            match (ns.typ(), path) {
                (LinuxNamespaceType::User, Some(path)) => p.user_join = Some(open_ns(path)?),
                (LinuxNamespaceType::User, None) => p.user_new = true,
                (LinuxNamespaceType::Cgroup, Some(path)) => p.cgroup_join = Some(open_ns(path)?),
                (LinuxNamespaceType::Cgroup, None) => p.cgroup_new = true,
                (LinuxNamespaceType::Time, _) => {
                    return Err(Error::Unsupported("the time namespace".into()))
                }
                (t, None) => p.unshare |= flag(t),
                (_, Some(_)) => {}
            }
            if ns.typ() == LinuxNamespaceType::Pid {
                p.pid = true;
            }
        }
        for t in order {
            if let Some(ns) = nss.iter().find(|n| n.typ() == t) {
                if let Some(path) = ns.path().as_deref().filter(|p| !p.as_os_str().is_empty()) {
                    p.joins.push((flag(t), open_ns(path)?));
                }
            }
        }
        if p.user_new {
            let uids = linux.uid_mappings().clone().unwrap_or_default();
            let gids = linux.gid_mappings().clone().unwrap_or_default();
            if uids.is_empty() || gids.is_empty() {
                return Err(Error::InvalidSpec(
                    "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
                ));
            }
            p.uid_map = maps(&uids);
            p.gid_map = maps(&gids);
        } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            && p.user_join.is_none()
        {
            return Err(Error::InvalidSpec(
                "uidMappings given without a user namespace".into(),
            ));
        }
        Ok(p)
    }

    /// The namespaces of a running process, for exec.
    pub fn join_process(pid: i32) -> Result<Self> {
        let mut p = NsPlan::default();
        let same = |name: &str| {
            let a = std::fs::metadata(format!("/proc/self/ns/{name}"))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            let b = std::fs::metadata(format!("/proc/{pid}/ns/{name}"))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            matches!((a, b), (Ok(a), Ok(b)) if a == b)
        };
        if !same("user") {
            p.user_join = Some(open_ns(Path::new(&format!("/proc/{pid}/ns/user")))?);
        }
        for (name, f) in [
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("pid", CloneFlags::CLONE_NEWPID),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ] {
            if !same(name) {
                p.joins
                    .push((f, open_ns(Path::new(&format!("/proc/{pid}/ns/{name}")))?));
                if name == "pid" {
                    p.pid = true;
                }
            }
        }
        if !same("cgroup") {
            p.cgroup_join = Some(open_ns(Path::new(&format!("/proc/{pid}/ns/cgroup")))?);
        }
        Ok(p)
    }

    /// In the child: user namespace (asking the parent for maps via `ask_maps`),
    /// joins, then the new namespaces.
    pub fn enter(&self, ask_maps: &dyn Fn() -> Result<()>) -> Result<()> {
        if let Some(fd) = &self.user_join {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWUSER)
                .map_err(|e| Error::sys("joining the user namespace", e))?;
        }
        if self.user_new {
            unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(|e| Error::sys("creating the user namespace", e))?;
            ask_maps()?;
        }
        if self.user_new || self.user_join.is_some() {
            become_ns_root()?;
        }
        for (f, fd) in &self.joins {
            setns(fd.as_fd(), *f).map_err(|e| Error::sys(format!("joining namespace {f:?}"), e))?;
        }
        if !self.unshare.is_empty() {
            unshare(self.unshare)
                .map_err(|e| Error::sys(format!("creating namespaces {:?}", self.unshare), e))?;
        }
        Ok(())
    }

    /// In the init, once it is in its cgroup.
    pub fn enter_cgroup(&self) -> Result<()> {
        if let Some(fd) = &self.cgroup_join {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| Error::sys("joining the cgroup namespace", e))?;
        }
        if self.cgroup_new {
            unshare(CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| Error::sys("creating the cgroup namespace", e))?;
        }
        Ok(())
    }
}

/// Takes uid and gid 0 of the user namespace just entered, so that the files and
/// mount points the init creates belong to a mapped id (the host's root is not mapped
/// there: creating anything as it fails with EOVERFLOW).
fn become_ns_root() -> Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    let g = Gid::from_raw(0);
    setresgid(g, g, g)
        .map_err(|e| Error::sys("taking gid 0 in the user namespace (is gid 0 mapped?)", e))?;
    let u = Uid::from_raw(0);
    setresuid(u, u, u)
        .map_err(|e| Error::sys("taking uid 0 in the user namespace (is uid 0 mapped?)", e))
}

/// Writes the maps of a child that created a user namespace (from the parent).
pub fn write_maps(pid: i32, p: &NsPlan) -> Result<()> {
    let uid = format!("/proc/{pid}/uid_map");
    std::fs::write(&uid, &p.uid_map).map_err(|e| Error::io("writing", uid, e))?;
    let gid = format!("/proc/{pid}/gid_map");
    std::fs::write(&gid, &p.gid_map).map_err(|e| Error::io("writing", gid, e))
}
