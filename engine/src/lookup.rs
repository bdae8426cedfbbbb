//! Finding objects the way docker users name them: a full id, a unique id prefix, or
//! a name (with or without docker's leading `/`). Ambiguous prefixes are an error.

use crate::store::{Kind, Store, StoreError};

/// Why a reference did not resolve, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("No such {kind}: {reference}")]
    NotFound {
        kind: &'static str,
        reference: String,
    },
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolves `reference` to an id of `kind`: exact id, then exact name, then a unique
/// id prefix.
pub fn resolve(store: &Store, kind: Kind, reference: &str) -> Result<String, LookupError> {
    let not_found = || LookupError::NotFound {
        kind: kind.as_str(),
        reference: reference.to_string(),
    };
    if reference.is_empty() {
        return Err(not_found());
    }
    let name = reference.strip_prefix('/').unwrap_or(reference);
    let all = store.list::<serde_json::Value>(kind)?;
    if let Some((id, _, _)) = all.iter().find(|(id, _, _)| id == reference) {
        return Ok(id.clone());
    }
    if let Some((id, _, _)) = all.iter().find(|(_, n, _)| n.as_deref() == Some(name)) {
        return Ok(id.clone());
    }
    let mut matches = all.iter().filter(|(id, _, _)| id.starts_with(reference));
    match (matches.next(), matches.next()) {
        (Some((id, _, _)), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(LookupError::Ambiguous(reference.to_string())),
        _ => Err(not_found()),
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

const ADJECTIVES: [&str; 24] = [
    "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen", "kind", "lively",
    "lucid", "merry", "modest", "nimble", "patient", "plucky", "quiet", "ready", "steady",
    "sturdy", "swift", "tidy", "upbeat", "witty",
];

const HARBOUR_WORDS: [&str; 24] = [
    "anchor",
    "bollard",
    "buoy",
    "capstan",
    "cleat",
    "dock",
    "ferry",
    "galley",
    "hawser",
    "jetty",
    "keel",
    "lighthouse",
    "mooring",
    "pier",
    "pilot",
    "quay",
    "rudder",
    "sail",
    "schooner",
    "skiff",
    "tugboat",
    "wharf",
    "winch",
    "yardarm",
];

/// A readable random name (`swift_mooring`), unused in `taken`.
pub fn generate_name(random: u64, taken: &dyn Fn(&str) -> bool) -> String {
    let base = format!(
        "{}_{}",
        ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize],
        HARBOUR_WORDS[((random / ADJECTIVES.len() as u64) % HARBOUR_WORDS.len() as u64) as usize]
    );
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}{n}"))
        .find(|candidate| !taken(candidate))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_prefixes_resolve() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("db"))?;
        let v = serde_json::json!({});
        store.put(Kind::Container, "abc123", Some("web"), &v)?;
        store.put(Kind::Container, "abd456", Some("db"), &v)?;
        store.put(Kind::Container, "ff0000", Some("abc"), &v)?;
        assert_eq!(resolve(&store, Kind::Container, "abc123")?, "abc123");
        assert_eq!(resolve(&store, Kind::Container, "web")?, "abc123");
        assert_eq!(resolve(&store, Kind::Container, "/db")?, "abd456");
        // A name wins over an id prefix, as in Docker.
        assert_eq!(resolve(&store, Kind::Container, "abc")?, "ff0000");
        assert_eq!(resolve(&store, Kind::Container, "abd")?, "abd456");
        let ambiguous = resolve(&store, Kind::Container, "ab")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            ambiguous.as_deref(),
            Some("multiple IDs found with provided prefix: ab")
        );
        let missing = resolve(&store, Kind::Container, "zzz")
            .err()
            .map(|e| e.to_string());
        assert_eq!(missing.as_deref(), Some("No such container: zzz"));
        Ok(())
    }

    #[test]
    fn names_validate_and_generate() {
        assert!(valid_name("web") && valid_name("/web-1.a_b") && valid_name("a1"));
        assert!(!valid_name("-web") && !valid_name("a") && !valid_name("we b") && !valid_name(""));
        let taken = |n: &str| n == "brave_anchor" || n == "brave_anchor1";
        assert_eq!(generate_name(0, &taken), "brave_anchor2");
        assert_eq!(generate_name(25, &|_| false), "calm_bollard");
    }
}
