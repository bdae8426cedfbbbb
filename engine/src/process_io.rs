//! A process's I/O, one API for both front doors: execs (create, start with their
//! streams, resize, wait, kill, inspect) and attaching to a container's own process.
//!
//! The shim owns the process's end of every stream, as it does for containerd: an
//! exec's stdio are FIFOs in the container's bundle (`exec-<id>/`) that the shim opens
//! and the engine reads and writes; a container's own output is the log (CRI or json-file format) the
//! shim writes, which an attach follows, and its stdin (with `open_stdin`) the FIFO
//! `stdin` in the bundle, which the shim keeps reading across attached clients.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::runtime::{Process, Spec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::container_spec::{caps, user};
use crate::logs::files::Follower;
use crate::record::{ContainerRecord, Status};
use crate::shim::ExecIo;
use crate::{blocking, find, get, shim_of, Engine, EngineError, Object, StateConflict};

/// Output of a process as a front door reads it.
pub type OutputReader = Box<dyn AsyncRead + Send + Unpin>;
/// Input of a process as a front door writes it.
pub type StdinWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// How long an ended exec stays for inspect.
const KEEP_ENDED: Duration = Duration::from_secs(5 * 60);

/// What one client buffers between itself and a process, per stream.
const BUFFER: usize = 64 * 1024;

/// A process's standard streams as the engine hands them to a front door.
pub struct ProcessIo {
    /// Present when stdin was asked for and the process has one. Its end (shutdown or
    /// drop) closes an exec's stdin; for an attach it ends this client's input, and
    /// closes the container's stdin only for a container made with `stdin_once` and
    /// no tty (Docker's rule).
    pub stdin: Option<StdinWriter>,
    /// With a tty, the terminal's output (stdout and stderr together). EOF when the
    /// output ended: an exec's process exited, an attached container stopped.
    pub stdout: Option<OutputReader>,
    /// Always `None` with a tty.
    pub stderr: Option<OutputReader>,
    pub tty: bool,
}

/// A process to run in a running container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// `KEY=VALUE`, added to the container's environment or overriding its entries.
    pub env: Vec<String>,
    /// Default: the container's working directory.
    pub cwd: Option<String>,
    /// Docker's `-u` forms (`uid`, `uid:gid`, `name`, `name:group`); default: the
    /// container's user.
    pub user: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Every capability berth holds.
    pub privileged: bool,
}

/// An exec as inspect shows it.
#[derive(Clone, Debug)]
pub struct ExecInfo {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: Option<u32>,
}

/// The engine's execs, kept for inspect until their container is removed.
#[derive(Default)]
pub(crate) struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    fn get(&self, id: &str) -> Result<Arc<Exec>, EngineError> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).cloned().ok_or_else(|| EngineError::NotFound {
            what: Object::Exec,
            reference: id.to_string(),
        })
    }

    /// Adds an exec, and forgets those that ended long ago (Docker keeps an ended
    /// exec for inspect for a while too; kubelet's probes make one every few seconds).
    fn insert(&self, exec: Arc<Exec>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.lock().ended.is_none_or(|t| t.elapsed() < KEEP_ENDED));
        map.insert(exec.id.clone(), exec);
    }

    fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Forgets the execs of a removed container.
    pub(crate) fn forget_container(&self, container_id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.container_id != container_id);
    }
}

struct Exec {
    id: String,
    container_id: String,
    config: ExecConfig,
    /// The OCI process, as JSON.
    spec: Vec<u8>,
    state: Mutex<ExecState>,
    /// `Some(code)` once the process exited (or could not start).
    exited: watch::Sender<Option<i32>>,
}

#[derive(Default)]
struct ExecState {
    started: bool,
    pid: Option<u32>,
    ended: Option<std::time::Instant>,
}

impl Exec {
    fn lock(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the end (or a start that failed) and wakes the waiters.
    fn end(&self, code: i32) {
        self.lock().ended = Some(std::time::Instant::now());
        self.exited.send_replace(Some(code));
    }
}

/// The container must run (not be paused) for an exec.
fn runnable(record: &crate::ContainerRecord) -> Result<(), EngineError> {
    match record.state.status {
        Status::Running => Ok(()),
        Status::Paused => Err(EngineError::state(&record.id, StateConflict::PausedExec)),
        _ => Err(EngineError::state(&record.id, StateConflict::NotRunning)),
    }
}

/// Registers an exec in the container `container` (id, name or prefix); returns its id.
pub async fn exec_create(
    engine: &Arc<Engine>,
    container: &str,
    config: ExecConfig,
) -> Result<String, EngineError> {
    if config.args.is_empty() || config.args[0].is_empty() {
        return Err(EngineError::Invalid("exec needs a command".into()));
    }
    let record = find(engine, container)?;
    runnable(&record)?;
    let spec = {
        let (config_json, pid, c) = (
            engine.dir(&record.id).join("config.json"),
            record.state.pid,
            config.clone(),
        );
        blocking(move || exec_process(&config_json, pid, &c)).await?
    };
    let id = crate::create::random_id();
    exec_event(engine, &record, "exec_create", &config.args, &id, None);
    let exec = Arc::new(Exec {
        id: id.clone(),
        container_id: record.id.clone(),
        config,
        spec,
        state: Mutex::new(ExecState::default()),
        exited: watch::channel(None).0,
    });
    engine.execs.insert(exec);
    Ok(id)
}

/// Docker's exec events: the action names the command (`exec_start: sh -c …`), the
/// attributes the exec (and its exit code when it died).
pub(crate) fn exec_event(
    engine: &Engine,
    record: &ContainerRecord,
    what: &str,
    args: &[String],
    exec_id: &str,
    code: Option<i32>,
) {
    let action = match what {
        "exec_die" => what.to_string(),
        _ => format!("{what}: {}", args.join(" ")),
    };
    let mut extra = vec![("execID".to_string(), exec_id.to_string())];
    if let Some(code) = code {
        extra.push(("exitCode".to_string(), code.to_string()));
    }
    engine.events_log.container(record, &action, extra);
}

/// The container's process (user, env, cwd, capabilities) changed as `config` asks.
pub(crate) fn exec_process(
    config_json: &Path,
    pid: u32,
    config: &ExecConfig,
) -> Result<Vec<u8>, EngineError> {
    let bytes = std::fs::read(config_json).map_err(EngineError::internal(format!(
        "reading {}",
        config_json.display()
    )))?;
    let spec: Spec = serde_json::from_slice(&bytes).map_err(EngineError::internal(format!(
        "parsing {}",
        config_json.display()
    )))?;
    let mut process: Process = spec.process().clone().ok_or_else(|| {
        EngineError::broken(
            "the exec's process",
            format!("{} has no process", config_json.display()),
        )
    })?;
    process.set_args(Some(config.args.clone()));
    process.set_terminal(Some(config.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for entry in &config.env {
        let key = entry.split('=').next().unwrap_or_default();
        if key.is_empty() {
            return Err(EngineError::Invalid(format!(
                "exec environment entry {entry:?} has no name"
            )));
        }
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(entry.clone());
    }
    if let Some(cwd) = config.cwd.as_deref().filter(|c| !c.is_empty()) {
        if !cwd.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "the exec's working directory {cwd:?} is not an absolute path"
            )));
        }
        process.set_cwd(PathBuf::from(cwd));
    }
    if let Some(spec_user) = config.user.as_deref().filter(|u| !u.is_empty()) {
        // The running container's own root: its /etc/passwd names the users.
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let found =
            user::resolve(&root, spec_user).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let mut u = process.user().clone();
        u.set_uid(found.uid);
        u.set_gid(found.gid);
        u.set_additional_gids((!found.additional_gids.is_empty()).then_some(found.additional_gids));
        process.set_user(u);
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={}", found.home));
    }
    process.set_env(Some(env));
    if config.privileged {
        let held = caps::bounding_set().map_err(|e| EngineError::Invalid(e.to_string()))?;
        let all: Vec<String> = held.iter().map(|c| c.to_string()).collect();
        let set = || -> Result<_, EngineError> {
            all.iter()
                .map(|c| {
                    c.parse()
                        .map_err(EngineError::internal(format!("capability {c}")))
                })
                .collect()
        };
        let mut pcaps = process.capabilities().clone().unwrap_or_default();
        pcaps.set_bounding(Some(set()?));
        pcaps.set_effective(Some(set()?));
        pcaps.set_permitted(Some(set()?));
        process.set_capabilities(Some(pcaps));
    }
    serde_json::to_vec(&process).map_err(EngineError::internal("encoding the exec's process"))
}

/// Starts a registered exec and hands back its streams. Whatever the client does
/// afterwards, the exec's FIFOs and the shim's exec are cleaned up when it exits.
pub async fn exec_start(engine: &Arc<Engine>, exec_id: &str) -> Result<ProcessIo, EngineError> {
    let exec = engine.execs.get(exec_id)?;
    {
        let mut state = exec.lock();
        if state.started {
            return Err(EngineError::state(exec_id, StateConflict::ExecStarted));
        }
        state.started = true;
    }
    let record = get(engine, &exec.container_id)?;
    if let Err(e) = runnable(&record) {
        exec.end(126);
        return Err(e);
    }
    let cfg = &exec.config;
    let dir = engine
        .dir(&exec.container_id)
        .join(format!("exec-{}", &exec.id[..12]));
    let fifos = ExecIo {
        stdin: cfg.stdin.then(|| dir.join("stdin")),
        stdout: cfg.stdout.then(|| dir.join("stdout")),
        stderr: (cfg.stderr && !cfg.tty).then(|| dir.join("stderr")),
        terminal: cfg.tty,
    };
    {
        let (dir, fifos) = (dir.clone(), fifos.clone());
        blocking(move || make_fifos(&dir, &fifos)).await?;
    }
    // Output is opened before the shim opens its ends: nothing written is lost.
    let opened = (|| -> std::io::Result<_> {
        let open = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| pipe::OpenOptions::new().open_receiver(p))
                .transpose()
        };
        Ok((open(&fifos.stdout)?, open(&fifos.stderr)?))
    })();
    let (stdout, stderr) = match opened {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            exec.end(126);
            return Err(EngineError::internal("opening the exec's output")(e));
        }
    };
    let started = {
        let (d, e, fifos) = (Arc::clone(engine), Arc::clone(&exec), fifos.clone());
        blocking(move || {
            let shim = Arc::new(shim_of(&d, &e.container_id)?);
            shim.exec(&e.container_id, &e.id, &e.spec, &fifos)?;
            match shim.start_exec(&e.container_id, &e.id) {
                Ok(pid) => Ok((shim, pid)),
                Err(err) => {
                    let _ = shim.delete_exec(&e.container_id, &e.id);
                    Err(err.into())
                }
            }
        })
        .await
    };
    let (shim, pid) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            let message = e.to_string();
            let code = crate::lifecycle::exec_failure_code(&message, &cfg.args[0]);
            exec.end(code.unwrap_or(126) as i32);
            return Err(match code {
                Some(_) => EngineError::Invalid(message),
                None => e,
            });
        }
    };
    exec.lock().pid = Some(pid);
    exec_event(engine, &record, "exec_start", &cfg.args, &exec.id, None);
    tracing::debug!(container = %exec.container_id, exec = %exec.id, pid, "exec started");
    let stdin = fifos.stdin.clone().map(|fifo| {
        let alive = {
            let (d, cid) = (Arc::clone(engine), exec.container_id.clone());
            let done = exec.exited.subscribe();
            move || done.borrow().is_none() && get(&d, &cid).is_ok()
        };
        stdin_pump(fifo, alive)
    });
    {
        let exec = Arc::clone(&exec);
        let engine = Arc::clone(engine);
        tokio::task::spawn_blocking(move || {
            let (cid, eid) = (&exec.container_id, &exec.id);
            let code = match shim.wait_exec(cid, eid) {
                Ok(code) => code as i32,
                Err(e) => {
                    tracing::warn!(container = %cid, exec = %eid, "waiting for the exec: {e}");
                    -1
                }
            };
            if let Err(e) = shim.delete_exec(cid, eid) {
                tracing::debug!(container = %cid, exec = %eid, "deleting the exec: {e}");
            }
            let _ = std::fs::remove_dir_all(&dir);
            exec.end(code);
            if let Ok(record) = get(&engine, cid) {
                exec_event(
                    &engine,
                    &record,
                    "exec_die",
                    &exec.config.args,
                    eid,
                    Some(code),
                );
            }
        });
    }
    Ok(ProcessIo {
        stdin,
        stdout: stdout.map(|r| Box::new(r) as OutputReader),
        stderr: stderr.map(|r| Box::new(r) as OutputReader),
        tty: cfg.tty,
    })
}

fn make_fifos(dir: &Path, io: &ExecIo) -> Result<(), EngineError> {
    std::fs::create_dir_all(dir)
        .map_err(EngineError::internal(format!("creating {}", dir.display())))?;
    for path in [&io.stdin, &io.stdout, &io.stderr].into_iter().flatten() {
        mkfifo(path)?;
    }
    Ok(())
}

fn mkfifo(path: &Path) -> Result<(), EngineError> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(EngineError::internal(format!(
            "making the FIFO {}",
            path.display()
        ))(e)),
    }
}

/// The FIFO the shim reads a container's stdin from (made when missing).
fn stdin_fifo(bundle: &Path) -> Result<PathBuf, EngineError> {
    let path = bundle.join("stdin");
    mkfifo(&path)?;
    Ok(path)
}

/// A container's stdin as its shim is told it: the FIFO `stdin` in the bundle, read
/// across attached clients (`reopen://`), or closed at its first client's EOF
/// (`close_at_eof`: `stdin_once` without a tty, Docker's rule), which the FIFO's own
/// EOF gives after everything written was read.
pub(crate) fn stdin_target(bundle: &Path, close_at_eof: bool) -> Result<String, EngineError> {
    let fifo = stdin_fifo(bundle)?.display().to_string();
    Ok(match close_at_eof {
        true => fifo,
        false => format!("{}{fifo}", berth_shim::stdio::STDIN_REOPEN_SCHEME),
    })
}

/// A writer for the client, and a task copying what it writes into `fifo` once the
/// shim reads it (an attach may come before the container starts). The task ends when
/// the client's side ends, or when `alive` says the process is gone.
fn stdin_pump(fifo: PathBuf, alive: impl Fn() -> bool + Send + Sync + 'static) -> StdinWriter {
    let (client, mut from_client) = tokio::io::duplex(BUFFER);
    tokio::spawn(async move {
        let mut buf = vec![0u8; BUFFER];
        let mut to_process: Option<pipe::Sender> = None;
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to_process.is_none() {
                to_process = open_writer(&fifo, &alive).await;
            }
            let Some(w) = to_process.as_mut() else {
                break;
            };
            if w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        // The end of input: the shim sees EOF once the FIFO has no writer. A client
        // that wrote nothing still ends its input (`docker run -i … < /dev/null`).
        if to_process.is_none() {
            drop(open_writer(&fifo, &alive).await);
        }
    });
    Box::new(client)
}

/// Opens the FIFO for writing once the shim has opened it for reading.
async fn open_writer(
    fifo: &Path,
    alive: &(impl Fn() -> bool + Send + Sync),
) -> Option<pipe::Sender> {
    loop {
        match pipe::OpenOptions::new().open_sender(fifo) {
            Ok(w) => return Some(w),
            // No reader yet: the shim has not created the process.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(_) => return None,
        }
        if !alive() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the exec's process exited; its exit code.
pub async fn exec_wait(engine: &Arc<Engine>, exec_id: &str) -> Result<i32, EngineError> {
    let mut rx = engine.execs.get(exec_id)?.exited.subscribe();
    let code = rx
        .wait_for(|c| c.is_some())
        .await
        .map_err(EngineError::internal("waiting for the exec"))?;
    Ok(code.unwrap_or(-1))
}

/// Sets the terminal size of an exec with a tty.
pub async fn exec_resize(
    engine: &Arc<Engine>,
    exec_id: &str,
    width: u16,
    height: u16,
) -> Result<(), EngineError> {
    let exec = engine.execs.get(exec_id)?;
    if !exec.config.tty {
        return Err(EngineError::Invalid(format!(
            "exec {exec_id} has no tty to resize"
        )));
    }
    if exec.lock().pid.is_none() || exec.exited.borrow().is_some() {
        return Err(EngineError::state(exec_id, StateConflict::ExecNotRunning));
    }
    let (d, e) = (Arc::clone(engine), exec);
    blocking(move || {
        Ok(shim_of(&d, &e.container_id)?.resize_pty(
            &e.container_id,
            &e.id,
            width.into(),
            height.into(),
        )?)
    })
    .await
}

/// Sends `signal` to a running exec.
pub async fn exec_kill(
    engine: &Arc<Engine>,
    exec_id: &str,
    signal: i32,
) -> Result<(), EngineError> {
    let exec = engine.execs.get(exec_id)?;
    if exec.lock().pid.is_none() || exec.exited.borrow().is_some() {
        return Err(EngineError::state(exec_id, StateConflict::ExecNotRunning));
    }
    let (d, e) = (Arc::clone(engine), exec);
    blocking(move || {
        Ok(shim_of(&d, &e.container_id)?.kill_exec(&e.container_id, &e.id, signal as u32)?)
    })
    .await
}

/// Forgets an exec at once (a front door that reported its end: CRI's ExecSync).
/// One still running keeps running and is cleaned up when it exits.
pub fn exec_forget(engine: &Engine, exec_id: &str) {
    engine.execs.remove(exec_id);
}

/// An exec as it stands.
pub fn exec_inspect(engine: &Engine, exec_id: &str) -> Result<ExecInfo, EngineError> {
    let exec = engine.execs.get(exec_id)?;
    let exit_code = *exec.exited.borrow();
    let state = exec.lock();
    Ok(ExecInfo {
        id: exec.id.clone(),
        container_id: exec.container_id.clone(),
        config: exec.config.clone(),
        running: state.pid.is_some() && exit_code.is_none(),
        exit_code,
        pid: state.pid,
    })
}

/// Which of a container's streams an attach wants.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Replay what the container wrote before the attach (Docker's `logs=1`).
    pub logs: bool,
}

/// Attaches to a container's own process: its output from now (or from the start of
/// its log with `logs`) until it stops, having run since the attach began; stdin when
/// the container was made with `open_stdin`. Several clients may attach at once.
pub async fn attach(
    engine: &Arc<Engine>,
    container: &str,
    opts: AttachOptions,
) -> Result<ProcessIo, EngineError> {
    let record = find(engine, container)?;
    if matches!(record.state.status, Status::Removing | Status::Dead) {
        return Err(EngineError::state(
            &record.id,
            StateConflict::MarkedForRemoval,
        ));
    }
    let log = engine.log_of(&record);
    // No log (the `none` driver): an attached client gets no output, as with dockerd.
    let follower = record.log.format().map(|format| match opts.logs {
        true => Follower::from_start(&log, format),
        false => Follower::at_end(&log, format),
    });
    let mut stdout = None;
    let mut stderr = None;
    let mut sinks = [None, None];
    if opts.stdout {
        let (w, r) = tokio::io::duplex(BUFFER);
        sinks[0] = Some(w);
        stdout = Some(Box::new(r) as OutputReader);
    }
    if opts.stderr && !record.tty {
        let (w, r) = tokio::io::duplex(BUFFER);
        sinks[1] = Some(w);
        stderr = Some(Box::new(r) as OutputReader);
    }
    engine
        .events_log
        .container(&record, "attach", std::iter::empty());
    let first_start = record.state.started_at.clone();
    let was_running = record.state.status.has_task() || record.state.status == Status::Restarting;
    if sinks.iter().any(Option::is_some) {
        let follow = LogFollow {
            engine: Arc::clone(engine),
            id: record.id.clone(),
            log,
            follower,
            sinks,
            was_running,
            first_start: first_start.clone(),
        };
        tokio::spawn(follow.run());
    }
    let stdin = match opts.stdin && record.open_stdin {
        true => {
            let fifo = {
                let dir = engine.dir(&record.id);
                blocking(move || stdin_fifo(&dir)).await?
            };
            let (d, id) = (Arc::clone(engine), record.id.clone());
            // Until the container stops, having run since the attach.
            let alive = move || match get(&d, &id) {
                Ok(r) => {
                    r.state.status.has_task()
                        || r.state.status == Status::Restarting
                        || (!was_running && r.state.started_at == first_start)
                }
                Err(_) => false,
            };
            Some(stdin_pump(fifo, alive))
        }
        false => None,
    };
    Ok(ProcessIo {
        stdin,
        stdout,
        stderr,
        tty: record.tty,
    })
}

/// Sets the terminal size of a container's own process.
pub async fn resize(
    engine: &Arc<Engine>,
    container: &str,
    width: u16,
    height: u16,
) -> Result<(), EngineError> {
    let record = find(engine, container)?;
    if !record.tty {
        return Err(EngineError::Invalid(format!(
            "container {} has no tty to resize",
            record.id
        )));
    }
    if !record.state.status.has_task() {
        return Err(EngineError::state(&record.id, StateConflict::NotRunning));
    }
    let (d, id) = (Arc::clone(engine), record.id);
    blocking(move || Ok(shim_of(&d, &id)?.resize_pty(&id, "", width.into(), height.into())?)).await
}

/// Follows a container's log into an attached client's streams.
struct LogFollow {
    engine: Arc<Engine>,
    id: String,
    log: PathBuf,
    follower: Option<Follower>,
    /// stdout, stderr.
    sinks: [Option<tokio::io::DuplexStream>; 2],
    was_running: bool,
    first_start: String,
}

impl LogFollow {
    async fn run(mut self) {
        let watch = LogWatch::new(&self.log);
        let mut seen_run = self.was_running;
        loop {
            // The state first: output written before a stop is read after it.
            let (running, gone) = match get(&self.engine, &self.id) {
                Ok(r) => {
                    let runs = r.state.status.has_task() || r.state.status == Status::Restarting;
                    seen_run |= runs || r.state.started_at != self.first_start;
                    (runs, false)
                }
                Err(_) => (false, true),
            };
            if !self.copy_new().await {
                return;
            }
            if gone || (seen_run && !running) {
                return;
            }
            let changed = self.engine.changed.notified();
            tokio::select! {
                _ = changed => {}
                _ = watch.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Copies what the log gained since the last read; false when no client reads on.
    async fn copy_new(&mut self) -> bool {
        let Some(mut follower) = self.follower.take() else {
            return true;
        };
        let read = tokio::task::spawn_blocking(move || {
            let records = follower.read_records();
            (follower, records)
        })
        .await;
        let Ok((follower, records)) = read else {
            return true;
        };
        self.follower = Some(follower);
        let Ok(records) = records else {
            return true;
        };
        for record in records {
            let Some(sink) = self.sinks[record.stream as usize].as_mut() else {
                continue;
            };
            if sink.write_all(&record.content).await.is_err() {
                self.sinks[record.stream as usize] = None;
                if self.sinks.iter().all(Option::is_none) {
                    return false;
                }
            }
        }
        true
    }
}

/// inotify on the log's directory: any change there wakes a follower at once.
struct LogWatch {
    fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
}

impl LogWatch {
    fn new(log: &Path) -> LogWatch {
        let fd = log.parent().and_then(|dir| {
            // SAFETY: inotify_init1 returns a new descriptor or -1.
            let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
            if raw < 0 {
                return None;
            }
            // SAFETY: raw is a descriptor we own from here on.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
            let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_DELETE_SELF;
            // SAFETY: fd is an inotify descriptor and dir a valid C string.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) } < 0 {
                return None;
            }
            // SAFETY: the AsyncFd owns the descriptor and nothing else closes it.
            unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok()
        });
        LogWatch { fd }
    }

    /// Returns after the directory changed (never, without inotify: the caller's
    /// timer then paces the follower).
    async fn changed(&self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        let Ok(mut guard) = fd.readable().await else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer that lives for the call.
            let n =
                unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
        guard.clear_ready();
    }
}
