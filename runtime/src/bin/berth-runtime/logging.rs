//! --log, --log-format, --debug: tracing to a file (text or runc-style JSON), and
//! the final error line in the format containerd/podman read.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use crate::cli::Global;

pub struct Log {
    file: Option<PathBuf>,
    json: bool,
}

pub fn init(g: &Global) -> Log {
    let level = if g.debug { "debug" } else { "warn" };
    let filter = EnvFilter::new(level);
    let json = g.log_format.as_deref() == Some("json");
    match &g.log {
        Some(path) if !path.as_os_str().is_empty() => {
            if let Ok(f) = OpenOptions::new().create(true).append(true).open(path) {
                let b = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::sync::Mutex::new(f));
                if json {
                    let _ = b.json().with_current_span(false).try_init();
                } else {
                    let _ = b.with_ansi(false).try_init();
                }
            }
        }
        _ => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .try_init();
        }
    }
    Log {
        file: g.log.clone().filter(|p| !p.as_os_str().is_empty()),
        json,
    }
}

impl Log {
    /// Reports a fatal error on stderr and, in runc's format, in the log file.
    pub fn error(&self, msg: &str) {
        eprintln!("berth-runtime: {msg}");
        let Some(path) = &self.file else { return };
        let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) else {
            return;
        };
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let line = if self.json {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("time=\"{time}\" level=error msg={msg:?}")
        };
        let _ = writeln!(f, "{line}");
    }
}
