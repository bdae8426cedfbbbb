//! Which networks a list or a prune takes: Docker's `dangling`, `driver`, `id`,
//! `label`, `label!`, `name`, `scope` and `type` filters, neutral (each front door
//! parses its own syntax).

use std::collections::BTreeMap;

use super::NetworkRecord;
use crate::volumes::filter::has_label;

/// Every non-empty part must match; within a part, any value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NetworkFilter {
    /// Used by no container (`false`: used by one).
    pub dangling: Option<bool>,
    pub drivers: Vec<String>,
    /// Prefixes of the id.
    pub ids: Vec<String>,
    /// `key` or `key=value`: each must be among the network's labels.
    pub labels: Vec<String>,
    /// `key` or `key=value`: none may be among them.
    pub not_labels: Vec<String>,
    /// Substrings of the name.
    pub names: Vec<String>,
    /// `local` (every berth network), `swarm` or `global` (none).
    pub scopes: Vec<String>,
    /// `builtin` (bridge, host, none) or `custom`.
    pub types: Vec<String>,
    /// Created at or before this time (seconds since the epoch; prune's `until`).
    pub until: Option<i64>,
}

/// What a filter looks at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub driver: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub builtin: bool,
    pub in_use: bool,
}

impl NetworkFilter {
    pub fn matches(&self, c: Candidate<'_>) -> bool {
        let any = |values: &[String], f: &dyn Fn(&str) -> bool| {
            values.is_empty() || values.iter().any(|v| f(v))
        };
        // Builtin networks are never dangling (Docker's rule).
        self.dangling.is_none_or(|d| d != (c.in_use || c.builtin))
            && any(&self.drivers, &|d| d == c.driver)
            && any(&self.ids, &|i| c.id.starts_with(i))
            && self.labels.iter().all(|l| has_label(c.labels, l))
            && !self.not_labels.iter().any(|l| has_label(c.labels, l))
            && any(&self.names, &|n| c.name.contains(n))
            && any(&self.scopes, &|s| s == "local")
            && any(&self.types, &|t| {
                t == if c.builtin { "builtin" } else { "custom" }
            })
    }

    pub fn matches_record(&self, r: &NetworkRecord, in_use: bool) -> bool {
        if let Some(until) = self.until {
            let created = humantime::parse_rfc3339_weak(&r.created)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            if created > until {
                return false;
            }
        }
        self.matches(Candidate {
            id: &r.id,
            name: &r.name,
            driver: &r.driver,
            labels: &r.labels,
            builtin: r.builtin,
            in_use,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_keeps_what_was_created_after_it() {
        let mut r: NetworkRecord = serde_json::from_value(serde_json::json!({
            "version": 1, "id": "abc", "name": "n", "driver": "bridge", "subnet": "10.9.0.0/24",
            "gateway": "10.9.0.1", "bridge": "br-abc", "created": "2026-12-05T01:00:00Z",
        }))
        .expect("a network record");
        let at = |s: &str| {
            humantime::parse_rfc3339(s).map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            })
        };
        let until = |u: &str| NetworkFilter {
            until: at(u).ok(),
            ..Default::default()
        };
        assert!(until("2026-12-05T01:00:00Z").matches_record(&r, false));
        assert!(until("2026-12-05T02:00:00Z").matches_record(&r, false));
        assert!(!until("2026-12-05T00:59:59Z").matches_record(&r, false));
        r.created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        assert!(!until("2026-12-05T00:00:00Z").matches_record(&r, false));
    }

    #[test]
    fn every_part_must_match() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let c = Candidate {
            id: "abcdef",
            name: "backend",
            driver: "bridge",
            labels: &labels,
            builtin: false,
            in_use: false,
        };
        assert!(NetworkFilter::default().matches(c));
        let f = |f: NetworkFilter| f.matches(c);
        assert!(f(NetworkFilter {
            ids: vec!["abc".into()],
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            ids: vec!["bcd".into()],
            ..Default::default()
        }));
        assert!(f(NetworkFilter {
            names: vec!["end".into()],
            ..Default::default()
        }));
        assert!(f(NetworkFilter {
            labels: vec!["env=prod".into()],
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            not_labels: vec!["env".into()],
            ..Default::default()
        }));
        assert!(f(NetworkFilter {
            types: vec!["custom".into()],
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            types: vec!["builtin".into()],
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            scopes: vec!["swarm".into()],
            ..Default::default()
        }));
        assert!(f(NetworkFilter {
            dangling: Some(true),
            ..Default::default()
        }));
        let used = Candidate { in_use: true, ..c };
        assert!(!NetworkFilter {
            dangling: Some(true),
            ..Default::default()
        }
        .matches(used));
        assert!(!f(NetworkFilter {
            drivers: vec!["host".into()],
            ..Default::default()
        }));
    }
}
