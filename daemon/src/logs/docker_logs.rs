//! `GET /containers/{id}/logs`: CRI log entries filtered (streams, since, until,
//! tail) and framed as Docker sends them: multiplexed with 8-byte headers, or raw for
//! a container with a TTY.

use berth_engine::logs::cri_log::{Entry, Stream};

/// The query of a logs request.
#[derive(Debug, Clone, Default)]
pub struct LogsQuery {
    pub stdout: bool,
    pub stderr: bool,
    /// Only entries at or after this many nanoseconds since the epoch.
    pub since_nanos: Option<i128>,
    /// Only entries before this many nanoseconds since the epoch.
    pub until_nanos: Option<i128>,
    /// The last N entries; all when `None`.
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// Selects the entries a query asks for, in order.
pub fn select<'a>(entries: &'a [Entry], query: &LogsQuery) -> Vec<&'a Entry> {
    let selected: Vec<&Entry> = entries
        .iter()
        .filter(|e| match e.stream {
            Stream::Stdout => query.stdout,
            Stream::Stderr => query.stderr,
        })
        .filter(|e| query.since_nanos.is_none_or(|s| e.nanos >= s))
        .filter(|e| query.until_nanos.is_none_or(|u| e.nanos < u))
        .collect();
    match query.tail {
        Some(n) if n < selected.len() => selected[selected.len() - n..].to_vec(),
        _ => selected,
    }
}

/// Frames one entry: `[stream, 0, 0, 0, len as u32 big-endian] payload`, or just the
/// payload for a TTY container (whose output is a single stream).
pub fn frame(entry: &Entry, timestamps: bool, tty: bool, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(entry.line.len() + 32);
    if timestamps {
        payload.extend_from_slice(entry.timestamp.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&entry.line);
    if !tty {
        let kind = match entry.stream {
            Stream::Stdout => 1u8,
            Stream::Stderr => 2u8,
        };
        out.extend_from_slice(&[kind, 0, 0, 0]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(&payload);
}

/// `since`/`until` as Docker clients send them: Unix seconds with an optional
/// fraction (`1700000000.123456789`).
pub fn parse_unix_time(value: &str) -> Option<i128> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i128 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32)
    };
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(nanos: i128, stream: Stream, line: &str) -> Entry {
        Entry {
            timestamp: format!("T{nanos}"),
            nanos,
            stream,
            line: line.as_bytes().to_vec(),
        }
    }

    #[test]
    fn filters_tail_and_framing() {
        let entries = vec![
            entry(1, Stream::Stdout, "a\n"),
            entry(2, Stream::Stderr, "b\n"),
            entry(3, Stream::Stdout, "c\n"),
            entry(4, Stream::Stdout, "d\n"),
        ];
        let q = LogsQuery {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        assert_eq!(select(&entries, &q).len(), 4);
        let q = LogsQuery {
            stdout: true,
            tail: Some(2),
            ..Default::default()
        };
        let picked: Vec<&[u8]> = select(&entries, &q)
            .iter()
            .map(|e| e.line.as_slice())
            .collect();
        assert_eq!(picked, vec![&b"c\n"[..], &b"d\n"[..]]);
        let q = LogsQuery {
            stdout: true,
            stderr: true,
            since_nanos: Some(2),
            until_nanos: Some(4),
            ..Default::default()
        };
        assert_eq!(select(&entries, &q).len(), 2);

        let mut out = Vec::new();
        frame(&entries[1], false, false, &mut out);
        assert_eq!(out, [&[2u8, 0, 0, 0, 0, 0, 0, 2][..], b"b\n"].concat());
        out.clear();
        frame(&entries[0], true, true, &mut out);
        assert_eq!(out, b"T1 a\n");
    }

    #[test]
    fn unix_times() {
        assert_eq!(
            parse_unix_time("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_unix_time("1.5"), Some(1_500_000_000));
        assert_eq!(parse_unix_time("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_unix_time("x"), None);
        assert_eq!(parse_unix_time("1.0000000001"), None);
    }
}
