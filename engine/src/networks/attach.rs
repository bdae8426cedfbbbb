//! A container on a bridge network: its network namespace pinned at
//! `<state>/networks/netns/<id>`, attached at start through the CNI chain made from
//! the network's record (bridge, host-local, firewall, portmap; `<state>/networks/
//! conf/<network id>/`), detached when it stops or is removed, and after a berthd
//! crash by `reconcile` (the CNI result cache under `<state>/networks/cni` replays
//! every DEL). Its `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` are files in
//! the bundle bound into it, written as dockerd writes them.

use std::path::PathBuf;

use berth_cni::{Cni, CniOptions, Netns, PodNetwork};

use super::ipam::{Ipv4Net, Ipv6Net};
use super::{find_by_id, firewall, Endpoint, NetworkRecord};
use crate::config::{ContainerConfig, Mount, MountKind, NetworkMode};
use crate::record::ContainerRecord;
use crate::{Engine, EngineError};

/// `<state>/networks`.
pub fn dir(engine: &Engine) -> PathBuf {
    engine.state().join("networks")
}

/// Where container `id`'s network namespace is pinned while it runs.
pub fn netns_path(engine: &Engine, id: &str) -> PathBuf {
    dir(engine).join("netns").join(id)
}

/// The CNI manager of one network: its conflist in a dir of its own.
fn cni_of(engine: &Engine, net: &NetworkRecord, if_name: &str) -> Result<Cni, EngineError> {
    let conf_dir = dir(engine).join("conf").join(&net.id);
    std::fs::create_dir_all(&conf_dir).map_err(EngineError::internal(format!(
        "creating {}",
        conf_dir.display()
    )))?;
    let path = conf_dir.join("berth.conflist");
    let bytes = serde_json::to_vec_pretty(&conflist(engine, net))
        .map_err(EngineError::internal("encoding a network's conflist"))?;
    if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&path, bytes)
            .map_err(EngineError::internal(format!("writing {}", path.display())))?;
    }
    Ok(Cni::new(CniOptions {
        conf_dir,
        cache_dir: dir(engine).join("cni"),
        default_network: None,
        if_name: if_name.to_string(),
        ..CniOptions::default()
    }))
}

/// The chain for a network: an internal one has no masquerading and no default route.
pub fn conflist(engine: &Engine, net: &NetworkRecord) -> serde_json::Value {
    let mut range = serde_json::json!({"subnet": net.subnet, "gateway": net.gateway});
    if let Some(r) = net.ip_range.as_deref().and_then(|r| Ipv4Net::parse(r).ok()) {
        range["rangeStart"] = r.first_host().to_string().into();
        range["rangeEnd"] = r.last_host().to_string().into();
    }
    let mut ranges = vec![serde_json::json!([range])];
    let mut routes = if net.internal {
        serde_json::json!([])
    } else {
        serde_json::json!([{"dst": "0.0.0.0/0"}])
    };
    if net.enable_ipv6 && !net.subnet6.is_empty() {
        // Dual stack as the pods' CNI networks do it: a second range set for
        // host-local; the bridge plugin puts both gateways on the bridge.
        let mut range6 = serde_json::json!({"subnet": net.subnet6, "gateway": net.gateway6});
        if let Some(r) = net
            .ip_range6
            .as_deref()
            .and_then(|r| Ipv6Net::parse(r).ok())
        {
            range6["rangeStart"] = r.first_host().to_string().into();
            range6["rangeEnd"] = r.last_host().to_string().into();
        }
        ranges.push(serde_json::json!([range6]));
        if !net.internal {
            if let Some(r) = routes.as_array_mut() {
                r.push(serde_json::json!({"dst": "::/0"}));
            }
        }
    }
    serde_json::json!({
        "cniVersion": "1.0.0",
        // CNI names the cache entries and masquerade chains by it: unique per network.
        "name": format!("berth-{}", &net.id[..12]),
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": true,
                // Masquerading is one rule per network in berth's nft table
                // (firewall.rs), not a chain per container.
                "ipMasq": false,
                "hairpinMode": true,
                // `--ip`: host-local takes the requested address from runtimeConfig.
                "capabilities": {"ips": true},
                "ipam": {
                    "type": "host-local",
                    "ranges": ranges,
                    "routes": routes,
                    "dataDir": dir(engine).join("ipam").display().to_string(),
                },
            },
            {"type": "firewall", "backend": "iptables"},
            {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
        ],
    })
}

/// Checks a create's network request and returns the endpoints to record: the named
/// network must exist, `--ip` must be a free-to-ask host address of its subnet.
pub fn endpoints_for(
    engine: &Engine,
    config: &ContainerConfig,
) -> Result<Vec<Endpoint>, EngineError> {
    let n = &config.network;
    if !n.extra_hosts.is_empty() {
        extra_hosts(engine, &n.extra_hosts)?;
    }
    if n.mode == NetworkMode::Default {
        return default_endpoint(engine, config);
    }
    if n.mode != NetworkMode::Bridge {
        if !n.ip.is_empty() || !n.ip6.is_empty() {
            return Err(EngineError::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !n.aliases.is_empty() {
            return Err(EngineError::Invalid(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        return Ok(Vec::new());
    }
    // Refused as a bad request, not as a missing object: the docker CLI answers a 404
    // on create by pulling the image.
    let net = match super::get(engine, &n.network) {
        Ok(net) => net.record,
        Err(EngineError::NotFound { .. }) => {
            return Err(EngineError::Invalid(format!(
                "network {} not found",
                n.network
            )))
        }
        Err(e) => return Err(e),
    };
    if net.builtin && net.name == super::DEFAULT_NETWORK {
        return default_endpoint(engine, config);
    }
    if net.builtin {
        return Err(EngineError::Invalid(format!(
            "network {}: use --network {} to join it",
            net.name, net.name
        )));
    }
    if !n.ip.is_empty() {
        check_ip(&net, &n.ip)?;
    }
    if !n.ip6.is_empty() {
        check_ip6(&net, &n.ip6)?;
    }
    Ok(vec![Endpoint {
        network_id: net.id,
        network_name: net.name,
        requested_ip: n.ip.clone(),
        requested_ip6: n.ip6.clone(),
        aliases: n.aliases.clone(),
        endpoint_id: crate::create::random_id(),
        ..Default::default()
    }])
}

/// `--ip6` needs a network with an IPv6 subnet (dockerd's words otherwise) and must
/// be a host address of it, not its gateway.
pub fn check_ip6(net: &NetworkRecord, ip: &str) -> Result<(), EngineError> {
    let addr: std::net::Ipv6Addr = ip
        .parse()
        .map_err(|_| EngineError::Invalid(format!("invalid IPv6 address: {ip}")))?;
    if !net.enable_ipv6 || net.subnet6.is_empty() {
        return Err(EngineError::Invalid(format!(
            "user specified IP address is supported only when connecting to networks with user configured subnets (--ip6 {ip}: network {} has no IPv6 subnet)",
            net.name
        )));
    }
    let subnet = Ipv6Net::parse(&net.subnet6).map_err(EngineError::Invalid)?;
    let gateway: Option<std::net::Ipv6Addr> = net.gateway6.parse().ok();
    if !subnet.is_host(addr) || gateway == Some(addr) {
        return Err(EngineError::Invalid(format!(
            "Invalid address {ip}: It does not belong to any of this network's subnets"
        )));
    }
    Ok(())
}

/// `--ip` must be a host address of the network's subnet, not its gateway.
pub fn check_ip(net: &NetworkRecord, ip: &str) -> Result<(), EngineError> {
    let addr: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {ip}")))?;
    let subnet = Ipv4Net::parse(&net.subnet).map_err(EngineError::Invalid)?;
    if !subnet.is_host(addr) || net.gateway == ip {
        return Err(EngineError::Invalid(format!(
            "Invalid address {ip}: It does not belong to any of this network's subnets"
        )));
    }
    Ok(())
}

/// A container without `--network` joins the default `bridge` network, the record
/// berthd makes at start; where there is none (an engine without a daemon's
/// networks, as in unit tests), loopback only.
fn default_endpoint(
    engine: &Engine,
    config: &ContainerConfig,
) -> Result<Vec<Endpoint>, EngineError> {
    let n = &config.network;
    if !n.ip.is_empty() || !n.ip6.is_empty() {
        return Err(EngineError::Invalid(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    if !n.aliases.is_empty() {
        return Err(EngineError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    let net = match super::get(engine, super::DEFAULT_NETWORK) {
        Ok(net) if net.record.builtin && net.record.driver == "bridge" => net.record,
        Ok(_) | Err(EngineError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(vec![Endpoint {
        network_id: net.id,
        network_name: net.name,
        endpoint_id: crate::create::random_id(),
        ..Default::default()
    }])
}

/// `--add-host` entries (`name:ip`, split at the first colon as Docker does) as
/// /etc/hosts lines' (ip, name); `host-gateway` is the default bridge's gateway.
pub fn extra_hosts(
    engine: &Engine,
    entries: &[String],
) -> Result<Vec<(String, String)>, EngineError> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, ip) = entry
            .split_once(':')
            .ok_or_else(|| EngineError::Invalid(format!("bad format for add-host: {entry:?}")))?;
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(EngineError::Invalid(format!(
                "bad format for add-host: {entry:?}"
            )));
        }
        let ip = if ip == "host-gateway" {
            match super::get(engine, super::DEFAULT_NETWORK) {
                Ok(net) if !net.record.gateway.is_empty() => net.record.gateway,
                _ => {
                    return Err(EngineError::Invalid(
                        "unable to derive the IP value for host-gateway".into(),
                    ))
                }
            }
        } else if ip.parse::<std::net::IpAddr>().is_ok() {
            ip.to_string()
        } else {
            return Err(EngineError::Invalid(format!(
                "invalid IP address in add-host: {ip:?}"
            )));
        };
        out.push((ip, name.to_string()));
    }
    Ok(out)
}

/// `--network container:X`: checks the request in Docker's words (X must exist; no
/// hostname, published ports, `--add-host`, `--ip` or aliases of its own), binds X's
/// /etc/hosts, /etc/hostname and /etc/resolv.conf when it has them, and returns X's
/// id. Other modes: none.
pub fn container_mode(
    engine: &Engine,
    config: &mut ContainerConfig,
) -> Result<Option<String>, EngineError> {
    let n = &config.network;
    if n.mode != NetworkMode::Container {
        return Ok(None);
    }
    let conflict = |what: &str| {
        Err(EngineError::Invalid(format!(
            "conflicting options: {what} and the network mode"
        )))
    };
    if !config.hostname.is_empty() {
        return conflict("hostname");
    }
    if !n.extra_hosts.is_empty() {
        return conflict("custom host-to-IP mapping");
    }
    if !n.published_ports.is_empty() || n.publish_all {
        return Err(EngineError::Invalid(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    if !n.ip.is_empty() {
        return Err(EngineError::Invalid(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    if !n.aliases.is_empty() {
        return Err(EngineError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    // A bad request, not a 404: the docker CLI answers a 404 on create by pulling.
    let target = match crate::find(engine, &n.network) {
        Ok(t) => t,
        Err(EngineError::NotFound { .. }) => {
            return Err(EngineError::Invalid(format!(
                "No such container: {}",
                n.network
            )))
        }
        Err(e) => return Err(e),
    };
    let bundle = engine.dir(&target.id);
    for name in ["hostname", "hosts", "resolv.conf"] {
        let source = bundle.join(name);
        let destination = format!("/etc/{name}");
        if !source.exists() || config.mounts.iter().any(|m| m.destination == destination) {
            continue;
        }
        config.mounts.push(Mount {
            destination,
            kind: MountKind::Bind {
                source: source.display().to_string(),
                read_only: false,
                recursive: false,
                propagation: Default::default(),
                create_source: false,
            },
        });
    }
    Ok(Some(target.id))
}

/// At start of a `--network container:X` container: X must be running; the bundle's
/// spec then joins X's network namespace (`/proc/<pid>/ns/net`) and takes its
/// hostname, as dockerd does.
pub fn join_container(engine: &Engine, id: &str, target: &str) -> Result<(), EngineError> {
    let t = crate::get(engine, target)
        .map_err(|_| EngineError::Invalid(format!("No such container: {target}")))?;
    if t.state.status != crate::record::Status::Running || t.state.pid == 0 {
        return Err(EngineError::Conflict(format!(
            "cannot join network of a non running container: {target}"
        )));
    }
    let path = engine.dir(id).join("config.json");
    let read = |p: &std::path::Path| -> Result<oci_spec::runtime::Spec, EngineError> {
        let bytes =
            std::fs::read(p).map_err(EngineError::internal(format!("reading {}", p.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(EngineError::internal(format!("decoding {}", p.display())))
    };
    let mut spec = read(&path)?;
    let hostname = read(&engine.dir(target).join("config.json"))?
        .hostname()
        .clone();
    spec.set_hostname(hostname);
    let netns = std::path::PathBuf::from(format!("/proc/{}/ns/net", t.state.pid));
    if let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for ns in namespaces.iter_mut() {
            if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                ns.set_path(Some(netns.clone()));
            }
        }
    }
    let bytes =
        serde_json::to_vec_pretty(&spec).map_err(EngineError::internal("encoding config.json"))?;
    std::fs::write(&path, bytes)
        .map_err(EngineError::internal(format!("writing {}", path.display())))
}

/// The container's hostname as its spec gets it.
pub fn hostname_of(config: &ContainerConfig, id: &str) -> String {
    if config.hostname.is_empty() {
        id[..12.min(id.len())].to_string()
    } else {
        config.hostname.clone()
    }
}

/// Writes the bundle's hosts, hostname and resolv.conf (the address comes at start)
/// and binds them at the paths no mount of the container covers.
pub fn add_files(
    engine: &Engine,
    id: &str,
    config: &mut ContainerConfig,
) -> Result<(), EngineError> {
    let bundle = engine.dir(id);
    let hostname = hostname_of(config, id);
    write(&bundle.join("hostname"), &format!("{hostname}\n"))?;
    let extra = extra_hosts(engine, &config.network.extra_hosts)?;
    write(
        &bundle.join("hosts"),
        &hosts(&hostname, &config.domainname, &extra, &[]),
    )?;
    write(&bundle.join("resolv.conf"), &resolv_for(engine, config)?)?;
    for name in ["hostname", "hosts", "resolv.conf"] {
        let destination = format!("/etc/{name}");
        if config.mounts.iter().any(|m| m.destination == destination) {
            continue;
        }
        config.mounts.push(Mount {
            destination,
            kind: MountKind::Bind {
                source: bundle.join(name).display().to_string(),
                read_only: false,
                recursive: false,
                propagation: Default::default(),
                create_source: false,
            },
        });
    }
    Ok(())
}

/// `--add-host` with `--network host` or `none`: the bundle's hosts file as dockerd
/// 20.10 builds it there (its loopback and IPv6 lines, then the entries; no address
/// of the container's own) bound at /etc/hosts unless a mount covers it. Without
/// entries nothing is written (host mode then sees the image's file, as before).
pub fn add_extra_hosts_file(
    engine: &Engine,
    id: &str,
    config: &mut ContainerConfig,
) -> Result<(), EngineError> {
    let n = &config.network;
    if n.extra_hosts.is_empty() || !matches!(n.mode, NetworkMode::Host | NetworkMode::None) {
        return Ok(());
    }
    let extra = extra_hosts(engine, &n.extra_hosts)?;
    let path = engine.dir(id).join("hosts");
    write(
        &path,
        &hosts(&hostname_of(config, id), &config.domainname, &extra, &[]),
    )?;
    if !config.mounts.iter().any(|m| m.destination == "/etc/hosts") {
        config.mounts.push(Mount {
            destination: "/etc/hosts".into(),
            kind: MountKind::Bind {
                source: path.display().to_string(),
                read_only: false,
                recursive: false,
                propagation: Default::default(),
                create_source: false,
            },
        });
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result<(), EngineError> {
    std::fs::write(path, text).map_err(EngineError::internal(format!("writing {}", path.display())))
}

/// dockerd's /etc/hosts: loopback and IPv6 names, the `--add-host` entries, then the
/// container's addresses (IPv4, then IPv6 on a network with IPv6) with its hostname
/// (and `hostname.domain` first when a domain is set).
pub fn hosts(hostname: &str, domain: &str, extra: &[(String, String)], ips: &[&str]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (addr, name) in extra {
        s.push_str(&format!("{addr}\t{name}\n"));
    }
    for ip in ips {
        if domain.is_empty() {
            s.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            s.push_str(&format!("{ip}\t{hostname}.{domain} {hostname}\n"));
        }
    }
    s
}

/// A container's resolv.conf: on a user network the embedded DNS server at the
/// gateway (`--dns` servers become its upstreams for this container), elsewhere the
/// host's nameservers or `--dns`; `--dns-search` and `--dns-option` replace the
/// host's `search` and `options`, as dockerd does.
fn resolv_for(engine: &Engine, config: &ContainerConfig) -> Result<String, EngineError> {
    let n = &config.network;
    check_dns(n)?;
    if n.mode == NetworkMode::Bridge {
        let net = super::get(engine, &n.network)?.record;
        if !net.builtin {
            let gateway = net.gateway.parse().map_err(|_| {
                EngineError::broken(
                    format!("network {}", net.name),
                    format!("bad gateway {}", net.gateway),
                )
            })?;
            return Ok(super::dns::embedded_resolv_conf(
                gateway,
                &n.dns_search,
                &n.dns_options,
            ));
        }
    }
    let mut r = super::dns::ResolvConf::parse(&resolv_conf());
    if !n.dns.is_empty() {
        r.nameservers = n.dns.iter().filter_map(|d| d.parse().ok()).collect();
    }
    if !n.dns_search.is_empty() {
        r.search = n.dns_search.clone();
    }
    if !n.dns_options.is_empty() {
        r.options = n.dns_options.clone();
    }
    Ok(r.render())
}

/// `--dns` values must be IP addresses; `--dns-search` values domain names.
pub fn check_dns(n: &crate::config::NetworkAttachment) -> Result<(), EngineError> {
    for d in &n.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(EngineError::Invalid(format!("{d} is not an ip address")));
        }
    }
    for s in &n.dns_search {
        if s != "." && (s.is_empty() || s.len() > 255 || s.contains(char::is_whitespace)) {
            return Err(EngineError::Invalid(format!("{s} is not a valid domain")));
        }
    }
    if let Some(o) = n
        .dns_options
        .iter()
        .find(|o| o.is_empty() || o.contains(char::is_whitespace))
    {
        return Err(EngineError::Invalid(format!("invalid DNS option {o:?}")));
    }
    Ok(())
}

/// The host's resolv.conf without loopback nameservers, which mean nothing inside the
/// container's namespace (dockerd's rule); none left: none (berth sends no DNS
/// traffic anywhere the host did not configure).
pub fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    filter_resolv(&host)
}

fn filter_resolv(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut f = l.split_whitespace();
            !(f.next() == Some("nameserver")
                && f.next()
                    .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether the container's spec joins a network namespace of berth's own at
/// `netns_path` (a bridge-mode container, also one disconnected from all its
/// networks), so that its start pins one and its stop removes it; host, none and
/// `container:` modes do not.
pub fn has_own_netns(engine: &Engine, record: &ContainerRecord) -> bool {
    if !record.networks.is_empty() {
        return true;
    }
    let want = netns_path(engine, &record.id);
    if Netns::at(&want).is_pinned() {
        return true;
    }
    let Ok(bytes) = std::fs::read(engine.dir(&record.id).join("config.json")) else {
        return false;
    };
    let spec: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let want = want.to_string_lossy();
    spec["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|ns| ns["type"] == "network" && ns["path"].as_str() == Some(want.as_ref()))
}

/// Attaches a starting container to its networks; on failure nothing stays attached.
/// Fills the endpoints' addresses in `record` (the caller stores it).
pub fn setup(engine: &Engine, record: &mut ContainerRecord) -> Result<(), EngineError> {
    if !has_own_netns(engine, record) {
        return Ok(());
    }
    let path = netns_path(engine, &record.id);
    let ns = Netns::at(&path);
    if record.networks.is_empty() {
        // Disconnected from every network before it started: loopback only, as
        // Docker runs such a container (its spec joins the pin all the same).
        if !ns.is_pinned() {
            Netns::create(path.parent().unwrap_or(&path), &record.id).map_err(
                EngineError::internal("creating the container's network namespace"),
            )?;
        }
        return ns.set_loopback_up().map_err(|e| {
            let _ = ns.remove();
            EngineError::internal("bringing up the container's loopback")(e)
        });
    }
    // Host ports first: a refusal leaves nothing made.
    let others = crate::list(engine)?;
    super::ports::assign(record, &others)?;
    if !ns.is_pinned() {
        Netns::create(path.parent().unwrap_or(&path), &record.id).map_err(
            EngineError::internal("creating the container's network namespace"),
        )?;
    }
    let result = setup_all(engine, record);
    if result.is_err() {
        let _ = teardown(engine, record);
    }
    result
}

fn setup_all(engine: &Engine, record: &mut ContainerRecord) -> Result<(), EngineError> {
    let hostname = std::fs::read_to_string(engine.dir(&record.id).join("hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let mut first_ips: Option<Vec<String>> = None;
    let mappings = super::ports::mappings(record);
    let (id, name) = (record.id.clone(), record.name.clone());
    for (i, ep) in record.networks.iter_mut().enumerate() {
        // The ports are published through the first network, as Docker's are
        // through the container's first endpoint.
        let ports = if i == 0 { mappings.clone() } else { Vec::new() };
        attach_one(engine, &id, &name, i, ep, ports)?;
        if first_ips.is_none() {
            let mut ips = vec![ep.ip_address.clone()];
            if !ep.ip6_address.is_empty() {
                ips.push(ep.ip6_address.clone());
            }
            first_ips = Some(ips);
        }
    }
    let domain = record.request["Domainname"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let entries: Vec<String> = record.request["HostConfig"]["ExtraHosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    let extra = extra_hosts(engine, &entries)?;
    let hosts_path = engine.dir(&record.id).join("hosts");
    let ips: Vec<&str> = first_ips.iter().flatten().map(String::as_str).collect();
    if hosts_is_ours(&hosts_path) {
        write(&hosts_path, &hosts(&hostname, &domain, &extra, &ips))?;
    }
    firewall::sync(engine)?;
    if !on_user_network(record) {
        // The default bridge has no name resolution: nothing for the DNS servers.
        return Ok(());
    }
    super::dns::sync(engine, Some(record))
}

/// Whether any of the container's endpoints is on a user network (the only ones
/// with an embedded DNS server; no user network can be named `bridge`).
fn on_user_network(record: &ContainerRecord) -> bool {
    record
        .networks
        .iter()
        .any(|e| e.network_name != super::DEFAULT_NETWORK)
}

/// The interface of the endpoint at `index`.
pub fn if_name_of(index: usize, ep: &Endpoint) -> String {
    if ep.if_name.is_empty() {
        format!("eth{index}")
    } else {
        ep.if_name.clone()
    }
}

/// ADD of one endpoint into container `id`'s pinned namespace; fills its addresses.
pub fn attach_one(
    engine: &Engine,
    id: &str,
    name: &str,
    index: usize,
    ep: &mut Endpoint,
    port_mappings: Vec<berth_cni::PortMapping>,
) -> Result<(), EngineError> {
    let net = find_by_id(engine, &ep.network_id)?;
    ep.if_name = if_name_of(index, ep);
    let cni = cni_of(engine, &net, &ep.if_name)?;
    let prefix = Ipv4Net::parse(&net.subnet).map(|n| n.prefix).unwrap_or(16);
    let pod = PodNetwork {
        id: id.to_string(),
        name: name.to_string(),
        netns: netns_path(engine, id),
        port_mappings,
        ips: requested_ips(&net, ep, prefix),
        ..Default::default()
    };
    let attached = cni.setup(&pod).map_err(|e| EngineError::Internal {
        context: format!("attaching to network {}", net.name),
        source: e.into(),
    })?;
    let ipc = attached
        .result
        .ips
        .iter()
        .find(|c| c.ip().is_some_and(|ip| ip.is_ipv4()));
    ep.ip_address = ipc
        .and_then(|c| c.ip())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    ep.prefix_len = u8::try_from(
        ipc.and_then(|c| c.address.split('/').nth(1))
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(u32::from(prefix)),
    )
    .unwrap_or(prefix);
    ep.gateway = net.gateway.clone();
    let ipc6 = attached
        .result
        .ips
        .iter()
        .find(|c| c.ip().is_some_and(|ip| ip.is_ipv6()));
    if let Some(c) = ipc6 {
        ep.ip6_address = c.ip().map(|ip| ip.to_string()).unwrap_or_default();
        ep.prefix6_len = c
            .address
            .split('/')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(64);
        ep.gateway6 = net.gateway6.clone();
    }
    ep.mac_address = attached
        .result
        .interfaces
        .iter()
        .find(|i| !i.sandbox.is_empty())
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    ep.network_name = net.name.clone();
    Ok(())
}

/// The addresses asked for (`--ip`, `--ip6`) as host-local's `ips` capability wants
/// them (with the subnets' prefix lengths).
fn requested_ips(net: &NetworkRecord, ep: &Endpoint, prefix: u8) -> Vec<String> {
    let mut ips = Vec::new();
    if !ep.requested_ip.is_empty() {
        ips.push(format!("{}/{prefix}", ep.requested_ip));
    }
    if !ep.requested_ip6.is_empty() {
        let p6 = Ipv6Net::parse(&net.subnet6).map(|n| n.prefix).unwrap_or(64);
        ips.push(format!("{}/{p6}", ep.requested_ip6));
    }
    ips
}

/// DEL of container `id`'s attachment through interface `if_name` (one network).
pub fn detach_one(engine: &Engine, id: &str, if_name: &str) -> Result<(), EngineError> {
    let cni = Cni::new(CniOptions {
        conf_dir: dir(engine).join("conf").join("-none-"),
        cache_dir: dir(engine).join("cni"),
        default_network: None,
        if_name: if_name.to_string(),
        ..CniOptions::default()
    });
    let pod = PodNetwork {
        id: id.to_string(),
        netns: netns_path(engine, id),
        ..Default::default()
    };
    cni.teardown(&pod).map_err(|e| EngineError::Internal {
        context: format!("detaching container {id} from a network"),
        source: e.into(),
    })
}

/// Whether the bundle's hosts file is still berth's (always, today; a user's bind of
/// /etc/hosts does not point here).
fn hosts_is_ours(path: &std::path::Path) -> bool {
    path.exists()
}

/// Detaches a container from its networks (DEL from the cache; safe to repeat, also
/// when nothing is attached) and removes its namespace pin. Every network is tried;
/// the errors are reported together.
pub fn teardown(engine: &Engine, record: &mut ContainerRecord) -> Result<(), EngineError> {
    let errors = detach_id(engine, &record.id);
    for b in &mut record.ports {
        b.host_port = 0;
    }
    for ep in &mut record.networks {
        ep.ip_address.clear();
        ep.mac_address.clear();
        ep.gateway.clear();
        ep.prefix_len = 0;
        ep.ip6_address.clear();
        ep.gateway6.clear();
        ep.prefix6_len = 0;
    }
    if let Err(e) = firewall::sync(engine) {
        tracing::warn!(error = %e, "updating berth's network isolation rules");
    }
    if on_user_network(record) {
        if let Err(e) = super::dns::sync(engine, Some(record)) {
            tracing::warn!(error = %e, "updating the networks' DNS servers");
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::broken(
            format!("detaching container {} from its networks", record.id),
            errors.join("; "),
        ))
    }
}

/// DEL of every cached attachment of container `id`, then its namespace pin.
fn detach_id(engine: &Engine, id: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let cni = Cni::new(CniOptions {
        conf_dir: dir(engine).join("conf").join("-none-"),
        cache_dir: dir(engine).join("cni"),
        default_network: None,
        ..CniOptions::default()
    });
    let path = netns_path(engine, id);
    match cni.cached_attachments() {
        Ok(all) => {
            let mut ifs: Vec<String> = all
                .into_iter()
                .filter(|a| a.pod_id == id)
                .map(|a| a.if_name)
                .collect();
            ifs.sort();
            ifs.dedup();
            for if_name in ifs {
                if let Err(e) = detach_one(engine, id, &if_name) {
                    errors.push(e.to_string());
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    if let Err(e) = Netns::at(&path).remove() {
        errors.push(e.to_string());
    }
    errors
}

/// Containers with a cached attachment (or a namespace pin) that are not running:
/// after a berthd crash, what their stop could not undo. Detached now.
pub fn reconcile(engine: &Engine, running: &std::collections::HashSet<String>) {
    let cni = Cni::new(CniOptions {
        conf_dir: dir(engine).join("conf").join("-none-"),
        cache_dir: dir(engine).join("cni"),
        default_network: None,
        ..CniOptions::default()
    });
    let mut ids: Vec<String> = cni
        .cached_attachments()
        .map(|all| all.into_iter().map(|a| a.pod_id).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(dir(engine).join("netns")) {
        ids.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    ids.sort();
    ids.dedup();
    for id in ids.into_iter().filter(|id| !running.contains(id)) {
        tracing::info!(id = %id, "detaching a stopped container from its networks");
        for e in detach_id(engine, &id) {
            tracing::warn!(id = %id, "detaching: {e}");
        }
    }
    // A cache write cut short by the crash leaves its temporary file (`.<entry>.tmp<pid>`).
    let results = dir(engine).join("cni").join("results");
    for e in std::fs::read_dir(&results).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp") {
            tracing::info!(file = %name, "removing a CNI cache write the crash cut short");
            let _ = std::fs::remove_file(e.path());
        }
    }
    // An ADD cut short by the crash left its lease but no cache entry to DEL.
    for lease in stale_leases(&dir(engine).join("ipam"), running) {
        tracing::info!(lease = %lease.display(), "releasing the address lease of a container that is not running");
        if let Err(e) = std::fs::remove_file(&lease) {
            tracing::warn!(lease = %lease.display(), "releasing an address lease: {e}");
        }
    }
    if let Err(e) = firewall::sync(engine) {
        tracing::warn!(error = %e, "updating berth's network isolation rules");
    }
    if let Err(e) = super::dns::sync(engine, None) {
        tracing::warn!(error = %e, "starting the networks' DNS servers");
    }
}

/// host-local's lease files under `ipam` (`<network>/<address>`, the holder's
/// container id on the first line) whose holder is not in `running`.
fn stale_leases(
    ipam: &std::path::Path,
    running: &std::collections::HashSet<String>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(ipam).into_iter().flatten().flatten() {
        for lease in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // Besides leases, host-local keeps a lock and `last_reserved_ip.*`.
            let name = lease.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_err() {
                continue;
            }
            let holder = std::fs::read_to_string(lease.path()).unwrap_or_default();
            let holder = holder.lines().next().unwrap_or("").trim();
            if !running.contains(holder) {
                out.push(lease.path());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_of_containers_not_running_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("berth-0123456789ab");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("10.1.0.2"), "live\r\neth0").unwrap();
        std::fs::write(net.join("10.1.0.3"), "gone\r\neth0").unwrap();
        std::fs::write(net.join("10.1.0.4"), "").unwrap();
        std::fs::write(net.join("last_reserved_ip.0"), "10.1.0.4").unwrap();
        std::fs::write(net.join("lock"), "").unwrap();
        let running: std::collections::HashSet<String> = ["live".to_string()].into();
        assert_eq!(
            stale_leases(dir.path(), &running),
            vec![net.join("10.1.0.3"), net.join("10.1.0.4")]
        );
        assert!(stale_leases(&dir.path().join("missing"), &running).is_empty());
    }

    #[test]
    fn hosts_and_resolv_as_dockerd_writes_them() {
        let h = hosts("web", "", &[], &["10.1.0.2"]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.ends_with("ff02::2\tip6-allrouters\n10.1.0.2\tweb\n"));
        assert!(hosts("web", "example.org", &[], &["10.1.0.2"])
            .ends_with("10.1.0.2\tweb.example.org web\n"));
        assert!(!hosts("web", "", &[], &[]).contains("web"));
        assert!(hosts("web", "", &[], &["10.1.0.2", "fd00::2"])
            .ends_with("10.1.0.2\tweb\nfd00::2\tweb\n"));
        let extra = [("192.0.2.9".to_string(), "db".to_string())];
        assert!(hosts("web", "", &extra, &["10.1.0.2"])
            .ends_with("ff02::2\tip6-allrouters\n192.0.2.9\tdb\n10.1.0.2\tweb\n"));
        assert_eq!(
            filter_resolv("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n"),
            "nameserver 192.0.2.1\nsearch lan\n"
        );
    }
}
