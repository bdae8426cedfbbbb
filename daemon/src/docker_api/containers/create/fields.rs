//! Every field of a create body is applied or refused by name, never ignored: the
//! fields berth applies are listed here; any other field (a Docker field berth does not
//! apply, or one it does not know) must be unset or at its zero value (the docker CLI
//! sends most of them zeroed), else the create is refused naming it, as
//! `HostConfig.CpuRealtimePeriod is not supported`.

use serde_json::Value;

/// Top-level (container config) fields berth applies or that only steer the client
/// (`Attach*`).
const CONFIG: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Image",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "ExposedPorts",
    "StopSignal",
    "Healthcheck",
    "Volumes",
    "HostConfig",
    "NetworkingConfig",
];

/// `HostConfig` fields berth applies.
const HOST_CONFIG: &[&str] = &[
    "Binds",
    "Mounts",
    "Tmpfs",
    "VolumesFrom",
    "NetworkMode",
    "PortBindings",
    "PublishAllPorts",
    // Written into resolv.conf (`networks/attach.rs`), `Dns` also the embedded DNS
    // server's upstreams.
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "RestartPolicy",
    "AutoRemove",
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "ReadonlyRootfs",
    "ShmSize",
    "OomScoreAdj",
    "OomKillDisable",
    "Init",
    "Sysctls",
    "SecurityOpt",
    "Runtime",
    "Devices",
    "Ulimits",
    "GroupAdd",
    // The terminal's size at start; the resize call follows it.
    "ConsoleSize",
    // Checked and applied by `log_driver`.
    "LogConfig",
];

/// Fields whose "unset" is not their zero value: `Some(unset)`.
fn unset_by_convention(path: &str, v: &Value) -> Option<bool> {
    match path {
        // -1 (the docker CLI's) or null: the kernel's default swappiness; 0 is a
        // swappiness.
        "HostConfig.MemorySwappiness" => Some(v.is_null() || v.as_i64() == Some(-1)),
        _ => None,
    }
}

/// Unset: null, false, 0, "", [], {}, or a struct (an object of PascalCase fields)
/// whose fields are all unset. An object keyed by anything else is a map (`Volumes`,
/// `StorageOpt`): any entry is a setting.
fn unset(path: &str, v: &Value) -> Result<(), String> {
    let zero = match unset_by_convention(path, v) {
        Some(unset) => unset,
        None => match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => {
                if o.keys()
                    .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
                {
                    for (k, field) in o {
                        unset(&format!("{path}.{k}"), field)?;
                    }
                    true
                } else {
                    o.is_empty()
                }
            }
        },
    };
    if zero {
        return Ok(());
    }
    let yet = " yet";
    let hints = [("HostConfig.VolumeDriver", yet)];
    let hint = hints
        .iter()
        .find(|(field, _)| {
            path == *field || path.strip_prefix(field).is_some_and(|r| r.starts_with('.'))
        })
        .map_or("", |(_, hint)| hint);
    Err(format!("{path} is not supported{hint}"))
}

/// Refuses a body setting any field berth does not apply.
pub fn check(body: &Value) -> Result<(), String> {
    let Some(config) = body.as_object() else {
        return Ok(());
    };
    for (k, v) in config {
        if !CONFIG.contains(&k.as_str()) {
            unset(k, v)?;
        }
    }
    if let Some(hc) = config.get("HostConfig").and_then(Value::as_object) {
        for (k, v) in hc {
            if !HOST_CONFIG.contains(&k.as_str()) {
                unset(&format!("HostConfig.{k}"), v)?;
            }
        }
    }
    networking(body)
}

/// `NetworkingConfig`: one endpoint, the container's network mode's, with only its
/// `IPAMConfig.IPv4Address`, `IPAMConfig.IPv6Address` and `Aliases` set (applied by
/// `request.rs`; links, link-local addresses and driver options are refused by name).
fn networking(body: &Value) -> Result<(), String> {
    let Some(nc) = body.get("NetworkingConfig").and_then(Value::as_object) else {
        return Ok(());
    };
    let mode = body["HostConfig"]["NetworkMode"].as_str().unwrap_or("");
    let default = matches!(mode, "" | "default" | "bridge");
    for (k, v) in nc {
        if k != "EndpointsConfig" {
            unset(&format!("NetworkingConfig.{k}"), v)?;
            continue;
        }
        let Some(endpoints) = v.as_object() else {
            unset("NetworkingConfig.EndpointsConfig", v)?;
            continue;
        };
        for (name, settings) in endpoints {
            let ours = name == mode || (default && matches!(name.as_str(), "default" | "bridge"));
            if !ours {
                return Err(format!(
                    "NetworkingConfig.EndpointsConfig.{name} is not supported: berth connects a container to its network mode's network only ({})",
                    if mode.is_empty() { "default" } else { mode }
                ));
            }
            let mut rest = settings.clone();
            if let Some(obj) = rest.as_object_mut() {
                obj.remove("Aliases");
                if let Some(ipam) = obj.get_mut("IPAMConfig").and_then(Value::as_object_mut) {
                    ipam.remove("IPv4Address");
                    ipam.remove("IPv6Address");
                }
            }
            unset(&format!("NetworkingConfig.EndpointsConfig.{name}"), &rest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What Debian's docker 20.10 CLI sends for `docker create busybox true`.
    fn docker_cli_default() -> Value {
        json!({
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
            "AttachStdout": true, "AttachStderr": true, "Tty": false, "OpenStdin": false,
            "StdinOnce": false, "Env": null, "Cmd": ["true"], "Image": "busybox",
            "Volumes": {}, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
            "Labels": {},
            "HostConfig": {
                "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                "NetworkMode": "default", "PortBindings": {},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": false,
                "VolumeDriver": "", "VolumesFrom": null, "ConsoleSize": [0, 0],
                "CapAdd": null, "CapDrop": null, "CgroupnsMode": "", "Dns": [],
                "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
                "IpcMode": "", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "",
                "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
                "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
                "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
                "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null,
                "BlkioDeviceReadIOps": null, "BlkioDeviceWriteIOps": null, "CpuPeriod": 0,
                "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
                "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
                "DeviceRequests": null, "KernelMemory": 0, "KernelMemoryTCP": 0,
                "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
                "OomKillDisable": false, "PidsLimit": null, "Ulimits": null, "CpuCount": 0,
                "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
                "MaskedPaths": null, "ReadonlyPaths": null
            },
            "NetworkingConfig": {"EndpointsConfig": {"default": {
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "DriverOpts": null, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null}}}
        })
    }

    #[test]
    fn what_the_docker_cli_sends_by_default_is_accepted() {
        assert_eq!(check(&docker_cli_default()), Ok(()));
        assert_eq!(check(&json!({"Image": "x"})), Ok(()));
        let mut logs = docker_cli_default();
        logs["HostConfig"]["LogConfig"]["Type"] = json!("none");
        logs["Healthcheck"] = json!({"Test": ["CMD", "true"]});
        logs["HostConfig"]["ConsoleSize"] = json!([24, 80]);
        assert_eq!(check(&logs), Ok(()));
    }

    #[test]
    fn a_setting_berth_does_not_apply_is_refused_by_name() {
        let refused = |path: &[&str], value: Value| {
            let mut body = docker_cli_default();
            let mut at = &mut body;
            for p in &path[..path.len() - 1] {
                at = &mut at[*p];
            }
            at[path[path.len() - 1]] = value;
            check(&body).err().unwrap_or_default()
        };
        assert_eq!(
            refused(&["HostConfig", "CpuRealtimePeriod"], json!(1000)),
            "HostConfig.CpuRealtimePeriod is not supported"
        );
        assert_eq!(
            refused(&["HostConfig", "MemorySwappiness"], json!(0)),
            "HostConfig.MemorySwappiness is not supported"
        );
        assert_eq!(
            refused(&["HostConfig", "VolumeDriver"], json!("other")),
            "HostConfig.VolumeDriver is not supported yet"
        );
        // A field Docker does not have either.
        assert_eq!(
            refused(&["HostConfig", "Memroy"], json!(5)),
            "HostConfig.Memroy is not supported"
        );
        assert_eq!(
            refused(
                &["NetworkingConfig", "EndpointsConfig", "default", "Links"],
                json!(["web"])
            ),
            "NetworkingConfig.EndpointsConfig.default.Links is not supported"
        );
        let mut other = docker_cli_default();
        other["NetworkingConfig"]["EndpointsConfig"] = json!({"mynet": {}});
        assert!(check(&other).is_err_and(
            |e| e.starts_with("NetworkingConfig.EndpointsConfig.mynet is not supported")
        ));
    }
}
