//! Durable exit records: a container's exit code and time, written next to it.
//!
//! The record is written to a temporary file, fsynced, renamed over `exit.json` and the
//! directory fsynced, so a reader sees either no record or a whole one, even after a
//! crash; a restarted daemon or a new shim learns how the container ended.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The record's file name inside the container's directory (its bundle).
pub const FILE_NAME: &str = "berth-exit.json";

/// Errors reading or writing an exit record.
#[derive(Debug, thiserror::Error)]
pub enum ExitRecordError {
    #[error("writing exit record {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading exit record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exit record {path} is malformed: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// How one process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Container id.
    pub id: String,
    /// Host pid of the process.
    pub pid: u32,
    /// Exit code, or 128 + signal number.
    pub exit_status: u32,
    /// Seconds since the epoch of the exit.
    pub exited_at_secs: i64,
    /// Nanoseconds part of the exit time.
    pub exited_at_nanos: u32,
}

impl ExitRecord {
    /// A record of `pid` of container `id` exiting with `exit_status` at `at`.
    pub fn new(id: &str, pid: u32, exit_status: u32, at: SystemTime) -> ExitRecord {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        ExitRecord {
            id: id.to_string(),
            pid,
            exit_status,
            exited_at_secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            exited_at_nanos: since.subsec_nanos(),
        }
    }

    /// The exit time.
    pub fn exited_at(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::new(
                u64::try_from(self.exited_at_secs).unwrap_or(0),
                self.exited_at_nanos,
            )
    }

    /// Writes the record durably into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ExitRecordError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let err = |source| ExitRecordError::Write {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&body).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(err)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        Ok(())
    }

    /// Reads the record in `dir`, `None` when the process has no record (yet).
    pub fn read(dir: &Path) -> Result<Option<ExitRecord>, ExitRecordError> {
        let path = dir.join(FILE_NAME);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ExitRecordError::Read { path, source }),
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|source| ExitRecordError::Malformed { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ExitRecord::read(dir.path()).unwrap(), None);
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let rec = ExitRecord::new("c1", 42, 3, at);
        rec.write(dir.path()).unwrap();
        let back = ExitRecord::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.exited_at(), at);
        let second = ExitRecord::new("c1", 43, 137, at);
        second.write(dir.path()).unwrap();
        assert_eq!(ExitRecord::read(dir.path()).unwrap().unwrap(), second);
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn malformed_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{half").unwrap();
        let err = ExitRecord::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE_NAME), "{err}");
    }

    #[test]
    fn unwritable_dir_is_an_error() {
        let err = ExitRecord::new("c", 1, 0, SystemTime::now())
            .write(Path::new("/nonexistent/berth"))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/berth"), "{err}");
    }
}
