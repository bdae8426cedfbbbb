//! An external OCI runtime binary with runc's command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::{ProcStdio, Runtime, RuntimeError, RuntimeState, Spawn};
use crate::reaper::Reaper;

/// runc, crun or `berth-runtime` run as a binary.
pub struct OciBinary {
    binary: PathBuf,
    name: String,
    /// The runtime's `--root` (its state directory).
    root: PathBuf,
    reaper: Arc<Reaper>,
}

impl OciBinary {
    /// A runtime running `binary` with state under `root`.
    pub fn new(binary: &Path, root: &Path, reaper: Arc<Reaper>) -> OciBinary {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.display().to_string());
        OciBinary {
            binary: binary.to_path_buf(),
            name,
            root: root.to_path_buf(),
            reaper,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    fn run_err(
        &self,
        op: &'static str,
        id: &str,
        source: crate::reaper::ReapError,
    ) -> RuntimeError {
        RuntimeError::Run {
            runtime: self.name.clone(),
            op,
            id: id.to_string(),
            source,
        }
    }

    /// Runs a short command, capturing output; fails with its stderr on non-zero exit.
    fn simple(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let mut cmd = self.command();
        cmd.args(args).stdin(Stdio::null());
        let (code, out, err) = self
            .reaper
            .output(&mut cmd)
            .map_err(|e| self.run_err(op, id, e))?;
        if code != 0 {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op,
                id: id.to_string(),
                message: message(&err, code),
            });
        }
        Ok(out)
    }

    /// Runs create/exec: the new process inherits the command's stdio, errors come
    /// through the runtime's `--log` file.
    fn spawning(
        &self,
        op: &'static str,
        args: Vec<std::ffi::OsString>,
        spawn: Spawn<'_>,
    ) -> Result<i32, RuntimeError> {
        let id = spawn.id.to_string();
        let log = spawn.pid_file.with_extension("runtime.log");
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(&spawn.pid_file);
        let mut cmd = self.command();
        cmd.arg("--log").arg(&log).arg("--log-format").arg("json");
        cmd.args(args);
        if let Some(sock) = spawn.console_socket {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg("--pid-file").arg(&spawn.pid_file);
        // Flags end at the first operand: the container id goes last.
        cmd.arg(&id);
        let ProcStdio {
            stdin,
            stdout,
            stderr,
        } = spawn.stdio;
        cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from));
        cmd.stdout(stdout.map_or_else(Stdio::null, Stdio::from));
        cmd.stderr(stderr.map_or_else(Stdio::null, Stdio::from));
        let code = self
            .reaper
            .status(&mut cmd)
            .map_err(|e| self.run_err(op, &id, e))?;
        // The command (and its copies of the stdio fds) is gone: drop ours too.
        drop(cmd);
        if code != 0 {
            let text = std::fs::read(&log).unwrap_or_default();
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op,
                id,
                message: log_message(&text, code),
            });
        }
        let pid = std::fs::read_to_string(&spawn.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .ok_or_else(|| RuntimeError::Output {
                runtime: self.name.clone(),
                op,
                id: id.clone(),
                message: format!("no pid in {}", spawn.pid_file.display()),
            })?;
        Ok(pid)
    }
}

/// The last error of a runtime's JSON log, or its raw text.
fn log_message(text: &[u8], code: u32) -> String {
    let text = String::from_utf8_lossy(text);
    let last = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .find_map(|v| v["msg"].as_str().map(str::to_string));
    match last {
        Some(m) => m,
        None => message(text.as_bytes(), code),
    }
}

fn message(stderr: &[u8], code: u32) -> String {
    let s = String::from_utf8_lossy(stderr).trim().to_string();
    if s.is_empty() {
        format!("exited with status {code}")
    } else {
        s
    }
}

impl Runtime for OciBinary {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, bundle: &Path, spawn: Spawn<'_>) -> Result<i32, RuntimeError> {
        let args = vec![
            "create".into(),
            "--bundle".into(),
            bundle.as_os_str().to_owned(),
        ];
        self.spawning("create", args, spawn)
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("start", id, &["start", id]).map(drop)
    }

    fn exec(
        &self,
        process: &[u8],
        process_file: &Path,
        spawn: Spawn<'_>,
    ) -> Result<i32, RuntimeError> {
        std::fs::write(process_file, process).map_err(|e| RuntimeError::Failed {
            runtime: self.name.clone(),
            op: "exec",
            id: spawn.id.to_string(),
            message: format!("writing {}: {e}", process_file.display()),
        })?;
        let args = vec![
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            process_file.as_os_str().to_owned(),
        ];
        let result = self.spawning("exec", args, spawn);
        let _ = std::fs::remove_file(process_file);
        result
    }

    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.simple("kill", id, &args).map(drop)
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.simple("delete", id, &args).map(drop)
    }

    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError> {
        let out = self.simple("state", id, &["state", id])?;
        let v: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| RuntimeError::Output {
                runtime: self.name.clone(),
                op: "state",
                id: id.to_string(),
                message: e.to_string(),
            })?;
        Ok(RuntimeState {
            status: v["status"].as_str().unwrap_or("unknown").to_string(),
            pid: v["pid"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
        })
    }

    fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("pause", id, &["pause", id]).map(drop)
    }

    fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("resume", id, &["resume", id]).map(drop)
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        let out = self.simple("ps", id, &["ps", "--format", "json", id])?;
        serde_json::from_slice::<Option<Vec<i32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| RuntimeError::Output {
                runtime: self.name.clone(),
                op: "ps",
                id: id.to_string(),
                message: e.to_string(),
            })
    }

    fn stats(&self, id: &str) -> Result<berth_runtime::Stats, RuntimeError> {
        let out = self.simple("events", id, &["events", "--stats", id])?;
        let event: RuncEvent = serde_json::from_slice(&out).map_err(|e| RuntimeError::Output {
            runtime: self.name.clone(),
            op: "events",
            id: id.to_string(),
            message: e.to_string(),
        })?;
        let d = event.data;
        Ok(berth_runtime::Stats {
            cpu_usage_ns: d.cpu.usage.total,
            cpu_user_ns: d.cpu.usage.user,
            cpu_system_ns: d.cpu.usage.kernel,
            memory_usage: d.memory.usage.usage,
            memory_limit: d.memory.usage.limit,
            memory_max_usage: d.memory.usage.max,
            pids_current: d.pids.current,
            pids_limit: d.pids.limit,
            ..berth_runtime::Stats::default()
        })
    }

    fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError> {
        let io_err = |e: std::io::Error| RuntimeError::Output {
            runtime: self.name.clone(),
            op: "update",
            id: id.to_string(),
            message: e.to_string(),
        };
        let mut file = tempfile_in_root(&self.root).map_err(io_err)?;
        file.1.write_all(resources_json).map_err(io_err)?;
        let path = file.0.to_string_lossy().into_owned();
        let res = self.simple("update", id, &["update", "--resources", &path, id]);
        let _ = std::fs::remove_file(&file.0);
        res.map(drop)
    }
}

/// The parts of `runc events --stats` output berth reports (runc's `types.Event`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncEvent {
    data: RuncStats,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncStats {
    cpu: RuncCpu,
    memory: RuncMemory,
    pids: RuncPids,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncCpu {
    usage: RuncCpuUsage,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncCpuUsage {
    total: u64,
    kernel: u64,
    user: u64,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncMemory {
    usage: RuncMemoryEntry,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncMemoryEntry {
    usage: u64,
    limit: u64,
    max: u64,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RuncPids {
    current: u64,
    limit: u64,
}

fn tempfile_in_root(root: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(root)?;
    let path = root.join(format!(".update-{}-{}.json", std::process::id(), nanos()));
    let f = std::fs::File::create(&path)?;
    Ok((path, f))
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
