//! `GET /info`: system-wide information, counted from the metadata store; what the
//! host's cgroups offer is checked on each call ([`features`]).

mod features;
mod registry;

use berth_engine::store::Kind;
use serde_json::{json, Value};

use super::{ApiError, Reply};
use crate::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, ApiError> {
    let host = &daemon.host;
    let containers = daemon
        .engine
        .store
        .list::<serde_json::Value>(Kind::Container)?;
    let in_state = |state: &str| {
        containers
            .iter()
            .filter(|(_, _, c)| c["state"]["status"].as_str() == Some(state))
            .count()
    };
    let (running, paused) = (in_state("running"), in_state("paused"));
    let images = super::images::count(daemon)?;
    let features = features::Features::probe(&features::Sources::host());
    let cgroup_version = if features.cgroup_v2 { "2" } else { "1" };
    let warnings = features.warnings();
    // The docker CLI falls back to warnings of its own when the list is empty.
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        json!(warnings)
    };
    // berth runs no containerd, runc or docker-init of its own: dockerd's "N/A".
    let no_commit = json!({"ID": "N/A", "Expected": "N/A"});
    Ok(Reply::json(&json!({
        "ID": daemon.id,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images,
        "Driver": "overlayfs",
        "DriverStatus": [["Backing Filesystem", host.root_fs_type]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Log": ["json-file"],
        },
        "MemoryLimit": features.memory_limit,
        "SwapLimit": features.swap_limit,
        "KernelMemory": features.kernel_memory,
        "KernelMemoryTCP": features.kernel_memory_tcp,
        "CpuCfsPeriod": features.cpu_cfs,
        "CpuCfsQuota": features.cpu_cfs,
        "CPUShares": features.cpu_shares,
        "CPUSet": features.cpuset,
        "PidsLimit": features.pids_limit,
        "OomKillDisable": features.oom_kill_disable,
        "IPv4Forwarding": features.ipv4_forwarding,
        "BridgeNfIptables": features.bridge_nf_iptables,
        "BridgeNfIp6tables": features.bridge_nf_ip6tables,
        "Debug": daemon.config.log_level == "debug" || daemon.config.log_level == "trace",
        "NFd": host.open_fds(),
        "NGoroutines": 0,
        "NEventsListener": 0,
        "SystemTime": host.now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.uname_machine,
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry::registry_config(&daemon.config),
        "GenericResources": null,
        "DockerRootDir": daemon.config.root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": host.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes(&daemon.config),
        "DefaultRuntime": daemon.config.default_runtime,
        // No swarm mode: dockerd's answer for a node that never joined one.
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": no_commit,
        "RuncCommit": no_commit,
        "InitCommit": no_commit,
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": warnings,
    })))
}

/// `Runtimes` as docker reports them: every handler a container may name with
/// `--runtime`, with its binary (the built-in one runs inside berth-shim).
fn runtimes(config: &crate::config::Config) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for name in config.runtime_names() {
        let path = match config.resolve_runtime(&name) {
            Ok((_, Some(binary))) => binary.display().to_string(),
            _ => "berth-runtime".to_string(),
        };
        out.insert(name, serde_json::json!({ "path": path }));
    }
    serde_json::Value::Object(out)
}
