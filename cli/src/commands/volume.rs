//! `berth volume create|ls|inspect|rm|prune`, as docker's: `-q`, `--format`,
//! `--filter`, `--label`, `-d local`; `-o` is sent and the daemon refuses what it does
//! not apply.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::image_http::q;
use super::images::filters_json;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};
use crate::units::human_size;

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The volume's name; a generated one when left out.
    pub name: Option<String>,
    /// Specify volume driver name.
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (`key=value`).
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options (`key=value`).
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (`dangling=true`, `label=k=v`, `name=…`, `driver=…`).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub volumes: Vec<String>,
    /// Format the output using the given Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub volumes: Vec<String>,
    /// Force the removal of one or more volumes (a missing one is no error).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Provide filter values (`label=k=v`, `label!=k`).
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(client: &Client, command: &VolumeCommand) -> Result<Output> {
    match command {
        VolumeCommand::Create(a) => create(client, a).await,
        VolumeCommand::Ls(a) => ls(client, a).await,
        VolumeCommand::Inspect(a) => inspect(client, a).await,
        VolumeCommand::Rm(a) => rm(client, a).await,
        VolumeCommand::Prune(a) => prune(client, a).await,
    }
}

pub(crate) fn key_values(flag: &str, entries: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in entries {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        if k.is_empty() {
            bail!("invalid argument {e:?} for \"{flag}\" flag: bad format for key=value");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

async fn create(client: &Client, args: &CreateArgs) -> Result<Output> {
    let body = json!({
        "Name": args.name.clone().unwrap_or_default(),
        "Driver": args.driver,
        "DriverOpts": key_values("--opt", &args.opt)?,
        "Labels": key_values("--label", &args.label)?,
    });
    let v = client.post_json("/volumes/create", Some(body)).await?;
    Ok(Output::text(format!(
        "{}\n",
        v["Name"].as_str().unwrap_or("")
    )))
}

async fn ls(client: &Client, args: &LsArgs) -> Result<Output> {
    let mut path = String::from("/volumes");
    if let Some(f) = filters_json(&args.filter)? {
        path.push_str(&format!("?filters={}", q(&f)));
    }
    let list = client.get_json(&path).await?;
    let volumes = list["Volumes"].as_array().cloned().unwrap_or_default();
    if args.quiet {
        return Ok(Output::text(
            volumes
                .iter()
                .map(|v| format!("{}\n", v["Name"].as_str().unwrap_or("")))
                .collect(),
        ));
    }
    let format = args
        .format
        .clone()
        .unwrap_or_else(|| "table {{.Driver}}\t{{.Name}}".into());
    let template = Template::parse(&format)?;
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.header(&|f| match f {
            "Name" => Some("VOLUME NAME".into()),
            _ => None,
        }));
    }
    for v in &volumes {
        lines.push(template.render(&row(v))?);
    }
    let text = if template.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    Ok(Output::text(text))
}

/// A listed volume as docker's `--format` sees it (`.Labels` as `k=v,…`).
fn row(v: &Value) -> Value {
    let labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("")))
        .collect();
    json!({
        "Name": v["Name"],
        "Driver": v["Driver"],
        "Scope": v["Scope"],
        "Mountpoint": v["Mountpoint"],
        "CreatedAt": v["CreatedAt"],
        "Labels": labels.join(","),
    })
}

async fn inspect(client: &Client, args: &InspectArgs) -> Result<Output> {
    let paths = args.volumes.iter().map(|n| format!("/volumes/{}", q(n)));
    super::inspect::objects(client, paths, args.format.as_deref()).await
}

async fn rm(client: &Client, args: &RmArgs) -> Result<Output> {
    super::each(&args.volumes, |name| async move {
        let path = format!("/volumes/{}?force={}", q(&name), args.force as u8);
        client.call(Method::DELETE, &path, None).await?;
        Ok(Some(name))
    })
    .await
}

async fn prune(client: &Client, args: &PruneArgs) -> Result<Output> {
    if !args.force {
        bail!("berth volume prune removes volumes without asking: pass -f/--force to confirm");
    }
    let mut path = String::from("/volumes/prune");
    if let Some(f) = filters_json(&args.filter)? {
        path.push_str(&format!("?filters={}", q(&f)));
    }
    let v = client.post_json(&path, None).await?;
    let mut out = super::deleted_list("Deleted Volumes", &v["VolumesDeleted"]);
    if !out.is_empty() {
        out.push('\n');
    }
    let reclaimed = v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed, 4)
    ));
    Ok(Output::text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_values_and_rows_join_them() {
        let kv = key_values("--label", &["a=b".into(), "c".into()]).ok();
        assert_eq!(
            kv,
            Some([("a".into(), "b".into()), ("c".into(), String::new())].into())
        );
        assert!(key_values("--label", &["=x".into()]).is_err());
        let r = row(&json!({"Name": "v", "Driver": "local", "Labels": {"a": "b", "c": "d"}}));
        assert_eq!(r["Labels"], "a=b,c=d");
    }
}
