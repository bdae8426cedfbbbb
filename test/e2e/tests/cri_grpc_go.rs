//! A real grpc-go client (built offline from Debian's Go packages, see
//! `test/e2e/go/build.sh`) against berth's CRI server.
//!
//! grpc-go dialing a unix socket by its bare path sends that path as `:authority`; a plain
//! tonic server resets every such stream with PROTOCOL_ERROR. The control case proves the
//! trap is real with this client; the rest shows berth's server answering it.
//!
//! The control case serves the CRI library in-process on a plain tonic server; the rest
//! talks to a real berthd on its CRI socket, containers included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_cri_server::{Cri, CriConfig, ImageParts};
use berth_e2e::Berthd;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::sync::oneshot;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRI v1 proto shipped in the `k8s-cri` crate the server is built from: the version
/// locked in Cargo.lock, in cargo's registry sources.
fn cri_proto() -> Result<PathBuf> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
        .context("reading Cargo.lock")?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"k8s-cri\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .context("k8s-cri not in Cargo.lock")?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    for index in
        std::fs::read_dir(cargo_home.join("registry/src")).context("cargo registry sources")?
    {
        let proto = index?
            .path()
            .join(format!("k8s-cri-{version}/proto/v1.proto"));
        if proto.exists() {
            return Ok(proto);
        }
    }
    bail!(
        "k8s-cri {version}'s proto/v1.proto not found under {}",
        cargo_home.display()
    )
}

fn build_go_client(out: &Path) -> Result<()> {
    let status = Command::new(workspace_root().join("test/e2e/go/build.sh"))
        .arg(cri_proto()?)
        .arg(out)
        .status()
        .context("running test/e2e/go/build.sh (needs hack/deps.sh's Go packages)")?;
    if !status.success() {
        bail!("building the grpc-go CRI client failed");
    }
    Ok(())
}

struct GoOutput {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn go(client: &Path, socket: &Path, args: &[&str]) -> Result<GoOutput> {
    let out = Command::new(client)
        .arg(socket)
        .args(args)
        .output()
        .context("running the Go client")?;
    Ok(GoOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn go_ok(client: &Path, socket: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = go(client, socket, args)?;
    if !out.ok {
        bail!("cri-client {args:?} failed: {}", out.stderr);
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

/// A bridge network of the test's own (unique bridge, subnet, IPAM dir).
fn write_conflist(conf_dir: &Path, bridge: &str, subnet: &str, ipam_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": format!("{bridge}-net"),
        "plugins": [{
            "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam_dir}
        }]
    });
    std::fs::write(
        conf_dir.join("10-test.conflist"),
        serde_json::to_vec_pretty(&conf)?,
    )?;
    Ok(())
}

/// Removes a CNI bridge when the test ends, however it ends.
struct BridgeGuard(&'static str);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

struct Server {
    /// The runtime serving the socket; dropped (and the server with it) last.
    _rt: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn open_cri(dir: &Path, registry_host: &str, bridge: &str, subnet: &str) -> Result<Cri> {
    let root = dir.join("root");
    let mut registry = berth_image::RegistryConfig::default();
    registry.host_mut(registry_host).insecure = true;
    let cni = berth_cni::CniOptions {
        conf_dir: dir.join("net.d"),
        cache_dir: dir.join("state/cni"),
        default_network: None,
        ..Default::default()
    };
    write_conflist(&cni.conf_dir, bridge, subnet, &dir.join("ipam"))?;
    let images = ImageParts {
        root: root.clone(),
        content: berth_snapshotter::ContentStore::open(&root)?,
        snapshots: Arc::new(berth_snapshotter::Snapshotter::open(&root)?),
        store: berth_image::ImageStore::open(&root)?,
    };
    let config = CriConfig {
        root,
        state: dir.join("state"),
        cni,
        registry,
        pod_init: None,
        runtime_handlers: Vec::new(),
        streaming: Default::default(),
    };
    Ok(Cri::open(config, images, None)?)
}

/// The same services on a plain tonic server: no rewriter.
fn start_plain(cri: Cri, socket: &Path) -> Result<Server> {
    let rt = tokio::runtime::Runtime::new()?;
    let listener = {
        let _g = rt.enter();
        tokio::net::UnixListener::bind(socket)?
    };
    let (tx, rx) = oneshot::channel::<()>();
    rt.spawn(async move {
        let incoming = accept_stream::accept(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(cri.clone()))
            .add_service(ImageServiceServer::new(cri))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Server {
        _rt: rt,
        stop: Some(tx),
    })
}

/// A minimal accept stream without another dependency.
mod accept_stream {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub use tonic::codegen::tokio_stream::Stream;

    pub struct Accept(tokio::net::UnixListener);

    pub fn accept(l: tokio::net::UnixListener) -> Accept {
        Accept(l)
    }

    impl Stream for Accept {
        type Item = std::io::Result<tokio::net::UnixStream>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s)))
        }
    }
}

#[test]
fn grpc_go_client_is_served() -> Result<()> {
    berth_e2e::require_root();
    let dir = tempfile::tempdir()?;
    let client = dir.path().join("cri-client");
    build_go_client(&client)?;

    let img_dir = dir.path().join("img");
    let image = berth_fixtures::images::base(&img_dir)?;
    let registry = berth_fixtures::Registry::start()?;
    let pushed = registry.push(&image, "crigo/base:v1")?;

    // Control: without the rewriter, the Go client's calls are reset by h2.
    let plain_sock = dir.path().join("plain.sock");
    let plain = start_plain(
        open_cri(
            &dir.path().join("plain"),
            &registry.host(),
            "bcrigo1",
            "10.251.1.0/24",
        )?,
        &plain_sock,
    )?;
    let out = go(&client, &plain_sock, &["version"])?;
    assert!(
        !out.ok,
        "a plain tonic server answered grpc-go; the trap this test guards is gone: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("PROTOCOL_ERROR"),
        "unexpected control failure: {}",
        out.stderr
    );
    drop(plain);

    // berthd itself, serving CRI on its socket with its container engine.
    let conf_dir = dir.path().join("berthd-net.d");
    write_conflist(
        &conf_dir,
        "bcrigo0",
        "10.251.0.0/24",
        &dir.path().join("ipam"),
    )?;
    let _bridge = BridgeGuard("bcrigo0");
    let berthd = Berthd::start_with_config(&format!(
        "[cni]\nconf_dir = {:?}\n\n[registries.\"{}\"]\ninsecure = true\n",
        conf_dir.display().to_string(),
        registry.host()
    ))?;
    let sock = berthd.cri_socket();

    let v = go_ok(&client, &sock, &["version"])?;
    assert_eq!(v["runtime_name"], "berth", "{v}");
    assert_eq!(v["runtime_api_version"], "v1", "{v}");

    let s = go_ok(&client, &sock, &["status"])?;
    let conds = s["status"]["conditions"].as_array().context("conditions")?;
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "RuntimeReady" && c["status"] == true),
        "{s}"
    );
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "NetworkReady" && c["status"] == true),
        "{s}"
    );

    let p = go_ok(&client, &sock, &["pull", &pushed])?;
    let image_ref = p["image_ref"].as_str().context("image_ref")?;
    assert!(image_ref.starts_with("sha256:"), "{p}");

    let r = go_ok(&client, &sock, &["runp", "gopod", "default", "uid-go-1"])?;
    let pod = r["pod_sandbox_id"].as_str().context("pod id")?.to_string();
    assert_eq!(pod.len(), 64);
    let again = go(&client, &sock, &["runp", "gopod", "default", "uid-go-1"])?;
    assert!(
        !again.ok && again.stderr.contains("AlreadyExists"),
        "{}",
        again.stderr
    );

    // A container through berthd's engine: create, start, ExecSync.
    let c = go_ok(
        &client,
        &sock,
        &[
            "create",
            &pod,
            "c1",
            image_ref,
            "sh",
            "-c",
            "while true; do sleep 1; done",
        ],
    )?;
    let container = c["container_id"]
        .as_str()
        .context("container id")?
        .to_string();
    go_ok(&client, &sock, &["start", &container])?;
    let e = go_ok(
        &client,
        &sock,
        &["exec", &container, "sh", "-c", "echo hi; exit 5"],
    )?;
    // grpc-go's JSON: bytes as base64, zero values left out.
    assert_eq!(e["stdout"], "aGkK", "{e}");
    assert_eq!(e["exit_code"], 5, "{e}");

    go_ok(&client, &sock, &["stopp", &pod])?;
    go_ok(&client, &sock, &["rmp", &pod])?;
    go_ok(&client, &sock, &["rmp", &pod])?;
    Ok(())
}
