//! Which volumes a list or a prune takes: Docker's `dangling`, `driver`, `label`,
//! `label!` and `name` filters, neutral (each front door parses its own syntax).

use std::collections::BTreeMap;

/// Every non-empty part must match; within a part, any value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VolumeFilter {
    /// Used by no container (`false`: used by one).
    pub dangling: Option<bool>,
    /// `key` or `key=value`: each must be among the volume's labels.
    pub labels: Vec<String>,
    /// `key` or `key=value`: none may be among them.
    pub not_labels: Vec<String>,
    /// Substrings of the name, any one of them.
    pub names: Vec<String>,
    /// Driver names, any one of them.
    pub drivers: Vec<String>,
}

impl VolumeFilter {
    pub fn matches(
        &self,
        name: &str,
        driver: &str,
        labels: &BTreeMap<String, String>,
        in_use: bool,
    ) -> bool {
        self.dangling.is_none_or(|d| d != in_use)
            && self.labels.iter().all(|l| has_label(labels, l))
            && !self.not_labels.iter().any(|l| has_label(labels, l))
            && (self.names.is_empty() || self.names.iter().any(|n| name.contains(n.as_str())))
            && (self.drivers.is_empty() || self.drivers.iter().any(|d| d == driver))
    }
}

/// Whether `labels` has the label a `label=` filter names: `key` (any value) or
/// `key=value`. Volume and network filters share it.
pub(crate) fn has_label(labels: &BTreeMap<String, String>, wanted: &str) -> bool {
    match wanted.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_must_match() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let all = VolumeFilter::default();
        assert!(all.matches("db", "local", &labels, true));
        let dangling = VolumeFilter {
            dangling: Some(true),
            ..Default::default()
        };
        assert!(dangling.matches("db", "local", &labels, false));
        assert!(!dangling.matches("db", "local", &labels, true));
        let label = VolumeFilter {
            labels: vec!["env=prod".into(), "env".into()],
            ..Default::default()
        };
        assert!(label.matches("db", "local", &labels, false));
        assert!(!label.matches("db", "local", &BTreeMap::new(), false));
        let not = VolumeFilter {
            not_labels: vec!["env=prod".into()],
            ..Default::default()
        };
        assert!(!not.matches("db", "local", &labels, false));
        let name = VolumeFilter {
            names: vec!["ata".into(), "zzz".into()],
            drivers: vec!["local".into()],
            ..Default::default()
        };
        assert!(name.matches("db-data", "local", &labels, false));
        assert!(!name.matches("db", "local", &labels, false));
    }
}
