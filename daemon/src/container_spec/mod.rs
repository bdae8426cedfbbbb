//! A container's OCI runtime spec from a Docker create request and its image's
//! config, built the way Docker builds it: process merge, user lookup in the image,
//! default mounts, capabilities, masked paths, device rules and resource limits.

pub mod blkio;
mod caps;
mod defaults;
pub mod host_limits;
mod mounts;
pub mod ports;
mod process;
mod request;
mod resources;
mod seccomp;
pub mod seccomp_profile;
mod user;

use std::path::Path;

use serde_json::{json, Value};

pub use caps::bounding_set;
pub use mounts::create_bind_sources;
pub use process::config_env;
pub use request::{CreateRequest, HostConfig, ImageDefaults};
pub use user::{resolve as resolve_user, ExecUser};

/// Why a container's spec cannot be built; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("No command specified")]
    NoCommand,
    #[error("{0}")]
    Hostname(String),
    #[error("the working directory {0:?} is invalid: it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("{0}")]
    User(String),
    #[error("{0}")]
    Mount(String),
    #[error("{0}")]
    Caps(String),
    #[error("{0}")]
    Resources(String),
    #[error(
        "network mode {0:?} is not supported yet (berth gives containers none, host or default)"
    )]
    NetworkMode(String),
    #[error(
        "publishing ports ({0}) is not supported yet: until container networks land, berth gives containers loopback only (--network none) or the host's network (--network host)"
    )]
    Ports(String),
    #[error("invalid exposed port {0:?}: expected port[/tcp|udp|sctp], one port per entry")]
    ExposedPort(String),
    #[error("invalid --security-opt {0:?}: {1}")]
    SecurityOpt(String, String),
}

/// Which seccomp filter `--security-opt` asks for.
enum Seccomp {
    /// berth's own profile ([`seccomp::default_profile`]).
    Default,
    Unconfined,
    /// A profile in Docker's JSON format: the docker CLI (and `berth`) read the file
    /// named by `--security-opt seccomp=FILE` and send its contents.
    Profile(String),
}

/// What `--security-opt` asks for.
struct SecurityOpts {
    seccomp: Seccomp,
    no_new_privileges: bool,
}

fn security_opts(opts: &[String]) -> Result<SecurityOpts, SpecError> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
    };
    for opt in opts {
        let (key, value) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined") => out.seccomp = Seccomp::Unconfined,
            ("seccomp", "builtin") => out.seccomp = Seccomp::Default,
            ("seccomp", json) if json.trim_start().starts_with('{') => {
                seccomp_profile::check(json.as_bytes()).map_err(|e| {
                    SpecError::SecurityOpt(
                        "seccomp=<profile>".into(),
                        format!("the seccomp profile is invalid: {e}"),
                    )
                })?;
                out.seccomp = Seccomp::Profile(json.to_string());
            }
            ("seccomp", _) => {
                return Err(SpecError::SecurityOpt(
                    opt.clone(),
                    "seccomp= takes unconfined, builtin or a profile's JSON contents (the docker and berth CLIs read --security-opt seccomp=FILE and send the contents)".into(),
                ))
            }
            ("no-new-privileges", "" | "true") => out.no_new_privileges = true,
            ("no-new-privileges", "false") => out.no_new_privileges = false,
            // This host has neither AppArmor nor SELinux: nothing to switch off.
            ("apparmor", "unconfined") | ("label", "disable") => {}
            _ => {
                return Err(SpecError::SecurityOpt(
                    opt.clone(),
                    "berth knows seccomp=unconfined|builtin|<profile JSON>, no-new-privileges[=true|false], apparmor=unconfined and label=disable".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// What the daemon knows about the container besides the request.
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub request: &'a CreateRequest,
    pub image: &'a ImageDefaults,
    /// The mounted root filesystem (users are looked up in it).
    pub rootfs: &'a Path,
    pub cgroups_path: String,
    /// Capabilities berth holds (`bounding_set()`), the ceiling for every container.
    pub held_caps: &'a [&'static str],
}

/// Builds `config.json` for the container.
pub fn build(inputs: &SpecInputs<'_>) -> Result<Value, SpecError> {
    let req = inputs.request;
    let hc = &req.host_config;
    let hostname = if req.hostname.is_empty() && hc.network_mode == "host" {
        // Docker's choice: a container on the host's network is named as the host.
        nix::unistd::gethostname()
            .map_err(|e| SpecError::Hostname(format!("reading the host's hostname: {e}")))?
            .to_string_lossy()
            .into_owned()
    } else if req.hostname.is_empty() {
        inputs.id.chars().take(12).collect()
    } else {
        req.hostname.clone()
    };
    let args = process::args(req, inputs.image)?;
    let cwd = process::cwd(req, inputs.image)?;
    let user_spec = if req.user.is_empty() {
        &inputs.image.user
    } else {
        &req.user
    };
    let user = user::resolve(inputs.rootfs, user_spec)?;
    let mut env = process::env(&process::config_env(req, inputs.image), &hostname, req.tty);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let caps = caps::container_caps(
        hc.privileged,
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        inputs.held_caps,
    )?;

    let shm = if hc.shm_size > 0 {
        hc.shm_size
    } else {
        defaults::DEFAULT_SHM_SIZE
    };
    let mut mounts = defaults::mounts(shm, hc.privileged);
    let user_mounts: Vec<Value> = mounts::binds(hc.binds.as_deref().unwrap_or_default())?
        .into_iter()
        .chain(mounts::tmpfs(
            hc.tmpfs.clone().unwrap_or_default().into_iter(),
        )?)
        .chain(mounts::mounts(hc.mounts.as_deref().unwrap_or_default())?)
        .collect();
    mounts::check_duplicates(&user_mounts)?;
    // A user mount on a default destination (say, a tmpfs on /dev/shm) replaces it.
    mounts.retain(|m| {
        !user_mounts
            .iter()
            .any(|u| u["destination"] == m["destination"])
    });
    mounts.extend(user_mounts);

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match hc.network_mode.as_str() {
        "host" => {}
        // Until user-defined networks land, bridge and default get a private network
        // namespace with loopback only, like `--network none`.
        "" | "default" | "bridge" | "none" => namespaces.push(json!({"type": "network"})),
        other => return Err(SpecError::NetworkMode(other.to_string())),
    }
    if hc.network_mode != "host" {
        let published: Vec<&str> = hc
            .port_bindings
            .iter()
            .flatten()
            .filter(|(_, bindings)| bindings.as_ref().is_some_and(|b| !b.is_empty()))
            .map(|(port, _)| port.as_str())
            .collect();
        if !published.is_empty() {
            return Err(SpecError::Ports(published.join(", ")));
        }
        if hc.publish_all_ports {
            return Err(SpecError::Ports("-P".into()));
        }
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let (masked, readonly): (Vec<&str>, Vec<&str>) = if hc.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            defaults::MASKED_PATHS.to_vec(),
            defaults::READONLY_PATHS.to_vec(),
        )
    };
    let security = security_opts(hc.security_opt.as_deref().unwrap_or_default())?;
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": inputs.cgroups_path,
        "resources": resources::resources(hc, defaults::device_rules(hc.privileged))?,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
    });
    if let Some(sysctls) = &hc.sysctls {
        linux["sysctl"] = json!(sysctls);
    }
    if !hc.privileged {
        match &security.seccomp {
            Seccomp::Default => linux["seccomp"] = seccomp::default_profile(&caps),
            Seccomp::Unconfined => {}
            Seccomp::Profile(json) => {
                let target = seccomp_profile::Target {
                    caps: &caps,
                    kernel: seccomp_profile::kernel(),
                };
                linux["seccomp"] =
                    seccomp_profile::convert(json.as_bytes(), &target).map_err(|e| {
                        SpecError::SecurityOpt(
                            "seccomp=<profile>".into(),
                            format!("the seccomp profile is invalid: {e}"),
                        )
                    })?;
            }
        }
    }
    let mut process = json!({
        "terminal": req.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "noNewPrivileges": security.no_new_privileges,
    });
    if hc.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(hc.oom_score_adj);
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": inputs.rootfs, "readonly": hc.readonly_rootfs},
        "hostname": hostname,
        "domainname": req.domainname,
        "mounts": mounts,
        "linux": linux,
    }))
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
