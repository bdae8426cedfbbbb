//! A health check's process, run every interval for as long as its container runs.
//!
//! The general exec path (`process_io`) makes a directory and FIFOs per exec, reads
//! the container's config.json for the process, and connects to the shim each time:
//! fine for a user's `exec`, most of the cost of a check run every second in fifty
//! containers. A probe does that work once per run of its container: the exec's
//! process is made once, the shim connection is kept, and the output goes to one
//! plain file in the container's directory, emptied before each check (no inode made
//! and removed per check on a disk-backed /run).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::process_io::{exec_event, exec_process, ExecConfig};
use crate::record::ContainerRecord;
use crate::shim::{ExecIo, Shim};
use crate::{blocking, shim_of, Engine, EngineError};

/// The check's output file in the container's directory.
const OUTPUT: &str = "health-output";

pub(crate) struct Probe {
    engine: Arc<Engine>,
    container_id: String,
    args: Vec<String>,
    /// The exec's OCI process as JSON.
    spec: Arc<Vec<u8>>,
    output: PathBuf,
    /// `output`, open for the run: emptied and read through this descriptor, so a
    /// check opens no file on berthd's side.
    output_file: Arc<std::fs::File>,
    shim: Option<Arc<Shim>>,
    /// The last check's exec, exited and not deleted yet: the next check's batch
    /// deletes it first (one round trip to the shim per check instead of two), and
    /// the probe's drop deletes the last one.
    left: Option<String>,
}

/// Why a check gave no exit code.
pub(crate) enum ProbeFailure {
    /// It could not start (or be waited for): the error's words.
    Error(String),
    /// It ran past the timeout and was killed.
    Timeout,
}

impl Probe {
    /// The probe of the run `record` describes, for the check command `args`.
    pub(crate) async fn new(
        engine: &Arc<Engine>,
        record: &ContainerRecord,
        args: Vec<String>,
    ) -> Result<Probe, EngineError> {
        let config = ExecConfig {
            args: args.clone(),
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let config_json = engine.dir(&record.id).join("config.json");
        let pid = record.state.pid;
        let output = engine.dir(&record.id).join(OUTPUT);
        let path = output.clone();
        let (spec, output_file) = blocking(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(EngineError::internal(format!("opening {}", path.display())))?;
            Ok((exec_process(&config_json, pid, &config)?, file))
        })
        .await?;
        Ok(Probe {
            engine: Arc::clone(engine),
            container_id: record.id.clone(),
            args,
            spec: Arc::new(spec),
            output,
            output_file: Arc::new(output_file),
            shim: None,
            left: None,
        })
    }

    /// Runs the check once: its exit code and up to `max_output` bytes of its output
    /// (stdout and stderr as written); past `timeout` it is killed.
    ///
    /// The whole exec (empty the output file, delete the last check's exec, exec,
    /// start, wait, read the output) runs on the async runtime: the calls go to the
    /// shim in one batch on a connection the runtime polls, and the file is touched
    /// with a few small system calls on an inode berthd holds open (no thread of the
    /// blocking pool is handed a check).
    pub(crate) async fn run(
        &mut self,
        record: &Arc<ContainerRecord>,
        timeout: Duration,
        max_output: usize,
    ) -> Result<(i32, Vec<u8>), ProbeFailure> {
        let shim = match &self.shim {
            Some(s) => Arc::clone(s),
            None => {
                let (engine, id) = (Arc::clone(&self.engine), self.container_id.clone());
                let shim = blocking(move || Ok(Arc::new(shim_of(&engine, &id)?)))
                    .await
                    .map_err(|e| ProbeFailure::Error(e.to_string()))?;
                self.shim = Some(Arc::clone(&shim));
                shim
            }
        };
        let exec_id = crate::create::random_id();
        let engine = &self.engine;
        exec_event(engine, record, "exec_create", &self.args, &exec_id, None);
        let left = self.left.take();
        let job = async {
            // The last check's output goes: the same inode, emptied (if it is not
            // empty already: a quiet check costs no truncate).
            let file = &self.output_file;
            let emptied =
                file.metadata()
                    .and_then(|m| if m.len() > 0 { file.set_len(0) } else { Ok(()) });
            emptied.map_err(|e| format!("emptying {}: {e}", self.output.display()))?;
            let io = ExecIo {
                stdout: Some(self.output.clone()),
                stderr: Some(self.output.clone()),
                ..Default::default()
            };
            let waited = shim
                .run_exec(
                    &self.container_id,
                    &exec_id,
                    &self.spec,
                    &io,
                    left.as_deref(),
                    || exec_event(engine, record, "exec_start", &self.args, &exec_id, None),
                )
                .await;
            let code = waited.map_err(|e| EngineError::from(e).to_string())?;
            let mut out = Vec::new();
            read_head(file, max_output, &mut out);
            Ok::<_, String>((code, out))
        };
        let outcome = tokio::time::timeout(timeout, job).await;
        // A check that ran, or was killed past the timeout, is deleted with the next
        // check (by then it has exited); one that failed to run, now.
        match outcome {
            Ok(Ok((code, out))) => {
                self.left = Some(exec_id.clone());
                let code = code as i32;
                exec_event(engine, record, "exec_die", &self.args, &exec_id, Some(code));
                Ok((code, out))
            }
            Ok(Err(message)) => {
                // The batch may have failed before its delete of the last check's
                // exec was read: that one goes too (deleting it twice is harmless).
                let cid = self.container_id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for eid in left.iter().chain([&exec_id]) {
                        let _ = shim.delete_exec(&cid, eid);
                    }
                })
                .await;
                // A broken connection is made again at the next check.
                self.shim = None;
                Err(ProbeFailure::Error(message))
            }
            Err(_) => {
                // The batch's connection went with the dropped job: the kill goes on
                // another.
                let (cid, eid) = (self.container_id.clone(), exec_id.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    shim.kill_exec(&cid, &eid, libc::SIGKILL as u32)
                })
                .await;
                self.left = Some(exec_id.clone());
                exec_event(engine, record, "exec_die", &self.args, &exec_id, Some(137));
                Err(ProbeFailure::Timeout)
            }
        }
    }
}

impl Drop for Probe {
    /// The last check's exec is deleted (on the blocking pool, if a runtime runs).
    fn drop(&mut self) {
        let (Some(shim), Some(eid)) = (self.shim.take(), self.left.take()) else {
            return;
        };
        let cid = std::mem::take(&mut self.container_id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                let _ = shim.delete_exec(&cid, &eid);
            });
        }
    }
}

/// Up to `max` bytes from the start of `file` (pread: the descriptor's offset is not
/// used, so the file can be read again after the next check writes it).
fn read_head(file: &std::fs::File, max: usize, out: &mut Vec<u8>) {
    use std::os::unix::fs::FileExt;
    out.resize(max, 0);
    let mut filled = 0;
    while filled < max {
        match file.read_at(&mut out[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    out.truncate(filled);
}
