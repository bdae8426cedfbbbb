//! Docker's `POST /containers/create` body and its one translation into berth's
//! container config ([`CreateRequest::to_config`]): binds, tmpfs and `--mount` specs,
//! `--security-opt` strings, the network mode and ports parsed and checked as Docker
//! checks them. Fields this struct leaves out are checked before (`fields`): unset or
//! refused by name, never ignored.

use std::collections::BTreeMap;

use berth_engine::config::{
    ContainerConfig, Device, Mount, NetworkAttachment, NetworkMode, ProcessConfig, PublishedPort,
    Resources, Rlimit, Seccomp, Security,
};
use berth_engine::container_spec::{seccomp_profile, SpecError};
use serde::Deserialize;

use super::mounts;

/// `POST /containers/create`'s body (container config plus `HostConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub image: String,
    pub working_dir: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    /// `--expose`: `{"80/tcp": {}}`.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub healthcheck: Option<berth_engine::health::HealthConfig>,
    /// Anonymous volumes (`-v /path`): `{"/data": {}}`.
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub host_config: HostConfig,
    /// `EndpointsConfig.<network>`: `IPAMConfig.IPv4Address` (`--ip`) and `Aliases`
    /// (`--network-alias`) of the network mode's endpoint (the rest is checked unset
    /// in `fields.rs`).
    pub networking_config: Option<serde_json::Value>,
}

/// `HostConfig`: what the host gives the container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v host:container[:mode]`.
    pub binds: Option<Vec<String>>,
    /// `--mount`.
    pub mounts: Option<Vec<mounts::MountSpec>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `--volumes-from name[:ro|rw]`: resolved by the create handler.
    pub volumes_from: Option<Vec<String>>,
    pub network_mode: String,
    /// `--dns`, `--dns-option`, `--dns-search`.
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    /// `-p`: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
    pub port_bindings: Option<BTreeMap<String, Option<Vec<serde_json::Value>>>>,
    #[serde(rename = "PublishAllPorts")]
    pub publish_all_ports: bool,
    /// `--add-host name:ip` (`host-gateway` for the ip: the default bridge's gateway).
    pub extra_hosts: Option<Vec<String>>,
    pub memory: i64,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`: 10..1000, 0 unset (see `blkio`).
    pub blkio_weight: u16,
    pub privileged: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub readonly_rootfs: bool,
    pub shm_size: i64,
    pub oom_score_adj: i64,
    /// `--init`: berth's init as PID 1.
    pub init: Option<bool>,
    /// `--device host[:container[:perms]]`.
    pub devices: Option<Vec<DeviceMapping>>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Option<Vec<Ulimit>>,
    /// `--oom-kill-disable` (discarded with a warning where the host has no such
    /// switch, see `oom`).
    pub oom_kill_disable: Option<bool>,
    /// `--group-add`: gids or group names of the image.
    pub group_add: Option<Vec<String>>,
    pub sysctls: Option<BTreeMap<String, String>>,
    /// `--security-opt`: `seccomp=unconfined`, `no-new-privileges`, …
    pub security_opt: Option<Vec<String>>,
    /// The runtime handler (`docker run --runtime`); empty: berthd's default.
    pub runtime: String,
}

/// `HostConfig.Devices[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `HostConfig.Ulimits[]`: -1 is unlimited, as for the docker CLI.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    fn to_rlimit(&self) -> Result<Rlimit, SpecError> {
        let value = |v: i64| match v {
            -1 => Ok(libc::RLIM_INFINITY),
            v => u64::try_from(v).map_err(|_| {
                SpecError::Ulimit(format!(
                    "ulimit {}: {v} is not a limit (a number, or -1 for unlimited)",
                    self.name
                ))
            }),
        };
        Ok(Rlimit {
            name: self.name.clone(),
            soft: value(self.soft)?,
            hard: value(self.hard)?,
        })
    }
}

/// What `--security-opt` asks for.
struct SecurityOpts {
    seccomp: Seccomp,
    no_new_privileges: bool,
}

/// `--security-opt`: `seccomp=…`, `no-new-privileges`, and the AppArmor and SELinux
/// opt-outs this host has nothing to switch off for.
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

impl CreateRequest {
    /// berth's container config for this request; what Docker would refuse is refused
    /// with Docker's words.
    #[cfg(test)]
    pub fn to_config(&self) -> Result<ContainerConfig, SpecError> {
        self.to_config_with(Vec::new())
    }

    /// [`Self::to_config`] with the mounts `VolumesFrom` resolved to: each where no
    /// bind, tmpfs or mount of this request is (they override it, as in dockerd).
    pub fn to_config_with(&self, volumes_from: Vec<Mount>) -> Result<ContainerConfig, SpecError> {
        let hc = &self.host_config;
        let mut mounts = mounts::binds(hc.binds.as_deref().unwrap_or_default())?;
        mounts.extend(mounts::tmpfs(&hc.tmpfs.clone().unwrap_or_default())?);
        mounts.extend(mounts::mounts(hc.mounts.as_deref().unwrap_or_default())?);
        for m in volumes_from {
            if !mounts.iter().any(|o| o.destination == m.destination) {
                mounts.push(m);
            }
        }
        // `Config.Volumes` where no bind or mount already is, as dockerd skips them.
        let config_volumes = mounts::config_volumes(&self.volumes.clone().unwrap_or_default())?;
        for v in config_volumes {
            if !mounts.iter().any(|m| m.destination == v.destination) {
                mounts.push(v);
            }
        }
        let security = security_opts(hc.security_opt.as_deref().unwrap_or_default())?;
        Ok(ContainerConfig {
            image: self.image.clone(),
            process: ProcessConfig {
                entrypoint: self.entrypoint.clone(),
                cmd: self.cmd.clone(),
                env: self.env.clone().unwrap_or_default(),
                user: self.user.clone(),
                working_dir: self.working_dir.clone(),
                tty: self.tty,
                open_stdin: self.open_stdin,
                stdin_once: self.stdin_once,
                stop_signal: self.stop_signal.clone(),
                init: hc.init.unwrap_or(false),
                additional_groups: hc.group_add.clone().unwrap_or_default(),
                rlimits: hc
                    .ulimits
                    .iter()
                    .flatten()
                    .map(Ulimit::to_rlimit)
                    .collect::<Result<_, _>>()?,
            },
            hostname: self.hostname.clone(),
            domainname: self.domainname.clone(),
            mounts,
            devices: hc
                .devices
                .iter()
                .flatten()
                .map(|d| Device {
                    host_path: d.path_on_host.clone(),
                    container_path: d.path_in_container.clone(),
                    permissions: d.cgroup_permissions.clone(),
                })
                .collect(),
            resources: Resources {
                memory: hc.memory,
                memory_reservation: hc.memory_reservation,
                memory_swap: hc.memory_swap,
                nano_cpus: hc.nano_cpus,
                cpu_shares: hc.cpu_shares,
                cpu_period: hc.cpu_period,
                cpu_quota: hc.cpu_quota,
                cpuset_cpus: hc.cpuset_cpus.clone(),
                cpuset_mems: hc.cpuset_mems.clone(),
                pids_limit: hc.pids_limit,
                blkio_weight: hc.blkio_weight,
                shm_size: hc.shm_size,
                hugepage_limits: Vec::new(),
                unified: BTreeMap::new(),
                oom_kill_disable: hc.oom_kill_disable.unwrap_or(false),
            },
            security: Security {
                privileged: hc.privileged,
                cap_add: hc.cap_add.clone().unwrap_or_default(),
                cap_drop: hc.cap_drop.clone().unwrap_or_default(),
                readonly_rootfs: hc.readonly_rootfs,
                seccomp: security.seccomp,
                no_new_privileges: security.no_new_privileges,
                oom_score_adj: hc.oom_score_adj,
                sysctls: hc.sysctls.clone(),
            },
            network: self.network()?,
            runtime: hc.runtime.clone(),
            labels: self.labels.clone().unwrap_or_default(),
            health: self.healthcheck.clone(),
            image_volumes: true,
        })
    }

    /// `NetworkMode`, `ExposedPorts`, `PortBindings` and `PublishAllPorts`.
    fn network(&self) -> Result<NetworkAttachment, SpecError> {
        let hc = &self.host_config;
        let mode = match hc.network_mode.as_str() {
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            "" | "default" | "bridge" => NetworkMode::Default,
            "container:" => return Err(SpecError::NetworkMode("container:".into())),
            other if other.starts_with("container:") => NetworkMode::Container,
            _ => NetworkMode::Bridge,
        };
        let endpoint = self
            .networking_config
            .as_ref()
            .and_then(|nc| nc["EndpointsConfig"].as_object())
            .and_then(|eps| eps.values().next().cloned())
            .unwrap_or_default();
        let ip = endpoint["IPAMConfig"]["IPv4Address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ip6 = endpoint["IPAMConfig"]["IPv6Address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let aliases: Vec<String> = endpoint["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        // Checked by the engine, against the image's.
        let exposed_ports: Vec<String> = self
            .exposed_ports
            .iter()
            .flat_map(|p| p.keys())
            .cloned()
            .collect();
        let field = |binding: &serde_json::Value, name: &str| {
            binding[name].as_str().unwrap_or_default().to_string()
        };
        let published_ports = hc
            .port_bindings
            .iter()
            .flatten()
            .flat_map(|(port, bindings)| {
                bindings.iter().flatten().map(move |b| PublishedPort {
                    container_port: port.clone(),
                    host_ip: field(b, "HostIp"),
                    host_port: field(b, "HostPort"),
                })
            })
            .collect();
        Ok(NetworkAttachment {
            network: match mode {
                NetworkMode::Bridge => hc.network_mode.clone(),
                NetworkMode::Container => hc.network_mode["container:".len()..].to_string(),
                _ => String::new(),
            },
            mode,
            exposed_ports,
            published_ports,
            publish_all: hc.publish_all_ports,
            extra_hosts: hc.extra_hosts.clone().unwrap_or_default(),
            ip,
            ip6,
            aliases,
            dns: hc.dns.clone().unwrap_or_default(),
            dns_search: hc.dns_search.clone().unwrap_or_default(),
            dns_options: hc.dns_options.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(body: serde_json::Value) -> Result<ContainerConfig, String> {
        let request: CreateRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        request.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn network_modes_and_ports_translate() -> Result<(), String> {
        for (mode, want) in [
            ("", NetworkMode::Default),
            ("default", NetworkMode::Default),
            ("bridge", NetworkMode::Default),
            ("none", NetworkMode::None),
            ("host", NetworkMode::Host),
            ("backend", NetworkMode::Bridge),
        ] {
            let c = config(json!({"HostConfig": {"NetworkMode": mode}}))?;
            assert_eq!(c.network.mode, want, "{mode}");
        }
        let c = config(json!({"HostConfig": {"NetworkMode": "backend"},
            "NetworkingConfig": {"EndpointsConfig": {"backend": {
                "IPAMConfig": {"IPv4Address": "10.1.0.9"}, "Aliases": ["db"]}}}}))?;
        assert_eq!(
            (
                c.network.network.as_str(),
                c.network.ip.as_str(),
                c.network.aliases.as_slice()
            ),
            ("backend", "10.1.0.9", &["db".to_string()][..])
        );
        let c = config(json!({"HostConfig": {"NetworkMode": "container:web"}}))?;
        assert_eq!(
            (c.network.mode, c.network.network.as_str()),
            (NetworkMode::Container, "web")
        );
        assert!(config(json!({"HostConfig": {"NetworkMode": "container:"}}))
            .is_err_and(|e| e.contains("invalid network mode \"container:\"")));
        let c = config(json!({"HostConfig": {"ExtraHosts": ["db:192.0.2.9"]}}))?;
        assert_eq!(c.network.extra_hosts, ["db:192.0.2.9"]);
        let c = config(json!({"ExposedPorts": {"9000/tcp": {}, "53/udp": {}},
            "HostConfig": {"PortBindings": {
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostPort": "8081"}],
                "81/tcp": null, "82/tcp": []},
            "PublishAllPorts": true}}))?;
        assert_eq!(c.network.exposed_ports, ["53/udp", "9000/tcp"]);
        assert_eq!(
            c.network.published_ports,
            [
                PublishedPort {
                    container_port: "80/tcp".into(),
                    host_ip: "127.0.0.1".into(),
                    host_port: "8080".into()
                },
                PublishedPort {
                    container_port: "80/tcp".into(),
                    host_ip: String::new(),
                    host_port: "8081".into()
                },
            ]
        );
        assert!(c.network.publish_all);
        Ok(())
    }

    #[test]
    fn devices_ulimits_groups_init_and_oom_translate() -> Result<(), String> {
        let c = config(json!({"HostConfig": {
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull",
                         "CgroupPermissions": "rw"}],
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048},
                        {"Name": "core", "Soft": -1, "Hard": -1}],
            "GroupAdd": ["1234", "users"], "Init": true, "OomKillDisable": true}}))?;
        assert_eq!(
            c.devices,
            [Device {
                host_path: "/dev/null".into(),
                container_path: "/dev/xnull".into(),
                permissions: "rw".into()
            }]
        );
        let limit = |name: &str, soft, hard| Rlimit {
            name: name.into(),
            soft,
            hard,
        };
        assert_eq!(
            c.process.rlimits,
            [
                limit("nofile", 1024, 2048),
                limit("core", libc::RLIM_INFINITY, libc::RLIM_INFINITY)
            ]
        );
        assert_eq!(c.process.additional_groups, ["1234", "users"]);
        assert!(c.process.init && c.resources.oom_kill_disable);
        // What the docker CLI sends without the flags.
        let c = config(json!({"HostConfig": {"Devices": [], "Ulimits": null,
            "GroupAdd": null, "OomKillDisable": false}}))?;
        assert!(c.devices.is_empty() && c.process.rlimits.is_empty());
        assert!(!c.process.init && !c.resources.oom_kill_disable);
        assert!(config(json!({"HostConfig": {"Ulimits": [
            {"Name": "nofile", "Soft": -2, "Hard": 10}]}}))
        .is_err_and(|e| e.starts_with("ulimit nofile: -2 is not a limit")));
        assert!(config(json!({"HostConfig": {"Devices": [
            {"PathOnHost": "/dev/null", "Major": 1}]}}))
        .is_err_and(|e| e.contains("unknown field `Major`")));
        Ok(())
    }

    #[test]
    fn security_opts_become_the_seccomp_choice() -> Result<(), String> {
        let security = |opts: serde_json::Value| {
            config(json!({"HostConfig": {"SecurityOpt": opts}})).map(|c| c.security)
        };
        let s = security(json!(["seccomp=unconfined", "no-new-privileges"]))?;
        assert_eq!(
            (s.seccomp, s.no_new_privileges),
            (Seccomp::Unconfined, true)
        );
        let s = security(json!(["seccomp:builtin", "no-new-privileges=false"]))?;
        assert_eq!((s.seccomp, s.no_new_privileges), (Seccomp::Default, false));
        let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#;
        let s = security(json!([format!("seccomp={profile}")]))?;
        assert_eq!(s.seccomp, Seccomp::Profile(profile.into()));
        assert!(security(json!(["seccomp=/some/file.json"]))
            .is_err_and(|e| e.starts_with("invalid --security-opt \"seccomp=/some/file.json\"")));
        assert!(security(json!(["selinux=yes"])).is_err_and(|e| e.contains("berth knows")));
        Ok(())
    }
}
