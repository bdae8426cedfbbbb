//! Docker's `filters` query parameter: `{"key":{"value":true}}` or the older
//! `{"key":["value"]}`, decoded to key → values.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::ApiError;

pub type Filters = BTreeMap<String, Vec<String>>;

pub fn parse(raw: Option<&str>) -> Result<Filters, ApiError> {
    let mut out = Filters::new();
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(out);
    };
    let bad = |why: String| ApiError::BadRequest(format!("invalid filters {raw:?}: {why}"));
    let v: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let Value::Object(map) = v else {
        return Err(bad("not a JSON object".into()));
    };
    for (key, values) in map {
        let list = match values {
            Value::Object(m) => m
                .into_iter()
                .filter(|(_, on)| on != &Value::Bool(false))
                .map(|(k, _)| k)
                .collect(),
            Value::Array(a) => a
                .into_iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{key}: values must be strings")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad(format!("{key}: expected an object or a list"))),
        };
        out.insert(key, list);
    }
    Ok(out)
}

/// Refuses keys outside `known`, as Docker does (`invalid filter 'x'`).
pub fn only(filters: &Filters, known: &[&str]) -> Result<(), ApiError> {
    match filters.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::BadRequest(format!("invalid filter '{k}'"))),
        None => Ok(()),
    }
}

/// The boolean value of a filter such as `dangling=true`.
pub fn boolean(filters: &Filters, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(values) = filters.get(key) else {
        return Ok(None);
    };
    let mut out = None;
    for v in values {
        let b = match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "invalid filter '{key}={v}': expected true or false"
                )))
            }
        };
        out = Some(b);
    }
    Ok(out)
}

/// Whether `labels` match every `key` or `key=value` of the `label` filter.
pub fn labels_match(filters: &Filters, labels: &Value) -> bool {
    filters.get("label").is_none_or(|wanted| {
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => labels.get(w).is_some(),
        })
    })
}

/// One piece of a `path.Match` pattern.
enum Token {
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `[…]`, `[^…]`: one character in (or not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Char(char),
}

/// A pattern Docker's `reference` filter accepts: Go's `path.Match` syntax (`*` and `?`
/// stop at `/`, `[a-z]`, `[^…]`, `\` escapes).
pub struct Pattern(Vec<Token>);

impl Pattern {
    /// Parses `pattern`; `None` when it is malformed (Go's `ErrBadPattern`).
    pub fn parse(pattern: &str) -> Option<Pattern> {
        let mut chars = pattern.chars().peekable();
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => Token::Char(chars.next()?),
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                            break;
                        }
                        let lo = class_char(chars.next()?, &mut chars)?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(chars.next()?, &mut chars)?
                        } else {
                            lo
                        };
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Char(c),
            });
        }
        Some(Pattern(tokens))
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        matches_at(&self.0, &text)
    }
}

/// A character inside `[…]`: `-` and `]` must be escaped.
fn class_char(c: char, rest: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match c {
        '\\' => rest.next(),
        '-' | ']' => None,
        c => Some(c),
    }
}

fn matches_at(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Star => {
            // Each split up to the next `/` (a star never crosses one).
            let reach = text.iter().position(|c| *c == '/').unwrap_or(text.len());
            (0..=reach).any(|n| matches_at(rest, &text[n..]))
        }
        _ => {
            let Some((c, after)) = text.split_first() else {
                return false;
            };
            let one = match first {
                Token::Any => *c != '/',
                Token::Char(x) => x == c,
                Token::Class { negated, ranges } => {
                    ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Token::Star => false,
            };
            one && matches_at(rest, after)
        }
    }
}

/// The patterns of the `reference` filter, if given; a malformed one is refused.
pub fn references(filters: &Filters) -> Result<Option<Vec<Pattern>>, ApiError> {
    let Some(values) = filters.get("reference") else {
        return Ok(None);
    };
    values
        .iter()
        .map(|p| {
            Pattern::parse(p).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid reference filter {p:?}: syntax error in pattern"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filter_forms_parse() {
        let f = parse(Some(r#"{"dangling":{"true":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(boolean(&f, "dangling").unwrap(), Some(true));
        assert_eq!(f["label"], vec!["a=b".to_string()]);
        assert!(only(&f, &["dangling"]).is_err());
        assert!(parse(Some("[1]")).is_err());
    }

    #[test]
    fn patterns_match_like_go_path_match() {
        let m = |p: &str, t: &str| Pattern::parse(p).map(|p| p.matches(t));
        assert_eq!(m("busy*", "busybox"), Some(true));
        assert_eq!(m("busybox:1*", "busybox:1.36"), Some(true));
        assert_eq!(m("busybox:1*", "busybox:latest"), Some(false));
        assert_eq!(m("busy", "busybox"), Some(false));
        assert_eq!(m("b?sybox", "busybox"), Some(true));
        // `*` and `?` stop at `/`.
        assert_eq!(m("busy*", "127.0.0.1:5000/busybox"), Some(false));
        assert_eq!(m("*/busy*", "127.0.0.1:5000/busybox"), Some(true));
        assert_eq!(m("*/busy*", "other/busybox:2"), Some(true));
        assert_eq!(m("a?b", "a/b"), Some(false));
        assert_eq!(m("*", ""), Some(true));
        assert_eq!(m("**x", "abx"), Some(true));
        // Classes, negation, escapes.
        assert_eq!(m("busybox:[0-9]*", "busybox:1.36"), Some(true));
        assert_eq!(m("busybox:[^0-9]*", "busybox:1.36"), Some(false));
        assert_eq!(m("busybox:[^0-9]*", "busybox:latest"), Some(true));
        assert_eq!(m("a\\*b", "a*b"), Some(true));
        assert_eq!(m("a\\*b", "axb"), Some(false));
        assert_eq!(m("[\\]]", "]"), Some(true));
        // Malformed, as Go's ErrBadPattern.
        for bad in ["[", "[]", "[^]", "a\\", "[a-]", "[-a]", "[a", "[]a]"] {
            assert!(Pattern::parse(bad).is_none(), "{bad:?} should be refused");
        }
        let f = parse(Some(r#"{"reference":{"[":true}}"#)).unwrap();
        assert!(references(&f).is_err());
    }
}
