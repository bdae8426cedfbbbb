//! `ps`: the container table, `-q` ids, `--filter`, `--format` Go templates with the
//! fields docker offers (`.ID .Image .Command .CreatedAt .RunningFor .Ports .Status
//! .State .Names .Labels`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::container::enc;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};
use crate::units::{ago, ellipsis, go_quote};

/// docker's default `ps` table.
pub const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The flags of `ps`.
#[derive(Debug, Default, Clone)]
pub struct PsFlags {
    pub all: bool,
    pub quiet: bool,
    pub no_trunc: bool,
    pub filters: Vec<String>,
    pub format: Option<String>,
    pub last: Option<i64>,
}

/// `--filter k=v` flags as the API's `filters` JSON.
pub fn filters_json(filters: &[String]) -> anyhow::Result<String> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(serde_json::to_string(&map)?)
}

/// The fields a template sees for one container of `GET /containers/json`.
pub fn row(c: &Value, no_trunc: bool, now: SystemTime) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let id = if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    };
    let command = c["Command"].as_str().unwrap_or("");
    let command = if no_trunc {
        go_quote(command)
    } else {
        go_quote(&ellipsis(command, 20))
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let created_at = UNIX_EPOCH + Duration::from_secs(created.max(0) as u64);
    let names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    // Like docker, the table shows a container's own name, not the names links gave it.
    let names = match names.iter().find(|n| !n.contains('/')) {
        Some(own) if !no_trunc => vec![own.clone()],
        _ => names,
    };
    let labels: Vec<String> = c["Labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "ID": id,
        "Image": image(c, no_trunc),
        "Command": command,
        "CreatedAt": humantime::format_rfc3339_seconds(created_at).to_string().replace('T', " ").replace('Z', " +0000 UTC"),
        "RunningFor": ago(created, now),
        "Ports": ports(&c["Ports"]),
        "Status": c["Status"],
        "State": c["State"],
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": "",
    })
}

/// The `PORTS` column as docker writes it: ports sorted by number, runs of
/// consecutive ports of one protocol as a range (`7000-7001/udp`), groups in the order
/// their protocol first shows up, a group closed when a port breaks its run;
/// published ports (`0.0.0.0:8080->80/tcp`) last.
fn ports(list: &Value) -> String {
    let num = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0);
    let mut list: Vec<&Value> = list
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|p| {
        (
            num(p, "PrivatePort"),
            p["IP"].as_str().unwrap_or("").to_string(),
            num(p, "PublicPort"),
            p["Type"].as_str().unwrap_or("").to_string(),
        )
    });
    let form = |key: &str, (first, last): (u64, u64)| {
        let (ip, proto) = key.split_once('/').unwrap_or(("", key));
        let mut group = first.to_string();
        if first != last {
            group = format!("{group}-{last}");
        }
        if !ip.is_empty() {
            group = format!("{ip}:{group}->{group}");
        }
        format!("{group}/{proto}")
    };
    let mut groups: Vec<(String, (u64, u64))> = Vec::new();
    let (mut result, mut mappings) = (Vec::new(), Vec::new());
    for p in list {
        let (private, proto) = (num(p, "PrivatePort"), p["Type"].as_str().unwrap_or(""));
        let ip = p["IP"].as_str().unwrap_or("");
        let mut key = proto.to_string();
        if !ip.is_empty() {
            if num(p, "PublicPort") != private {
                mappings.push(format!("{ip}:{}->{private}/{proto}", num(p, "PublicPort")));
                continue;
            }
            key = format!("{ip}/{proto}");
        }
        match groups.iter_mut().find(|(k, _)| *k == key) {
            None => groups.push((key, (private, private))),
            Some((_, g)) if private == g.1 + 1 => g.1 = private,
            Some((k, g)) => {
                result.push(form(k, *g));
                *g = (private, private);
            }
        }
    }
    result.extend(groups.iter().map(|(k, g)| form(k, *g)));
    result.extend(mappings);
    result.join(", ")
}

/// The `IMAGE` column: docker shows a short id for a container made from an image id,
/// and a reference without its digest.
fn image(c: &Value, no_trunc: bool) -> String {
    let image = c["Image"].as_str().unwrap_or("");
    if image.is_empty() {
        return "<no image>".into();
    }
    if no_trunc {
        return image.to_string();
    }
    let short = |id: &str| -> String {
        let id = id.split_once(':').map_or(id, |(_, hex)| hex);
        id.chars().take(12).collect()
    };
    let image_id = c["ImageID"].as_str().unwrap_or("");
    if !image_id.is_empty() && short(image_id) == short(image) {
        return short(image);
    }
    let named = image.split_once('@').map_or(image, |(name, _)| name);
    named
        .strip_prefix("docker.io/library/")
        .or_else(|| named.strip_prefix("docker.io/"))
        .unwrap_or(named)
        .to_string()
}

fn header_name(field: &str) -> Option<String> {
    Some(
        match field {
            "ID" => "CONTAINER ID",
            "RunningFor" => "CREATED",
            "CreatedAt" => "CREATED AT",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn run(client: &Client, flags: &PsFlags) -> anyhow::Result<Output> {
    let mut path = format!(
        "/containers/json?all={}",
        (flags.all || flags.last.is_some()) as u8
    );
    if !flags.filters.is_empty() {
        path.push_str(&format!("&filters={}", enc(&filters_json(&flags.filters)?)));
    }
    if let Some(n) = flags.last {
        path.push_str(&format!("&limit={n}"));
    }
    let list = client.get_json(&path).await?;
    let containers = list.as_array().cloned().unwrap_or_default();
    let now = SystemTime::now();
    if flags.quiet {
        let mut out = String::new();
        for c in &containers {
            out.push_str(row(c, flags.no_trunc, now)["ID"].as_str().unwrap_or(""));
            out.push('\n');
        }
        return Ok(Output::text(out));
    }
    let template = Template::parse(flags.format.as_deref().unwrap_or(DEFAULT_FORMAT))?;
    let mut rows = Vec::new();
    if template.table {
        rows.push(template.header(&header_name));
    }
    for c in &containers {
        rows.push(template.render(&row(c, flags.no_trunc, now))?);
    }
    let out = if template.table {
        align(&rows)
    } else {
        rows.iter().map(|r| format!("{r}\n")).collect()
    };
    Ok(Output::text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_group_like_dockers() {
        let p = |port: u16, proto: &str| json!({"PrivatePort": port, "Type": proto});
        assert_eq!(
            ports(&json!([p(9000, "tcp"), p(53, "udp"), p(80, "tcp")])),
            "80/tcp, 53/udp, 9000/tcp"
        );
        assert_eq!(
            ports(&json!([p(7001, "udp"), p(9000, "tcp"), p(7000, "udp")])),
            "7000-7001/udp, 9000/tcp"
        );
        assert_eq!(
            ports(
                &json!([{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"}, p(53, "udp")])
            ),
            "53/udp, 0.0.0.0:8080->80/tcp"
        );
        assert_eq!(ports(&json!([])), "");
    }

    #[test]
    fn rows_look_like_dockers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let c = json!({
            "Id": "0123456789abcdef0123", "Image": "busybox", "Command": "sh -c 'sleep 1000; echo done'",
            "Created": 1_700_000_000, "Status": "Up 2 minutes", "State": "running",
            "Names": ["/web"], "Labels": {"a": "b"},
        });
        let r = row(&c, false, now);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Command"], "\"sh -c 'sleep 1000; …\"");
        assert_eq!(r["RunningFor"], "About a minute ago");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Labels"], "a=b");
        assert_eq!(r["CreatedAt"], "2023-11-14 22:13:20 +0000 UTC");
        let t = Template::parse(DEFAULT_FORMAT).unwrap();
        assert_eq!(
            t.header(&header_name),
            "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES"
        );
    }

    #[test]
    fn filters_become_the_api_json() {
        assert_eq!(
            filters_json(&["name=web".into(), "status=exited".into(), "name=db".into()]).unwrap(),
            r#"{"name":["web","db"],"status":["exited"]}"#
        );
        assert!(filters_json(&["bogus".into()]).is_err());
    }
}
