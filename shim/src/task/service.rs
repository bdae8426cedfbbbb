//! The containerd shim v2 Task service over ttrpc: decodes requests, calls the
//! [`Supervisor`], maps errors to ttrpc codes once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use containerd_shim_protos::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use containerd_shim_protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::ttrpc::proto::ResponseInit;
use containerd_shim_protos::ttrpc::{self, Code, Request, Response};
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use serde::{Deserialize, Serialize};

use super::process::{IoPaths, ProcStatus};
use super::{timestamp, CreateRequest, Supervisor, TaskError};
use crate::backend::external::OciBinary;
use crate::backend::inprocess::BuiltIn;
use crate::backend::Runtime;
use crate::mount::MountSpec;
use crate::reaper::Reaper;
use crate::server::Dispatch;
use crate::server::Reply;

/// The runtime a container was created with, saved in its bundle so the `delete`
/// subcommand can clean up after a dead shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeChoice {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// The file in the bundle holding the [`RuntimeChoice`].
pub const RUNTIME_FILE: &str = "berth-runtime.json";

impl RuntimeChoice {
    /// The runtime from the Create options (runc's `BinaryName`, `Root`), else defaults.
    pub fn from_options(options: Option<&Any>, default: &RuntimeChoice) -> RuntimeChoice {
        let mut choice = default.clone();
        if let Some(any) = options.filter(|a| a.type_url.ends_with("containerd.runc.v1.Options")) {
            if let Ok(opts) = RuncOptions::parse_from_bytes(&any.value) {
                if !opts.binary_name.is_empty() {
                    choice.binary = PathBuf::from(opts.binary_name);
                }
                if !opts.root.is_empty() {
                    choice.root = PathBuf::from(opts.root);
                }
            }
        }
        choice
    }

    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(format!(".{RUNTIME_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, bundle.join(RUNTIME_FILE))
    }

    pub fn load(bundle: &Path) -> Option<RuntimeChoice> {
        let text = std::fs::read(bundle.join(RUNTIME_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// The Task service.
pub struct TaskService {
    pub supervisor: Arc<Supervisor>,
    pub reaper: Arc<Reaper>,
    pub default_runtime: RuntimeChoice,
    /// Told when the shim should exit.
    pub shutdown: Mutex<Sender<()>>,
    runtimes: Mutex<HashMap<RuntimeChoice, Arc<dyn Runtime>>>,
}

impl std::hash::Hash for RuntimeChoice {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.binary.hash(state);
        self.root.hash(state);
    }
}

fn status(e: TaskError) -> ttrpc::Error {
    let code = match &e {
        TaskError::NotFound(_) => Code::NOT_FOUND,
        TaskError::AlreadyExists(_) => Code::ALREADY_EXISTS,
        TaskError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
        TaskError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
        _ => Code::UNKNOWN,
    };
    tracing::warn!("{e}");
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
}

fn proc_status(s: ProcStatus) -> Status {
    match s {
        ProcStatus::Created => Status::CREATED,
        ProcStatus::Running => Status::RUNNING,
        ProcStatus::Paused => Status::PAUSED,
        ProcStatus::Stopped => Status::STOPPED,
    }
}

impl TaskService {
    pub fn new(
        supervisor: Arc<Supervisor>,
        reaper: Arc<Reaper>,
        default_runtime: RuntimeChoice,
        shutdown: Sender<()>,
    ) -> TaskService {
        TaskService {
            supervisor,
            reaper,
            default_runtime,
            shutdown: Mutex::new(shutdown),
            runtimes: Mutex::new(HashMap::new()),
        }
    }

    fn runtime_for(&self, choice: &RuntimeChoice) -> Arc<dyn Runtime> {
        let mut map = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            map.entry(choice.clone())
                .or_insert_with(|| make_runtime(choice, &self.reaper)),
        )
    }
}

/// The runtime `choice` names: the built-in one for [`inprocess::NAME`], else an OCI
/// runtime binary with runc's command line.
///
/// [`inprocess::NAME`]: crate::backend::inprocess::NAME
pub fn make_runtime(choice: &RuntimeChoice, reaper: &Arc<Reaper>) -> Arc<dyn Runtime> {
    if choice.binary.as_os_str() == crate::backend::inprocess::NAME {
        Arc::new(BuiltIn::new(&choice.root, Arc::clone(reaper)))
    } else {
        Arc::new(OciBinary::new(
            &choice.binary,
            &choice.root,
            Arc::clone(reaper),
        ))
    }
}

/// Gives the pages freed after a Create or Start (the OCI spec, the runtime's plan)
/// back to the kernel: the shim then idles for the container's lifetime, and glibc
/// would keep them as part of every shim's private memory.
fn release_free_memory() {
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The Task methods, called by [`TaskService::answer`].
impl TaskService {
    fn create(&self, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let _span = tracing::info_span!("create", container = %req.id).entered();
        if !req.checkpoint.is_empty() {
            return Err(status(TaskError::InvalidArgument(
                "checkpoint/restore is not supported".into(),
            )));
        }
        let bundle = PathBuf::from(&req.bundle);
        let choice = RuntimeChoice::from_options(req.options.as_ref(), &self.default_runtime);
        choice.save(&bundle).map_err(|e| {
            status(TaskError::Internal(format!(
                "saving the runtime choice in {}: {e}",
                bundle.display()
            )))
        })?;
        let runtime = self.runtime_for(&choice);
        let rootfs = req
            .rootfs
            .iter()
            .map(|m| MountSpec {
                kind: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let pid = self
            .supervisor
            .create(CreateRequest {
                id: req.id.clone(),
                bundle,
                rootfs,
                io: IoPaths {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                },
                runtime,
            })
            .map_err(status)?;
        release_free_memory();
        let mut resp = CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn start(&self, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let pid = self
            .supervisor
            .start(&req.id, &req.exec_id)
            .map_err(status)?;
        release_free_memory();
        let mut resp = StartResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn state(&self, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let v = self
            .supervisor
            .state(&req.id, &req.exec_id)
            .map_err(status)?;
        let mut resp = StateResponse::new();
        resp.id = if req.exec_id.is_empty() {
            &req.id
        } else {
            &req.exec_id
        }
        .clone();
        resp.exec_id = req.exec_id.clone();
        resp.bundle = v.bundle.display().to_string();
        resp.pid = v.pid as u32;
        resp.status = EnumOrUnknown::new(proc_status(v.status));
        resp.stdin = v.io.stdin;
        resp.stdout = v.io.stdout;
        resp.stderr = v.io.stderr;
        resp.terminal = v.io.terminal;
        if let Some((code, at)) = v.exit {
            resp.exit_status = code;
            resp.exited_at = MessageField::some(timestamp(at));
        }
        Ok(resp)
    }

    fn kill(&self, req: KillRequest) -> ttrpc::Result<Empty> {
        self.supervisor
            .kill(&req.id, &req.exec_id, req.signal, req.all)
            .map_err(status)?;
        Ok(Empty::new())
    }

    fn delete(&self, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let (pid, code, at) = self
            .supervisor
            .delete(&req.id, &req.exec_id)
            .map_err(status)?;
        let mut resp = DeleteResponse::new();
        resp.pid = pid as u32;
        resp.exit_status = code;
        resp.exited_at = MessageField::some(timestamp(at));
        Ok(resp)
    }

    fn exec(&self, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let spec = req.spec.as_ref().map(|a| a.value.clone()).ok_or_else(|| {
            status(TaskError::InvalidArgument(
                "exec without a process spec".into(),
            ))
        })?;
        serde_json::from_slice::<serde_json::Value>(&spec).map_err(|e| {
            status(TaskError::InvalidArgument(format!(
                "exec process spec is not JSON: {e}"
            )))
        })?;
        let io = IoPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        self.supervisor
            .exec(&req.id, &req.exec_id, io, spec)
            .map_err(status)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        self.supervisor
            .resize(&req.id, &req.exec_id, req.width, req.height)
            .map_err(status)?;
        Ok(Empty::new())
    }

    fn close_io(&self, req: CloseIORequest) -> ttrpc::Result<Empty> {
        if req.stdin {
            self.supervisor
                .close_stdin(&req.id, &req.exec_id)
                .map_err(status)?;
        }
        Ok(Empty::new())
    }

    fn pids(&self, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let (runtime, _) = self.supervisor.runtime(&req.id).map_err(status)?;
        let pids = runtime.pids(&req.id).map_err(|e| status(e.into()))?;
        let execs = self.supervisor.exec_pids(&req.id);
        let mut resp = PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid as u32;
            if let Some(exec_id) = execs.get(&pid) {
                // containerd's ProcessDetails carries the exec id (field 1).
                let mut value = vec![0x0a, exec_id.len() as u8];
                value.extend_from_slice(exec_id.as_bytes());
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = value;
                info.info = MessageField::some(any);
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn pause(&self, req: PauseRequest) -> ttrpc::Result<Empty> {
        self.supervisor.set_paused(&req.id, true).map_err(status)?;
        Ok(Empty::new())
    }

    fn resume(&self, req: ResumeRequest) -> ttrpc::Result<Empty> {
        self.supervisor.set_paused(&req.id, false).map_err(status)?;
        Ok(Empty::new())
    }

    fn stats(&self, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let (runtime, _) = self.supervisor.runtime(&req.id).map_err(status)?;
        let stats = runtime.stats(&req.id).map_err(|e| status(e.into()))?;
        let metrics = cgroup_metrics(&stats).write_to_bytes().map_err(|e| {
            status(TaskError::FailedPrecondition(format!(
                "encoding stats: {e}"
            )))
        })?;
        let mut any = Any::new();
        // containerd (`ctr task metrics`, CRI stats) decodes this type for cgroup v1 and
        // reads the same fields of it on a v2 host through its v1 view.
        any.type_url = "io.containerd.cgroups.v1.Metrics".into();
        any.value = metrics;
        let mut resp = StatsResponse::new();
        resp.stats = MessageField::some(any);
        Ok(resp)
    }

    fn update(&self, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let (runtime, _) = self.supervisor.runtime(&req.id).map_err(status)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| {
                status(TaskError::InvalidArgument(
                    "update without resources".into(),
                ))
            })?;
        runtime
            .update(&req.id, &resources)
            .map_err(|e| status(e.into()))?;
        Ok(Empty::new())
    }

    fn wait(&self, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let (code, at) = self
            .supervisor
            .wait(&req.id, &req.exec_id)
            .map_err(status)?;
        let mut resp = WaitResponse::new();
        resp.exit_status = code;
        resp.exited_at = MessageField::some(timestamp(at));
        Ok(resp)
    }

    /// Wait without a thread: answered by the thread that applies the exit (a
    /// health check's Wait every second wakes no thread of its own). Other methods are
    /// handed back.
    fn wait_deferred(&self, req: &Request, reply: Reply) -> Option<Reply> {
        if req.method != "Wait" || !SERVICES.contains(&req.service.as_str()) {
            return Some(reply);
        }
        let w = match WaitRequest::parse_from_bytes(&req.payload) {
            Ok(w) => w,
            Err(_) => {
                // The threaded path answers a request it cannot read.
                return Some(reply);
            }
        };
        self.supervisor.wait_then(
            &w.id,
            &w.exec_id,
            Box::new(move |result| {
                let payload = result.map_err(status).map(|(code, at)| {
                    let mut resp = WaitResponse::new();
                    resp.exit_status = code;
                    resp.exited_at = MessageField::some(timestamp(at));
                    resp
                });
                reply(response(payload));
            }),
        );
        None
    }

    fn connect(&self, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let mut resp = ConnectResponse::new();
        resp.shim_pid = std::process::id();
        if let Ok((_, pid)) = self.supervisor.runtime(&req.id) {
            resp.task_pid = pid as u32;
        }
        resp.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(resp)
    }

    fn shutdown(&self, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        if req.now || self.supervisor.is_empty() {
            let _ = self
                .shutdown
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(());
        }
        Ok(Empty::new())
    }
}

/// containerd's cgroup metrics message for the container's usage.
fn cgroup_metrics(s: &berth_runtime::Stats) -> Metrics {
    let mut m = Metrics::new();
    let mut pids = PidsStat::new();
    pids.current = s.pids_current;
    pids.limit = s.pids_limit;
    m.pids = MessageField::some(pids);
    let mut usage = CPUUsage::new();
    usage.total = s.cpu_usage_ns;
    usage.user = s.cpu_user_ns;
    usage.kernel = s.cpu_system_ns;
    let mut cpu = CPUStat::new();
    cpu.usage = MessageField::some(usage);
    m.cpu = MessageField::some(cpu);
    let mut entry = MemoryEntry::new();
    entry.usage = s.memory_usage;
    entry.limit = s.memory_limit;
    entry.max = s.memory_max_usage;
    let mut memory = MemoryStat::new();
    memory.usage = MessageField::some(entry);
    m.memory = MessageField::some(memory);
    m
}

/// The services served: containerd 1.6's `containerd.task.v2.Task` and
/// `containerd.task.v3.Task` (same messages, renamed package).
const SERVICES: [&str; 2] = ["containerd.task.v2.Task", "containerd.task.v3.Task"];

/// Decodes a request's payload, calls `method`, encodes its answer.
fn call<Req: Message, Resp: Message>(
    payload: &[u8],
    method: impl FnOnce(Req) -> ttrpc::Result<Resp>,
) -> Response {
    let req = match Req::parse_from_bytes(payload) {
        Ok(r) => r,
        Err(e) => {
            return Response::init_status(ttrpc::get_status(
                Code::INVALID_ARGUMENT,
                format!("Unpack request error {e}"),
            ))
        }
    };
    response(method(req))
}

/// The response frame's message for a method's result.
fn response<Resp: Message>(result: ttrpc::Result<Resp>) -> Response {
    match result.and_then(|resp| {
        resp.write_to_bytes()
            .map_err(|e| ttrpc::Error::Others(format!("Encoding response {e}")))
    }) {
        Ok(payload) => {
            let mut r = Response::init_status(ttrpc::get_status(Code::OK, ""));
            ResponseInit::set_payload(&mut r, payload);
            r
        }
        Err(ttrpc::Error::RpcStatus(s)) => Response::init_status(s),
        Err(e) => Response::init_status(ttrpc::get_status(Code::UNKNOWN, format!("{e:?}"))),
    }
}

impl TaskService {
    /// Answers one ttrpc request with the method it names, with the statuses the ttrpc
    /// crate's server gave: an unknown method is INVALID_ARGUMENT "… does not exist",
    /// Checkpoint (not implemented) NOT_FOUND "… is not supported".
    pub fn answer(&self, req: &Request) -> Response {
        if !SERVICES.contains(&req.service.as_str()) {
            return does_not_exist(req);
        }
        let p = &req.payload;
        match req.method.as_str() {
            "State" => call(p, |r| self.state(r)),
            "Create" => call(p, |r| self.create(r)),
            "Start" => call(p, |r| self.start(r)),
            "Delete" => call(p, |r| self.delete(r)),
            "Pids" => call(p, |r| self.pids(r)),
            "Pause" => call(p, |r| self.pause(r)),
            "Resume" => call(p, |r| self.resume(r)),
            "Kill" => call(p, |r| self.kill(r)),
            "Exec" => call(p, |r| self.exec(r)),
            "ResizePty" => call(p, |r| self.resize_pty(r)),
            "CloseIO" => call(p, |r| self.close_io(r)),
            "Update" => call(p, |r| self.update(r)),
            "Wait" => call(p, |r| self.wait(r)),
            "Stats" => call(p, |r| self.stats(r)),
            "Connect" => call(p, |r| self.connect(r)),
            "Shutdown" => call(p, |r| self.shutdown(r)),
            "Checkpoint" => Response::init_status(ttrpc::get_status(
                Code::NOT_FOUND,
                "/containerd.task.v3.Task/Checkpoint is not supported",
            )),
            _ => does_not_exist(req),
        }
    }
}

fn does_not_exist(req: &Request) -> Response {
    Response::init_status(ttrpc::get_status(
        Code::INVALID_ARGUMENT,
        format!("/{}/{} does not exist", req.service, req.method),
    ))
}

/// The shim's ttrpc server's table: every method answered by `service`, Wait (which
/// blocks until the process exits) on a thread of its own.
pub fn dispatch(service: Arc<TaskService>) -> Dispatch {
    let waits = Arc::clone(&service);
    Dispatch {
        answer: Box::new(move |req| service.answer(req)),
        blocking: &["Wait"],
        deferred: Some(Box::new(move |req, reply| waits.wait_deferred(req, reply))),
    }
}
