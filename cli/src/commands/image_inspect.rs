//! `berth image inspect` and `berth history`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::image_http::path_name;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};
use crate::units::{ago, human_size};

#[derive(Args)]
pub struct InspectArgs {
    /// Images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Format the output using the given Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Pretty-print history using a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
}

pub async fn inspect(client: &Client, args: &InspectArgs) -> Result<Output> {
    let paths = args
        .images
        .iter()
        .map(|n| format!("/images/{}/json", path_name(n)));
    super::inspect::objects(client, paths, args.format.as_deref()).await
}

pub async fn history(client: &Client, args: &HistoryArgs) -> Result<Output> {
    let rows = client
        .get_json(&format!("/images/{}/history", path_name(&args.image)))
        .await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    if args.quiet {
        return Ok(Output::text(
            rows.iter()
                .map(|r| {
                    let id = r["Id"].as_str().unwrap_or("");
                    let id = if args.no_trunc || id == "<missing>" {
                        id.to_string()
                    } else {
                        id.trim_start_matches("sha256:").chars().take(12).collect()
                    };
                    format!("{id}\n")
                })
                .collect(),
        ));
    }
    let format = args.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
    });
    let template = Template::parse(&format)?;
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.header(&|f| match f {
            "ID" => Some("IMAGE".into()),
            "CreatedSince" => Some("CREATED".into()),
            "CreatedBy" => Some("CREATED BY".into()),
            _ => None,
        }));
    }
    for r in &rows {
        let id = r["Id"].as_str().unwrap_or("");
        let id = if args.no_trunc || id == "<missing>" {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        };
        let mut by = r["CreatedBy"].as_str().unwrap_or("").to_string();
        if !args.no_trunc && by.chars().count() > 45 {
            by = format!("{}…", by.chars().take(44).collect::<String>());
        }
        let created = r["Created"].as_i64().unwrap_or(0);
        let size = r["Size"].as_f64().unwrap_or(0.0);
        let row = json!({
            "ID": id,
            "CreatedSince": if args.human { ago(created, std::time::SystemTime::now()) } else { created.to_string() },
            "CreatedAt": created.to_string(),
            "CreatedBy": by,
            "Size": if args.human { human_size(size, 3) } else { (size as u64).to_string() },
            "Comment": r["Comment"].as_str().unwrap_or(""),
        });
        lines.push(template.render(&row)?);
    }
    Ok(Output::text(if template.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }))
}
