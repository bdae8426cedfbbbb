//! The CRI front door: berthd's container engine behind the CRI server's
//! [`ContainerEngine`] trait, and the CRI server's configuration from berthd's.
//!
//! A CRI container is an engine container like any other (a record, a snapshot, a
//! bundle, a berth-shim), with [`CriMeta`] in its record: the pod it belongs to, its
//! CRI metadata, labels and annotations. Its spec joins the pod's pinned namespaces
//! and binds the pod's hostname, resolv.conf and hosts files ([`create`]); its log is
//! the CRI log path kubelet asked for, written by the shim.
//!
//! [`CriMeta`]: berth_engine::CriMeta

mod create;
mod exec;
mod logs;
mod pod_spec;
mod stats;
mod status;
mod update;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_cri_server::engine::{ContainerEvent, SandboxContext};
use berth_cri_server::{ContainerEngine, CriConfig, CriError, ImageParts};
use k8s_cri::v1 as cri;

use berth_engine::{self as engine, Engine, Status};

use crate::Daemon;

/// berthd's engine as the CRI server sees it.
pub struct CriEngine {
    engine: Arc<Engine>,
}

impl CriEngine {
    pub fn new(engine: Arc<Engine>) -> Arc<CriEngine> {
        Arc::new(CriEngine { engine })
    }
}

/// The CRI server's settings from berthd's: same root and state dirs, CNI from
/// `[cni]`, registries from `[registries]`.
pub fn cri_config(daemon: &Daemon) -> CriConfig {
    let config = &daemon.config;
    CriConfig {
        root: config.root.clone(),
        state: config.state.clone(),
        cni: berth_cni::CniOptions {
            conf_dir: config.cni.conf_dir.clone(),
            bin_dirs: config.cni.bin_dirs.clone(),
            cache_dir: config.state.join("cni"),
            ..Default::default()
        },
        registry: crate::registry::registry_config(config, None),
        // berthd's own executable has the pod-init mode.
        pod_init: std::env::current_exe().ok(),
        runtime_handlers: config.runtime_names(),
    }
}

/// The daemon's image machinery, shared with the CRI server: an image pulled through
/// CRI is one `berth images` lists, and the other way round.
pub fn image_parts(daemon: &Daemon) -> ImageParts {
    ImageParts {
        root: daemon.config.root.clone(),
        content: daemon.engine.images.content.clone(),
        snapshots: Arc::clone(&daemon.engine.images.snapshots),
        store: daemon.engine.images.store.clone(),
    }
}

/// The record of CRI container `id`; a container made through the Docker API is not
/// one CRI knows.
pub(crate) fn cri_record(engine: &Engine, id: &str) -> Result<engine::ContainerRecord, CriError> {
    let record = engine::get(engine, id).map_err(CriError::from)?;
    if record.cri.is_none() {
        return Err(CriError::NotFound {
            what: "container",
            id: id.to_string(),
        });
    }
    Ok(record)
}

/// Whether a lookup failed because the container is not there.
fn is_missing(e: &CriError) -> bool {
    matches!(e, CriError::NotFound { .. })
}

#[tonic::async_trait]
impl ContainerEngine for CriEngine {
    async fn create(
        &self,
        sandbox: &SandboxContext,
        request: cri::CreateContainerRequest,
    ) -> Result<String, CriError> {
        create::create(&self.engine, sandbox, request).await
    }

    async fn start(&self, id: &str) -> Result<(), CriError> {
        let _guard = self.engine.lock(id).await;
        let record = cri_record(&self.engine, id)?;
        if record.state.status != Status::Created {
            return Err(CriError::FailedPrecondition(format!(
                "container {id} is {}; only a created container can be started",
                record.state.status.as_str()
            )));
        }
        engine::start_locked(&self.engine, id)
            .await
            .map_err(CriError::from)?;
        Ok(())
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), CriError> {
        let _guard = self.engine.lock(id).await;
        match cri_record(&self.engine, id) {
            Ok(_) => {}
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
        engine::stop_locked(&self.engine, id, Some(secs))
            .await
            .map_err(CriError::from)?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), CriError> {
        let _guard = self.engine.lock(id).await;
        match cri_record(&self.engine, id) {
            Ok(_) => {}
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        engine::remove_locked(&self.engine, id, true)
            .await
            .map_err(CriError::from)
    }

    async fn status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, CriError> {
        status::status(&self.engine, id, verbose)
    }

    async fn list(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, CriError> {
        status::list(&self.engine, filter)
    }

    async fn exec_sync(
        &self,
        request: cri::ExecSyncRequest,
    ) -> Result<cri::ExecSyncResponse, CriError> {
        exec::exec_sync(&self.engine, request).await
    }

    async fn update_resources(
        &self,
        id: &str,
        resources: cri::LinuxContainerResources,
    ) -> Result<(), CriError> {
        update::update_resources(&self.engine, id, resources).await
    }

    async fn stats(&self, id: &str) -> Result<cri::ContainerStats, CriError> {
        let (d, id) = (Arc::clone(&self.engine), id.to_string());
        tokio::task::spawn_blocking(move || stats::stats(&d, &id))
            .await
            .map_err(|e| CriError::Internal(format!("stats task: {e}")))?
    }

    async fn list_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, CriError> {
        let d = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || stats::list(&d, filter))
            .await
            .map_err(|e| CriError::Internal(format!("stats task: {e}")))?
    }

    async fn reopen_log(&self, id: &str) -> Result<(), CriError> {
        logs::reopen(&self.engine, id).await
    }

    async fn sandbox_containers(&self, sandbox_id: &str) -> Result<Vec<String>, CriError> {
        Ok(status::cri_records(&self.engine)?
            .into_iter()
            .filter(|r| r.cri.as_ref().is_some_and(|c| c.sandbox_id == sandbox_id))
            .map(|r| r.id)
            .collect())
    }

    async fn cgroup_stats(&self, cgroup: &str) -> Option<(cri::CpuUsage, cri::MemoryUsage)> {
        stats::cgroup_stats(cgroup)
    }

    async fn container_cgroup(&self, id: &str) -> Option<String> {
        stats::container_cgroup(&self.engine, id)
    }

    async fn cgroup_sample(&self, cgroup: &str) -> Option<berth_cri_server::engine::CgroupSample> {
        let cgroup = cgroup.to_string();
        let read = tokio::task::spawn_blocking(move || berth_runtime::cgroups::sample_at(&cgroup));
        read.await.ok().flatten()
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.engine.subscribe()
    }
}

/// Reads at most `limit` bytes of `path`; a missing file is empty.
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, CriError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CriError::Internal(format!(
                "reading {}: {e}",
                path.display()
            )))
        }
    };
    let mut out = Vec::new();
    file.take(limit)
        .read_to_end(&mut out)
        .map_err(|e| CriError::Internal(format!("reading {}: {e}", path.display())))?;
    Ok(out)
}
