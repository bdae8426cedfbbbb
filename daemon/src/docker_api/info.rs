//! `GET /info`: system-wide information, counted from the metadata store.

use serde_json::json;

use super::{ApiError, Reply};
use crate::store::Kind;
use crate::Daemon;

pub fn handle(daemon: &Daemon) -> Result<Reply, ApiError> {
    let host = &daemon.host;
    let containers = daemon.store.list::<serde_json::Value>(Kind::Container)?;
    let in_state = |state: &str| {
        containers
            .iter()
            .filter(|(_, _, c)| c["state"]["status"].as_str() == Some(state))
            .count()
    };
    let (running, paused) = (in_state("running"), in_state("paused"));
    let images = super::images::count(daemon)?;
    let cgroup_version = if host.cgroup_v2_only { "2" } else { "1" };
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
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": host.ipv4_forwarding,
        "Debug": daemon.config.log_level == "debug" || daemon.config.log_level == "trace",
        "NFd": host.open_fds(),
        "NGoroutines": 0,
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
        "RegistryConfig": {
            "IndexConfigs": {},
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "Mirrors": [],
        },
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
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
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
