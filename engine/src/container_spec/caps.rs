//! Capability sets: Docker's defaults, `--cap-add`/`--cap-drop` and `--privileged`,
//! bounded by what berth itself holds (its bounding set).

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Spec};

use super::defaults::DEFAULT_CAPS;
use super::{process_mut, Container, SpecError};

/// Capability names by number, as in linux/capability.h.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities in berth's own bounding set: what "all" means here.
pub fn bounding_set() -> Result<Vec<&'static str>, SpecError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| SpecError::Caps(format!("reading /proc/self/status: {e}")))?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .ok_or_else(|| SpecError::Caps("no CapBnd in /proc/self/status".into()))?;
    let mask = u64::from_str_radix(hex.trim(), 16)
        .map_err(|e| SpecError::Caps(format!("CapBnd {hex:?}: {e}")))?;
    Ok(CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect())
}

/// `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; unknown names refused.
fn normalize(name: &str) -> Result<String, SpecError> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if !CAP_NAMES.contains(&full.as_str()) {
        return Err(SpecError::Caps(format!("unknown capability: {name:?}")));
    }
    Ok(full)
}

/// The effective set for a container: defaults (or everything held, when privileged),
/// plus adds, minus drops. Asking for a capability berth does not hold is an error.
pub fn container_caps(
    privileged: bool,
    add: &[String],
    drop: &[String],
    held: &[&'static str],
) -> Result<Vec<String>, SpecError> {
    let mut caps: Vec<String> = if privileged {
        held.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| held.contains(c))
            .map(|c| c.to_string())
            .collect()
    };
    let drop: Vec<String> = drop
        .iter()
        .map(|d| normalize(d))
        .collect::<Result<_, _>>()?;
    if drop.iter().any(|d| d == "ALL") {
        caps.clear();
    }
    for name in add {
        let name = normalize(name)?;
        let wanted: Vec<String> = if name == "ALL" {
            held.iter().map(|c| c.to_string()).collect()
        } else {
            if !held.contains(&name.as_str()) {
                return Err(SpecError::Caps(format!(
                    "{name} is not in berth's bounding set on this host, so no container can have it"
                )));
            }
            vec![name]
        };
        for cap in wanted {
            if !caps.contains(&cap) {
                caps.push(cap);
            }
        }
    }
    caps.retain(|c| !drop.contains(c));
    Ok(caps)
}

/// The capability named `name` (`CAP_…`) as the spec types know it.
fn capability(name: &str) -> Result<Capability, SpecError> {
    name.strip_prefix("CAP_")
        .unwrap_or(name)
        .parse()
        .map_err(|_| SpecError::Caps(format!("capability {name} is unknown to berth's runtime")))
}

/// `process.capabilities`: the container's set as bounding, effective and permitted.
pub(super) fn with_capabilities(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let set: Capabilities = c
        .caps
        .iter()
        .map(|n| capability(n))
        .collect::<Result<_, _>>()?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    process_mut(spec).set_capabilities(Some(caps));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every capability berth knows is one the runtime's spec types know, under the
    /// name they write.
    #[test]
    fn every_known_capability_is_typed() {
        for name in CAP_NAMES {
            let cap = capability(name).map(|c| serde_json::to_value(c).ok());
            assert_eq!(cap.ok().flatten(), Some(serde_json::json!(name)));
        }
    }

    const HELD: [&str; 4] = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn adds_drops_and_privileged_within_what_is_held() {
        assert_eq!(
            container_caps(false, &[], &[], &HELD).ok(),
            Some(s(&["CAP_CHOWN", "CAP_KILL"]))
        );
        assert_eq!(
            container_caps(false, &s(&["net_admin"]), &s(&["KILL"]), &HELD).ok(),
            Some(s(&["CAP_CHOWN", "CAP_NET_ADMIN"]))
        );
        assert_eq!(
            container_caps(false, &s(&["CHOWN"]), &s(&["ALL"]), &HELD).ok(),
            Some(s(&["CAP_CHOWN"]))
        );
        assert_eq!(container_caps(true, &[], &[], &HELD).ok(), Some(s(&HELD)));
        assert_eq!(
            container_caps(false, &s(&["ALL"]), &[], &HELD).ok(),
            Some(s(&[
                "CAP_CHOWN",
                "CAP_KILL",
                "CAP_NET_ADMIN",
                "CAP_SYS_ADMIN"
            ]))
        );
        let err = container_caps(false, &s(&["SYS_RESOURCE"]), &[], &HELD)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("CAP_SYS_RESOURCE is not in berth's bounding set")));
        let err = container_caps(false, &s(&["FLY"]), &[], &HELD)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown capability")));
    }

    #[test]
    fn bounding_set_is_read_from_the_kernel() -> Result<(), SpecError> {
        let held = bounding_set()?;
        assert!(held.contains(&"CAP_CHOWN") || held.is_empty());
        Ok(())
    }
}
