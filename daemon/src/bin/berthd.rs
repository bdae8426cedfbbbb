//! berthd: parses flags, loads the config, starts the daemon, serves until SIGTERM.
//! Stopping berthd never stops containers.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use berth_cri_server::Cri;
use berth_daemon::config::{Config, DEFAULT_CONFIG_PATH};
use berth_daemon::{cri, metrics, server, Daemon};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// The berth container engine daemon.
#[derive(Parser)]
#[command(name = "berthd", version)]
struct Args {
    /// Configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Persistent state directory (default /var/lib/berth).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory: sockets, shims, namespaces (default /run/berth).
    #[arg(long)]
    state: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long)]
    log_level: Option<String>,
    /// Docker Engine API socket (default `<state>/docker.sock`).
    #[arg(long)]
    docker_socket: Option<PathBuf>,
    /// CRI socket for kubelet and crictl (default: config `cri_socket`, else
    /// `<state>/berth.sock`).
    #[arg(long)]
    cri_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    // The PID 1 of pods sharing a PID namespace is a mode of this executable.
    if std::env::args().nth(1).as_deref() == Some(berth_engine::pod::init::ARG) {
        berth_engine::pod::init::main();
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berthd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let (path, explicit) = match &args.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut config = Config::load(&path, explicit)?;
    if let Some(root) = args.root {
        config.root = root;
    }
    if let Some(state) = args.state {
        config.state = state;
    }
    if let Some(level) = args.log_level {
        config.log_level = level;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log_level)
                .with_context(|| format!("--log-level {:?}", config.log_level))?,
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let docker_socket = args
        .docker_socket
        .unwrap_or_else(|| config.state.join("docker.sock"));
    let cri_socket = args
        .cri_socket
        .or_else(|| config.cri_socket.clone())
        .unwrap_or_else(|| config.state.join("berth.sock"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        // Before anything answers: a metrics_address berthd cannot listen on stops it.
        let metrics_listener = match config.metrics_address {
            Some(address) => Some((address, metrics::bind(address).await?)),
            None => None,
        };
        let daemon = Arc::new(Daemon::start(config)?);
        if let Err(e) = berth_engine::reconcile(&daemon.engine).await {
            tracing::error!("reconciling containers with their shims: {e}");
        }
        let cri = Cri::open(
            cri::cri_config(&daemon),
            cri::image_parts(&daemon),
            Some(Arc::clone(&daemon.engine)),
        )
        .context("opening the CRI state")?;
        let cri_listener = Cri::bind(&cri_socket).context("binding the CRI socket")?;
        let socket = server::bind(&docker_socket)?;
        let metrics = match metrics_listener {
            Some((address, listener)) => {
                let registry = metrics::registry(metrics::collectors(&daemon, &cri))?;
                tracing::info!(%address, "serving Prometheus metrics at /metrics");
                Some((registry, listener))
            }
            None => None,
        };
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tracing::info!(socket = %docker_socket.display(), cri_socket = %cri_socket.display(), root = %daemon.config.root.display(), "berthd serving the Docker Engine API and CRI");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down; containers keep running");
            let _ = stop_tx.send(true);
        };
        if let Some((registry, listener)) = metrics {
            let mut metrics_stop = stop_rx.clone();
            tokio::spawn(metrics::serve(registry, listener, async move {
                let _ = metrics_stop.wait_for(|stop| *stop).await;
            }));
        }
        let mut cri_stop = stop_rx;
        let cri_task = tokio::spawn(cri.serve(cri_listener, async move {
            let _ = cri_stop.wait_for(|stop| *stop).await;
        }));
        server::serve_docker_api(daemon, socket, shutdown).await;
        // Clients holding connections open must not keep berthd from exiting.
        match tokio::time::timeout(std::time::Duration::from_secs(2), cri_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("CRI server: {e}"),
            Ok(Err(e)) => tracing::error!("CRI server task: {e}"),
            Err(_) => tracing::info!("CRI connections still open at shutdown; closing them"),
        }
        // Like the Docker API socket, the CRI socket goes with berthd.
        if let Err(e) = std::fs::remove_file(&cri_socket) {
            tracing::warn!(socket = %cri_socket.display(), "removing the CRI socket: {e}");
        }
        Ok(())
    });
    // Blocking tasks waiting on running containers' shims never end by themselves;
    // dropping the runtime would wait for them, so berthd would not exit on SIGTERM
    // while containers run. The containers keep running; a restarted berthd picks them up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
