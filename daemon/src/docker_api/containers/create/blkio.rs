//! `HostConfig.BlkioWeight` on a host without block I/O weight support: discarded
//! with Docker's warning in the create answer, as Docker does.

use serde_json::{json, Value};

/// Docker's warning when it discards a weight (daemon/daemon_unix.go).
pub const WEIGHT_DISCARDED: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

/// Discards a `HostConfig.BlkioWeight` the host cannot apply (set to 0, so the
/// container runs without it and inspect shows none, as with Docker) and returns
/// the warnings for the create answer. `supported` is asked only when a weight is set.
pub fn discard_unsupported_weight(
    body: &mut Value,
    supported: impl FnOnce() -> bool,
) -> Vec<String> {
    let Some(hc) = body.get_mut("HostConfig").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    // Values that are not a u16 are left for the request's parsing to refuse.
    let asked = hc
        .get("BlkioWeight")
        .and_then(Value::as_u64)
        .is_some_and(|w| (1..=u64::from(u16::MAX)).contains(&w));
    if !asked || supported() {
        return Vec::new();
    }
    hc.insert("BlkioWeight".into(), json!(0));
    vec![WEIGHT_DISCARDED.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host without weight support, whatever the machine the test runs on: the
    /// weight is discarded from the request with Docker's warning.
    #[test]
    fn an_unsupported_weight_is_discarded_with_dockers_warning() {
        let mut body = json!({"Image": "x", "HostConfig": {"BlkioWeight": 300, "Memory": 0}});
        let warnings = discard_unsupported_weight(&mut body, || false);
        assert_eq!(warnings, vec![WEIGHT_DISCARDED.to_string()]);
        assert_eq!(body["HostConfig"]["BlkioWeight"], 0);
        // Docker discards before it checks the range: no error for 5 either.
        let mut low = json!({"HostConfig": {"BlkioWeight": 5}});
        assert_eq!(discard_unsupported_weight(&mut low, || false).len(), 1);
        assert_eq!(low["HostConfig"]["BlkioWeight"], 0);
    }

    #[test]
    fn a_supported_or_unset_weight_is_kept_and_the_host_asked_only_when_set() {
        let mut body = json!({"HostConfig": {"BlkioWeight": 300}});
        assert!(discard_unsupported_weight(&mut body, || true).is_empty());
        assert_eq!(body["HostConfig"]["BlkioWeight"], 300);
        for mut body in [
            json!({"HostConfig": {"BlkioWeight": 0}}),
            json!({"HostConfig": {}}),
            json!({"Image": "x"}),
            json!({"HostConfig": "not an object"}),
            // Not a u16: the request's parsing refuses it.
            json!({"HostConfig": {"BlkioWeight": -1}}),
            json!({"HostConfig": {"BlkioWeight": 70000}}),
        ] {
            let before = body.clone();
            let warnings =
                discard_unsupported_weight(&mut body, || panic!("host probed for {before}"));
            assert!(warnings.is_empty());
            assert_eq!(body, before);
        }
    }
}
