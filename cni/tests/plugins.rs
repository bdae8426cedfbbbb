//! Plugin handling: capabilities, CNI_ARGS, status reasons, error results, timeouts,
//! retried DEL, config reload, CNI 1.1 STATUS.

mod common;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_cni::{Bandwidth, CniError, DnsConfig, PortMapping, DEFAULT_CONFLIST};
use common::{write_recorder_plugin, TestNet};

/// Capabilities reach exactly the plugins that declare them; CNI_ARGS carries the pod.
#[test]
fn capabilities_and_cni_args() -> Result<()> {
    let t = TestNet::new(13)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "recorder", &record, 0, false)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": t.network,
        "plugins": [
            {"type": "bridge", "bridge": t.bridge, "isGateway": true, "ipMasq": true,
             "capabilities": {"ips": true},
             "ipam": {"type": "host-local", "dataDir": t.dir.path().join("ipam"),
                      "ranges": [[{"subnet": format!("10.250.{}.0/24", t.n)}]]}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}},
            {"type": "recorder", "capabilities": {"dns": true}},
        ]
    });
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-caps.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let (ns, mut pod) = t.pod("caps13")?;
    let want_ip = format!("10.250.{}.77", t.n);
    pod.ips = vec![format!("{want_ip}/24")];
    pod.dns = Some(DnsConfig {
        servers: vec!["10.250.13.53".into()],
        searches: vec!["svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    pod.bandwidth = Some(Bandwidth {
        ingress_rate: 8_000_000,
        ingress_burst: 80_000_000,
        egress_rate: 0,
        egress_burst: 0,
    });
    pod.port_mappings = vec![PortMapping {
        host_port: 29013,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];
    let res = t.cni.setup(&pod)?;
    // ips → host-local gave the requested address.
    assert_eq!(
        res.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![want_ip]
    );
    // dns → only the recorder, which declared it; no portMappings anywhere (nobody declared).
    let add: serde_json::Value = serde_json::from_slice(&std::fs::read(record.join("ADD.json"))?)?;
    assert_eq!(
        add["conf"]["runtimeConfig"],
        serde_json::json!({"dns": {"servers": ["10.250.13.53"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]}})
    );
    assert_eq!(add["conf"]["name"], serde_json::json!(t.network));
    assert!(
        add["conf"]["prevResult"]["ips"].is_array(),
        "prevResult chained: {add}"
    );
    assert_eq!(
        add["env"]["CNI_ARGS"],
        serde_json::json!("IgnoreUnknown=1;K8S_POD_NAMESPACE=testns;K8S_POD_NAME=pod-caps13;K8S_POD_INFRA_CONTAINER_ID=caps13;K8S_POD_UID=uid-caps13")
    );
    assert_eq!(add["env"]["CNI_IFNAME"], serde_json::json!("eth0"));
    assert_eq!(
        add["env"]["CNI_NETNS"],
        serde_json::json!(pod.netns.display().to_string())
    );
    // bandwidth → a tbf qdisc on the host end of the pod's veth.
    let host_veth = res
        .result
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_empty() && i.name != t.bridge)
        .context("no host veth in the result")?
        .name
        .clone();
    let tc = std::process::Command::new("tc")
        .args(["qdisc", "show", "dev", &host_veth])
        .output()?;
    let tc = String::from_utf8_lossy(&tc.stdout).to_string();
    assert!(tc.contains("tbf"), "no tbf on {host_veth}: {tc}");
    // DEL goes in reverse order with the cached prevResult and the same capabilities.
    t.cni.teardown(&pod)?;
    let del: serde_json::Value = serde_json::from_slice(&std::fs::read(record.join("DEL.json"))?)?;
    assert_eq!(del["conf"]["runtimeConfig"], add["conf"]["runtimeConfig"]);
    assert_eq!(
        del["conf"]["prevResult"]["ips"][0]["address"],
        serde_json::json!(format!("10.250.{}.77/24", t.n))
    );
    assert_eq!(del["env"]["CNI_COMMAND"], serde_json::json!("DEL"));
    ns.remove()?;
    t.assert_clean()
}

#[test]
fn status_reports_broken_config_and_missing_plugin() -> Result<()> {
    let t = TestNet::new(14)?;
    std::fs::create_dir_all(t.conf_dir())?;
    let broken = t.conf_dir().join("00-broken.conflist");
    std::fs::write(&broken, b"{\"cniVersion\": \"1.0.0\", \"name\": ")?;
    let s = t.cni.status();
    assert!(!s.ready);
    assert_eq!(s.reason, "InvalidNetworkConfig");
    assert!(
        s.message.contains("00-broken.conflist") && s.message.contains("invalid JSON"),
        "{}",
        s.message
    );
    assert!(
        !t.conf_dir().join(DEFAULT_CONFLIST).exists(),
        "no default over a broken config"
    );
    let (ns, pod) = t.pod("st14")?;
    match t.cni.setup(&pod) {
        Err(CniError::NotReady { reason, .. }) => assert_eq!(reason, "InvalidNetworkConfig"),
        other => bail!("setup on a broken config gave {other:?}"),
    }
    // Fixed by a valid file that names a plugin nobody has: reloaded, still not ready.
    std::fs::write(
        &broken,
        br#"{"cniVersion":"1.0.0","name":"x14","plugins":[{"type":"no-such-plugin"}]}"#,
    )?;
    let s = t.cni.status();
    assert_eq!(
        (s.ready, s.reason.as_str()),
        (false, "PluginNotFound"),
        "{s:?}"
    );
    assert!(s.message.contains("no-such-plugin"), "{}", s.message);
    // A config version the plugin does not speak.
    std::fs::write(
        &broken,
        br#"{"cniVersion":"1.1.0","name":"x14","plugins":[{"type":"bridge"}]}"#,
    )?;
    let s = t.cni.status();
    assert_eq!(
        (s.ready, s.reason.as_str()),
        (false, "PluginIncompatible"),
        "{s:?}"
    );
    // Removing it leaves the dir empty: berth writes its default and is ready.
    std::fs::remove_file(&broken)?;
    let s = t.cni.status();
    assert!(s.ready, "{s:?}");
    assert_eq!(s.network.as_deref(), Some(t.network.as_str()));
    ns.remove()?;
    Ok(())
}

#[test]
fn plugin_errors_are_clear_and_failed_add_is_undone() -> Result<()> {
    let t = TestNet::new(15)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "refuser", &record, 0, true)?;
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": t.network,
        "plugins": [
            {"type": "bridge", "bridge": t.bridge, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "dataDir": t.dir.path().join("ipam"),
                      "ranges": [[{"subnet": format!("10.250.{}.0/24", t.n)}]]}},
            {"type": "refuser"},
        ]
    });
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-fail.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let (ns, pod) = t.pod("fail15")?;
    let err = t.cni.setup(&pod).err().context("setup should fail")?;
    let msg = err.to_string();
    assert!(
        msg.contains(&t.network)
            && msg.contains("refuser")
            && msg.contains("recorder refuses: asked to fail")
            && msg.contains("code 11"),
        "{msg}"
    );
    // The bridge's ADD was rolled back: no veth, no address reserved, nothing cached.
    t.cni.teardown(&pod)?;
    ns.remove()?;
    t.assert_clean()?;

    // A plugin's own error result (bad IPAM subnet) names plugin and network.
    let bad = serde_json::json!({
        "cniVersion": "1.0.0", "name": "bad15",
        "plugins": [{"type": "bridge", "bridge": t.bridge,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}}]
    });
    std::fs::write(
        t.conf_dir().join("00-bad.conflist"),
        serde_json::to_vec(&bad)?,
    )?;
    let (ns, pod) = t.pod("bad15")?;
    let msg = t
        .cni
        .setup(&pod)
        .err()
        .context("bad subnet accepted")?
        .to_string();
    assert!(
        msg.contains("bad15") && msg.contains("bridge") && msg.contains("not-a-subnet"),
        "{msg}"
    );
    ns.remove()?;
    Ok(())
}

#[test]
fn slow_plugin_is_killed_at_the_timeout() -> Result<()> {
    let t = TestNet::new(16)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "sleeper", &record, 30, false)?;
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-slow.conflist"),
        br#"{"cniVersion":"1.0.0","name":"slow16","plugins":[{"type":"sleeper"}]}"#,
    )?;
    let mut opts = TestNet::options_in(t.dir.path(), t.n);
    opts.plugin_timeout = Duration::from_millis(700);
    let cni = berth_cni::Cni::new(opts);
    let (ns, pod) = t.pod("slow16")?;
    let started = std::time::Instant::now();
    let err = cni
        .setup(&pod)
        .err()
        .context("a 30 s plugin finished in time")?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    // The killed plugin is gone (its recorded pid no longer exists).
    let add: serde_json::Value = serde_json::from_slice(&std::fs::read(record.join("ADD.json"))?)?;
    let pid = add["pid"].as_i64().context("no pid")?;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "plugin {pid} still runs"
    );
    ns.remove()?;
    let _ = std::fs::remove_file(t.conf_dir().join("50-slow.conflist"));
    Ok(())
}

#[test]
fn failed_del_is_kept_and_retried_until_it_succeeds() -> Result<()> {
    let t = TestNet::new(17)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "flaky", &record, 0, false)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": t.network,
        "plugins": [
            {"type": "bridge", "bridge": t.bridge, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "dataDir": t.dir.path().join("ipam"),
                      "ranges": [[{"subnet": format!("10.250.{}.0/24", t.n)}]]}},
            {"type": "flaky"},
        ]
    });
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-flaky.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let (ns, pod) = t.pod("retry17")?;
    t.cni.setup(&pod)?;
    std::fs::write(record.join("fail-next-del"), b"")?;
    let err = t
        .cni
        .teardown(&pod)
        .err()
        .context("DEL failure not reported")?;
    let msg = err.to_string();
    assert!(
        msg.contains("DEL refused once") && msg.contains("retried"),
        "{msg}"
    );
    // The other plugins' DEL still ran (the address is free), but the attachment stays
    // cached for the retry.
    assert!(t.ipam_reservations()?.is_empty());
    let cached = t.cni.cached_attachments()?;
    assert_eq!(cached.len(), 1);
    assert_eq!(
        (cached[0].pod_id.as_str(), cached[0].complete),
        ("retry17", true)
    );
    ns.remove()?;
    // The retry (after a restart, netns gone) succeeds and clears everything.
    t.fresh_cni().teardown(&pod)?;
    assert!(t.cni.cached_attachments()?.is_empty());
    t.assert_clean()
}

/// The conf dir is re-read when it changes; DEL of an older pod still uses the config
/// it was attached with. The new config is a single-plugin `.conf` at cniVersion 0.3.1.
#[test]
fn config_reload_and_cached_config_for_del() -> Result<()> {
    let t = TestNet::new(18)?;
    let other_bridge = "bcni18b";
    let _ = std::process::Command::new("ip")
        .args(["link", "del", other_bridge])
        .output();
    struct DelLink(&'static str);
    impl Drop for DelLink {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", self.0])
                .output();
        }
    }
    let _guard = DelLink(other_bridge);
    let (ns_old, pod_old) = t.pod("old18")?;
    let old = t.cni.setup(&pod_old)?;
    assert_eq!(old.network, t.network);

    let ipam_new = t.dir.path().join("ipam-new");
    let new_conf = serde_json::json!({
        "cniVersion": "0.3.1", "name": "net18new", "type": "bridge", "bridge": other_bridge,
        "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": ipam_new, "ranges": [[{"subnet": "10.250.19.0/24"}]]}
    });
    std::fs::remove_file(t.conf_dir().join(DEFAULT_CONFLIST))?;
    std::fs::write(
        t.conf_dir().join("20-new.conf"),
        serde_json::to_vec(&new_conf)?,
    )?;
    let (ns_new, pod_new) = t.pod("new18")?;
    let new = t.cni.setup(&pod_new)?;
    assert_eq!(new.network, "net18new");
    assert!(
        new.ips[0].to_string().starts_with("10.250.19."),
        "{:?}",
        new.ips
    );
    assert_eq!(new.result.cni_version, "0.3.1");

    // The old pod detaches from the network it joined, though that config is gone.
    t.cni.teardown(&pod_old)?;
    ns_old.remove()?;
    assert!(t.ipam_reservations()?.is_empty() && t.bridge_ports()?.is_empty());
    assert!(t.firewall_rules()?.is_empty());
    t.cni.teardown(&pod_new)?;
    ns_new.remove()?;
    t.assert_clean()?;
    let left: Vec<_> = std::fs::read_dir(ipam_new.join("net18new"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    Ok(())
}

/// cniVersion 1.1.0 configs get the STATUS command on every status() call.
#[test]
fn status_asks_cni_1_1_plugins() -> Result<()> {
    let t = TestNet::new(22)?;
    let record = t.dir.path().join("record");
    write_recorder_plugin(&t.bin_dir(), "st22", &record, 0, false)?;
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-st.conflist"),
        br#"{"cniVersion":"1.1.0","name":"st22","plugins":[{"type":"st22","x":1}]}"#,
    )?;
    let s = t.cni.status();
    assert!(s.ready, "{s:?}");
    let asked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record.join("STATUS.json"))?)?;
    assert_eq!(asked["env"]["CNI_COMMAND"], serde_json::json!("STATUS"));
    assert_eq!(
        asked["conf"],
        serde_json::json!({"cniVersion": "1.1.0", "name": "st22", "type": "st22", "x": 1})
    );
    std::fs::write(record.join("status-fail"), b"")?;
    let s = t.cni.status();
    assert_eq!(
        (s.ready, s.reason.as_str()),
        (false, "PluginNotReady"),
        "{s:?}"
    );
    assert!(
        s.message.contains("pool exhausted") && s.message.contains("st22"),
        "{}",
        s.message
    );
    std::fs::remove_file(record.join("status-fail"))?;
    assert!(t.cni.status().ready);
    Ok(())
}

/// A plugin that leaves a background child holding its stdout does not hang berth: the
/// output wait ends at the timeout and the plugin's process group is killed.
#[test]
fn plugin_child_holding_stdout_is_killed() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let t = TestNet::new(23)?;
    std::fs::create_dir_all(t.bin_dir())?;
    let pid_file = t.dir.path().join("bg.pid");
    let script = format!(
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  sleep 30 &\n  echo $! > {}\n  echo '{{\"cniVersion\":\"1.0.0\"}}'\nfi\n",
        pid_file.display()
    );
    let plugin = t.bin_dir().join("leaker");
    std::fs::write(&plugin, script)?;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;
    std::fs::create_dir_all(t.conf_dir())?;
    std::fs::write(
        t.conf_dir().join("50-leak.conflist"),
        br#"{"cniVersion":"1.0.0","name":"leak23","plugins":[{"type":"leaker"}]}"#,
    )?;
    let mut opts = TestNet::options_in(t.dir.path(), t.n);
    opts.plugin_timeout = Duration::from_millis(800);
    let cni = berth_cni::Cni::new(opts);
    let (ns, pod) = t.pod("leak23")?;
    let started = std::time::Instant::now();
    let res = cni.setup(&pod)?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(res.ips.is_empty());
    let pid = std::fs::read_to_string(&pid_file)?.trim().to_string();
    // Killed: gone, or a zombie waiting for init to reap it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "background child still runs: {stat}"
    );
    cni.teardown(&pod)?;
    ns.remove()?;
    Ok(())
}
