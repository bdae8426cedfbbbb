//! Container logs in the CRI log format, written by the shim itself.
//!
//! Each record is `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n`. A line
//! longer than the maximum record size is cut into `P` (partial) records followed by a
//! final `F` record; a stream that ends without a newline ends with an `F` record too.
//! The file can be reopened at its path (after a rotation renamed it away).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Default maximum content bytes in one record (kubelet's default is 16 KiB too).
pub const DEFAULT_MAX_RECORD: usize = 16 * 1024;

/// Errors of the CRI log writer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing log file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file shared by a container's stdout and stderr.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl LogFile {
    /// Opens (creating or appending to) the log file at `path`.
    pub fn open(path: &Path) -> Result<Arc<LogFile>, LogError> {
        Ok(Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        }))
    }

    /// The path records go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file at its path: after a rotation moved the old file away, new
    /// records go to a fresh file at the same path.
    pub fn reopen(&self) -> Result<(), LogError> {
        let fresh = open_append(&self.path)?;
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        *guard = fresh;
        Ok(())
    }

    fn record(
        &self,
        at: SystemTime,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) -> Result<(), LogError> {
        let mut line = Vec::with_capacity(content.len() + 48);
        line.extend_from_slice(humantime::format_rfc3339_nanos(at).to_string().as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.name().as_bytes());
        line.extend_from_slice(if partial { b" P " } else { b" F " });
        line.extend_from_slice(content);
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write per record: with O_APPEND the record lands whole.
        guard.write_all(&line).map_err(|source| LogError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Cuts one stream's bytes into CRI records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    max: usize,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream` with at most `max` content bytes per record (min 1).
    pub fn new(stream: Stream, max: usize) -> LineSplitter {
        LineSplitter {
            stream,
            max: max.max(1),
            pending: Vec::new(),
        }
    }

    /// Feeds bytes read at `at`; writes every complete line and every full-size piece.
    pub fn feed(&mut self, log: &LogFile, at: SystemTime, mut data: &[u8]) -> Result<(), LogError> {
        while !data.is_empty() {
            let room = self.max - self.pending.len();
            let window = &data[..data.len().min(room + 1)];
            match window.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= room => {
                    self.pending.extend_from_slice(&data[..nl]);
                    log.record(at, self.stream, false, &self.pending)?;
                    self.pending.clear();
                    data = &data[nl + 1..];
                }
                _ => {
                    let take = room.min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending.len() == self.max {
                        log.record(at, self.stream, true, &self.pending)?;
                        self.pending.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: a pending unterminated line is written as a final record.
    pub fn finish(&mut self, log: &LogFile, at: SystemTime) -> Result<(), LogError> {
        if !self.pending.is_empty() {
            log.record(at, self.stream, false, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Copies `reader` into `log` as `stream` records until end of file.
pub fn copy_stream(
    mut reader: impl std::io::Read,
    log: &LogFile,
    stream: Stream,
    max: usize,
) -> Result<(), LogError> {
    let mut splitter = LineSplitter::new(stream, max);
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => splitter.feed(log, SystemTime::now(), &buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    splitter.finish(log, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap().to_string();
                humantime::parse_rfc3339(&ts).expect("timestamp is RFC 3339");
                assert!(
                    ts.ends_with('Z') && ts.contains('.'),
                    "nanoseconds, UTC: {ts}"
                );
                (
                    it.next().unwrap().to_string(),
                    it.next().unwrap().to_string(),
                    it.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn t(s: &str, tag: &str, c: &str) -> (String, String, String) {
        (s.into(), tag.into(), c.into())
    }

    #[test]
    fn full_lines_and_chunks_across_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = LogFile::open(&path).unwrap();
        let mut out = LineSplitter::new(Stream::Stdout, 100);
        let mut err = LineSplitter::new(Stream::Stderr, 100);
        let now = SystemTime::now();
        out.feed(&log, now, b"hello\nwor").unwrap();
        err.feed(&log, now, b"oops\n").unwrap();
        out.feed(&log, now, b"ld\n\nlast").unwrap();
        out.finish(&log, now).unwrap();
        err.finish(&log, now).unwrap();
        assert_eq!(
            lines(&path),
            vec![
                t("stdout", "F", "hello"),
                t("stderr", "F", "oops"),
                t("stdout", "F", "world"),
                t("stdout", "F", ""),
                t("stdout", "F", "last"),
            ]
        );
    }

    #[test]
    fn long_lines_split_into_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = LogFile::open(&path).unwrap();
        let mut s = LineSplitter::new(Stream::Stdout, 4);
        let now = SystemTime::now();
        // 10 bytes + newline: two full P pieces then an F with the rest.
        s.feed(&log, now, b"abcdefghij\n").unwrap();
        // exactly max bytes then newline: one F, no empty P.
        s.feed(&log, now, b"wxyz\n").unwrap();
        // split across feeds, max reached exactly before the newline arrives.
        s.feed(&log, now, b"12").unwrap();
        s.feed(&log, now, b"34").unwrap();
        s.feed(&log, now, b"5\n").unwrap();
        assert_eq!(
            lines(&path),
            vec![
                t("stdout", "P", "abcd"),
                t("stdout", "P", "efgh"),
                t("stdout", "F", "ij"),
                t("stdout", "F", "wxyz"),
                t("stdout", "P", "1234"),
                t("stdout", "F", "5"),
            ]
        );
    }

    #[test]
    fn reopen_after_rotation_writes_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let rotated = dir.path().join("c.log.1");
        let log = LogFile::open(&path).unwrap();
        let mut s = LineSplitter::new(Stream::Stdout, DEFAULT_MAX_RECORD);
        s.feed(&log, SystemTime::now(), b"before\n").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        s.feed(&log, SystemTime::now(), b"still old\n").unwrap();
        log.reopen().unwrap();
        s.feed(&log, SystemTime::now(), b"after\n").unwrap();
        assert_eq!(
            lines(&rotated),
            vec![t("stdout", "F", "before"), t("stdout", "F", "still old")]
        );
        assert_eq!(lines(&path), vec![t("stdout", "F", "after")]);
    }

    #[test]
    fn copy_stream_reads_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = LogFile::open(&path).unwrap();
        copy_stream(&b"a\nb"[..], &log, Stream::Stderr, 1024).unwrap();
        assert_eq!(
            lines(&path),
            vec![t("stderr", "F", "a"), t("stderr", "F", "b")]
        );
    }
}
