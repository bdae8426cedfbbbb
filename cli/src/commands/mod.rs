//! One module per command; each returns what to print and whether it failed.

pub mod archive;
pub mod attach;
pub mod build;
pub mod container;
pub mod cp;
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
}
