//! A CRI server on a private socket, and a Rust CRI client (k8s-cri) talking to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_cri_server::{Cri, CriConfig, ImageParts};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint, Uri};

/// Dirs and network of one test's CRI server; survive server restarts.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub bridge: String,
    pub subnet: String,
    pub registry: berth_image::RegistryConfig,
}

impl Env {
    /// `bridge` must be unique per test (≤ 15 chars), `subnet` a /24 no other test uses.
    pub fn new(bridge: &str, subnet: &str) -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let env = Env {
            dir,
            bridge: bridge.into(),
            subnet: subnet.into(),
            registry: Default::default(),
        };
        env.write_conflist()?;
        Ok(env)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    fn write_conflist(&self) -> Result<()> {
        let conf_dir = self.path().join("net.d");
        std::fs::create_dir_all(&conf_dir)?;
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("{}-net", self.bridge),
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                          "dataDir": self.path().join("ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        std::fs::write(
            conf_dir.join("10-test.conflist"),
            serde_json::to_vec_pretty(&conf)?,
        )?;
        Ok(())
    }

    pub fn open(&self) -> Result<Cri> {
        let root = self.path().join("root");
        let cni = berth_cni::CniOptions {
            conf_dir: self.path().join("net.d"),
            cache_dir: self.state().join("cni"),
            default_network: None,
            ..Default::default()
        };
        let images = ImageParts {
            root: root.clone(),
            content: berth_snapshotter::ContentStore::open(&root)?,
            snapshots: Arc::new(berth_snapshotter::Snapshotter::open(&root)?),
            store: berth_image::ImageStore::open(&root)?,
        };
        let config = CriConfig {
            root,
            state: self.state(),
            cni,
            registry: self.registry.clone(),
            pod_init: None,
            runtime_handlers: Vec::new(),
            streaming: Default::default(),
        };
        Ok(Cri::open(config, images, None)?)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// A running server; stops when dropped.
pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl Server {
    pub fn start(env: &Env) -> Result<Server> {
        let cri = env.open()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let socket = env.path().join("cri.sock");
        let listener = {
            let _g = rt.enter();
            Cri::bind(&socket)?
        };
        let (tx, rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = cri
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
            let _ = done_tx.send(());
        });
        Ok(Server {
            rt,
            socket,
            stop: Some(tx),
            done: Some(done_rx),
        })
    }

    pub fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.channel()?))
    }

    pub fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel()?))
    }

    fn channel(&self) -> Result<Channel> {
        let path = self.socket.clone();
        self.rt.block_on(async move {
            Endpoint::try_from("http://localhost")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .context("connecting to the CRI socket")
        })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(5), done).await
            });
        }
    }
}
