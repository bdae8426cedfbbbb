//! The CRI server's configuration from berthd's, and the engine's image machinery
//! handed to it.

use std::sync::Arc;

use berth_cri_server::{CriConfig, ImageParts};

use crate::Daemon;

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
        streaming: berth_cri_server::StreamingConfig {
            address: config.cri_streaming.stream_server_address,
            port: config.cri_streaming.stream_server_port,
            // Checked when the configuration was loaded.
            idle_timeout: config.cri_streaming.idle_timeout().unwrap_or_default(),
            tls: config.cri_streaming.tls().unwrap_or_default(),
        },
    }
}

/// The engine's image machinery, shared with the CRI server: an image pulled through
/// CRI is one `berth images` lists, and the other way round.
pub fn image_parts(daemon: &Daemon) -> ImageParts {
    ImageParts {
        root: daemon.config.root.clone(),
        content: daemon.engine.images.content.clone(),
        snapshots: Arc::clone(&daemon.engine.images.snapshots),
        store: daemon.engine.images.store.clone(),
    }
}
