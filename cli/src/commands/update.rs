//! `update`: new limits or restart policy for one or more containers, sent as Docker's
//! `UpdateConfig`; prints each container updated and the daemon's warnings.

use serde_json::{Map, Value};

use super::container::enc;
use super::Output;
use crate::client::Client;
use crate::run_args::{parse_bytes, parse_cpus, restart_policy};

/// The flags of `update`, as given.
#[derive(Debug, Default, Clone)]
pub struct UpdateFlags {
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpus: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart: Option<String>,
    pub blkio_weight: Option<u16>,
}

/// The API body for `flags`: only what was given.
pub fn body(flags: &UpdateFlags) -> anyhow::Result<Value> {
    let mut b = Map::new();
    let bytes = |flag: &'static str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        Ok(match v.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(v) => Some(parse_bytes(flag, v)?),
        })
    };
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.to_string(), v);
        }
    };
    put("CpuShares", flags.cpu_shares.map(Value::from));
    put("CpuPeriod", flags.cpu_period.map(Value::from));
    put("CpuQuota", flags.cpu_quota.map(Value::from));
    put(
        "NanoCpus",
        flags
            .cpus
            .as_deref()
            .map(parse_cpus)
            .transpose()?
            .map(Value::from),
    );
    put("CpusetCpus", flags.cpuset_cpus.clone().map(Value::from));
    put("CpusetMems", flags.cpuset_mems.clone().map(Value::from));
    put("Memory", bytes("--memory", &flags.memory)?.map(Value::from));
    put(
        "MemoryReservation",
        bytes("--memory-reservation", &flags.memory_reservation)?.map(Value::from),
    );
    put(
        "MemorySwap",
        bytes("--memory-swap", &flags.memory_swap)?.map(Value::from),
    );
    put("PidsLimit", flags.pids_limit.map(Value::from));
    put("BlkioWeight", flags.blkio_weight.map(Value::from));
    if let Some(r) = flags.restart.as_deref() {
        put("RestartPolicy", Some(restart_policy(Some(r))?));
    }
    if b.is_empty() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    Ok(Value::Object(b))
}

pub async fn run(
    client: &Client,
    flags: &UpdateFlags,
    containers: &[String],
) -> anyhow::Result<Output> {
    let body = body(flags)?;
    let mut out = String::new();
    let mut failed = Vec::new();
    for name in containers {
        let path = format!("/containers/{}/update", enc(name));
        match client.post_json(&path, Some(body.clone())).await {
            Ok(answer) => {
                for w in answer["Warnings"].as_array().into_iter().flatten() {
                    eprintln!("{}", w.as_str().unwrap_or(""));
                }
                out.push_str(name);
                out.push('\n');
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let output = Output::text(out);
    Ok(if failed.is_empty() {
        output
    } else {
        output.failing(anyhow::anyhow!(failed.join("\n")))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_given_flags_are_sent() -> anyhow::Result<()> {
        let flags = UpdateFlags {
            memory: Some("128m".into()),
            memory_swap: Some("-1".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some(20),
            restart: Some("on-failure:2".into()),
            ..Default::default()
        };
        assert_eq!(
            body(&flags)?,
            json!({"Memory": 128 << 20, "MemorySwap": -1, "NanoCpus": 500_000_000,
                   "PidsLimit": 20,
                   "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
        );
        assert!(body(&UpdateFlags::default()).is_err());
        Ok(())
    }
}
