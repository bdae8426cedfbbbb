//! `berth images` / `berth image ls`: docker's table, `-q`, `-a`, `--filter`,
//! `--format`, `--digests`, `--no-trunc`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::Output;
use crate::client::Client;
use crate::template::{align, Template};
use crate::units::{ago, human_size};

#[derive(Args)]
pub struct ImagesArgs {
    /// Only images matching `REPOSITORY[:TAG]`.
    pub reference: Option<String>,
    /// Show all images (berth keeps no intermediate images: same as without).
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (`dangling=true`, `label=k=v`,
    /// `reference=…`, `before=…`, `since=…`).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Docker's `filters` JSON from `key=value` flags.
pub fn filters_json(flags: &[String]) -> Result<Option<String>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(serde_json::to_string(&map)?))
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.trim_start_matches("sha256:").chars().take(12).collect()
    }
}

/// One row per tag (`<none>` for untagged images), as docker lists them.
fn rows(images: &[Value], no_trunc: bool) -> Vec<Value> {
    let now = std::time::SystemTime::now();
    let mut out = Vec::new();
    for img in images {
        let id = short_id(img["Id"].as_str().unwrap_or(""), no_trunc);
        let created = img["Created"].as_i64().unwrap_or(0);
        let digest_of = |repo: &str| {
            img["RepoDigests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find_map(|d| {
                    d.split_once('@')
                        .filter(|(r, _)| *r == repo)
                        .map(|(_, d)| d.to_string())
                })
                .unwrap_or_else(|| "<none>".into())
        };
        let row = |repo: &str, tag: &str, digest: String| {
            json!({
                "ID": id,
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": ago(created, now),
                "CreatedAt": created.to_string(),
                "Size": human_size(img["Size"].as_f64().unwrap_or(0.0), 3),
            })
        };
        let tags: Vec<&str> = img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // `<none>:<none>` and `<none>@<none>` stand for no reference at all.
        let tags: Vec<(&str, &str)> = tags
            .into_iter()
            .filter(|t| *t != "<none>:<none>")
            .map(|t| {
                t.rsplit_once(':')
                    .filter(|(_, t)| !t.contains('/'))
                    .unwrap_or((t, "<none>"))
            })
            .collect();
        // A repository known only by digest (pulled as name@sha256:…) is a row of its
        // own with tag <none>, as docker lists it.
        let digest_only: Vec<(&str, &str)> = img["RepoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|d| d.split_once('@'))
            .filter(|(repo, _)| *repo != "<none>" && !tags.iter().any(|(r, _)| r == repo))
            .collect();
        if tags.is_empty() && digest_only.is_empty() {
            out.push(row("<none>", "<none>", "<none>".into()));
        }
        for (repo, digest) in digest_only {
            out.push(row(repo, "<none>", digest.to_string()));
        }
        for (repo, tag) in tags {
            out.push(row(repo, tag, digest_of(repo)));
        }
    }
    out
}

pub async fn run(client: &Client, args: &ImagesArgs) -> Result<Output> {
    let mut filters = args.filter.clone();
    if let Some(r) = &args.reference {
        filters.push(format!("reference={r}"));
    }
    let mut path = String::from("/images/json");
    if let Some(f) = filters_json(&filters)? {
        path.push_str(&format!("?filters={}", super::image_http::q(&f)));
    }
    let list = client.get_json(&path).await?;
    let images = list.as_array().cloned().unwrap_or_default();
    if args.quiet {
        let mut seen = Vec::new();
        for img in &images {
            let id = short_id(img["Id"].as_str().unwrap_or(""), args.no_trunc);
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        return Ok(Output::text(
            seen.iter().map(|i| format!("{i}\n")).collect(),
        ));
    }
    let rows = rows(&images, args.no_trunc);
    let format = match &args.format {
        Some(f) => f.clone(),
        None if args.digests => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .into()
        }
        None => "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into(),
    };
    let template = Template::parse(&format)?;
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.header(&|f| match f {
            "ID" => Some("IMAGE ID".into()),
            "CreatedSince" => Some("CREATED".into()),
            "CreatedAt" => Some("CREATED AT".into()),
            _ => None,
        }));
    }
    for row in &rows {
        lines.push(template.render(row)?);
    }
    let text = if template.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    Ok(Output::text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_images_are_none_rows() {
        let imgs = vec![
            json!({"Id": format!("sha256:{}", "a".repeat(64)), "RepoTags": [], "Created": 0, "Size": 10}),
        ];
        let r = rows(&imgs, false);
        assert_eq!(r[0]["Repository"], "<none>");
        assert_eq!(r[0]["ID"], "aaaaaaaaaaaa");
    }

    #[test]
    fn images_known_by_digest_alone_are_repo_none_rows() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let imgs = vec![
            json!({"Id": format!("sha256:{}", "a".repeat(64)), "RepoTags": ["<none>:<none>"],
                   "RepoDigests": [format!("reg:5000/busybox@{digest}")], "Created": 0, "Size": 10}),
            json!({"Id": format!("sha256:{}", "c".repeat(64)), "RepoTags": ["reg:5000/app:v1"],
                   "RepoDigests": [format!("reg:5000/app@{digest}")], "Created": 0, "Size": 10}),
            json!({"Id": format!("sha256:{}", "d".repeat(64)), "RepoTags": ["<none>:<none>"],
                   "RepoDigests": ["<none>@<none>"], "Created": 0, "Size": 10}),
        ];
        let r = rows(&imgs, false);
        let cols: Vec<(String, String, String)> = r
            .iter()
            .map(|row| {
                let s = |k: &str| row[k].as_str().unwrap_or("").to_string();
                (s("Repository"), s("Tag"), s("Digest"))
            })
            .collect();
        assert_eq!(
            cols,
            [
                ("reg:5000/busybox".into(), "<none>".into(), digest.clone()),
                ("reg:5000/app".into(), "v1".into(), digest),
                ("<none>".into(), "<none>".into(), "<none>".into()),
            ]
        );
    }
}
