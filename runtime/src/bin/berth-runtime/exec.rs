//! `exec`: flags → an OCI process (or --process JSON) → the library.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_runtime::{ExecOptions, Runtime};
use clap::Args;
use oci_spec::runtime::{Capability, Process};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to a process.json (OCI process); the command line is ignored then.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment (KEY=VALUE).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Extra capabilities.
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Ignored (no SELinux/AppArmor here).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn build_process(rt: &Runtime, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let body = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return serde_json::from_slice(&body).with_context(|| format!("parsing {}", p.display()));
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let st = rt.state(&a.id)?;
    let spec = berth_runtime::container::plan::load_spec(&st.bundle)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
            None => (u.parse::<u32>().context("--user takes uid[:gid]")?, 0),
        };
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(c.clone()))
                .with_context(|| format!("unknown capability {c:?}"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ] {
                let _ = set;
            }
            let add = |s: &Option<std::collections::HashSet<Capability>>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

pub fn run(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    let process = build_process(rt, &a)?;
    let terminal = process.terminal().unwrap_or(false);
    let mut o = ExecOptions {
        process: Some(process),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ..Default::default()
    };
    let mut peer = None;
    if terminal && a.console_socket.is_none() {
        if a.detach {
            bail!("exec --detach with a terminal needs --console-socket");
        }
        let (ours, theirs) = UnixStream::pair().context("socketpair for the console")?;
        o.console_fd = Some(theirs.as_raw_fd());
        peer = Some((ours, theirs));
    }
    let exec = rt.exec(&a.id, &o)?;
    if a.detach {
        return Ok(0);
    }
    crate::relay::forward_signals(exec.pid);
    if let Some((ours, theirs)) = peer {
        drop(theirs);
        let master = berth_runtime::recv_fd(std::os::fd::AsFd::as_fd(&ours))
            .context("receiving the pty master")?;
        crate::relay::relay_pty(master)?;
    }
    Ok(exec.wait()?)
}
