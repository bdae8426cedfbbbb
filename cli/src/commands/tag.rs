//! `berth tag`, `berth rmi` and `berth image prune`.

use anyhow::{bail, Result};
use clap::Args;
use hyper::Method;

use super::image_http::{check, json, path_name, q, send, Call};
use super::images::filters_json;
use super::Output;
use crate::units::human_size;

#[derive(Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents.
    #[arg(long)]
    pub no_prune: bool,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. `until=24h`, `label=k=v`).
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

pub async fn tag(host: &str, args: &TagArgs) -> Result<Output> {
    let (repo, tag) = match args.target.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (args.target.as_str(), "latest"),
    };
    let path = format!(
        "/images/{}/tag?repo={}&tag={}",
        path_name(&args.source),
        q(repo),
        q(tag)
    );
    check(
        send(
            host,
            Call {
                method: Method::POST,
                path,
                headers: vec![],
                body: None,
            },
        )
        .await?,
    )
    .await?;
    Ok(Output::text(String::new()))
}

pub async fn rmi(host: &str, args: &RmiArgs) -> Result<Output> {
    let mut out = String::new();
    let mut errors = Vec::new();
    for image in &args.images {
        let path = format!(
            "/images/{}?force={}&noprune={}",
            path_name(image),
            args.force,
            args.no_prune
        );
        let resp = send(
            host,
            Call {
                method: Method::DELETE,
                path,
                headers: vec![],
                body: None,
            },
        )
        .await?;
        match json(resp).await {
            Ok(items) => {
                for item in items.as_array().into_iter().flatten() {
                    if let Some(t) = item["Untagged"].as_str() {
                        out.push_str(&format!("Untagged: {t}\n"));
                    }
                    if let Some(d) = item["Deleted"].as_str() {
                        out.push_str(&format!("Deleted: {d}\n"));
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok(Output::text(out).failing_with(errors))
}

pub async fn prune(host: &str, args: &PruneArgs) -> Result<Output> {
    if !args.force {
        bail!("berth image prune removes images without asking: pass -f/--force to confirm");
    }
    let mut filters = args.filter.clone();
    if args.all {
        filters.push("dangling=false".into());
    }
    let mut path = String::from("/images/prune");
    if let Some(f) = filters_json(&filters)? {
        path.push_str(&format!("?filters={}", q(&f)));
    }
    let v = json(
        send(
            host,
            Call {
                method: Method::POST,
                path,
                headers: vec![],
                body: None,
            },
        )
        .await?,
    )
    .await?;
    let mut out = String::new();
    let items = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !items.is_empty() {
        out.push_str("Deleted Images:\n");
        for item in &items {
            for (k, label) in [("Untagged", "untagged"), ("Deleted", "deleted")] {
                if let Some(x) = item[k].as_str() {
                    out.push_str(&format!("{label}: {x}\n"));
                }
            }
        }
        out.push('\n');
    }
    let reclaimed = v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed, 4)
    ));
    Ok(Output::text(out))
}
