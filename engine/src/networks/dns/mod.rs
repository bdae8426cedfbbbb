//! berth's embedded DNS server for user networks: one listener pair (UDP and TCP port
//! 53) on each user network's gateway address while the network has running
//! containers. It answers A (and, on networks with IPv6, AAAA) queries for the names
//! of the containers on that network
//! (name, `--network-alias` aliases, hostname, short id) to clients of that network
//! only, and forwards other names to the container's `--dns` servers or berthd's
//! upstreams (`[networks] dns_upstreams`, else the host's /etc/resolv.conf). The
//! tables are rebuilt from the container records on every attach and detach and at
//! berthd's start, so nothing of it outlives berthd or needs recovering.

pub mod codec;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use crate::record::ContainerRecord;
use crate::{Engine, EngineError};
use server::{Client, Server, Table};

/// The engine's DNS servers, by network id.
#[derive(Default)]
pub struct Dns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// None: the host's /etc/resolv.conf nameservers, read at each sync.
    upstreams: Option<Vec<SocketAddr>>,
    servers: HashMap<String, Server>,
    table: std::sync::Arc<std::sync::RwLock<Table>>,
}

impl Dns {
    /// berthd's `[networks] dns_upstreams` (forwarding goes there instead of the
    /// host's resolvers).
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        self.lock().upstreams = Some(upstreams);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The networks with a listener now and their gateways (tests, diagnostics).
    pub fn listening(&self) -> BTreeMap<String, Ipv4Addr> {
        self.lock()
            .servers
            .iter()
            .map(|(id, s)| (id.clone(), s.gateway))
            .collect()
    }

    /// Stops every listener (berthd's shutdown).
    pub fn stop_all(&self) {
        let servers: Vec<Server> = self.lock().servers.drain().map(|(_, s)| s).collect();
        for s in servers {
            s.stop();
        }
    }
}

/// A parsed resolv.conf: nameservers, search domains, options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => {
                    if let Some(ip) = f.next().and_then(|s| s.parse().ok()) {
                        r.nameservers.push(ip);
                    }
                }
                // The last `search` (or `domain`) line wins, as in glibc.
                Some("search") | Some("domain") => r.search = f.map(str::to_string).collect(),
                Some("options") => r.options.extend(f.map(str::to_string)),
                _ => {}
            }
        }
        r
    }

    pub fn host() -> ResolvConf {
        ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for ns in &self.nameservers {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.search.is_empty() {
            s.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// The resolv.conf of a container on a user network: the embedded server at the
/// gateway, the search domains and options of the host (or `--dns-search`,
/// `--dns-option`), and `ndots:0` unless an ndots is given, as dockerd writes it.
pub fn embedded_resolv_conf(gateway: Ipv4Addr, search: &[String], options: &[String]) -> String {
    let host = ResolvConf::host();
    let mut r = ResolvConf {
        nameservers: vec![IpAddr::V4(gateway)],
        search: if search.is_empty() {
            host.search
        } else {
            search.to_vec()
        },
        options: if options.is_empty() {
            host.options
        } else {
            options.to_vec()
        },
    };
    if !r.options.iter().any(|o| o.starts_with("ndots:")) {
        r.options.push("ndots:0".into());
    }
    r.render()
}

/// The `--dns` servers of a container's create request, as upstream addresses.
fn dns_servers_of(record: &ContainerRecord) -> Vec<SocketAddr> {
    record.request["HostConfig"]["Dns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        })
        .unwrap_or_default()
}

/// The names a container answers to on its networks.
fn names_of(engine: &Engine, record: &ContainerRecord) -> Vec<String> {
    let mut names = vec![record.name.trim_start_matches('/').to_ascii_lowercase()];
    names.push(record.id[..12.min(record.id.len())].to_string());
    if let Ok(h) = std::fs::read_to_string(engine.dir(&record.id).join("hostname")) {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() {
            names.push(h);
        }
    }
    names
}

/// A running container on a network: its names there and its addresses (IPv4, and
/// IPv6 on a network with IPv6).
type Member = (Vec<String>, Vec<IpAddr>);

/// Brings the listeners and their tables in line with the container records
/// (`changed` stands in for its stored record: the one being attached or detached).
/// A listener that cannot bind is logged and skipped: name resolution is not worth
/// failing a start for.
pub fn sync(engine: &Engine, changed: Option<&ContainerRecord>) -> Result<(), EngineError> {
    let mut records = crate::list(engine)?;
    if let Some(c) = changed {
        records.retain(|r| r.id != c.id);
        records.push(c.clone());
    }
    let mut state = engine.dns.lock();
    let upstreams = state.upstreams.clone().unwrap_or_else(|| {
        ResolvConf::host()
            .nameservers
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()
    });
    // Each network's members: (names, address) per running container on it.
    let mut members: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    let mut gateways: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let mut networks: HashMap<String, Option<super::NetworkRecord>> = HashMap::new();
    // Each client: its addresses' networks and its own upstreams.
    let mut clients: Vec<(Ipv4Addr, Vec<String>, Vec<SocketAddr>)> = Vec::new();
    for r in &records {
        let mut on: Vec<(Ipv4Addr, String)> = Vec::new();
        for ep in r.networks.iter().filter(|e| !e.ip_address.is_empty()) {
            let net = networks
                .entry(ep.network_id.clone())
                .or_insert_with(|| super::find_by_id(engine, &ep.network_id).ok());
            let Some(net) = net.as_ref().filter(|n| !n.builtin) else {
                continue;
            };
            let (Ok(gateway), Ok(ip)) = (net.gateway.parse(), ep.ip_address.parse()) else {
                continue;
            };
            gateways.insert(net.id.clone(), gateway);
            let mut names = names_of(engine, r);
            names.extend(ep.aliases.iter().map(|a| a.to_ascii_lowercase()));
            names.sort();
            names.dedup();
            let mut addrs = vec![IpAddr::V4(ip)];
            if let Ok(ip6) = ep.ip6_address.parse::<std::net::Ipv6Addr>() {
                addrs.push(ip6.into());
            }
            members
                .entry(net.id.clone())
                .or_default()
                .push((names, addrs));
            on.push((ip, net.id.clone()));
        }
        let own = dns_servers_of(r);
        let nets: Vec<String> = on.iter().map(|(_, n)| n.clone()).collect();
        for (ip, _) in on {
            clients.push((ip, nets.clone(), own.clone()));
        }
    }
    let mut table = Table {
        upstreams,
        ..Default::default()
    };
    for (ip, nets, own) in clients {
        let mut c = Client {
            upstreams: own,
            ..Default::default()
        };
        for n in &nets {
            for (names, own) in members.get(n).into_iter().flatten() {
                for name in names {
                    let addrs = c.names.entry(name.clone()).or_default();
                    for addr in own {
                        if !addrs.contains(addr) {
                            addrs.push(*addr);
                        }
                    }
                }
            }
        }
        table.clients.insert(ip, c);
    }
    *state.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    let gone: Vec<String> = state
        .servers
        .iter()
        .filter(|(id, s)| gateways.get(*id) != Some(&s.gateway))
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some(s) = state.servers.remove(&id) {
            tracing::debug!(network = %id, "closing the network's DNS server");
            s.stop();
        }
    }
    for (id, gateway) in gateways {
        if state.servers.contains_key(&id) {
            continue;
        }
        match Server::start(gateway, 53, state.table.clone()) {
            Ok(s) => {
                state.servers.insert(id, s);
            }
            Err(e) => {
                tracing::warn!(network = %id, %gateway, error = %e, "cannot serve DNS on the network's gateway")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_for_the_embedded_server() {
        let r = ResolvConf::parse(
            "nameserver 192.0.2.1\nsearch a.example\nsearch b.example c.example\noptions rotate\noptions timeout:2\n",
        );
        assert_eq!(r.nameservers, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.search, vec!["b.example", "c.example"]);
        assert_eq!(r.options, vec!["rotate", "timeout:2"]);
        assert_eq!(
            r.render(),
            "nameserver 192.0.2.1\nsearch b.example c.example\noptions rotate timeout:2\n"
        );
        let e = embedded_resolv_conf(
            Ipv4Addr::new(10, 5, 0, 1),
            &["x.example".into()],
            &["ndots:2".into()],
        );
        assert_eq!(
            e,
            "nameserver 10.5.0.1\nsearch x.example\noptions ndots:2\n"
        );
        let e = embedded_resolv_conf(Ipv4Addr::new(10, 5, 0, 1), &[], &["rotate".into()]);
        assert!(e.starts_with("nameserver 10.5.0.1\n"));
        assert!(e.ends_with("options rotate ndots:0\n"));
    }
}
