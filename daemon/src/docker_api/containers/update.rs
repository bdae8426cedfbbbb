//! `POST /containers/{id}/update`: Docker's `UpdateConfig` (the limits of a
//! `HostConfig` and its restart policy) applied by `berth_engine::update`; zero or
//! absent fields stay as they were, and a field berth cannot change is refused by
//! name. Answers `{"Warnings": …}`.

use std::sync::Arc;

use berth_engine::restart_policy::RestartPolicy;
use berth_engine::{self as engine, Update};
use serde_json::{json, Value};

use super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

/// The fields berth applies.
const APPLIED: &[&str] = &[
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "NanoCpus",
    "NanoCPUs",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "RestartPolicy",
];

pub async fn handle(
    daemon: &Arc<Daemon>,
    reference: &str,
    req: &mut ApiRequest,
) -> Result<Reply, ApiError> {
    let body: Value = req.json().await?;
    let update = parse(&body)?;
    let changed: Vec<(String, Value)> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| APPLIED.contains(&k.as_str()) && is_set(v))
        .map(|(k, v)| (k.replace("NanoCPUs", "NanoCpus"), v.clone()))
        .collect();
    let warnings = engine::update(&daemon.engine, reference, update, move |request| {
        if !request["HostConfig"].is_object() {
            return;
        }
        for (k, v) in changed {
            request["HostConfig"][k] = v;
        }
    })
    .await?;
    let warnings = (!warnings.is_empty()).then_some(warnings);
    Ok(Reply::json(&json!({ "Warnings": warnings })))
}

/// A value that asks for a change (Docker's zero values leave a setting alone).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o.values().any(is_set),
    }
}

pub fn parse(body: &Value) -> Result<Update, ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "the update body is not a JSON object".into(),
        ));
    };
    if let Some((k, _)) = fields
        .iter()
        .find(|(k, v)| !APPLIED.contains(&k.as_str()) && is_set(v))
    {
        return Err(ApiError::BadRequest(format!(
            "berth cannot update {k} of a container"
        )));
    }
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("{k}: expected an integer, got {v}"))),
        }
    };
    let nonzero = |k: &str| -> Result<Option<i64>, ApiError> { Ok(int(k)?.filter(|v| *v != 0)) };
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let unsigned = |k: &str| -> Result<Option<u64>, ApiError> {
        match nonzero(k)? {
            Some(v) if v < 0 => Err(ApiError::BadRequest(format!("{k} cannot be negative"))),
            v => Ok(v.map(|v| v as u64)),
        }
    };
    let restart_policy = match fields.get("RestartPolicy") {
        Some(p) if is_set(p) => Some(
            serde_json::from_value::<RestartPolicy>(p.clone())
                .map_err(|e| ApiError::BadRequest(format!("RestartPolicy: {e}")))?,
        ),
        _ => None,
    };
    Ok(Update {
        memory: nonzero("Memory")?,
        memory_reservation: nonzero("MemoryReservation")?,
        memory_swap: nonzero("MemorySwap")?,
        cpu_shares: unsigned("CpuShares")?,
        cpu_period: unsigned("CpuPeriod")?,
        cpu_quota: nonzero("CpuQuota")?,
        nano_cpus: nonzero("NanoCpus")?.or(nonzero("NanoCPUs")?),
        cpuset_cpus: text("CpusetCpus"),
        cpuset_mems: text("CpusetMems"),
        // Present (even 0 or -1, both unlimited) changes it; null leaves it.
        pids_limit: int("PidsLimit")?,
        restart_policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_zero_values_change_nothing_and_unknown_fields_are_refused() {
        // What docker 20.10's CLI sends for `update --memory 128m --pids-limit 20`.
        let body = json!({"Memory": 134217728, "MemorySwap": 0, "CpuShares": 0,
            "BlkioWeight": 0, "KernelMemory": 0, "PidsLimit": 20, "CpusetCpus": "",
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}});
        let u = parse(&body).ok();
        assert_eq!(
            u,
            Some(Update {
                memory: Some(134217728),
                pids_limit: Some(20),
                ..Default::default()
            })
        );
        let policy =
            parse(&json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}))
                .ok()
                .and_then(|u| u.restart_policy);
        assert_eq!(
            policy.map(|p| (p.name, p.maximum_retry_count)),
            Some(("on-failure".into(), 3))
        );
        let refused = parse(&json!({"BlkioWeight": 300}))
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|m| m.contains("BlkioWeight")));
    }
}
