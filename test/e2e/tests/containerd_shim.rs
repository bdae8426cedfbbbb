//! Compatibility with a real peer: Debian's containerd 1.6 runs containers through
//! `berth-shim` installed as `containerd-shim-berth-v1`.
//!
//! A private containerd (own root, state and sockets under a temp dir, no CRI plugin)
//! imports a busybox image built by the fixtures, then `ctr` runs, execs, lists, kills
//! and removes tasks with `--runtime io.containerd.berth.v1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const IMAGE: &str = "berth.test/busybox:base";
const RUNTIME: &str = "io.containerd.berth.v1";

/// A private containerd; on drop: kills its tasks and shims, stops it, unmounts and
/// removes everything under its directory.
struct Containerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    namespace: String,
    /// ctr puts containers in the cgroup `/<namespace>/<id>`; the shim removes the
    /// leaf, this the namespace's level. A field: it drops after `drop` has ended the
    /// tasks.
    _cgroups: berth_fixtures::cgroups::CgroupGuard,
}

impl Containerd {
    fn start(shim: &Path) -> Result<Containerd> {
        let dir = tempfile::Builder::new().prefix("berth-ctd-").tempdir()?;
        let namespace = format!("berth-e2e-{}", std::process::id());
        let mut c = Containerd {
            child: None,
            dir,
            _cgroups: berth_fixtures::cgroups::CgroupGuard::new(namespace.clone()),
            namespace,
        };
        let bin = c.path("bin");
        std::fs::create_dir_all(&bin)?;
        std::os::unix::fs::symlink(shim, bin.join("containerd-shim-berth-v1"))?;
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = c.path("root").display(),
            state = c.path("state").display(),
            sock = c.socket().display(),
        );
        std::fs::write(c.path("config.toml"), config)?;
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(c.path("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(c.path("containerd.log"))?)
            .spawn()
            .context("starting containerd (apt-get install containerd)")?;
        c.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if c.ctr(&["version"])?.status.success() {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!("containerd did not come up:\n{}", c.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("c.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Result<Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running ctr")
    }

    /// Runs ctr and requires success; returns stdout.
    fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ctr(args)?;
        if !out.status.success() {
            bail!(
                "ctr {args:?} failed ({}): {}\n--- containerd log tail:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log(), 40)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.path("state")
            .join("io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
    }

    /// Waits until `ctr task ls` shows `id` with `status`.
    fn wait_status(&self, id: &str, status: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ls = self.ctr_ok(&["task", "ls"])?;
            if ls
                .lines()
                .any(|l| l.split_whitespace().next() == Some(id) && l.contains(status))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("task {id} never reached {status}:\n{ls}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Pids whose command line mentions `needle` (this containerd's shims).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pid != std::process::id() as i32 {
                out.push(pid);
            }
        }
    }
    out
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first, while containerd and the shims still answer.
        if let Ok(ls) = self.ctr(&["task", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&ls.stdout).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                std::thread::sleep(Duration::from_millis(200));
                let _ = self.ctr(&["task", "rm", "-f", id]);
            }
        }
        if let Ok(ls) = self.ctr(&["container", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&ls.stdout).lines() {
                let _ = self.ctr(&["container", "rm", id]);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims left behind (their command line carries our containerd's address).
        for pid in pids_mentioning(&self.socket().display().to_string()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Containers left in the shim's runtime root.
        let root = Path::new("/run/berth/runtime").join(&self.namespace);
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&root);
        // Mounts under the temp dir, deepest first.
        let prefix = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Imports the fixtures' busybox image (an OCI archive) as [`IMAGE`].
fn import_busybox(ctd: &Containerd) -> Result<()> {
    let layout = ctd.path("layout");
    berth_fixtures::images::base(&layout)?;
    let archive = ctd.path("busybox.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()?;
    if !status.success() {
        bail!("tar of the OCI layout failed");
    }
    ctd.ctr_ok(&[
        "image",
        "import",
        "--base-name",
        "berth.test/busybox",
        archive.to_str().context("archive path")?,
    ])?;
    let images = ctd.ctr_ok(&["image", "ls", "-q"])?;
    if !images.lines().any(|l| l == IMAGE) {
        bail!("imported image {IMAGE} not listed: {images}");
    }
    Ok(())
}

#[test]
fn containerd_runs_containers_through_berth_shim() -> Result<()> {
    berth_e2e::require_root();
    let shim = berth_e2e::binary("berth-shim")?;
    let ctd = Containerd::start(&shim)?;
    import_busybox(&ctd)?;

    // Output and exit code of a foreground container.
    let out = ctd.ctr_ok(&[
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        IMAGE,
        "hello",
        "echo",
        "hello",
    ])?;
    assert_eq!(out, "hello\n");
    let out = ctd.ctr(&[
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        IMAGE,
        "three",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])?;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));

    // A detached container: exec, ps, kill, wait, rm.
    ctd.ctr_ok(&[
        "run",
        "--runtime",
        RUNTIME,
        "-d",
        IMAGE,
        "sleeper",
        "sleep",
        "1000",
    ])?;
    ctd.wait_status("sleeper", "RUNNING")?;
    let hi = ctd.ctr_ok(&["task", "exec", "--exec-id", "x1", "sleeper", "echo", "hi"])?;
    assert_eq!(hi, "hi\n");
    let code = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x2",
        "sleeper",
        "sh",
        "-c",
        "exit 7",
    ])?;
    assert_eq!(code.status.code(), Some(7));

    let ls = ctd.ctr_ok(&["task", "ls"])?;
    let init_pid: i32 = ls
        .lines()
        .find(|l| l.starts_with("sleeper"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no pid for sleeper in {ls}"))?;
    let ps = ctd.ctr_ok(&["task", "ps", "sleeper"])?;
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&init_pid.to_string())),
        "ps lacks init pid {init_pid}: {ps}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{init_pid}/comm"))?;
    assert_eq!(comm.trim(), "sleep");

    // Stats: containerd decodes the shim's cgroup metrics.
    let metrics = ctd.ctr_ok(&["task", "metrics", "sleeper"])?;
    let metric = |name: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    assert_eq!(metric("pids.current"), Some(1), "{metrics}");
    assert!(
        metric("memory.usage_in_bytes").is_some_and(|m| m > 0),
        "{metrics}"
    );
    assert!(metric("cpuacct.usage").is_some(), "{metrics}");

    ctd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "sleeper"])?;
    ctd.wait_status("sleeper", "STOPPED")?;
    // The exit is recorded durably next to the container: SIGKILL → 137.
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(
        ctd.bundle("sleeper").join("berth-exit.json"),
    )?)?;
    assert_eq!(record["exit_status"], 137);
    assert_eq!(record["pid"], init_pid);
    ctd.ctr_ok(&["task", "rm", "sleeper"])?;
    ctd.ctr_ok(&["container", "rm", "sleeper"])?;
    assert!(!ctd.ctr_ok(&["task", "ls", "-q"])?.contains("sleeper"));
    assert!(!Path::new(&format!("/proc/{init_pid}")).exists());
    Ok(())
}
