//! The pod's part of a CRI container's spec, patched into what the engine's spec
//! builder made: the pod's namespaces joined by path, its hostname/resolv.conf/hosts
//! files and shared /dev/shm bound, CRI mounts and devices, security context extras,
//! the pod's cgroup parent, annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine::container_spec::oci_mount;
use berth_engine::EngineError;
use k8s_cri::v1 as cri;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType, Mount,
    Spec,
};

use crate::sandbox::SandboxContext;
use crate::CriError;

/// What the pod and the CRI config change in the engine's spec.
pub(super) struct PodPatch {
    netns: Option<PathBuf>,
    ipc_ns: Option<PathBuf>,
    uts_ns: Option<PathBuf>,
    /// `None`: the host's PID namespace; `Some(None)`: the container's own;
    /// `Some(Some(pin))`: the pod's shared one.
    pid: Option<Option<PathBuf>>,
    /// (file, destination) binds of the pod's files.
    pod_files: Vec<(PathBuf, &'static str)>,
    /// The pod's shared /dev/shm, bound over the container's own.
    shm: Option<PathBuf>,
    mounts: Vec<Mount>,
    /// (OCI `linux.devices` entry, device cgroup rule) per CRI device.
    devices: Vec<(LinuxDevice, LinuxDeviceCgroup)>,
    cgroup_parent: String,
    /// OCI `linux.rootfsPropagation` the CRI mounts need, if any.
    rootfs_propagation: Option<&'static str>,
    no_new_privs: bool,
    supplemental_groups: Vec<i64>,
    masked_paths: Vec<String>,
    readonly_paths: Vec<String>,
    privileged: bool,
    annotations: BTreeMap<String, String>,
}

impl PodPatch {
    /// `target_pid_ns`: for PID namespace mode TARGET, the namespace of the target
    /// container (see [`PodPatch::pid_target`]).
    pub(super) fn new(
        sandbox: &SandboxContext,
        config: &cri::ContainerConfig,
        target_pid_ns: Option<PathBuf>,
    ) -> Result<PodPatch, CriError> {
        let sc = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        let pod_ns = sandbox
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let ns = sc.namespace_options.clone().unwrap_or(pod_ns);
        let mut mounts = Vec::new();
        for m in &config.mounts {
            mounts.push(cri_mount(m)?);
        }
        let has =
            |p: cri::MountPropagation| config.mounts.iter().any(|m| m.propagation == p as i32);
        // A bind's propagation works only if the root it sits in lets it: a
        // bidirectional mount needs a shared root (mounts made inside reach the host),
        // host-to-container a slave one at least (containerd does the same).
        let rootfs_propagation = if has(cri::MountPropagation::PropagationBidirectional) {
            Some("rshared")
        } else if has(cri::MountPropagation::PropagationHostToContainer) {
            Some("rslave")
        } else {
            None
        };
        let devices = config
            .devices
            .iter()
            .map(cri_device)
            .collect::<Result<Vec<_>, _>>()?;
        let user_dests: Vec<&str> = config
            .mounts
            .iter()
            .map(|m| m.container_path.as_str())
            .collect();
        let pod_files = [
            (&sandbox.hostname_file, "/etc/hostname"),
            (&sandbox.resolv_conf, "/etc/resolv.conf"),
            (&sandbox.hosts_file, "/etc/hosts"),
        ]
        .into_iter()
        .filter(|(file, dest)| file.exists() && !user_dests.contains(dest))
        .map(|(file, dest)| (file.clone(), dest))
        .collect();
        let shm = sandbox
            .shm
            .clone()
            .filter(|_| !user_dests.contains(&"/dev/shm"));
        let mut annotations: BTreeMap<String, String> =
            config.annotations.clone().into_iter().collect();
        annotations.insert(
            "io.kubernetes.cri.container-type".into(),
            "container".into(),
        );
        annotations.insert("io.kubernetes.cri.sandbox-id".into(), sandbox.id.clone());
        annotations.extend(sandbox_resource_annotations(&sandbox.config));
        Ok(PodPatch {
            netns: sandbox.netns.clone(),
            ipc_ns: sandbox.ipc_ns.clone(),
            uts_ns: sandbox.uts_ns.clone(),
            pid: if ns.pid == cri::NamespaceMode::Node as i32 {
                None
            } else if ns.pid == cri::NamespaceMode::Pod as i32 {
                // A pod without a shared PID namespace (its own pid mode is not POD)
                // leaves the container its own.
                Some(sandbox.pid_ns.clone())
            } else if ns.pid == cri::NamespaceMode::Target as i32 {
                match target_pid_ns {
                    Some(path) => Some(Some(path)),
                    None => {
                        return Err(CriError::InvalidArgument(format!(
                            "PID namespace mode TARGET needs the target container's namespace (target_id {:?})",
                            ns.target_id
                        )))
                    }
                }
            } else {
                Some(None)
            },
            pod_files,
            shm,
            mounts,
            devices,
            cgroup_parent: sandbox
                .config
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone())
                .unwrap_or_default(),
            rootfs_propagation,
            no_new_privs: sc.no_new_privs,
            supplemental_groups: sc.supplemental_groups.clone(),
            masked_paths: sc.masked_paths.clone(),
            readonly_paths: sc.readonly_paths.clone(),
            privileged: sc.privileged,
            annotations,
        })
    }

    /// The pod's settings as one step on the engine's spec.
    pub(super) fn apply(self, id: &str, spec: &mut Spec) -> Result<(), EngineError> {
        let ns = |typ: LinuxNamespaceType, path: Option<&PathBuf>| {
            let mut n = LinuxNamespace::default();
            n.set_typ(typ);
            n.set_path(path.cloned());
            n
        };
        let mut namespaces = vec![ns(LinuxNamespaceType::Mount, None)];
        match &self.pid {
            None => {}
            Some(pin) => namespaces.push(ns(LinuxNamespaceType::Pid, pin.as_ref())),
        }
        for (typ, pin) in [
            (LinuxNamespaceType::Network, &self.netns),
            (LinuxNamespaceType::Ipc, &self.ipc_ns),
            (LinuxNamespaceType::Uts, &self.uts_ns),
        ] {
            // No pin: the host's namespace (host network / host IPC).
            if let Some(path) = pin {
                namespaces.push(ns(typ, Some(path)));
            }
        }
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            namespaces.push(ns(LinuxNamespaceType::Cgroup, None));
        }
        // The pod's UTS namespace already carries its hostname.
        spec.set_hostname(None);
        spec.set_domainname(None);
        let linux = spec.linux_mut().get_or_insert_with(Default::default);
        linux.set_namespaces(Some(namespaces));
        if let Some(p) = self.rootfs_propagation {
            linux.set_rootfs_propagation(Some(p.into()));
        }
        if !self.cgroup_parent.is_empty() {
            // Absolute: a relative path would land under the shim's own cgroup.
            linux.set_cgroups_path(Some(
                format!("/{}/{id}", self.cgroup_parent.trim_matches('/')).into(),
            ));
        }
        if !self.privileged {
            if !self.masked_paths.is_empty() {
                linux.set_masked_paths(Some(self.masked_paths));
            }
            if !self.readonly_paths.is_empty() {
                linux.set_readonly_paths(Some(self.readonly_paths));
            }
        }
        if !self.devices.is_empty() {
            let mut devs = linux.devices().clone().unwrap_or_default();
            let resources = linux.resources_mut().get_or_insert_with(Default::default);
            let mut rules = resources.devices().clone().unwrap_or_default();
            for (dev, rule) in self.devices {
                devs.retain(|d| d.path() != dev.path());
                devs.push(dev);
                rules.push(rule);
            }
            resources.set_devices(Some(rules));
            linux.set_devices(Some(devs));
        }
        let process = spec.process_mut().get_or_insert_with(Default::default);
        if self.no_new_privs {
            process.set_no_new_privileges(Some(true));
        }
        if !self.supplemental_groups.is_empty() {
            let user = process.user_mut();
            let mut gids = user.additional_gids().clone().unwrap_or_default();
            for g in &self.supplemental_groups {
                let g = u32::try_from(*g).map_err(|_| {
                    EngineError::Invalid(format!("supplemental group {g} is out of range"))
                })?;
                if !gids.contains(&g) {
                    gids.push(g);
                }
            }
            user.set_additional_gids(Some(gids));
        }
        let bind = |dest: &str, source: &Path, options: &[&str]| {
            oci_mount(
                dest,
                "bind",
                &source.to_string_lossy(),
                options.iter().map(|o| o.to_string()).collect(),
            )
        };
        let mut extra: Vec<Mount> = self
            .pod_files
            .iter()
            .map(|(file, dest)| bind(dest, file, &["rbind", "rprivate", "rw"]))
            .collect();
        if let Some(shm) = &self.shm {
            extra.push(bind(
                "/dev/shm",
                shm,
                &["rbind", "rprivate", "nosuid", "nodev", "noexec", "rw"],
            ));
        }
        extra.extend(self.mounts);
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.retain(|m| !extra.iter().any(|u| u.destination() == m.destination()));
        mounts.extend(extra);
        spec.set_mounts(Some(mounts));
        spec.set_annotations(Some(self.annotations.into_iter().collect()));
        Ok(())
    }
}

/// The pod's resources (kubelet ≥ 1.23 sends the sum of its containers' in
/// `linux.resources`) as the annotations containerd puts on the pod's sandbox
/// container for runtimes and NRI plugins to size the pod by. berth has no sandbox
/// container, so every container of the pod carries them.
pub(super) fn sandbox_resource_annotations(
    config: &cri::PodSandboxConfig,
) -> Vec<(String, String)> {
    let Some(r) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) else {
        return Vec::new();
    };
    [
        ("io.kubernetes.cri.sandbox-cpu-period", r.cpu_period),
        ("io.kubernetes.cri.sandbox-cpu-quota", r.cpu_quota),
        ("io.kubernetes.cri.sandbox-cpu-shares", r.cpu_shares),
        ("io.kubernetes.cri.sandbox-memory", r.memory_limit_in_bytes),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A host device node made in the container at `container_path`, and allowed in its
/// device cgroup with the CRI permissions (`rwm` letters).
fn cri_device(d: &cri::Device) -> Result<(LinuxDevice, LinuxDeviceCgroup), CriError> {
    use nix::sys::stat::{major, minor, stat, SFlag};
    if !d.container_path.starts_with('/') || d.container_path.contains("/../") {
        return Err(CriError::InvalidArgument(format!(
            "device container_path {:?} must be absolute",
            d.container_path
        )));
    }
    let access = if d.permissions.is_empty() {
        "rwm"
    } else {
        d.permissions.as_str()
    };
    if !access.chars().all(|c| "rwm".contains(c)) {
        return Err(CriError::InvalidArgument(format!(
            "device permissions {:?}: only r, w and m",
            d.permissions
        )));
    }
    let st = stat(d.host_path.as_str()).map_err(|e| {
        CriError::InvalidArgument(format!("device host_path {:?}: {e}", d.host_path))
    })?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let kind = if kind == SFlag::S_IFCHR {
        LinuxDeviceType::C
    } else if kind == SFlag::S_IFBLK {
        LinuxDeviceType::B
    } else {
        return Err(CriError::InvalidArgument(format!(
            "device host_path {:?} is not a character or block device",
            d.host_path
        )));
    };
    let (maj, min) = (major(st.st_rdev) as i64, minor(st.st_rdev) as i64);
    let mut device = LinuxDevice::default();
    device.set_path(d.container_path.clone().into());
    device.set_typ(kind);
    device.set_major(maj);
    device.set_minor(min);
    device.set_file_mode(Some(st.st_mode & 0o777));
    device.set_uid(Some(0));
    device.set_gid(Some(0));
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(kind));
    rule.set_major(Some(maj));
    rule.set_minor(Some(min));
    rule.set_access(Some(access.to_string()));
    Ok((device, rule))
}

impl PodPatch {
    /// The target container of PID namespace mode TARGET (kubectl debug's ephemeral
    /// containers), if the config asks for it: its id, which must be a running
    /// container of the same pod.
    pub(super) fn pid_target(config: &cri::ContainerConfig) -> Option<String> {
        let ns = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())?;
        (ns.pid == cri::NamespaceMode::Target as i32).then_some(ns.target_id)
    }
}

/// A CRI mount as an OCI bind mount; a missing host path is created as a directory
/// (as containerd does).
fn cri_mount(m: &cri::Mount) -> Result<Mount, CriError> {
    if !m.container_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount container_path {:?} must be absolute",
            m.container_path
        )));
    }
    if !m.host_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount host_path {:?} must be absolute",
            m.host_path
        )));
    }
    let host = Path::new(&m.host_path);
    if std::fs::symlink_metadata(host).is_err() {
        std::fs::create_dir_all(host).map_err(|e| {
            CriError::Internal(format!("creating the mount source {}: {e}", host.display()))
        })?;
    }
    let propagation = match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    let mode = if m.readonly { "ro" } else { "rw" };
    Ok(oci_mount(
        &m.container_path,
        "bind",
        &m.host_path,
        vec!["rbind".into(), propagation.into(), mode.into()],
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    const GOLDEN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/containers/testdata/pod_patch.json"
    );
    const SPECS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/src/container_spec/testdata/golden_specs.json"
    );

    fn patch(pid: Option<Option<PathBuf>>, privileged: bool) -> Result<PodPatch, CriError> {
        let mount = |dest: &str, propagation: cri::MountPropagation, readonly| cri::Mount {
            container_path: dest.into(),
            host_path: "/tmp".into(),
            propagation: propagation as i32,
            readonly,
            ..Default::default()
        };
        Ok(PodPatch {
            netns: Some("/run/netns/pod".into()),
            ipc_ns: Some("/run/berth/ns/ipc".into()),
            uts_ns: None,
            pid,
            pod_files: vec![
                ("/pod/hostname".into(), "/etc/hostname"),
                ("/pod/resolv.conf".into(), "/etc/resolv.conf"),
            ],
            shm: Some("/pod/shm".into()),
            mounts: vec![
                cri_mount(&mount(
                    "/data",
                    cri::MountPropagation::PropagationPrivate,
                    true,
                ))?,
                cri_mount(&mount(
                    "/dev/shm",
                    cri::MountPropagation::PropagationHostToContainer,
                    false,
                ))?,
            ],
            devices: vec![cri_device(&cri::Device {
                container_path: "/dev/xnull".into(),
                host_path: "/dev/null".into(),
                permissions: "rw".into(),
            })?],
            cgroup_parent: "kubepods/burstable/pod1".into(),
            rootfs_propagation: Some("rslave"),
            no_new_privs: true,
            supplemental_groups: vec![0, 1000],
            masked_paths: vec!["/proc/kcore".into()],
            readonly_paths: vec!["/proc/sys".into()],
            privileged,
            annotations: [("a".to_string(), "b".to_string())].into(),
        })
    }

    /// The pod's settings on the recorded spec of a plain container give the recorded
    /// result (`BERTH_UPDATE_GOLDEN=1` rewrites it).
    #[test]
    fn the_pod_patch_gives_the_recorded_spec() -> Result<(), Box<dyn std::error::Error>> {
        let specs: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(SPECS)?)?;
        let mut now = BTreeMap::new();
        for (name, pid, privileged) in [
            (
                "shared_pid",
                Some(Some(PathBuf::from("/run/berth/ns/pid"))),
                false,
            ),
            ("own_pid", Some(None), false),
            ("host_pid_privileged", None, true),
        ] {
            let mut spec: Spec = serde_json::from_value(specs["minimal"].clone())?;
            patch(pid, privileged)?.apply("c1", &mut spec)?;
            now.insert(name.to_string(), serde_json::to_value(spec)?);
        }
        if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(Path::new(GOLDEN).parent().unwrap_or(Path::new(".")))?;
            std::fs::write(GOLDEN, serde_json::to_string_pretty(&now)? + "\n")?;
            return Ok(());
        }
        let recorded: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(GOLDEN)?)?;
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            recorded.keys().collect::<Vec<_>>()
        );
        // Compared as the runtime reads them: capability sets have no order, and a
        // device rule's `"minor": null` is the same as none (see container_spec's
        // golden test).
        for (name, want) in &recorded {
            let want: Spec = serde_json::from_value(want.clone())?;
            let got: Spec = serde_json::from_value(now[name].clone())?;
            assert_eq!(got, want, "{name}");
        }
        Ok(())
    }
}
