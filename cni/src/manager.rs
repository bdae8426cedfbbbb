//! [`Cni`]: attach pods to the configured network, detach them, check them, report status.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::cache::ResultCache;
use crate::config::{self, Discovered, NetworkConfig};
use crate::default_network::DefaultNetwork;
use crate::exec::{Invocation, PluginRunner};
use crate::result::CniResult;
use crate::CniError;

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
    pub(crate) opts: CniOptions,
    pub(crate) runner: PluginRunner,
    pub(crate) cache: ResultCache,
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
        drop(l);
        if let Err((reason, msg)) = self.plugin_status(&net) {
            return not_ready(&reason, msg);
        }
        NetworkStatus {
            ready: true,
            reason: String::new(),
            message: String::new(),
            network: Some(net.name.clone()),
        }
    }

    /// CNI 1.1 STATUS, asked on every call (it reflects e.g. an exhausted IPAM pool);
    /// older configs have no STATUS.
    fn plugin_status(&self, net: &NetworkConfig) -> Result<(), (String, String)> {
        if !crate::attach::version_at_least(&net.cni_version, (1, 1)) {
            return Ok(());
        }
        for p in &net.plugins {
            let inv = Invocation {
                command: "STATUS",
                container_id: "",
                netns: "",
                if_name: "",
                args: "",
            };
            let mut conf = p.raw.clone();
            conf.insert("name".into(), Value::String(net.name.clone()));
            conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
            let stdin = Value::Object(conf).to_string();
            self.runner
                .run(&p.plugin_type, &inv, stdin.as_bytes())
                .map_err(|e| {
                    (
                        "PluginNotReady".to_string(),
                        format!("network {:?}: {e}", net.name),
                    )
                })?;
        }
        Ok(())
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
}
