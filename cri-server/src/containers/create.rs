//! `CreateContainer`: the CRI config as berth's container config (process merge with
//! the image, user lookup, capabilities, resources come from the engine's spec
//! builder), then the pod's part patched into the spec: the pod's namespaces joined by
//! path, its hostname/resolv.conf/hosts files bound, CRI mounts, security context
//! extras, the pod's cgroup parent ([`super::pod_spec`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_engine::config::{
    ContainerConfig, NetworkAttachment, NetworkMode, ProcessConfig, Resources, Seccomp, Security,
};
use berth_engine::container_spec::host_limits::{self, HostCgroups, LimitError};
use berth_engine::container_spec::seccomp_profile;
use berth_engine::restart_policy::RestartPolicy;
use berth_engine::store::Kind;
use berth_engine::{self as engine, CriMeta, Engine, NewContainer};
use k8s_cri::v1 as cri;

use super::pod_spec::PodPatch;
use crate::sandbox::SandboxContext;
use crate::{Cri, CriError};

/// A seccomp profile larger than this is refused (Docker's default is ~20 KiB).
const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Linux capability number of CAP_SYS_RESOURCE (needed to lower oom_score_adj).
const CAP_SYS_RESOURCE: u32 = 24;

pub(crate) async fn create(
    cri: &Cri,
    req: cri::CreateContainerRequest,
) -> Result<cri::CreateContainerResponse, CriError> {
    let engine = cri.engine("CreateContainer")?;
    let record = cri.sandbox(&req.pod_sandbox_id)?;
    if record.state != crate::sandbox::store::SandboxState::Ready {
        return Err(CriError::FailedPrecondition(format!(
            "sandbox {} is not ready; containers are created only in ready sandboxes",
            record.id
        )));
    }
    let ctx = cri.sandbox_context(&record);
    let container_id = create_container(&engine, &ctx, req).await?;
    crate::error::record_id("container", &container_id);
    Ok(cri::CreateContainerResponse { container_id })
}

async fn create_container(
    engine: &Arc<Engine>,
    sandbox: &SandboxContext,
    req: cri::CreateContainerRequest,
) -> Result<String, CriError> {
    let config = req
        .config
        .ok_or_else(|| CriError::InvalidArgument("CreateContainer without a config".into()))?;
    let meta = config.metadata.clone().unwrap_or_default();
    if meta.name.is_empty() {
        return Err(CriError::InvalidArgument(
            "container metadata.name is empty".into(),
        ));
    }
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image.is_empty() {
        return Err(CriError::InvalidArgument(
            "container config.image.image is empty".into(),
        ));
    }
    let pod = sandbox.config.metadata.clone().unwrap_or_default();
    // dockershim's naming: unique per (container, pod, attempt), so the store's name
    // index answers "already exists".
    let name = format!(
        "k8s_{}_{}_{}_{}_{}",
        meta.name, pod.name, pod.namespace, pod.uid, meta.attempt
    );
    if let Some(other) = engine
        .store
        .id_by_name(Kind::Container, &name)
        .map_err(|e| CriError::Internal(e.to_string()))?
    {
        return Err(CriError::AlreadyExists(format!(
            "container {name} already exists as {other}; remove it before creating it again"
        )));
    }

    // Everything refusable (a Localhost seccomp profile, resources this host cannot
    // apply) is checked before anything is made.
    let mut container = engine_config(&config, &image)?;
    // The pod's RuntimeClass handler runs every container of the pod.
    container.runtime = sandbox.runtime_handler.clone();
    check_host_limits(&container.resources)?;
    let log_path = log_path(&sandbox.config.log_directory, &config.log_path)?;
    if let Some(dir) = log_path.as_deref().and_then(Path::parent) {
        std::fs::create_dir_all(dir).map_err(|e| {
            CriError::Internal(format!("creating the log directory {}: {e}", dir.display()))
        })?;
    }
    // The pod's sysctls, written by each container's runtime into the namespaces the
    // container shares with its pod (there is no pause container to hold them).
    if let Some(sysctls) = sandbox.config.linux.as_ref().map(|l| &l.sysctls) {
        if !sysctls.is_empty() {
            container.security.sysctls = Some(
                sysctls
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
    }
    // For HOSTNAME in the environment; the pod's UTS namespace holds the real one.
    container.hostname = crate::sandbox::pod_hostname(&sandbox.config)?;
    let target_ns = match PodPatch::pid_target(&config) {
        Some(target) => Some(target_pid_ns(engine, sandbox, &target)?),
        None => None,
    };
    let patch = PodPatch::new(sandbox, &config, target_ns)?;
    let labels: BTreeMap<String, String> = config.labels.clone().into_iter().collect();
    let annotations: BTreeMap<String, String> = config.annotations.clone().into_iter().collect();
    let cgroup_parent = sandbox
        .config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .unwrap_or_default();
    let cri_meta = CriMeta {
        sandbox_id: sandbox.id.clone(),
        name: meta.name.clone(),
        attempt: meta.attempt,
        image: image.clone(),
        labels,
        annotations,
        created_at: now_nanos(),
        cgroup: cgroup_parent,
    };
    let body = serde_json::to_value(&config)
        .map_err(|e| CriError::Internal(format!("encoding the container config: {e}")))?;
    let id = engine::create(
        engine,
        NewContainer {
            name: Some(name),
            config: container,
            body,
            restart_policy: RestartPolicy::default(),
            auto_remove: false,
            log_path,
            log: Default::default(),
            cri: Some(cri_meta),
            patch_spec: Some(Box::new(move |id, spec| patch.apply(id, spec))),
        },
    )
    .await?;
    tracing::info!(id = %id, sandbox = %sandbox.id, name = %meta.name, "CRI container created");
    Ok(id)
}

/// `<log_directory>/<log_path>`; none when either is empty (kubelet always sets both).
fn log_path(dir: &str, rel: &str) -> Result<Option<PathBuf>, CriError> {
    if dir.is_empty() || rel.is_empty() {
        return Ok(None);
    }
    let rel = Path::new(rel);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(CriError::InvalidArgument(format!(
            "log_path {} must be relative to the pod's log directory, without ..",
            rel.display()
        )));
    }
    Ok(Some(Path::new(dir).join(rel)))
}

/// The PID namespace of `target`, for a container created with PID namespace mode
/// TARGET: a running container of the same pod (kubelet names it for ephemeral
/// debug containers).
fn target_pid_ns(
    engine: &Arc<Engine>,
    sandbox: &SandboxContext,
    target: &str,
) -> Result<PathBuf, CriError> {
    let record = engine::get(engine, target)?;
    if record.cri.as_ref().map(|c| c.sandbox_id.as_str()) != Some(sandbox.id.as_str()) {
        return Err(CriError::InvalidArgument(format!(
            "target container {target} is not in pod sandbox {}",
            sandbox.id
        )));
    }
    if record.state.status != engine::Status::Running || record.state.pid == 0 {
        return Err(CriError::FailedPrecondition(format!(
            "target container {target} is not running ({}): its PID namespace cannot be joined",
            record.state.status.as_str()
        )));
    }
    Ok(PathBuf::from(format!("/proc/{}/ns/pid", record.state.pid)))
}

/// The CRI seccomp choice: RuntimeDefault is berth's default profile; unset or
/// Unconfined means none, as kubelet expects without SeccompDefault; a Localhost
/// profile is read from the node here (see [`localhost_profile`]) and passed on as its
/// contents.
#[allow(deprecated)] // seccomp_profile_path: older kubelets still send it
fn seccomp(sc: &cri::LinuxContainerSecurityContext) -> Result<Seccomp, CriError> {
    let localhost = match &sc.seccomp {
        Some(p) => match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => return Ok(Seccomp::Default),
            Ok(cri::security_profile::ProfileType::Localhost) => p.localhost_ref.as_str(),
            _ => return Ok(Seccomp::Unconfined),
        },
        None => match sc.seccomp_profile_path.as_str() {
            "runtime/default" | "docker/default" => return Ok(Seccomp::Default),
            "" | "unconfined" => return Ok(Seccomp::Unconfined),
            path => match path.strip_prefix("localhost/") {
                Some(file) => file,
                // A file needs the `localhost/` prefix; anything else is a typo or a
                // profile name berth does not know, never "unconfined" by accident.
                None => {
                    return Err(CriError::InvalidArgument(format!(
                        "unknown seccomp profile {path:?}: expected runtime/default, docker/default, unconfined or localhost/<absolute path>"
                    )))
                }
            },
        },
    };
    Ok(Seccomp::Profile(localhost_profile(Path::new(localhost))?))
}

/// A `Localhost` seccomp profile: a file on the node in Docker's seccomp JSON format,
/// named by an absolute path. kubelet ≥ 1.25 sends the absolute path in
/// `localhost_ref`, and older kubelets sent `localhost/<absolute path>` (kubelet joins
/// its `--seccomp-profile-root` itself), so a relative name can only be a mistake:
/// it is refused rather than resolved against berthd's working directory.
fn localhost_profile(path: &Path) -> Result<String, CriError> {
    if !path.is_absolute() {
        return Err(CriError::InvalidArgument(format!(
            "seccomp Localhost profile {:?} must be an absolute path on the node",
            path.display().to_string()
        )));
    }
    let read_err = |e: std::io::Error| {
        CriError::InvalidArgument(format!(
            "reading the seccomp Localhost profile {}: {e}",
            path.display()
        ))
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(CriError::InvalidArgument(format!(
            "seccomp Localhost profile {} is larger than {} bytes",
            path.display(),
            MAX_PROFILE_BYTES
        )));
    }
    seccomp_profile::check(&bytes).map_err(|e| {
        CriError::InvalidArgument(format!("seccomp Localhost profile {}: {e}", path.display()))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        CriError::InvalidArgument(format!(
            "seccomp Localhost profile {}: not UTF-8 text",
            path.display()
        ))
    })
}

/// The parts of the CRI config the engine's spec builder understands, in its terms.
fn engine_config(config: &cri::ContainerConfig, image: &str) -> Result<ContainerConfig, CriError> {
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.unwrap_or_default();
    let res = linux.resources.unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let group = sc.run_as_group.as_ref().map(|g| g.value);
    if group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        // As containerd and CRI-O: a group alone would run as the image's user with a
        // group it never asked for.
        return Err(CriError::InvalidArgument(
            "run_as_group is set without run_as_user or run_as_username".into(),
        ));
    }
    let user = match (&sc.run_as_user, sc.run_as_username.as_str()) {
        (Some(uid), _) => with_group(uid.value.to_string(), group),
        (None, name) if !name.is_empty() => with_group(name.to_string(), group),
        _ => String::new(),
    };
    let seccomp = seccomp(&sc)?;
    let (hugepage_limits, unified) = cri_host_limits(&res);
    Ok(ContainerConfig {
        image: image.to_string(),
        process: ProcessConfig {
            user,
            tty: config.tty,
            open_stdin: config.stdin,
            stdin_once: config.stdin_once,
            env: config
                .envs
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect(),
            // CRI's command replaces the image's entrypoint (and then its cmd), args its
            // cmd.
            cmd: (!config.args.is_empty()).then(|| config.args.clone()),
            entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
            working_dir: config.working_dir.clone(),
            stop_signal: None,
            // CRI has no init and no rlimits; its supplemental groups (like its
            // devices) are set by the pod patch (`pod_spec`).
            init: false,
            additional_groups: Vec::new(),
            rlimits: Vec::new(),
        },
        labels: config.labels.clone().into_iter().collect(),
        // CRI has no health checks (kubelet probes through ExecSync).
        health: None,
        // containerd's CRI makes image volumes only when configured to; berth does not.
        image_volumes: false,
        // The namespaces are replaced by the pod's in the patch.
        network: NetworkAttachment {
            mode: NetworkMode::None,
            ..Default::default()
        },
        resources: Resources {
            memory: res.memory_limit_in_bytes.max(0),
            memory_swap: if res.memory_swap_limit_in_bytes > 0 {
                res.memory_swap_limit_in_bytes
            } else {
                0
            },
            cpu_shares: res.cpu_shares.max(0),
            cpu_period: res.cpu_period.max(0),
            cpu_quota: res.cpu_quota.max(0),
            cpuset_cpus: res.cpuset_cpus.clone(),
            cpuset_mems: res.cpuset_mems.clone(),
            hugepage_limits,
            unified,
            ..Default::default()
        },
        security: Security {
            privileged: sc.privileged,
            cap_add: caps.add_capabilities.clone(),
            cap_drop: caps.drop_capabilities.clone(),
            readonly_rootfs: sc.readonly_rootfs,
            oom_score_adj: clamp_oom_score_adj(res.oom_score_adj),
            seccomp,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Refuses hugepage limits and unified keys this host cannot apply (the runtime would
/// refuse them only at start, after the container was made).
pub(super) fn check_host_limits(hc: &Resources) -> Result<(), CriError> {
    if hc.hugepage_limits.is_empty() && hc.unified.is_empty() {
        return Ok(());
    }
    host_limits::check(&HostCgroups::probe(), &hc.hugepage_limits, &hc.unified).map_err(|e| match e
    {
        LimitError::Invalid(m) => CriError::InvalidArgument(m),
        LimitError::Unsupported(m) => CriError::FailedPrecondition(m),
    })
}

/// CRI's hugepage limits and unified keys in the spec builder's terms.
pub(super) fn cri_host_limits(
    res: &cri::LinuxContainerResources,
) -> (Vec<(String, u64)>, BTreeMap<String, String>) {
    (
        res.hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        res.unified
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn with_group(user: String, group: Option<i64>) -> String {
    match group {
        Some(g) => format!("{user}:{g}"),
        None => user,
    }
}

/// Without CAP_SYS_RESOURCE a process may not go below berthd's own oom_score_adj
/// (containerd's `restrict_oom_score_adj`): ask for no less than berthd has.
fn clamp_oom_score_adj(wanted: i64) -> i64 {
    let current = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    if wanted < current && !has_effective_cap(CAP_SYS_RESOURCE) {
        current
    } else {
        wanted
    }
}

fn has_effective_cap(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_path_is_relative_to_the_pod_dir() {
        assert_eq!(
            log_path("/var/log/pods/p", "c/0.log").ok().flatten(),
            Some(PathBuf::from("/var/log/pods/p/c/0.log"))
        );
        assert!(matches!(log_path("", "c/0.log"), Ok(None)));
        assert!(log_path("/d", "../escape.log").is_err());
        assert!(log_path("/d", "/abs.log").is_err());
    }

    #[test]
    fn command_and_args_map_to_entrypoint_and_cmd() -> Result<(), CriError> {
        let config = cri::ContainerConfig {
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            envs: vec![cri::KeyValue {
                key: "A".into(),
                value: "b=c".into(),
            }],
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    run_as_user: Some(cri::Int64Value { value: 33 }),
                    run_as_group: Some(cri::Int64Value { value: 100 }),
                    ..Default::default()
                }),
                resources: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 64 << 20,
                    cpu_shares: 512,
                    hugepage_limits: vec![cri::HugepageLimit {
                        page_size: "2MB".into(),
                        limit: 4 << 20,
                    }],
                    unified: [("memory.high".to_string(), "50M".to_string())].into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let r = engine_config(&config, "busybox")?;
        assert_eq!(r.process.entrypoint, Some(vec!["sh".into(), "-c".into()]));
        assert_eq!(r.process.cmd, Some(vec!["echo hi".into()]));
        assert_eq!(r.process.env, vec!["A=b=c".to_string()]);
        assert_eq!(r.process.user, "33:100");
        assert_eq!(r.resources.memory, 64 << 20);
        assert_eq!(r.resources.cpu_shares, 512);
        assert_eq!(r.resources.hugepage_limits, [("2MB".to_string(), 4 << 20)]);
        assert_eq!(
            r.resources.unified,
            BTreeMap::from([("memory.high".to_string(), "50M".to_string())])
        );
        Ok(())
    }

    #[test]
    fn oom_score_adj_never_goes_below_what_berthd_may_set() {
        let current: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .map(|s| s.trim().parse().unwrap_or(0))
            .unwrap_or(0);
        assert!(clamp_oom_score_adj(1000) == 1000);
        if !has_effective_cap(CAP_SYS_RESOURCE) {
            assert_eq!(clamp_oom_score_adj(-1000), current);
        }
    }

    #[test]
    #[allow(deprecated)]
    fn seccomp_choices_map_to_the_engines() -> Result<(), Box<dyn std::error::Error>> {
        use cri::security_profile::ProfileType;
        let with = |p: Option<(ProfileType, &str)>, path: &str| {
            seccomp(&cri::LinuxContainerSecurityContext {
                seccomp: p.map(|(t, r)| cri::SecurityProfile {
                    profile_type: t as i32,
                    localhost_ref: r.into(),
                }),
                seccomp_profile_path: path.into(),
                ..Default::default()
            })
        };
        assert_eq!(
            with(Some((ProfileType::RuntimeDefault, "")), "")?,
            Seccomp::Default
        );
        assert_eq!(
            with(Some((ProfileType::Unconfined, "")), "")?,
            Seccomp::Unconfined
        );
        assert_eq!(with(None, "")?, Seccomp::Unconfined);
        assert_eq!(with(None, "runtime/default")?, Seccomp::Default);

        let dir = tempfile::tempdir()?;
        let good = dir.path().join("good.json");
        let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#;
        std::fs::write(&good, profile)?;
        let good = good.display().to_string();
        let expected = Seccomp::Profile(profile.to_string());
        assert_eq!(with(Some((ProfileType::Localhost, &good)), "")?, expected);
        assert_eq!(with(None, &format!("localhost/{good}"))?, expected);

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#)?;
        let missing = dir.path().join("missing.json");
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; (MAX_PROFILE_BYTES + 1) as usize])?;
        for (path, reason) in [
            (huge.display().to_string(), "larger than"),
            (bad.display().to_string(), "unknown action"),
            (missing.display().to_string(), "reading the seccomp"),
            ("profiles/relative.json".to_string(), "absolute path"),
        ] {
            let err = with(Some((ProfileType::Localhost, &path)), "")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(&path) && err.contains(reason), "{err}");
        }
        // The deprecated path field: a file without `localhost/` is an unknown name,
        // not unconfined (containerd and CRI-O refuse it too).
        let err = with(None, &good)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("unknown seccomp profile") && err.contains(&good),
            "{err}"
        );
        assert_eq!(with(None, "unconfined")?, Seccomp::Unconfined);
        Ok(())
    }

    #[test]
    fn a_group_needs_a_user() -> Result<(), CriError> {
        let with = |user: Option<i64>, username: &str| {
            let config = cri::ContainerConfig {
                linux: Some(cri::LinuxContainerConfig {
                    security_context: Some(cri::LinuxContainerSecurityContext {
                        run_as_user: user.map(|value| cri::Int64Value { value }),
                        run_as_username: username.into(),
                        run_as_group: Some(cri::Int64Value { value: 100 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            engine_config(&config, "busybox").map(|r| r.process.user)
        };
        let err = with(None, "")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("run_as_group is set without run_as_user"),
            "{err}"
        );
        assert_eq!(with(Some(33), "")?, "33:100");
        assert_eq!(with(None, "www-data")?, "www-data:100");
        Ok(())
    }
}
