//! What berthd keeps about one container in the metadata store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::restart_policy::RestartPolicy;

/// A container's lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a task (a process under a shim) exists for the container.
    pub fn has_task(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The state part of a record: changes at each start and exit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i64,
    /// RFC 3339; empty until the first start / exit.
    pub started_at: String,
    pub finished_at: String,
    pub error: String,
    /// `docker stop`/`kill` was asked: restart policies (but `always`) hold off.
    pub stopped_by_user: bool,
    pub restart_count: u32,
    /// The kernel's OOM killer struck in the container's cgroup during its last run.
    #[serde(default)]
    pub oom_killed: bool,
    /// The health check's results in this run (containers with a check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:<config digest>`.
    pub image_id: String,
    /// The snapshot holding the container's writable layer.
    pub snapshot: String,
    /// The image's top layer snapshot (the writable layer's parent).
    pub parent_snapshot: Option<String>,
    /// The create request as the client sent it: a Docker create body, or a CRI
    /// container config.
    pub request: serde_json::Value,
    /// The process that runs (path and args), from the OCI spec.
    pub path: String,
    pub args: Vec<String>,
    /// `Config.Env`: the request's environment merged with the image's (the process
    /// also gets `HOSTNAME`, `HOME`, … which Docker does not list here).
    pub env: Vec<String>,
    /// `Config.ExposedPorts` keys (`80/tcp`): the image's and the request's.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    /// The process has a stdin clients attach to (the FIFO `stdin` in the bundle).
    #[serde(default)]
    pub open_stdin: bool,
    /// Its stdin closes when the first attached client's stdin ends.
    #[serde(default)]
    pub stdin_once: bool,
    pub stop_signal: String,
    pub auto_remove: bool,
    pub restart_policy: RestartPolicy,
    /// Bind sources made at each start when missing (`-v`'s); `None` in records
    /// written before berth kept them, whose `-v` binds are read from `request`.
    #[serde(default)]
    pub bind_sources: Option<Vec<String>>,
    /// The volumes the container mounts: in use while this record exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::volumes::VolumeMount>,
    /// The mounts as the container was created with them (volumes named, their data
    /// directories filled in), for inspect's `Mounts` and `--volumes-from`; empty in
    /// records written before berth kept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::config::Mount>,
    /// Its endpoints on networks (`networks/`): the networks are in use while this
    /// record exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::networks::Endpoint>,
    /// Its published ports (on a bridge network), with their host ports while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::networks::ports::PortBinding>,
    /// `--network container:X`: the id of the container whose network namespace this
    /// one joins at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_container: Option<String>,
    pub state: RunState,
    /// Where the shim writes the CRI-format log; `None`: the bundle's `container.log`.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// The log's format and rotation (the CRI format, unrotated, in older records).
    #[serde(default)]
    pub log: crate::logs::settings::LogSettings,
    /// Set for containers created through CRI.
    #[serde(default)]
    pub cri: Option<CriMeta>,
    /// The runtime handler (`[runtimes]` in berthd's config) the container runs
    /// under; empty or `berth`: the built-in runtime.
    #[serde(default)]
    pub runtime: String,
    /// The health check (the container's settings over the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthConfig>,
}

impl ContainerRecord {
    /// The containers one shim serves: a CRI pod's share their pod's shim, any other
    /// container has its own.
    pub fn shim_group(&self) -> &str {
        match &self.cri {
            Some(meta) => &meta.sandbox_id,
            None => &self.id,
        }
    }
}

/// What CRI keeps about a container besides the engine's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriMeta {
    pub sandbox_id: String,
    /// `metadata.name` and `metadata.attempt` of the container config.
    pub name: String,
    pub attempt: u32,
    /// The image as the request named it (`config.image.image`).
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// The cgroup (relative to the hierarchy root) the container runs in.
    pub cgroup: String,
}
