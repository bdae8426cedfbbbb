//! `HostConfig.LogConfig`: the log driver and its options, checked as Docker checks
//! them at create. `none` keeps no log (the shim writes to /dev/null and `logs`
//! answers Docker's error); `json-file` and `local` keep the CRI-format log berth
//! writes, which `logs` reads. Their options are checked as Docker checks them and
//! then refused by name: berth does not rotate or compress logs yet, and an option it
//! would drop is never accepted.

use serde_json::Value;

use crate::docker_api::ApiError;

/// Where a container with the `none` driver logs.
pub const DISCARD: &str = "/dev/null";

/// The drivers berth knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDriver {
    JsonFile,
    Local,
    None,
}

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

/// The driver of a create's `HostConfig`, its options checked.
pub fn check(host_config: &Value) -> Result<LogDriver, ApiError> {
    let config = &host_config["LogConfig"];
    let name = config["Type"].as_str().unwrap_or("");
    let (driver, known) = match name {
        "" | "json-file" => (LogDriver::JsonFile, JSON_FILE_OPTS),
        "local" => (LogDriver::Local, LOCAL_OPTS),
        "none" => return Ok(LogDriver::None),
        other => {
            return Err(ApiError::BadRequest(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    };
    let name = if name.is_empty() { "json-file" } else { name };
    let empty = serde_json::Map::new();
    let opts = config["Config"].as_object().unwrap_or(&empty);
    for key in opts.keys() {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "unknown log opt '{key}' for {name} log driver"
            )));
        }
    }
    let opt = |k: &str| opts.get(k).and_then(Value::as_str);
    let max_size = match opt("max-size") {
        None => None,
        Some(v) => Some(size(v).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid value for log opt max-size: {v:?}"))
        })?),
    };
    if let Some(v) = opt("max-file") {
        let n: i64 = v.parse().map_err(|_| {
            ApiError::BadRequest(format!("invalid value for log opt max-file: {v:?}"))
        })?;
        if n < 1 {
            return Err(ApiError::BadRequest(
                "max-file cannot be less than 1".into(),
            ));
        }
        if n > 1 && max_size.is_none() && driver == LogDriver::JsonFile {
            return Err(ApiError::BadRequest(
                "max-file cannot be set when max-size is not set".into(),
            ));
        }
    }
    if let Some(v) = opt("compress") {
        if v.parse::<bool>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "invalid value for log opt compress: {v:?}"
            )));
        }
    }
    if let Some(key) = opts.keys().next() {
        return Err(ApiError::BadRequest(format!(
            "log opt '{key}' of the {name} log driver is not applied by berth yet (no log rotation or compression); remove it"
        )));
    }
    Ok(driver)
}

/// go-units' RAMInBytes: `10m`, `1g`, `512k`, `100` (bytes), binary multiples.
fn size(v: &str) -> Option<i64> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(digits);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        _ => return None,
    };
    let bytes = (n * mult) as i64;
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hc(t: &str, opts: Value) -> Value {
        json!({"LogConfig": {"Type": t, "Config": opts}})
    }

    #[test]
    fn drivers_and_options_are_checked_as_dockers() {
        assert_eq!(check(&json!({})).ok(), Some(LogDriver::JsonFile));
        assert_eq!(check(&hc("none", json!({}))).ok(), Some(LogDriver::None));
        assert_eq!(
            check(&hc("json-file", json!({}))).ok(),
            Some(LogDriver::JsonFile)
        );
        assert_eq!(check(&hc("local", json!({}))).ok(), Some(LogDriver::Local));
        let err = |v: Value| check(&v).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(hc("syslog", json!({}))).contains("no log driver named 'syslog'"));
        assert!(
            err(hc("json-file", json!({"max-bytes": "1"}))).contains("unknown log opt 'max-bytes'")
        );
        assert!(err(hc("local", json!({"tag": "x"}))).contains("unknown log opt 'tag' for local"));
        assert!(err(hc("json-file", json!({"max-size": "lots"}))).contains("max-size"));
        assert!(err(hc("json-file", json!({"max-file": "3"}))).contains("max-size is not set"));
        // Valid, and not applied: refused by name rather than dropped.
        assert!(
            err(hc("json-file", json!({"max-size": "10m", "max-file": "3"})))
                .contains("log opt 'max-file' of the json-file log driver is not applied")
        );
        assert_eq!(size("10m"), Some(10 << 20));
        assert_eq!(size("1.5k"), Some(1536));
    }
}
