//! `GET /events?since=…&until=…&filters=…`: the engine's event log as Docker streams
//! it, one JSON message a line. `since`/`until` replay what the engine's ring still
//! holds; `until` also ends the stream when it passes.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::events::{Event, EventType};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::images::filters::{self, Filters};
use super::{ApiError, ApiRequest, Reply};
use crate::logs::docker_logs::parse_unix_time;
use crate::Daemon;

/// The filter kinds Docker's `/events` knows; any other is refused.
const KINDS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

pub fn handle(daemon: &Arc<Daemon>, req: &ApiRequest) -> Result<Reply, ApiError> {
    let time = |name: &str| -> Result<Option<i128>, ApiError> {
        match req.query(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_unix_time(v)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("invalid value for {name:?}: {v:?}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let filters = filters::parse(req.query("filters"))?;
    filters::only(&filters, KINDS)?;
    if let Some(t) = filters.get("type") {
        let known = [
            "container",
            "image",
            "volume",
            "network",
            "daemon",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ];
        if let Some(bad) = t.iter().find(|t| !known.contains(&t.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "invalid filter 'type={bad}': unknown event type"
            )));
        }
    }
    let (past, mut rx) = daemon.engine.events_log.subscribe();
    let (tx, reply) = Reply::channel("application/json");
    tokio::spawn(async move {
        let within = |e: &Event| {
            since.is_none_or(|s| i128::from(e.time_nano) >= s)
                && until.is_none_or(|u| i128::from(e.time_nano) <= u)
        };
        if since.is_some() || until.is_some() {
            for e in past.iter().filter(|e| within(e) && matches(&filters, e)) {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
        }
        // Until `until` passes (forever without one), or the client goes.
        let deadline = until.map(|u| {
            let now = berth_now_nanos();
            Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
        });
        let end = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return,
                _ = tx.closed() => return,
                got = rx.recv() => match got {
                    Ok(e) => {
                        if within(&e) && matches(&filters, &e) && tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "an events reader fell behind");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(reply)
}

fn berth_now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Docker's JSON message for `e`, with the old `status`/`id`/`from` fields.
pub fn message(e: &Event) -> Value {
    let mut m = json!({
        "Type": e.kind.as_str(),
        "Action": e.action,
        "Actor": {"ID": e.actor_id, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time_nano / 1_000_000_000,
        "timeNano": e.time_nano,
    });
    m["status"] = json!(e.action);
    m["id"] = json!(e.actor_id);
    if e.kind == EventType::Container {
        if let Some(image) = e.attributes.get("image") {
            m["from"] = json!(image);
        }
    }
    m
}

fn line(e: &Event) -> bytes::Bytes {
    bytes::Bytes::from(message(e).to_string() + "\n")
}

/// Docker's rules: every filter kind given must match (values of one kind are
/// alternatives).
pub fn matches(filters: &Filters, e: &Event) -> bool {
    let exact = |key: &str, v: &str| filters.get(key).is_none_or(|w| w.iter().any(|x| x == v));
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    // An ID or a name, by prefix (Docker's "fuzzy" match), for the kinds that name
    // an object.
    let fuzzy = |key: &str| {
        filters.get(key).is_none_or(|w| {
            w.iter()
                .any(|x| e.actor_id.starts_with(x.as_str()) || name.starts_with(x.as_str()))
        })
    };
    let action_kind = e.action.split(':').next().unwrap_or("");
    let event_ok = filters
        .get("event")
        .is_none_or(|w| w.iter().any(|x| x == &e.action || x == action_kind));
    let image_ok = filters.get("image").is_none_or(|w| {
        let attr = match e.kind {
            EventType::Container => "image",
            EventType::Image => "name",
        };
        let image = e.attributes.get(attr).map(String::as_str).unwrap_or("");
        let candidates = [e.actor_id.as_str(), image];
        w.iter().any(|x| {
            candidates
                .iter()
                .any(|c| !c.is_empty() && (c == x || strip_tag(c) == strip_tag(x)))
        })
    });
    let labels_ok = filters.get("label").is_none_or(|w| {
        w.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => e.attributes.get(k).is_some_and(|a| a == v),
            None => e.attributes.contains_key(l),
        })
    });
    event_ok
        && exact("type", e.kind.as_str())
        && exact("scope", "local")
        && image_ok
        && labels_ok
        && ["container", "daemon", "network", "volume", "plugin"]
            .iter()
            .all(|k| fuzzy(k))
        && ["node", "service", "secret", "config"]
            .iter()
            .all(|k| !filters.contains_key(*k))
}

/// `busybox:latest` → `busybox`; `host:5000/a` stays (a port is no tag); digests stay.
fn strip_tag(image: &str) -> &str {
    if image.contains('@') {
        return image;
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn container(action: &str, name: &str, image: &str) -> Event {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert("image".to_string(), image.to_string());
        attributes.insert("tier".to_string(), "web".to_string());
        Event {
            kind: EventType::Container,
            action: action.to_string(),
            actor_id: "abcdef0123".to_string(),
            attributes,
            time_nano: 1_700_000_000_123_456_789,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Filters {
        let mut out = Filters::new();
        for (k, v) in pairs {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        out
    }

    #[test]
    fn filters_match_as_dockers_do() {
        let e = container("exec_start: sh -c true", "web1", "busybox:latest");
        assert!(matches(&f(&[]), &e));
        assert!(matches(&f(&[("event", "exec_start")]), &e));
        assert!(!matches(&f(&[("event", "start")]), &e));
        assert!(matches(&f(&[("container", "web1")]), &e));
        assert!(matches(&f(&[("container", "abcd")]), &e));
        assert!(!matches(&f(&[("container", "other")]), &e));
        assert!(matches(&f(&[("image", "busybox")]), &e));
        assert!(!matches(&f(&[("image", "alpine")]), &e));
        assert!(matches(&f(&[("label", "tier=web"), ("label", "tier")]), &e));
        assert!(!matches(&f(&[("label", "tier=db")]), &e));
        assert!(matches(&f(&[("type", "container"), ("type", "image")]), &e));
        assert!(!matches(&f(&[("type", "image")]), &e));
        assert!(!matches(&f(&[("network", "x")]), &e));
    }

    #[test]
    fn messages_carry_the_old_fields_too() {
        let m = message(&container("die", "web1", "busybox"));
        assert_eq!(m["Type"], "container");
        assert_eq!(m["status"], "die");
        assert_eq!(m["from"], "busybox");
        assert_eq!(m["time"], 1_700_000_000);
        assert_eq!(m["timeNano"], 1_700_000_000_123_456_789i64);
        assert_eq!(m["Actor"]["Attributes"]["name"], "web1");
    }

    #[test]
    fn tags_are_stripped_but_not_ports() {
        assert_eq!(strip_tag("busybox:1"), "busybox");
        assert_eq!(strip_tag("host:5000/a"), "host:5000/a");
        assert_eq!(strip_tag("host:5000/a:2"), "host:5000/a");
    }
}
