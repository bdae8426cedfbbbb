//! Health checks: a container's check command run as an exec in the container, by a
//! probe made once per run (`probe`: the shim connection and the exec's process kept,
//! output in one file instead of FIFOs per check), its results in the record (`state.health`, the last five
//! kept), `health_status` events when the status changes. One monitor task per running
//! container; reconcile starts them again after a berthd restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::probe::{Probe, ProbeFailure};
use crate::record::{ContainerRecord, Status};
use crate::store::Kind;
use crate::{get, put, Engine, EngineError};

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept, and bytes of output kept per result (Docker's).
const KEEP: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// A container's check, as Docker's `Healthcheck` (durations in nanoseconds; zero:
/// the image's, else the default). `test`: `["CMD", args…]`, `["CMD-SHELL", cmd]`,
/// `["NONE"]` (no check), or empty (the image's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    #[serde(deserialize_with = "null_as_default")]
    pub test: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub interval: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub timeout: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub start_period: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub start_interval: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub retries: i64,
}

/// Clients send `null` for what they leave unset (the Python SDK does).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl HealthConfig {
    /// Refuses what Docker refuses, in its words.
    pub fn validate(&self) -> Result<(), EngineError> {
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(EngineError::Invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if self.retries < 0 {
            return Err(EngineError::Invalid(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
        match self.test.first().map(String::as_str) {
            None | Some("NONE") | Some("CMD") | Some("CMD-SHELL") => Ok(()),
            Some(other) => Err(EngineError::Invalid(format!(
                "unknown Healthcheck test type {other:?}: expected CMD, CMD-SHELL or NONE"
            ))),
        }
    }

    /// The container's settings over the image's (Docker's merge: the container's
    /// test and each non-zero duration win).
    pub fn over(self, image: Option<HealthConfig>) -> HealthConfig {
        let Some(image) = image else { return self };
        let pick = |mine: i64, theirs: i64| if mine != 0 { mine } else { theirs };
        HealthConfig {
            test: if self.test.is_empty() {
                image.test
            } else {
                self.test
            },
            interval: pick(self.interval, image.interval),
            timeout: pick(self.timeout, image.timeout),
            start_period: pick(self.start_period, image.start_period),
            start_interval: pick(self.start_interval, image.start_interval),
            retries: pick(self.retries, image.retries),
        }
    }

    /// The command to run, if the check is on.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
            Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), args.join(" ")])
            }
            _ => None,
        }
    }

    fn duration(ns: i64, default: Duration) -> Duration {
        if ns > 0 {
            Duration::from_nanos(ns as u64)
        } else {
            default
        }
    }

    fn retries(&self) -> u32 {
        if self.retries > 0 {
            self.retries as u32
        } else {
            DEFAULT_RETRIES as u32
        }
    }
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// One check's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

impl Health {
    /// `result` applied: a success makes healthy; a failure counts unless the start
    /// period still runs (and nothing succeeded yet), and `retries` failures in a row
    /// make unhealthy.
    fn record(&mut self, result: HealthResult, in_start_period: bool, retries: u32) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !(in_start_period && self.status == "starting") {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(result);
        if self.log.len() > KEEP {
            let extra = self.log.len() - KEEP;
            self.log.drain(..extra);
        }
    }
}

/// The check a record runs, if any.
fn check_of(record: &ContainerRecord) -> Option<(HealthConfig, Vec<String>)> {
    let config = record.health.clone()?;
    let command = config.command()?;
    Some((config, command))
}

/// Sets `starting` in a record that is about to run (its start stores it).
pub(crate) fn reset(record: &mut ContainerRecord) {
    record.state.health = check_of(record).map(|_| Health {
        status: "starting".into(),
        ..Default::default()
    });
}

/// Starts the monitor of `id`'s run that started at `started_at`, if it has a check.
pub fn spawn(engine: Arc<Engine>, record: &ContainerRecord) {
    if check_of(record).is_none() {
        return;
    }
    let (id, started_at) = (record.id.clone(), record.state.started_at.clone());
    tokio::spawn(async move {
        if let Err(e) = monitor(&engine, &id, &started_at).await {
            tracing::debug!(id = %id, "health monitor ended: {e}");
        }
    });
}

/// The record while the run that started at `started_at` goes on.
fn same_run(engine: &Engine, id: &str, started_at: &str) -> Option<ContainerRecord> {
    let r = get(engine, id).ok()?;
    (r.state.status.has_task() && r.state.started_at == started_at).then_some(r)
}

async fn monitor(engine: &Arc<Engine>, id: &str, started_at: &str) -> Result<(), EngineError> {
    let result = watch_run(engine, id, started_at).await;
    engine.set_health_now(id, started_at, None);
    result
}

/// The container's status while the run that started at `started_at` goes on: two
/// fields of its record, not the whole record decoded (this is read before every check).
fn run_status(engine: &Engine, id: &str, started_at: &str) -> Option<Status> {
    let [status, started] = engine
        .store
        .get_fields(
            Kind::Container,
            id,
            ["$.state.status", "$.state.started_at"],
        )
        .ok()??;
    let status: Status = serde_json::from_value(serde_json::Value::String(status?)).ok()?;
    (status.has_task() && started.as_deref() == Some(started_at)).then_some(status)
}

async fn watch_run(engine: &Arc<Engine>, id: &str, started_at: &str) -> Result<(), EngineError> {
    let started = humantime::parse_rfc3339_weak(started_at).unwrap_or_else(|_| SystemTime::now());
    let Some(record) = same_run(engine, id, started_at) else {
        return Ok(());
    };
    // A run's check does not change while it runs.
    let Some((config, command)) = check_of(&record) else {
        return Ok(());
    };
    let start_period = Duration::from_nanos(config.start_period.max(0) as u64);
    let in_start = |now: SystemTime| now.duration_since(started).unwrap_or_default() < start_period;
    let interval = HealthConfig::duration(config.interval, DEFAULT_INTERVAL);
    let start_interval = HealthConfig::duration(config.start_interval, DEFAULT_START_INTERVAL);
    let timeout = HealthConfig::duration(config.timeout, DEFAULT_TIMEOUT);
    // Only this monitor changes the run's health: it keeps it, and the record is
    // written when the status changes.
    let mut health = record.state.health.clone().unwrap_or_else(|| Health {
        status: "starting".into(),
        ..Default::default()
    });
    // The record as of the run's start (its name, image and labels name the exec
    // events), read again when the status changes.
    let mut record = Arc::new(record);
    let mut probe: Option<Probe> = None;
    // The run's status as last read, and the store's generation then: read again
    // only after the store changed (a query per check was a fifth of berthd's cost
    // of a check).
    let mut known: Option<(u64, Status)> = None;
    loop {
        let wait = if health.status == "starting" && in_start(SystemTime::now()) {
            start_interval
        } else {
            interval
        };
        tokio::time::sleep(wait).await;
        let generation = engine.store.generation();
        let status = match known {
            Some((g, status)) if g == generation => status,
            _ => {
                let Some(status) = run_status(engine, id, started_at) else {
                    return Ok(());
                };
                known = Some((generation, status));
                status
            }
        };
        // A paused container is not probed (Docker's rule).
        if status == Status::Paused {
            continue;
        }
        let result = check(engine, &mut probe, &record, &command, timeout).await;
        let before = health.status.clone();
        health.record(result, in_start(SystemTime::now()), config.retries());
        // Every result is seen at once (reads overlay it); the record is written when
        // the status changes, so a restarted berthd goes on from the last status.
        engine.set_health_now(id, started_at, Some(health.clone()));
        if health.status != before {
            let _guard = engine.lock(id).await;
            let Some(mut fresh) = same_run(engine, id, started_at) else {
                return Ok(());
            };
            fresh.state.health = Some(health.clone());
            put(engine, &fresh)?;
            let action = format!("health_status: {}", health.status);
            engine
                .events_log
                .container(&fresh, &action, std::iter::empty());
            record = Arc::new(fresh);
        }
    }
}

/// Runs the check once (making the run's probe first, if need be): its exit code and
/// output (cut at 4 KiB); a check running past `timeout` is killed and fails.
async fn check(
    engine: &Arc<Engine>,
    probe: &mut Option<Probe>,
    record: &Arc<ContainerRecord>,
    command: &[String],
    timeout: Duration,
) -> HealthResult {
    let start = crate::now_rfc3339();
    let failed = |output: String| HealthResult {
        start: start.clone(),
        end: crate::now_rfc3339(),
        exit_code: -1,
        output,
    };
    let p = match probe {
        Some(p) => p,
        None => match Probe::new(engine, record, command.to_vec()).await {
            Ok(p) => probe.insert(p),
            Err(e) => {
                engine.metrics.health_check("error");
                return failed(e.to_string());
            }
        },
    };
    match p.run(record, timeout, MAX_OUTPUT).await {
        Ok((code, output)) => {
            engine
                .metrics
                .health_check(if code == 0 { "healthy" } else { "unhealthy" });
            HealthResult {
                start: start.clone(),
                end: crate::now_rfc3339(),
                exit_code: i64::from(code),
                output: String::from_utf8_lossy(&output).into_owned(),
            }
        }
        Err(ProbeFailure::Error(message)) => {
            engine.metrics.health_check("error");
            failed(message)
        }
        Err(ProbeFailure::Timeout) => {
            engine.metrics.health_check("timeout");
            failed(format!(
                "Health check exceeded timeout ({})",
                humantime::format_duration(timeout)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn results_move_the_status_as_dockers_do() {
        let mut h = Health {
            status: "starting".into(),
            ..Default::default()
        };
        // Failures in the start period do not count while starting.
        h.record(result(1), true, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        h.record(result(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 1));
        h.record(result(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        h.record(result(0), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            h.record(result(0), false, 2);
        }
        assert_eq!(h.log.len(), KEEP);
    }

    #[test]
    fn configs_merge_and_validate() {
        let image = HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 4,
            ..Default::default()
        };
        let mine = HealthConfig {
            interval: 1_000_000_000,
            ..Default::default()
        }
        .over(Some(image));
        assert_eq!(
            mine.command(),
            Some(vec!["/bin/sh".into(), "-c".into(), "true".into()])
        );
        assert_eq!((mine.interval, mine.retries), (1_000_000_000, 4));
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(none.command(), None);
        let bad = HealthConfig {
            interval: 10,
            ..Default::default()
        };
        assert!(bad.validate().is_err_and(|e| e
            .to_string()
            .contains("Interval in Healthcheck cannot be less than 1ms")));
    }
}
