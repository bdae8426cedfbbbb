//! `HostConfig.LogConfig`: the log driver and its options, merged with the daemon's
//! default (`log_driver`/`log_opts` in config.toml, daemon.json's `log-driver` and
//! `log-opts`) as dockerd merges them and checked ([`crate::logs::drivers`]) into the
//! engine's log settings.

use std::collections::BTreeMap;

use berth_engine::logs::settings::LogSettings;
use serde_json::Value;

use crate::docker_api::ApiError;
use crate::logs::drivers::{settings, DEFAULT_DRIVER};

/// The daemon's default log configuration (config.toml's `log_driver`, `log_opts`).
#[derive(Debug, Clone, Default)]
pub struct Defaults<'a> {
    pub driver: &'a str,
    pub opts: Option<&'a BTreeMap<String, String>>,
}

/// The log settings of a create's `HostConfig`: its `LogConfig` over the daemon's
/// default as dockerd merges them (the default driver when none is named; the
/// default options under the container's own when the drivers are the same), and
/// the merged `LogConfig` dockerd keeps in the container's `HostConfig` (what
/// inspect shows).
pub fn merged(
    host_config: &Value,
    defaults: &Defaults<'_>,
) -> Result<(LogSettings, Value), ApiError> {
    let config = &host_config["LogConfig"];
    let default_driver = if defaults.driver.is_empty() {
        DEFAULT_DRIVER
    } else {
        defaults.driver
    };
    let driver = match config["Type"].as_str().unwrap_or("") {
        "" => default_driver,
        named => named,
    };
    let mut opts = BTreeMap::new();
    if let Some(given) = config["Config"].as_object() {
        for (k, v) in given {
            let v = v.as_str().ok_or_else(|| {
                ApiError::BadRequest(format!("invalid value for log opt {k}: {v}"))
            })?;
            opts.insert(k.clone(), v.to_string());
        }
    }
    if driver == default_driver {
        for (k, v) in defaults.opts.into_iter().flatten() {
            opts.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let checked = settings(driver, &opts).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((checked, serde_json::json!({"Type": driver, "Config": opts})))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use berth_engine::logs::settings::LogKind;

    use super::*;

    fn check(hc: &Value, d: &Defaults<'_>) -> Result<LogSettings, ApiError> {
        merged(hc, d).map(|(settings, _)| settings)
    }

    fn hc(t: &str, opts: Value) -> Value {
        json!({"LogConfig": {"Type": t, "Config": opts}})
    }

    fn none() -> Defaults<'static> {
        Defaults::default()
    }

    fn ok(v: Value) -> Option<LogSettings> {
        check(&v, &none()).ok()
    }

    fn err(v: Value) -> String {
        check(&v, &none())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn json_file(max_size: Option<u64>, max_files: u32, compress: bool) -> LogSettings {
        LogSettings {
            kind: LogKind::JsonFile,
            max_size,
            max_files,
            compress,
        }
    }

    #[test]
    fn drivers_and_options_are_checked_as_dockers() {
        assert_eq!(ok(json!({})), Some(json_file(None, 1, false)));
        assert_eq!(
            ok(hc("none", json!({}))).map(|s| s.kind),
            Some(LogKind::None)
        );
        assert_eq!(
            ok(hc("json-file", json!({}))),
            Some(json_file(None, 1, false))
        );
        assert_eq!(
            ok(hc("local", json!({}))),
            Some(LogSettings {
                kind: LogKind::Cri,
                max_size: Some(20 << 20),
                max_files: 5,
                compress: true,
            })
        );
        assert_eq!(
            ok(hc(
                "json-file",
                json!({"max-size": "10k", "max-file": "3", "compress": "true"})
            )),
            Some(json_file(Some(10240), 3, true))
        );
        assert_eq!(
            ok(hc("json-file", json!({"max-size": "1m"}))),
            Some(json_file(Some(1 << 20), 1, false))
        );
        assert!(err(hc("syslog", json!({}))).contains("no log driver named 'syslog'"));
        assert!(
            err(hc("json-file", json!({"max-bytes": "1"}))).contains("unknown log opt 'max-bytes'")
        );
        assert!(err(hc("local", json!({"tag": "x"}))).contains("unknown log opt 'tag' for local"));
        assert!(err(hc("none", json!({"max-size": "1m"}))).contains("unknown log opt 'max-size'"));
        assert!(err(hc("json-file", json!({"max-size": "lots"}))).contains("max-size"));
        assert!(err(hc("json-file", json!({"max-file": "3"}))).contains("max-size is not set"));
        assert!(
            err(hc("json-file", json!({"max-size": "1k", "max-file": "0"})))
                .contains("max-file cannot be less than 1")
        );
        assert!(err(hc(
            "json-file",
            json!({"max-size": "1k", "compress": "true"})
        ))
        .contains("compress cannot be true"));
        assert!(err(hc(
            "json-file",
            json!({"max-size": "1k", "compress": "yes"})
        ))
        .contains("invalid value for log opt compress"));
        // Valid, and not applied: refused by name rather than dropped.
        assert!(err(hc("json-file", json!({"tag": "{{.Name}}"})))
            .contains("log opt 'tag' of the json-file log driver is not applied"));
    }

    #[test]
    fn the_daemon_default_applies_as_dockerd_merges_it() {
        let opts: BTreeMap<String, String> = [("max-size", "1m"), ("max-file", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let d = Defaults {
            driver: "json-file",
            opts: Some(&opts),
        };
        // No LogConfig: the default driver with its options.
        assert_eq!(
            check(&json!({}), &d).ok(),
            Some(json_file(Some(1 << 20), 2, false))
        );
        // The same driver: its own options over the default ones.
        assert_eq!(
            check(&hc("json-file", json!({"max-size": "2k"})), &d).ok(),
            Some(json_file(Some(2048), 2, false))
        );
        let (_, kept) = merged(&json!({}), &d).unwrap();
        assert_eq!(
            kept,
            json!({"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}})
        );
        // Another driver: the default options do not apply.
        assert_eq!(
            check(&hc("none", json!({})), &d).ok().map(|s| s.kind),
            Some(LogKind::None)
        );
        let d = Defaults {
            driver: "none",
            opts: None,
        };
        assert_eq!(
            check(&json!({}), &d).ok().map(|s| s.kind),
            Some(LogKind::None)
        );
    }
}
