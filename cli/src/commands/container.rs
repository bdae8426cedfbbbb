//! Container commands that name containers and act on each: `start`, `stop`,
//! `restart`, `kill`, `rm`, `wait`, `logs`, `inspect`, `top`, `rename`, `pause`,
//! `unpause`, `container prune`. Like docker, a command given several containers
//! goes on after a failure, prints the names that worked, and fails at the end.

use anyhow::anyhow;
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::each;
use super::stream::copy_logs;
use super::Output;
use crate::client::Client;
use crate::template::Template;

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn start(client: &Client, names: &[String]) -> anyhow::Result<Output> {
    each(names, |n| async move {
        client
            .call(
                Method::POST,
                &format!("/containers/{}/start", enc(&n)),
                None,
            )
            .await?;
        Ok(Some(n))
    })
    .await
}

pub async fn stop(client: &Client, names: &[String], time: Option<i64>) -> anyhow::Result<Output> {
    let t = time.map(|t| format!("?t={t}")).unwrap_or_default();
    each(names, |n| {
        let t = t.clone();
        async move {
            client
                .call(
                    Method::POST,
                    &format!("/containers/{}/stop{t}", enc(&n)),
                    None,
                )
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

pub async fn restart(
    client: &Client,
    names: &[String],
    time: Option<i64>,
) -> anyhow::Result<Output> {
    let t = time.map(|t| format!("?t={t}")).unwrap_or_default();
    each(names, |n| {
        let t = t.clone();
        async move {
            client
                .call(
                    Method::POST,
                    &format!("/containers/{}/restart{t}", enc(&n)),
                    None,
                )
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

pub async fn kill(
    client: &Client,
    names: &[String],
    signal: Option<&str>,
) -> anyhow::Result<Output> {
    let s = signal
        .map(|s| format!("?signal={}", enc(s)))
        .unwrap_or_default();
    each(names, |n| {
        let s = s.clone();
        async move {
            client
                .call(
                    Method::POST,
                    &format!("/containers/{}/kill{s}", enc(&n)),
                    None,
                )
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

pub async fn rm(
    client: &Client,
    names: &[String],
    force: bool,
    volumes: bool,
) -> anyhow::Result<Output> {
    let q = format!("?force={}&v={}", force as u8, volumes as u8);
    each(names, |n| {
        let q = q.clone();
        async move {
            client
                .call(Method::DELETE, &format!("/containers/{}{q}", enc(&n)), None)
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

pub async fn pause(client: &Client, names: &[String], pause: bool) -> anyhow::Result<Output> {
    let action = if pause { "pause" } else { "unpause" };
    each(names, |n| async move {
        client
            .call(
                Method::POST,
                &format!("/containers/{}/{action}", enc(&n)),
                None,
            )
            .await?;
        Ok(Some(n))
    })
    .await
}

/// `wait`: prints each container's exit code.
pub async fn wait(client: &Client, names: &[String]) -> anyhow::Result<Output> {
    each(names, |n| async move {
        let v = client
            .post_json(&format!("/containers/{}/wait", enc(&n)), None)
            .await?;
        Ok(Some(v["StatusCode"].as_i64().unwrap_or(-1).to_string()))
    })
    .await
}

pub async fn rename(client: &Client, old: &str, new: &str) -> anyhow::Result<Output> {
    client
        .call(
            Method::POST,
            &format!("/containers/{}/rename?name={}", enc(old), enc(new)),
            None,
        )
        .await?;
    Ok(Output::text(String::new()))
}

/// `logs`: printed as they come (`-f` follows until the container stops, or until
/// the `--until` time passes). `window`: `--since` and `--until`.
pub async fn logs(
    client: &Client,
    name: &str,
    follow: bool,
    tail: Option<&str>,
    window: (Option<&str>, Option<&str>),
    timestamps: bool,
) -> anyhow::Result<Output> {
    let info = client
        .get_json(&format!("/containers/{}/json", enc(name)))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = format!(
        "stdout=1&stderr=1&follow={}&timestamps={}",
        follow as u8, timestamps as u8
    );
    if let Some(t) = tail {
        q.push_str(&format!("&tail={}", enc(t)));
    }
    let (since, until) = window;
    if let Some(s) = since {
        q.push_str(&format!("&since={}", enc(&since_to_unix(s)?)));
    }
    if let Some(u) = until {
        let unix = since_to_unix(u).map_err(|_| anyhow!("invalid value for --until: {u:?}"))?;
        q.push_str(&format!("&until={}", enc(&unix)));
    }
    let body = client
        .stream(
            Method::GET,
            &format!("/containers/{}/logs?{q}", enc(name)),
            Bytes::new(),
            "text/plain",
        )
        .await?;
    copy_logs(body, tty).await?;
    Ok(Output::text(String::new()))
}

/// `--since` as docker takes it: a Unix time, an RFC 3339 time, or a duration
/// (`10m`) before now.
pub fn since_to_unix(s: &str) -> anyhow::Result<String> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    let now = std::time::SystemTime::now();
    let at = if let Ok(t) = humantime_rfc3339(s) {
        t
    } else if let Ok(d) = parse_go_duration(s) {
        now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH)
    } else {
        return Err(anyhow!("invalid value for --since: {s:?}"));
    };
    let d = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

fn humantime_rfc3339(s: &str) -> Result<std::time::SystemTime, ()> {
    // 2006-01-02T15:04:05[.nnn]Z
    let (date, time) = s.trim_end_matches('Z').split_once('T').ok_or(())?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| ()))
        .collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| ()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().map_err(|_| ())?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::new(secs.max(0) as u64, nanos))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Go's duration syntax (`1h30m`, `10s`, `500ms`).
fn parse_go_duration(s: &str) -> Result<std::time::Duration, ()> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().map_err(|_| ())?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(()),
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(());
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// `inspect`: a JSON array of the containers, or `--format` per container.
pub async fn inspect(
    client: &Client,
    names: &[String],
    format: Option<&str>,
) -> anyhow::Result<Output> {
    let template = format.map(Template::parse).transpose()?;
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match client
            .get_json(&format!("/containers/{}/json", enc(n)))
            .await
        {
            Ok(v) => values.push(v),
            Err(e) => errors.push(format!("{e}")),
        }
    }
    let out = match &template {
        Some(t) => {
            let mut s = String::new();
            for v in &values {
                s.push_str(&t.render(v)?);
                s.push('\n');
            }
            s
        }
        None => serde_json::to_string_pretty(&Value::Array(values))? + "\n",
    };
    Ok(Output::text(out).failing_with(errors))
}

/// `port`: the container's published ports from inspect's `NetworkSettings.Ports`,
/// as docker prints them (`80/tcp -> 0.0.0.0:8080`; with a port, only its host sides).
pub async fn port(client: &Client, name: &str, private: Option<&str>) -> anyhow::Result<Output> {
    let v = client
        .get_json(&format!("/containers/{}/json", enc(name)))
        .await?;
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let wanted = private.map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut out = String::new();
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (n, proto) = k.split_once('/').unwrap_or((k, ""));
        (n.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    for key in keys {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in ports[key].as_array().into_iter().flatten() {
            let host = format!(
                "{}:{}",
                b["HostIp"].as_str().unwrap_or(""),
                b["HostPort"].as_str().unwrap_or("")
            );
            if wanted.is_some() {
                out.push_str(&format!("{host}\n"));
            } else {
                out.push_str(&format!("{key} -> {host}\n"));
            }
        }
    }
    if out.is_empty() {
        if let Some(w) = wanted {
            anyhow::bail!("No public port '{w}' published for {name}");
        }
    }
    Ok(Output::text(out))
}

/// `top`: the container's processes as a table.
pub async fn top(client: &Client, name: &str) -> anyhow::Result<Output> {
    let v = client
        .get_json(&format!("/containers/{}/top", enc(name)))
        .await?;
    let mut rows = Vec::new();
    let titles: Vec<String> = v["Titles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    rows.push(titles.join("\t"));
    for p in v["Processes"].as_array().into_iter().flatten() {
        let cells: Vec<String> = p
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(cells.join("\t"));
    }
    Ok(Output::text(crate::template::align_with(
        &rows,
        crate::tabwriter::DOCKER_TOP,
    )))
}

/// `container prune`.
pub async fn prune(client: &Client, force: bool) -> anyhow::Result<Output> {
    if !force {
        return Err(anyhow!(
            "WARNING! This will remove all stopped containers.\nberth asks no questions: pass -f/--force to prune"
        ));
    }
    let v = client.post_json("/containers/prune", None).await?;
    let mut out = String::new();
    let deleted = v["ContainersDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Containers:\n");
        for d in deleted {
            out.push_str(d.as_str().unwrap_or(""));
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::units::human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0), 4)
    ));
    Ok(Output::text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_unix_rfc3339_and_durations() {
        assert_eq!(since_to_unix("1700000000").unwrap(), "1700000000");
        assert_eq!(
            since_to_unix("2023-11-14T22:13:20Z").unwrap(),
            "1700000000.000000000"
        );
        assert_eq!(
            since_to_unix("2023-11-14T22:13:20.5Z").unwrap(),
            "1700000000.500000000"
        );
        let ago: f64 = since_to_unix("10m").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - ago - 600.0).abs() < 5.0);
        assert!(since_to_unix("yesterday").is_err());
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(enc("web_1"), "web_1");
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }
}
