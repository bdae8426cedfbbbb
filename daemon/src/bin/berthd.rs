//! berthd: parses flags, loads the config, starts the daemon, serves until SIGTERM.
//! Stopping berthd never stops containers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use berth_daemon::config::{Config, DEFAULT_CONFIG_PATH};
use berth_daemon::{server, Daemon};
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
    /// Docker Engine API socket (default <state>/docker.sock).
    #[arg(long)]
    docker_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
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
        .init();

    let docker_socket = args
        .docker_socket
        .unwrap_or_else(|| config.state.join("docker.sock"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let daemon = Arc::new(Daemon::start(config)?);
        if let Err(e) = berth_daemon::engine::reconcile(&daemon).await {
            tracing::error!("reconciling containers with their shims: {e}");
        }
        let socket = server::bind(&docker_socket)?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tracing::info!(socket = %docker_socket.display(), root = %daemon.config.root.display(), "berthd serving the Docker Engine API");
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down; containers keep running");
        };
        server::serve_docker_api(daemon, socket, shutdown).await;
        Ok(())
    })
}
