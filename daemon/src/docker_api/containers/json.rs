//! `GET /containers/json` (list, with filters) and `GET /containers/{id}/json`
//! (inspect), in Docker's shapes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_engine::{self as engine, ContainerRecord, Status};
use serde_json::{json, Value};

use super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

/// Docker's `Status` column: `Up 5 minutes`, `Exited (0) 3 seconds ago`, `Created`.
pub fn status_text(r: &ContainerRecord, now: SystemTime) -> String {
    let since = |t: &str| {
        humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default()
    };
    // Docker's suffix for a container with a health check.
    let health = match r.state.health.as_ref().map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)".to_string(),
        Some(s) if !s.is_empty() => format!(" ({s})"),
        _ => String::new(),
    };
    match r.state.status {
        Status::Running => format!("Up {}{health}", human_duration(since(&r.state.started_at))),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&r.state.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    // go-units' HumanDuration, which docker's Status uses: hours are rounded to the
    // nearest (90 minutes are "2 hours"), the other units truncated.
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// The `Command` of the list: the path and the arguments, an argument with a space in
/// single quotes, as docker lists it (`sh -c 'sleep 1000'`).
fn command(r: &ContainerRecord) -> String {
    let mut out = r.path.clone();
    for arg in &r.args {
        out.push(' ');
        if arg.contains(' ') {
            out.push_str(&format!("'{arg}'"));
        } else {
            out.push_str(arg);
        }
    }
    out
}

fn unix_seconds(t: &str) -> i64 {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn network_mode(r: &ContainerRecord) -> String {
    match r.request["HostConfig"]["NetworkMode"].as_str() {
        Some("") | None => "default".into(),
        Some(m) => m.to_string(),
    }
}

/// Whether the container's exposed ports are open to a network, as Docker lists them:
/// while it runs, on the default (bridge) network; not on `none`, `host` or another
/// container's network.
fn ports_listed(r: &ContainerRecord) -> bool {
    let mode = network_mode(r);
    r.state.status.has_task()
        && !matches!(mode.as_str(), "host" | "none")
        && !mode.starts_with("container:")
}

/// The `Ports` of the list: each exposed port without a public one (berth publishes
/// none yet).
fn ports(r: &ContainerRecord) -> Value {
    if !ports_listed(r) {
        return json!([]);
    }
    let mut ports: Vec<Value> = r
        .exposed_ports
        .iter()
        .filter_map(|k| berth_engine::container_spec::ports::parse(k))
        .filter(|(port, proto)| {
            !r.ports
                .iter()
                .any(|b| b.host_port != 0 && b.container_port == *port && b.protocol == *proto)
        })
        .map(|(port, proto)| json!({"PrivatePort": port, "Type": proto}))
        .collect();
    ports.extend(r.ports.iter().filter(|b| b.host_port != 0).map(|b| {
        json!({
            "IP": if b.host_ip.is_empty() { "0.0.0.0" } else { &b.host_ip },
            "PrivatePort": b.container_port,
            "PublicPort": b.host_port,
            "Type": b.protocol,
        })
    }));
    Value::Array(ports)
}

/// `NetworkSettings.Networks`: each endpoint as Docker's `EndpointSettings`, the
/// addresses filled while the container runs.
fn networks(r: &ContainerRecord) -> Value {
    let map: serde_json::Map<String, Value> = r
        .networks
        .iter()
        .map(|e| {
            let ipam = if e.requested_ip.is_empty() && e.requested_ip6.is_empty() {
                Value::Null
            } else {
                let mut m = serde_json::Map::new();
                if !e.requested_ip.is_empty() {
                    m.insert("IPv4Address".into(), json!(e.requested_ip));
                }
                if !e.requested_ip6.is_empty() {
                    m.insert("IPv6Address".into(), json!(e.requested_ip6));
                }
                Value::Object(m)
            };
            let mut aliases = e.aliases.clone();
            // The default bridge has no names (Docker's endpoints there have none).
            if r.state.status.has_task()
                && e.network_name != berth_engine::networks::DEFAULT_NETWORK
            {
                aliases.push(r.id[..12.min(r.id.len())].to_string());
            }
            (
                e.network_name.clone(),
                json!({
                    "IPAMConfig": ipam,
                    "Links": null,
                    "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
                    "NetworkID": e.network_id,
                    "EndpointID": e.id_for(&r.id),
                    "Gateway": e.gateway,
                    "IPAddress": e.ip_address,
                    "IPPrefixLen": e.prefix_len,
                    "IPv6Gateway": e.gateway6,
                    "GlobalIPv6Address": e.ip6_address,
                    "GlobalIPv6PrefixLen": e.prefix6_len,
                    "MacAddress": e.mac_address,
                    "DriverOpts": null,
                }),
            )
        })
        .collect();
    Value::Object(map)
}

/// Inspect's `NetworkSettings`: the top-level address fields are the default
/// bridge endpoint's, as dockerd fills them (empty on other networks).
fn network_settings(r: &ContainerRecord) -> Value {
    let default = r
        .networks
        .iter()
        .find(|e| e.network_name == berth_engine::networks::DEFAULT_NETWORK);
    let field =
        |f: fn(&berth_engine::networks::Endpoint) -> String| default.map(f).unwrap_or_default();
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": network_ports(r),
        "SandboxKey": "", "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": default.map(|e| e.id_for(&r.id)).unwrap_or_default(),
        "Gateway": field(|e| e.gateway.clone()),
        "GlobalIPv6Address": field(|e| e.ip6_address.clone()),
        "GlobalIPv6PrefixLen": default.map(|e| e.prefix6_len).unwrap_or(0),
        "IPAddress": field(|e| e.ip_address.clone()),
        "IPPrefixLen": default.map(|e| e.prefix_len).unwrap_or(0),
        "IPv6Gateway": field(|e| e.gateway6.clone()),
        "MacAddress": field(|e| e.mac_address.clone()),
        "Networks": networks(r),
    })
}

/// `NetworkSettings.Ports` of inspect: `{"80/tcp": null}` for each exposed port while
/// the ports are listed ([`ports_listed`]).
fn network_ports(r: &ContainerRecord) -> Value {
    if !ports_listed(r) {
        return json!({});
    }
    let mut ports: serde_json::Map<String, Value> = r
        .exposed_ports
        .iter()
        .map(|k| (k.clone(), Value::Null))
        .collect();
    for b in r.ports.iter().filter(|b| b.host_port != 0) {
        let entry = ports.entry(b.key()).or_insert_with(|| json!([]));
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({
                "HostIp": if b.host_ip.is_empty() { "0.0.0.0" } else { &b.host_ip },
                "HostPort": b.host_port.to_string(),
            }));
        }
    }
    Value::Object(ports)
}

/// `Mounts`: the container's mount points as dockerd lists them (`--tmpfs` is not one
/// of them). Records written before berth kept mounts list their volumes only.
/// The /etc/hostname, /etc/hosts and /etc/resolv.conf berth binds from a bundle (the
/// container's, or with `--network container:` the other one's): not in `Mounts`, as
/// dockerd lists none of its own.
fn etc_file(
    engine: &berth_engine::Engine,
    r: &ContainerRecord,
    m: &berth_engine::config::Mount,
) -> bool {
    let berth_engine::config::MountKind::Bind { source, .. } = &m.kind else {
        return false;
    };
    let source = std::path::Path::new(source);
    let containers = engine.dir(&r.id);
    let in_a_bundle = source.parent().and_then(|p| p.parent()) == containers.parent();
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned());
    in_a_bundle
        && matches!(name.as_deref(), Some("hostname" | "hosts" | "resolv.conf"))
        && name.is_some_and(|n| m.destination == format!("/etc/{n}"))
}

fn mounts(engine: &berth_engine::Engine, r: &ContainerRecord) -> Value {
    use berth_engine::config::MountKind;
    if r.mounts.is_empty() {
        return r
            .volumes
            .iter()
            .map(|v| {
                let source = berth_engine::volumes::data_dir(engine, &v.name);
                volume_point(
                    &v.name,
                    &source.to_string_lossy(),
                    &v.destination,
                    "",
                    !v.read_only,
                )
            })
            .collect();
    }
    r.mounts
        .iter()
        .filter(|m| !super::create::from_tmpfs_flag(r, m) && !etc_file(engine, r, m))
        .map(|m| {
            let mode = mount_mode(r, &m.destination);
            match &m.kind {
                MountKind::Bind {
                    source,
                    read_only,
                    propagation,
                    ..
                } => json!({
                    "Type": "bind",
                    "Source": source,
                    "Destination": m.destination,
                    "Mode": mode.unwrap_or_default(),
                    "RW": !read_only,
                    "Propagation": propagation.as_str(),
                }),
                MountKind::Tmpfs { options } => json!({
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m.destination,
                    "Mode": "",
                    "RW": !options.iter().any(|o| o == "ro"),
                    "Propagation": "",
                }),
                MountKind::Volume {
                    name,
                    read_only,
                    source,
                    ..
                } => {
                    // dockerd's local driver marks a volume asked for by `-v` or
                    // `--mount` with an empty mode as `z`.
                    let mode = match mode {
                        Some(m) if m.is_empty() => "z".to_string(),
                        Some(m) => m,
                        None => String::new(),
                    };
                    volume_point(
                        name.as_deref().unwrap_or_default(),
                        source,
                        &m.destination,
                        &mode,
                        !read_only,
                    )
                }
            }
        })
        .collect()
}

fn volume_point(name: &str, source: &str, destination: &str, mode: &str, rw: bool) -> Value {
    json!({
        "Type": "volume",
        "Name": name,
        "Source": source,
        "Destination": destination,
        "Driver": berth_engine::volumes::LOCAL_DRIVER,
        "Mode": mode,
        "RW": rw,
        "Propagation": "",
    })
}

/// The mode dockerd keeps for the mount at `destination`: the `-v` (`Binds`) entry's
/// mode as written, empty for a `--mount`; `None` when neither asked for it (an
/// image's or `Config.Volumes`' volume, one from `--volumes-from`).
fn mount_mode(r: &ContainerRecord, destination: &str) -> Option<String> {
    let hc = &r.request["HostConfig"];
    for bind in hc["Binds"].as_array().into_iter().flatten() {
        let Some(bind) = bind.as_str() else { continue };
        let parts: Vec<&str> = bind.splitn(3, ':').collect();
        let (target, mode) = match parts.as_slice() {
            [t] => (*t, ""),
            [_, t] => (*t, ""),
            [_, t, m] => (*t, *m),
            _ => continue,
        };
        if berth_engine::container_spec::clean_path(target) == destination {
            return Some(mode.to_string());
        }
    }
    let from_mount = hc["Mounts"].as_array().into_iter().flatten().any(|m| {
        m["Target"]
            .as_str()
            .is_some_and(|t| berth_engine::container_spec::clean_path(t) == destination)
    });
    from_mount.then(String::new)
}

fn summary(engine: &berth_engine::Engine, r: &ContainerRecord, now: SystemTime) -> Value {
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command(r),
        "Created": unix_seconds(&r.created),
        "Ports": ports(r),
        "Labels": r.labels,
        "State": r.state.status.as_str(),
        "Status": status_text(r, now),
        "HostConfig": {"NetworkMode": network_mode(r)},
        "NetworkSettings": {"Networks": networks(r)},
        "Mounts": mounts(engine, r),
    })
}

/// Bytes of the files in the container's writable layer (what `SizeRw` reports).
pub fn size_rw(engine: &berth_engine::Engine, r: &ContainerRecord) -> u64 {
    engine
        .images
        .snapshots
        .fs_path(&r.snapshot)
        .map(|p| berth_engine::volumes::du(&p))
        .unwrap_or(0)
}

/// The containers of `GET /system/df`: list entries with `SizeRw` and `SizeRootFs`
/// (the writable layer over the image's size).
pub fn df_entries(
    engine: &berth_engine::Engine,
    records: &[ContainerRecord],
    image_sizes: &std::collections::HashMap<String, u64>,
) -> Vec<Value> {
    let now = SystemTime::now();
    let mut out: Vec<Value> = records
        .iter()
        .map(|r| {
            let rw = size_rw(engine, r);
            let mut entry = summary(engine, r, now);
            entry["SizeRw"] = json!(rw);
            entry["SizeRootFs"] = json!(rw + image_sizes.get(&r.image_id).copied().unwrap_or(0));
            entry
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e["Created"].as_i64().unwrap_or(0)));
    out
}

/// The `filters` query: `{"name":["x"],"status":["running"],"label":["a=b"],…}`.
fn parse_filters(req: &ApiRequest) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(raw) = req.query("filters").filter(|f| !f.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::BadRequest(format!("invalid filters {raw:?}: {e}")))?;
    let mut out = BTreeMap::new();
    let Some(obj) = v.as_object() else {
        return Err(ApiError::BadRequest(format!("invalid filters {raw:?}")));
    };
    for (k, vals) in obj {
        // Both `{"k":["v"]}` and the older `{"k":{"v":true}}` shapes.
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.insert(k.clone(), list);
    }
    for k in out.keys() {
        if !matches!(
            k.as_str(),
            "id" | "name" | "status" | "label" | "ancestor" | "exited"
        ) {
            return Err(ApiError::BadRequest(format!("invalid filter '{k}'")));
        }
    }
    Ok(out)
}

fn matches(r: &ContainerRecord, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "id" => r.id.starts_with(v.as_str()),
                "name" => r.name.contains(v.trim_start_matches('/')),
                "status" => r.state.status.as_str() == v,
                "exited" => {
                    r.state.status == Status::Exited
                        && v.parse::<i64>().ok() == Some(r.state.exit_code)
                }
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => r.labels.get(lk).is_some_and(|x| x == lv),
                    None => r.labels.contains_key(v.as_str()),
                },
                "ancestor" => {
                    r.image == *v
                        || engine_image_name(&r.image) == engine_image_name(v)
                        || r.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                _ => false,
            })
    })
}

fn engine_image_name(s: &str) -> String {
    berth_engine::normalise_image(s).unwrap_or_else(|| s.to_string())
}

/// `GET /containers/json`.
pub fn list(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let all = req.query_bool("all")?;
    let limit = req.query_int("limit")?.filter(|l| *l > 0);
    let filters = parse_filters(req)?;
    let mut records = engine::list(&daemon.engine)?;
    records.retain(|r| {
        (all || filters.contains_key("status") || r.state.status.has_task()) && matches(r, &filters)
    });
    records.sort_by(|a, b| b.created.cmp(&a.created));
    if let Some(l) = limit {
        records.truncate(l as usize);
    }
    let now = SystemTime::now();
    let out: Vec<Value> = records
        .iter()
        .map(|r| summary(&daemon.engine, r, now))
        .collect();
    Ok(Reply::json(&Value::Array(out)))
}

/// `GET /containers/{id}/json`.
pub fn inspect(daemon: &Arc<Daemon>, reference: &str) -> Result<Reply, ApiError> {
    let r = engine::find(&daemon.engine, reference)?;
    let req = &r.request;
    let mut host_config = req["HostConfig"].clone();
    if !host_config.is_object() {
        host_config = json!({});
    }
    let hc = host_config.as_object_mut().expect("an object");
    hc.insert("NetworkMode".into(), json!(network_mode(&r)));
    hc.insert("RestartPolicy".into(), json!({"Name": r.restart_policy.name, "MaximumRetryCount": r.restart_policy.maximum_retry_count}));
    hc.insert("AutoRemove".into(), json!(r.auto_remove));
    for key in [
        "Memory",
        "MemorySwap",
        "MemoryReservation",
        "NanoCpus",
        "CpuShares",
        "CpuPeriod",
        "CpuQuota",
    ] {
        hc.entry(key).or_insert(json!(0));
    }
    hc.entry("PidsLimit").or_insert(Value::Null);
    hc.entry("Binds").or_insert(Value::Null);
    hc.entry("Privileged").or_insert(json!(false));
    hc.entry("ReadonlyRootfs").or_insert(json!(false));
    // Logs are kept per container and read back through the API, as docker's default
    // json-file driver does; clients (the Python SDK's `run`) read logs only for
    // drivers they know to keep them.
    if hc
        .get("LogConfig")
        .and_then(|l| l["Type"].as_str())
        .is_none_or(str::is_empty)
    {
        hc.insert(
            "LogConfig".into(),
            json!({"Type": "json-file", "Config": {}}),
        );
    }
    let dir = daemon.engine.dir(&r.id);
    let s = &r.state;
    let cmd: Value = if req["Cmd"].is_null() {
        Value::Null
    } else {
        req["Cmd"].clone()
    };
    let mut value = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.has_task(),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": if s.started_at.is_empty() { "0001-01-01T00:00:00Z" } else { s.started_at.as_str() },
            "FinishedAt": if s.finished_at.is_empty() { "0001-01-01T00:00:00Z" } else { s.finished_at.as_str() },
        },
        "Image": r.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": daemon.engine.log_of(&r),
        "Name": format!("/{}", r.name),
        "RestartCount": s.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {
            "MergedDir": dir.join("rootfs"),
            "UpperDir": daemon.engine.images.snapshots.fs_path(&r.snapshot).ok(),
        }},
        "Mounts": mounts(&daemon.engine, &r),
        "Config": {
            "Hostname": req["Hostname"].as_str().filter(|h| !h.is_empty()).map(str::to_string).unwrap_or_else(|| r.id.chars().take(12).collect()),
            "Domainname": req["Domainname"].as_str().unwrap_or(""),
            "User": r.user,
            "AttachStdin": req["AttachStdin"].as_bool().unwrap_or(false),
            "AttachStdout": req["AttachStdout"].as_bool().unwrap_or(false),
            "AttachStderr": req["AttachStderr"].as_bool().unwrap_or(false),
            "Tty": r.tty,
            "OpenStdin": req["OpenStdin"].as_bool().unwrap_or(false),
            "StdinOnce": req["StdinOnce"].as_bool().unwrap_or(false),
            "Env": if r.env.is_empty() { Value::Null } else { json!(r.env) },
            "Cmd": cmd,
            "Image": r.image,
            "Volumes": null,
            "WorkingDir": req["WorkingDir"].as_str().unwrap_or(""),
            "Entrypoint": req["Entrypoint"].clone(),
            "OnBuild": null,
            "Labels": r.labels,
            "StopSignal": r.stop_signal,
        },
        "NetworkSettings": network_settings(&r),
    });
    // Docker shows Health only for a container with a check, and its check in Config.
    if let Some(health) = &s.health {
        value["State"]["Health"] = json!(health);
    }
    if let Some(check) = &r.health {
        value["Config"]["Healthcheck"] = json!(check);
    }
    // Docker leaves the key out when no port is exposed.
    if !r.exposed_ports.is_empty() {
        let exposed: serde_json::Map<String, Value> = r
            .exposed_ports
            .iter()
            .map(|k| (k.clone(), json!({})))
            .collect();
        value["Config"]["ExposedPorts"] = Value::Object(exposed);
    }
    Ok(Reply::json(&value))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::human_duration;

    #[test]
    fn durations_read_like_dockers_status() {
        let d = Duration::from_secs;
        assert_eq!(human_duration(d(0)), "Less than a second");
        assert_eq!(human_duration(d(45)), "45 seconds");
        assert_eq!(human_duration(d(61)), "About a minute");
        assert_eq!(human_duration(d(89 * 60)), "About an hour");
        assert_eq!(human_duration(d(90 * 60)), "2 hours");
        assert_eq!(human_duration(d(47 * 3600 + 1800)), "2 days");
        assert_eq!(human_duration(d(15 * 86_400)), "2 weeks");
    }
}
