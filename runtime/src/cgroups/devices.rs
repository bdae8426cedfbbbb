//! Device cgroup rules: the spec's rules followed by the devices every container
//! needs (as runc adds them). As with runc, the spec's `linux.devices` are only
//! created, not allowed: the engine adds a rule for each device it wants usable.

use std::fmt;

use oci_spec::runtime::{LinuxDeviceType, LinuxResources};

pub(super) struct Rule {
    pub allow: bool,
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: String,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.typ == 'a' {
            return write!(f, "a *:* {}", self.access);
        }
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.typ,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn type_char(t: LinuxDeviceType) -> char {
    match t {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => 'p',
    }
}

/// Always-allowed devices: (type, major, minor).
const DEFAULT_ALLOWED: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"), // null
    ('c', Some(1), Some(5), "rwm"), // zero
    ('c', Some(1), Some(7), "rwm"), // full
    ('c', Some(1), Some(8), "rwm"), // random
    ('c', Some(1), Some(9), "rwm"), // urandom
    ('c', Some(5), Some(0), "rwm"), // tty
    ('c', Some(5), Some(1), "rwm"), // console
    ('c', Some(5), Some(2), "rwm"), // ptmx
    ('c', Some(136), None, "rwm"),  // pts
];

pub(super) fn rules(res: &LinuxResources) -> Vec<Rule> {
    let mut out = Vec::new();
    for d in res.devices().iter().flatten() {
        out.push(Rule {
            allow: d.allow(),
            typ: d.typ().map_or('a', type_char),
            major: d.major(),
            minor: d.minor(),
            access: d.access().clone().unwrap_or_else(|| "rwm".into()),
        });
    }
    if out.is_empty() {
        return out; // no device policy in the spec: leave the cgroup as it is
    }
    for &(typ, major, minor, access) in DEFAULT_ALLOWED {
        out.push(Rule {
            allow: true,
            typ,
            major,
            minor,
            access: access.into(),
        });
    }
    out
}
