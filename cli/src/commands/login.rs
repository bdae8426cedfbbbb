//! `berth login` (checked by the daemon against the registry, then stored) and
//! `berth logout`.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::json;

use super::credentials;
use super::image_http::{json as read_json, send, Call};
use super::Output;

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host (`host[:port]`); Docker Hub when omitted.
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    pub server: Option<String>,
}

fn registry(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    match s.split('/').next().unwrap_or("") {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

pub async fn login(host: &str, args: &LoginArgs) -> Result<Output> {
    let registry = registry(args.server.as_deref());
    let Some(username) = args.username.clone() else {
        bail!("berth login needs --username (interactive prompts are not supported)");
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            bail!("berth login needs --password or --password-stdin")
        }
        (None, false) => bail!("berth login needs --password or --password-stdin"),
    };
    let doc = json!({
        "username": username,
        "password": password,
        "serveraddress": credentials::auth_key(&registry),
    });
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path: "/auth".into(),
            headers: vec![],
            body: Some(("application/json", Bytes::from(doc.to_string()))),
        },
    )
    .await?;
    let answer = read_json(resp).await?;
    let path = credentials::store(&registry, &username, &password)?;
    let mut out = String::new();
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    out.push_str(&format!(
        "WARNING! Your password will be stored unencrypted in {}.\n\n",
        path.display()
    ));
    out.push_str(answer["Status"].as_str().unwrap_or("Login Succeeded"));
    out.push('\n');
    Ok(Output::text(out))
}

pub async fn logout(args: &LogoutArgs) -> Result<Output> {
    let registry = registry(args.server.as_deref());
    let key = credentials::auth_key(&registry);
    Ok(Output::text(if credentials::erase(&registry)? {
        format!("Removing login credentials for {key}\n")
    } else {
        format!("Not logged in to {key}\n")
    }))
}
