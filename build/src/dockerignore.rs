//! `.dockerignore`: reading the file and matching context paths as Docker's
//! patternmatcher does. Patterns are cleaned paths relative to the context (a leading
//! `/` dropped); `*` and `?` stay within a path element, `**` crosses them, `[...]` is a
//! class, `\` escapes; a `!` line re-includes what earlier lines excluded, and the last
//! line that matches a path (or one of its parent directories) decides.

/// A read `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    exclusion: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**` followed by more: any run of whole elements, with their `/`, or nothing.
    Elements,
    /// `**` at the end: anything.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A pattern Docker cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

/// Lexical cleaning as Go's `filepath.Clean` does it.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(l) if *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn compile(text: &str) -> Result<Vec<Token>, PatternError> {
    let err = |reason| PatternError {
        pattern: text.to_string(),
        reason,
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i >= chars.len() {
                        Token::Rest
                    } else {
                        Token::Elements
                    });
                } else {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    tokens.push(Token::Char(n));
                    i += 1;
                }
                None => return Err(err("trailing backslash")),
            },
            '[' => {
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("unterminated character class"));
                    };
                    i += 1;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        let Some(&n) = chars.get(i) else {
                            return Err(err("unterminated character class"));
                        };
                        i += 1;
                        n
                    } else {
                        c
                    };
                    let hi = if chars.get(i) == Some(&'-')
                        && chars.get(i + 1).is_some_and(|c| *c != ']')
                    {
                        let h = chars[i + 1];
                        i += 2;
                        h
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err(err("bad character range"));
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Ok(tokens)
}

fn matches(tokens: &[Token], path: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match first {
        Token::Char(c) => path.first() == Some(c) && matches(rest, &path[1..]),
        Token::One => path.first().is_some_and(|c| *c != '/') && matches(rest, &path[1..]),
        Token::Class { negated, ranges } => {
            path.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }) && matches(rest, &path[1..])
        }
        Token::Star => {
            let mut n = 0;
            loop {
                if matches(rest, &path[n..]) {
                    return true;
                }
                if n >= path.len() || path[n] == '/' {
                    return false;
                }
                n += 1;
            }
        }
        // `(.*/)?`: nothing, or anything up to and including a `/`.
        Token::Elements => {
            if matches(rest, path) {
                return true;
            }
            (0..path.len()).any(|n| path[n] == '/' && matches(rest, &path[n + 1..]))
        }
        Token::Rest => true,
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        if matches(&self.tokens, &chars) {
            return true;
        }
        // Or one of its parent directories.
        (0..chars.len()).any(|i| chars[i] == '/' && matches(&self.tokens, &chars[..i]))
    }
}

impl Ignore {
    /// Reads a `.dockerignore`'s text: `#` comments, blank lines, surrounding blanks,
    /// a UTF-8 BOM, `!` exceptions; each pattern cleaned and made relative.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (exclusion, pattern) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                continue;
            }
            let mut p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            patterns.push(Pattern {
                tokens: compile(&p)?,
                text: p,
                exclusion,
            });
        }
        Ok(Ignore { patterns })
    }

    /// Adds `!path`: Docker keeps the Dockerfile and the `.dockerignore` in the context
    /// whatever the patterns say.
    pub fn keep(&mut self, path: &str) -> Result<(), PatternError> {
        let p = clean(path.trim_start_matches('/'));
        self.patterns.push(Pattern {
            tokens: compile(&p)?,
            text: p,
            exclusion: true,
        });
        Ok(())
    }

    /// Whether a path (relative to the context, `/`-separated) is left out.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path.trim_start_matches('/'));
        let mut excluded = false;
        for p in &self.patterns {
            // An exception only matters for what is excluded so far, and the reverse.
            if p.exclusion != excluded {
                continue;
            }
            if p.matches(&path) {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether any `!` exception exists: then an excluded directory must still be
    /// walked, since something below it may be re-included.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// The patterns as read (`!` for exceptions).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }
}

/// The ignore file Docker reads for a Dockerfile at `dockerfile` (its path relative to
/// the context): `<Dockerfile>.dockerignore` beside it when present, else
/// `.dockerignore` at the context's root. Returns the candidates in that order.
pub fn candidates(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !dockerfile.is_empty() && dockerfile != "-" {
        out.push(format!("{dockerfile}.dockerignore"));
    }
    out.push(".dockerignore".to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(s: &str) -> Ignore {
        Ignore::parse(s).unwrap()
    }

    #[test]
    fn reading() {
        let i = ig("\u{feff}# comment\n\n  node_modules  \n/abs/x\n./a/../b\n! keep\n!\n");
        assert_eq!(i.patterns(), vec!["node_modules", "abs/x", "b", "!keep"]);
    }

    #[test]
    fn plain_names_and_parents() {
        let i = ig("node_modules\n*.log\ntmp/*\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/x/y.js"));
        assert!(!i.is_excluded("src/node_modules"));
        assert!(i.is_excluded("a.log"));
        assert!(!i.is_excluded("logs/a.log"));
        assert!(i.is_excluded("tmp/a"));
        assert!(i.is_excluded("tmp/a/b"));
        assert!(!i.is_excluded("tmp"));
        assert!(!i.is_excluded("src/main.rs"));
    }

    #[test]
    fn double_star() {
        let i = ig("**/*.go\n");
        assert!(i.is_excluded("a.go"));
        assert!(i.is_excluded("x/y/a.go"));
        assert!(!i.is_excluded("x/y/a.rs"));
        let i = ig("a/**/b\n");
        assert!(i.is_excluded("a/b"));
        assert!(i.is_excluded("a/x/y/b"));
        assert!(!i.is_excluded("ab"));
        let i = ig("a/**\n");
        assert!(i.is_excluded("a/x"));
        assert!(i.is_excluded("a/x/y"));
        let i = ig("**\n!keep.txt\n");
        assert!(i.is_excluded("anything/at/all"));
        assert!(!i.is_excluded("keep.txt"));
    }

    #[test]
    fn exceptions_in_order() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        let i = ig("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
        let i = ig("docs\n!docs/keep\n");
        assert!(i.is_excluded("docs/a"));
        assert!(!i.is_excluded("docs/keep"));
        assert!(!i.is_excluded("docs/keep/inner"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn classes_questions_and_escapes() {
        let i = ig("file[0-9].txt\nx?z\n\\*lit\n[^a]b\n");
        assert!(i.is_excluded("file3.txt"));
        assert!(!i.is_excluded("filea.txt"));
        assert!(i.is_excluded("xyz"));
        assert!(!i.is_excluded("x/z"));
        assert!(i.is_excluded("*lit"));
        assert!(!i.is_excluded("alit"));
        assert!(i.is_excluded("cb"));
        assert!(!i.is_excluded("ab"));
        assert!(Ignore::parse("[abc\n").is_err());
        assert!(Ignore::parse("x\\\n").is_err());
    }

    #[test]
    fn kept_build_files() {
        let mut i = ig("*\n");
        i.keep("Dockerfile").unwrap();
        i.keep(".dockerignore").unwrap();
        assert!(!i.is_excluded("Dockerfile"));
        assert!(!i.is_excluded(".dockerignore"));
        assert!(i.is_excluded("src"));
    }

    #[test]
    fn candidate_files() {
        assert_eq!(
            candidates("build/app.Dockerfile"),
            vec!["build/app.Dockerfile.dockerignore", ".dockerignore"]
        );
        assert_eq!(candidates("-"), vec![".dockerignore"]);
    }
}
