//! The on-disk attachment cache: `<cache>/results/<network>-<container>-<ifname>`.
//!
//! Written before ADD runs (without a result) and again after it succeeded (with one), so
//! a DEL after a daemon crash or restart finds the exact config, arguments and result the
//! ADD used. Removed only once DEL succeeded.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

const KIND: &str = "berthCniCacheV1";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("CNI cache {path}: {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    #[error("CNI cache {path}: unreadable entry: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Everything needed to repeat a DEL exactly as the ADD was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub kind: String,
    pub network_name: String,
    pub container_id: String,
    pub if_name: String,
    pub netns: String,
    /// The CNI_ARGS string.
    pub cni_args: String,
    /// Capability arguments (`portMappings`, `dns`, …), injected per plugin as declared.
    pub runtime_config: serde_json::Map<String, Value>,
    /// The whole conflist as used for ADD.
    pub config: Value,
    /// The final result of the chain; absent while ADD is in progress or after it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl CacheEntry {
    pub fn new(
        network_name: &str,
        container_id: &str,
        if_name: &str,
        netns: &str,
        cni_args: &str,
        runtime_config: serde_json::Map<String, Value>,
        config: Value,
    ) -> CacheEntry {
        CacheEntry {
            kind: KIND.to_string(),
            network_name: network_name.to_string(),
            container_id: container_id.to_string(),
            if_name: if_name.to_string(),
            netns: netns.to_string(),
            cni_args: cni_args.to_string(),
            runtime_config,
            config,
            result: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    pub fn new(cache_dir: &Path) -> ResultCache {
        ResultCache {
            dir: cache_dir.join("results"),
        }
    }

    pub fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{if_name}"))
    }

    /// Writes atomically (temp file, fsync, rename).
    pub fn store(&self, e: &CacheEntry) -> Result<(), CacheError> {
        let path = self.path(&e.network_name, &e.container_id, &e.if_name);
        let ioe = |step| {
            let path = path.clone();
            move |source| CacheError::Io { path, step, source }
        };
        fs::create_dir_all(&self.dir).map_err(ioe("create directory"))?;
        let bytes = serde_json::to_vec(e).map_err(|source| CacheError::Decode {
            path: path.clone(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = self
            .dir
            .join(format!(".{file_name}.tmp{}", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(ioe("create temp file"))?;
        let written = f.write_all(&bytes).and_then(|()| f.sync_all());
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(ioe("write")(e));
        }
        Ok(())
    }

    /// Every entry for `container_id`, whatever network it was attached to.
    pub fn find_container(&self, container_id: &str) -> Result<Vec<CacheEntry>, CacheError> {
        // File names hold `-<id>-`; read only those.
        let needle = format!("-{container_id}-");
        Ok(self
            .entries(|name| name.contains(&needle))?
            .into_iter()
            .filter(|e| e.container_id == container_id)
            .collect())
    }

    /// All cached attachments (for reconciliation after a restart).
    pub fn all(&self) -> Result<Vec<CacheEntry>, CacheError> {
        self.entries(|_| true)
    }

    fn entries(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<CacheEntry>, CacheError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CacheError::Io {
                    path: self.dir.clone(),
                    step: "list",
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().to_string();
            // Temp files of an interrupted store start with a dot.
            if name.starts_with('.') || !wanted(&name) {
                continue;
            }
            let p = ent.path();
            match read_entry(&p) {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "skipping CNI cache entry"),
            }
        }
        out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        Ok(out)
    }

    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Result<(), CacheError> {
        let path = self.path(network, container_id, if_name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io {
                path,
                step: "remove",
                source,
            }),
        }
    }
}

fn read_entry(path: &Path) -> Result<Option<CacheEntry>, CacheError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                step: "read",
                source,
            })
        }
    };
    let e: CacheEntry = serde_json::from_slice(&bytes).map_err(|source| CacheError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((e.kind == KIND).then_some(e))
}
