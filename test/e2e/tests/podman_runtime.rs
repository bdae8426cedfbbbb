//! Podman (Debian's 4.3, cgroupfs manager) with `--runtime <berth-runtime>`: a
//! private storage root, a busybox image loaded from an OCI layout built by the
//! fixtures (no network), and no network namespace setup (`netns = "none"`).
//! Everything podman made is removed on drop, also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
    /// The image's OCI layout; podman names a pulled `oci:` image after its path,
    /// which must be lowercase (the random temp dir names are not).
    _layout: tempfile::TempDir,
}

/// This process's hard limit `name` (a row of /proc/self/limits); None when unlimited.
fn hard_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let row = limits.lines().find(|l| l.starts_with(name))?;
    row[name.len()..].split_whitespace().nth(1)?.parse().ok()
}

impl Podman {
    fn new() -> Result<Podman> {
        berth_e2e::require_root();
        let runtime = berth_e2e::binary("berth-runtime")?;
        let dir = tempfile::Builder::new().prefix("berth-podman-").tempdir()?;
        // Podman's default rlimits (nofile and nproc 1048576) are above this host's
        // hard limits, which root cannot raise without CAP_SYS_RESOURCE: runc refuses
        // them too. The host's administrator sets the defaults it can honour: here,
        // this host's own hard limits (at most 20000 open files, 32768 processes).
        let nofile = hard_limit("Max open files").unwrap_or(20000).min(20000);
        let nproc = hard_limit("Max processes").unwrap_or(32768).min(32768);
        std::fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[containers]\nnetns = \"none\"\n\
                 default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            ),
        )?;
        std::fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )?;
        let layout_dir = tempfile::Builder::new()
            .prefix(&format!("berth-podman-layout-{}", std::process::id()))
            .rand_bytes(0)
            .tempdir()?;
        let p = Podman {
            dir,
            runtime,
            _layout: layout_dir,
        };
        let layout = p._layout.path().join("busybox");
        berth_fixtures::images::base(&layout)?;
        p.ok(&["pull", "-q", &format!("oci:{}:base", layout.display())])?;
        let id = p.ok(&["images", "-q"])?;
        p.ok(&["tag", id.trim(), "busybox"])?;
        Ok(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .arg("--root")
            .arg(self.path("root"))
            .arg("--runroot")
            .arg(self.path("runroot"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .arg("--runtime")
            .arg(&self.runtime)
            .stdin(Stdio::null());
        c
    }

    /// Runs podman with `args`; its stdout, or an error with both streams.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd().args(args).output().context("running podman")?;
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if !out.status.success() {
            bail!(
                "podman {args:?}: {}\nstdout: {so}\nstderr: {se}",
                out.status
            );
        }
        Ok(so)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
        let _ = self.cmd().args(["system", "reset", "--force"]).output();
        // Whatever podman left mounted under the temp dir must not survive it.
        let root: &Path = self.dir.path();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut under: Vec<&str> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|m| Path::new(m).starts_with(root))
                .collect();
            under.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in under {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

#[test]
fn podman_runs_containers_with_berth_runtime() -> Result<()> {
    let p = Podman::new()?;

    // run --rm
    assert_eq!(
        p.ok(&["run", "--rm", "--pull", "never", "busybox", "echo", "ok"])?,
        "ok\n"
    );

    // The runtime podman used is ours: its OCI runtime name in the container's record.
    let id = p.ok(&["create", "busybox", "true"])?;
    let rt = p.ok(&["inspect", "--format", "{{.OCIRuntime}}", id.trim()])?;
    assert!(rt.trim().ends_with("berth-runtime"), "OCIRuntime={rt}");
    p.ok(&["rm", id.trim()])?;

    // run -d, exec, stop
    let bg = p.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ])?;
    // Podman names the host after the short container id.
    let short: String = bg.trim().chars().take(12).collect();
    assert_eq!(
        p.ok(&["exec", "bg", "sh", "-c", "echo in-$(hostname)"])?
            .trim(),
        format!("in-{short}")
    );
    // exec -t: the exec'd process gets its own pty (exec --tty --console-socket).
    let tty = p.ok(&["exec", "-t", "bg", "tty"])?;
    assert!(tty.trim().starts_with("/dev/pts/"), "exec -t: {tty:?}");
    let ps = p.ok(&["exec", "bg", "ps", "-o", "comm"])?;
    assert!(ps.contains("sh"), "{ps}");
    p.ok(&["stop", "--time", "5", "bg"])?;
    let st = p.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "bg",
    ])?;
    assert_eq!(st.trim(), "exited 0", "stopped by SIGTERM, trapped: exit 0");
    p.ok(&["rm", "bg"])?;

    // run -t: the process has a terminal (a pty from --console-socket).
    let out = p.ok(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; ls -l /dev/console",
    ])?;
    let mut lines = out.lines().map(str::trim);
    let tty = lines.next().unwrap_or("");
    assert!(tty.starts_with("/dev/pts/"), "tty: {out:?}");
    let console = lines.next().unwrap_or("");
    assert!(
        console.starts_with('c') && console.contains("136,"),
        "/dev/console is the pty: {out:?}"
    );

    // --memory 64m takes effect in the container's cgroup.
    let lim = p.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "busybox",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ])?;
    assert_eq!(lim.trim(), "67108864");
    Ok(())
}
