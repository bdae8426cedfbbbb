//! The serving shim (after `start` detached it) and the `delete` subcommand.

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message, MessageField};
use nix::sys::signal::{SigSet, Signal};

use crate::bootstrap::{Flags, LISTEN_FD_ENV, SOCKET_DIR};
use crate::events::Publisher;
use crate::exit_record::ExitRecord;
use crate::reaper::{become_subreaper, block_sigchld, Reaper};
use crate::server;
use crate::task::service::{dispatch, make_runtime, RuntimeChoice, TaskService};
use crate::task::{timestamp, Supervisor};

/// The environment variable naming the default OCI runtime binary.
pub const RUNTIME_ENV: &str = "BERTH_SHIM_RUNTIME";

/// The runtime used when Create's options name none: `$BERTH_SHIM_RUNTIME` or the
/// built-in one (`berth`),
/// with its state under `/run/berth/runtime/<namespace>`.
pub fn default_runtime(namespace: &str) -> RuntimeChoice {
    let binary = std::env::var_os(RUNTIME_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::backend::inprocess::NAME));
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    RuntimeChoice {
        binary,
        root: Path::new("/run/berth/runtime").join(ns),
    }
}

/// Serves the Task API on the listener inherited from `start` until Shutdown.
pub fn serve(flags: &Flags) -> Result<()> {
    let fd: RawFd = std::env::var(LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .context("no listening socket: run the shim through `start` (containerd does)")?;
    // The socket file to remove at Shutdown, read from the listener itself: by then the
    // bundle (our working directory, which names the socket) may be gone.
    let socket = bound_path(fd);
    become_subreaper().context("becoming a child subreaper")?;
    limit_malloc_arenas();
    // SIGUSR1 asks to reopen log files; handled by a thread with sigwait.
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    usr1.thread_block().context("blocking SIGUSR1")?;
    // SIGCHLD wakes the reaping thread only: no other thread sees EINTR from it.
    block_sigchld().context("blocking SIGCHLD")?;

    let (exit_tx, exit_rx) = channel();
    // Set once the supervisor exists (it needs the reaper): exits of execs without
    // output copiers are applied on the reaper's thread, the rest on the exit thread.
    let inline: Arc<std::sync::OnceLock<Arc<Supervisor>>> = Arc::default();
    let inline_sup = Arc::clone(&inline);
    let reaper = Reaper::start(Box::new(move |pid, code, at| {
        if let Some(sup) = inline_sup.get() {
            if sup.on_exec_exit_inline(pid, code, at) {
                return;
            }
        }
        let _ = exit_tx.send((pid, code, at));
    }))
    .context("starting the reaper")?;
    let publisher = Publisher::start(
        (!flags.publish_binary.is_empty()).then(|| PathBuf::from(&flags.publish_binary)),
        flags.address.clone(),
        flags.namespace.clone(),
        Arc::clone(&reaper),
    )
    .context("starting the event publisher")?;
    let supervisor = Arc::new(Supervisor::new(publisher, PathBuf::from(SOCKET_DIR)));
    let _ = inline.set(Arc::clone(&supervisor));

    let sup = Arc::clone(&supervisor);
    std::thread::Builder::new()
        .name("exits".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for (pid, code, at) in exit_rx {
                sup.on_exit(pid, code, at);
            }
        })
        .context("starting the exit thread")?;
    let sup = Arc::clone(&supervisor);
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            if let Ok(Signal::SIGUSR1) = usr1.wait() {
                sup.reopen_logs();
            }
        })
        .context("starting the signal thread")?;

    let (shutdown_tx, shutdown_rx) = channel();
    let service = Arc::new(TaskService::new(
        Arc::clone(&supervisor),
        Arc::clone(&reaper),
        default_runtime(&flags.namespace),
        shutdown_tx,
    ));
    let listener = inherited_listener(fd).context("using the inherited listener")?;
    let dispatch = Arc::new(dispatch(service));
    std::thread::Builder::new()
        .name("ttrpc".into())
        .stack_size(64 * 1024)
        .spawn(move || server::serve(listener, dispatch))
        .context("starting the ttrpc server")?;
    tracing::info!(id = %flags.id, "shim serving");
    let _ = shutdown_rx.recv();
    tracing::info!("shim shutting down");
    if let Some(path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    // Give the Shutdown reply a moment to leave, then go.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::process::exit(0)
}

/// The listener `start` left at `fd`, blocking and closed on exec (the runtime's
/// children must not hold it).
fn inherited_listener(fd: RawFd) -> Result<UnixListener> {
    // SAFETY: `fd` is the listening socket `start` passed us and nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    listener.set_nonblocking(false)?;
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(listener)
}

/// The path a listening unix socket is bound to.
fn bound_path(fd: RawFd) -> Option<PathBuf> {
    use nix::sys::socket::{getsockname, UnixAddr};
    let addr = getsockname::<UnixAddr>(fd).ok()?;
    addr.path().map(Path::to_path_buf)
}

/// glibc gives each thread that allocates its own malloc arena (64 MiB reserved, tens
/// of KiB touched); the shim's threads mostly sleep, so one shared arena is plenty and
/// keeps each shim's private memory small.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// `delete`: cleans up after a shim that died: force-deletes the container in its
/// runtime, unmounts its rootfs, prints a DeleteResponse with the recorded exit.
pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().context("reading the bundle directory")?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let choice = RuntimeChoice::load(&bundle).unwrap_or_else(|| default_runtime(&flags.namespace));
    let reaper = Reaper::start(Box::new(|_, _, _| {})).context("starting the reaper")?;
    let runtime = make_runtime(&choice, &reaper);
    if let Err(e) = runtime.delete(&flags.id, true) {
        tracing::warn!("{e}");
    }
    crate::mount::unmount_all(&bundle.join("rootfs")).context("unmounting the rootfs")?;
    let record = ExitRecord::read(&bundle).ok().flatten();
    let mut resp = DeleteResponse::new();
    match record {
        Some(r) => {
            resp.pid = r.pid;
            resp.exit_status = r.exit_status;
            resp.exited_at = MessageField::some(timestamp(r.exited_at()));
        }
        None => {
            resp.exit_status = 128 + libc::SIGKILL as u32;
            resp.exited_at = MessageField::some(timestamp(SystemTime::now()));
        }
    }
    let bytes = resp
        .write_to_bytes()
        .context("encoding the DeleteResponse")?;
    let mut out = std::io::stdout();
    out.write_all(&bytes)
        .context("writing the DeleteResponse")?;
    out.flush().context("writing the DeleteResponse")?;
    Ok(())
}
