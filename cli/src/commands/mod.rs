//! One module per command; each returns what to print and whether it failed.

pub mod archive;
pub mod credentials;
pub mod image_http;
pub mod image_inspect;
pub mod images;
pub mod info;
pub mod login;
pub mod pull;
pub mod tag;
pub mod version;

/// What a command prints, and the error that makes it exit non-zero after printing.
pub struct Output {
    pub stdout: String,
    pub error: Option<anyhow::Error>,
}

impl Output {
    pub fn text(stdout: String) -> Output {
        Output {
            stdout,
            error: None,
        }
    }

    pub fn failing(mut self, error: anyhow::Error) -> Output {
        self.error = Some(error);
        self
    }
}
