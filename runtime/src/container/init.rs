//! The child side of create and exec: runs in the forked process, reports each
//! step's failure to the runtime over the sync channel, and ends in execve.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::errno::Errno;

use super::plan::InitPlan;
use crate::error::{Error, Result};
use crate::hooks;
use crate::namespaces::NsPlan;
use crate::process::{cloexec_from, tty, ProcPlan};
use crate::rootfs;
use crate::sync::{Channel, Msg};

/// Reports `e` to the runtime and exits. Never returns.
pub(crate) fn die(chan: &Channel, e: &Error) -> ! {
    // The runtime wraps what it receives in `Error::Init`: send an init error's own
    // words, so the message says "container init failed" once.
    let message = match e {
        Error::Init(m) => m.clone(),
        other => other.to_string(),
    };
    let _ = chan.send(&Msg::Error(message));
    // SAFETY: _exit ends this forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(1) }
}

/// Forks a sibling (CLONE_PARENT: the runtime is its parent, so it can wait for it).
/// Returns 0 in the new process, its pid in the caller.
fn clone_sibling() -> Result<i32> {
    // SAFETY: a fork-like clone (no new stack, no shared VM) from a single-threaded child.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(Error::sys("clone of the container init", Errno::last()));
    }
    Ok(r as i32)
}

/// Namespaces, the extra fork into a pid namespace, and the cgroup handshake (skipped
/// when `handshake` is false: the runtime knows the pid and has no cgroup to write it
/// into). Returns in the process that will become the container process.
fn enter_namespaces(
    ns: &NsPlan,
    chan: &Channel,
    cgroup_fds: &[RawFd],
    handshake: bool,
) -> Result<()> {
    let ask = || -> Result<()> {
        chan.send(&Msg::WriteMaps)
            .map_err(|e| Error::sys("sync (maps)", e))?;
        chan.expect_ok()
            .map_err(|e| Error::sys("waiting for the uid/gid maps", e))
    };
    ns.enter(&ask)?;
    if !handshake {
        // (An exec born in the pid namespace, on v1 cgroups: its own pid is the
        // one the runtime's fork returned.)
    } else if ns.pid {
        let child = clone_sibling()?;
        if child > 0 {
            let _ = chan.send(&Msg::Pid(child));
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(0) }
        }
    } else {
        chan.send(&Msg::Pid(nix::unistd::getpid().as_raw()))
            .map_err(|e| Error::sys("sync (pid)", e))?;
    }
    if handshake {
        chan.expect_ok()
            .map_err(|e| Error::sys("waiting for the cgroup", e))?;
    }
    for &fd in cgroup_fds {
        // SAFETY: fds opened by the runtime before fork and kept open for us.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        nix::unistd::write(fd, b"0").map_err(|e| Error::sys("joining the cgroup (tasks)", e))?;
    }
    ns.enter_cgroup()
}

fn reset_signals() {
    // SAFETY: restoring default dispositions and an empty mask in a single-threaded child.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn set_stdio(stdio: Option<[RawFd; 3]>) -> Result<()> {
    if let Some(fds) = stdio {
        for (target, fd) in fds.iter().enumerate() {
            if *fd != target as RawFd {
                nix::unistd::dup2(*fd, target as RawFd)
                    .map_err(|e| Error::sys("dup2 of stdio", e))?;
            }
        }
    }
    Ok(())
}

/// The container init (create). Never returns.
pub(crate) fn init_main(plan: &InitPlan, chan: &Channel) -> ! {
    let e = match init_steps(plan, chan) {
        Ok(e) => e,
        Err(e) => e,
    };
    die(chan, &e)
}

fn init_steps(plan: &InitPlan, chan: &Channel) -> Result<Error> {
    reset_signals();
    set_stdio(plan.stdio)?;
    // Opened before the namespaces: in a new user namespace the init becomes its root,
    // which has no rights over the host root's state dir.
    let fifo = nix::fcntl::open(
        &plan.fifo,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("opening {}", plan.fifo.display()), e))?;
    enter_namespaces(&plan.ns, chan, &plan.cgroup_fds, true)?;
    let state = if plan.create_container_hooks.is_empty() && plan.start_container_hooks.is_empty() {
        Vec::new()
    } else {
        match chan.recv() {
            Ok(Some(Msg::Text(s))) => s.into_bytes(),
            _ => return Err(Error::Init("sync: expected the state for hooks".into())),
        }
    };
    let cwd_in_root = rootfs::paths::secure_join(&plan.rootfs.rootfs, &plan.process.cwd);
    rootfs::prepare(&plan.rootfs)?;
    if !cwd_in_root.exists() {
        std::fs::create_dir_all(&cwd_in_root)
            .map_err(|e| Error::io("creating the cwd", &cwd_in_root, e))?;
    }
    if plan.runtime_hooks {
        chan.send(&Msg::RunHooks)
            .map_err(|e| Error::sys("sync (hooks)", e))?;
        chan.expect_ok()
            .map_err(|e| Error::sys("waiting for createRuntime hooks", e))?;
    }
    hooks::run("createContainer", &plan.create_container_hooks, &state)?;
    rootfs::pivot(&plan.rootfs)?;
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(|e| Error::sys("sethostname", e))?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: setdomainname reads len bytes from a valid buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::sys("setdomainname", Errno::last()));
        }
    }
    if plan.process.terminal {
        if let Some(c) = plan.console {
            tty::setup(c, plan.process.console_size, true)?;
        }
    }
    for (path, value) in &plan.sysctls {
        std::fs::write(path, value).map_err(|e| Error::io("writing sysctl", path, e))?;
    }
    rootfs::finish(&plan.rootfs)?;
    let exe = prepare_process(&plan.process, plan.preserve_fds)?;
    chan.send(&Msg::Ready)
        .map_err(|e| Error::sys("sync (ready)", e))?;
    // Wait for `start`: it writes one byte into the fifo.
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fifo, &mut b) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waiting on exec.fifo", e)),
        }
    }
    let _ = nix::unistd::close(fifo);
    hooks::run("startContainer", &plan.start_container_hooks, &state)?;
    Ok(plan.process.finalize_and_exec(&exe))
}

/// cwd, oom score, rlimits, fds, executable lookup.
fn prepare_process(p: &ProcPlan, preserve_fds: u32) -> Result<CString> {
    nix::unistd::chdir(&p.cwd)
        .map_err(|e| Error::sys(format!("chdir to cwd {}", p.cwd.display()), e))?;
    p.set_oom_score_adj()?;
    crate::process::rlimits::apply(&p.rlimits)?;
    cloexec_from(3 + preserve_fds);
    p.resolve_exec()
}

/// The exec'd process: joins the container and execs. Never returns. Without
/// `handshake` it sends nothing unless a step fails (see `enter_namespaces`).
pub(crate) fn exec_main(
    ns: &NsPlan,
    cgroup_fds: &[RawFd],
    p: &ProcPlan,
    (console, preserve_fds): (Option<RawFd>, u32),
    chan: &Channel,
    handshake: bool,
) -> ! {
    let run = || -> Result<Error> {
        reset_signals();
        enter_namespaces(ns, chan, cgroup_fds, handshake)?;
        if p.terminal {
            if let Some(c) = console {
                tty::setup(c, p.console_size, false)?;
            }
        }
        let exe = prepare_process(p, preserve_fds)?;
        Ok(p.finalize_and_exec(&exe))
    };
    let e = match run() {
        Ok(e) => e,
        Err(e) => e,
    };
    die(chan, &e)
}
