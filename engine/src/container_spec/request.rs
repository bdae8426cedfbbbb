//! The parts of Docker's `POST /containers/create` body and of an image config that
//! shape a container's OCI spec. Unknown fields are ignored, as Docker ignores them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `POST /containers/create`'s body (container config plus `HostConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub image: String,
    pub working_dir: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    /// `--expose`: `{"80/tcp": {}}`.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub host_config: HostConfig,
}

/// `HostConfig`: what the host gives the container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v host:container[:mode]`.
    pub binds: Option<Vec<String>>,
    /// `--mount`.
    pub mounts: Option<Vec<super::mounts::MountSpec>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub network_mode: String,
    /// `-p`: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
    pub port_bindings: Option<BTreeMap<String, Option<Vec<serde_json::Value>>>>,
    #[serde(rename = "PublishAllPorts")]
    pub publish_all_ports: bool,
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
    pub init: Option<bool>,
    pub sysctls: Option<BTreeMap<String, String>>,
    /// `--security-opt`: `seccomp=unconfined`, `no-new-privileges`, …
    pub security_opt: Option<Vec<String>>,
    /// The runtime handler (`docker run --runtime`); empty: berthd's default.
    pub runtime: String,
    /// CRI only (Docker's API has no such field): `(page size like "2MB", bytes)`.
    #[serde(skip)]
    pub hugepage_limits: Vec<(String, u64)>,
    /// CRI only: cgroup v2 files and their values (OCI `linux.resources.unified`).
    #[serde(skip)]
    pub unified: BTreeMap<String, String>,
}

/// What an image's config contributes (`config` in the OCI image config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageDefaults {
    pub user: String,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: String,
    pub stop_signal: Option<String>,
    /// `EXPOSE`: `{"80/tcp": {}}`.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}
