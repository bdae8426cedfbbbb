//! Issue 17's leak test: 100 containers over three user networks (one `--internal`)
//! and the default bridge, some publishing a port, some with aliases, run and removed
//! from five threads with Debian's docker 20.10 client while berthd is killed with
//! SIGKILL part-way and restarted on the same root. Each probe (veths on the
//! bridges, address leases, CNI cache entries and namespace pins, the DNAT rules of
//! the published ports, berth's nft table, names answered by berth's DNS) is first
//! shown to see the live state; after every container and network is removed it
//! must find nothing, and no netns, cgroup, shim process or mount may be left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{firewall_listing, processes_with, require_root, run, run_ok, Berthd, BridgeGuard};

/// The user networks: (name, subnet, bridge, internal).
const NETWORKS: [(&str, &str, &str, bool); 3] = [
    ("lka", "10.241.0.0/24", "bt-lk-a", false),
    ("lkb", "10.242.0.0/24", "bt-lk-b", false),
    ("lki", "10.243.0.0/24", "bt-lk-i", true),
];
const THREADS: usize = 5;
const CONTAINERS: usize = 100;
/// Containers run before any removal starts.
const FIRST: usize = 60;

/// A docker 20.10 client for the daemon, usable from threads while the main thread
/// kills and restarts the daemon (which needs the `Berthd` mutably).
#[derive(Clone)]
struct Docker {
    host: String,
    config: PathBuf,
}

impl Docker {
    fn of(berthd: &Berthd) -> Docker {
        Docker {
            host: berthd.docker_host(),
            config: berthd.dir().join("docker-config"),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config);
        cmd
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        run_ok(self.cmd().args(args))
    }

    /// Runs `args` until it succeeds (the daemon may be down or restarting
    /// meanwhile); `undo` runs before each retry.
    fn until_ok(&self, args: &[&str], undo: Option<&[&str]>) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.ok(args) {
                Ok(out) => return Ok(out),
                // A removal that went through before the daemon died.
                Err(e) if args[0] == "rm" && format!("{e:#}").contains("No such container") => {
                    return Ok(String::new())
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(300));
                    if let Some(undo) = undo {
                        let _ = run(self.cmd().args(undo));
                    }
                }
            }
        }
    }
}

/// Container `i`: its name, its network (`""`: the default bridge), whether it
/// publishes port 80 and its alias.
struct Spec {
    name: String,
    network: &'static str,
    publish: bool,
    alias: Option<String>,
}

fn spec(i: usize) -> Spec {
    let network = match i % 4 {
        0 => "",
        n => NETWORKS[n - 1].0,
    };
    Spec {
        name: format!("lk{i}"),
        network,
        // An internal network has no way in: its containers publish nothing.
        publish: i.is_multiple_of(3) && network != "lki",
        alias: (!network.is_empty() && i % 5 < 2).then(|| format!("al{i}")),
    }
}

fn run_args(s: &Spec) -> Vec<String> {
    let mut a: Vec<String> = ["run", "-d", "--name", &s.name].map(String::from).to_vec();
    if !s.network.is_empty() {
        a.extend(["--network".into(), s.network.into()]);
    }
    if s.publish {
        a.extend(["-p".into(), "127.0.0.1::80".into()]);
    }
    if let Some(alias) = &s.alias {
        a.extend(["--network-alias".into(), alias.clone()]);
    }
    a.extend(["busybox", "sleep", "600"].map(String::from));
    a
}

/// Every host-side trace of berth's networking for this daemon: veths on its
/// bridges (by name), leases, CNI cache entries, namespace pins, the iptables rules
/// naming the subnets (masquerade, firewall, DNAT), berth's nft table, DNS listeners
/// on the user networks' gateways.
fn traces(berthd: &Berthd, bridges: &[String], prefixes: &[String]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for b in bridges {
        let out = run_ok(Command::new("ip").args(["-o", "link", "show", "master", b]))
            .unwrap_or_default();
        found.extend(out.lines().filter_map(|l| {
            let name = l.split(':').nth(1)?.trim().split('@').next()?.to_string();
            Some(format!("veth on {b}: {name}"))
        }));
    }
    let state = berthd.state().join("networks");
    for sub in ["cni/results", "netns"] {
        if let Ok(entries) = std::fs::read_dir(state.join(sub)) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| format!("{sub}: {}", e.file_name().to_string_lossy())),
            );
        }
    }
    if let Ok(nets) = std::fs::read_dir(state.join("ipam")) {
        for net in nets.flatten() {
            for lease in std::fs::read_dir(net.path())?.flatten() {
                let name = lease.file_name().to_string_lossy().into_owned();
                // host-local keeps its lock and last-reserved markers besides leases.
                if name.parse::<std::net::Ipv4Addr>().is_ok() {
                    let owner = std::fs::read_to_string(lease.path()).unwrap_or_default();
                    let owner = owner.lines().next().unwrap_or("").to_string();
                    found.push(format!("lease: {name} of {owner}"));
                }
            }
        }
    }
    let rules = firewall_listing("iptables-save", &[])?.unwrap_or_default();
    found.extend(
        rules
            .lines()
            .filter(|l| l.starts_with("-A") && prefixes.iter().any(|p| l.contains(p.as_str())))
            .map(|l| format!("iptables: {l}")),
    );
    // berth's table stays while the default bridge exists (its masquerade rule); what
    // must go are the rules naming a user network's bridge or subnet.
    let table = berth_e2e::nft_table_of(&berthd.root());
    let listing = firewall_listing("nft", &["list", "table", "inet", &table])?.unwrap_or_default();
    let marks: Vec<&str> = NETWORKS.iter().flat_map(|n| [n.1, n.2]).collect();
    found.extend(
        listing
            .lines()
            .map(str::trim)
            .filter(|l| marks.iter().any(|m| l.contains(m)))
            .map(|l| format!("nft: {l}")),
    );
    for (_, subnet, _, _) in NETWORKS {
        let gateway = gateway_of(subnet);
        if listening_on(gateway) {
            found.push(format!("dns listener on {gateway}:53"));
        }
    }
    Ok(found)
}

fn count(found: &[String], what: &str) -> usize {
    found.iter().filter(|t| t.starts_with(what)).count()
}

fn gateway_of(subnet: &str) -> std::net::Ipv4Addr {
    let base: std::net::Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    std::net::Ipv4Addr::from(u32::from(base) + 1)
}

/// Whether something listens on `ip`:53 over UDP or TCP.
fn listening_on(ip: std::net::Ipv4Addr) -> bool {
    let (udp, tcp) = berth_e2e::listening_on_dns(ip);
    udp || tcp
}

/// `nslookup NAME` in container `from`: the addresses berth's DNS answered, or None
/// (NXDOMAIN).
fn lookup(docker: &Docker, from: &str, name: &str) -> Result<Option<Vec<String>>> {
    let (code, out, err) = run(docker.cmd().args(["exec", from, "nslookup", name]))?;
    if code != 0 {
        if out.contains("NXDOMAIN") || err.contains("NXDOMAIN") {
            return Ok(None);
        }
        bail!("nslookup {name} in {from}: {out}{err}");
    }
    Ok(Some(
        out.split("Name:")
            .skip(1)
            .flat_map(|part| {
                part.lines()
                    .filter_map(|l| l.trim().strip_prefix("Address:"))
                    .map(|a| a.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect(),
    ))
}

fn ip_of(docker: &Docker, name: &str, network: &str) -> Result<String> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    Ok(docker
        .ok(&["inspect", "--format", &format, name])?
        .trim()
        .to_string())
}

/// The containers berthd knows now: name → id.
fn containers(docker: &Docker) -> Result<Vec<(String, String)>> {
    Ok(docker
        .ok(&["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}"])?
        .lines()
        .filter_map(|l| {
            let (n, id) = l.split_once(' ')?;
            Some((n.to_string(), id.to_string()))
        })
        .collect())
}

/// Names on each user network that berth's DNS answers from a container on it:
/// a running container's name and alias resolve to its address there.
fn show_dns_answers(docker: &Docker, running: &BTreeSet<usize>) -> Result<()> {
    for (net, _, _, _) in NETWORKS {
        let on: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&i| spec(i).network == net)
            .collect();
        let from = spec(*on.first().context("no container on a network")?).name;
        let target = on
            .iter()
            .copied()
            .find(|&i| spec(i).alias.is_some() && spec(i).name != from)
            .with_context(|| format!("no aliased container on {net}"))?;
        let s = spec(target);
        let ip = ip_of(docker, &s.name, net)?;
        for name in [s.name.clone(), s.alias.clone().unwrap_or_default()] {
            let answer = lookup(docker, &from, &name)?;
            assert_eq!(
                answer,
                Some(vec![ip.clone()]),
                "{name} from {from} on {net}"
            );
        }
    }
    Ok(())
}

#[test]
fn hundred_containers_over_three_networks_and_a_kill9_leave_nothing() -> Result<()> {
    require_root();
    let started = Instant::now();
    let mut berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let docker = Docker::of(&berthd);
    let names: Vec<&str> = NETWORKS.iter().map(|n| n.2).collect();
    let _bridges = BridgeGuard(&names);
    for (name, subnet, bridge, internal) in NETWORKS {
        let opt = format!("com.docker.network.bridge.name={bridge}");
        let mut args = vec!["network", "create", "--subnet", subnet, "-o", &opt];
        if internal {
            args.push("--internal");
        }
        args.push(name);
        docker.ok(&args)?;
    }
    let mut bridges: Vec<String> = NETWORKS.iter().map(|n| n.2.to_string()).collect();
    bridges.push(berthd.default_bridge());
    let mut prefixes: Vec<String> = NETWORKS
        .iter()
        .map(|n| n.1.trim_end_matches("0/24").to_string())
        .collect();
    prefixes.push(berthd.default_subnet().trim_end_matches("0/24").to_string());

    // The first 60 from five threads.
    let ops = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (docker, ops) = (&docker, &ops);
                s.spawn(move || -> Result<()> {
                    for i in (t..FIRST).step_by(THREADS) {
                        let args = run_args(&spec(i));
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        docker.ok(&args)?;
                        ops.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!("{FIRST} containers running after {:?}", started.elapsed());

    // Every probe sees the live state first.
    let live = traces(&berthd, &bridges, &prefixes)?;
    eprintln!("live traces: {}", live.len());
    assert_eq!(count(&live, "veth on"), FIRST, "{live:#?}");
    assert_eq!(count(&live, "lease:"), FIRST, "{live:#?}");
    assert_eq!(count(&live, "netns:"), FIRST, "{live:#?}");
    assert_eq!(count(&live, "cni/results:"), FIRST, "{live:#?}");
    // lka and lkb masqueraded, lki not (internal); the three isolated from each other.
    for (_, subnet, bridge, internal) in NETWORKS {
        let masq = format!("nft: ip saddr {subnet} ip daddr != {subnet}");
        assert_eq!(
            live.iter().any(|t| t.starts_with(&masq)),
            !internal,
            "{subnet}: {live:#?}"
        );
        let isolated = format!("nft: iifname \"{bridge}\" oifname {{");
        assert!(
            live.iter().any(|t| t.starts_with(&isolated)),
            "{bridge}: {live:#?}"
        );
    }
    // lka and lkb have a listener; lki too (an internal network's containers still
    // resolve each other).
    assert_eq!(count(&live, "dns listener"), 3, "{live:#?}");
    let published: Vec<usize> = (0..FIRST).filter(|&i| spec(i).publish).collect();
    for &i in &published {
        let name = spec(i).name;
        let port = docker.ok(&["port", &name, "80"])?;
        let port = port
            .trim()
            .rsplit(':')
            .next()
            .context("no host port")?
            .to_string();
        let dnat = live
            .iter()
            .any(|t| t.contains("DNAT") && t.contains(&format!("--dport {port} ")));
        assert!(dnat, "no DNAT rule for {name}'s port {port}: {live:#?}");
    }
    let running: BTreeSet<usize> = (0..FIRST).collect();
    show_dns_answers(&docker, &running)?;

    // Five threads remove the first 60 and run the last 40, interleaved; berthd is
    // killed with SIGKILL part-way and restarted on the same root.
    let ops_before = ops.load(Ordering::SeqCst);
    // When the latest `docker run` began, in ms since the test's start.
    let run_began = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (docker, ops, run_began) = (&docker, &ops, &run_began);
                s.spawn(move || -> Result<()> {
                    let mut removals = (t..FIRST).step_by(THREADS);
                    let mut runs = (FIRST + t..CONTAINERS).step_by(THREADS);
                    loop {
                        let r = removals.next();
                        if let Some(i) = r {
                            docker.until_ok(&["rm", "-f", &spec(i).name], None)?;
                            ops.fetch_add(1, Ordering::SeqCst);
                        }
                        let n = runs.next();
                        if let Some(i) = n {
                            let s = spec(i);
                            let args = run_args(&s);
                            let args: Vec<&str> = args.iter().map(String::as_str).collect();
                            let at = started.elapsed().as_millis() as u64;
                            run_began.store(at, Ordering::SeqCst);
                            docker.until_ok(&args, Some(&["rm", "-f", &s.name]))?;
                            ops.fetch_add(1, Ordering::SeqCst);
                        }
                        if r.is_none() && n.is_none() {
                            return Ok(());
                        }
                    }
                })
            })
            .collect();
        // Part-way: a fifth of the operations done.
        while ops.load(Ordering::SeqCst) < ops_before + CONTAINERS / 5 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Then into a `docker run`'s start (attachment, shim), where a crash leaves
        // the most half-made: a run that began just now, 0.8 s on.
        let deadline = Instant::now() + Duration::from_secs(10);
        while started.elapsed().as_millis() as u64 > run_began.load(Ordering::SeqCst) + 50
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // BERTH_LEAK_KILL_MS moves the kill (to hunt other windows by hand).
        let delay = std::env::var("BERTH_LEAK_KILL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(800);
        std::thread::sleep(Duration::from_millis(delay));
        berthd.kill9()?;
        eprintln!(
            "berthd killed after {} operations",
            ops.load(Ordering::SeqCst) - ops_before
        );
        std::thread::sleep(Duration::from_millis(1500));
        berthd.restart()?;
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!("removals and runs done after {:?}", started.elapsed());

    // The last 40 run; nothing of the first 60 is left but its traces' absence.
    let known = containers(&docker)?;
    let mut names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let mut want: Vec<String> = (FIRST..CONTAINERS).map(|i| spec(i).name).collect();
    want.sort();
    assert_eq!(names, want, "{}", berthd.log());
    let now = traces(&berthd, &bridges, &prefixes)?;
    let left = CONTAINERS - FIRST;
    assert_eq!(count(&now, "veth on"), left, "{now:#?}");
    assert_eq!(count(&now, "lease:"), left, "{now:#?}");
    assert_eq!(count(&now, "netns:"), left, "{now:#?}");
    assert_eq!(count(&now, "cni/results:"), left, "{now:#?}");
    let running: BTreeSet<usize> = (FIRST..CONTAINERS).collect();
    show_dns_answers(&docker, &running)?;
    // Removed containers' names and aliases no longer answer.
    for (net, _, _, _) in NETWORKS {
        let from = (FIRST..CONTAINERS)
            .map(spec)
            .find(|s| s.network == net)
            .context("no container")?
            .name;
        for gone in (0..FIRST).map(spec).filter(|s| s.network == net).take(3) {
            for name in [Some(gone.name.clone()), gone.alias.clone()]
                .into_iter()
                .flatten()
            {
                assert_eq!(lookup(&docker, &from, &name)?, None, "{name} from {from}");
            }
        }
    }

    // Everything the removal must take: the veths by name, the ids' cgroups, the
    // shims.
    let veths: Vec<String> = now
        .iter()
        .filter(|t| t.starts_with("veth on"))
        .filter_map(|t| t.rsplit(' ').next().map(str::to_string))
        .collect();
    let mut ids: BTreeSet<String> = known.iter().map(|(_, id)| id.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(berthd.root().join("containers")) {
        ids.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    for (_, id) in &known {
        docker.ok(&["rm", "-f", id])?;
    }
    let nets: Vec<&str> = NETWORKS.iter().map(|n| n.0).collect();
    docker.ok(&[&["network", "rm"][..], &nets].concat())?;

    let after = traces(&berthd, &bridges, &prefixes)?;
    assert!(
        after.is_empty(),
        "left behind: {after:#?}\n{}",
        berthd.log()
    );
    for v in &veths {
        assert!(
            !Path::new("/sys/class/net").join(v).exists(),
            "veth {v} left"
        );
    }
    for (_, _, b, _) in NETWORKS {
        assert!(
            !Path::new("/sys/class/net").join(b).exists(),
            "bridge {b} left"
        );
    }
    let dir = berthd.dir().display().to_string();
    let cgroups: Vec<String> = walk_cgroups()
        .into_iter()
        .filter(|p| p.contains("/berth/"))
        .filter(|p| ids.iter().any(|id| p.ends_with(id.as_str())) || holds_ours(p, &dir))
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:#?}");
    let me = berthd.pid().map(|p| format!("{p}: ")).unwrap_or_default();
    let procs: Vec<String> = processes_with(&berthd.dir().display().to_string())
        .into_iter()
        .filter(|p| !p.starts_with(&me))
        .collect();
    assert!(
        procs.is_empty(),
        "processes left: {procs:#?}\ncontainers dir: {:?}\n{}",
        std::fs::read_dir(berthd.root().join("containers"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default(),
        berthd.log()
    );
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter(|l| l.contains(&berthd.dir().display().to_string()))
        .map(str::to_string)
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
    // What the restarted berthd's reconcile undid (it varies with where the kill hit).
    let log = berthd.log();
    for what in [
        "detaching a stopped container from its networks",
        "ending a task whose start berthd did not finish",
        "releasing the address lease",
        "removing a half-created container",
    ] {
        eprintln!("reconcile: {what}: {}", log.matches(what).count());
    }
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}

/// Whether cgroup `path` holds a process descending from one whose command line
/// names `dir` (a shim of this test's daemon).
fn holds_ours(path: &str, dir: &str) -> bool {
    let procs = std::fs::read_to_string(Path::new(path).join("cgroup.procs")).unwrap_or_default();
    procs.lines().any(|pid| {
        let mut pid = pid.trim().to_string();
        for _ in 0..4 {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(dir) {
                return true;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent's pid is the second field after the command's `)`.
            match stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
            {
                Some(ppid) if ppid != "0" && ppid != "1" => pid = ppid.to_string(),
                _ => return false,
            }
        }
        false
    })
}

/// Every cgroup directory three levels deep (`/sys/fs/cgroup/<ctrl>/berth/<id>` on
/// v1, `/sys/fs/cgroup/berth/<id>` on v2).
fn walk_cgroups() -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path().display().to_string());
                if depth < 2 {
                    dirs.push((e.path(), depth + 1));
                }
            }
        }
    }
    out
}
