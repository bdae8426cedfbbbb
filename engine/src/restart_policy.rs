//! Docker's restart policies (`no`, `always`, `unless-stopped`, `on-failure[:N]`):
//! whether an exited container is started again, and after what delay.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `""`/`no`, `always`, `unless-stopped` or `on-failure`.
    pub name: String,
    /// For `on-failure`: give up after this many restarts (0: never give up).
    pub maximum_retry_count: u32,
}

/// Errors validating a policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("invalid restart policy '{0}'")]
    Unknown(String),
    #[error("invalid restart policy: maximum retry count can only be used with 'on-failure'")]
    RetryCountWithoutOnFailure,
}

/// What the daemon knows when a container exits.
#[derive(Debug, Clone, Copy)]
pub struct ExitFacts {
    pub exit_code: i32,
    /// The user stopped or killed it (`docker stop`/`kill`), or it was removed.
    pub stopped_by_user: bool,
    /// Restarts so far in the current run of failures.
    pub restart_count: u32,
    /// How long the last run lasted.
    pub ran_for: Duration,
}

/// Docker doubles the delay from 100 ms up to a minute, and resets it once a run
/// has lasted ten seconds.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

impl RestartPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" if self.maximum_retry_count > 0 => {
                Err(PolicyError::RetryCountWithoutOnFailure)
            }
            "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
            other => Err(PolicyError::Unknown(other.to_string())),
        }
    }

    /// Whether the container starts again on daemon start after it was running
    /// when the daemon (or host) went down.
    pub fn restarts_on_daemon_start(&self, stopped_by_user: bool) -> bool {
        match self.name.as_str() {
            "always" => true,
            "unless-stopped" => !stopped_by_user,
            _ => false,
        }
    }

    /// The delay before starting the container again, or `None` to leave it exited.
    pub fn next_start(&self, facts: ExitFacts) -> Option<Duration> {
        if facts.stopped_by_user {
            return None;
        }
        let restart = match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                facts.exit_code != 0
                    && (self.maximum_retry_count == 0
                        || facts.restart_count < self.maximum_retry_count)
            }
            _ => false,
        };
        if !restart {
            return None;
        }
        if facts.ran_for >= RESET_AFTER {
            return Some(FIRST_DELAY);
        }
        let doublings = facts.restart_count.min(10);
        Some((FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, max: u32) -> RestartPolicy {
        RestartPolicy {
            name: name.into(),
            maximum_retry_count: max,
        }
    }

    fn exit(code: i32, count: u32) -> ExitFacts {
        ExitFacts {
            exit_code: code,
            stopped_by_user: false,
            restart_count: count,
            ran_for: Duration::from_millis(5),
        }
    }

    #[test]
    fn policies_decide_like_docker() {
        assert_eq!(policy("no", 0).next_start(exit(1, 0)), None);
        assert_eq!(policy("", 0).next_start(exit(1, 0)), None);
        assert_eq!(
            policy("always", 0).next_start(exit(0, 0)),
            Some(FIRST_DELAY)
        );
        assert_eq!(
            policy("unless-stopped", 0).next_start(exit(0, 3)),
            Some(Duration::from_millis(800))
        );
        assert_eq!(policy("on-failure", 0).next_start(exit(0, 0)), None);
        assert_eq!(
            policy("on-failure", 2).next_start(exit(3, 1)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(policy("on-failure", 2).next_start(exit(3, 2)), None);
        assert_eq!(policy("always", 0).next_start(exit(1, 20)), Some(MAX_DELAY));
        let long_run = ExitFacts {
            ran_for: Duration::from_secs(11),
            ..exit(1, 9)
        };
        assert_eq!(policy("always", 0).next_start(long_run), Some(FIRST_DELAY));
        let stopped = ExitFacts {
            stopped_by_user: true,
            ..exit(137, 0)
        };
        assert_eq!(policy("always", 0).next_start(stopped), None);
    }

    #[test]
    fn daemon_start_and_validation() {
        assert!(policy("always", 0).restarts_on_daemon_start(true));
        assert!(!policy("unless-stopped", 0).restarts_on_daemon_start(true));
        assert!(policy("unless-stopped", 0).restarts_on_daemon_start(false));
        assert!(!policy("on-failure", 0).restarts_on_daemon_start(false));
        assert_eq!(
            policy("sometimes", 0).validate(),
            Err(PolicyError::Unknown("sometimes".into()))
        );
        assert_eq!(
            policy("always", 3).validate(),
            Err(PolicyError::RetryCountWithoutOnFailure)
        );
        assert_eq!(policy("on-failure", 3).validate(), Ok(()));
    }
}
