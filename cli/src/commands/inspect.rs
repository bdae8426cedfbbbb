//! `inspect` of objects read one by one (images, volumes, networks), as docker's: the
//! objects found as one JSON array, or each through `--format`; each one not found is
//! an error, listed after what was found.

use anyhow::Result;
use serde_json::Value;

use super::Output;
use crate::client::Client;
use crate::template::Template;

/// Reads each API path in `paths` and prints the objects as `format` asks.
pub async fn objects(
    client: &Client,
    paths: impl IntoIterator<Item = String>,
    format: Option<&str>,
) -> Result<Output> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match client.get_json(&path).await {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let text = match format {
        Some(f) => {
            let t = Template::parse(f)?;
            let mut out = String::new();
            for v in &found {
                out.push_str(&t.render(v)?);
                out.push('\n');
            }
            out
        }
        None => format!("{}\n", serde_json::to_string_pretty(&Value::Array(found))?),
    };
    Ok(Output::text(text).failing_with(errors))
}
