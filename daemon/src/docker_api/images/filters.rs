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

/// Glob match with `*` and `?` (Docker's `reference` filter uses path.Match).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] == t[ti] && p[pi] != '*')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
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
    fn globs() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("busy", "busybox"));
        assert!(glob("b?sybox", "busybox"));
    }
}
