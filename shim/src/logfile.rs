//! Container logs written by the shim itself, in the CRI format or Docker's json-file
//! format, rotated by size as Docker's json-file driver rotates.
//!
//! A CRI record is `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n`; a
//! json-file record is `{"log":"<content>\n","stream":"stdout","time":"…"}\n`. A line
//! longer than the maximum record size is cut into partial records (`P`, or a `log`
//! without its newline) followed by a final one; a stream that ends without a newline
//! ends with a final record (CRI) or a partial one (json-file, as Docker leaves it).
//!
//! Rotation: before a write, a file holding `max-size` bytes or more is renamed to
//! `<path>.1` (the older ones shifted up to `<path>.<max-file - 1>`, the oldest
//! dropped) and a fresh file takes its place; with `max-file` 1 the file is replaced.
//! With `compress`, `<path>.1` is gzipped to `<path>.1.gz` by a short-lived thread
//! and removed once the copy is whole (readers try the plain name first), so every
//! rotated file ends compressed. The file can also be reopened at its path after a
//! rotation done by someone else (kubelet's, for CRI logs).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::logtarget::{rotated, LogFormat, LogTarget, Rotation};

/// Default maximum content bytes in one record (kubelet's and Docker's 16 KiB).
pub const DEFAULT_MAX_RECORD: usize = 16 * 1024;

const COMPRESS_STACK: usize = 128 * 1024;

/// Errors of the log writer.
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
    #[error("rotating log file {path}: {source}")]
    Rotate {
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
    target: LogTarget,
    out: Mutex<Out>,
}

#[derive(Debug)]
struct Out {
    file: File,
    /// Bytes in the file, for rotation.
    size: u64,
    /// The compression of the last rotated file, joined before the next rotation.
    compressing: Option<JoinHandle<()>>,
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

fn ignore_missing(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Shifts the rotated files of `path` up by one, dropping the oldest, and moves
/// `path` itself to `<path>.1` (or removes it when only one file is kept).
pub fn shift_files(path: &Path, rotation: &Rotation) -> std::io::Result<()> {
    let max = rotation.max_files;
    if max < 2 {
        return ignore_missing(std::fs::remove_file(path));
    }
    let gz = rotation.compress;
    ignore_missing(std::fs::remove_file(rotated(path, max - 1, gz)))?;
    for n in (2..max).rev() {
        ignore_missing(std::fs::rename(
            rotated(path, n - 1, gz),
            rotated(path, n, gz),
        ))?;
    }
    ignore_missing(std::fs::rename(path, rotated(path, 1, false)))
}

/// Gzips `plain` into `<plain>.gz`, then removes `plain`; a failed copy leaves
/// `plain` as it was.
pub fn compress_file(plain: &Path) -> std::io::Result<()> {
    let mut gz_name = plain.as_os_str().to_os_string();
    gz_name.push(".gz");
    let gz_path = PathBuf::from(gz_name);
    let copy = || -> std::io::Result<()> {
        let mut input = File::open(plain)?;
        let out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(&gz_path)?;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?.sync_all()
    };
    match copy() {
        Ok(()) => std::fs::remove_file(plain),
        Err(e) => {
            let _ = std::fs::remove_file(&gz_path);
            Err(e)
        }
    }
}

/// A time as Go's RFC3339Nano writes it (trailing zeros of the fraction dropped),
/// the form of Docker's json-file `time`.
fn go_rfc3339_nano(at: SystemTime) -> String {
    let full = humantime::format_rfc3339_nanos(at).to_string();
    let Some(body) = full.strip_suffix('Z') else {
        return full;
    };
    match body.split_once('.') {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => full,
    }
}

/// Appends `bytes` as a JSON string's content, escaped as Go's encoder escapes
/// (`<`, `>`, `&`, U+2028/2029 as `\u` escapes; invalid UTF-8 as U+FFFD).
fn json_escape(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// One record in `format`.
fn encode(
    format: LogFormat,
    at: SystemTime,
    stream: Stream,
    partial: bool,
    content: &[u8],
) -> Vec<u8> {
    let mut line = Vec::with_capacity(content.len() + 64);
    match format {
        LogFormat::Cri => {
            line.extend_from_slice(humantime::format_rfc3339_nanos(at).to_string().as_bytes());
            line.push(b' ');
            line.extend_from_slice(stream.name().as_bytes());
            line.extend_from_slice(if partial { b" P " } else { b" F " });
            line.extend_from_slice(content);
        }
        LogFormat::JsonFile => {
            line.extend_from_slice(b"{\"log\":\"");
            json_escape(content, &mut line);
            if !partial {
                line.extend_from_slice(b"\\n");
            }
            line.extend_from_slice(b"\",\"stream\":\"");
            line.extend_from_slice(stream.name().as_bytes());
            line.extend_from_slice(b"\",\"time\":\"");
            line.extend_from_slice(go_rfc3339_nano(at).as_bytes());
            line.extend_from_slice(b"\"}");
        }
    }
    line.push(b'\n');
    line
}

impl LogFile {
    /// Opens (creating or appending to) the CRI-format log file at `path`, never
    /// rotated by the shim.
    pub fn open(path: &Path) -> Result<Arc<LogFile>, LogError> {
        LogFile::open_target(LogTarget {
            format: LogFormat::Cri,
            path: path.to_path_buf(),
            rotation: Rotation::default(),
        })
    }

    /// Opens (creating or appending to) the log `target` describes.
    pub fn open_target(target: LogTarget) -> Result<Arc<LogFile>, LogError> {
        let file = open_append(&target.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Arc::new(LogFile {
            target,
            out: Mutex::new(Out {
                file,
                size,
                compressing: None,
            }),
        }))
    }

    /// The path records go to.
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// The log's format and rotation.
    pub fn target(&self) -> &LogTarget {
        &self.target
    }

    /// Reopens the file at its path: after a rotation moved the old file away, new
    /// records go to a fresh file at the same path.
    pub fn reopen(&self) -> Result<(), LogError> {
        let fresh = open_append(&self.target.path)?;
        let size = fresh.metadata().map(|m| m.len()).unwrap_or(0);
        let mut guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        guard.file = fresh;
        guard.size = size;
        Ok(())
    }

    /// Rotates the file now (the caller holds the lock).
    fn rotate(&self, out: &mut Out) -> Result<(), LogError> {
        let path = &self.target.path;
        let rotation = &self.target.rotation;
        if let Some(previous) = out.compressing.take() {
            let _ = previous.join();
        }
        let err = |source| LogError::Rotate {
            path: path.clone(),
            source,
        };
        shift_files(path, rotation).map_err(err)?;
        out.file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .mode(0o640)
            .open(path)
            .map_err(err)?;
        // A rename that failed halfway leaves the old file here: start it over.
        out.file.set_len(0).map_err(err)?;
        out.size = 0;
        if rotation.compress && rotation.max_files > 1 {
            let plain = rotated(path, 1, false);
            let spawned = std::thread::Builder::new()
                .name("log-compress".into())
                .stack_size(COMPRESS_STACK)
                .spawn(move || {
                    if let Err(e) = compress_file(&plain) {
                        tracing::warn!("compressing rotated log {}: {e}", plain.display());
                    }
                });
            match spawned {
                Ok(handle) => out.compressing = Some(handle),
                Err(e) => tracing::warn!("no thread to compress the rotated log: {e}"),
            }
        }
        Ok(())
    }

    fn record(
        &self,
        at: SystemTime,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) -> Result<(), LogError> {
        let line = encode(self.target.format, at, stream, partial, content);
        let mut guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(max) = self.target.rotation.max_size {
            if guard.size >= max {
                self.rotate(&mut guard)?;
            }
        }
        // One write per record: with O_APPEND the record lands whole.
        guard
            .file
            .write_all(&line)
            .map_err(|source| LogError::Write {
                path: self.target.path.clone(),
                source,
            })?;
        guard.size += line.len() as u64;
        Ok(())
    }

    /// Waits for a rotated file's compression still running (tests, shutdown).
    pub fn settle(&self) {
        let handle = self
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .compressing
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
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
            // Docker's json-file keeps such a line as it came, without a newline.
            let partial = log.target.format == LogFormat::JsonFile;
            log.record(at, self.stream, partial, &self.pending)?;
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

    fn json_target(path: &Path, rotation: Rotation) -> LogTarget {
        LogTarget {
            format: LogFormat::JsonFile,
            path: path.to_path_buf(),
            rotation,
        }
    }

    #[test]
    fn json_file_records_are_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let log = LogFile::open_target(json_target(&path, Rotation::default())).unwrap();
        let mut out = LineSplitter::new(Stream::Stdout, 4);
        let mut err = LineSplitter::new(Stream::Stderr, 100);
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_120);
        out.feed(&log, at, b"abcdef\n").unwrap();
        err.feed(&log, at, "<\"\\\t\u{1}\u{e9}>&\n".as_bytes())
            .unwrap();
        err.feed(&log, at, b"\xffend").unwrap();
        err.finish(&log, at).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                r#"{"log":"abcd","stream":"stdout","time":"2023-11-14T22:13:20.12Z"}"#,
                r#"{"log":"ef\n","stream":"stdout","time":"2023-11-14T22:13:20.12Z"}"#,
                "{\"log\":\"\\u003c\\\"\\\\\\t\\u0001\u{e9}\\u003e\\u0026\\n\",\"stream\":\"stderr\",\"time\":\"2023-11-14T22:13:20.12Z\"}",
                r#"{"log":"\ufffdend","stream":"stderr","time":"2023-11-14T22:13:20.12Z"}"#,
            ]
        );
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["log"].is_string() && v["stream"].is_string());
        }
        assert_eq!(
            go_rfc3339_nano(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
    }

    fn write_lines(log: &LogFile, from: usize, to: usize) {
        let mut s = LineSplitter::new(Stream::Stdout, DEFAULT_MAX_RECORD);
        for n in from..to {
            s.feed(log, SystemTime::now(), format!("line {n:04}\n").as_bytes())
                .unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn json_lines(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["log"].as_str().unwrap().trim_end().to_string()
            })
            .collect()
    }

    #[test]
    fn rotation_keeps_max_file_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: Some(400),
            max_files: 3,
            compress: false,
        };
        let log = LogFile::open_target(json_target(&path, rotation)).unwrap();
        write_lines(&log, 0, 100);
        assert_eq!(
            names(dir.path()),
            ["c-json.log", "c-json.log.1", "c-json.log.2"]
        );
        let mut all = Vec::new();
        for name in ["c-json.log.2", "c-json.log.1", "c-json.log"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            // A file passes max-size by at most one record, as Docker's do.
            assert!(text.len() < 400 + 80, "{name}: {}", text.len());
            all.extend(json_lines(&text));
        }
        let expected: Vec<String> = (100 - all.len()..100)
            .map(|n| format!("line {n:04}"))
            .collect();
        assert_eq!(all, expected, "the newest lines, in order, the oldest gone");
        assert!(all.len() < 100);
    }

    #[test]
    fn rotation_with_one_file_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: Some(300),
            max_files: 1,
            compress: false,
        };
        let log = LogFile::open_target(json_target(&path, rotation)).unwrap();
        write_lines(&log, 0, 50);
        assert_eq!(names(dir.path()), ["c-json.log"]);
        let lines = json_lines(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(lines.last().map(String::as_str), Some("line 0049"));
        assert!(lines.len() < 10);
    }

    #[test]
    fn compressed_rotation_gzips_every_rotated_file() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: Some(400),
            max_files: 3,
            compress: true,
        };
        let log = LogFile::open_target(json_target(&path, rotation)).unwrap();
        write_lines(&log, 0, 100);
        log.settle();
        assert_eq!(
            names(dir.path()),
            ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
        );
        let mut all = Vec::new();
        for name in ["c-json.log.2.gz", "c-json.log.1.gz"] {
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(dir.path().join(name)).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            all.extend(json_lines(&text));
        }
        all.extend(json_lines(&std::fs::read_to_string(&path).unwrap()));
        assert_eq!(all.last().map(String::as_str), Some("line 0099"));
        let first: usize = all[0][5..].parse().unwrap();
        let expected: Vec<String> = (first..100).map(|n| format!("line {n:04}")).collect();
        assert_eq!(all, expected);
    }
}
