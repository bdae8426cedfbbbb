//! `berth system df [-v] [--format]` and `berth system prune [-a] [--volumes]
//! [--filter] -f`, as docker's: the summary's figures are computed from `GET
//! /system/df` the way docker's CLI computes them; prune calls the containers',
//! networks', volumes' (with `--volumes`) and images' prunes and adds up what they
//! freed.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::image_http::q;
use super::images::filters_json;
use super::Output;
use crate::client::{Client, ClientError};
use crate::template::{align, Template};
use crate::units::human_size;

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage.
    Df(DfArgs),
    /// Remove unused data.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Pretty-print the summary using a Go template (`.Type`, `.TotalCount`,
    /// `.Active`, `.Size`, `.Reclaimable`).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Prune volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (`until=<timestamp>`, `label=k=v`, `label!=k`).
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(client: &Client, command: &SystemCommand) -> Result<Output> {
    match command {
        SystemCommand::Df(a) => df(client, a).await,
        SystemCommand::Prune(a) => prune(client, a).await,
    }
}

fn size(v: u64) -> String {
    human_size(v as f64, 4)
}

/// `size (percent%)` as docker writes a reclaimable amount.
fn with_percent(reclaimable: u64, total: u64) -> String {
    match (reclaimable * 100).checked_div(total) {
        Some(percent) => format!("{} ({percent}%)", size(reclaimable)),
        None => size(reclaimable),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The summary rows, as docker's CLI computes them from the answer.
pub fn summary(df: &Value) -> Vec<Value> {
    let list = |k: &str| df[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let layers = u(&df["LayersSize"]);
    let used: u64 = images
        .iter()
        .filter(|i| u(&i["Containers"]) > 0)
        .map(|i| u(&i["Size"]).saturating_sub(u(&i["SharedSize"])))
        .sum();
    let containers = list("Containers");
    let active = |c: &Value| {
        matches!(
            c["State"].as_str(),
            Some("running" | "paused" | "restarting")
        )
    };
    let rw: u64 = containers.iter().map(|c| u(&c["SizeRw"])).sum();
    let rw_idle: u64 = containers
        .iter()
        .filter(|c| !active(c))
        .map(|c| u(&c["SizeRw"]))
        .sum();
    let volumes = list("Volumes");
    let in_use = |v: &Value| u(&v["UsageData"]["RefCount"]) > 0;
    let vol_size: u64 = volumes.iter().map(|v| u(&v["UsageData"]["Size"])).sum();
    let vol_idle: u64 = volumes
        .iter()
        .filter(|v| !in_use(v))
        .map(|v| u(&v["UsageData"]["Size"]))
        .sum();
    // As docker's CLI: shared records are not counted, records in use not reclaimable.
    let cache = list("BuildCache");
    let shared = |c: &Value| c["Shared"].as_bool() == Some(true);
    let cache_size: u64 = cache
        .iter()
        .filter(|c| !shared(c))
        .map(|c| u(&c["Size"]))
        .sum();
    let cache_idle: u64 = cache
        .iter()
        .filter(|c| !shared(c) && c["InUse"].as_bool() != Some(true))
        .map(|c| u(&c["Size"]))
        .sum();
    vec![
        json!({"Type": "Images", "TotalCount": images.len(),
            "Active": images.iter().filter(|i| u(&i["Containers"]) > 0).count(),
            "Size": size(layers), "Reclaimable": with_percent(layers.saturating_sub(used), layers)}),
        json!({"Type": "Containers", "TotalCount": containers.len(),
            "Active": containers.iter().filter(|c| active(c)).count(),
            "Size": size(rw), "Reclaimable": with_percent(rw_idle, rw)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len(),
            "Active": volumes.iter().filter(|v| in_use(v)).count(),
            "Size": size(vol_size), "Reclaimable": with_percent(vol_idle, vol_size)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len(),
            "Active": cache.iter().filter(|c| c["InUse"].as_bool() == Some(true)).count(),
            "Size": size(cache_size), "Reclaimable": size(cache_idle)}),
    ]
}

async fn df(client: &Client, args: &DfArgs) -> Result<Output> {
    let df = client.get_json("/system/df").await?;
    if args.verbose {
        if args.format.is_some() {
            bail!("berth system df: --format with --verbose is not supported; use the API's /system/df");
        }
        return Ok(Output::text(verbose(&df)));
    }
    let format = args.format.clone().unwrap_or_else(|| {
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into()
    });
    let template = Template::parse(&format)?;
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.header(&|f| match f {
            "TotalCount" => Some("TOTAL".into()),
            _ => None,
        }));
    }
    for row in summary(&df) {
        lines.push(template.render(&row)?);
    }
    Ok(Output::text(if template.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }))
}

/// `system df -v`: each image, container and volume with its sizes.
fn verbose(df: &Value) -> String {
    let list = |k: &str| df[k].as_array().cloned().unwrap_or_default();
    let mut out = String::from("Images space usage:\n\n");
    let mut rows =
        vec!["REPOSITORY\tTAG\tIMAGE ID\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS".to_string()];
    for i in list("Images") {
        let id = i["Id"].as_str().unwrap_or("");
        let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((&t, "<none>"));
            let (sz, shared) = (u(&i["Size"]), u(&i["SharedSize"]));
            rows.push(format!(
                "{repo}\t{tag}\t{short}\t{}\t{}\t{}\t{}",
                size(sz),
                size(shared),
                size(sz.saturating_sub(shared)),
                u(&i["Containers"])
            ));
        }
    }
    out.push_str(&align(&rows));
    out.push_str("\nContainers space usage:\n\n");
    let mut rows = vec!["CONTAINER ID\tIMAGE\tCOMMAND\tSIZE\tSTATUS\tNAMES".to_string()];
    for c in list("Containers") {
        let id: String = c["Id"].as_str().unwrap_or("").chars().take(12).collect();
        let name = c["Names"][0].as_str().unwrap_or("").trim_start_matches('/');
        rows.push(format!(
            "{id}\t{}\t{:?}\t{}\t{}\t{name}",
            c["Image"].as_str().unwrap_or(""),
            crate::units::ellipsis(c["Command"].as_str().unwrap_or(""), 20),
            size(u(&c["SizeRw"])),
            c["Status"].as_str().unwrap_or(""),
        ));
    }
    out.push_str(&align(&rows));
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut rows = vec!["VOLUME NAME\tLINKS\tSIZE".to_string()];
    for v in list("Volumes") {
        rows.push(format!(
            "{}\t{}\t{}",
            v["Name"].as_str().unwrap_or(""),
            u(&v["UsageData"]["RefCount"]),
            size(u(&v["UsageData"]["Size"]))
        ));
    }
    out.push_str(&align(&rows));
    let cache = list("BuildCache");
    let total: u64 = cache.iter().map(|c| u(&c["Size"])).sum();
    out.push_str(&format!("\nBuild cache usage: {}\n\n", size(total)));
    let mut rows =
        vec!["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED".to_string()];
    let ago = |v: &Value| {
        v.as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(|d| format!("{} ago", crate::units::human_duration(d)))
            .unwrap_or_default()
    };
    for c in cache {
        rows.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            c["ID"].as_str().unwrap_or(""),
            c["Type"].as_str().unwrap_or(""),
            size(u(&c["Size"])),
            ago(&c["CreatedAt"]),
            ago(&c["LastUsedAt"]),
            u(&c["UsageCount"]),
            c["Shared"].as_bool().unwrap_or(false),
        ));
    }
    out.push_str(&align(&rows));
    out
}

async fn prune(client: &Client, args: &PruneArgs) -> Result<Output> {
    if !args.force {
        bail!("berth system prune removes stopped containers, unused networks, dangling images{} without asking: pass -f/--force to confirm",
            if args.volumes { " and unused volumes" } else { "" });
    }
    if args.volumes && args.filter.iter().any(|f| f.starts_with("until=")) {
        bail!("ERROR: The \"until\" filter is not supported with \"--volumes\"");
    }
    let query = |extra: &[String]| -> Result<String> {
        let mut all = args.filter.clone();
        all.extend_from_slice(extra);
        Ok(match filters_json(&all)? {
            Some(f) => format!("?filters={}", q(&f)),
            None => String::new(),
        })
    };
    let mut out = String::new();
    let mut reclaimed = 0u64;
    let mut section = |title: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            out.push_str(&format!("{title}:\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
            out.push('\n');
        }
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let v = client
        .post_json(&format!("/containers/prune{}", query(&[])?), None)
        .await?;
    reclaimed += u(&v["SpaceReclaimed"]);
    section("Deleted Containers", strings(&v["ContainersDeleted"]));
    // A berthd without networks answers 404: there are none to prune.
    match client
        .post_json(&format!("/networks/prune{}", query(&[])?), None)
        .await
    {
        Ok(v) => section("Deleted Networks", strings(&v["NetworksDeleted"])),
        Err(ClientError::Daemon { status, .. }) if status == StatusCode::NOT_FOUND => {}
        Err(e) => return Err(e.into()),
    }
    if args.volumes {
        let v = client
            .post_json(&format!("/volumes/prune{}", query(&[])?), None)
            .await?;
        reclaimed += u(&v["SpaceReclaimed"]);
        section("Deleted Volumes", strings(&v["VolumesDeleted"]));
    }
    let extra = if args.all {
        vec!["dangling=false".to_string()]
    } else {
        Vec::new()
    };
    let v = client
        .post_json(&format!("/images/prune{}", query(&extra)?), None)
        .await?;
    reclaimed += u(&v["SpaceReclaimed"]);
    let mut lines = Vec::new();
    for item in v["ImagesDeleted"].as_array().into_iter().flatten() {
        for (k, label) in [("Untagged", "untagged"), ("Deleted", "deleted")] {
            if let Some(x) = item[k].as_str() {
                lines.push(format!("{label}: {x}"));
            }
        }
    }
    section("Deleted Images", lines);
    out.push_str(&format!("Total reclaimed space: {}\n", size(reclaimed)));
    Ok(Output::text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_computed_as_dockers_cli_does() {
        let df = json!({
            "LayersSize": 1000,
            "Images": [{"Size": 1000, "SharedSize": 400, "Containers": 1},
                       {"Size": 400, "SharedSize": 400, "Containers": 0}],
            "Containers": [{"State": "running", "SizeRw": 100}, {"State": "exited", "SizeRw": 300}],
            "Volumes": [{"UsageData": {"Size": 50, "RefCount": 1}},
                        {"UsageData": {"Size": 150, "RefCount": 0}}],
        });
        let rows = summary(&df);
        assert_eq!(rows[0]["Reclaimable"], "400B (40%)");
        assert_eq!(rows[0]["Active"], 1);
        assert_eq!(rows[1]["Size"], "400B");
        assert_eq!(rows[1]["Reclaimable"], "300B (75%)");
        assert_eq!(rows[2]["Reclaimable"], "150B (75%)");
        assert_eq!(rows[3]["Size"], "0B");
    }
}
