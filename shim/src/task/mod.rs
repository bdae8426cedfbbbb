//! The containers one shim supervises, and the operations of the Task API on them.

pub mod process;
pub mod service;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics;

use crate::backend::{Runtime, RuntimeError, Spawn};
use crate::events::Publisher;
use crate::exit_record::ExitRecord;
use crate::mount::{mount_all, unmount_all, MountError, MountSpec};
use crate::stdio::{PreparedIo, StdioError};
use process::{drain, IoPaths, Paths, Proc, ProcStatus};

/// Errors of Task operations, mapped to ttrpc codes in [`service`].
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{0}")]
    Internal(String),
}

/// A container: its init process and exec processes.
pub struct Container {
    pub paths: Paths,
    pub runtime: Arc<dyn Runtime>,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
    pub mounted: bool,
}

impl Container {
    fn proc(&self, id: &str, exec_id: &str) -> Result<&Proc, TaskError> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id} of container {id}")))
    }

    fn proc_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc, TaskError> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id} of container {id}")))
    }
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Container>,
    /// Exits of pids not (yet) known: a process can exit before its creator
    /// learns its pid.
    early_exits: HashMap<i32, (u32, SystemTime)>,
    /// Waits answered when their process exits or goes (see `Supervisor::wait_then`).
    waiters: Vec<Waiter>,
}

/// The answer of a Wait: (status, time), or why there is none.
pub type WaitResult = Result<(u32, SystemTime), TaskError>;

/// A Wait whose process had not exited: its answer is sent by whoever sees it exit.
struct Waiter {
    id: String,
    exec_id: String,
    reply: Box<dyn FnOnce(WaitResult) + Send>,
}

/// What a Create request asks for.
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Vec<MountSpec>,
    pub io: IoPaths,
    pub runtime: Arc<dyn Runtime>,
}

/// The shim's containers.
pub struct Supervisor {
    table: Mutex<Table>,
    changed: Condvar,
    publisher: Publisher,
    /// Directory for console sockets (short paths).
    socket_dir: PathBuf,
}

/// Validates an id used in file names.
pub fn check_id(kind: &str, id: &str) -> Result<(), TaskError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TaskError::InvalidArgument(format!(
            "invalid {kind} id {id:?}: use letters, digits, '_', '.', '-' (max 128)"
        )))
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}

impl Supervisor {
    pub fn new(publisher: Publisher, socket_dir: PathBuf) -> Supervisor {
        Supervisor {
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
            publisher,
            socket_dir,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn console_path(&self, id: &str, exec_id: &str) -> PathBuf {
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{}/{id}/{exec_id}", std::process::id()));
        self.socket_dir
            .join(format!("c-{}.sock", hex::encode(&h[..12])))
    }

    /// Number of containers held.
    pub fn len(&self) -> usize {
        self.lock().containers.len()
    }

    /// Whether no container is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates a container: mounts its rootfs, prepares stdio, runs the runtime.
    pub fn create(&self, req: CreateRequest) -> Result<i32, TaskError> {
        check_id("container", &req.id)?;
        let paths = Paths {
            bundle: req.bundle.clone(),
        };
        {
            let mut t = self.lock();
            if t.containers.contains_key(&req.id) {
                return Err(TaskError::AlreadyExists(format!("container {}", req.id)));
            }
            // Reserve the id while the runtime works.
            let mut c = Container {
                paths: paths.clone(),
                runtime: Arc::clone(&req.runtime),
                init: Proc::new(req.io.clone()),
                execs: HashMap::new(),
                mounted: false,
            };
            c.init.status = ProcStatus::Created;
            t.containers.insert(req.id.clone(), c);
        }
        let result = self.create_inner(&req, &paths);
        let mut t = self.lock();
        match result {
            Ok((pid, io, mounted)) => {
                let early = t.early_exits.remove(&pid);
                if let Some(c) = t.containers.get_mut(&req.id) {
                    c.init.pid = pid;
                    c.init.io = io;
                    c.mounted = mounted;
                }
                drop(t);
                let mut ev = TaskCreate::new();
                ev.container_id = req.id.clone();
                ev.bundle = req.bundle.display().to_string();
                let mut tio = TaskIO::new();
                tio.stdin = req.io.stdin.clone();
                tio.stdout = req.io.stdout.clone();
                tio.stderr = req.io.stderr.clone();
                tio.terminal = req.io.terminal;
                ev.io = MessageField::some(tio);
                ev.pid = pid as u32;
                self.publisher.send(topics::TASK_CREATE_EVENT_TOPIC, &ev);
                if let Some((code, at)) = early {
                    self.apply_exit(&req.id, "", pid, code, at);
                }
                Ok(pid)
            }
            Err(e) => {
                t.containers.remove(&req.id);
                drop(t);
                self.settle_waiters();
                Err(e)
            }
        }
    }

    fn create_inner(
        &self,
        req: &CreateRequest,
        paths: &Paths,
    ) -> Result<(i32, crate::stdio::RunningIo, bool), TaskError> {
        let mounted = !req.rootfs.is_empty();
        if mounted {
            mount_all(&req.rootfs, &paths.rootfs())?;
        }
        let undo_mount = |e: TaskError| {
            if mounted {
                let _ = unmount_all(&paths.rootfs());
            }
            e
        };
        let console = self.console_path(&req.id, "");
        let prepared = PreparedIo::prepare(
            &req.io.stdin,
            &req.io.stdout,
            &req.io.stderr,
            req.io.terminal,
            &console,
        )
        .map_err(|e| undo_mount(e.into()))?;
        let console_socket = prepared.console_socket().map(Path::to_path_buf);
        let (stdio, pending) = prepared.split().map_err(|e| undo_mount(e.into()))?;
        let spawn = Spawn {
            id: &req.id,
            stdio,
            console_socket: console_socket.as_deref(),
            pid_file: paths.pid_file(""),
        };
        let pid = req
            .runtime
            .create(&req.bundle, spawn)
            .map_err(|e| undo_mount(e.into()))?;
        match pending.start() {
            Ok(io) => Ok((pid, io, mounted)),
            Err(e) => {
                let _ = req.runtime.delete(&req.id, true);
                Err(undo_mount(e.into()))
            }
        }
    }

    /// Starts the init process (empty `exec_id`) or an exec process.
    pub fn start(&self, id: &str, exec_id: &str) -> Result<i32, TaskError> {
        if exec_id.is_empty() {
            let (runtime, pid) = {
                let t = self.lock();
                let c = t
                    .containers
                    .get(id)
                    .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
                if c.init.status != ProcStatus::Created {
                    return Err(TaskError::FailedPrecondition(format!(
                        "container {id} is not in the created state"
                    )));
                }
                (Arc::clone(&c.runtime), c.init.pid)
            };
            runtime.start(id)?;
            {
                let mut t = self.lock();
                if let Some(c) = t.containers.get_mut(id) {
                    if c.init.status == ProcStatus::Created {
                        c.init.status = ProcStatus::Running;
                    }
                }
            }
            let mut ev = TaskStart::new();
            ev.container_id = id.to_string();
            ev.pid = pid as u32;
            self.publisher.send(topics::TASK_START_EVENT_TOPIC, &ev);
            return Ok(pid);
        }
        self.start_exec(id, exec_id)
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<i32, TaskError> {
        let (runtime, paths, io_paths, spec) = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            if c.init.status != ProcStatus::Running {
                return Err(TaskError::FailedPrecondition(format!(
                    "container {id} is not running"
                )));
            }
            let p = c.proc(id, exec_id)?;
            let spec = p.spec.clone().ok_or_else(|| {
                TaskError::FailedPrecondition(format!("exec {exec_id} was already started"))
            })?;
            (
                Arc::clone(&c.runtime),
                c.paths.clone(),
                p.io_paths.clone(),
                spec,
            )
        };
        let console = self.console_path(id, exec_id);
        let prepared = PreparedIo::prepare(
            &io_paths.stdin,
            &io_paths.stdout,
            &io_paths.stderr,
            io_paths.terminal,
            &console,
        )?;
        let console_socket = prepared.console_socket().map(Path::to_path_buf);
        let (stdio, pending) = prepared.split()?;
        let spawn = Spawn {
            id,
            stdio,
            console_socket: console_socket.as_deref(),
            pid_file: paths.pid_file(exec_id),
        };
        let pid = runtime.exec(&spec, &paths.exec_spec(exec_id), spawn)?;
        let io = pending.start()?;
        let early = {
            let mut t = self.lock();
            let early = t.early_exits.remove(&pid);
            if let Some(p) = t
                .containers
                .get_mut(id)
                .and_then(|c| c.execs.get_mut(exec_id))
            {
                p.pid = pid;
                p.io = io;
                p.spec = None;
                p.status = ProcStatus::Running;
            }
            early
        };
        let mut ev = TaskExecStarted::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        ev.pid = pid as u32;
        self.publisher
            .send(topics::TASK_EXEC_STARTED_EVENT_TOPIC, &ev);
        if let Some((code, at)) = early {
            self.apply_exit(id, exec_id, pid, code, at);
        }
        Ok(pid)
    }

    /// Registers an exec process (started by [`Supervisor::start`]).
    pub fn exec(
        &self,
        id: &str,
        exec_id: &str,
        io: IoPaths,
        spec: Vec<u8>,
    ) -> Result<(), TaskError> {
        check_id("exec", exec_id)?;
        {
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            if c.execs.contains_key(exec_id) {
                return Err(TaskError::AlreadyExists(format!("exec {exec_id}")));
            }
            let mut p = Proc::new(io);
            p.spec = Some(spec);
            c.execs.insert(exec_id.to_string(), p);
        }
        let mut ev = TaskExecAdded::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        self.publisher
            .send(topics::TASK_EXEC_ADDED_EVENT_TOPIC, &ev);
        Ok(())
    }

    /// The exit of an exec that has no output copiers to wait for, applied at once;
    /// false for any other pid (it goes to [`Supervisor::on_exit`] on the exit thread,
    /// which may wait for copiers). Called by the reaper: a health check's exit then
    /// wakes no other thread of the shim before its Wait is answered.
    pub fn on_exec_exit_inline(&self, pid: i32, code: u32, at: SystemTime) -> bool {
        let found = {
            let t = self.lock();
            t.containers.iter().find_map(|(id, c)| {
                c.execs
                    .iter()
                    .find(|(_, p)| p.pid == pid && p.exit.is_none() && p.io.copiers.is_empty())
                    .map(|(eid, _)| (id.clone(), eid.clone()))
            })
        };
        match found {
            Some((id, exec_id)) => {
                self.apply_exit(&id, &exec_id, pid, code, at);
                true
            }
            None => false,
        }
    }

    /// A child exited (from the reaper).
    pub fn on_exit(&self, pid: i32, code: u32, at: SystemTime) {
        let found = {
            let mut t = self.lock();
            let mut found = None;
            for (id, c) in t.containers.iter() {
                if c.init.pid == pid && c.init.exit.is_none() {
                    found = Some((id.clone(), String::new()));
                    break;
                }
                if let Some((eid, _)) = c
                    .execs
                    .iter()
                    .find(|(_, p)| p.pid == pid && p.exit.is_none())
                {
                    found = Some((id.clone(), eid.clone()));
                    break;
                }
            }
            if found.is_none() {
                t.early_exits.insert(pid, (code, at));
            }
            found
        };
        if let Some((id, exec_id)) = found {
            self.apply_exit(&id, &exec_id, pid, code, at);
        }
    }

    fn apply_exit(&self, id: &str, exec_id: &str, pid: i32, code: u32, at: SystemTime) {
        let copiers = {
            let mut t = self.lock();
            let Some(c) = t.containers.get_mut(id) else {
                return;
            };
            let Ok(p) = c.proc_mut(id, exec_id) else {
                return;
            };
            std::mem::take(&mut p.io.copiers)
        };
        drain(copiers);
        // The durable record comes first: whoever sees the task stopped (State, Wait,
        // the exit event) may read it at once.
        if exec_id.is_empty() {
            let bundle = self
                .lock()
                .containers
                .get(id)
                .map(|c| c.paths.bundle.clone());
            if let Some(bundle) = bundle {
                if let Err(e) = ExitRecord::new(id, pid as u32, code, at).write(&bundle) {
                    tracing::error!(container = id, "recording the exit: {e}");
                }
            }
        }
        {
            let mut t = self.lock();
            let Some(c) = t.containers.get_mut(id) else {
                return;
            };
            let Ok(p) = c.proc_mut(id, exec_id) else {
                return;
            };
            p.status = ProcStatus::Stopped;
            p.exit = Some((code, at));
            // Close the stdin pipe now: its copier may wait on the client for ever.
            if let Some(stdin) = p.io.stdin.take() {
                stdin.close();
            }
            p.io.master.take();
        }
        self.changed.notify_all();
        self.settle_waiters();
        let mut ev = TaskExit::new();
        ev.container_id = id.to_string();
        ev.id = if exec_id.is_empty() { id } else { exec_id }.to_string();
        ev.pid = pid as u32;
        ev.exit_status = code;
        ev.exited_at = MessageField::some(timestamp(at));
        self.publisher.send(topics::TASK_EXIT_EVENT_TOPIC, &ev);
    }

    /// Calls `reply` with the process's exit once it has one (now, if it has), or with
    /// the error that it is not there (now, or when it goes): a Wait answered by the
    /// thread that sees the exit, with no thread of its own blocked meanwhile.
    pub fn wait_then(&self, id: &str, exec_id: &str, reply: Box<dyn FnOnce(WaitResult) + Send>) {
        let mut t = self.lock();
        let now = match t.containers.get(id) {
            None => Some(Err(TaskError::NotFound(format!("container {id}")))),
            Some(c) => match c.proc(id, exec_id) {
                Err(e) => Some(Err(e)),
                Ok(p) => p.exit.map(Ok),
            },
        };
        match now {
            Some(result) => {
                drop(t);
                reply(result);
            }
            None => t.waiters.push(Waiter {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                reply,
            }),
        }
    }

    /// Answers the waiters whose process exited or went.
    fn settle_waiters(&self) {
        let ready = {
            let mut t = self.lock();
            if t.waiters.is_empty() {
                return;
            }
            let mut ready = Vec::new();
            let mut left = Vec::new();
            for w in std::mem::take(&mut t.waiters) {
                let result = match t.containers.get(&w.id) {
                    None => Some(Err(TaskError::NotFound(format!("container {}", w.id)))),
                    Some(c) => match c.proc(&w.id, &w.exec_id) {
                        Err(e) => Some(Err(e)),
                        Ok(p) => p.exit.map(Ok),
                    },
                };
                match result {
                    Some(r) => ready.push((w.reply, r)),
                    None => left.push(w),
                }
            }
            t.waiters = left;
            ready
        };
        for (reply, result) in ready {
            reply(result);
        }
    }

    /// Blocks until the process exited; returns (status, time).
    pub fn wait(&self, id: &str, exec_id: &str) -> Result<(u32, SystemTime), TaskError> {
        let mut t = self.lock();
        loop {
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            if let Some(exit) = c.proc(id, exec_id)?.exit {
                return Ok(exit);
            }
            t = self.changed.wait(t).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A snapshot of one process: (bundle, pid, status, exit, io paths).
    pub fn state(&self, id: &str, exec_id: &str) -> Result<ProcView, TaskError> {
        let t = self.lock();
        let c = t
            .containers
            .get(id)
            .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
        let p = c.proc(id, exec_id)?;
        Ok(ProcView {
            bundle: c.paths.bundle.clone(),
            pid: p.pid,
            status: p.status,
            exit: p.exit,
            io: p.io_paths.clone(),
        })
    }

    /// Sends a signal.
    pub fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), TaskError> {
        let (runtime, pid, exited) = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            let p = c.proc(id, exec_id)?;
            (Arc::clone(&c.runtime), p.pid, p.exit.is_some())
        };
        if exited && !all {
            return Err(TaskError::NotFound(format!(
                "process {id}/{exec_id} already finished"
            )));
        }
        if exec_id.is_empty() {
            return Ok(runtime.kill(id, signal, all)?);
        }
        let sig = nix::sys::signal::Signal::try_from(signal as i32)
            .map_err(|_| TaskError::InvalidArgument(format!("invalid signal {signal}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| TaskError::Internal(format!("signalling exec {exec_id} (pid {pid}): {e}")))
    }

    /// Deletes an exited exec process, or the container (init).
    pub fn delete(&self, id: &str, exec_id: &str) -> Result<(i32, u32, SystemTime), TaskError> {
        if !exec_id.is_empty() {
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            let p = c.proc(id, exec_id)?;
            if p.pid != 0 && p.exit.is_none() {
                return Err(TaskError::FailedPrecondition(format!(
                    "exec {exec_id} is still running"
                )));
            }
            let (code, at) = p.exit.unwrap_or((0, SystemTime::now()));
            let pid = p.pid;
            c.execs.remove(exec_id);
            let files = c
                .runtime
                .exec_leaves_files()
                .then(|| [c.paths.pid_file(exec_id), c.paths.exec_spec(exec_id)]);
            drop(t);
            self.settle_waiters();
            // The exec's files in the bundle go with it: kubelet's probes make an exec
            // every few seconds for the life of the container.
            for f in files.iter().flatten() {
                let _ = std::fs::remove_file(f);
            }
            return Ok((pid, code, at));
        }
        let (runtime, paths, pid, status, exit, mounted) = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            (
                Arc::clone(&c.runtime),
                c.paths.clone(),
                c.init.pid,
                c.init.status,
                c.init.exit,
                c.mounted,
            )
        };
        if exit.is_none() && status != ProcStatus::Created {
            return Err(TaskError::FailedPrecondition(format!(
                "container {id} is still running; kill it first"
            )));
        }
        runtime.delete(id, status == ProcStatus::Created)?;
        if mounted {
            unmount_all(&paths.rootfs())?;
        }
        let (code, at) = exit.unwrap_or((0, SystemTime::now()));
        self.lock().containers.remove(id);
        self.changed.notify_all();
        self.settle_waiters();
        let mut ev = TaskDelete::new();
        ev.container_id = id.to_string();
        ev.id = id.to_string();
        ev.pid = pid as u32;
        ev.exit_status = code;
        ev.exited_at = MessageField::some(timestamp(at));
        self.publisher.send(topics::TASK_DELETE_EVENT_TOPIC, &ev);
        Ok((pid, code, at))
    }

    /// The runtime of container `id`, with its init pid.
    pub fn runtime(&self, id: &str) -> Result<(Arc<dyn Runtime>, i32), TaskError> {
        let t = self.lock();
        let c = t
            .containers
            .get(id)
            .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
        Ok((Arc::clone(&c.runtime), c.init.pid))
    }

    /// Freezes or thaws the container.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<(), TaskError> {
        let (runtime, _) = self.runtime(id)?;
        if paused {
            runtime.pause(id)?;
        } else {
            runtime.resume(id)?;
        }
        {
            let mut t = self.lock();
            if let Some(c) = t.containers.get_mut(id) {
                if c.init.exit.is_none() {
                    c.init.status = if paused {
                        ProcStatus::Paused
                    } else {
                        ProcStatus::Running
                    };
                }
            }
        }
        if paused {
            let mut ev = TaskPaused::new();
            ev.container_id = id.to_string();
            self.publisher.send(topics::TASK_PAUSED_EVENT_TOPIC, &ev);
        } else {
            let mut ev = TaskResumed::new();
            ev.container_id = id.to_string();
            self.publisher.send(topics::TASK_RESUMED_EVENT_TOPIC, &ev);
        }
        Ok(())
    }

    /// Closes the process's stdin.
    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), TaskError> {
        let mut t = self.lock();
        let c = t
            .containers
            .get_mut(id)
            .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
        let p = c.proc_mut(id, exec_id)?;
        if let Some(stdin) = p.io.stdin.take() {
            stdin.close();
        }
        Ok(())
    }

    /// Resizes the process's terminal.
    pub fn resize(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), TaskError> {
        let master = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| TaskError::NotFound(format!("container {id}")))?;
            c.proc(id, exec_id)?.io.master.clone()
        };
        let master = master.ok_or_else(|| {
            TaskError::FailedPrecondition(format!("process {id}/{exec_id} has no terminal"))
        })?;
        crate::stdio::resize(&master, width, height)
            .map_err(|e| TaskError::Internal(format!("resizing the terminal: {e}")))
    }

    /// Reopens every CRI log file (after rotation).
    pub fn reopen_logs(&self) {
        let t = self.lock();
        for c in t.containers.values() {
            for p in std::iter::once(&c.init).chain(c.execs.values()) {
                for log in &p.io.logs {
                    if let Err(e) = log.reopen() {
                        tracing::warn!("reopening {}: {e}", log.path().display());
                    }
                }
            }
        }
    }

    /// Exec ids by pid, for Pids.
    pub fn exec_pids(&self, id: &str) -> HashMap<i32, String> {
        let t = self.lock();
        t.containers
            .get(id)
            .map(|c| {
                c.execs
                    .iter()
                    .map(|(eid, p)| (p.pid, eid.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A copy of one process's state.
pub struct ProcView {
    pub bundle: PathBuf,
    pub pid: i32,
    pub status: ProcStatus,
    pub exit: Option<(u32, SystemTime)>,
    pub io: IoPaths,
}
