//! Attaching and detaching pods: ADD, DEL and CHECK through the plugin chain, with the
//! result cache making DEL repeatable after restarts and crashes.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::cache::CacheEntry;
use crate::config::NetworkConfig;
use crate::exec::Invocation;
use crate::manager::{Cni, PodNetworkStatus};
use crate::netns::Netns;
use crate::pod::PodNetwork;
use crate::result::{CniResult, ResultError};
use crate::{ipmasq, CniError};

/// A pod attachment recorded in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub pod_id: String,
    pub network: String,
    pub if_name: String,
    pub netns: PathBuf,
    /// False when ADD never finished (crash mid-ADD, or a failed ADD whose undo failed).
    pub complete: bool,
}

impl Cni {
    /// Attaches the pod (CNI ADD through the whole chain). On failure, everything done is
    /// undone with DEL; if that DEL fails too, the cache keeps the attachment so a later
    /// [`Cni::teardown`] can finish it.
    #[tracing::instrument(name = "cni_setup", skip_all, fields(pod = %pod.id))]
    pub fn setup(&self, pod: &PodNetwork) -> Result<PodNetworkStatus, CniError> {
        pod.validate().map_err(CniError::InvalidPod)?;
        let net = self.network()?;
        let ns = Netns::at(&pod.netns);
        if !ns.is_pinned() {
            return Err(CniError::InvalidPod(format!(
                "network namespace {} does not exist",
                pod.netns.display()
            )));
        }
        ns.set_loopback_up()?;
        let netns_str = pod.netns.display().to_string();
        // A retried RunPodSandbox: reuse a completed ADD into the same namespace; finish
        // undoing anything else left for this id (a half-done ADD, another network).
        for old in self.cached_for(&pod.id)? {
            if let (true, Some(raw)) = (
                old.network_name == net.name && old.netns == netns_str,
                &old.result,
            ) {
                if let Ok(result) = CniResult::from_value(raw) {
                    tracing::info!(pod = %pod.id, network = %net.name, "reusing the cached CNI ADD result");
                    return Ok(PodNetworkStatus {
                        network: net.name.clone(),
                        if_name: self.opts.if_name.clone(),
                        ips: result.pod_ips(),
                        result,
                    });
                }
            }
            self.del_entry(&old, Path::new(&old.netns))?;
        }
        let mut entry = CacheEntry::new(
            &net.name,
            &pod.id,
            &self.opts.if_name,
            &netns_str,
            &pod.cni_args(),
            pod.runtime_config(),
            net.to_json(),
        );
        self.cache.store(&entry)?;
        let mut prev: Option<Value> = None;
        for (i, p) in net.plugins.iter().enumerate() {
            let stdin = plugin_conf(&net, &p.raw, &entry.runtime_config, prev.as_ref());
            let inv = self.invocation("ADD", &entry, &entry.netns);
            let outcome = self
                .runner
                .run(&p.plugin_type, &inv, &stdin)
                .map_err(|source| CniError::Plugin {
                    network: net.name.clone(),
                    source,
                });
            let outcome = outcome.and_then(|v| match v {
                // The spec requires ADD to print a result; chaining needs it.
                Value::Null => Err(CniError::BadResult {
                    network: net.name.clone(),
                    source: ResultError {
                        version: net.cni_version.clone(),
                        msg: format!("plugin {} printed no result for ADD", p.plugin_type),
                    },
                }),
                v => Ok(v),
            });
            match outcome {
                Ok(v) => {
                    prev = Some(v);
                    // The first plugin's result (the interface and its addresses) is
                    // kept before the rest run: if the process dies part-way, a later
                    // DEL hands it to the plugins that need it to find what they made
                    // (the firewall plugin's per-address rules).
                    if i == 0 && net.plugins.len() > 1 {
                        entry.result = prev.clone();
                        self.cache.store(&entry)?;
                    }
                }
                Err(add_err) => {
                    entry.result = prev;
                    return Err(self.rollback(&entry, add_err));
                }
            }
        }
        let raw = prev.unwrap_or(Value::Null);
        let parsed = CniResult::from_value(&raw).map_err(|source| CniError::BadResult {
            network: net.name.clone(),
            source,
        });
        entry.result = Some(raw);
        let result = match parsed {
            Ok(r) => r,
            Err(e) => return Err(self.rollback(&entry, e)),
        };
        self.cache.store(&entry)?;
        let ips = result.pod_ips();
        tracing::info!(pod = %pod.id, network = %net.name, ?ips, "pod network attached");
        Ok(PodNetworkStatus {
            network: net.name.clone(),
            if_name: self.opts.if_name.clone(),
            ips,
            result,
        })
    }

    fn rollback(&self, entry: &CacheEntry, add_err: CniError) -> CniError {
        match self.del_entry(entry, &PathBuf::from(&entry.netns)) {
            Ok(()) => add_err,
            Err(del_err) => CniError::RollbackFailed {
                add: Box::new(add_err),
                del: Box::new(del_err),
            },
        }
    }

    /// Detaches the pod (CNI DEL in reverse chain order) with the config, arguments and
    /// result cached by its ADD, even after a restart; falls back to the current config
    /// when nothing is cached. Works when the netns is already gone. Succeeds when there
    /// is nothing left to do; on error, call again later (the cache entry stays).
    #[tracing::instrument(name = "cni_teardown", skip_all, fields(pod = %pod.id))]
    pub fn teardown(&self, pod: &PodNetwork) -> Result<(), CniError> {
        pod.validate().map_err(CniError::InvalidPod)?;
        let mut entries = self.cached_for(&pod.id)?;
        if entries.is_empty() {
            // Nothing cached: no ADD of ours ever started, or the cache was lost (a reboot
            // wiping the state dir). DEL with the current config is harmless and frees
            // reservations that outlive reboots (host-local's files).
            let net = match self.network() {
                Ok(net) => net,
                Err(e) => {
                    tracing::warn!(pod = %pod.id, error = %e, "no cached attachment and no usable config: nothing to detach");
                    return Ok(());
                }
            };
            entries.push(CacheEntry::new(
                &net.name,
                &pod.id,
                &self.opts.if_name,
                &pod.netns.display().to_string(),
                &pod.cni_args(),
                pod.runtime_config(),
                net.to_json(),
            ));
        }
        let mut errors = Vec::new();
        for e in entries {
            let netns = if pod.netns.as_os_str().is_empty() {
                PathBuf::from(&e.netns)
            } else {
                pod.netns.clone()
            };
            if let Err(err) = self.del_entry(&e, &netns) {
                errors.push(err);
            }
        }
        match errors.len() {
            0 => {
                tracing::info!(pod = %pod.id, "pod network detached");
                Ok(())
            }
            1 => Err(errors.remove(0)),
            _ => Err(CniError::Many(errors)),
        }
    }

    /// Runs DEL for one cached attachment and drops the cache entry when it all succeeded.
    fn del_entry(&self, e: &CacheEntry, netns: &Path) -> Result<(), CniError> {
        let net = NetworkConfig::parse(Path::new("<cache>"), e.config.to_string().as_bytes())?;
        let pinned = Netns::at(netns).is_pinned();
        let netns_arg = if pinned {
            netns.display().to_string()
        } else {
            String::new()
        };
        let prev = if version_at_least(&net.cni_version, (0, 4)) {
            e.result.as_ref()
        } else {
            None
        };
        let mut failures = Vec::new();
        for p in net.plugins.iter().rev() {
            let stdin = plugin_conf(&net, &p.raw, &e.runtime_config, prev);
            let inv = self.invocation("DEL", e, &netns_arg);
            if let Err(err) = self.runner.run(&p.plugin_type, &inv, &stdin) {
                failures.push(err.to_string());
            }
        }
        self.cleanup_ipmasq(&net, e, &mut failures);
        if !failures.is_empty() {
            return Err(CniError::Teardown {
                network: net.name.clone(),
                container_id: e.container_id.clone(),
                errors: failures,
            });
        }
        self.cache
            .remove(&e.network_name, &e.container_id, &e.if_name)?;
        Ok(())
    }

    fn cleanup_ipmasq(&self, net: &NetworkConfig, e: &CacheEntry, failures: &mut Vec<String>) {
        let masq = net.plugins.iter().any(|p| {
            p.plugin_type == "bridge" && p.raw.get("ipMasq").and_then(Value::as_bool) == Some(true)
        });
        let Some(result) = e
            .result
            .as_ref()
            .and_then(|r| CniResult::from_value(r).ok())
        else {
            return;
        };
        if masq {
            if let Err(err) = ipmasq::teardown(&net.name, &e.container_id, &result.pod_ips()) {
                failures.push(format!("removing masquerade rules: {err}"));
            }
        }
    }

    /// CNI CHECK of an attached pod (cniVersion ≥ 0.4.0 and not `disableCheck`).
    #[tracing::instrument(name = "cni_check", skip_all, fields(pod = %pod.id))]
    pub fn check(&self, pod: &PodNetwork) -> Result<(), CniError> {
        pod.validate().map_err(CniError::InvalidPod)?;
        let entry = self
            .cached_for(&pod.id)?
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NotAttached(pod.id.clone()))?;
        let cached =
            NetworkConfig::parse(Path::new("<cache>"), entry.config.to_string().as_bytes())?;
        if cached.disable_check || !version_at_least(&cached.cni_version, (0, 4)) {
            return Ok(());
        }
        let Some(result) = entry.result.as_ref() else {
            return Err(CniError::NotAttached(pod.id.clone()));
        };
        for p in &cached.plugins {
            let stdin = plugin_conf(&cached, &p.raw, &entry.runtime_config, Some(result));
            let inv = self.invocation("CHECK", &entry, &entry.netns);
            self.runner
                .run(&p.plugin_type, &inv, &stdin)
                .map_err(|source| CniError::Plugin {
                    network: cached.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Attachments in the cache (ADDs not yet undone), for reconciliation after a restart:
    /// call [`Cni::teardown`] for those whose pod no longer exists.
    pub fn cached_attachments(&self) -> Result<Vec<Attachment>, CniError> {
        Ok(self
            .cache
            .all()?
            .into_iter()
            .map(|e| Attachment {
                complete: e.result.is_some(),
                pod_id: e.container_id,
                network: e.network_name,
                if_name: e.if_name,
                netns: PathBuf::from(e.netns),
            })
            .collect())
    }

    fn cached_for(&self, pod_id: &str) -> Result<Vec<CacheEntry>, CniError> {
        Ok(self
            .cache
            .find_container(pod_id)?
            .into_iter()
            .filter(|e| e.if_name == self.opts.if_name)
            .collect())
    }

    fn invocation<'a>(
        &'a self,
        command: &'a str,
        e: &'a CacheEntry,
        netns: &'a str,
    ) -> Invocation<'a> {
        Invocation {
            command,
            container_id: &e.container_id,
            netns,
            if_name: &e.if_name,
            args: &e.cni_args,
        }
    }
}

/// The stdin config for one plugin of the chain: its own object plus the list's name and
/// version, `prevResult`, and the capability arguments it declared.
fn plugin_conf(
    net: &NetworkConfig,
    raw: &Map<String, Value>,
    rc: &Map<String, Value>,
    prev: Option<&Value>,
) -> Vec<u8> {
    let mut conf = raw.clone();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(prev) = prev.filter(|p| !p.is_null()) {
        conf.insert("prevResult".into(), prev.clone());
    }
    let declared: Map<String, Value> = rc
        .iter()
        .filter(|(cap, _)| {
            raw.get("capabilities")
                .and_then(|c| c.get(cap.as_str()))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !declared.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(declared));
    }
    Value::Object(conf).to_string().into_bytes()
}

pub(crate) fn version_at_least(v: &str, min: (u32, u32)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_only_for_declared_capabilities() -> Result<(), Box<dyn std::error::Error>> {
        let net = NetworkConfig::parse(
            std::path::Path::new("t"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},
                {"type":"portmap","capabilities":{"portMappings":true,"dns":false}}]}"#,
        )?;
        let mut rc = Map::new();
        rc.insert("portMappings".into(), serde_json::json!([{"hostPort": 1}]));
        rc.insert("dns".into(), serde_json::json!({"servers": ["1.1.1.1"]}));
        let prev = serde_json::json!({"cniVersion":"1.0.0","ips":[]});
        let bridge: Value =
            serde_json::from_slice(&plugin_conf(&net, &net.plugins[0].raw, &rc, None))?;
        assert_eq!(
            bridge,
            serde_json::json!({"type":"bridge","name":"n","cniVersion":"1.0.0"})
        );
        let pm: Value =
            serde_json::from_slice(&plugin_conf(&net, &net.plugins[1].raw, &rc, Some(&prev)))?;
        assert_eq!(
            pm["runtimeConfig"],
            serde_json::json!({"portMappings":[{"hostPort":1}]})
        );
        assert_eq!(pm["prevResult"], prev);
        Ok(())
    }

    #[test]
    fn cni_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Cni>();
    }

    #[test]
    fn versions_compare() {
        assert!(version_at_least("0.4.0", (0, 4)));
        assert!(version_at_least("1.0.0", (0, 4)));
        assert!(!version_at_least("0.3.1", (0, 4)));
    }
}
