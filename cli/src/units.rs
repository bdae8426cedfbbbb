//! How docker prints durations, sizes and strings in its tables: the behaviour of
//! `go-units` (`HumanDuration`, `HumanSizeWithPrecision`), Go's `strconv.Quote` and
//! docker's `Ellipsis`, so `berth`'s columns read the same as docker's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// go-units' `HumanDuration`: `Less than a second`, `About a minute`, `3 hours`, …
/// Hours are rounded to the nearest, the other units truncated, as go-units does.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// `5 minutes ago` for a Unix time, as docker's `CREATED` columns print it.
pub fn ago(created_unix: i64, now: SystemTime) -> String {
    let created = UNIX_EPOCH + Duration::from_secs(created_unix.max(0) as u64);
    format!(
        "{} ago",
        human_duration(now.duration_since(created).unwrap_or_default())
    )
}

/// go-units' `HumanSizeWithPrecision`: decimal units and Go's `%.<precision>g`
/// (`1.23MB`, `999B`, and even Go's `1e+03kB` for 999 999 bytes).
pub fn human_size(size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i + 1 < UNITS.len() {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g(size, precision), UNITS[i])
}

/// go-units' `BytesSize`: binary units and `%.4g` (`1.5MiB`, `1.944GiB`).
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1024.0 && i + 1 < UNITS.len() {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g(size, 4), UNITS[i])
}

/// Go's `%.<precision>g` for a finite, non-negative number.
fn format_g(v: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if v == 0.0 {
        return "0".into();
    }
    // Round to `precision` significant digits first; its exponent picks the style.
    let sci = format!("{:.*e}", precision - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Go's `strconv.Quote`: double quotes, with `"`, `\` and non-printable characters
/// escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    match max {
        0 => String::new(),
        1 => s.chars().take(1).collect(),
        _ => s.chars().take(max - 1).chain(['…']).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go_units() {
        let d = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(900)),
            "Less than a second"
        );
        assert_eq!(human_duration(d(1)), "1 second");
        assert_eq!(human_duration(d(59)), "59 seconds");
        assert_eq!(human_duration(d(119)), "About a minute");
        assert_eq!(human_duration(d(59 * 60)), "59 minutes");
        assert_eq!(human_duration(d(89 * 60)), "About an hour");
        // Hours round to the nearest: 90 minutes are 2 hours.
        assert_eq!(human_duration(d(90 * 60)), "2 hours");
        assert_eq!(human_duration(d(47 * 3600)), "47 hours");
        assert_eq!(human_duration(d(3 * 86_400)), "3 days");
        assert_eq!(human_duration(d(20 * 86_400)), "2 weeks");
        assert_eq!(human_duration(d(90 * 86_400)), "3 months");
        assert_eq!(human_duration(d(800 * 86_400)), "2 years");
        let now = UNIX_EPOCH + d(1_700_000_100);
        assert_eq!(ago(1_700_000_000, now), "About a minute ago");
    }

    #[test]
    fn sizes_read_like_go_percent_g() {
        assert_eq!(human_size(0.0, 3), "0B");
        assert_eq!(human_size(999.0, 3), "999B");
        assert_eq!(human_size(1_234_567.0, 3), "1.23MB");
        assert_eq!(human_size(4_400_000.0, 3), "4.4MB");
        assert_eq!(human_size(123_456_789.0, 3), "123MB");
        assert_eq!(human_size(999_999.0, 3), "1e+03kB");
        assert_eq!(human_size(1_000_000.0, 3), "1MB");
        assert_eq!(human_size(1_234_567.0, 4), "1.235MB");
    }

    #[test]
    fn quotes_and_ellipses_read_like_go() {
        assert_eq!(go_quote("sh -c 'x'"), r#""sh -c 'x'""#);
        assert_eq!(go_quote("a\"b\\c\td\u{1}é…"), "\"a\\\"b\\\\c\\td\\x01é…\"");
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("sh -c 'sleep 1000; echo done'", 20),
            "sh -c 'sleep 1000; …"
        );
        assert_eq!(ellipsis("abc", 1), "a");
    }
}
