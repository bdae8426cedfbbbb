//! Running one CNI plugin binary: environment, stdin config, timeout, error results.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Most a plugin may print on stdout or stderr before we stop reading.
const MAX_OUTPUT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    NotFound { plugin: String, dirs: String },
    #[error("CNI plugin {path}: {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    #[error("CNI plugin {plugin} ({command}) timed out after {timeout:?} and was killed")]
    Timeout {
        plugin: String,
        command: String,
        timeout: Duration,
    },
    /// The plugin printed a CNI error result (or failed without one).
    #[error("CNI plugin {plugin} failed {command}: {message}")]
    Failed {
        plugin: String,
        command: String,
        /// The CNI error code; 0 when the plugin printed no error result.
        code: u64,
        message: String,
    },
    #[error("CNI plugin {plugin} ({command}) printed invalid JSON: {source}; output: {output}")]
    BadOutput {
        plugin: String,
        command: String,
        output: String,
        source: serde_json::Error,
    },
}

/// Where plugins are looked up, and how long one may run.
#[derive(Debug, Clone)]
pub struct PluginRunner {
    pub bin_dirs: Vec<PathBuf>,
    pub timeout: Duration,
}

/// One invocation's inputs.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    /// Empty when the namespace is gone (allowed for DEL).
    pub netns: &'a str,
    pub if_name: &'a str,
    pub args: &'a str,
}

impl PluginRunner {
    /// The first executable `<dir>/<name>` in the bin dirs.
    pub fn find(&self, name: &str) -> Result<PathBuf, ExecError> {
        use std::os::unix::fs::PermissionsExt;
        for dir in &self.bin_dirs {
            let p = dir.join(name);
            if let Ok(m) = std::fs::metadata(&p) {
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    return Ok(p);
                }
            }
        }
        Err(ExecError::NotFound {
            plugin: name.to_string(),
            dirs: self.cni_path(),
        })
    }

    pub fn cni_path(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs the plugin and returns its parsed stdout (`Value::Null` when it printed nothing,
    /// as DEL and CHECK do).
    pub fn run(
        &self,
        plugin: &str,
        inv: &Invocation<'_>,
        stdin: &[u8],
    ) -> Result<Value, ExecError> {
        let path = self.find(plugin)?;
        let started = Instant::now();
        let out = self.spawn_and_wait(&path, plugin, inv, stdin)?;
        tracing::debug!(
            plugin,
            command = inv.command,
            container = inv.container_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "CNI plugin ran"
        );
        let (status, stdout, stderr) = out;
        let parsed: Option<Value> = if stdout.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(&stdout) {
                Ok(v) => Some(v),
                Err(source) if status.success() => {
                    return Err(ExecError::BadOutput {
                        plugin: plugin.to_string(),
                        command: inv.command.to_string(),
                        output: truncate(&stdout),
                        source,
                    })
                }
                Err(_) => None,
            }
        };
        if status.success() {
            return Ok(parsed.unwrap_or(Value::Null));
        }
        let (code, message) = match parsed.as_ref().and_then(error_result) {
            Some((code, msg)) => (code, msg),
            None => {
                let mut msg = format!("exited with {status}");
                let text = if stderr.is_empty() { &stdout } else { &stderr };
                if !text.is_empty() {
                    msg.push_str(": ");
                    msg.push_str(&truncate(text));
                }
                (0, msg)
            }
        };
        Err(ExecError::Failed {
            plugin: plugin.to_string(),
            command: inv.command.to_string(),
            code,
            message,
        })
    }

    fn spawn_and_wait(
        &self,
        path: &Path,
        plugin: &str,
        inv: &Invocation<'_>,
        stdin: &[u8],
    ) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), ExecError> {
        let ioe = |step| {
            move |source| ExecError::Io {
                path: path.to_path_buf(),
                step,
                source,
            }
        };
        let mut cmd = Command::new(path);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env("CNI_COMMAND", inv.command)
            .env("CNI_CONTAINERID", inv.container_id)
            .env("CNI_NETNS", inv.netns)
            .env("CNI_IFNAME", inv.if_name)
            .env("CNI_ARGS", inv.args)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills iptables & co. that it started too.
            .process_group(0);
        // ETXTBSY: the plugin file is still open for writing somewhere — being
        // installed, or a descriptor another thread's fork inherited and has not yet
        // closed by exec. Both pass within milliseconds.
        let mut busy = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && busy < 25 => {
                    busy += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(ioe("spawn"))?,
            }
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: pidfd_open(2) on our own unreaped child; returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        let pidfd = (raw >= 0).then(|| {
            // SAFETY: raw is a fresh descriptor owned by nobody else.
            unsafe { OwnedFd::from_raw_fd(raw) }
        });

        let mut child_in = child.stdin.take();
        let mut child_out = child.stdout.take();
        let mut child_err = child.stderr.take();
        let (timed_out, outputs) = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                if let Some(w) = child_in.as_mut() {
                    // A plugin that exits without reading its config breaks the pipe: fine.
                    let _ = w.write_all(stdin);
                }
                drop(child_in);
            });
            let out = s.spawn(move || read_capped(child_out.as_mut()));
            let err = s.spawn(move || read_capped(child_err.as_mut()));
            let deadline = Instant::now() + self.timeout;
            let timed_out = !wait_exit(pidfd.as_ref(), &mut child, self.timeout);
            // SAFETY: kill(2) of the plugin's own process group (pgid == its pid, which
            // is not reaped yet, so the id cannot have been reused).
            let kill_group = || unsafe { libc::kill(-pid, libc::SIGKILL) };
            if timed_out {
                kill_group();
            } else {
                // Something the plugin started may still hold its stdout; wait for EOF
                // until the deadline, then end the whole group.
                while !(out.is_finished() && err.is_finished()) {
                    if Instant::now() >= deadline {
                        tracing::warn!(
                            plugin,
                            "CNI plugin's children kept its output open; killing them"
                        );
                        kill_group();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let _ = writer.join();
            let o = out.join().unwrap_or_default();
            let e = err.join().unwrap_or_default();
            (timed_out, (o, e))
        });
        let status = child.wait().map_err(ioe("wait"))?;
        if timed_out {
            return Err(ExecError::Timeout {
                plugin: plugin.to_string(),
                command: inv.command.to_string(),
                timeout: self.timeout,
            });
        }
        Ok((status, outputs.0, outputs.1))
    }
}

/// Waits until the child exits or the timeout passes; true when it exited.
/// Does not reap it, so its pid stays valid for a kill.
fn wait_exit(pidfd: Option<&OwnedFd>, child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: pfd is a valid pollfd array of length 1.
                let rc = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
                if rc > 0 {
                    return true;
                }
            }
            None => {
                // No pidfd (old kernel): peek with waitid(WNOWAIT) so the pid stays ours.
                // SAFETY: siginfo_t is plain data; zeroed is a valid value.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid on our own child with a valid out-pointer; WNOWAIT keeps it unreaped.
                let rc = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        child.id(),
                        &mut info,
                        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                    )
                };
                // SAFETY: si_pid is valid to read after waitid filled info.
                if rc == 0 && unsafe { info.si_pid() } != 0 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5).min(left));
            }
        }
    }
}

fn read_capped<R: Read>(r: Option<&mut R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
        // Drain the rest so the plugin never blocks on a full pipe.
        let _ = io::copy(r, &mut io::sink());
    }
    buf
}

fn truncate(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    if s.len() > 2000 {
        let mut end = 2000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// `{"code": N, "msg": "...", "details": "..."}` → (code, "msg: details (code N)").
fn error_result(v: &Value) -> Option<(u64, String)> {
    let code = v.get("code")?.as_u64()?;
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
    let details = v.get("details").and_then(Value::as_str).unwrap_or("");
    let mut text = msg.to_string();
    if !details.is_empty() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(details);
    }
    let name = match code {
        1 => " incompatible CNI version",
        2 => " unsupported field",
        3 => " container unknown or does not exist",
        4 => " invalid environment variables",
        5 => " I/O failure",
        6 => " failed to decode content",
        7 => " invalid network config",
        11 => " try again later",
        50 => " plugin not available",
        _ => "",
    };
    Some((code, format!("{text} (CNI error code {code}{name})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_error_results() {
        let v = serde_json::json!({"code": 7, "msg": "bad config", "details": "no bridge"});
        let Some((code, msg)) = error_result(&v) else {
            panic!("no error result found in {v}");
        };
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            "bad config: no bridge (CNI error code 7 invalid network config)"
        );
        assert!(error_result(&serde_json::json!({"cniVersion": "1.0.0"})).is_none());
    }
}
