//! `berth pull` and `berth push`: docker's per-layer progress lines (redrawn in place
//! on a terminal, one line per status change otherwise).

use std::io::{IsTerminal, Write};

use anyhow::Result;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use super::credentials;
use super::image_http::{messages, path_name, q, send, Call};
use super::Output;

#[derive(Args)]
pub struct PullArgs {
    /// Image to pull (`name[:tag|@digest]`).
    pub image: String,
    /// Set platform if server is multi-platform capable (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// Image to push (`name[:tag]`).
    pub image: String,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Prints progress messages as docker does.
pub struct Progress {
    tty: bool,
    quiet: bool,
    /// `run` and `create` print a pull's progress on stderr, stdout being the id's.
    stderr: bool,
    /// Layer ids in first-seen order and their current line (terminal mode).
    lines: Vec<(String, String)>,
    drawn: usize,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            tty: std::io::stdout().is_terminal(),
            quiet,
            stderr: false,
            lines: Vec::new(),
            drawn: 0,
        }
    }

    /// Progress on stderr.
    pub fn on_stderr() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            stderr: true,
            ..Progress::new(false)
        }
    }

    pub fn show(&mut self, m: &Value) {
        if self.quiet {
            return;
        }
        let status = m["status"].as_str().unwrap_or("");
        let mut out: Box<dyn Write> = if self.stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        let Some(id) = m["id"].as_str() else {
            if !status.is_empty() {
                let _ = writeln!(out, "{status}");
                self.lines.clear();
                self.drawn = 0;
            }
            return;
        };
        let progress = m["progress"].as_str().unwrap_or("");
        if !self.tty {
            // Plain output: status changes only, no bars.
            if progress.is_empty() {
                let _ = writeln!(out, "{id}: {status}");
            }
            return;
        }
        let line = format!("{id}: {status} {progress}").trim_end().to_string();
        match self.lines.iter_mut().find(|(i, _)| i == id) {
            Some(entry) => entry.1 = line,
            None => self.lines.push((id.to_string(), line)),
        }
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for (_, l) in &self.lines {
            let _ = writeln!(out, "\x1b[2K{l}");
        }
        self.drawn = self.lines.len();
        let _ = out.flush();
    }
}

fn split_tag(image: &str) -> (&str, Option<&str>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, Some(digest));
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    }
}

/// `name:tag` (`:latest` when no tag is given) or `name@digest`.
pub fn with_tag(image: &str) -> String {
    let (name, tag) = split_tag(image);
    match tag {
        Some(t) if t.starts_with("sha256:") => format!("{name}@{t}"),
        Some(t) => format!("{name}:{t}"),
        None => format!("{name}:latest"),
    }
}

/// Pulls `image` through the daemon, showing its progress on `progress`.
pub async fn pull_image(
    host: &str,
    image: &str,
    platform: Option<&str>,
    progress: &mut Progress,
) -> Result<()> {
    let (name, tag) = split_tag(image);
    let mut path = format!(
        "/images/create?fromImage={}&tag={}",
        q(name),
        q(tag.unwrap_or("latest"))
    );
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", q(p)));
    }
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path,
            headers: credentials::header_for(image)?,
            body: None,
        },
    )
    .await?;
    messages(resp, |m| progress.show(m)).await?;
    Ok(())
}

pub async fn pull(host: &str, args: &PullArgs) -> Result<Output> {
    if split_tag(&args.image).1.is_none() && !args.quiet {
        println!("Using default tag: latest");
    }
    let mut progress = Progress::new(args.quiet);
    pull_image(host, &args.image, args.platform.as_deref(), &mut progress).await?;
    let full = with_tag(&args.image);
    Ok(Output::text(if args.quiet {
        full
    } else {
        with_registry(&full)
    }))
}

/// The fully qualified name docker prints after a pull.
fn with_registry(name: &str) -> String {
    if credentials::registry_of(name) != "docker.io" {
        return name.to_string();
    }
    if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

pub async fn push(host: &str, args: &PushArgs) -> Result<Output> {
    let (name, tag) = split_tag(&args.image);
    let mut path = format!("/images/{}/push", path_name(name));
    if let Some(t) = tag {
        path.push_str(&format!("?tag={}", q(t)));
    }
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path,
            headers: credentials::header_for(&args.image)?,
            body: None,
        },
    )
    .await?;
    let mut progress = Progress::new(args.quiet);
    messages(resp, |m| progress.show(m)).await?;
    Ok(Output::text(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_off_names() {
        assert_eq!(split_tag("busybox"), ("busybox", None));
        assert_eq!(split_tag("busybox:1"), ("busybox", Some("1")));
        assert_eq!(split_tag("127.0.0.1:5000/a"), ("127.0.0.1:5000/a", None));
        assert_eq!(
            split_tag("127.0.0.1:5000/a:t"),
            ("127.0.0.1:5000/a", Some("t"))
        );
        assert_eq!(split_tag("a@sha256:ab"), ("a", Some("sha256:ab")));
    }
}
