//! Talking to a container's berth-shim: launching it (containerd's `start` bootstrap,
//! without containerd: no event publisher) and calling its Task service over ttrpc.
//!
//! Every call is blocking (plain Unix sockets, see `shim_conn`); callers run them on
//! tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;

use crate::shim_conn::Conns;

/// The shim namespace berthd uses (names the runtime state dir and the socket hash).
pub const NAMESPACE: &str = "berth";

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("starting berth-shim ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("berth-shim start failed: {0}")]
    Start(String),
    #[error("connecting to the shim at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("shim {call}: {message}")]
    Call { call: &'static str, message: String },
}

/// An OCI runtime binary (runc's command line) the shim runs instead of its
/// built-in runtime: a runtime handler from berthd's `[runtimes]`.
#[derive(Debug, Clone)]
pub struct ExternalRuntime {
    pub binary: PathBuf,
    /// The runtime's `--root` (its state directory).
    pub root: PathBuf,
}

impl ExternalRuntime {
    /// containerd's runc Options, which berth-shim reads from the Create request.
    fn options(
        &self,
    ) -> Result<containerd_shim_protos::protobuf::well_known_types::any::Any, ShimError> {
        use containerd_shim_protos::protobuf::Message;
        let opts = containerd_shim_protos::shim::oci::Options {
            binary_name: self.binary.display().to_string(),
            root: self.root.display().to_string(),
            ..Default::default()
        };
        let value = opts.write_to_bytes().map_err(|e| ShimError::Call {
            call: "create",
            message: format!("encoding the runtime options: {e}"),
        })?;
        Ok(
            containerd_shim_protos::protobuf::well_known_types::any::Any {
                type_url: "containerd.runc.v1.Options".to_string(),
                value,
                ..Default::default()
            },
        )
    }
}

/// A connected shim.
pub struct Shim {
    conns: Conns,
    pub address: String,
}

/// Runs `berth-shim start` for container `id` in `bundle`; returns the shim's address.
pub fn launch(
    binary: &Path,
    daemon_socket: &Path,
    id: &str,
    bundle: &Path,
) -> Result<String, ShimError> {
    let out = Command::new(binary)
        .args(["-namespace", NAMESPACE, "-address"])
        .arg(daemon_socket)
        .args(["-id", id, "start"])
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|source| ShimError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ShimError::Start(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !address.starts_with("unix://") {
        return Err(ShimError::Start(format!("unexpected address {address:?}")));
    }
    Ok(address)
}

/// The Exec request registering `spec` (an OCI process, JSON) with the stdio in `io`.
fn exec_request(id: &str, exec_id: &str, spec: &[u8], io: &ExecIo) -> api::ExecProcessRequest {
    let mut any = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
    any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".to_string();
    any.value = spec.to_vec();
    api::ExecProcessRequest {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        terminal: io.terminal,
        stdin: path_or_empty(io.stdin.as_deref()),
        stdout: path_or_empty(io.stdout.as_deref()),
        stderr: path_or_empty(io.stderr.as_deref()),
        spec: containerd_shim_protos::protobuf::MessageField::some(any),
        ..Default::default()
    }
}

fn call_err(call: &'static str) -> impl Fn(containerd_shim_protos::ttrpc::Error) -> ShimError {
    move |e| ShimError::Call {
        call,
        // The shim's own words, not the Debug dump of the ttrpc status around them:
        // clients read them (docker's CLI picks exit codes 126/127 from them).
        message: match e {
            containerd_shim_protos::ttrpc::Error::RpcStatus(status) => status.message,
            other => other.to_string(),
        },
    }
}

impl Shim {
    pub fn connect(address: &str) -> Result<Shim, ShimError> {
        let conns = Conns::connect(address).map_err(|e| ShimError::Connect {
            address: address.to_string(),
            message: e.to_string(),
        })?;
        Ok(Shim {
            conns,
            address: address.to_string(),
        })
    }

    /// Creates the task: the shim mounts `rootfs`, writes stdout/stderr to `log` (a
    /// log URI, [`crate::logs::settings::LogSettings::shim_target`]; empty: nowhere), reads stdin from `stdin` when there is one (a FIFO, or
    /// `reopen://` and a FIFO kept open across its clients), runs the runtime's create (the built-in runtime, or the
    /// external one in `runtime`). Returns the pid.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        rootfs: &[berth_snapshotter::Mount],
        log: &str,
        stdin: Option<&str>,
        terminal: bool,
        runtime: Option<&ExternalRuntime>,
    ) -> Result<u32, ShimError> {
        let target = log.to_string();
        let options = match runtime {
            Some(r) => Some(r.options()?),
            None => None,
        };
        let req = api::CreateTaskRequest {
            options: options.into(),
            id: id.to_string(),
            bundle: bundle.display().to_string(),
            rootfs: rootfs
                .iter()
                .map(|m| api::Mount {
                    type_: m.kind.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                    ..Default::default()
                })
                .collect(),
            terminal,
            stdin: stdin.unwrap_or_default().to_string(),
            stdout: target.clone(),
            stderr: if terminal { String::new() } else { target },
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::CreateTaskResponse>("Create", &req)
            .map_err(call_err("create"))?;
        Ok(resp.pid)
    }

    pub fn start(&self, id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::StartResponse>("Start", &req)
            .map_err(call_err("start"))?;
        Ok(resp.pid)
    }

    /// Blocks until the task exits: (exit status, exited at as Unix nanoseconds).
    pub fn wait(&self, id: &str) -> Result<(u32, i128), ShimError> {
        let req = api::WaitRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::WaitResponse>("Wait", &req)
            .map_err(call_err("wait"))?;
        let at = resp
            .exited_at
            .as_ref()
            .map(|t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128)
            .unwrap_or(0);
        Ok((resp.exit_status, at))
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), ShimError> {
        let req = api::KillRequest {
            id: id.to_string(),
            signal,
            all,
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("Kill", &req)
            .map_err(call_err("kill"))?;
        Ok(())
    }

    /// The task's status (`running`, `stopped`, …) and pid.
    pub fn state(&self, id: &str) -> Result<(String, u32), ShimError> {
        let req = api::StateRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::StateResponse>("State", &req)
            .map_err(call_err("state"))?;
        let status = format!("{:?}", resp.status.enum_value_or_default()).to_lowercase();
        Ok((status, resp.pid))
    }

    pub fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let req = api::PidsRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::PidsResponse>("Pids", &req)
            .map_err(call_err("pids"))?;
        Ok(resp.processes.iter().map(|p| p.pid).collect())
    }

    pub fn pause(&self, id: &str) -> Result<(), ShimError> {
        let req = api::PauseRequest {
            id: id.to_string(),
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("Pause", &req)
            .map_err(call_err("pause"))?;
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ResumeRequest {
            id: id.to_string(),
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("Resume", &req)
            .map_err(call_err("resume"))?;
        Ok(())
    }

    /// Deletes the exited task (the shim unmounts the rootfs and forgets it).
    pub fn delete(&self, id: &str) -> Result<(), ShimError> {
        let req = api::DeleteRequest {
            id: id.to_string(),
            ..Default::default()
        };
        self.conns
            .call::<_, api::DeleteResponse>("Delete", &req)
            .map_err(call_err("delete"))?;
        Ok(())
    }

    /// Registers, starts and waits for an exec in one batch of calls, on the async
    /// runtime (`Conns::call_batch`: one write, the shim woken once to read the three):
    /// `started` is called when the start is answered. The exec's exit status; an exec
    /// that failed is left for the caller to delete. `delete_first`: an exited exec of the same
    /// container deleted at the head of the batch (a health check's previous one), so
    /// its Delete costs no round trip of its own; its answer is not looked at (an exec
    /// already gone is gone).
    pub async fn run_exec(
        &self,
        id: &str,
        exec_id: &str,
        spec: &[u8],
        io: &ExecIo,
        delete_first: Option<&str>,
        mut started: impl FnMut(),
    ) -> Result<u32, ShimError> {
        use containerd_shim_protos::ttrpc::proto::Codec;
        let encode = |what: &'static str, bytes: Result<Vec<u8>, _>| {
            bytes.map_err(
                |e: containerd_shim_protos::protobuf::Error| ShimError::Call {
                    call: what,
                    message: format!("encoding the request: {e}"),
                },
            )
        };
        let exec = encode("exec", Codec::encode(&exec_request(id, exec_id, spec, io)))?;
        let start = encode(
            "start exec",
            Codec::encode(&api::StartRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            }),
        )?;
        let wait = encode(
            "wait exec",
            Codec::encode(&api::WaitRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            }),
        )?;
        let mut calls = Vec::with_capacity(4);
        if let Some(old) = delete_first {
            let delete = encode(
                "delete exec",
                Codec::encode(&api::DeleteRequest {
                    id: id.to_string(),
                    exec_id: old.to_string(),
                    ..Default::default()
                }),
            )?;
            calls.push(("Delete", delete));
        }
        let first = calls.len();
        calls.extend([("Exec", exec), ("Start", start), ("Wait", wait)]);
        let mut answers = self
            .conns
            .call_batch(&calls, |i, answer| {
                if i == first + 1 && answer.is_ok() {
                    started();
                }
            })
            .await
            .map_err(call_err("exec"))?
            .into_iter()
            .skip(first);
        let (exec, start, wait) = match (answers.next(), answers.next(), answers.next()) {
            (Some(e), Some(s), Some(w)) => (e, s, w),
            _ => {
                return Err(ShimError::Call {
                    call: "exec",
                    message: "the shim gave fewer answers than calls".into(),
                })
            }
        };
        exec.map_err(call_err("exec"))?;
        start.map_err(call_err("start exec"))?;
        let wait = wait.map_err(call_err("wait exec"))?;
        let resp: api::WaitResponse = Codec::decode(&wait).map_err(|e| ShimError::Call {
            call: "wait exec",
            message: format!("decoding the response: {e}"),
        })?;
        Ok(resp.exit_status)
    }

    /// Registers an exec process in the container: `spec` is its OCI process (JSON);
    /// its stdio goes through the FIFOs (or files) in `io`.
    pub fn exec(&self, id: &str, exec_id: &str, spec: &[u8], io: &ExecIo) -> Result<(), ShimError> {
        let req = exec_request(id, exec_id, spec, io);
        self.conns
            .call::<_, Empty>("Exec", &req)
            .map_err(call_err("exec"))?;
        Ok(())
    }

    /// Starts a registered exec process; returns its pid.
    pub fn start_exec(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::StartResponse>("Start", &req)
            .map_err(call_err("start exec"))?;
        Ok(resp.pid)
    }

    /// Blocks until the exec process exits; returns its exit status.
    pub fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::WaitRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::WaitResponse>("Wait", &req)
            .map_err(call_err("wait exec"))?;
        Ok(resp.exit_status)
    }

    pub fn kill_exec(&self, id: &str, exec_id: &str, signal: u32) -> Result<(), ShimError> {
        let req = api::KillRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal,
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("Kill", &req)
            .map_err(call_err("kill exec"))?;
        Ok(())
    }

    /// Forgets an exited exec process.
    pub fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let req = api::DeleteRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.conns
            .call::<_, api::DeleteResponse>("Delete", &req)
            .map_err(call_err("delete exec"))?;
        Ok(())
    }

    /// Sets the terminal size of the container's process (`exec_id` empty) or of an
    /// exec.
    pub fn resize_pty(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ShimError> {
        let req = api::ResizePtyRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("ResizePty", &req)
            .map_err(call_err("resize"))?;
        Ok(())
    }

    /// Closes the stdin of the container's process (`exec_id` empty) or of an exec.
    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let req = api::CloseIORequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("CloseIO", &req)
            .map_err(call_err("close stdin"))?;
        Ok(())
    }

    /// Changes the running task's cgroup limits; `resources` is OCI `linux.resources`
    /// as JSON.
    pub fn update(&self, id: &str, resources: &[u8]) -> Result<(), ShimError> {
        let mut any = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
        any.type_url =
            "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".to_string();
        any.value = resources.to_vec();
        let req = api::UpdateTaskRequest {
            id: id.to_string(),
            resources: containerd_shim_protos::protobuf::MessageField::some(any),
            ..Default::default()
        };
        self.conns
            .call::<_, Empty>("Update", &req)
            .map_err(call_err("update"))?;
        Ok(())
    }

    /// The shim's own process id (Connect).
    pub fn shim_pid(&self, id: &str) -> Result<u32, ShimError> {
        let req = api::ConnectRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .conns
            .call::<_, api::ConnectResponse>("Connect", &req)
            .map_err(call_err("connect"))?;
        Ok(resp.shim_pid)
    }

    /// Asks the shim to exit once it holds no task any more: a pod's shim stays
    /// while other containers of the pod run in it.
    pub fn shutdown(&self, id: &str) {
        let req = api::ShutdownRequest {
            id: id.to_string(),
            now: false,
            ..Default::default()
        };
        // The shim exits while answering: a broken connection is success here.
        let _ = self.conns.call::<_, Empty>("Shutdown", &req);
    }
}

/// Where an exec's stdio goes: FIFOs (or plain files for output); `None` is none.
#[derive(Debug, Clone, Default)]
pub struct ExecIo {
    pub stdin: Option<std::path::PathBuf>,
    pub stdout: Option<std::path::PathBuf>,
    pub stderr: Option<std::path::PathBuf>,
    pub terminal: bool,
}

fn path_or_empty(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// Cleans up after a shim that died: `berth-shim -id ID -bundle B delete` force-deletes
/// the container in its runtime and unmounts its rootfs.
pub fn delete_dead(binary: &Path, daemon_socket: &Path, id: &str, bundle: &Path) {
    let out = Command::new(binary)
        .args(["-namespace", NAMESPACE, "-address"])
        .arg(daemon_socket)
        .args(["-id", id, "-bundle"])
        .arg(bundle)
        .arg("delete")
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(
            id,
            "berth-shim delete: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => tracing::warn!(id, "berth-shim delete: {e}"),
    }
}
