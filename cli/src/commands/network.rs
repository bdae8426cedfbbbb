//! `berth network create|ls|inspect|rm|prune`, as docker's: `--driver` (the daemon
//! refuses all but bridge by name), `--subnet`, `--gateway`, `--ip-range`,
//! `--internal`, `--ipv6`, `--attachable`, `--label`, `-o`; `ls` with `-q`,
//! `--filter`, `--format`, `--no-trunc`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::image_http::q;
use super::images::filters_json;
use super::volume::key_values;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

#[derive(Args)]
pub struct ConnectArgs {
    pub network: String,
    pub container: String,
    /// Add network-scoped alias for the container.
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
}

#[derive(Args)]
pub struct DisconnectArgs {
    pub network: String,
    pub container: String,
    /// Force the container to disconnect from a network.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    pub name: String,
    /// Driver to manage the Network (only bridge).
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range.
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Enable IPv6 networking.
    #[arg(long)]
    pub ipv6: bool,
    /// Enable manual container attachment.
    #[arg(long)]
    pub attachable: bool,
    /// Set metadata on a network (`key=value`).
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options (`key=value`).
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. `driver=bridge`).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print networks using a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Format the output using the given Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
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

pub async fn run(client: &Client, command: &NetworkCommand) -> Result<Output> {
    match command {
        NetworkCommand::Create(a) => create(client, a).await,
        NetworkCommand::Ls(a) => ls(client, a).await,
        NetworkCommand::Inspect(a) => inspect(client, a).await,
        NetworkCommand::Rm(a) => rm(client, a).await,
        NetworkCommand::Prune(a) => prune(client, a).await,
        NetworkCommand::Connect(a) => {
            let body = json!({
                "Container": a.container,
                "EndpointConfig": {
                    "IPAMConfig": {"IPv4Address": a.ip.as_deref().unwrap_or("")},
                    "Aliases": a.alias,
                },
            });
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/connect", q(&a.network)),
                    Some(body),
                )
                .await?;
            Ok(Output::text(String::new()))
        }
        NetworkCommand::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/disconnect", q(&a.network)),
                    Some(body),
                )
                .await?;
            Ok(Output::text(String::new()))
        }
    }
}

/// The create body docker's CLI sends: one IPAM config per subnet, the gateway and
/// range going with it.
fn create_body(args: &CreateArgs) -> Result<Value> {
    if args.gateway.len() > args.subnet.len() || args.ip_range.len() > args.subnet.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let configs: Vec<Value> = args
        .subnet
        .iter()
        .enumerate()
        .map(|(i, subnet)| {
            let mut c = json!({"Subnet": subnet});
            if let Some(g) = args.gateway.get(i) {
                c["Gateway"] = json!(g);
            }
            if let Some(r) = args.ip_range.get(i) {
                c["IPRange"] = json!(r);
            }
            c
        })
        .collect();
    Ok(json!({
        "Name": args.name,
        "CheckDuplicate": true,
        "Driver": args.driver,
        "EnableIPv6": args.ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": configs},
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Options": key_values("--opt", &args.opt)?,
        "Labels": key_values("--label", &args.label)?,
    }))
}

async fn create(client: &Client, args: &CreateArgs) -> Result<Output> {
    let v = client
        .post_json("/networks/create", Some(create_body(args)?))
        .await?;
    Ok(Output::text(format!(
        "{}\n",
        v["Id"].as_str().unwrap_or("")
    )))
}

async fn ls(client: &Client, args: &LsArgs) -> Result<Output> {
    let mut path = String::from("/networks");
    if let Some(f) = filters_json(&args.filter)? {
        path.push_str(&format!("?filters={}", q(&f)));
    }
    let list = client.get_json(&path).await?;
    let networks = list.as_array().cloned().unwrap_or_default();
    let id = |v: &Value| {
        let id = v["Id"].as_str().unwrap_or("");
        if args.no_trunc {
            id.to_string()
        } else {
            id.chars().take(12).collect()
        }
    };
    if args.quiet {
        return Ok(Output::text(
            networks.iter().map(|v| format!("{}\n", id(v))).collect(),
        ));
    }
    let format = args
        .format
        .clone()
        .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into());
    let template = Template::parse(&format)?;
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.header(&|f| match f {
            "ID" => Some("NETWORK ID".into()),
            _ => None,
        }));
    }
    for v in &networks {
        lines.push(template.render(&row(v, id(v)))?);
    }
    let text = if template.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    Ok(Output::text(text))
}

/// A listed network as docker's `--format` sees it.
fn row(v: &Value, id: String) -> Value {
    let labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("")))
        .collect();
    json!({
        "ID": id,
        "Name": v["Name"],
        "Driver": v["Driver"],
        "Scope": v["Scope"],
        "IPv6": v["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
        "CreatedAt": v["Created"],
        "Labels": labels.join(","),
    })
}

async fn inspect(client: &Client, args: &InspectArgs) -> Result<Output> {
    let paths = args.networks.iter().map(|n| format!("/networks/{}", q(n)));
    super::inspect::objects(client, paths, args.format.as_deref()).await
}

async fn rm(client: &Client, args: &RmArgs) -> Result<Output> {
    super::each(&args.networks, |name| async move {
        let path = format!("/networks/{}", q(&name));
        client.call(Method::DELETE, &path, None).await?;
        Ok(Some(name))
    })
    .await
}

async fn prune(client: &Client, args: &PruneArgs) -> Result<Output> {
    if !args.force {
        bail!("berth network prune removes networks without asking: pass -f/--force to confirm");
    }
    let mut path = String::from("/networks/prune");
    if let Some(f) = filters_json(&args.filter)? {
        path.push_str(&format!("?filters={}", q(&f)));
    }
    let v = client.post_json(&path, None).await?;
    Ok(Output::text(super::deleted_list(
        "Deleted Networks",
        &v["NetworksDeleted"],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(subnet: &[&str], gateway: &[&str], range: &[&str]) -> CreateArgs {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        CreateArgs {
            name: "n".into(),
            driver: "bridge".into(),
            subnet: v(subnet),
            gateway: v(gateway),
            ip_range: v(range),
            internal: true,
            ipv6: false,
            attachable: false,
            label: vec!["a=b".into()],
            opt: vec!["com.docker.network.bridge.name=x".into()],
        }
    }

    #[test]
    fn create_body_pairs_gateways_with_subnets() {
        let b = create_body(&args(&["10.9.0.0/16"], &["10.9.0.9"], &["10.9.1.0/24"])).unwrap();
        assert_eq!(
            b["IPAM"]["Config"],
            json!([{"Subnet": "10.9.0.0/16", "Gateway": "10.9.0.9", "IPRange": "10.9.1.0/24"}])
        );
        assert_eq!(b["Internal"], true);
        assert_eq!(b["Labels"]["a"], "b");
        assert_eq!(b["Options"]["com.docker.network.bridge.name"], "x");
        assert!(create_body(&args(&[], &["10.9.0.9"], &[])).is_err());
    }

    #[test]
    fn rows_truncate_by_caller_and_join_labels() {
        let r = row(
            &json!({"Id": "abc", "Name": "n", "Labels": {"a": "b"}, "Internal": true}),
            "abc".into(),
        );
        assert_eq!(r["Labels"], "a=b");
        assert_eq!(r["Internal"], "true");
    }
}
