//! `stats`: each container's usage as docker's table (CPU %, memory usage / limit and
//! %, network and block I/O, pids) or a `--format` template; `--no-stream` prints once,
//! otherwise the table is redrawn every second. The figures are computed from the API's
//! JSON as docker's CLI computes them.

use std::time::Duration;

use serde_json::{json, Value};

use super::container::enc;
use super::Output;
use crate::client::Client;
use crate::template::{align, Template};
use crate::units::{bytes_size, human_size};

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

pub struct StatsFlags {
    pub all: bool,
    pub no_stream: bool,
    pub no_trunc: bool,
    pub format: Option<String>,
    pub containers: Vec<String>,
}

pub async fn run(client: &Client, flags: &StatsFlags) -> anyhow::Result<Output> {
    let template = Template::parse(flags.format.as_deref().unwrap_or(DEFAULT_FORMAT))?;
    let names: Vec<String> = if flags.containers.is_empty() {
        let list = client
            .get_json(&format!("/containers/json?all={}", flags.all as u8))
            .await?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        flags.containers.clone()
    };
    loop {
        let rows = table(client, &names, &template, flags.no_trunc).await?;
        if flags.no_stream {
            return Ok(Output::text(rows));
        }
        // Clear the screen and redraw, as docker does.
        print!("\x1b[2J\x1b[H{rows}");
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

async fn table(
    client: &Client,
    names: &[String],
    template: &Template,
    no_trunc: bool,
) -> anyhow::Result<String> {
    let mut reads = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let (client, name) = (client.clone(), name.clone());
        reads.spawn(async move {
            let path = format!("/containers/{}/stats?stream=0", enc(&name));
            (i, name, client.get_json(&path).await)
        });
    }
    let mut got = Vec::new();
    while let Some(joined) = reads.join_next().await {
        got.push(joined?);
    }
    got.sort_by_key(|(i, _, _)| *i);
    let mut rows = Vec::new();
    if template.table {
        rows.push(template.header(&header_name));
    }
    for (_, name, read) in got {
        let stats = read.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        rows.push(template.render(&row(&name, &stats, no_trunc))?);
    }
    Ok(if template.table {
        align(&rows)
    } else {
        rows.iter().map(|r| format!("{r}\n")).collect()
    })
}

fn header_name(field: &str) -> Option<String> {
    let name = match field {
        "ID" => "CONTAINER ID",
        "Container" => "CONTAINER",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        _ => return None,
    };
    Some(name.to_string())
}

fn u(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64
}

/// The fields docker's stats templates know, computed as docker's CLI does.
pub fn row(asked: &str, s: &Value, no_trunc: bool) -> Value {
    let (cpu, pre) = (&s["cpu_stats"], &s["precpu_stats"]);
    let cpu_delta = u(&cpu["cpu_usage"]["total_usage"]) - u(&pre["cpu_usage"]["total_usage"]);
    let system_delta = u(&cpu["system_cpu_usage"]) - u(&pre["system_cpu_usage"]);
    let cpus = u(&cpu["online_cpus"]);
    let cpu_percent = if cpu_delta > 0.0 && system_delta > 0.0 {
        cpu_delta / system_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = u(&mem["usage"]);
    let inactive = mem["stats"]["total_inactive_file"]
        .as_u64()
        .or(mem["stats"]["inactive_file"].as_u64())
        .map(|v| v as f64)
        .filter(|v| *v < usage)
        .unwrap_or(0.0);
    let mem_used = usage - inactive;
    let limit = u(&mem["limit"]);
    let mem_percent = if limit > 0.0 {
        mem_used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for net in s["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += u(&net["rx_bytes"]);
        tx += u(&net["tx_bytes"]);
    }
    let (mut read, mut write) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += u(&e["value"]),
            Some("write") => write += u(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    let id = if no_trunc {
        id
    } else {
        &id[..id.len().min(12)]
    };
    json!({
        "Container": asked,
        "ID": id,
        "Name": s["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "CPUPerc": format!("{cpu_percent:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(mem_used), bytes_size(limit)),
        "MemPerc": format!("{mem_percent:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx, 3), human_size(tx, 3)),
        "BlockIO": format!("{} / {}", human_size(read, 3), human_size(write, 3)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_dockers() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 3 << 20, "limit": 1u64 << 30,
                             "stats": {"total_inactive_file": 1 << 20}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 648}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "Read", "value": 4096}, {"op": "Write", "value": 0}, {"op": "Total", "value": 4096}]},
            "pids_stats": {"current": 3},
        });
        let r = row("web", &s, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "2MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.20%");
        assert_eq!(r["NetIO"], "1.5kB / 648B");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "3");
    }
}
