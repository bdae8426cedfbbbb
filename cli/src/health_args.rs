//! The health check flags of `run`/`create` (`--health-cmd`, `--health-interval`, …,
//! `--no-healthcheck`) as the create body's `Healthcheck`, as docker's CLI sends it.

use clap::Args;
use serde_json::{json, Value};

#[derive(Args, Debug, Default, Clone)]
pub struct HealthFlags {
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h).
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

/// A Go duration (`1s`, `300ms`, `1m30s`) in nanoseconds.
fn nanos(flag: &str, v: &Option<String>) -> anyhow::Result<i64> {
    let Some(v) = v else { return Ok(0) };
    let d = humantime::parse_duration(v)
        .map_err(|e| anyhow::anyhow!("invalid argument {v:?} for \"{flag}\" flag: {e}"))?;
    Ok(d.as_nanos() as i64)
}

impl HealthFlags {
    /// `Healthcheck` for the create body; `None` when no flag was given.
    pub fn healthcheck(&self) -> anyhow::Result<Option<Value>> {
        let timing = [
            (
                "Interval",
                nanos("--health-interval", &self.health_interval)?,
            ),
            ("Timeout", nanos("--health-timeout", &self.health_timeout)?),
            (
                "StartPeriod",
                nanos("--health-start-period", &self.health_start_period)?,
            ),
            (
                "StartInterval",
                nanos("--health-start-interval", &self.health_start_interval)?,
            ),
        ];
        let retries = self.health_retries.unwrap_or(0);
        let any_option = timing.iter().any(|(_, v)| *v != 0) || retries != 0;
        if self.no_healthcheck {
            if self.health_cmd.is_some() || any_option {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if self.health_cmd.is_none() && !any_option {
            return Ok(None);
        }
        if retries < 0 {
            anyhow::bail!("--health-retries cannot be negative");
        }
        let mut check = json!({"Retries": retries});
        if let Some(cmd) = &self.health_cmd {
            check["Test"] = json!(["CMD-SHELL", cmd]);
        }
        for (k, v) in timing {
            check[k] = json!(v);
        }
        Ok(Some(check))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_dockers_healthcheck() -> anyhow::Result<()> {
        let flags = HealthFlags {
            health_cmd: Some("exit 0".into()),
            health_interval: Some("300ms".into()),
            health_retries: Some(2),
            ..Default::default()
        };
        assert_eq!(
            flags.healthcheck()?,
            Some(
                json!({"Test": ["CMD-SHELL", "exit 0"], "Interval": 300_000_000,
                        "Timeout": 0, "StartPeriod": 0, "StartInterval": 0, "Retries": 2})
            )
        );
        let none = HealthFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(none.healthcheck()?, Some(json!({"Test": ["NONE"]})));
        assert_eq!(HealthFlags::default().healthcheck()?, None);
        Ok(())
    }
}
