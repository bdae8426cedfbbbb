//! From a Dockerfile's text to logical lines: parser directives at the top (`syntax`,
//! `escape`, `check`), comments, empty lines, line continuations with the escape
//! character, and the heredoc bodies that follow a RUN, COPY or ADD line.

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=...`: noted; berth has its own front end and fetches none.
    pub syntax: Option<String>,
    /// `# escape=` (`\` or `` ` ``), `\` by default.
    pub escape: char,
    /// `# check=...`: noted as given.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A here-document of a RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body, each line with its newline, leading tabs removed for `<<-`.
    pub content: String,
    /// Whether the body is subject to variable substitution (unquoted delimiter).
    pub expand: bool,
    /// `<<-`.
    pub chomp: bool,
    /// A file descriptor written before `<<` (`3<<EOF`).
    pub fd: Option<u32>,
}

/// One instruction's text as written: its lines joined, comments and continuations gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    /// 1-based line of its first line.
    pub start: usize,
    /// 1-based line of its last line (the end of the last heredoc, if any).
    pub end: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

/// A failure at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The line without its continuation character (and the blanks after it), or None when
/// it does not continue.
fn continued(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    trimmed.strip_suffix(escape)
}

/// Whether an instruction keyword takes heredocs.
fn heredocs_allowed(keyword: &str) -> bool {
    matches!(
        keyword.to_ascii_lowercase().as_str(),
        "run" | "copy" | "add"
    )
}

/// Splits the arguments of a line into words as written (quotes and escapes kept),
/// to find heredoc markers among them.
pub(crate) fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The heredoc markers of a line's arguments, in order: (fd, chomp, name, expand).
fn heredoc_markers(args: &str, escape: char) -> Vec<(Option<u32>, bool, String, bool)> {
    let trimmed = args.trim_start();
    if trimmed.starts_with('[') && serde_json::from_str::<Vec<String>>(trimmed.trim()).is_ok() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for word in raw_words(args, escape) {
        let digits = word.chars().take_while(|c| c.is_ascii_digit()).count();
        let Some(rest) = word[digits..].strip_prefix("<<") else {
            continue;
        };
        let fd = word[..digits].parse().ok();
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.is_empty() || rest.starts_with('<') {
            continue;
        }
        let (name, expand) = match (rest.chars().next(), rest.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(l)) if rest.len() >= 2 && l == q => {
                (rest[1..rest.len() - 1].to_string(), false)
            }
            _ => (rest.to_string(), true),
        };
        if name.is_empty() {
            continue;
        }
        out.push((fd, chomp, name, expand));
    }
    out
}

/// Splits a Dockerfile's text into its directives and logical lines.
pub fn split(text: &str) -> Result<(Directives, Vec<LogicalLine>), LineError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut directives = Directives::default();
    let mut i = 0;
    let mut seen: Vec<String> = Vec::new();
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        if matches!(key.as_str(), "syntax" | "escape" | "check") {
            if seen.contains(&key) {
                return Err(LineError {
                    line: i + 1,
                    message: format!("only one {key} parser directive can be used"),
                });
            }
            seen.push(key.clone());
        }
        match key.as_str() {
            "syntax" => directives.syntax = Some(value),
            "check" => directives.check = Some(value),
            "escape" => {
                directives.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(LineError {
                            line: i + 1,
                            message: format!(
                                "invalid escape token '{value}' does not match ` or \\"
                            ),
                        })
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let escape = directives.escape;
    let mut out = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || is_comment(line) {
            continue;
        }
        let start = i;
        let mut text = String::new();
        let mut cur = line.trim_start();
        loop {
            match continued(cur, escape) {
                None => {
                    text.push_str(cur);
                    break;
                }
                Some(head) => {
                    text.push_str(head);
                    // The next line that is neither empty nor a comment continues it.
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        if l.trim().is_empty() || is_comment(l) {
                            continue;
                        }
                        next = Some(l);
                        break;
                    }
                    match next {
                        Some(l) => cur = l,
                        None => break,
                    }
                }
            }
        }
        let text = text.trim_end().to_string();
        let mut heredocs = Vec::new();
        let (keyword, args) = text
            .split_once(char::is_whitespace)
            .unwrap_or((text.as_str(), ""));
        if heredocs_allowed(keyword) {
            for (fd, chomp, name, expand) in heredoc_markers(args, escape) {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if chomp { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !terminated {
                    return Err(LineError {
                        line: start,
                        message: format!("unterminated heredoc {name:?}"),
                    });
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    chomp,
                    fd,
                });
            }
        }
        out.push(LogicalLine {
            start,
            end: i.max(start),
            text,
            heredocs,
        });
    }
    Ok((directives, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(usize, String)> {
        split(s)
            .unwrap()
            .1
            .into_iter()
            .map(|l| (l.start, l.text))
            .collect()
    }

    #[test]
    fn directives_at_the_top_only() {
        let (d, lines) =
            split("# syntax=docker/dockerfile:1\n#escape=`\n# check=skip=all\nFROM x\n").unwrap();
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.escape, '`');
        assert_eq!(d.check.as_deref(), Some("skip=all"));
        assert_eq!(lines.len(), 1);
        let (d, _) = split("FROM x\n# escape=`\n").unwrap();
        assert_eq!(d.escape, '\\');
        let (d, _) = split("# a comment\n# escape=`\nFROM x").unwrap();
        assert_eq!(d.escape, '\\');
        let (d, _) = split("\n# escape=`\nFROM x").unwrap();
        assert_eq!(d.escape, '\\');
        // Unknown directives are comments and do not end the directives.
        let (d, _) = split("# foo=bar\n# ESCAPE = `\nFROM x").unwrap();
        assert_eq!(d.escape, '`');
    }

    #[test]
    fn directive_errors() {
        let e = split("# escape=x\nFROM a").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
        let e = split("# escape=`\n# escape=\\\nFROM a").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "only one escape parser directive can be used");
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        let t =
            texts("FROM a\n\n  # comment\nRUN echo a \\\n    b \\\n# inside\n\n  c\nRUN x \\  \n");
        assert_eq!(
            t,
            vec![
                (1, "FROM a".to_string()),
                (4, "RUN echo a     b   c".to_string()),
                (9, "RUN x".to_string()),
            ]
        );
        let t = texts("# escape=`\nRUN dir c:\\ `\n  d:\\\n");
        assert_eq!(t, vec![(2, "RUN dir c:\\   d:\\".to_string())]);
        let t = texts("FROM a\r\nRUN b\r\n");
        assert_eq!(t[1], (2, "RUN b".to_string()));
    }

    #[test]
    fn heredocs() {
        let (_, l) = split(
            "FROM a\nRUN <<EOF\necho $HOME\n# not a comment\nEOF\nCOPY <<-\"A\" 3<<'B' /dst/\n\tx\n\tA\ny\nB\nRUN cat<<EOF\n",
        )
        .unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[1].start, 2);
        assert_eq!(l[1].end, 5);
        assert_eq!(
            l[1].heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo $HOME\n# not a comment\n".into(),
                expand: true,
                chomp: false,
                fd: None
            }]
        );
        assert_eq!(l[2].heredocs.len(), 2);
        assert_eq!(l[2].heredocs[0].content, "x\n");
        assert!(l[2].heredocs[0].chomp && !l[2].heredocs[0].expand);
        assert_eq!(l[2].heredocs[1].fd, Some(3));
        assert_eq!(l[2].heredocs[1].content, "y\n");
        assert!(l[3].heredocs.is_empty());
        assert_eq!(l[3].start, 11);
    }

    #[test]
    fn heredoc_not_in_other_instructions_or_json() {
        let (_, l) = split("CMD <<EOF\nRUN [\"a\", \"<<EOF\"]\n").unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l.heredocs.is_empty()));
        let (_, l) = split("RUN cat <<<word\n").unwrap();
        assert!(l[0].heredocs.is_empty());
    }

    #[test]
    fn unterminated_heredoc() {
        let e = split("FROM a\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "unterminated heredoc \"EOF\"");
    }
}
