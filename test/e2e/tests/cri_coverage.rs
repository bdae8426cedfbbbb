//! What issue 8 asks of the CRI suite that the other files do not cover, through a real
//! berthd: image USER variants from the fixture images and the security context's user
//! fields, checked with `id` inside the container; namespace modes NODE, POD,
//! CONTAINER and TARGET; masked and read-only paths; mount propagation; Status,
//! RuntimeConfig, UpdateRuntimeConfig, ImageFsInfo, ListPodSandbox filters and the
//! verbose status of pods and containers.

mod cri_common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use berth_e2e::require_root;
use k8s_cri::v1 as cri;

use cri_common::{
    container, cri_log, host_pod, mounts_under, run_pod, setup, Client, PodGuard, Setup,
};

/// What `id -u`, `id -g` and `id -G` print, as the container's own process ran them.
#[derive(Debug, PartialEq, Eq)]
struct Ids {
    uid: u32,
    gid: u32,
    groups: BTreeSet<u32>,
}

/// Runs `config` (its command replaced by the `id` probe) to completion and parses
/// its log.
fn ids_of(
    client: &Client,
    sandbox: &str,
    pod: &cri::PodSandboxConfig,
    mut config: cri::ContainerConfig,
) -> Result<Ids> {
    config.command = vec![
        "sh".into(),
        "-c".into(),
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G)".into(),
    ];
    let log = config.log_path.clone();
    let id = client.create_and_start(sandbox, pod, config)?;
    let st = client.wait_state(&id, cri::ContainerState::ContainerExited)?;
    ensure!(st.exit_code == 0, "the id probe failed: {st:?}");
    let lines = cri_log(&Path::new(&pod.log_directory).join(log))?;
    let field = |k: &str| -> Result<String> {
        lines
            .iter()
            .find_map(|(_, _, l)| l.strip_prefix(&format!("{k}=")).map(str::to_string))
            .with_context(|| format!("no {k} in {lines:?}"))
    };
    Ok(Ids {
        uid: field("uid")?.parse()?,
        gid: field("gid")?.parse()?,
        groups: field("groups")?
            .split_whitespace()
            .map(|g| g.parse())
            .collect::<Result<_, _>>()?,
    })
}

fn ids(uid: u32, gid: u32, groups: &[u32]) -> Ids {
    Ids {
        uid,
        gid,
        groups: groups.iter().copied().collect(),
    }
}

fn security(f: impl FnOnce(&mut cri::LinuxContainerSecurityContext)) -> cri::LinuxContainerConfig {
    let mut sc = cri::LinuxContainerSecurityContext::default();
    f(&mut sc);
    cri::LinuxContainerConfig {
        security_context: Some(sc),
        ..Default::default()
    }
}

/// The fixture images' USER variants and the security context's user fields, each
/// checked by what `id` prints inside the container. The fixture /etc/passwd has
/// root, www-data (33:33) and nobody (65534:65534); /etc/group has www-data (33),
/// users (100, with member www-data) and nogroup (65534).
#[test]
fn cri_image_users_and_run_as_fields() -> Result<()> {
    require_root();
    let user = |u: &'static str| move |d: &Path| berth_fixtures::images::with_user(d, u);
    let (nobody, numeric, pair, name, base) = (
        user("nobody"),
        user("1000"),
        user("33:100"),
        user("www-data"),
        |d: &Path| berth_fixtures::images::base(d),
    );
    let s = setup(
        "cricoverage/busybox",
        &[
            ("nobody", &nobody),
            ("numeric", &numeric),
            ("pair", &pair),
            ("name", &name),
            ("base", &base),
        ],
        "",
    )?;
    let client = &s.client;
    let pod = host_pod("criusers", &s.work);
    let (sandbox, _guard) = s.start_pod(&pod)?;
    let probe = |tag: &str, name: &str, linux: Option<cri::LinuxContainerConfig>| {
        let mut c = container(name, &s.refs[tag], "", &format!("{name}.log"));
        c.linux = linux;
        ids_of(client, &sandbox, &pod, c)
    };
    let mut failures = Vec::new();
    let mut check = |what: &str, got: Result<Ids>, want: Ids| match got {
        Ok(got) if got == want => {}
        Ok(got) => failures.push(format!("{what}: got {got:?}, want {want:?}")),
        Err(e) => failures.push(format!("{what}: {e:#}")),
    };

    // Image USER variants.
    check(
        "USER nobody",
        probe("nobody", "u-nobody", None),
        ids(65534, 65534, &[65534]),
    );
    check(
        "USER 1000 (not in /etc/passwd)",
        probe("numeric", "u-numeric", None),
        ids(1000, 0, &[0]),
    );
    check(
        "USER 33:100",
        probe("pair", "u-pair", None),
        ids(33, 100, &[100]),
    );
    // A name resolved in the image's /etc/passwd, its groups from /etc/group.
    check(
        "USER www-data",
        probe("name", "u-name", None),
        ids(33, 33, &[33, 100]),
    );
    check("no USER", probe("base", "u-base", None), ids(0, 0, &[0]));

    // The security context's fields.
    check(
        "run_as_username www-data",
        probe(
            "base",
            "sc-username",
            Some(security(|sc| sc.run_as_username = "www-data".into())),
        ),
        ids(33, 33, &[33, 100]),
    );
    check(
        "run_as_user 33 (group from /etc/passwd)",
        probe(
            "base",
            "sc-uid",
            Some(security(|sc| {
                sc.run_as_user = Some(cri::Int64Value { value: 33 })
            })),
        ),
        ids(33, 33, &[33, 100]),
    );
    check(
        "run_as_user 0 over USER nobody",
        probe(
            "nobody",
            "sc-root",
            Some(security(|sc| {
                sc.run_as_user = Some(cri::Int64Value { value: 0 })
            })),
        ),
        ids(0, 0, &[0]),
    );
    check(
        "run_as_user 65534, run_as_group 100, supplemental_groups 33 and 1234",
        probe(
            "base",
            "sc-groups",
            Some(security(|sc| {
                sc.run_as_user = Some(cri::Int64Value { value: 65534 });
                sc.run_as_group = Some(cri::Int64Value { value: 100 });
                sc.supplemental_groups = vec![33, 1234];
            })),
        ),
        ids(65534, 100, &[33, 100, 1234]),
    );
    ensure!(
        failures.is_empty(),
        "user variants:\n{}",
        failures.join("\n")
    );

    let mut rt = client.runtime()?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    assert_eq!(mounts_under(s.berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// Unmounts (lazily) what the propagation test mounted on the host, in reverse.
struct HostMounts(Vec<PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

fn sh(client: &Client, id: &str, script: &str) -> Result<(i32, String)> {
    let r = client.exec(id, &["sh", "-c", script], 10)?;
    Ok((
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).trim().to_string(),
    ))
}

/// The optional fields of the mountinfo line of `target` (`shared:N`, `master:N`, …)
/// and its mount options, as the container sees them.
fn mount_line(client: &Client, id: &str, target: &str) -> Result<(String, String)> {
    let (_, text) = sh(client, id, "cat /proc/self/mountinfo")?;
    let line = text
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(target))
        .with_context(|| format!("{target} is not a mount point inside:\n{text}"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let dash = fields
        .iter()
        .position(|f| *f == "-")
        .unwrap_or(fields.len());
    Ok((fields[6..dash].join(" "), fields[5].to_string()))
}

fn mount(args: &[&str]) -> Result<()> {
    let out = Command::new("mount").args(args).output()?;
    ensure!(
        out.status.success(),
        "mount {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A privileged container of `sandbox` with a host dir (made a shared mount) bound at
/// /private, /h2c (host to container) and /bidi (bidirectional); the dir and the
/// guard of the host mounts.
/// A privileged container with the binds `mounts` (container path, propagation) of one
/// host directory made a shared mount.
fn propagation_container(
    s: &Setup,
    sandbox: &str,
    pod: &cri::PodSandboxConfig,
    mounts: &[(&str, cri::MountPropagation)],
) -> Result<(String, PathBuf, HostMounts)> {
    let shared = s.work.join("shared");
    std::fs::create_dir_all(shared.join("from-host"))?;
    let mut host_mounts = HostMounts(Vec::new());
    let shared_str = shared.display().to_string();
    mount(&["--bind", &shared_str, &shared_str])?;
    host_mounts.0.push(shared.clone());
    mount(&["--make-rshared", &shared_str])?;
    let bind = |path: &str, p: cri::MountPropagation| cri::Mount {
        container_path: path.into(),
        host_path: shared_str.clone(),
        propagation: p as i32,
        ..Default::default()
    };
    let mut prop = container("prop", &s.refs["base"], "exec sleep 3600", "prop.log");
    prop.mounts = mounts.iter().map(|(path, p)| bind(path, *p)).collect();
    // Mounting inside needs CAP_SYS_ADMIN; kubelet allows Bidirectional only to
    // privileged containers.
    prop.linux = Some(security(|sc| sc.privileged = true));
    let prop = s.client.create_and_start(sandbox, pod, prop)?;
    s.client
        .wait_state(&prop, cri::ContainerState::ContainerRunning)?;
    Ok((prop, shared, host_mounts))
}

/// Namespace modes (NODE, POD, CONTAINER, TARGET for PID), masked and read-only
/// paths, and private and host-to-container propagation, each seen from inside.
#[test]
fn cri_namespace_modes_masked_readonly_paths_and_propagation() -> Result<()> {
    require_root();
    let base = |d: &Path| berth_fixtures::images::base(d);
    let s = setup("cricoverage/busybox", &[("base", &base)], "")?;
    let client = &s.client;
    let image = s.refs["base"].clone();
    let pod = host_pod("crins", &s.work);
    let (sandbox, _guard) = s.start_pod(&pod)?;
    let with_pid = |name: &str, mode: cri::NamespaceMode, target: &str| {
        let mut c = container(name, &image, "exec sleep 3600", &format!("{name}.log"));
        c.linux = Some(security(|sc| {
            sc.namespace_options = Some(cri::NamespaceOption {
                network: cri::NamespaceMode::Node as i32,
                pid: mode as i32,
                target_id: target.to_string(),
                ..Default::default()
            })
        }));
        c
    };
    let ns_of = |id: &str, kind: &str| -> Result<String> {
        let (code, out) = sh(client, id, &format!("readlink /proc/self/ns/{kind}"))?;
        ensure!(code == 0, "readlink in {id}: {out}");
        Ok(out)
    };
    let host_ns = |kind: &str| -> Result<String> {
        Ok(std::fs::read_link(format!("/proc/self/ns/{kind}"))?
            .display()
            .to_string())
    };

    // PID: CONTAINER (its own), NODE (the host's).
    let own = client.create_and_start(
        &sandbox,
        &pod,
        with_pid("own", cri::NamespaceMode::Container, ""),
    )?;
    let other = client.create_and_start(
        &sandbox,
        &pod,
        with_pid("other", cri::NamespaceMode::Container, ""),
    )?;
    let node = client.create_and_start(
        &sandbox,
        &pod,
        with_pid("node", cri::NamespaceMode::Node, ""),
    )?;
    for id in [&own, &other, &node] {
        client.wait_state(id, cri::ContainerState::ContainerRunning)?;
    }
    let own_pid = ns_of(&own, "pid")?;
    assert_ne!(
        ns_of(&other, "pid")?,
        own_pid,
        "CONTAINER is a PID namespace of its own"
    );
    assert_ne!(own_pid, host_ns("pid")?);
    assert_eq!(ns_of(&node, "pid")?, host_ns("pid")?, "NODE is the host's");
    // Network NODE (the pod's): the host's; IPC POD: the pod's, shared, not the host's.
    assert_eq!(ns_of(&own, "net")?, host_ns("net")?);
    assert_eq!(ns_of(&own, "ipc")?, ns_of(&other, "ipc")?);
    assert_ne!(ns_of(&own, "ipc")?, host_ns("ipc")?);
    let mut rt = client.runtime()?;

    // Masked and read-only paths.
    let mut masked = container("masked", &image, "exec sleep 3600", "masked.log");
    masked.linux = Some(security(|sc| {
        sc.masked_paths = vec!["/proc/cpuinfo".into(), "/etc/masked-dir".into()];
        sc.readonly_paths = vec!["/tmp".into()];
    }));
    let masked = client.create_and_start(&sandbox, &pod, masked)?;
    client.wait_state(&masked, cri::ContainerState::ContainerRunning)?;
    assert_eq!(
        sh(client, &masked, "wc -c < /proc/cpuinfo")?,
        (0, "0".into())
    );
    assert_ne!(
        sh(client, &other, "wc -c < /proc/cpuinfo")?.1,
        "0",
        "cpuinfo unmasked"
    );
    assert_ne!(
        sh(client, &masked, "touch /tmp/probe 2>/dev/null")?.0,
        0,
        "/tmp is read-only"
    );
    assert_eq!(
        sh(client, &other, "touch /tmp/probe")?.0,
        0,
        "/tmp is writable elsewhere"
    );
    let (_, opts) = mount_line(client, &masked, "/tmp")?;
    assert!(opts.split(',').any(|o| o == "ro"), "/tmp options {opts}");

    // Propagation: a host dir made a shared mount, bound private and host-to-container
    // (a bidirectional bind makes the whole root shared, as with runc: its own test).
    let (prop, shared, host_mounts) = propagation_container(
        &s,
        &sandbox,
        &pod,
        &[
            ("/private", cri::MountPropagation::PropagationPrivate),
            ("/h2c", cri::MountPropagation::PropagationHostToContainer),
        ],
    )?;
    let (private_opt, _) = mount_line(client, &prop, "/private")?;
    let (h2c_opt, _) = mount_line(client, &prop, "/h2c")?;
    assert!(
        !private_opt.contains("shared:") && !private_opt.contains("master:"),
        "private: {private_opt}"
    );
    assert!(
        h2c_opt.contains("master:") && !h2c_opt.contains("shared:"),
        "host-to-container: {h2c_opt}"
    );
    // A mount made on the host after the start: seen through /h2c, not /private.
    let from_host = shared.join("from-host");
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "crie2e-from-host",
        &from_host.display().to_string(),
    ])?;
    let mut host_mounts = host_mounts;
    host_mounts.0.push(from_host.clone());
    std::fs::write(from_host.join("f"), "host\n")?;
    assert_eq!(
        sh(client, &prop, "cat /h2c/from-host/f")?,
        (0, "host".into())
    );
    assert_ne!(
        sh(client, &prop, "cat /private/from-host/f 2>/dev/null")?.0,
        0
    );
    // A mount made inside under /h2c stays inside.
    let r = sh(
        client,
        &prop,
        "mkdir -p /h2c/from-c2 && mount -t tmpfs crie2e-c2 /h2c/from-c2 && echo c2 > /h2c/from-c2/f",
    )?;
    assert_eq!(r.0, 0, "mounting inside: {}", r.1);
    assert!(
        shared.join("from-c2").is_dir() && !shared.join("from-c2/f").exists(),
        "a host-to-container mount leaked out"
    );

    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    drop(host_mounts);
    // Let the lazy unmounts settle before looking.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(mounts_under(s.berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// PID namespace mode TARGET (what kubectl debug's ephemeral containers use): the
/// container joins the PID namespace of the container named by `target_id`; a target
/// that is not a container of the pod is refused.
#[test]
fn cri_pid_namespace_target() -> Result<()> {
    require_root();
    let base = |d: &Path| berth_fixtures::images::base(d);
    let s = setup("cricoverage/busybox", &[("base", &base)], "")?;
    let client = &s.client;
    let image = s.refs["base"].clone();
    let pod = host_pod("critarget", &s.work);
    let (sandbox, _guard) = s.start_pod(&pod)?;
    let with_pid = |name: &str, mode: cri::NamespaceMode, target: &str| {
        let mut c = container(name, &image, "exec sleep 3600", &format!("{name}.log"));
        c.linux = Some(security(|sc| {
            sc.namespace_options = Some(cri::NamespaceOption {
                network: cri::NamespaceMode::Node as i32,
                pid: mode as i32,
                target_id: target.to_string(),
                ..Default::default()
            })
        }));
        c
    };
    let target = client.create_and_start(
        &sandbox,
        &pod,
        with_pid("target", cri::NamespaceMode::Container, ""),
    )?;
    client.wait_state(&target, cri::ContainerState::ContainerRunning)?;
    let joiner = client.create_and_start(
        &sandbox,
        &pod,
        with_pid("joiner", cri::NamespaceMode::Target, &target),
    )?;
    client.wait_state(&joiner, cri::ContainerState::ContainerRunning)?;
    let ns = |id: &str| -> Result<String> { Ok(sh(client, id, "readlink /proc/self/ns/pid")?.1) };
    assert_eq!(
        ns(&joiner)?,
        ns(&target)?,
        "TARGET joins the target's PID namespace"
    );
    let (_, ps) = sh(client, &joiner, "ps -o pid,args")?;
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 3600")),
        "the joiner does not see the target's PID 1:\n{ps}"
    );
    let mut rt = client.runtime()?;
    let bad = client.block_on(rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.clone(),
        config: Some(with_pid(
            "bad-target",
            cri::NamespaceMode::Target,
            "0000nosuchcontainer",
        )),
        sandbox_config: Some(pod.clone()),
    }));
    assert!(bad.is_err(), "TARGET of a missing container was accepted");
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    Ok(())
}

/// A mount made inside a container under a Bidirectional mount reaches the host (what
/// CSI node plugins rely on). For that the container's root must stay a shared mount
/// (OCI `rootfsPropagation: rshared`, as containerd sets when a mount is
/// bidirectional); as a slave root the bind would be `shared:N master:M`, a peer group
/// of its own whose mounts never reach the host.
#[test]
fn cri_bidirectional_mount_reaches_the_host() -> Result<()> {
    require_root();
    let base = |d: &Path| berth_fixtures::images::base(d);
    let s = setup("cricoverage/busybox", &[("base", &base)], "")?;
    let client = &s.client;
    let pod = host_pod("cribidi", &s.work);
    let (sandbox, _guard) = s.start_pod(&pod)?;
    let (prop, shared, mut host_mounts) = propagation_container(
        &s,
        &sandbox,
        &pod,
        &[("/bidi", cri::MountPropagation::PropagationBidirectional)],
    )?;
    let (bidi_opt, _) = mount_line(client, &prop, "/bidi")?;
    assert!(bidi_opt.contains("shared:"), "bidirectional: {bidi_opt}");
    // Host to container: a mount made on the host after the start is seen inside.
    let from_host = shared.join("from-host");
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "crie2e-bidi-host",
        &from_host.display().to_string(),
    ])?;
    host_mounts.0.push(from_host.clone());
    std::fs::write(from_host.join("f"), "host\n")?;
    assert_eq!(
        sh(client, &prop, "cat /bidi/from-host/f")?,
        (0, "host".into())
    );
    // Container to host.
    let r = sh(
        client,
        &prop,
        "mkdir -p /bidi/from-c && mount -t tmpfs crie2e-c /bidi/from-c && echo c > /bidi/from-c/f",
    )?;
    assert_eq!(r.0, 0, "mounting inside: {}", r.1);
    host_mounts.0.push(shared.join("from-c"));
    let back = std::fs::read_to_string(shared.join("from-c/f"));
    assert_eq!(
        back.ok().as_deref(),
        Some("c\n"),
        "a bidirectional mount did not reach the host"
    );
    // The container's own mounts (proc, dev, the bind itself) stay in the container:
    // under berthd's dir the host sees the container's root filesystem alone.
    let under_rootfs: Vec<String> = mounts_under(s.berthd.dir())
        .into_iter()
        .filter(|m| m.contains("/rootfs/"))
        .collect();
    assert_eq!(
        under_rootfs,
        Vec::<String>::new(),
        "container mounts leaked to the host"
    );
    let mut rt = client.runtime()?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    drop(host_mounts);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(mounts_under(s.berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// Status (RuntimeReady, NetworkReady with its reason, then ready once a network is
/// configured), RuntimeConfig, UpdateRuntimeConfig, ImageFsInfo against `du`,
/// ListPodSandbox filters through berthd, and the verbose status of pods and containers.
#[test]
fn cri_status_runtime_config_image_fs_filters_and_verbose() -> Result<()> {
    require_root();
    let base = |d: &Path| berth_fixtures::images::base(d);
    let s = setup("cricoverage/busybox", &[("base", &base)], "")?;
    let client = &s.client;
    let mut rt = client.runtime()?;
    let status = |rt: &mut cri::runtime_service_client::RuntimeServiceClient<_>| {
        client.block_on(rt.status(cri::StatusRequest { verbose: true }))
    };

    let cond = |st: &cri::StatusResponse, t: &str| -> Result<cri::RuntimeCondition> {
        st.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.r#type == t).cloned())
            .with_context(|| format!("no {t} condition in {st:?}"))
    };
    // berthd's default network (written into the empty conf dir): both ready.
    let st = status(&mut rt)?.into_inner();
    assert!(cond(&st, "RuntimeReady")?.status, "{st:?}");
    assert!(cond(&st, "NetworkReady")?.status, "{st:?}");
    // A network whose plugin does not exist sorts first: not ready, and it says why.
    let broken = s.work.join("net.d/05-broken.conflist");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "cricoverage-broken",
        "plugins": [{"type": "cricoverage-no-such-plugin"}]
    });
    std::fs::write(&broken, serde_json::to_vec_pretty(&conf)?)?;
    let net = cond(&status(&mut rt)?.into_inner(), "NetworkReady")?;
    assert!(
        !net.status && net.reason == "PluginNotFound" && net.message.contains("cricoverage"),
        "{net:?}"
    );
    std::fs::remove_file(&broken)?;
    let net = cond(&status(&mut rt)?.into_inner(), "NetworkReady")?;
    assert!(net.status, "{net:?}");

    // RuntimeConfig: cgroupfs (no systemd here). UpdateRuntimeConfig: the pod CIDR, which
    // the verbose Status reports; a malformed one is InvalidArgument.
    let rc = client
        .block_on(rt.runtime_config(cri::RuntimeConfigRequest {}))?
        .into_inner();
    assert_eq!(
        rc.linux.map(|l| l.cgroup_driver),
        Some(cri::CgroupDriver::Cgroupfs as i32)
    );
    let update = |cidr: &str| {
        let mut rt = client.runtime()?;
        client
            .block_on(rt.update_runtime_config(cri::UpdateRuntimeConfigRequest {
                runtime_config: Some(cri::RuntimeConfig {
                    network_config: Some(cri::NetworkConfig {
                        pod_cidr: cidr.into(),
                    }),
                }),
            }))
            .map(|_| ())
            .map_err(anyhow::Error::from)
    };
    update("10.88.0.0/16,fd00:88::/64")?;
    let info: serde_json::Value = serde_json::from_str(
        status(&mut rt)?
            .into_inner()
            .info
            .get("config")
            .context("no verbose status info")?,
    )?;
    assert_eq!(info["podCIDR"], "10.88.0.0/16,fd00:88::/64", "{info}");
    for bad in ["10.88.0.0/33", "not-a-cidr"] {
        let err = update(bad).expect_err("a malformed pod CIDR was accepted");
        let code = err.downcast_ref::<tonic::Status>().map(|s| s.code());
        assert_eq!(code, Some(tonic::Code::InvalidArgument), "{bad}: {err:#}");
    }

    // Two pods; one stopped: ListPodSandbox by id prefix, state and labels.
    let pod_a = host_pod("crifilter-a", &s.work);
    let mut pod_b = host_pod("crifilter-b", &s.work);
    pod_b.labels.insert("tier".into(), "db".into());
    let a = run_pod(client, &pod_a, "")?;
    let _ga = PodGuard {
        socket: s.berthd.cri_socket(),
        id: a.clone(),
    };
    let b = run_pod(client, &pod_b, "")?;
    let _gb = PodGuard {
        socket: s.berthd.cri_socket(),
        id: b.clone(),
    };
    client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: a.clone(),
    }))?;
    let list = |filter: cri::PodSandboxFilter| -> Result<Vec<String>> {
        let mut rt = client.runtime()?;
        let mut ids: Vec<String> = client
            .block_on(rt.list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            }))?
            .into_inner()
            .items
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        Ok(ids)
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(list(Default::default())?, both);
    assert_eq!(
        list(cri::PodSandboxFilter {
            id: b[..10].into(),
            ..Default::default()
        })?,
        vec![b.clone()]
    );
    let state = |s: cri::PodSandboxState| cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue { state: s as i32 }),
        ..Default::default()
    };
    assert_eq!(
        list(state(cri::PodSandboxState::SandboxReady))?,
        vec![b.clone()]
    );
    assert_eq!(
        list(state(cri::PodSandboxState::SandboxNotready))?,
        vec![a.clone()]
    );
    assert_eq!(
        list(cri::PodSandboxFilter {
            label_selector: HashMap::from([("tier".to_string(), "db".to_string())]),
            ..Default::default()
        })?,
        vec![b.clone()]
    );
    assert!(list(cri::PodSandboxFilter {
        label_selector: HashMap::from([("tier".to_string(), "web".to_string())]),
        ..Default::default()
    })?
    .is_empty());

    // Verbose statuses: the pod's record, the container's process and config.
    let pod_info = client
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: b.clone(),
            verbose: true,
        }))?
        .into_inner()
        .info;
    let pod_info: serde_json::Value =
        serde_json::from_str(pod_info.get("info").context("no verbose pod info")?)?;
    assert_eq!(pod_info["id"], b.as_str(), "{pod_info}");
    let pod_dir = pod_info["podDir"].as_str().context("no podDir")?;
    assert!(Path::new(pod_dir).is_dir(), "{pod_info}");
    let c = client.create_and_start(
        &b,
        &pod_b,
        container("verbose", &s.refs["base"], "exec sleep 3600", "verbose.log"),
    )?;
    client.wait_state(&c, cri::ContainerState::ContainerRunning)?;
    let info = client
        .block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: c.clone(),
            verbose: true,
        }))?
        .into_inner()
        .info;
    let info: serde_json::Value =
        serde_json::from_str(info.get("info").context("no verbose container info")?)?;
    assert_eq!(info["sandboxID"], b.as_str(), "{info}");
    let pid = info["pid"].as_i64().context("no pid")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    assert!(
        String::from_utf8_lossy(&cmdline).contains("sleep"),
        "pid {pid} is not the container's process"
    );
    assert_eq!(info["config"]["metadata"]["name"], "verbose", "{info}");
    let bundle = info["bundle"].as_str().context("no bundle")?;
    assert!(Path::new(bundle).join("config.json").is_file(), "{info}");

    // ImageFsInfo: what `du` counts under the snapshots dir it names.
    let fs = client
        .block_on(client.images()?.image_fs_info(cri::ImageFsInfoRequest {}))?
        .into_inner();
    let image_fs = fs
        .image_filesystems
        .first()
        .context("no image filesystem")?;
    let mountpoint = image_fs
        .fs_id
        .as_ref()
        .map(|f| f.mountpoint.clone())
        .unwrap_or_default();
    assert!(
        Path::new(&mountpoint).starts_with(s.berthd.root()),
        "{mountpoint}"
    );
    let used = image_fs.used_bytes.as_ref().map(|v| v.value).unwrap_or(0);
    let du = Command::new("du")
        .args(["-s", "-x", "-B1"])
        .arg(&mountpoint)
        .output()?;
    let du: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .context("no du output")?
        .parse()?;
    assert!(
        used > 0 && used.abs_diff(du) <= du / 20,
        "ImageFsInfo {used} bytes, du {du}"
    );
    assert!(!fs.container_filesystems.is_empty(), "{fs:?}");

    for id in [&a, &b] {
        client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        }))?;
    }
    assert_eq!(mounts_under(s.berthd.dir()), Vec::<String>::new());
    Ok(())
}

/// A field of `/proc/self/status` as the container's own process sees it.
fn proc_status(client: &Client, id: &str, field: &str) -> Result<String> {
    let (code, out) = sh(client, id, &format!("grep '^{field}:' /proc/self/status"))?;
    ensure!(code == 0, "no {field} in {id}: {out}");
    Ok(out
        .split_once(':')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default())
}

fn cap_bits(hex: &str) -> Result<u64> {
    Ok(u64::from_str_radix(hex, 16)?)
}

/// Capabilities added and dropped (by name, with or without `CAP_`, and `ALL`),
/// no_new_privs, and privileged containers, checked in `/proc/self/status` inside.
#[test]
fn cri_capabilities_no_new_privs_and_privileged() -> Result<()> {
    require_root();
    let base = |d: &Path| berth_fixtures::images::base(d);
    let s = setup("cricoverage/busybox", &[("base", &base)], "")?;
    let client = &s.client;
    let pod = host_pod("cricaps", &s.work);
    let (sandbox, _guard) = s.start_pod(&pod)?;
    let start = |name: &str, f: &dyn Fn(&mut cri::LinuxContainerSecurityContext)| {
        let mut c = container(
            name,
            &s.refs["base"],
            "exec sleep 3600",
            &format!("{name}.log"),
        );
        c.linux = Some(security(f));
        let id = client.create_and_start(&sandbox, &pod, c)?;
        client.wait_state(&id, cri::ContainerState::ContainerRunning)?;
        Ok::<_, anyhow::Error>(id)
    };
    const CHOWN: u64 = 1 << 0;
    const NET_BIND_SERVICE: u64 = 1 << 10;
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;

    let default = start("caps-default", &|_| {})?;
    let caps = cap_bits(&proc_status(client, &default, "CapEff")?)?;
    assert!(
        caps & CHOWN != 0 && caps & NET_BIND_SERVICE != 0,
        "{caps:x}"
    );
    assert!(caps & (NET_ADMIN | SYS_ADMIN) == 0, "{caps:x}");
    assert_eq!(proc_status(client, &default, "NoNewPrivs")?, "0");

    let changed = start("caps-changed", &|sc| {
        sc.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["CAP_CHOWN".into()],
            ..Default::default()
        });
        sc.no_new_privs = true;
    })?;
    let caps = cap_bits(&proc_status(client, &changed, "CapEff")?)?;
    assert!(caps & NET_ADMIN != 0, "NET_ADMIN not added: {caps:x}");
    assert!(caps & CHOWN == 0, "CHOWN not dropped: {caps:x}");
    assert!(caps & NET_BIND_SERVICE != 0, "{caps:x}");
    assert_eq!(proc_status(client, &changed, "NoNewPrivs")?, "1");
    assert_ne!(
        sh(client, &changed, "chown 1 /tmp")?.0,
        0,
        "chown succeeded without CAP_CHOWN"
    );

    // kubelet's "drop everything, add back one".
    let minimal = start("caps-minimal", &|sc| {
        sc.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        });
    })?;
    let caps = cap_bits(&proc_status(client, &minimal, "CapEff")?)?;
    assert_eq!(caps, NET_BIND_SERVICE, "{caps:x}");
    assert_eq!(
        cap_bits(&proc_status(client, &minimal, "CapBnd")?)?,
        NET_BIND_SERVICE
    );

    // Privileged: every capability the host has, no masked /proc files, writable /sys.
    let privileged = start("caps-privileged", &|sc| sc.privileged = true)?;
    let host_caps = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .context("no CapBnd on the host")?;
    assert_eq!(
        proc_status(client, &privileged, "CapEff")?,
        host_caps,
        "a privileged container has the host's capabilities"
    );
    let (_, opts) = mount_line(client, &privileged, "/sys")?;
    assert!(opts.split(',').any(|o| o == "rw"), "/sys options {opts}");
    let (_, opts) = mount_line(client, &default, "/sys")?;
    assert!(opts.split(',').any(|o| o == "ro"), "/sys options {opts}");

    let mut rt = client.runtime()?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    assert_eq!(mounts_under(s.berthd.dir()), Vec::<String>::new());
    Ok(())
}
