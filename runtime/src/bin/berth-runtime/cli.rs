//! Arguments (runc's flags) and dispatch to the library.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use berth_runtime::{CreateOptions, Runtime, DEFAULT_ROOT};
use clap::{Args as ClapArgs, Parser, Subcommand};
use nix::sys::signal::Signal;

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version,
    about = "An OCI runtime with runc's command line"
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(ClapArgs, Debug)]
pub struct Global {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true)]
    pub log_format: Option<String>,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// The systemd cgroup driver (not supported).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long, global = true)]
    pub criu: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct CreateArgs {
    /// Bundle directory (config.json + rootfs).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master (terminal: true).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for compatibility (no session keyring is created).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (from 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container (it waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state (JSON).
    State { id: String },
    /// Send a signal (name or number, default SIGTERM).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a process in a running container.
    Exec(crate::exec::ExecArgs),
    /// List the processes of a container.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze a container.
    Pause { id: String },
    /// Thaw a container.
    Resume { id: String },
    /// Print the features this runtime supports (JSON).
    Features,
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Update a container's cgroup limits from an OCI LinuxResources JSON file
    /// (`-` reads standard input).
    Update {
        #[arg(short, long)]
        resources: PathBuf,
        id: String,
    },
    /// Print cgroup usage (JSON).
    Events {
        #[arg(long)]
        stats: bool,
        id: String,
    },
}

pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("unknown signal number {n}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).with_context(|| format!("unknown signal {s:?}"))
}

fn create_opts(c: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: c.id.clone(),
        bundle: c.bundle.clone(),
        console_socket: c.console_socket.clone(),
        pid_file: c.pid_file.clone(),
        no_pivot: c.no_pivot,
        preserve_fds: c.preserve_fds,
        ..Default::default()
    }
}

pub fn dispatch(args: Args) -> Result<i32> {
    if args.global.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported yet; use cgroupfs (no --systemd-cgroup)");
    }
    let rt = Runtime::new(&args.global.root);
    match args.cmd {
        Cmd::Create(c) => {
            rt.create(&create_opts(&c))?;
        }
        Cmd::Start { id } => rt.start(&id)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => return crate::relay::run(&rt, &create_opts(&create), detach, keep),
        Cmd::State { id } => println!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?),
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Cmd::Delete { force, id } => match rt.delete(&id, force) {
            Err(berth_runtime::Error::NotFound(_)) if force => {}
            r => r?,
        },
        Cmd::Exec(e) => return crate::exec::run(&rt, e),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &format, &id, &ps_args)?,
        Cmd::Pause { id } => rt.pause(&id)?,
        Cmd::Resume { id } => rt.resume(&id)?,
        Cmd::Features => println!(
            "{}",
            serde_json::to_string_pretty(&berth_runtime::spec::features())?
        ),
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists; remove it first", path.display());
            }
            let body = serde_json::to_string_pretty(&berth_runtime::spec::default_spec())?;
            std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        }
        Cmd::List { format, quiet } => list(&rt, &format, quiet)?,
        Cmd::Update { resources, id } => {
            let text = if resources.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the resources from standard input")?;
                text
            } else {
                std::fs::read_to_string(&resources)
                    .with_context(|| format!("reading {}", resources.display()))?
            };
            let res: oci_spec::runtime::LinuxResources = serde_json::from_str(&text)
                .with_context(|| format!("{}: not OCI LinuxResources", resources.display()))?;
            rt.update(&id, &res)?;
        }
        Cmd::Events { stats, id } => {
            if !stats {
                bail!("events: only --stats is supported");
            }
            let s = rt.stats(&id)?;
            println!(
                "{}",
                serde_json::json!({"type": "stats", "id": id, "data": s})
            );
        }
    }
    Ok(0)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&states)?),
        "table" => {
            println!(
                "{:<20} {:<10} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &states {
                println!(
                    "{:<20} {:<10} {:<10} {:<40} {:<32} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    if s.owner.is_empty() { "root" } else { &s.owner }
                );
            }
        }
        f => bail!("unknown format {f:?}: table or json"),
    }
    Ok(())
}

fn ps(rt: &Runtime, format: &str, id: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.ps(id)?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        f => bail!("unknown format {f:?}: table or json"),
    }
    Ok(())
}
