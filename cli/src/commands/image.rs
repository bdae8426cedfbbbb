//! Image commands: `load`, `import`, `images`, `tag`, `rmi`, `image inspect`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};

use super::container::enc;
use super::ps::human_duration;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};

/// Reads a file, or stdin for `-`/none.
fn read_input(path: Option<&str>) -> anyhow::Result<Bytes> {
    use std::io::Read;
    let mut buf = Vec::new();
    match path {
        None | Some("-") => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
        }
        Some(p) => {
            buf = std::fs::read(p).with_context(|| format!("reading {p}"))?;
        }
    }
    Ok(Bytes::from(buf))
}

/// Collects a JSON-lines progress body; prints `stream` lines, fails on `error`.
async fn json_lines(body: hyper::body::Incoming) -> anyhow::Result<Vec<Value>> {
    let bytes = body.collect().await?.to_bytes();
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line)?;
        if let Some(e) = v["error"].as_str() {
            return Err(anyhow!("{e}"));
        }
        out.push(v);
    }
    Ok(out)
}

/// `load -i FILE` (or stdin).
pub async fn load(client: &Client, input: Option<&str>, quiet: bool) -> anyhow::Result<Output> {
    let archive = read_input(input)?;
    let body = client
        .stream(
            Method::POST,
            &format!("/images/load?quiet={}", quiet as u8),
            archive,
            "application/x-tar",
        )
        .await?;
    let mut out = String::new();
    for v in json_lines(body).await? {
        if let Some(s) = v["stream"].as_str() {
            out.push_str(s);
        }
    }
    Ok(Output::text(out))
}

/// `import FILE|- [REPOSITORY[:TAG]]`: prints the new image's id.
pub async fn import(
    client: &Client,
    file: &str,
    reference: Option<&str>,
) -> anyhow::Result<Output> {
    let tarball = read_input(Some(file))?;
    let reference = reference
        .ok_or_else(|| anyhow!("berth import needs a REPOSITORY[:TAG] to name the image"))?;
    let (repo, tag) = split_reference(reference);
    let mut path = format!("/images/create?fromSrc=-&repo={}", enc(repo));
    if let Some(t) = tag {
        path.push_str(&format!("&tag={}", enc(t)));
    }
    let body = client
        .stream(Method::POST, &path, tarball, "application/x-tar")
        .await?;
    let mut out = String::new();
    for v in json_lines(body).await? {
        if let Some(s) = v["status"].as_str() {
            out.push_str(s);
            out.push('\n');
        }
    }
    Ok(Output::text(out))
}

/// `name:tag` → (`name`, `tag`), minding a registry port (`host:5000/x`).
pub fn split_reference(r: &str) -> (&str, Option<&str>) {
    if r.contains('@') {
        return (r, None);
    }
    match r.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (r, None),
    }
}

/// docker's `units.HumanSizeWithPrecision(size, 3)` (decimal units).
pub fn human_size(size: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i + 1 < units.len() {
        s /= 1000.0;
        i += 1;
    }
    let text = format!("{:.3}", s);
    let digits = if s >= 100.0 {
        0
    } else if s >= 10.0 {
        1
    } else {
        2
    };
    let text = if text.contains('.') {
        format!("{s:.digits$}")
    } else {
        text
    };
    let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    format!("{text}{}", units[i])
}

const IMAGES_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// `images`: one row per name.
pub async fn images(
    client: &Client,
    quiet: bool,
    format: Option<&str>,
    no_trunc: bool,
) -> anyhow::Result<Output> {
    let list = client.get_json("/images/json").await?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for img in list.as_array().into_iter().flatten() {
        let id = img["Id"].as_str().unwrap_or("");
        let short = if no_trunc {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        };
        let created =
            UNIX_EPOCH + Duration::from_secs(img["Created"].as_i64().unwrap_or(0).max(0) as u64);
        let since = format!(
            "{} ago",
            human_duration(now.duration_since(created).unwrap_or_default())
        );
        let size = human_size(img["Size"].as_f64().unwrap_or(0.0));
        let tags: Vec<String> = img["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in tags {
            let (repo, tag) = split_reference(&t);
            rows.push(json!({
                "Repository": repo, "Tag": tag.unwrap_or("<none>"), "ID": short,
                "CreatedSince": since, "Size": size,
            }));
        }
    }
    if quiet {
        let mut seen = Vec::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or("").to_string();
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        return Ok(Output::text(
            seen.iter().map(|i| format!("{i}\n")).collect(),
        ));
    }
    let t = Template::parse(format.unwrap_or(IMAGES_FORMAT))?;
    let mut lines = Vec::new();
    if t.table {
        lines.push(t.header(&|f| match f {
            "ID" => Some("IMAGE ID".into()),
            "CreatedSince" => Some("CREATED".into()),
            _ => None,
        }));
    }
    for r in &rows {
        lines.push(t.render(r)?);
    }
    Ok(Output::text(if t.table {
        align(&lines)
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }))
}

/// `tag SOURCE TARGET`.
pub async fn tag(client: &Client, source: &str, target: &str) -> anyhow::Result<Output> {
    let (repo, t) = split_reference(target);
    let mut path = format!("/images/{}/tag?repo={}", source, enc(repo));
    if let Some(t) = t {
        path.push_str(&format!("&tag={}", enc(t)));
    }
    client.call(Method::POST, &path, None).await?;
    Ok(Output::text(String::new()))
}

/// `rmi`: prints what was untagged and deleted.
pub async fn rmi(client: &Client, images: &[String], force: bool) -> anyhow::Result<Output> {
    let mut out = String::new();
    let mut errors = Vec::new();
    for i in images {
        match client
            .call(
                Method::DELETE,
                &format!("/images/{i}?force={}", force as u8),
                None,
            )
            .await
        {
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes)?;
                for e in v.as_array().into_iter().flatten() {
                    if let Some(u) = e["Untagged"].as_str() {
                        out.push_str(&format!("Untagged: {u}\n"));
                    }
                    if let Some(d) = e["Deleted"].as_str() {
                        out.push_str(&format!("Deleted: {d}\n"));
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let o = Output::text(out);
    Ok(if errors.is_empty() {
        o
    } else {
        o.failing(anyhow!(errors.join("\n")))
    })
}

/// `image inspect`.
pub async fn inspect(
    client: &Client,
    images: &[String],
    format: Option<&str>,
) -> anyhow::Result<Output> {
    let t = format.map(Template::parse).transpose()?;
    let mut values = Vec::new();
    for i in images {
        values.push(client.get_json(&format!("/images/{i}/json")).await?);
    }
    Ok(Output::text(match t {
        Some(t) => values
            .iter()
            .map(|v| t.render(v).map(|s| s + "\n"))
            .collect::<Result<String, _>>()?,
        None => serde_json::to_string_pretty(&Value::Array(values))? + "\n",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_dockers() {
        assert_eq!(human_size(4_261_550.0), "4.26MB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1_500_000_000.0), "1.5GB");
        assert_eq!(human_size(123_456_789.0), "123MB");
    }

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x", None)
        );
        assert_eq!(
            split_reference("localhost:5000/x:v1"),
            ("localhost:5000/x", Some("v1"))
        );
    }
}
