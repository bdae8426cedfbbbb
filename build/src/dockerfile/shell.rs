//! Docker's word processing for Dockerfile arguments: single and double quotes, the
//! escape character, and `$name` / `${name}` / `${name:-word}` / `${name:+word}` /
//! `${name:?message}` substitution (and their colon-less forms, which test "set" rather
//! than "set and not empty"). An unset variable expands to nothing, as in Docker.

/// A failure to process a word, in Docker's wording where Docker has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(char),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// Where a variable's value comes from: the build's ARGs and ENVs at that step.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Lookup for [(String, String)] {
    /// The last definition wins, as with repeated ENV/ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Lookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

impl Lookup for std::collections::HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Processes one word: quotes removed, escapes applied, variables substituted.
pub fn process_word(word: &str, escape: char, env: &dyn Lookup) -> Result<String, ShellError> {
    let mut p = Processor::new(word, escape, env, false);
    p.run(None)?;
    Ok(p.words.finish().join(""))
}

/// Processes a word and splits the result at unquoted whitespace, including whitespace a
/// substitution brought in (as Docker's `ProcessWords` does).
pub fn process_words(
    word: &str,
    escape: char,
    env: &dyn Lookup,
) -> Result<Vec<String>, ShellError> {
    let mut p = Processor::new(word, escape, env, true);
    p.run(None)?;
    Ok(p.words.finish())
}

struct Words {
    split: bool,
    done: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn push(&mut self, c: char) {
        if self.split && c.is_whitespace() {
            self.end();
        } else {
            self.cur.push(c);
            self.in_word = true;
        }
    }
    fn push_raw(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }
    fn push_raw_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    fn end(&mut self) {
        if self.in_word {
            self.done.push(std::mem::take(&mut self.cur));
            self.in_word = false;
        }
    }
    fn finish(mut self) -> Vec<String> {
        if !self.split {
            return vec![self.cur];
        }
        self.end();
        self.done
    }
}

struct Processor<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Lookup,
    words: Words,
}

impl<'a> Processor<'a> {
    fn new(word: &str, escape: char, env: &'a dyn Lookup, split: bool) -> Self {
        Processor {
            chars: word.chars().collect(),
            pos: 0,
            escape,
            env,
            words: Words {
                split,
                done: Vec::new(),
                cur: String::new(),
                in_word: false,
            },
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end. Returns whether `stop` was found.
    fn run(&mut self, stop: Option<char>) -> Result<bool, ShellError> {
        while let Some(c) = self.next() {
            if Some(c) == stop {
                return Ok(true);
            }
            match c {
                '\'' => self.single_quote()?,
                '"' => self.double_quote()?,
                '$' => {
                    let value = self.dollar()?;
                    self.words.push_str(&value);
                }
                c if c == self.escape => {
                    if let Some(n) = self.next() {
                        self.words.push_raw(n);
                    }
                }
                c => self.words.push(c),
            }
        }
        Ok(false)
    }

    fn single_quote(&mut self) -> Result<(), ShellError> {
        self.words.in_word = true;
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedSingleQuote),
                Some('\'') => return Ok(()),
                Some(c) => self.words.push_raw(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<(), ShellError> {
        self.words.in_word = true;
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => return Ok(()),
                Some('$') => {
                    let value = self.dollar()?;
                    self.words.push_raw_str(&value);
                }
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        self.words.push_raw(n);
                    }
                    _ => self.words.push_raw(c),
                },
                Some(c) => self.words.push_raw(c),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(|c| c.is_ascii_digit()) {
                    name.push(c);
                    self.pos += 1;
                }
            }
            _ => {
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
                    name.push(c);
                    self.pos += 1;
                }
            }
        }
        name
    }

    /// After a `$`: the substituted value (a lone `$` stays itself).
    fn dollar(&mut self) -> Result<String, ShellError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.env.lookup(&name).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    fn braced(&mut self) -> Result<String, ShellError> {
        let name = self.name();
        if name.is_empty() {
            return match self.peek() {
                None => Err(ShellError::MissingBrace),
                Some(_) => Err(ShellError::BadSubstitution),
            };
        }
        let value = self.env.lookup(&name);
        let colon = match self.next() {
            None => return Err(ShellError::MissingBrace),
            Some('}') => return Ok(value.unwrap_or_default()),
            Some(':') => true,
            Some(c @ ('-' | '+' | '?')) => {
                self.pos -= 1;
                let _ = c;
                false
            }
            Some(c @ ('#' | '%' | '/')) => return Err(ShellError::UnsupportedModifier(c)),
            Some(_) => return Err(ShellError::BadSubstitution),
        };
        let op = match self.next() {
            Some(c @ ('-' | '+' | '?')) => c,
            Some(c) => return Err(ShellError::UnsupportedModifier(c)),
            None => return Err(ShellError::MissingBrace),
        };
        let word = self.sub_word()?;
        let present = match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        Ok(match op {
            '-' => {
                if present {
                    value.unwrap_or_default()
                } else {
                    word
                }
            }
            '+' => {
                if present {
                    word
                } else {
                    String::new()
                }
            }
            _ => {
                if present {
                    value.unwrap_or_default()
                } else {
                    let message = if word.is_empty() {
                        "is not allowed to be unset".to_string()
                    } else {
                        word
                    };
                    return Err(ShellError::Required { name, message });
                }
            }
        })
    }

    /// The word of a `${name:-word}` up to its `}`, itself processed.
    fn sub_word(&mut self) -> Result<String, ShellError> {
        let saved = std::mem::replace(
            &mut self.words,
            Words {
                split: false,
                done: Vec::new(),
                cur: String::new(),
                in_word: false,
            },
        );
        let found = self.run(Some('}'));
        let inner = std::mem::replace(&mut self.words, saved);
        if !found? {
            return Err(ShellError::MissingBrace);
        }
        Ok(inner.cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("a", "hello"),
            ("empty", ""),
            ("sp", "x  y"),
            ("PATH", "/usr/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn w(s: &str) -> String {
        process_word(s, '\\', &env()).unwrap()
    }

    #[test]
    fn plain_and_simple_substitution() {
        assert_eq!(w("abc"), "abc");
        assert_eq!(w("$a"), "hello");
        assert_eq!(w("${a}"), "hello");
        assert_eq!(w("x${a}y"), "xhelloy");
        assert_eq!(w("$a-1"), "hello-1");
        assert_eq!(w("$nope"), "");
        assert_eq!(w("/root/bin:$PATH"), "/root/bin:/usr/bin");
        assert_eq!(w("cost $"), "cost $");
        assert_eq!(w("$/x"), "$/x");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${nope:-def}"), "def");
        assert_eq!(w("${empty:-def}"), "def");
        assert_eq!(w("${empty-def}"), "");
        assert_eq!(w("${nope-def}"), "def");
        assert_eq!(w("${a:-def}"), "hello");
        assert_eq!(w("${a:+alt}"), "alt");
        assert_eq!(w("${empty:+alt}"), "");
        assert_eq!(w("${empty+alt}"), "alt");
        assert_eq!(w("${nope:+alt}"), "");
        assert_eq!(w("${nope:-$a}"), "hello");
        assert_eq!(w("${nope:-${a}!}"), "hello!");
        assert_eq!(w("${nope:-a b}"), "a b");
        assert_eq!(
            process_word("${nope:?must be set}", '\\', &env()),
            Err(ShellError::Required {
                name: "nope".into(),
                message: "must be set".into()
            })
        );
        assert_eq!(w("${a:?x}"), "hello");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$a'"), "$a");
        assert_eq!(w("\"$a\""), "hello");
        assert_eq!(w("\\$a"), "$a");
        assert_eq!(w("\"\\$a\""), "$a");
        assert_eq!(w("\"a\\\"b\""), "a\"b");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("its\\"), "its");
        assert_eq!(process_word("`$a", '`', &env()).unwrap(), "$a");
        assert_eq!(process_word("c:\\dir", '`', &env()).unwrap(), "c:\\dir");
    }

    #[test]
    fn errors() {
        let e = |s: &str| process_word(s, '\\', &env()).unwrap_err();
        assert_eq!(e("'abc"), ShellError::UnterminatedSingleQuote);
        assert_eq!(e("\"abc"), ShellError::UnterminatedDoubleQuote);
        assert_eq!(e("${a"), ShellError::MissingBrace);
        assert_eq!(e("${a:-x"), ShellError::MissingBrace);
        assert_eq!(e("${}"), ShellError::BadSubstitution);
        assert_eq!(e("${a#x}"), ShellError::UnsupportedModifier('#'));
        assert_eq!(
            e("${nope?}").to_string(),
            "nope: is not allowed to be unset"
        );
    }

    #[test]
    fn splitting() {
        let ws = |s: &str| process_words(s, '\\', &env()).unwrap();
        assert_eq!(ws("80 443/tcp"), vec!["80", "443/tcp"]);
        assert_eq!(ws("  a   b "), vec!["a", "b"]);
        assert_eq!(ws("$sp z"), vec!["x", "y", "z"]);
        assert_eq!(ws("\"$sp\" z"), vec!["x  y", "z"]);
        assert_eq!(ws("'a b' c\\ d"), vec!["a b", "c d"]);
        assert_eq!(ws("\"\" x"), vec!["", "x"]);
        assert!(ws("").is_empty());
    }
}
