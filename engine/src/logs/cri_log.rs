//! Reading container logs written by the shim in the CRI format
//! (`<RFC3339Nano> <stdout|stderr> <P|F> <content>`), reassembling partial lines.

use std::io::BufRead;

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

/// Reads every entry, joining `P` parts with the `F` that completes them (per stream).
pub fn read_entries(reader: impl BufRead) -> Result<Vec<Entry>, LogReadError> {
    let mut entries = Vec::new();
    let mut pending: [Option<Entry>; 2] = [None, None];
    for (n, raw) in reader.split(b'\n').enumerate() {
        let raw = raw?;
        if raw.is_empty() {
            continue;
        }
        let malformed = |why| LogReadError::Malformed { line: n + 1, why };
        let mut fields = raw.splitn(4, |b| *b == b' ');
        let timestamp = std::str::from_utf8(fields.next().unwrap_or_default())
            .map_err(|_| malformed("timestamp is not text"))?;
        let nanos = parse_rfc3339_nanos(timestamp).ok_or_else(|| malformed("bad timestamp"))?;
        let stream = match fields.next() {
            Some(b"stdout") => Stream::Stdout,
            Some(b"stderr") => Stream::Stderr,
            _ => return Err(malformed("stream is neither stdout nor stderr")),
        };
        let tags = fields.next().ok_or_else(|| malformed("no tag"))?;
        let partial = match tags.split(|b| *b == b':').next() {
            Some(b"P") => true,
            Some(b"F") => false,
            _ => return Err(malformed("tag is neither P nor F")),
        };
        let content = fields.next().unwrap_or_default();
        let slot = &mut pending[stream as usize];
        let entry = slot.get_or_insert_with(|| Entry {
            timestamp: timestamp.to_string(),
            nanos,
            stream,
            line: Vec::new(),
        });
        entry.line.extend_from_slice(content);
        if !partial {
            entry.line.push(b'\n');
            entries.extend(slot.take());
        }
    }
    // A container that exited mid-line leaves a last partial line: it is output too.
    let mut rest: Vec<Entry> = pending.into_iter().flatten().collect();
    rest.sort_by_key(|e| e.nanos);
    entries.extend(rest);
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
}
