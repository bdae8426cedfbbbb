//! Turning a bundle's config.json into the plan the container init follows.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Spec};

use crate::cgroups::CgroupPaths;
use crate::error::{Error, Result};
use crate::namespaces::NsPlan;
use crate::process::ProcPlan;
use crate::rootfs::{dev, mounts, RootfsPlan};
use crate::seccomp;

/// Everything the init does, computed before fork.
#[derive(Debug)]
pub struct InitPlan {
    pub ns: NsPlan,
    pub rootfs: RootfsPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctls: Vec<(PathBuf, String)>,
    pub process: ProcPlan,
    pub fifo: PathBuf,
    pub console: Option<std::os::fd::RawFd>,
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
    pub preserve_fds: u32,
    /// v1 `tasks` files the init writes "0" into (see CgroupPaths::open_self_join).
    pub cgroup_fds: Vec<std::os::fd::RawFd>,
    pub runtime_hooks: bool,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
}

/// Loads `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|e| Error::Spec {
        path,
        msg: e.to_string(),
    })
}

/// The rootfs directory of a bundle, absolute and existing.
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
    let p = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    std::fs::canonicalize(&p).map_err(|e| Error::io("resolving the rootfs", p, e))
}

/// Hooks of one kind (prestart counts as createRuntime's older sibling).
#[allow(deprecated)]
pub fn hooks(spec: &Spec, kind: &str) -> Vec<Hook> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    let v = match kind {
        "prestart" => h.prestart(),
        "createRuntime" => h.create_runtime(),
        "createContainer" => h.create_container(),
        "startContainer" => h.start_container(),
        "poststart" => h.poststart(),
        "poststop" => h.poststop(),
        _ => &None,
    };
    v.clone().unwrap_or_default()
}

pub struct PlanInput<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub cgroup: CgroupPaths,
    pub fifo: PathBuf,
    pub console: Option<std::os::fd::RawFd>,
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub cgroup_fds: Vec<std::os::fd::RawFd>,
}

pub fn build(input: PlanInput<'_>) -> Result<InitPlan> {
    let spec = input.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("linux section is missing".into()))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
    let ns = NsPlan::from_spec(linux)?;
    let userns = ns.user_new || ns.user_join.is_some();
    if !ns.unshare.contains(nix::sched::CloneFlags::CLONE_NEWNS)
        && !ns
            .joins
            .iter()
            .any(|(f, _)| *f == nix::sched::CloneFlags::CLONE_NEWNS)
    {
        return Err(Error::InvalidSpec("a mount namespace is required".into()));
    }
    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => Some(mounts::propagation_flag(p).ok_or_else(|| {
            Error::InvalidSpec(format!("rootfsPropagation {p:?} is not a propagation mode"))
        })?),
    };
    let mut devices = Vec::new();
    for d in linux.devices().iter().flatten() {
        devices.push(dev::from_spec(d)?);
    }
    let rootfs = RootfsPlan {
        rootfs: input.rootfs,
        mounts: spec.mounts().iter().flatten().map(mounts::parse).collect(),
        devices,
        masked: linux
            .masked_paths()
            .iter()
            .flatten()
            .map(PathBuf::from)
            .collect(),
        readonly: linux
            .readonly_paths()
            .iter()
            .flatten()
            .map(PathBuf::from)
            .collect(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        propagation,
        no_pivot: input.no_pivot,
        userns,
        cgroup: input.cgroup,
        cgroupns: ns.cgroup_new || ns.cgroup_join.is_some(),
    };
    let mut sysctls = Vec::new();
    for (k, v) in linux.sysctl().iter().flatten() {
        if k.contains('/') || k.contains("..") || k.is_empty() {
            return Err(Error::InvalidSpec(format!(
                "sysctl {k:?} is not a sysctl name"
            )));
        }
        sysctls.push((Path::new("/proc/sys").join(k.replace('.', "/")), v.clone()));
    }
    let filter = match linux.seccomp() {
        Some(s) => Some(seccomp::build(s)?),
        None => None,
    };
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        tracing::warn!("linux.mountLabel ignored: this kernel has no SELinux");
    }
    let process = ProcPlan::from_spec(process, filter)?;
    if process.terminal && input.console.is_none() {
        return Err(Error::InvalidSpec(
            "process.terminal is true: pass --console-socket (or set terminal to false)".into(),
        ));
    }
    let uts = ns.unshare.contains(nix::sched::CloneFlags::CLONE_NEWUTS);
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
    if (hostname.is_some() || domainname.is_some()) && !uts {
        let joined = ns
            .joins
            .iter()
            .any(|(f, _)| *f == nix::sched::CloneFlags::CLONE_NEWUTS);
        if !joined {
            return Err(Error::InvalidSpec(
                "hostname needs a new uts namespace".into(),
            ));
        }
    }
    Ok(InitPlan {
        runtime_hooks: !hooks(spec, "prestart").is_empty()
            || !hooks(spec, "createRuntime").is_empty(),
        create_container_hooks: hooks(spec, "createContainer"),
        start_container_hooks: hooks(spec, "startContainer"),
        ns,
        rootfs,
        hostname: if uts { hostname } else { None },
        domainname: if uts { domainname } else { None },
        sysctls,
        process,
        fifo: input.fifo,
        console: input.console,
        stdio: input.stdio,
        preserve_fds: input.preserve_fds,
        cgroup_fds: input.cgroup_fds,
    })
}
