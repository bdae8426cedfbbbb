//! `GET /version`.

use serde_json::json;

use super::host::HostFacts;
use super::{Reply, API_VERSION, MIN_API_VERSION};

pub fn handle(host: &HostFacts) -> Reply {
    let version = env!("CARGO_PKG_VERSION");
    Reply::json(&json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine",
            "Version": version,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": host.go_arch,
                "KernelVersion": host.kernel_version,
            },
        }],
        "Version": version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": host.go_arch,
        "KernelVersion": host.kernel_version,
        "BuildTime": "",
    }))
}
