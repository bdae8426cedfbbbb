//! `run` in the foreground: signal forwarding, and for `terminal: true` without
//! --console-socket, a pty relay between our stdio and the container's terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result};
use berth_runtime::{CreateOptions, Runtime};
use nix::sys::termios::{self, SetArg};

static TARGET: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = TARGET.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards the usual termination signals to `pid`.
pub fn forward_signals(pid: i32) {
    TARGET.store(pid, Ordering::Relaxed);
    for s in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing a handler that only calls an async-signal-safe function.
        unsafe {
            libc::signal(
                s,
                forward as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// Copies stdin → master and master → stdout until the container's side closes.
pub fn relay_pty(master: OwnedFd) -> Result<()> {
    let stdin_fd = std::io::stdin();
    let saved = termios::tcgetattr(&stdin_fd).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin_fd, SetArg::TCSANOW, &raw);
    }
    let mut out_side = File::from(master);
    let mut in_side = out_side.try_clone().context("dup of the pty master")?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || in_side.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 8192];
    let mut stdout = std::io::stdout();
    loop {
        match out_side.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the last slave fd closed
        }
    }
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(&stdin_fd, SetArg::TCSANOW, t);
    }
    Ok(())
}

pub fn run(rt: &Runtime, o: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let bundle = std::fs::canonicalize(&o.bundle)
        .with_context(|| format!("bundle {}", o.bundle.display()))?;
    let spec = berth_runtime::container::plan::load_spec(&bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut opts = o.clone();
    let mut console_peer = None;
    if terminal && o.console_socket.is_none() {
        if detach {
            anyhow::bail!("a detached container with terminal: true needs --console-socket");
        }
        let (ours, theirs) = UnixStream::pair().context("socketpair for the console")?;
        opts.console_fd = Some(theirs.as_raw_fd());
        console_peer = Some((ours, theirs));
    }
    let created = rt.create(&opts)?;
    let master = match console_peer {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(
                berth_runtime::recv_fd(std::os::fd::AsFd::as_fd(&ours))
                    .context("receiving the pty master")?,
            )
        }
        None => None,
    };
    let started = rt.start(&o.id).and_then(|()| created.wait_exec());
    if let Err(e) = started {
        let _ = rt.delete(&o.id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    forward_signals(created.pid);
    if let Some(m) = master {
        relay_pty(m)?;
    }
    let code = created.wait()?;
    if !keep {
        rt.delete(&o.id, true)?;
    }
    Ok(code)
}
