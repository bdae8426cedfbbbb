//! The `--name[=value]` flags written after an instruction's keyword, and their checks in
//! BuildKit's wording.

use std::collections::BTreeMap;

/// Takes the leading `--flag` words off an instruction's arguments: the flags (quotes
/// removed) and the rest.
pub fn extract(args: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = rest.len();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == escape => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                None => word.push(c),
            }
        }
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        flags.push(word);
    }
    (flags, rest)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    String,
    /// May be given several times.
    Strings,
}

/// The flags of one instruction after their checks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Checks `given` against the flags an instruction `known` takes.
    pub fn parse(given: &[String], known: &[(&str, Kind)]) -> Result<Flags, String> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for arg in given {
            let Some(arg) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some((_, kind)) = known.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: {name}"));
            };
            if values.contains_key(name) && *kind != Kind::Strings {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let value = match kind {
                Kind::Bool => match value {
                    None | Some("true") => "true".to_string(),
                    Some("false") => "false".to_string(),
                    Some(v) => {
                        return Err(format!("expecting boolean value for flag {name}, not: {v}"))
                    }
                },
                Kind::String | Kind::Strings => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: {name}")),
                },
            };
            values.entry(name.to_string()).or_default().push(value);
        }
        Ok(Flags { values })
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_leading_flags_only() {
        let (f, rest) = extract("--from=build --chown=\"a b\" src --x dst", '\\');
        assert_eq!(f, vec!["--from=build", "--chown=a b"]);
        assert_eq!(rest, "src --x dst");
        let (f, rest) = extract("  echo --x", '\\');
        assert!(f.is_empty());
        assert_eq!(rest, "echo --x");
        let (f, rest) = extract("--link -- --odd", '\\');
        assert_eq!(f, vec!["--link"]);
        assert_eq!(rest, "--odd");
        let (f, rest) = extract("--mount=type=bind,target=/x", '\\');
        assert_eq!(f, vec!["--mount=type=bind,target=/x"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn checks_flags() {
        let known = [
            ("from", Kind::String),
            ("link", Kind::Bool),
            ("mount", Kind::Strings),
        ];
        let f = Flags::parse(
            &[
                "--from=a".into(),
                "--link".into(),
                "--mount=x".into(),
                "--mount=y".into(),
            ],
            &known,
        )
        .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert!(f.bool("link"));
        assert_eq!(f.strings("mount"), vec!["x", "y"]);
        let e = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            Flags::parse(&a, &known).unwrap_err()
        };
        assert_eq!(e(&["--nope=1"]), "unknown flag: nope");
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: from"
        );
        assert_eq!(e(&["--from"]), "missing a value on flag: from");
        assert_eq!(
            e(&["--link=yes"]),
            "expecting boolean value for flag link, not: yes"
        );
        let f = Flags::parse(&["--link=false".into()], &known).unwrap();
        assert!(!f.bool("link"));
    }
}
