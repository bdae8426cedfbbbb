//! `HostConfig.OomKillDisable`: applied where the host can (a cgroup v1 memory
//! hierarchy), discarded with Docker's warning where it cannot (cgroup v2), and a
//! warning when it is set without a memory limit, as dockerd answers
//! (daemon/daemon_unix.go, `verifyPlatformContainerResources`).

use serde_json::{json, Value};

/// Docker's warning when it discards the setting.
pub const DISCARDED: &str =
    "Your kernel does not support OomKillDisable. OomKillDisable discarded.";

/// Docker's warning for a disabled OOM killer without a memory limit.
pub const NO_MEMORY_LIMIT: &str = "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.";

/// Discards an `OomKillDisable: true` the host cannot apply (set to false, so inspect
/// shows it off) and returns the warnings for the create answer. `supported` is asked
/// only when it is set.
pub fn discard_unsupported(body: &mut Value, supported: impl FnOnce() -> bool) -> Vec<String> {
    let Some(hc) = body.get_mut("HostConfig").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    if hc.get("OomKillDisable").and_then(Value::as_bool) != Some(true) {
        return Vec::new();
    }
    if !supported() {
        hc.insert("OomKillDisable".into(), json!(false));
        return vec![DISCARDED.to_string()];
    }
    let memory = hc.get("Memory").and_then(Value::as_i64).unwrap_or(0);
    if memory == 0 {
        return vec![NO_MEMORY_LIMIT.to_string()];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_switch_is_discarded_with_dockers_warning() {
        let mut body = json!({"HostConfig": {"OomKillDisable": true, "Memory": 0}});
        assert_eq!(discard_unsupported(&mut body, || false), vec![DISCARDED]);
        assert_eq!(body["HostConfig"]["OomKillDisable"], false);
    }

    #[test]
    fn a_supported_switch_is_kept_and_warned_about_without_a_memory_limit() {
        let mut body = json!({"HostConfig": {"OomKillDisable": true}});
        assert_eq!(
            discard_unsupported(&mut body, || true),
            vec![NO_MEMORY_LIMIT]
        );
        assert_eq!(body["HostConfig"]["OomKillDisable"], true);
        let mut limited = json!({"HostConfig": {"OomKillDisable": true, "Memory": 67108864}});
        assert!(discard_unsupported(&mut limited, || true).is_empty());
        for mut body in [
            json!({"HostConfig": {"OomKillDisable": false}}),
            json!({"HostConfig": {}}),
            json!({}),
        ] {
            let before = body.clone();
            assert!(discard_unsupported(&mut body, || panic!("probed")).is_empty());
            assert_eq!(body, before);
        }
    }
}
