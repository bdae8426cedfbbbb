//! End-to-end tests against real berth binaries, run as root.
//!
//! The tests live in `tests/`; this library holds what they share: finding the built
//! binaries and running a private berthd that is stopped and cleaned up on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod pty;

/// Fails the calling test with a clear message unless it runs as root.
///
/// Root-only tests must never pass silently on a machine where they cannot run.
pub fn require_root() {
    berth_fixtures::require_root();
}

/// Path of a workspace binary (`berthd`, `berth-runtime`, …) built next to the tests.
///
/// `hack/test.sh` builds every binary before the tests run.
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary has no target/<profile> directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is not built; run `cargo build --workspace --bins` first (hack/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A private berthd with its own root and state dirs, stopped and removed on drop.
pub struct Berthd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    net: NetSlot,
}

/// Where test daemons claim their default bridge slots: one file per slot, claimed by
/// holding an exclusive `flock` on it for as long as the daemon's [`Berthd`] lives, so
/// that concurrent test processes and the threads of one never share a bridge or a
/// subnet. The kernel drops a dead process's locks, so nothing is ever stale; the
/// files stay (removing one could let two claimants lock two different files of the
/// same name).
const NET_SLOTS: &str = "/run/berth-e2e-nets";

/// A default bridge of a test berthd's own: `bte2e-<n>` on `172.30.<n>.0/24`, written
/// into its config (`[networks]`) unless the test's config has that table already,
/// and removed (with the daemon's nft table) when the [`Berthd`] goes.
struct NetSlot {
    n: u8,
    /// The slot's file, locked: the claim.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl NetSlot {
    fn claim() -> Result<NetSlot> {
        std::fs::create_dir_all(NET_SLOTS)?;
        for n in 0..=254u8 {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(Path::new(NET_SLOTS).join(n.to_string()))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(NetSlot { n, _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => return Err(e.into()),
            }
        }
        bail!("no free default bridge slot under {NET_SLOTS}")
    }

    fn bridge(&self) -> String {
        format!("bte2e-{}", self.n)
    }

    fn subnet(&self) -> String {
        format!("172.30.{}.0/24", self.n)
    }

    /// Removes the bridge and the engine's nft table (named as
    /// `engine::networks::firewall::table` names it, from the root path).
    fn clean(&self, root: &Path) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .stderr(Stdio::null())
            .status();
        let table = nft_table_of(root);
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &table])
            .stderr(Stdio::null())
            .status();
    }
}

/// Bridges a test names for its networks, removed when it ends early (berth removes
/// them on a passing run): `let _bridges = BridgeGuard(&["bt-x-a", "bt-x-b"]);`.
pub struct BridgeGuard<'a>(pub &'a [&'a str]);

impl Drop for BridgeGuard<'_> {
    fn drop(&mut self) {
        for b in self.0 {
            if Path::new("/sys/class/net").join(b).exists() {
                let _ = Command::new("ip")
                    .args(["link", "del", b])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// The name of the nft table (family `inet`) of a berthd whose root is `root`:
/// `engine::networks::firewall::table`'s FNV-1a of the root path.
pub fn nft_table_of(root: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("berth_{:012x}", h & 0xffff_ffff_ffff)
}

/// A listing of the host's firewall (`nft list …`, `iptables-save`): its output, or
/// `None` when nft says the listed object does not exist. Other tests' daemons change
/// the ruleset meanwhile, so a listing that fails otherwise is tried again for up to
/// five seconds before its error is returned.
pub fn firewall_listing(program: &str, args: &[&str]) -> Result<Option<String>> {
    let mut last = String::new();
    for _ in 0..25 {
        let out = Command::new(program)
            .args(args)
            .output()
            .with_context(|| format!("running {program} {args:?}"))?;
        if out.status.success() {
            return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if program == "nft" && last.contains("No such file or directory") {
            return Ok(None);
        }
        eprintln!("{program} {args:?} failed, trying again: {}", last.trim());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    bail!("{program} {args:?} kept failing: {}", last.trim())
}

/// Whether something listens on `ip`:53 over UDP and over TCP (from /proc/net, which
/// gives the local address as host-order hex, then the port).
pub fn listening_on_dns(ip: std::net::Ipv4Addr) -> (bool, bool) {
    let want = format!("{:08X}:0035", u32::from_le_bytes(ip.octets()));
    let has = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    };
    (has("/proc/net/udp"), has("/proc/net/tcp"))
}

/// The cgroup berthd puts containers under (`/berth/<id>`), in every hierarchy.
/// A production berthd keeps it, as dockerd keeps `/docker`; the test daemons share
/// it, so the last of them to go in this process removes it if empty.
const BERTHD_CGROUP: &str = "berth";

/// How many [`Berthd`]s this test process holds; the last one's drop removes
/// [`BERTHD_CGROUP`] under this lock, so that no daemon of this process is making a
/// container in it meanwhile.
static LIVE: Mutex<usize> = Mutex::new(0);

impl Berthd {
    fn new(dir: tempfile::TempDir) -> Result<Berthd> {
        let net = NetSlot::claim()?;
        *LIVE.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(Berthd {
            child: None,
            dir,
            net,
        })
    }

    /// The host bridge of this daemon's default `bridge` network (unless the test's
    /// config names another).
    pub fn default_bridge(&self) -> String {
        self.net.bridge()
    }

    /// The subnet of this daemon's default `bridge` network (unless the test's config
    /// names another).
    pub fn default_subnet(&self) -> String {
        self.net.subnet()
    }

    /// Starts berthd on fresh dirs and waits until its Docker API socket answers.
    pub fn start() -> Result<Berthd> {
        let dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir()?;
        let mut berthd = Berthd::new(dir)?;
        berthd.spawn()?;
        Ok(berthd)
    }

    /// Starts berthd on fresh dirs with `config` as its config file (TOML).
    pub fn start_with_config(config: &str) -> Result<Berthd> {
        let dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir()?;
        std::fs::write(dir.path().join("config.toml"), config)?;
        let mut berthd = Berthd::new(dir)?;
        berthd.spawn()?;
        Ok(berthd)
    }

    /// berthd's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The test's own directory (root, state, config and log live under it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) -> Result<()> {
        // Every start (a test may rewrite the config before a restart) gets this
        // daemon's own default bridge unless the config sets `[networks]` itself, and
        // its embedded DNS forwards to a closed port on loopback, never to the host's
        // resolvers (a test sends no traffic off the host; a forwarded query gets
        // SERVFAIL at once).
        let config = std::fs::read_to_string(self.config_path())?;
        if !config.contains("[networks]") {
            std::fs::write(
                self.config_path(),
                format!(
                    "{config}\n[networks]\ndefault_bridge = \"{}\"\ndefault_subnet = \"{}\"\ndns_upstreams = [\"127.0.0.1:9\"]\n",
                    self.net.bridge(),
                    self.net.subnet()
                ),
            )?;
        }
        let child = Command::new(binary("berthd")?)
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .arg("--config")
            .arg(self.config_path())
            .arg("--log-level")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Appended: after a restart the log still says what the killed berthd did.
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("berthd.log"))?,
            )
            .spawn()
            .context("starting berthd")?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// The config file berthd reads; tests may write it before `restart`.
    pub fn config_path(&self) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        if !path.exists() {
            let _ = std::fs::write(&path, "");
        }
        path
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The Docker Engine API socket.
    pub fn docker_socket(&self) -> PathBuf {
        self.state().join("docker.sock")
    }

    /// The CRI socket (berthd's default, `<state>/berth.sock`).
    pub fn cri_socket(&self) -> PathBuf {
        self.state().join("berth.sock")
    }

    /// `DOCKER_HOST` for clients.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.docker_socket().display())
    }

    /// What berthd logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "berthd exited with {status} while starting:\n{}",
                        self.log()
                    );
                }
            }
            if std::os::unix::net::UnixStream::connect(self.docker_socket()).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "berthd did not open {} within 20s:\n{}",
            self.docker_socket().display(),
            self.log()
        )
    }

    /// Stops berthd with SIGTERM (containers keep running) and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    bail!("berthd ignored SIGTERM for 10s:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Kills berthd with SIGKILL, as a crash would.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts berthd again on the same dirs.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Berthd {
    /// A `berth` command talking to this daemon.
    pub fn berth(&self) -> Result<Command> {
        let mut cmd = Command::new(binary("berth")?);
        cmd.env("DOCKER_HOST", self.docker_host());
        Ok(cmd)
    }

    /// The newer docker client (28.x) the machine may ship in /usr/local/bin, talking
    /// to this daemon; `None` where it is not installed.
    pub fn docker_new(&self) -> Option<Command> {
        let path = Path::new("/usr/local/bin/docker");
        if !path.exists() {
            return None;
        }
        let mut cmd = Command::new(path);
        cmd.env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        Some(cmd)
    }

    /// Debian's docker 20.10 client talking to this daemon.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        cmd
    }

    /// Runs the Python `script` with python3 (the Docker SDK installed by hack/deps.sh)
    /// and this daemon's `DOCKER_HOST` as its first argument; returns its stdout, or
    /// an error with its output and berthd's log.
    pub fn python_sdk(&self, script: &str) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("scenario.py");
        std::fs::write(&path, script)?;
        run_ok(Command::new("python3").arg(&path).arg(self.docker_host()))
            .with_context(|| format!("berthd's log:\n{}", self.log()))
    }

    /// Imports the host's busybox (with its applet links and /etc/passwd) as image
    /// `name`, through `berth import`.
    pub fn import_busybox(&self, name: &str) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = dir.path().join("rootfs");
        berth_fixtures::busybox_rootfs(&rootfs)?;
        let tar = dir.path().join("rootfs.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        run_ok(self.berth()?.arg("import").arg(&tar).arg(name))?;
        Ok(())
    }

    /// Removes every container (their shims, mounts and processes go with them).
    fn remove_containers(&self) {
        let Ok(mut ps) = self.berth() else { return };
        let Ok(ids) = run_ok(ps.args(["ps", "-aq", "--no-trunc"])) else {
            return;
        };
        for id in ids.split_whitespace() {
            if let Ok(mut rm) = self.berth() {
                if let Err(e) = run_ok(rm.args(["rm", "-f", id])) {
                    eprintln!("removing container {id}: {e:#}");
                }
            }
        }
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        // A test that failed between a stop (or kill -9) and the restart after it
        // leaves containers running on their own: a daemon is started again to
        // remove them.
        let has_containers =
            std::fs::read_dir(self.root().join("containers")).is_ok_and(|mut d| d.next().is_some());
        if self.child.is_none() && has_containers {
            if let Err(err) = self.spawn() {
                eprintln!("starting berthd again to remove its containers: {err:#}");
            }
        }
        if self.child.is_some() {
            self.remove_containers();
        }
        if let Err(err) = self.stop() {
            eprintln!("stopping berthd: {err:#}");
        }
        self.net.clean(&self.root());
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        *live = live.saturating_sub(1);
        if *live == 0 {
            for e in berth_fixtures::cgroups::remove_if_empty(BERTHD_CGROUP) {
                eprintln!("removing berthd's cgroup parent: {e}");
            }
        }
    }
}

/// Processes whose command line holds `needle`, this test process left out.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                out.push(format!("{name}: {cmdline}"));
            }
        }
    }
    out
}

/// Runs a command whatever its exit: (exit code, or -1 when a signal ended it; stdout;
/// stderr).
pub fn run(cmd: &mut Command) -> Result<(i32, String, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs a command, returning stdout; fails with its stderr when it exits non-zero.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} exited with {}:\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads claiming slots at once never get the same one, and a slot let go is
    /// claimed again (the old claim, a file written after it was made, let a thread
    /// read it empty, take it for stale and remove it while its owner went on).
    #[test]
    fn concurrent_claims_get_distinct_slots() {
        require_root();
        for _ in 0..20 {
            let claims: Vec<NetSlot> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(NetSlot::claim)).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap().unwrap())
                    .collect()
            });
            let mut slots: Vec<u8> = claims.iter().map(|c| c.n).collect();
            slots.sort_unstable();
            slots.dedup();
            assert_eq!(slots.len(), claims.len(), "{slots:?}");
            let lowest = slots[0];
            drop(claims);
            let again = NetSlot::claim().unwrap();
            assert!(again.n <= lowest, "{} after {lowest} was let go", again.n);
        }
    }
}
