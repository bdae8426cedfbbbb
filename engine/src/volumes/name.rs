//! Volume names as Docker's local driver accepts them, and generated names.

/// Docker's pattern for a local volume name, as its error message shows it.
pub const NAME_PATTERN: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]";

/// Whether `name` is a valid local volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, so at
/// least two characters, never `/`, never starting with `.` (no `..`).
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    let rest = chars.as_str();
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A generated volume name (an anonymous volume's, or one created without a name):
/// 64 hex digits, as Docker's.
pub fn generated() -> String {
    crate::create::random_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_local_drivers_pattern() {
        for good in ["ab", "db-data", "a.b_c-1", "0x", &generated()] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "", "a", ".x", "..", "-a", "_a", "a/b", "../x", "a b", "é1", "a:b",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert_eq!(generated().len(), 64);
    }
}
