//! A real pseudo-terminal for driving interactive clients (`docker run -it`, `berth
//! exec -it`) as a user's terminal would: the client runs as a session leader with
//! the terminal as its controlling TTY and stdio; the test types into the master side,
//! reads what the client prints, and resizes the window (the kernel sends SIGWINCH).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::pty::{openpty, Winsize};

/// A client running on a pseudo-terminal.
pub struct PtyChild {
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    /// Where the last `expect` matched; the next one looks after it.
    seen: usize,
    pub child: Child,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, Winsize);

impl PtyChild {
    /// Spawns `cmd` with a `rows`×`cols` terminal as stdin, stdout, stderr and
    /// controlling terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Result<PtyChild> {
        let pty = openpty(Some(&winsize(rows, cols)), None).context("openpty")?;
        let slave: OwnedFd = pty.slave;
        cmd.stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave.try_clone()?);
        // SAFETY: between fork and exec the closure only makes async-signal-safe calls
        // (setsid, ioctl) on the child's own descriptors.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        drop(cmd);
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone()?;
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave descriptor is closed: the client is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Ok(PtyChild {
            master,
            output,
            seen: 0,
            child,
        })
    }

    /// Types `text` (a real terminal sends `\r` for Enter).
    pub fn send(&mut self, text: &[u8]) -> Result<()> {
        self.master
            .write_all(text)
            .context("writing to the terminal")?;
        Ok(())
    }

    /// Everything the client printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Waits until `needle` appears after the last match.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let out = self.output.lock().unwrap_or_else(|e| e.into_inner());
                let text = String::from_utf8_lossy(&out[self.seen.min(out.len())..]).into_owned();
                if let Some(i) = text.find(needle) {
                    // Byte offsets of the lossy text match the raw ones for ASCII output.
                    self.seen += i + needle.len();
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{needle:?} did not appear within {timeout:?}; the terminal shows:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resizes the terminal; the kernel tells the client with SIGWINCH.
    pub fn resize(&mut self, rows: u16, cols: u16) -> Result<()> {
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, valid for the call.
        unsafe { set_winsize(self.master.as_raw_fd(), &winsize(rows, cols)) }
            .context("TIOCSWINSZ")?;
        Ok(())
    }

    /// Waits for the client to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "the client did not exit within {timeout:?}; the terminal shows:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
