//! `berth save`, `berth load` and `berth import`.

use std::io::Read;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;

use super::image_http::{copy_to, messages, q, send, Call};
use super::Output;

#[derive(Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A root filesystem tarball (plain, gzip or zstd), or `-` for STDIN.
    pub file: String,
    /// `REPOSITORY[:TAG]` of the new image.
    pub reference: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR,
    /// USER, LABEL).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
}

fn read_input(path: Option<&std::path::Path>) -> Result<Bytes> {
    let mut buf = Vec::new();
    match path {
        Some(p) if p != std::path::Path::new("-") => {
            std::fs::File::open(p)
                .with_context(|| format!("open {}", p.display()))?
                .read_to_end(&mut buf)?;
        }
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                bail!("requested load from stdin, but stdin is empty");
            }
            std::io::stdin().read_to_end(&mut buf)?;
        }
    }
    Ok(Bytes::from(buf))
}

pub async fn save(host: &str, args: &SaveArgs) -> Result<Output> {
    let names: Vec<String> = args
        .images
        .iter()
        .map(|n| format!("names={}", q(n)))
        .collect();
    let path = format!("/images/get?{}", names.join("&"));
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = send(
        host,
        Call {
            method: Method::GET,
            path,
            headers: vec![],
            body: None,
        },
    )
    .await?;
    match &args.output {
        Some(p) => {
            let tmp = p.with_extension("partial");
            let mut f =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let result = copy_to(resp, &mut f).await;
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
        }
        None => {
            copy_to(resp, &mut std::io::stdout().lock()).await?;
        }
    }
    Ok(Output::text(String::new()))
}

pub async fn load(host: &str, args: &LoadArgs) -> Result<Output> {
    let body = read_input(args.input.as_deref())?;
    let path = format!("/images/load?quiet={}", args.quiet as u8);
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path,
            headers: vec![],
            body: Some(("application/x-tar", body)),
        },
    )
    .await?;
    let mut out = String::new();
    messages(resp, |m| {
        if let Some(s) = m["stream"].as_str() {
            out.push_str(s);
        }
    })
    .await?;
    Ok(Output::text(out))
}

pub async fn import(host: &str, args: &ImportArgs) -> Result<Output> {
    let body = read_input(Some(std::path::Path::new(&args.file)))?;
    let (repo, tag) = match &args.reference {
        Some(r) => match r.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (r.clone(), "latest".to_string()),
        },
        None => bail!("berth import needs a REPOSITORY[:TAG] for the new image"),
    };
    let mut path = format!("/images/create?fromSrc=-&repo={}&tag={}", q(&repo), q(&tag));
    for c in &args.change {
        path.push_str(&format!("&changes={}", q(c)));
    }
    if let Some(m) = &args.message {
        path.push_str(&format!("&message={}", q(m)));
    }
    if let Some(p) = &args.platform {
        path.push_str(&format!("&platform={}", q(p)));
    }
    let resp = send(
        host,
        Call {
            method: Method::POST,
            path,
            headers: vec![],
            body: Some(("application/x-tar", body)),
        },
    )
    .await?;
    let mut out = String::new();
    messages(resp, |m| {
        if let Some(s) = m["status"].as_str() {
            out.push_str(s);
            out.push('\n');
        }
    })
    .await?;
    Ok(Output::text(out))
}
