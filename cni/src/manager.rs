//! [`Cni`]: attach pods to the configured network, detach them, check them, report status.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cache::{CacheEntry, ResultCache};
use crate::config::{self, Discovered, NetworkConfig};
use crate::default_network::DefaultNetwork;
use crate::exec::{Invocation, PluginRunner};
use crate::netns::Netns;
use crate::pod::PodNetwork;
use crate::result::CniResult;
use crate::{ipmasq, CniError};

/// Where configs, plugins and the cache live.
#[derive(Debug, Clone)]
pub struct CniOptions {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    /// Holds `results/`; berth uses `<state>/cni`.
    pub cache_dir: PathBuf,
    /// Written to the conf dir when it holds no config; `None` never writes one.
    pub default_network: Option<DefaultNetwork>,
    pub plugin_timeout: Duration,
    pub if_name: String,
}

impl Default for CniOptions {
    fn default() -> Self {
        CniOptions {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cache_dir: "/run/berth/cni".into(),
            default_network: Some(DefaultNetwork::default()),
            plugin_timeout: Duration::from_secs(60),
            if_name: "eth0".into(),
        }
    }
}

/// NetworkReady for CRI's `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub ready: bool,
    /// A CamelCase reason when not ready, e.g. `InvalidNetworkConfig`.
    pub reason: String,
    pub message: String,
    /// The network in use, when one is.
    pub network: Option<String>,
}

/// What ADD produced for a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodNetworkStatus {
    pub network: String,
    pub if_name: String,
    /// The pod's addresses, IPv4 first.
    pub ips: Vec<IpAddr>,
    pub result: CniResult,
}

#[derive(Default)]
struct Loaded {
    signature: Option<config::DirSignature>,
    discovered: Option<Result<Arc<NetworkConfig>, (String, String)>>,
    /// Plugins that answered VERSION for the loaded config, so status() asks only once.
    versions_ok: Option<Result<(), (String, String)>>,
}

/// The CNI manager the runtime holds for its lifetime.
pub struct Cni {
    opts: CniOptions,
    runner: PluginRunner,
    cache: ResultCache,
    loaded: Mutex<Loaded>,
}

impl Cni {
    pub fn new(opts: CniOptions) -> Cni {
        Cni {
            runner: PluginRunner {
                bin_dirs: opts.bin_dirs.clone(),
                timeout: opts.plugin_timeout,
            },
            cache: ResultCache::new(&opts.cache_dir),
            opts,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    pub fn options(&self) -> &CniOptions {
        &self.opts
    }

    /// The current network config, re-read when the conf dir changed since the last call.
    /// Writes the default network first when the dir holds no config.
    pub fn network(&self) -> Result<Arc<NetworkConfig>, CniError> {
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut l)?;
        match &l.discovered {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err((reason, msg))) => Err(CniError::NotReady {
                reason: reason.clone(),
                message: msg.clone(),
            }),
            None => Err(CniError::NotReady {
                reason: "NoNetworkConfig".into(),
                message: "no network config loaded".into(),
            }),
        }
    }

    fn refresh(&self, l: &mut Loaded) -> Result<(), CniError> {
        let dir = &self.opts.conf_dir;
        let mut sig = config::dir_signature(dir)?;
        if sig.is_empty() {
            if let Some(def) = &self.opts.default_network {
                let path = def.write(dir).map_err(|source| CniError::WriteDefault {
                    path: dir.clone(),
                    source,
                })?;
                tracing::info!(path = %path.display(), "wrote the default CNI network");
                sig = config::dir_signature(dir)?;
            }
        }
        if l.signature.as_ref() == Some(&sig) && l.discovered.is_some() {
            return Ok(());
        }
        let discovered = match config::discover(dir)? {
            Discovered::Found { config, skipped } => {
                for e in &skipped {
                    tracing::warn!(error = %e, "skipping unusable CNI config");
                }
                tracing::info!(network = %config.name, file = %config.source.display(), "loaded CNI network config");
                Ok(Arc::new(*config))
            }
            Discovered::Empty => Err((
                "NoNetworkConfig".to_string(),
                format!(
                    "no CNI network config (.conflist, .conf, .json) in {}",
                    dir.display()
                ),
            )),
            Discovered::AllInvalid(errs) => Err((
                "InvalidNetworkConfig".to_string(),
                format!(
                    "no usable CNI network config in {}: {}",
                    dir.display(),
                    errs.join("; ")
                ),
            )),
        };
        l.signature = Some(sig);
        l.discovered = Some(discovered);
        l.versions_ok = None;
        Ok(())
    }

    /// NetworkReady: a config that parses, every plugin it names present and answering
    /// VERSION with support for the config's cniVersion.
    pub fn status(&self) -> NetworkStatus {
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let not_ready = |reason: &str, message: String| NetworkStatus {
            ready: false,
            reason: reason.to_string(),
            message,
            network: None,
        };
        if let Err(e) = self.refresh(&mut l) {
            return not_ready("NetworkConfigUnreadable", e.to_string());
        }
        let net = match &l.discovered {
            Some(Ok(c)) => c.clone(),
            Some(Err((reason, msg))) => return not_ready(reason, msg.clone()),
            None => return not_ready("NoNetworkConfig", "no network config loaded".into()),
        };
        for p in &net.plugins {
            if let Err(e) = self.runner.find(&p.plugin_type) {
                return not_ready("PluginNotFound", format!("network {:?}: {e}", net.name));
            }
        }
        if l.versions_ok.is_none() {
            l.versions_ok = Some(self.check_versions(&net));
        }
        if let Some(Err((reason, msg))) = &l.versions_ok {
            return not_ready(reason, msg.clone());
        }
        NetworkStatus {
            ready: true,
            reason: String::new(),
            message: String::new(),
            network: Some(net.name.clone()),
        }
    }

    fn check_versions(&self, net: &NetworkConfig) -> Result<(), (String, String)> {
        for p in &net.plugins {
            let inv = Invocation {
                command: "VERSION",
                container_id: "",
                netns: "",
                if_name: "",
                args: "",
            };
            let stdin = serde_json::json!({"cniVersion": net.cni_version}).to_string();
            let answer = self
                .runner
                .run(&p.plugin_type, &inv, stdin.as_bytes())
                .map_err(|e| {
                    (
                        "PluginFailed".to_string(),
                        format!("network {:?}: {e}", net.name),
                    )
                })?;
            let supported = answer
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|vs| {
                    vs.iter()
                        .any(|v| v.as_str() == Some(net.cni_version.as_str()))
                });
            if !supported {
                return Err((
                    "PluginIncompatible".to_string(),
                    format!(
                        "network {:?}: plugin {} does not support cniVersion {} (it answered {answer})",
                        net.name, p.plugin_type, net.cni_version
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Attaches the pod (CNI ADD through the whole chain). On failure, everything done is
    /// undone with DEL; if that DEL fails too, the cache keeps the attachment so a later
    /// [`Cni::teardown`] can finish it.
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
        let mut entry = CacheEntry::new(
            &net.name,
            &pod.id,
            &self.opts.if_name,
            &pod.netns.display().to_string(),
            &pod.cni_args(),
            pod.runtime_config(),
            net.to_json(),
        );
        self.cache.store(&entry)?;
        let mut prev: Option<Value> = None;
        for p in &net.plugins {
            let stdin = plugin_conf(&net, &p.raw, &entry.runtime_config, prev.as_ref());
            let inv = self.invocation("ADD", &entry, &entry.netns);
            let outcome = self
                .runner
                .run(&p.plugin_type, &inv, &stdin)
                .map_err(|source| CniError::Plugin {
                    network: net.name.clone(),
                    source,
                });
            match outcome {
                Ok(v) => prev = Some(v),
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
    pub fn teardown(&self, pod: &PodNetwork) -> Result<(), CniError> {
        pod.validate().map_err(CniError::InvalidPod)?;
        let mut entries: Vec<CacheEntry> = self
            .cache
            .find_container(&pod.id)?
            .into_iter()
            .filter(|e| e.if_name == self.opts.if_name)
            .collect();
        if entries.is_empty() {
            let net = self.network()?;
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
    fn del_entry(&self, e: &CacheEntry, netns: &std::path::Path) -> Result<(), CniError> {
        let net = NetworkConfig::parse(
            std::path::Path::new("<cache>"),
            e.config.to_string().as_bytes(),
        )?;
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
    pub fn check(&self, pod: &PodNetwork) -> Result<(), CniError> {
        pod.validate().map_err(CniError::InvalidPod)?;
        let net = self.network()?;
        let entry = self
            .cache
            .load(&net.name, &pod.id, &self.opts.if_name)?
            .ok_or_else(|| CniError::NotAttached(pod.id.clone()))?;
        let cached = NetworkConfig::parse(
            std::path::Path::new("<cache>"),
            entry.config.to_string().as_bytes(),
        )?;
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

    /// Attachments in the cache (ADDs not yet undone), for reconciliation after a restart.
    pub fn cached_attachments(&self) -> Result<Vec<(String, String)>, CniError> {
        Ok(self
            .cache
            .all()?
            .into_iter()
            .map(|e| (e.container_id, e.network_name))
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

fn version_at_least(v: &str, min: (u32, u32)) -> bool {
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
    fn versions_compare() {
        assert!(version_at_least("0.4.0", (0, 4)));
        assert!(version_at_least("1.0.0", (0, 4)));
        assert!(!version_at_least("0.3.1", (0, 4)));
    }
}
