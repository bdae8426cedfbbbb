//! Docker's log drivers as berth applies them: a driver's name and options (from a
//! create's `LogConfig` or config.toml's `log_driver`/`log_opts`) checked as Docker
//! checks them, into the engine's log settings.
//!
//! - `json-file`: Docker's on-disk format in `<id>-json.log`, rotated by `max-size`
//!   (go-units sizes: `10k`, `20m`, `1g`), keeping `max-file` files (default 1; more
//!   needs `max-size`), gzipping rotated files with `compress` (which needs both).
//! - `local`: Docker's own format for it is a protobuf stream; berth keeps the CRI
//!   format instead, rotated with `local`'s defaults (20m, 5 files, compressed).
//! - `none`: no log; `logs` answers Docker's 501.
//!
//! The json-file options Docker applies to its `attrs` (`labels`, `env`, `tag`, …) are
//! checked by name and refused: berth does not write `attrs`, and an option it would
//! drop is never accepted.

use std::collections::BTreeMap;

use berth_engine::logs::settings::{LogKind, LogSettings};

/// The driver Docker uses when neither the container nor the daemon names one.
pub const DEFAULT_DRIVER: &str = "json-file";

const JSON_FILE_OPTS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];
const LOCAL_OPTS: &[&str] = &["max-file", "max-size", "compress"];
/// What berth applies of them.
const APPLIED_OPTS: &[&str] = &["max-file", "max-size", "compress"];

/// What is wrong with a log configuration: the driver, or one of its options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    #[error("logger: no log driver named '{0}' is registered")]
    UnknownDriver(String),
    #[error("{message}")]
    Opt { key: String, message: String },
}

/// Go's strconv.ParseBool.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The settings of `driver` with `opts`, checked as Docker checks them.
pub fn settings(
    driver: &str,
    opts: &BTreeMap<String, String>,
) -> Result<LogSettings, LogConfigError> {
    let (kind, known) = match driver {
        "" | "json-file" => (LogKind::JsonFile, JSON_FILE_OPTS),
        "local" => (LogKind::Cri, LOCAL_OPTS),
        "none" => (LogKind::None, &[][..]),
        other => return Err(LogConfigError::UnknownDriver(other.to_string())),
    };
    let name = if driver.is_empty() {
        DEFAULT_DRIVER
    } else {
        driver
    };
    let opt_err = |key: &str, message: String| LogConfigError::Opt {
        key: key.to_string(),
        message,
    };
    for key in opts.keys() {
        if !known.contains(&key.as_str()) {
            return Err(opt_err(
                key,
                format!("unknown log opt '{key}' for {name} log driver"),
            ));
        }
    }
    let invalid =
        |key: &str, v: &str| opt_err(key, format!("invalid value for log opt {key}: {v:?}"));
    let local = driver == "local";
    let max_size = match opts.get("max-size") {
        None if local => Some(20 << 20),
        None => None,
        Some(v) => Some(size(v).ok_or_else(|| invalid("max-size", v))?),
    };
    let max_files = match opts.get("max-file") {
        None if local => 5,
        None => 1,
        Some(v) => {
            let n: i64 = v.trim().parse().map_err(|_| invalid("max-file", v))?;
            if n < 1 {
                return Err(opt_err("max-file", "max-file cannot be less than 1".into()));
            }
            u32::try_from(n).map_err(|_| invalid("max-file", v))?
        }
    };
    if max_files > 1 && max_size.is_none() {
        return Err(opt_err(
            "max-file",
            "max-file cannot be set when max-size is not set".into(),
        ));
    }
    let compress = match opts.get("compress") {
        None => local,
        Some(v) => parse_bool(v).ok_or_else(|| invalid("compress", v))?,
    };
    if compress && (max_files < 2 || max_size.is_none()) && !local {
        return Err(opt_err(
            "compress",
            "compress cannot be true when max-file is less than 2 or max-size is not set".into(),
        ));
    }
    if let Some(key) = opts.keys().find(|k| !APPLIED_OPTS.contains(&k.as_str())) {
        return Err(opt_err(
            key,
            format!("log opt '{key}' of the {name} log driver is not applied by berth (it writes no attrs); remove it"),
        ));
    }
    Ok(LogSettings {
        kind,
        max_size,
        max_files,
        // One file has nothing rotated to compress (Docker's local driver alike).
        compress: compress && max_files > 1,
    })
}

/// go-units' RAMInBytes: `10m`, `1g`, `512k`, `100` (bytes), binary multiples.
pub fn size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(digits);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return None,
    };
    let bytes = (n * mult) as u64;
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_go_units_ram_in_bytes() {
        assert_eq!(size("10m"), Some(10 << 20));
        assert_eq!(size("10M"), Some(10 << 20));
        assert_eq!(size("10mb"), Some(10 << 20));
        assert_eq!(size("10MiB"), Some(10 << 20));
        assert_eq!(size("1.5k"), Some(1536));
        assert_eq!(size("100"), Some(100));
        assert_eq!(size("2g"), Some(2 << 30));
        assert_eq!(size("0"), None);
        assert_eq!(size("-1"), None);
        assert_eq!(size("ten"), None);
        assert_eq!(size("10x"), None);
    }
}
