//! `GET /containers/{id}/stats?stream=…&one-shot=…`: the container's usage in Docker's
//! JSON, read by the engine (`berth_engine::stats`, the one cgroup reader). Streamed
//! once a second with the previous read as `precpu_stats`; `stream=false` answers one
//! read whose `precpu_stats` is an earlier read of the same container: the newest of
//! the last few berthd made that is between [`MIN_AGE`] and [`MAX_AGE`] old, else one taken
//! [`WINDOW`] before (Docker waits for its collector's next second); `one-shot` one
//! read at once with empty `precpu_stats`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_engine::stats::{self, Sample};
use berth_engine::{self as engine, ContainerRecord};
use serde_json::{json, Map, Value};

use super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

/// How far apart the two reads of `stream=false` are without a usable earlier one.
pub const WINDOW: Duration = Duration::from_millis(200);
/// The ages an earlier read may have to serve as `precpu_stats`.
pub const MIN_AGE: Duration = Duration::from_millis(100);
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Reads kept per container: a client polling faster than [`MIN_AGE`] (a `stats
/// --no-stream` loop) still finds one old enough a read or two back.
const KEPT: usize = 3;

/// The last reads of each container, newest last, for the next `stream=false`
/// (entries older than [`MAX_AGE`] are dropped as others are added).
fn last_reads() -> &'static Mutex<HashMap<String, Vec<Sample>>> {
    static LAST: OnceLock<Mutex<HashMap<String, Vec<Sample>>>> = OnceLock::new();
    LAST.get_or_init(Default::default)
}

fn age(s: &Sample) -> Duration {
    let now = berth_now_nanos();
    Duration::from_nanos(now.saturating_sub(s.at).max(0) as u64)
}

fn berth_now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The newest earlier read of `id` fit to be `precpu_stats`.
fn earlier(id: &str) -> Option<Sample> {
    let map = last_reads().lock().unwrap_or_else(|p| p.into_inner());
    map.get(id)?
        .iter()
        .rev()
        .find(|s| (MIN_AGE..=MAX_AGE).contains(&age(s)))
        .cloned()
}

fn remember(id: &str, sample: &Sample) {
    let mut map = last_reads().lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, reads| {
        reads.retain(|s| age(s) <= MAX_AGE);
        !reads.is_empty()
    });
    let reads = map.entry(id.to_string()).or_default();
    reads.push(sample.clone());
    if reads.len() > KEPT {
        reads.remove(0);
    }
}
/// How often a stream sends.
const INTERVAL: Duration = Duration::from_secs(1);

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &ApiRequest,
) -> Result<Reply, ApiError> {
    let record = engine::find(&daemon.engine, reference)?;
    let stream = match req.query("stream") {
        None | Some("") => true,
        Some(_) => req.query_bool("stream")?,
    };
    let one_shot = req.query_bool("one-shot")?;
    if one_shot && stream {
        return Err(ApiError::BadRequest(
            "cannot have stream=true and one-shot=true".into(),
        ));
    }
    if !stream {
        let first = match (one_shot, earlier(&record.id)) {
            (true, _) => None,
            (false, Some(s)) => Some(s),
            (false, None) => {
                let s = read(daemon, &record).await?;
                tokio::time::sleep(WINDOW).await;
                Some(s)
            }
        };
        let record = engine::get(&daemon.engine, &record.id).unwrap_or(record);
        let now = read(daemon, &record).await?;
        remember(&record.id, &now);
        return Ok(Reply::json(&message(&record, &now, first.as_ref())));
    }
    let (tx, reply) = Reply::channel("application/json");
    let daemon = Arc::clone(daemon);
    tokio::spawn(async move {
        let mut previous: Option<Sample> = None;
        loop {
            // A removed container ends the stream; a stopped one reads as zeros.
            let Ok(record) = engine::get(&daemon.engine, &record.id) else {
                return;
            };
            let Ok(now) = read(&daemon, &record).await else {
                return;
            };
            let line = message(&record, &now, previous.as_ref()).to_string() + "\n";
            if tx.send(bytes::Bytes::from(line)).await.is_err() {
                return;
            }
            previous = Some(now);
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(reply)
}

async fn read(daemon: &Arc<Daemon>, record: &ContainerRecord) -> Result<Sample, ApiError> {
    let (d, r) = (Arc::clone(daemon), record.clone());
    let own_netns = !matches!(
        record.request["HostConfig"]["NetworkMode"].as_str(),
        Some(m) if m == "host" || m == "none" || m.starts_with("container:")
    );
    tokio::task::spawn_blocking(move || stats::sample(&d.engine, &r, own_netns))
        .await
        .map_err(|e| ApiError::Internal(format!("reading stats: {e}")))
}

fn rfc3339(nanos: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_nanos(at).to_string()
}

/// Docker's stats JSON for the read `now`, `pre` the one before (if any).
pub fn message(record: &ContainerRecord, now: &Sample, pre: Option<&Sample>) -> Value {
    let running = record.state.status.has_task();
    let empty = Sample::default();
    let mut m = json!({
        "read": rfc3339(now.at),
        "preread": pre.map(|p| rfc3339(p.at)).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "name": format!("/{}", record.name),
        "id": record.id,
        "pids_stats": pids(now),
        "blkio_stats": blkio(now),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(now),
        "precpu_stats": cpu(pre.unwrap_or(&empty)),
        "memory_stats": memory(now, running),
    });
    if running && !now.networks.is_empty() {
        let nets: Map<String, Value> = now
            .networks
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    json!({
                        "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                        "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                        "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                        "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                    }),
                )
            })
            .collect();
        m["networks"] = Value::Object(nets);
    }
    m
}

fn cpu(s: &Sample) -> Value {
    let c = &s.cgroup;
    let mut v = json!({
        "cpu_usage": {
            "total_usage": c.cpu_usage_ns.unwrap_or(0),
            "usage_in_kernelmode": c.cpu_system_ns.unwrap_or(0),
            "usage_in_usermode": c.cpu_user_ns.unwrap_or(0),
        },
        "throttling_data": {
            "periods": c.cfs_periods.unwrap_or(0),
            "throttled_periods": c.cfs_throttled_periods.unwrap_or(0),
            "throttled_time": c.cfs_throttled_ns.unwrap_or(0),
        },
    });
    // An empty read (no previous one) has no system figures, as Docker's.
    if s.at != 0 {
        v["system_cpu_usage"] = json!(s.system_cpu_ns);
        v["online_cpus"] = json!(s.online_cpus);
    }
    v
}

fn memory(s: &Sample, running: bool) -> Value {
    if !running {
        return json!({});
    }
    let c = &s.cgroup;
    // No limit (v2's `max`, v1's huge number): the host's memory, as Docker reports.
    let limit = match c.memory_limit {
        Some(l) if s.host_memory == 0 || l < s.host_memory => l,
        _ => s.host_memory,
    };
    let stats: Map<String, Value> = c
        .memory_stat
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut v = json!({
        "usage": c.memory_usage.unwrap_or(0),
        "stats": stats,
        "limit": limit,
    });
    if let Some(max) = c.memory_max_usage {
        v["max_usage"] = json!(max);
    }
    if let Some(failcnt) = c.memory_failcnt {
        v["failcnt"] = json!(failcnt);
    }
    v
}

fn pids(s: &Sample) -> Value {
    let mut v = json!({});
    if let Some(n) = s.cgroup.pids_current.or(s.cgroup.threads) {
        v["current"] = json!(n);
    }
    if let Some(l) = s.cgroup.threads_max {
        v["limit"] = json!(l);
    }
    v
}

fn blkio(s: &Sample) -> Value {
    let entries: Vec<Value> = s
        .cgroup
        .io_service_bytes
        .iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.bytes}))
        .collect();
    json!({
        "io_service_bytes_recursive": entries,
        "io_serviced_recursive": null,
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

#[cfg(test)]
mod tests {
    use berth_engine::stats::{CgroupSample, DeviceBytes, NetDev};

    use super::*;

    #[test]
    fn precpu_is_the_newest_read_old_enough_a_read_or_two_back() {
        let ago = |ms: i64| Sample {
            at: berth_now_nanos() - ms * 1_000_000,
            ..Default::default()
        };
        let id = "precpu-ring";
        remember(id, &ago(30));
        assert!(earlier(id).is_none(), "a read 30 ms old is too young");
        remember(id, &ago(20_000));
        remember(id, &ago(400));
        remember(id, &ago(150));
        remember(id, &ago(50));
        // Three kept; the 20 s one was dropped as too old, 50 ms is too young.
        let kept = last_reads().lock().unwrap()[id].len();
        assert_eq!(kept, 3);
        let found = earlier(id).expect("the read 150 ms old");
        assert!(
            (140..1_000).contains(&(age(&found).as_millis() as i64)),
            "{found:?}"
        );
    }

    #[test]
    fn dockers_fields_come_from_the_sample() -> Result<(), serde_json::Error> {
        let mut record: ContainerRecord = serde_json::from_value(json!({
            "id": "c1", "name": "web", "created": "", "image": "busybox", "image_id": "",
            "snapshot": "s", "request": {}, "path": "sh", "args": [], "env": [],
            "working_dir": "/", "user": "", "labels": {}, "tty": false,
            "stop_signal": "SIGTERM", "auto_remove": false, "restart_policy": {},
            "state": {"status": "running", "pid": 9, "exit_code": 0, "started_at": "",
                "finished_at": "", "error": "", "stopped_by_user": false, "restart_count": 0}
        }))?;
        let now = Sample {
            at: 2_000_000_000,
            cgroup: CgroupSample {
                cpu_usage_ns: Some(50),
                cpu_user_ns: Some(30),
                cpu_system_ns: Some(20),
                memory_usage: Some(4096),
                memory_limit: Some(u64::MAX / 2),
                memory_stat: vec![("total_inactive_file".into(), 96)],
                pids_current: Some(2),
                threads_max: Some(50),
                io_service_bytes: vec![DeviceBytes {
                    major: 8,
                    minor: 0,
                    op: "Read".into(),
                    bytes: 7,
                }],
                ..Default::default()
            },
            networks: vec![NetDev {
                name: "eth0".into(),
                rx_bytes: 11,
                ..Default::default()
            }],
            system_cpu_ns: 1000,
            online_cpus: 2,
            host_memory: 1 << 30,
        };
        let m = message(&record, &now, None);
        assert_eq!(m["name"], "/web");
        assert_eq!(m["cpu_stats"]["cpu_usage"]["total_usage"], 50);
        assert_eq!(m["cpu_stats"]["cpu_usage"]["usage_in_usermode"], 30);
        assert_eq!(m["cpu_stats"]["online_cpus"], 2);
        assert!(m["precpu_stats"].get("system_cpu_usage").is_none());
        assert_eq!(m["memory_stats"]["limit"], 1u64 << 30);
        assert_eq!(m["memory_stats"]["stats"]["total_inactive_file"], 96);
        assert_eq!(m["pids_stats"], json!({"current": 2, "limit": 50}));
        assert_eq!(
            m["blkio_stats"]["io_service_bytes_recursive"][0]["value"],
            7
        );
        assert_eq!(m["networks"]["eth0"]["rx_bytes"], 11);
        record.state.status = engine::Status::Exited;
        let m = message(&record, &now, Some(&now));
        assert_eq!(m["memory_stats"], json!({}));
        assert!(m.get("networks").is_none());
        assert_eq!(m["precpu_stats"]["system_cpu_usage"], 1000);
        Ok(())
    }
}
