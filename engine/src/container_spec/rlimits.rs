//! The process's resource limits (`docker run --ulimit`) as OCI `process.rlimits`,
//! checked at create against what the runtime will be able to set: without
//! CAP_SYS_RESOURCE no hard limit can go above the one berthd (and so its shims) has.

use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Spec};

use super::{process_mut, Container, SpecError};
use crate::config::Rlimit;

/// The names Docker knows (go-units), each with its `RLIMIT_` type.
const NAMES: [(&str, PosixRlimitType, libc::__rlimit_resource_t); 16] = [
    ("as", PosixRlimitType::RlimitAs, libc::RLIMIT_AS),
    ("core", PosixRlimitType::RlimitCore, libc::RLIMIT_CORE),
    ("cpu", PosixRlimitType::RlimitCpu, libc::RLIMIT_CPU),
    ("data", PosixRlimitType::RlimitData, libc::RLIMIT_DATA),
    ("fsize", PosixRlimitType::RlimitFsize, libc::RLIMIT_FSIZE),
    ("locks", PosixRlimitType::RlimitLocks, libc::RLIMIT_LOCKS),
    (
        "memlock",
        PosixRlimitType::RlimitMemlock,
        libc::RLIMIT_MEMLOCK,
    ),
    (
        "msgqueue",
        PosixRlimitType::RlimitMsgqueue,
        libc::RLIMIT_MSGQUEUE,
    ),
    ("nice", PosixRlimitType::RlimitNice, libc::RLIMIT_NICE),
    ("nofile", PosixRlimitType::RlimitNofile, libc::RLIMIT_NOFILE),
    ("nproc", PosixRlimitType::RlimitNproc, libc::RLIMIT_NPROC),
    ("rss", PosixRlimitType::RlimitRss, libc::RLIMIT_RSS),
    ("rtprio", PosixRlimitType::RlimitRtprio, libc::RLIMIT_RTPRIO),
    ("rttime", PosixRlimitType::RlimitRttime, libc::RLIMIT_RTTIME),
    (
        "sigpending",
        PosixRlimitType::RlimitSigpending,
        libc::RLIMIT_SIGPENDING,
    ),
    ("stack", PosixRlimitType::RlimitStack, libc::RLIMIT_STACK),
];

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// `process.rlimits` from the config; refused by name: an unknown limit, a soft limit
/// above its hard one, a hard limit above berthd's own when berthd cannot raise it.
pub(super) fn with_rlimits(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let limits = &c.config().process.rlimits;
    if limits.is_empty() {
        return Ok(());
    }
    let can_raise = c.inputs.held_caps.contains(&"CAP_SYS_RESOURCE");
    let out = rlimits(limits, |resource| {
        if can_raise {
            return None;
        }
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into a valid rlimit struct.
        (unsafe { libc::getrlimit(resource, &mut cur) } == 0).then_some(cur.rlim_max)
    })?;
    process_mut(spec).set_rlimits(Some(out));
    Ok(())
}

/// The OCI rlimits; `ceiling` gives the highest hard limit the runtime can set for a
/// resource (`None`: no ceiling).
pub fn rlimits(
    limits: &[Rlimit],
    ceiling: impl Fn(libc::__rlimit_resource_t) -> Option<u64>,
) -> Result<Vec<PosixRlimit>, SpecError> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    for l in limits {
        let Some((name, typ, resource)) = NAMES.iter().find(|(n, _, _)| *n == l.name) else {
            return Err(SpecError::Ulimit(format!(
                "invalid ulimit type: {} (berth knows {})",
                l.name,
                NAMES.map(|n| n.0).join(", ")
            )));
        };
        if l.soft > l.hard {
            return Err(SpecError::Ulimit(format!(
                "ulimit {name}: soft limit {} is above the hard limit {}",
                show(l.soft),
                show(l.hard)
            )));
        }
        if let Some(max) = ceiling(*resource).filter(|max| l.hard > *max) {
            return Err(SpecError::Ulimit(format!(
                "ulimit {name}: hard limit {} is above this host's {} and berthd cannot raise it (it lacks CAP_SYS_RESOURCE); ask for at most {name}={}",
                show(l.hard),
                show(max),
                show(max)
            )));
        }
        let r = PosixRlimitBuilder::default()
            .typ(*typ)
            .soft(l.soft)
            .hard(l.hard)
            .build()?;
        // A name given twice: the last wins, as in Docker's merge.
        out.retain(|o| o.typ() != *typ);
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            name: name.into(),
            soft,
            hard,
        }
    }

    #[test]
    fn ulimits_become_rlimits() -> Result<(), SpecError> {
        let out = rlimits(
            &[
                limit("nofile", 1024, 2048),
                limit("core", 0, libc::RLIM_INFINITY),
            ],
            |_| None,
        )?;
        let json = serde_json::to_value(&out).map_err(|e| SpecError::Ulimit(e.to_string()))?;
        assert_eq!(
            json,
            serde_json::json!([
                {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": u64::MAX},
            ])
        );
        Ok(())
    }

    #[test]
    fn bad_ulimits_are_refused_by_name() {
        let err = |l: Rlimit, max: Option<u64>| {
            rlimits(&[l], |_| max)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(limit("nofiles", 1, 1), None).starts_with("invalid ulimit type: nofiles"));
        assert!(err(limit("nofile", 3, 2), None).contains("ulimit nofile: soft limit 3"));
        let e = err(limit("nofile", 1024, 30000), Some(20000));
        assert!(
            e.contains("ulimit nofile: hard limit 30000 is above this host's 20000"),
            "{e}"
        );
        assert!(e.contains("CAP_SYS_RESOURCE"), "{e}");
        assert!(err(limit("nofile", 1024, 20000), Some(20000)).is_empty());
    }
}
