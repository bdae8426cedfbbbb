use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::runtimes::RuntimeHandlers;
use crate::EngineConfig;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(dir: &Path) -> Result<Engine, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("root"))?;
    Ok(Engine::open(EngineConfig {
        root: dir.join("root"),
        state: dir.join("state"),
        runtimes: RuntimeHandlers {
            state: dir.join("state"),
            default: "berth".into(),
            handlers: BTreeMap::new(),
        },
    })?)
}

fn net(name: &str, subnet: Option<&str>) -> NewNetwork {
    NewNetwork {
        name: name.into(),
        subnet: subnet.map(Into::into),
        ..Default::default()
    }
}

/// Gives container `id` an endpoint on `network` in its record, as attachment does.
fn attach_record(engine: &Engine, id: &str, network: &Network) -> TestResult {
    let mut record: ContainerRecord = serde_json::from_value(serde_json::json!({
        "id": id, "name": format!("c-{id}"), "created": "", "image": "", "image_id": "",
        "snapshot": "", "parent_snapshot": null, "request": null, "path": "", "args": [],
        "env": [], "working_dir": "", "user": "", "labels": {}, "tty": false,
        "stop_signal": "", "auto_remove": false, "restart_policy": {"Name": ""},
        "state": {"status": "created", "pid": 0, "exit_code": 0, "started_at": "",
                  "finished_at": "", "error": "", "stopped_by_user": false, "restart_count": 0},
    }))?;
    record.networks.push(Endpoint {
        network_id: network.record.id.clone(),
        network_name: network.record.name.clone(),
        ..Default::default()
    });
    engine
        .store
        .put(Kind::Container, id, Some(&record.name), &record)?;
    Ok(())
}

#[test]
fn default_network_is_made_once_and_kept() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(dir.path())?;
    let def = DefaultBridge {
        bridge: "bt-def0".into(),
        subnet: Some("10.200.0.0/24".into()),
    };
    let made = ensure_default(&engine, &def)?;
    assert_eq!(made.record.name, "bridge");
    assert_eq!(made.record.gateway, "10.200.0.1");
    assert!(made.record.builtin);
    let builtin = NetworkFilter {
        types: vec!["builtin".into()],
        ..Default::default()
    };
    let names: Vec<String> = list(&engine, &builtin)?
        .into_iter()
        .map(|n| n.record.name)
        .collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    let host_id = get(&engine, "host")?.record.id;
    let again = ensure_default(&engine, &DefaultBridge::default())?;
    assert_eq!(again.record, made.record, "the record stays as made");
    assert_eq!(get(&engine, "host")?.record.id, host_id);
    assert!(matches!(
        remove(&engine, "none"),
        Err(EngineError::Forbidden(_))
    ));
    let err = remove(&engine, "bridge").unwrap_err();
    assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
    Ok(())
}

#[test]
fn default_subnet_avoids_taken_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(dir.path())?;
    create(&engine, net("first", Some("172.17.0.0/16")))?;
    let def = ensure_default(&engine, &DefaultBridge::default())?;
    let subnet = Ipv4Net::parse(&def.record.subnet)?;
    assert_ne!(subnet.to_string(), "172.17.0.0/16");
    for route in ipam::host_routes() {
        assert!(
            !route.overlaps(subnet),
            "{subnet} overlaps host route {route}"
        );
    }
    Ok(())
}

#[test]
fn create_checks_everything_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(dir.path())?;
    let mut new = net("front", Some("10.201.0.0/16"));
    new.gateway = Some("10.201.0.254".into());
    new.ip_range = Some("10.201.1.0/24".into());
    new.labels.insert("env".into(), "test".into());
    new.options
        .insert(OPT_BRIDGE_NAME.into(), "bt-front".into());
    new.internal = true;
    let front = create(&engine, new)?;
    assert_eq!(front.record.gateway, "10.201.0.254");
    assert_eq!(front.record.ip_range.as_deref(), Some("10.201.1.0/24"));
    assert_eq!(front.record.bridge, "bt-front");
    assert!(front.record.internal);
    assert_eq!(front.record.id.len(), 64);

    let refused = |new: NewNetwork, want: &str| {
        let e = create(&engine, new).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} should say {want:?}");
    };
    refused(net("front", None), "network with name front already exists");
    refused(
        net("other", Some("10.201.5.0/24")),
        "Pool overlaps with other one on this address space",
    );
    refused(net("bad name", None), "invalid network name");
    refused(net("host", None), "predefined host network");
    refused(net("bridge", None), "predefined bridge network");
    refused(
        NewNetwork {
            driver: "overlay".into(),
            ..net("o", None)
        },
        "\"overlay\" is not supported",
    );
    refused(
        NewNetwork {
            enable_ipv6: true,
            ..net("v6", None)
        },
        "non-overlapping IPv6 address pool",
    );
    refused(
        NewNetwork {
            subnet6: Some("fd00:77::/64".into()),
            ..net("v6b", None)
        },
        "without --ipv6",
    );
    refused(
        NewNetwork {
            enable_ipv6: true,
            subnet6: Some("fd00:77::/64".into()),
            gateway6: Some("fd00:78::1".into()),
            ..net("v6c", None)
        },
        "no matching subnet for gateway fd00:78::1",
    );
    let mut opt = net("opt", None);
    opt.options
        .insert("com.docker.network.driver.mtu".into(), "1400".into());
    refused(opt, "com.docker.network.driver.mtu");
    let mut gw = net("gw", Some("10.202.0.0/24"));
    gw.gateway = Some("10.203.0.1".into());
    refused(gw, "no matching subnet for gateway");
    let mut range = net("range", Some("10.202.0.0/24"));
    range.ip_range = Some("10.202.0.0/16".into());
    refused(range, "no matching subnet for range");
    let mut br = net("br", None);
    br.options.insert(OPT_BRIDGE_NAME.into(), "bt-front".into());
    refused(br, "already used by network front");
    // Nothing refused was stored.
    let names: Vec<String> = list(&engine, &NetworkFilter::default())?
        .into_iter()
        .map(|n| n.record.name)
        .collect();
    assert_eq!(names, ["front"]);
    Ok(())
}

#[test]
fn pool_subnets_lookup_remove_prune() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(dir.path())?;
    let a = create(&engine, net("alpha", None))?;
    let b = create(&engine, net("beta", None))?;
    let (sa, sb) = (
        Ipv4Net::parse(&a.record.subnet)?,
        Ipv4Net::parse(&b.record.subnet)?,
    );
    assert!(!sa.overlaps(sb), "{sa} and {sb}");
    assert_eq!(get(&engine, &a.record.id[..12])?.record.name, "alpha");
    assert_eq!(get(&engine, "beta")?.record.id, b.record.id);
    let e = get(&engine, "gamma").unwrap_err();
    assert!(matches!(
        e,
        EngineError::NotFound {
            what: Object::Network,
            ..
        }
    ));

    attach_record(&engine, "c1", &a)?;
    let a_now = get(&engine, "alpha")?;
    let on: Vec<(&str, &str)> = a_now
        .containers
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(on, [("c1", "c-c1")]);
    let e = remove(&engine, "alpha").unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "error while removing network: network alpha id {} has active endpoints",
            a.record.id
        )
    );
    let dangling = NetworkFilter {
        dangling: Some(true),
        ..Default::default()
    };
    let names: Vec<String> = list(&engine, &dangling)?
        .into_iter()
        .map(|n| n.record.name)
        .collect();
    assert_eq!(names, ["beta"]);
    assert_eq!(prune(&engine, &NetworkFilter::default())?, ["beta"]);
    engine.store.delete(Kind::Container, "c1")?;
    remove(&engine, &a.record.id)?;
    assert!(list(&engine, &NetworkFilter::default())?.is_empty());
    Ok(())
}

#[test]
fn ipv6_networks_keep_their_subnet_and_refuse_overlaps() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = open(dir.path())?;
    let mut new = net("six", Some("10.210.0.0/24"));
    new.enable_ipv6 = true;
    new.subnet6 = Some("fd00:210::/64".into());
    new.ip_range6 = Some("fd00:210::/80".into());
    let six = create(&engine, new)?;
    assert!(six.record.enable_ipv6);
    assert_eq!(six.record.subnet6, "fd00:210::/64");
    assert_eq!(six.record.gateway6, "fd00:210::1");
    assert_eq!(six.record.ip_range6.as_deref(), Some("fd00:210::/80"));
    let conf = attach::conflist(&engine, &six.record);
    let ranges = &conf["plugins"][0]["ipam"]["ranges"];
    assert_eq!(ranges[1][0]["subnet"], "fd00:210::/64");
    assert_eq!(ranges[1][0]["gateway"], "fd00:210::1");
    assert_eq!(conf["plugins"][0]["ipam"]["routes"][1]["dst"], "::/0");

    let mut other = net("seven", Some("10.211.0.0/24"));
    other.enable_ipv6 = true;
    other.subnet6 = Some("fd00:210::/48".into());
    let e = create(&engine, other).unwrap_err().to_string();
    assert!(
        e.contains("Pool overlaps with other one on this address space"),
        "{e}"
    );
    // `--ip6` is checked against the IPv6 subnet; a v4-only network has none.
    assert!(attach::check_ip6(&six.record, "fd00:210::9").is_ok());
    let e = attach::check_ip6(&six.record, "fd00:999::9")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("It does not belong to any of this network's subnets"),
        "{e}"
    );
    let v4 = create(&engine, net("four", Some("10.212.0.0/24")))?;
    let e = attach::check_ip6(&v4.record, "fd00:210::9")
        .unwrap_err()
        .to_string();
    assert!(e.contains("networks with user configured subnets"), "{e}");
    Ok(())
}

#[test]
fn endpoint_ids_are_stable_64_hex() {
    let ep = Endpoint {
        network_id: "n".repeat(64),
        ..Default::default()
    };
    let id = ep.id_for("c1");
    assert_eq!(id.len(), 64);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(id, ep.id_for("c1"));
    assert_ne!(id, ep.id_for("c2"));
    let stored = Endpoint {
        endpoint_id: "e".repeat(64),
        ..ep
    };
    assert_eq!(stored.id_for("c1"), "e".repeat(64));
}
