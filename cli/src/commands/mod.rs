//! One module per command; each returns what to print and whether it failed.

pub mod archive;
pub mod attach;
pub mod build;
pub mod container;
pub mod cp;
mod cp_xattrs;
pub mod credentials;
pub mod events;
pub mod exec;
pub mod export;
pub mod hijack;
pub mod image_http;
pub mod image_inspect;
pub mod images;
pub mod info;
pub mod inspect;
pub mod login;
pub mod network;
pub mod ps;
pub mod pull;
pub mod run;
pub mod stats;
pub mod stream;
pub mod system;
pub mod tag;
pub mod update;
pub mod version;
pub mod volume;

/// What a command prints, and the error that makes it exit non-zero after printing.
pub struct Output {
    pub stdout: String,
    pub error: Option<anyhow::Error>,
    /// The exit code, when not 0 / 1 (`run` exits with the container's code).
    pub code: Option<u8>,
}

impl Output {
    pub fn text(stdout: String) -> Output {
        Output {
            stdout,
            error: None,
            code: None,
        }
    }

    pub fn failing(mut self, error: anyhow::Error) -> Output {
        self.error = Some(error);
        self
    }

    /// Exits with `code` after printing.
    pub fn with_code(mut self, code: u8) -> Output {
        self.code = Some(code);
        self
    }

    /// Fails with `errors`, one per line, after printing; unchanged when there are none
    /// (commands that act on several objects go on past one that fails, as docker's).
    pub fn failing_with(self, errors: Vec<String>) -> Output {
        if errors.is_empty() {
            self
        } else {
            self.failing(anyhow::anyhow!(errors.join("\n")))
        }
    }
}

/// Runs `one` for each name, printing the line each one that worked returns.
pub async fn each<F, Fut>(names: &[String], mut one: F) -> anyhow::Result<Output>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<String>>>,
{
    let mut out = String::new();
    let mut errors = Vec::new();
    for n in names {
        match one(n.clone()).await {
            Ok(Some(line)) => {
                out.push_str(&line);
                out.push('\n');
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    Ok(Output::text(out).failing_with(errors))
}

/// A prune's list of what it removed, as docker prints it: `title` and one name per
/// line, nothing when `names` (a JSON array or null) is empty.
pub fn deleted_list(title: &str, names: &serde_json::Value) -> String {
    let names = names.as_array().map(Vec::as_slice).unwrap_or_default();
    if names.is_empty() {
        return String::new();
    }
    let mut out = format!("{title}:\n");
    for n in names {
        out.push_str(n.as_str().unwrap_or(""));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_lists_and_errors_read_as_dockers() {
        assert_eq!(
            deleted_list("Deleted Volumes", &serde_json::json!(null)),
            ""
        );
        assert_eq!(deleted_list("Deleted Volumes", &serde_json::json!([])), "");
        assert_eq!(
            deleted_list("Deleted Networks", &serde_json::json!(["a", "b"])),
            "Deleted Networks:\na\nb\n"
        );
        assert!(Output::text("x\n".into())
            .failing_with(vec![])
            .error
            .is_none());
        let out = Output::text("x\n".into()).failing_with(vec!["one".into(), "two".into()]);
        assert_eq!(out.stdout, "x\n");
        assert_eq!(
            out.error.map(|e| e.to_string()).as_deref(),
            Some("one\ntwo")
        );
    }
}
