//! Per-container state under the runtime root: `<root>/<id>/state.json` plus the
//! `exec.fifo` that holds a created container until `start`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPaths;
use crate::error::{Error, Result};

/// Status values as runc reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What we persist for a container (a superset of the OCI state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/pid/stat) to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: HashMap<String, String>,
    pub cgroup: CgroupPaths,
    /// Namespace files of the init, for exec (`/proc/<pid>/ns/*` at create time).
    pub owner: String,
}

/// The OCI state JSON as `runc state` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

pub(crate) const OCI_VERSION: &str = "1.0.2";

/// Checks a container id the way runc does.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b'+');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

pub(crate) fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

pub(crate) fn fifo_path(root: &Path, id: &str) -> PathBuf {
    root.join(id).join("exec.fifo")
}

pub(crate) fn save(root: &Path, saved: &Saved) -> Result<()> {
    let path = dir(root, &saved.id).join("state.json");
    let tmp = dir(root, &saved.id).join("state.json.tmp");
    let body = serde_json::to_vec(saved).map_err(|e| Error::State {
        id: saved.id.clone(),
        msg: e.to_string(),
    })?;
    fs::write(&tmp, body).map_err(|e| Error::io("writing state", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("writing state", &path, e))
}

pub(crate) fn load(root: &Path, id: &str) -> Result<Saved> {
    validate_id(id)?;
    let path = dir(root, id).join("state.json");
    let body = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(id.into()))
        }
        Err(e) => return Err(Error::io("reading state", path, e)),
    };
    serde_json::from_slice(&body).map_err(|e| Error::State {
        id: id.into(),
        msg: format!("corrupt state.json: {e}"),
    })
}

/// Start time of a process, or None if it does not exist (or is a zombie).
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3; starttime is field 22 → index 19 after state.
    fields.nth(18)?.parse().ok()
}

/// Current status of a saved container.
pub(crate) fn status(root: &Path, saved: &Saved) -> Status {
    if saved.pid <= 0 {
        return Status::Stopped;
    }
    match proc_start_time(saved.pid) {
        Some(t) if t == saved.pid_start => {}
        _ => return Status::Stopped,
    }
    if fifo_path(root, &saved.id).exists() {
        return Status::Created;
    }
    if saved.cgroup.is_frozen() {
        return Status::Paused;
    }
    Status::Running
}

pub(crate) fn oci_state(root: &Path, saved: &Saved) -> OciState {
    let status = status(root, saved);
    OciState {
        oci_version: OCI_VERSION.into(),
        id: saved.id.clone(),
        pid: if status == Status::Stopped {
            0
        } else {
            saved.pid
        },
        status,
        bundle: saved.bundle.clone(),
        rootfs: saved.rootfs.clone(),
        created: saved.created.clone(),
        owner: saved.owner.clone(),
        annotations: saved.annotations.clone(),
    }
}

/// Ids of all containers under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(Error::io("listing", root, e)),
    };
    for ent in rd.flatten() {
        if ent.path().join("state.json").exists() {
            if let Some(name) = ent.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}
