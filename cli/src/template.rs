//! The part of Go's text/template that docker's `--format` users write:
//! `{{.Field.Sub}}`, `{{json .}}`, `{{json .Field}}`, `{{upper .X}}`, `{{lower .X}}`,
//! `{{title .X}}`, `{{println .X}}`, literal text, and a leading `table` for aligned
//! columns with headers. `\t` and `\n` written literally are turned into tab and newline,
//! as docker does. Anything else is a clear error, never a silent misprint.

use serde_json::Value;

/// Errors parsing or executing a template.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("template parsing error: unclosed action in {0:?}")]
    Unclosed(String),
    #[error("template: function {0:?} is not supported (berth knows json, upper, lower, title, println)")]
    UnknownFunction(String),
    #[error("template: can't evaluate field {field} (no such field in {path})")]
    NoField { field: String, path: String },
    #[error("template: bad action {0:?}: expected .Field or a function applied to one")]
    BadAction(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action {
        func: Option<String>,
        path: Vec<String>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// `table` formats print a header row and align columns.
    pub table: bool,
}

impl Template {
    pub fn parse(format: &str) -> Result<Template, TemplateError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => (true, rest.trim_start()),
            _ => (false, format),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(format.to_string()))?;
            pieces.push(parse_action(
                after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace()),
            )?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces, table })
    }

    /// Renders the template for one value.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Action { func, path } => {
                    let value = lookup(data, path)?;
                    out.push_str(&apply(func.as_deref(), value));
                }
            }
        }
        Ok(out)
    }

    /// The header row of a `table` format: each field's name in upper snake case,
    /// or the caller's name for it (docker prints `CONTAINER ID` for `.ID`).
    pub fn header(&self, names: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Action { path, .. } => {
                    let field = path.join(".");
                    out.push_str(&names(&field).unwrap_or_else(|| upper_snake(&field)));
                }
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Piece, TemplateError> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let (func, arg) = match words.as_slice() {
        [arg] => (None, *arg),
        [func, arg] => (Some(func.to_string()), *arg),
        _ => return Err(TemplateError::BadAction(action.to_string())),
    };
    if let Some(func) = &func {
        if !["json", "upper", "lower", "title", "println"].contains(&func.as_str()) {
            return Err(TemplateError::UnknownFunction(func.clone()));
        }
    }
    let path = match arg {
        "." => Vec::new(),
        _ if arg.starts_with('.') => arg[1..].split('.').map(str::to_string).collect(),
        _ => return Err(TemplateError::BadAction(action.to_string())),
    };
    Ok(Piece::Action { func, path })
}

fn lookup<'a>(data: &'a Value, path: &[String]) -> Result<&'a Value, TemplateError> {
    let mut value = data;
    for (i, field) in path.iter().enumerate() {
        value = value.get(field).ok_or_else(|| TemplateError::NoField {
            field: field.clone(),
            path: if i == 0 {
                ".".to_string()
            } else {
                format!(".{}", path[..i].join("."))
            },
        })?;
    }
    Ok(value)
}

fn apply(func: Option<&str>, value: &Value) -> String {
    match func {
        Some("json") => value.to_string(),
        Some("upper") => plain(value).to_uppercase(),
        Some("lower") => plain(value).to_lowercase(),
        Some("title") => {
            let text = plain(value);
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        Some("println") => format!("{}\n", plain(value)),
        _ => plain(value),
    }
}

/// A value as Go's template prints it: strings bare, maps as `map[k:v]`, lists as `[a b]`.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(plain).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

fn upper_snake(field: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = field.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if i > 0 && c.is_uppercase() && (prev_lower || next_lower) && chars[i - 1] != '.' {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Aligns tab-separated rows (each may hold several lines) into columns exactly as
/// docker's table writer does (see [`crate::tabwriter`]).
pub fn align(rows: &[String]) -> String {
    align_with(rows, crate::tabwriter::DOCKER_TABLE)
}

/// [`align`] with other writer settings (`top` uses a wider minimum).
pub fn align_with(rows: &[String], settings: crate::tabwriter::Settings) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    crate::tabwriter::format(&text, settings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(format: &str, data: &Value) -> Result<String, TemplateError> {
        Template::parse(format)?.render(data)
    }

    #[test]
    fn fields_functions_and_escapes() {
        let data =
            json!({"Server": {"APIVersion": "1.41", "Os": "linux"}, "Names": ["a", "b"], "N": 3});
        assert_eq!(render("{{.Server.APIVersion}}", &data), Ok("1.41".into()));
        assert_eq!(
            render("{{ .Server.Os }}/{{.N}}", &data),
            Ok("linux/3".into())
        );
        assert_eq!(
            render("{{json .Server}}", &data),
            Ok(r#"{"APIVersion":"1.41","Os":"linux"}"#.into())
        );
        assert_eq!(
            render("{{upper .Server.Os}}\\t{{.Names}}", &data),
            Ok("LINUX\t[a b]".into())
        );
        assert_eq!(render("{{title .Server.Os}}", &data), Ok("Linux".into()));
    }

    #[test]
    fn errors_name_the_problem() {
        let data = json!({"A": {"B": 1}});
        assert_eq!(
            render("{{.A.C}}", &data),
            Err(TemplateError::NoField {
                field: "C".into(),
                path: ".A".into()
            })
        );
        assert_eq!(
            Template::parse("{{range .A}}").err(),
            Some(TemplateError::UnknownFunction("range".into()))
        );
        assert!(matches!(
            Template::parse("{{.A"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{{A}}"),
            Err(TemplateError::BadAction(_))
        ));
    }

    #[test]
    fn tables_have_headers_and_aligned_columns() -> Result<(), TemplateError> {
        let t = Template::parse("table {{.ID}}\\t{{.Image}}\\t{{.RunningFor}}")?;
        assert!(t.table);
        let header = t.header(&|f| (f == "ID").then(|| "CONTAINER ID".to_string()));
        assert_eq!(header, "CONTAINER ID\tIMAGE\tRUNNING FOR");
        let rows = vec![
            header,
            t.render(&json!({"ID": "abc", "Image": "busybox", "RunningFor": "2s"}))?,
        ];
        assert_eq!(
            align(&rows),
            "CONTAINER ID   IMAGE     RUNNING FOR\nabc            busybox   2s\n"
        );
        Ok(())
    }
}
