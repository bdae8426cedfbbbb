//! A process's stdio: containerd's FIFOs passed through, log files the shim writes
//! itself (`crilog://<path>` or `jsonlog://<path>` in the Create request), and terminals through the runtime's
//! console socket.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::backend::ProcStdio;
use crate::logfile::{copy_stream, LogFile, Stream, DEFAULT_MAX_RECORD};
use crate::logtarget::LogTarget;

/// The scheme of a stdout/stderr target the shim writes as a CRI log (see
/// [`crate::logtarget`] for the json-file one and rotation options).
pub const CRI_LOG_SCHEME: &str = crate::logtarget::CRI_SCHEME;

/// The scheme of a stdin FIFO that outlives its writers: when the last writer closes
/// it (an attached client detached), the shim waits for the next one instead of
/// closing the process's stdin. Only CloseIO (or the process's exit) closes it. A
/// plain path closes the process's stdin at the first EOF, as containerd's shims do.
pub const STDIN_REOPEN_SCHEME: &str = "reopen://";

const COPY_STACK: usize = 64 * 1024;

/// Errors setting up stdio.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("opening {what} {path}: {source}")]
    Open {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("console socket {path}: {message}")]
    Console { path: PathBuf, message: String },
    #[error("creating a pipe for {what}: {source}")]
    Pipe {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("starting a copy thread: {0}")]
    Thread(std::io::Error),
}

/// Where one output stream goes.
enum Sink {
    Null,
    Fifo(File),
    Log(Arc<LogFile>),
}

/// The stdin writer the shim holds, closed by CloseIO.
pub type StdinCloser = Arc<Mutex<Option<File>>>;

/// A process's stdin as the shim holds it: the writer into the process, and the FIFO
/// its copier reads from.
pub struct Stdin {
    writer: StdinCloser,
    fifo: String,
}

impl Stdin {
    /// Closes the process's stdin and wakes its copier if it waits for a client to
    /// open the FIFO or to write to it, so that the copier's thread ends.
    pub fn close(self) {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A writer opened and closed at once: a copier blocked in open returns, one
        // blocked in read sees EOF (unless a client still holds the FIFO open; then
        // the client's next write ends the copier). No reader: nothing to wake.
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.fifo);
    }
}

/// Starts copying the stdin FIFO named by `target` (a path, or
/// [`STDIN_REOPEN_SCHEME`] and a path) into `writer`.
fn spawn_stdin(target: &str, writer: File) -> Result<Stdin, StdioError> {
    let (fifo, reopen) = match target.strip_prefix(STDIN_REOPEN_SCHEME) {
        Some(path) => (path.to_string(), true),
        None => (target.to_string(), false),
    };
    let writer: StdinCloser = Arc::new(Mutex::new(Some(writer)));
    let (w, path) = (Arc::clone(&writer), fifo.clone());
    spawn_copy(move || copy_stdin(&path, &w, reopen))?;
    Ok(Stdin { writer, fifo })
}

/// Stdio prepared for one process, before the runtime starts it.
pub struct PreparedIo {
    stdin: Option<String>,
    stdout: Sink,
    stderr: Sink,
    console: Option<(UnixListener, PathBuf)>,
    /// Log files to reopen on rotation.
    pub logs: Vec<Arc<LogFile>>,
}

/// The running side of a process's stdio.
#[derive(Default)]
pub struct RunningIo {
    pub stdin: Option<Stdin>,
    pub master: Option<Arc<File>>,
    /// Output copiers, drained when the process exits. (The stdin copier is not
    /// among them: it ends when the client closes its side, which may be never.)
    pub copiers: Vec<Copier>,
    pub logs: Vec<Arc<LogFile>>,
}

fn open_err<'a>(
    what: &'static str,
    path: &'a str,
) -> impl FnOnce(std::io::Error) -> StdioError + 'a {
    move |source| StdioError::Open {
        what,
        path: path.to_string(),
        source,
    }
}

/// Opens a FIFO for writing without blocking on a missing reader; plain paths are
/// opened for appending.
fn open_writer(path: &str) -> Result<File, StdioError> {
    let is_fifo = std::fs::metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    if is_fifo {
        // Holding a read end makes the write-only open return at once.
        let _keep = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(open_err("output fifo", path))?;
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(open_err("output fifo", path))
    } else {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(open_err("output file", path))
    }
}

fn sink(path: &str, logs: &mut Vec<Arc<LogFile>>) -> Result<Sink, StdioError> {
    if path.is_empty() {
        return Ok(Sink::Null);
    }
    if let Some(target) = LogTarget::parse(path) {
        let target = target.map_err(|message| StdioError::Open {
            what: "log file",
            path: path.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
        })?;
        if let Some(l) = logs.iter().find(|l| l.path() == target.path) {
            return Ok(Sink::Log(Arc::clone(l)));
        }
        let log_path = target.path.display().to_string();
        let log = LogFile::open_target(target).map_err(|e| StdioError::Open {
            what: "log file",
            path: log_path,
            source: std::io::Error::other(e),
        })?;
        logs.push(Arc::clone(&log));
        return Ok(Sink::Log(log));
    }
    let path = path.strip_prefix("file://").unwrap_or(path);
    Ok(Sink::Fifo(open_writer(path)?))
}

fn pipe(what: &'static str) -> Result<(File, File), StdioError> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| StdioError::Pipe {
            what,
            source: e.into(),
        })?;
    Ok((File::from(r), File::from(w)))
}

/// A copy thread and the way to wait for its end with a deadline.
pub struct Copier {
    handle: JoinHandle<()>,
    /// Disconnected when the thread's closure returned (or panicked).
    done: Receiver<()>,
}

impl Copier {
    /// Waits until the copy ended or `deadline` passed; true when it ended.
    pub fn join_by(self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = self.handle.join();
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }
}

fn spawn_copy(f: impl FnOnce() + Send + 'static) -> Result<Copier, StdioError> {
    let (tx, done) = channel::<()>();
    let handle = std::thread::Builder::new()
        .stack_size(COPY_STACK)
        .spawn(move || {
            let _tx = tx;
            f();
        })
        .map_err(StdioError::Thread)?;
    Ok(Copier { handle, done })
}

/// Copies bytes until EOF or an error (EIO from a pty master whose slave closed).
fn copy_raw(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

impl PreparedIo {
    /// Prepares stdio from the request's paths; `console_socket` is where a terminal
    /// process's runtime will send the pty master.
    pub fn prepare(
        stdin: &str,
        stdout: &str,
        stderr: &str,
        terminal: bool,
        console_socket: &Path,
    ) -> Result<PreparedIo, StdioError> {
        let mut logs = Vec::new();
        let stdout = sink(stdout, &mut logs)?;
        let stderr = if terminal {
            Sink::Null
        } else {
            sink(stderr, &mut logs)?
        };
        let console = if terminal {
            let _ = std::fs::remove_file(console_socket);
            let l = UnixListener::bind(console_socket).map_err(|e| StdioError::Console {
                path: console_socket.to_path_buf(),
                message: e.to_string(),
            })?;
            Some((l, console_socket.to_path_buf()))
        } else {
            None
        };
        Ok(PreparedIo {
            stdin: (!stdin.is_empty()).then(|| stdin.to_string()),
            stdout,
            stderr,
            console,
            logs,
        })
    }

    /// The console socket path for the runtime, for terminal processes.
    pub fn console_socket(&self) -> Option<&Path> {
        self.console.as_ref().map(|(_, p)| p.as_path())
    }

    /// Splits into the fds the runtime passes to the process and what the shim keeps
    /// until the process runs.
    pub fn split(self) -> Result<(ProcStdio, PendingIo), StdioError> {
        let mut running = RunningIo {
            logs: self.logs,
            ..RunningIo::default()
        };
        let mut stdio = ProcStdio::default();
        let mut pending = PendingIo::default();
        if self.console.is_some() {
            pending.console = self.console;
            pending.stdout = Some(self.stdout);
            pending.stdin = self.stdin;
            pending.running = running;
            return Ok((stdio, pending));
        }
        if let Some(target) = self.stdin {
            let (r, w) = pipe("stdin")?;
            stdio.stdin = Some(OwnedFd::from(r));
            running.stdin = Some(spawn_stdin(&target, w)?);
        }
        for (which, sink) in [(Stream::Stdout, self.stdout), (Stream::Stderr, self.stderr)] {
            let fd = match sink {
                Sink::Null => None,
                Sink::Fifo(f) => Some(OwnedFd::from(f)),
                Sink::Log(log) => {
                    let (r, w) = pipe("log")?;
                    running.copiers.push(spawn_copy(move || {
                        if let Err(e) = copy_stream(r, &log, which, DEFAULT_MAX_RECORD) {
                            tracing::warn!("log copy stopped: {e}");
                        }
                    })?);
                    Some(OwnedFd::from(w))
                }
            };
            match which {
                Stream::Stdout => stdio.stdout = fd,
                Stream::Stderr => stdio.stderr = fd,
            }
        }
        pending.running = running;
        Ok((stdio, pending))
    }
}

/// Copies the stdin FIFO into the process's stdin until EOF or CloseIO. With
/// `reopen`, an EOF only means that the clients went: the FIFO is opened again for the
/// next one, and only CloseIO ends the copy.
fn copy_stdin(path: &str, writer: &StdinCloser, reopen: bool) {
    let is_open = || writer.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    let mut buf = vec![0u8; 8192];
    'open: while is_open() {
        // Blocks until a client opens its write end.
        let Ok(mut fifo) = File::open(path) else {
            break;
        };
        loop {
            let n = match fifo.read(&mut buf) {
                Ok(0) if reopen => continue 'open,
                Ok(0) | Err(_) => break 'open,
                Ok(n) => n,
            };
            let mut guard = writer.lock().unwrap_or_else(|e| e.into_inner());
            let written = match guard.as_mut() {
                Some(w) => w.write_all(&buf[..n]).is_ok(),
                None => false,
            };
            if !written {
                break 'open;
            }
        }
    }
    writer.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Stdio waiting for the runtime to have created the process.
#[derive(Default)]
pub struct PendingIo {
    console: Option<(UnixListener, PathBuf)>,
    stdout: Option<Sink>,
    stdin: Option<String>,
    running: RunningIo,
}

impl PendingIo {
    /// Finishes setup after the runtime returned: for a terminal, receives the pty
    /// master and starts copying between it and the client's stdio.
    pub fn start(mut self) -> Result<RunningIo, StdioError> {
        let Some((listener, path)) = self.console.take() else {
            return Ok(self.running);
        };
        let master = receive_master(&listener, &path);
        let _ = std::fs::remove_file(&path);
        let master = Arc::new(master?);
        let mut running = self.running;
        if let Some(target) = self.stdin.take() {
            let w = master.try_clone().map_err(|e| StdioError::Console {
                path: PathBuf::from(&target),
                message: format!("duplicating the pty master: {e}"),
            })?;
            running.stdin = Some(spawn_stdin(&target, w)?);
        }
        let reader = Arc::clone(&master);
        match self.stdout.take() {
            Some(Sink::Fifo(f)) => running
                .copiers
                .push(spawn_copy(move || copy_raw(&*reader, f))?),
            Some(Sink::Log(log)) => running.copiers.push(spawn_copy(move || {
                if let Err(e) = copy_stream(&*reader, &log, Stream::Stdout, DEFAULT_MAX_RECORD) {
                    tracing::warn!("log copy stopped: {e}");
                }
            })?),
            _ => running
                .copiers
                .push(spawn_copy(move || copy_raw(&*reader, std::io::sink()))?),
        }
        running.master = Some(master);
        Ok(running)
    }
}

/// Accepts the runtime's connection on the console socket and receives the pty master
/// (SCM_RIGHTS). The runtime has exited by now, so the connection is already queued.
fn receive_master(listener: &UnixListener, path: &Path) -> Result<File, StdioError> {
    let err = |message: String| StdioError::Console {
        path: path.to_path_buf(),
        message,
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| err(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(err(format!("the runtime sent no terminal: {e}"))),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(|e| err(e.to_string()))?;
    let mut name = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| err(format!("receiving the pty master: {e}")))?;
    for c in msg.cmsgs().map_err(|e| err(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: fds received by this recvmsg belong to us and are unused.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: the fd was just received through SCM_RIGHTS and is ours alone.
                return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Err(err(
        "the runtime's message carried no file descriptor".into()
    ))
}

/// Sets the terminal size of a pty master.
pub fn resize(master: &File, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
