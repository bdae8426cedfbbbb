//! Reading container logs written by the shim, in the CRI format
//! (`<RFC3339Nano> <stdout|stderr> <P|F> <content>`) or Docker's json-file format
//! (`{"log":…,"stream":…,"time":…}`), reassembling partial lines.

use std::io::BufRead;

pub use berth_shim::logtarget::LogFormat;

use super::timestamp::parse_rfc3339_nanos;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One whole line of output (ending in `\n` unless the container never ended it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the line's first part was written, as written (RFC 3339).
    pub timestamp: String,
    pub nanos: i128,
    pub stream: Stream,
    pub line: Vec<u8>,
}

/// Errors reading a log file.
#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    #[error("reading the container log: {0}")]
    Io(#[from] std::io::Error),
    #[error("container log line {line}: {why}")]
    Malformed { line: usize, why: &'static str },
}

/// One record of a log file: what the process wrote in one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339 with nanoseconds, as logs `-t` shows it.
    pub timestamp: String,
    pub nanos: i128,
    pub stream: Stream,
    /// The bytes, ending in `\n` unless the line goes on in the next record.
    pub content: Vec<u8>,
}

impl Record {
    /// The line goes on in a later record of the same stream.
    pub fn partial(&self) -> bool {
        self.content.last() != Some(&b'\n')
    }
}

/// Parses one line of a log in `format` (without its newline).
pub fn parse_record(format: LogFormat, raw: &[u8]) -> Result<Record, &'static str> {
    match format {
        LogFormat::Cri => parse_cri(raw),
        LogFormat::JsonFile => parse_json(raw),
    }
}

fn parse_cri(raw: &[u8]) -> Result<Record, &'static str> {
    let mut fields = raw.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(fields.next().unwrap_or_default())
        .map_err(|_| "timestamp is not text")?;
    let nanos = parse_rfc3339_nanos(timestamp).ok_or("bad timestamp")?;
    let stream = match fields.next() {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        _ => return Err("stream is neither stdout nor stderr"),
    };
    let tags = fields.next().ok_or("no tag")?;
    let partial = match tags.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err("tag is neither P nor F"),
    };
    let mut content = fields.next().unwrap_or_default().to_vec();
    if !partial {
        content.push(b'\n');
    }
    Ok(Record {
        timestamp: timestamp.to_string(),
        nanos,
        stream,
        content,
    })
}

#[derive(serde::Deserialize)]
struct JsonLine {
    log: String,
    stream: String,
    time: String,
}

fn parse_json(raw: &[u8]) -> Result<Record, &'static str> {
    let line: JsonLine = serde_json::from_slice(raw).map_err(|_| "not a json-file record")?;
    let nanos = parse_rfc3339_nanos(&line.time).ok_or("bad timestamp")?;
    let stream = match line.stream.as_str() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err("stream is neither stdout nor stderr"),
    };
    // Shown with all nine digits, as dockerd shows json-file times.
    let timestamp = u64::try_from(nanos)
        .map(|n| {
            humantime::format_rfc3339_nanos(
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(n),
            )
            .to_string()
        })
        .unwrap_or(line.time);
    Ok(Record {
        timestamp,
        nanos,
        stream,
        content: line.log.into_bytes(),
    })
}

/// Joins records into whole lines, per stream.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: [Option<Entry>; 2],
}

impl Assembler {
    /// Adds a record; returns the line it completes.
    pub fn push(&mut self, record: Record) -> Option<Entry> {
        let slot = &mut self.pending[record.stream as usize];
        let partial = record.partial();
        let entry = slot.get_or_insert_with(|| Entry {
            timestamp: record.timestamp,
            nanos: record.nanos,
            stream: record.stream,
            line: Vec::new(),
        });
        entry.line.extend_from_slice(&record.content);
        if partial {
            None
        } else {
            slot.take()
        }
    }

    /// The lines left unfinished (a container that exited mid-line), oldest first.
    pub fn finish(self) -> Vec<Entry> {
        let mut rest: Vec<Entry> = self.pending.into_iter().flatten().collect();
        rest.sort_by_key(|e| e.nanos);
        rest
    }
}

/// Reads every entry of a CRI-format log, joining `P` parts with the `F` that
/// completes them (per stream).
pub fn read_entries(reader: impl BufRead) -> Result<Vec<Entry>, LogReadError> {
    read_entries_in(LogFormat::Cri, reader)
}

/// Reads every entry of a log in `format`, joining partial records per stream.
pub fn read_entries_in(
    format: LogFormat,
    reader: impl BufRead,
) -> Result<Vec<Entry>, LogReadError> {
    let mut entries = Vec::new();
    let mut lines = Assembler::default();
    for (n, raw) in reader.split(b'\n').enumerate() {
        let raw = raw?;
        if raw.is_empty() {
            continue;
        }
        let record = parse_record(format, &raw)
            .map_err(|why| LogReadError::Malformed { line: n + 1, why })?;
        entries.extend(lines.push(record));
    }
    // A container that exited mid-line leaves a last partial line: it is output too.
    entries.extend(lines.finish());
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_are_joined_per_stream() -> Result<(), LogReadError> {
        let log = b"2026-11-22T10:00:00.000000001Z stdout P hel\n\
2026-11-22T10:00:00.000000002Z stderr F oops\n\
2026-11-22T10:00:00.000000003Z stdout F lo\n\
2026-11-22T10:00:00.000000004Z stdout F \n\
2026-11-22T10:00:00.000000005Z stdout P tail";
        let entries = read_entries(&log[..])?;
        let lines: Vec<(Stream, &[u8])> = entries
            .iter()
            .map(|e| (e.stream, e.line.as_slice()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (Stream::Stderr, &b"oops\n"[..]),
                (Stream::Stdout, &b"hello\n"[..]),
                (Stream::Stdout, &b"\n"[..]),
                (Stream::Stdout, &b"tail"[..]),
            ]
        );
        assert_eq!(entries[1].timestamp, "2026-11-22T10:00:00.000000001Z");
        Ok(())
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = read_entries(&b"2026-11-22T10:00:00Z stdout F ok\nnot a log line\n"[..])
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("container log line 2: bad timestamp"));
        let err = read_entries(&b"2026-11-22T10:00:00Z stdin F x\n"[..])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("neither stdout nor stderr")));
    }

    #[test]
    fn json_file_lines_are_read_as_docker_wrote_them() -> Result<(), LogReadError> {
        let log = br#"{"log":"hel","stream":"stdout","time":"2026-11-22T10:00:00.1Z"}
{"log":"oops\n","stream":"stderr","time":"2026-11-22T10:00:00.2Z"}
{"log":"lo \u003cb\u003e\n","stream":"stdout","time":"2026-11-22T10:00:00.3Z"}
{"log":"tail","stream":"stdout","time":"2026-11-22T10:00:01Z"}
"#;
        let entries = read_entries_in(LogFormat::JsonFile, &log[..])?;
        let lines: Vec<(Stream, &[u8])> = entries
            .iter()
            .map(|e| (e.stream, e.line.as_slice()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (Stream::Stderr, &b"oops\n"[..]),
                (Stream::Stdout, &b"hello <b>\n"[..]),
                (Stream::Stdout, &b"tail"[..]),
            ]
        );
        assert_eq!(entries[1].timestamp, "2026-11-22T10:00:00.100000000Z");
        assert_eq!(entries[2].nanos % 1_000_000_000, 0);
        let err = read_entries_in(
            LogFormat::JsonFile,
            &b"2026-11-22T10:00:00Z stdout F x\n"[..],
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("container log line 1: not a json-file record")
        );
        Ok(())
    }
}
