//! `events`: the daemon's event stream, printed as docker prints it (`<time> <type>
//! <action> <id> (k=v, …)`) or through `--format`; `--since`/`--until` replay the
//! past, and `--until` ends the stream.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::container::{enc, since_to_unix};
use super::ps::filters_json;
use super::Output;
use crate::client::Client;
use crate::template::Template;

pub struct EventsFlags {
    pub filters: Vec<String>,
    pub format: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

pub async fn run(client: &Client, flags: &EventsFlags) -> anyhow::Result<Output> {
    let template = flags.format.as_deref().map(Template::parse).transpose()?;
    let mut q = Vec::new();
    if let Some(s) = &flags.since {
        q.push(format!("since={}", enc(&since_to_unix(s)?)));
    }
    if let Some(u) = &flags.until {
        q.push(format!("until={}", enc(&since_to_unix(u)?)));
    }
    if !flags.filters.is_empty() {
        q.push(format!("filters={}", enc(&filters_json(&flags.filters)?)));
    }
    let mut body = client
        .stream(
            Method::GET,
            &format!("/events?{}", q.join("&")),
            Bytes::new(),
            "application/json",
        )
        .await?;
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(n) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=n).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let text = match &template {
                Some(t) => t.render(&go_fields(event))?,
                None => plain(&event),
            };
            println!("{text}");
        }
    }
    Ok(Output::text(String::new()))
}

/// The message with the Go struct's field names too (`.Status`, `.ID`, `.From`,
/// `.Time`, `.TimeNano`, `.Scope`), as docker's templates see it.
fn go_fields(mut event: Value) -> Value {
    for (json, go) in [
        ("status", "Status"),
        ("id", "ID"),
        ("from", "From"),
        ("time", "Time"),
        ("timeNano", "TimeNano"),
        ("scope", "Scope"),
    ] {
        let v = event
            .get(json)
            .cloned()
            .unwrap_or(Value::String(String::new()));
        event[go] = v;
    }
    event
}

/// docker's default line: `2024-01-02T03:04:05.000000000Z container start <id>
/// (image=busybox, name=web)`.
pub fn plain(event: &Value) -> String {
    let nanos = event["timeNano"].as_i64().unwrap_or(0).max(0) as u64;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
    let mut out = format!(
        "{} {} {} {}",
        humantime::format_rfc3339_nanos(at),
        event["Type"].as_str().unwrap_or(""),
        event["Action"].as_str().unwrap_or(""),
        event["Actor"]["ID"].as_str().unwrap_or(""),
    );
    if let Some(attrs) = event["Actor"]["Attributes"].as_object() {
        if !attrs.is_empty() {
            let pairs: Vec<String> = attrs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            out.push_str(&format!(" ({})", pairs.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_is_dockers() {
        let e = serde_json::json!({
            "Type": "container", "Action": "start", "timeNano": 1_700_000_000_000_000_001i64,
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
        });
        assert_eq!(
            plain(&e),
            "2023-11-14T22:13:20.000000001Z container start abc (image=busybox, name=web)"
        );
    }
}
