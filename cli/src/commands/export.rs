//! `berth export [-o FILE] CONTAINER` and `berth diff CONTAINER`.

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::Method;

use super::image_http::{copy_to, json, q, send, Call};
use super::Output;

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    pub container: String,
}

pub async fn export(host: &str, args: &ExportArgs) -> Result<Output> {
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = send(
        host,
        Call {
            method: Method::GET,
            path: format!("/containers/{}/export", q(&args.container)),
            headers: vec![],
            body: None,
        },
    )
    .await?;
    match &args.output {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?;
            if let Err(e) = copy_to(resp, &mut f).await {
                let _ = std::fs::remove_file(p);
                return Err(e);
            }
        }
        None => {
            copy_to(resp, &mut std::io::stdout().lock()).await?;
        }
    }
    Ok(Output::text(String::new()))
}

pub async fn diff(host: &str, container: &str) -> Result<Output> {
    let resp = send(
        host,
        Call {
            method: Method::GET,
            path: format!("/containers/{}/changes", q(container)),
            headers: vec![],
            body: None,
        },
    )
    .await?;
    let list = json(resp).await?;
    let mut out = String::new();
    for c in list.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        out.push_str(&format!("{kind} {}\n", c["Path"].as_str().unwrap_or("")));
    }
    Ok(Output::text(out))
}
