//! Networks through Debian's docker 20.10 client and berth's CLI: the builtin
//! networks, user bridge networks created, listed with filters, inspected, removed
//! and pruned; bad input (an overlapping subnet, an unknown driver or network, a
//! builtin network removed) refused with nothing made; records kept across a
//! berthd `kill -9`.

use anyhow::Result;
use berth_e2e::{require_root, run, run_ok, Berthd};
use serde_json::Value;

/// berthd with a default bridge of its own, apart from other tests' daemons.
fn berthd() -> Result<Berthd> {
    Berthd::start_with_config(
        "[networks]\ndefault_bridge = \"bt-e2e-def\"\ndefault_subnet = \"10.213.0.0/24\"\n",
    )
}

fn names(berthd: &Berthd, filters: &[&str]) -> Result<Vec<String>> {
    let mut cmd = berthd.docker();
    cmd.args(["network", "ls", "--format", "{{.Name}}"]);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    Ok(run_ok(&mut cmd)?.lines().map(str::to_string).collect())
}

fn inspect(berthd: &Berthd, name: &str) -> Result<Value> {
    let out = run_ok(berthd.docker().args(["network", "inspect", name]))?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v[0].clone())
}

#[test]
fn builtin_and_user_networks() -> Result<()> {
    require_root();
    let mut berthd = berthd()?;
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none"]);
    let bridge = inspect(&berthd, "bridge")?;
    assert_eq!(bridge["Driver"], "bridge");
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], "10.213.0.0/24");
    assert_eq!(bridge["IPAM"]["Config"][0]["Gateway"], "10.213.0.1");
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.name"],
        "bt-e2e-def"
    );
    assert_eq!(inspect(&berthd, "none")?["Driver"], "null");

    let id = run_ok(berthd.docker().args([
        "network",
        "create",
        "--subnet",
        "10.214.0.0/16",
        "--gateway",
        "10.214.0.254",
        "--ip-range",
        "10.214.1.0/24",
        "--internal",
        "--label",
        "env=e2e",
        "-o",
        "com.docker.network.bridge.name=bt-e2e-back",
        "backend",
    ]))?;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let back = inspect(&berthd, &id[..12])?;
    assert_eq!(back["Name"], "backend");
    assert_eq!(back["Id"], id.as_str());
    assert_eq!(back["Scope"], "local");
    assert_eq!(back["Internal"], true);
    assert_eq!(back["Labels"]["env"], "e2e");
    assert_eq!(
        back["IPAM"]["Config"][0],
        serde_json::json!({"Subnet": "10.214.0.0/16", "IPRange": "10.214.1.0/24", "Gateway": "10.214.0.254"})
    );
    assert_eq!(back["Containers"], serde_json::json!({}));
    // A network without --subnet gets one of Docker's pools, not overlapping.
    run_ok(berthd.docker().args(["network", "create", "front"]))?;
    let front = inspect(&berthd, "front")?;
    let subnet = front["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        subnet.starts_with("172.") || subnet.starts_with("192.168."),
        "{subnet}"
    );

    assert_eq!(names(&berthd, &["type=custom"])?, ["backend", "front"]);
    assert_eq!(names(&berthd, &["label=env=e2e"])?, ["backend"]);
    assert_eq!(names(&berthd, &["name=ack"])?, ["backend"]);
    assert_eq!(names(&berthd, &["driver=null"])?, ["none"]);
    let quiet = run_ok(
        berthd
            .docker()
            .args(["network", "ls", "-q", "--filter", "name=backend"]),
    )?;
    assert_eq!(quiet.trim(), &id[..12]);
    // berth's own CLI sees the same.
    let out = run_ok(berthd.berth()?.args(["network", "ls"]))?;
    assert!(out.starts_with("NETWORK ID"), "{out}");
    assert!(out.contains("backend") && out.contains(&id[..12]), "{out}");

    // The records outlive a kill -9.
    berthd.kill9()?;
    berthd.restart()?;
    assert_eq!(inspect(&berthd, "backend")?["Id"], id.as_str());
    assert_eq!(
        inspect(&berthd, "bridge")?["IPAM"]["Config"][0]["Subnet"],
        "10.213.0.0/24"
    );

    let out = run_ok(berthd.docker().args(["network", "rm", "backend"]))?;
    assert_eq!(out.trim(), "backend");
    let out = run_ok(berthd.berth()?.args(["network", "prune", "-f"]))?;
    assert_eq!(out, "Deleted Networks:\nfront\n");
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none"]);
    Ok(())
}

#[test]
fn bad_input_is_refused_with_nothing_made() -> Result<()> {
    require_root();
    let berthd = berthd()?;
    run_ok(
        berthd
            .docker()
            .args(["network", "create", "--subnet", "10.215.0.0/16", "one"]),
    )?;
    let refused = |args: &[&str], want: &str| -> Result<()> {
        let mut cmd = berthd.docker();
        cmd.arg("network").args(args);
        let (code, out, err) = run(&mut cmd)?;
        assert_ne!(code, 0, "{args:?} should fail: {out}");
        assert!(err.contains(want), "{args:?}: {err:?} should say {want:?}");
        Ok(())
    };
    refused(
        &["create", "--subnet", "10.215.3.0/24", "two"],
        "Pool overlaps with other one on this address space",
    )?;
    refused(
        &["create", "--subnet", "10.213.0.0/16", "three"],
        "Pool overlaps with other one on this address space",
    )?;
    refused(&["create", "one"], "network with name one already exists")?;
    refused(
        &["create", "-d", "overlay", "ov"],
        "\"overlay\" is not supported",
    )?;
    refused(&["create", "--ipv6", "six"], "EnableIPv6")?;
    refused(
        &["create", "-o", "com.docker.network.driver.mtu=1400", "mtu"],
        "com.docker.network.driver.mtu",
    )?;
    refused(
        &[
            "create",
            "--subnet",
            "10.216.0.0/24",
            "--gateway",
            "10.217.0.1",
            "gw",
        ],
        "no matching subnet for gateway",
    )?;
    refused(
        &["create", "--subnet", "10.216.0.5/24", "host-bits"],
        "it should be 10.216.0.0/24",
    )?;
    refused(&["create", "host"], "predefined host network")?;
    refused(&["inspect", "nope"], "No such network: nope")?;
    refused(&["rm", "nope"], "No such network: nope")?;
    refused(
        &["rm", "bridge"],
        "bridge is a pre-defined network and cannot be removed",
    )?;
    refused(&["connect", "one", "x"], "not supported by berth yet")?;
    assert_eq!(names(&berthd, &[])?, ["bridge", "host", "none", "one"]);
    Ok(())
}
