//! How a container's output is kept: the log's format and rotation, chosen at create
//! (a front door translates its own options into these) and kept in the record.

use std::path::Path;

use berth_shim::logtarget::{LogFormat, LogTarget, Rotation};
use serde::{Deserialize, Serialize};

/// What is kept of a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogKind {
    /// The CRI format (CRI containers, and records made before the others existed).
    #[default]
    Cri,
    /// Docker's json-file format in `<id>-json.log`.
    JsonFile,
    /// Nothing: the output goes nowhere and there is no log to read.
    None,
}

/// A container's log settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    #[serde(default)]
    pub kind: LogKind,
    /// Rotate when the file holds this many bytes; never when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Files kept, the current one included.
    #[serde(default = "one")]
    pub max_files: u32,
    /// Rotated files are gzipped.
    #[serde(default)]
    pub compress: bool,
}

fn one() -> u32 {
    1
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            kind: LogKind::Cri,
            max_size: None,
            max_files: 1,
            compress: false,
        }
    }
}

impl LogSettings {
    /// The format the log file is in; `None` for no log.
    pub fn format(&self) -> Option<LogFormat> {
        match self.kind {
            LogKind::Cri => Some(LogFormat::Cri),
            LogKind::JsonFile => Some(LogFormat::JsonFile),
            LogKind::None => None,
        }
    }

    /// The stdout/stderr URI the shim takes for a log at `path`; empty (the output
    /// discarded) for no log.
    pub fn shim_target(&self, path: &Path) -> String {
        let Some(format) = self.format() else {
            return String::new();
        };
        LogTarget {
            format,
            path: path.to_path_buf(),
            rotation: Rotation {
                max_size: self.max_size,
                max_files: self.max_files.max(1),
                compress: self.compress,
            },
        }
        .to_uri()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_read_as_cri_and_targets_name_the_rotation() {
        let old: LogSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(old, LogSettings::default());
        let json = LogSettings {
            kind: LogKind::JsonFile,
            max_size: Some(10240),
            max_files: 3,
            compress: true,
        };
        let text = serde_json::to_string(&json).unwrap();
        assert_eq!(serde_json::from_str::<LogSettings>(&text).unwrap(), json);
        assert_eq!(
            json.shim_target(Path::new("/c/x-json.log")),
            "jsonlog:///c/x-json.log?max-size=10240&max-file=3&compress=true"
        );
        let none = LogSettings {
            kind: LogKind::None,
            ..LogSettings::default()
        };
        assert_eq!(none.shim_target(Path::new("/c/x.log")), "");
    }
}
