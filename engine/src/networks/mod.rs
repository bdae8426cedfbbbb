//! Networks of standalone containers (the Docker side): bridge networks kept as records
//! in the store (kind `network`, keyed by a 64-hex id, the name unique), the default
//! `bridge` network made when berthd starts, and user networks made by `create`.
//!
//! The machinery under them is the CNI plugins berth drives for pods (one conflist
//! per network: bridge, host-local, firewall, portmap); `docs/networks.md` says why.
//! A record holds what Docker's network inspect shows; the host's bridge appears with
//! the first attached container.
//!
//! A network is in use while a container record lists an endpoint on it
//! (`ContainerRecord::networks`), whatever the container's state; removal is refused
//! then, as Docker refuses it.

pub mod attach;
pub mod connect;
pub mod dns;
mod filter;
pub mod firewall;
pub mod ipam;
pub mod ports;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use filter::NetworkFilter;
use ipam::{Ipv4Net, Ipv6Net};

use crate::record::ContainerRecord;
use crate::store::Kind;
use crate::{Engine, EngineError, Object};

/// The version of [`NetworkRecord`] this code writes; a newer one is refused.
pub const RECORD_VERSION: u32 = 1;

/// The only driver berth has for networks it makes.
pub const BRIDGE_DRIVER: &str = "bridge";

/// The default network's name, as Docker's.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The driver option naming the host bridge.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// The network modes `--network host|none` with the drivers Docker lists them with;
/// berthd keeps a record of each (no subnet, no bridge) so they have stable ids.
pub const PREDEFINED: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A network as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub version: u32,
    pub id: String,
    pub name: String,
    pub driver: String,
    /// RFC 3339 with nanoseconds, as Docker's `Created`.
    pub created: String,
    /// IPv4 CIDR.
    pub subnet: String,
    pub gateway: String,
    /// The part of the subnet addresses are given from; none: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// No route out of the network (no masquerading, no default route).
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    /// The host bridge.
    pub bridge: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver options as given (only `com.docker.network.bridge.name` is taken).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made by berthd (`bridge`, `host`, `none`): never removed.
    #[serde(default)]
    pub builtin: bool,
    /// `--ipv6`: containers get an address of `subnet6` as well (dual stack).
    #[serde(default)]
    pub enable_ipv6: bool,
    /// IPv6 CIDR, its gateway (on the bridge) and the part addresses are given from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway6: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
}

/// A container's place on a network, kept in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub network_name: String,
    /// The address asked for (`--ip`); empty: any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested_ip: String,
    /// Names other containers on the network find it by, besides its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// While attached (running): the address given, its prefix length, the network's
    /// gateway and the interface's MAC address; empty when stopped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
    #[serde(default)]
    pub prefix_len: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// The interface in the container (`eth0`, …); empty in older records: `eth` and
    /// the endpoint's position.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub if_name: String,
    /// Docker's `EndpointID`: 64 hex, made when the endpoint is, kept across restarts
    /// (older records: derived from the container's and the network's ids).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_id: String,
    /// `--ip6`; empty: any (on a network with IPv6).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested_ip6: String,
    /// While attached, on an IPv6 network: the IPv6 address, its prefix length and
    /// the network's IPv6 gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip6_address: String,
    #[serde(default)]
    pub prefix6_len: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway6: String,
}

impl Endpoint {
    /// The endpoint id to show: the stored one, or for records made before endpoint
    /// ids were stored, one derived from the container's and the network's ids
    /// (stable, 64 hex).
    pub fn id_for(&self, container_id: &str) -> String {
        if !self.endpoint_id.is_empty() {
            return self.endpoint_id.clone();
        }
        // Four FNV-1a hashes of the pair, each seeded differently: not a secret,
        // only a stable id.
        let text = format!("{container_id}/{}", self.network_id);
        (0u64..4)
            .map(|seed| {
                let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
                for b in text.bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                format!("{h:016x}")
            })
            .collect()
    }
}

/// A network with what is known about it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub record: NetworkRecord,
    /// The containers with an endpoint on it.
    pub containers: Vec<Attached>,
}

/// A container on a network, as network inspect lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub id: String,
    pub name: String,
    pub endpoint: Endpoint,
}

/// What `create` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNetwork {
    pub name: String,
    /// Empty: bridge.
    pub driver: String,
    /// None: the next free subnet of Docker's default pools.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// The IPv6 IPAM config (with `enable_ipv6`).
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// The default network's settings (berthd's `[networks]` config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBridge {
    /// The host bridge; not `berth0`, which the pods' default CNI network uses.
    pub bridge: String,
    /// None: Docker's 172.17.0.0/16 unless the host routes or another network cover
    /// part of it, else the next free subnet of the pools.
    pub subnet: Option<String>,
}

impl Default for DefaultBridge {
    fn default() -> Self {
        DefaultBridge {
            bridge: "berth-br0".into(),
            subnet: None,
        }
    }
}

/// Makes the default `bridge` network, and the `host` and `none` records, when the
/// store lacks them. Called when berthd starts; a record stays as made (the default
/// subnet is not re-chosen later).
pub fn ensure_default(engine: &Engine, def: &DefaultBridge) -> Result<Network, EngineError> {
    let _guard = engine.networks_lock();
    for (name, driver) in PREDEFINED {
        if engine.store.id_by_name(Kind::Network, name)?.is_none() {
            let record = NetworkRecord {
                version: RECORD_VERSION,
                id: crate::create::random_id(),
                name: name.into(),
                driver: driver.into(),
                created: now(),
                subnet: String::new(),
                gateway: String::new(),
                ip_range: None,
                internal: false,
                attachable: false,
                bridge: String::new(),
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                builtin: true,
                ..Default::default()
            };
            engine
                .store
                .put(Kind::Network, &record.id, Some(name), &record)?;
        }
    }
    if let Some(id) = engine.store.id_by_name(Kind::Network, DEFAULT_NETWORK)? {
        let record = read(engine, &id)?.ok_or_else(|| not_found(DEFAULT_NETWORK))?;
        return with_containers(engine, record);
    }
    let subnet = match &def.subnet {
        Some(s) => {
            let net = Ipv4Net::parse(s).map_err(EngineError::Invalid)?;
            check_overlap(engine, net)?;
            net
        }
        None => free_subnet(engine)?,
    };
    check_bridge_name(&def.bridge)?;
    let record = NetworkRecord {
        version: RECORD_VERSION,
        id: crate::create::random_id(),
        name: DEFAULT_NETWORK.into(),
        driver: BRIDGE_DRIVER.into(),
        created: now(),
        subnet: subnet.to_string(),
        gateway: subnet.first_host().to_string(),
        ip_range: None,
        internal: false,
        attachable: false,
        bridge: def.bridge.clone(),
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        builtin: true,
        ..Default::default()
    };
    engine
        .store
        .put(Kind::Network, &record.id, Some(&record.name), &record)?;
    tracing::info!(subnet = %record.subnet, bridge = %record.bridge, "made the default bridge network");
    Ok(Network {
        record,
        containers: Vec::new(),
    })
}

/// Makes a user network; everything refused is refused before anything is stored.
pub fn create(engine: &Engine, new: NewNetwork) -> Result<Network, EngineError> {
    let _guard = engine.networks_lock();
    if !valid_name(&new.name) {
        return Err(EngineError::Invalid(format!(
            "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed",
            new.name
        )));
    }
    if PREDEFINED.iter().any(|(n, _)| *n == new.name) || new.name == DEFAULT_NETWORK {
        return Err(EngineError::Forbidden(format!(
            "operation is not permitted on predefined {} network",
            new.name
        )));
    }
    match new.driver.as_str() {
        "" | BRIDGE_DRIVER => {}
        other => {
            return Err(EngineError::Invalid(format!(
                "network driver {other:?} is not supported by berth (only bridge)"
            )))
        }
    }
    let mut bridge = None;
    for (key, value) in &new.options {
        match key.as_str() {
            OPT_BRIDGE_NAME => bridge = Some(value.clone()),
            other => {
                return Err(EngineError::Invalid(format!(
                    "network option {other:?} is not supported by berth (only {OPT_BRIDGE_NAME})"
                )))
            }
        }
    }
    if engine.store.id_by_name(Kind::Network, &new.name)?.is_some() {
        return Err(EngineError::NetworkNameInUse(new.name));
    }
    let subnet = match &new.subnet {
        Some(s) => {
            let net = Ipv4Net::parse(s).map_err(EngineError::Invalid)?;
            check_overlap(engine, net)?;
            net
        }
        None => {
            if new.gateway.is_some() || new.ip_range.is_some() {
                return Err(EngineError::Invalid(
                    "a gateway or an IP range needs a subnet (--subnet)".into(),
                ));
            }
            free_subnet(engine)?
        }
    };
    let (gateway, ip_range) =
        gateway_and_range(subnet, new.gateway.as_deref(), new.ip_range.as_deref())?;
    let v6 = ipv6_config(engine, &new)?;
    let id = crate::create::random_id();
    let bridge = match bridge {
        Some(b) => b,
        None => format!("berth-{}", &id[..9]),
    };
    check_bridge_name(&bridge)?;
    if let Some(other) = records(engine)?.into_iter().find(|r| r.bridge == bridge) {
        return Err(EngineError::Invalid(format!(
            "bridge name {bridge:?} is already used by network {}",
            other.name
        )));
    }
    let record = NetworkRecord {
        version: RECORD_VERSION,
        id,
        name: new.name,
        driver: BRIDGE_DRIVER.into(),
        created: now(),
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        ip_range,
        internal: new.internal,
        attachable: new.attachable,
        bridge,
        labels: new.labels,
        options: new.options,
        builtin: false,
        enable_ipv6: new.enable_ipv6,
        subnet6: v6.as_ref().map(|v| v.0.to_string()).unwrap_or_default(),
        gateway6: v6.as_ref().map(|v| v.1.to_string()).unwrap_or_default(),
        ip_range6: v6.and_then(|v| v.2),
    };
    engine
        .store
        .put(Kind::Network, &record.id, Some(&record.name), &record)
        .map_err(|e| match e {
            crate::store::StoreError::NameInUse { name, .. } => EngineError::NetworkNameInUse(name),
            e => e.into(),
        })?;
    tracing::info!(network = %record.name, subnet = %record.subnet, "network created");
    Ok(Network {
        record,
        containers: Vec::new(),
    })
}

/// The network a reference names: full id, name, then a unique id prefix (Docker's
/// order).
pub fn get(engine: &Engine, reference: &str) -> Result<Network, EngineError> {
    let record = find(engine, reference)?;
    with_containers(engine, record)
}

/// Every network record the filter takes, by name.
pub fn list(engine: &Engine, filter: &NetworkFilter) -> Result<Vec<Network>, EngineError> {
    let users = users(engine)?;
    let mut out = Vec::new();
    for record in records(engine)? {
        let containers = users.get(&record.id).cloned().unwrap_or_default();
        if filter.matches_record(&record, !containers.is_empty()) {
            out.push(Network { record, containers });
        }
    }
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(out)
}

/// Removes a user network; refused while a container has an endpoint on it, and for
/// the default network.
pub fn remove(engine: &Engine, reference: &str) -> Result<(), EngineError> {
    let _guard = engine.networks_lock();
    let record = find(engine, reference)?;
    if record.builtin {
        return Err(EngineError::Forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            record.name
        )));
    }
    if users(engine)?
        .get(&record.id)
        .is_some_and(|c| !c.is_empty())
    {
        return Err(EngineError::NetworkInUse {
            name: record.name,
            id: record.id,
        });
    }
    destroy(engine, &record)?;
    tracing::info!(network = %record.name, "network removed");
    Ok(())
}

/// The record, the host bridge and the network's CNI config, with the networks' lock
/// held; the isolation rules follow.
fn destroy(engine: &Engine, record: &NetworkRecord) -> Result<(), EngineError> {
    if firewall::bridge_exists(&record.bridge) {
        let out = std::process::Command::new("ip")
            .args(["link", "del", &record.bridge])
            .output()
            .map_err(EngineError::internal("running ip link del"))?;
        if !out.status.success() && firewall::bridge_exists(&record.bridge) {
            return Err(EngineError::broken(
                format!(
                    "removing bridge {} of network {}",
                    record.bridge, record.name
                ),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
    }
    let _ = std::fs::remove_dir_all(attach::dir(engine).join("conf").join(&record.id));
    engine.store.delete(Kind::Network, &record.id)?;
    firewall::sync_locked(engine)
}

/// Removes the user networks no container uses that the filter takes; their names.
pub fn prune(engine: &Engine, filter: &NetworkFilter) -> Result<Vec<String>, EngineError> {
    let _guard = engine.networks_lock();
    let users = users(engine)?;
    let mut pruned = Vec::new();
    for record in records(engine)? {
        if record.builtin
            || users.get(&record.id).is_some_and(|c| !c.is_empty())
            || !filter.matches_record(&record, false)
        {
            continue;
        }
        destroy(engine, &record)?;
        tracing::info!(network = %record.name, "network pruned");
        pruned.push(record.name);
    }
    pruned.sort();
    Ok(pruned)
}

/// Docker's network name rule, also one character.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn check_bridge_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid bridge name {name:?} ({OPT_BRIDGE_NAME}): 1 to 15 characters of [a-zA-Z0-9_.-]"
        )))
    }
}

/// Refuses a subnet overlapping another network's, in Docker's words.
fn check_overlap(engine: &Engine, subnet: Ipv4Net) -> Result<(), EngineError> {
    for r in records(engine)? {
        if r.subnet.is_empty() {
            continue;
        }
        if Ipv4Net::parse(&r.subnet).is_ok_and(|other| other.overlaps(subnet)) {
            return Err(EngineError::Forbidden(format!(
                "Pool overlaps with other one on this address space (network {} has {})",
                r.name, r.subnet
            )));
        }
    }
    Ok(())
}

/// The IPv6 subnet, gateway and range of a new network with `--ipv6`; none without.
/// Docker's default pools are IPv4 only, so `--ipv6` needs a subnet (dockerd's
/// words when it has none); an IPv6 subnet without `--ipv6` is refused rather than
/// kept unused.
fn ipv6_config(
    engine: &Engine,
    new: &NewNetwork,
) -> Result<Option<(Ipv6Net, std::net::Ipv6Addr, Option<String>)>, EngineError> {
    let Some(s) = &new.subnet6 else {
        if new.enable_ipv6 {
            return Err(EngineError::Invalid(
                "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network (--ipv6 needs an IPv6 --subnet)".into(),
            ));
        }
        if new.gateway6.is_some() || new.ip_range6.is_some() {
            return Err(EngineError::Invalid(
                "an IPv6 gateway or IP range needs an IPv6 subnet (--subnet)".into(),
            ));
        }
        return Ok(None);
    };
    if !new.enable_ipv6 {
        return Err(EngineError::Invalid(format!(
            "IPv6 subnet {s} given without --ipv6 (EnableIPv6): enable IPv6 on the network to use it"
        )));
    }
    let subnet = Ipv6Net::parse(s).map_err(EngineError::Invalid)?;
    for r in records(engine)? {
        if Ipv6Net::parse(&r.subnet6).is_ok_and(|other| other.overlaps(subnet)) {
            return Err(EngineError::Forbidden(format!(
                "Pool overlaps with other one on this address space (network {} has {})",
                r.name, r.subnet6
            )));
        }
    }
    let (gateway, range) =
        gateway_and_range(subnet, new.gateway6.as_deref(), new.ip_range6.as_deref())?;
    Ok(Some((subnet, gateway, range)))
}

/// The first subnet of Docker's pools that no network and no host route overlaps.
fn free_subnet(engine: &Engine) -> Result<Ipv4Net, EngineError> {
    let mut taken = ipam::host_routes();
    for r in records(engine)? {
        if let Ok(n) = Ipv4Net::parse(&r.subnet) {
            taken.push(n);
        }
    }
    ipam::first_free(&taken).ok_or_else(|| {
        EngineError::Invalid(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        )
    })
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

fn not_found(reference: &str) -> EngineError {
    EngineError::NotFound {
        what: Object::Network,
        reference: reference.to_string(),
    }
}

fn find(engine: &Engine, reference: &str) -> Result<NetworkRecord, EngineError> {
    let id = match crate::lookup::resolve(&engine.store, Kind::Network, reference) {
        Ok(id) => id,
        Err(crate::lookup::LookupError::NotFound { .. }) => return Err(not_found(reference)),
        Err(e) => return Err(e.into()),
    };
    read(engine, &id)?.ok_or_else(|| not_found(reference))
}

fn check_version(record: NetworkRecord) -> Result<NetworkRecord, EngineError> {
    if record.version > RECORD_VERSION {
        return Err(EngineError::Internal {
            context: format!("reading network {}", record.name),
            source: format!(
                "its record has version {}, newer than this berthd ({RECORD_VERSION}); upgrade berthd",
                record.version
            )
            .into(),
        });
    }
    Ok(record)
}

/// The network with this exact id.
pub(crate) fn find_by_id(engine: &Engine, id: &str) -> Result<NetworkRecord, EngineError> {
    read(engine, id)?.ok_or_else(|| not_found(id))
}

fn read(engine: &Engine, id: &str) -> Result<Option<NetworkRecord>, EngineError> {
    engine
        .store
        .get::<NetworkRecord>(Kind::Network, id)?
        .map(check_version)
        .transpose()
}

fn records(engine: &Engine) -> Result<Vec<NetworkRecord>, EngineError> {
    engine
        .store
        .list::<NetworkRecord>(Kind::Network)?
        .into_iter()
        .map(|(_, _, r)| check_version(r))
        .collect()
}

/// Network id → the containers whose records have an endpoint on it.
fn users(engine: &Engine) -> Result<BTreeMap<String, Vec<Attached>>, EngineError> {
    let mut map: BTreeMap<String, Vec<Attached>> = BTreeMap::new();
    for (id, _, record) in engine.store.list::<ContainerRecord>(Kind::Container)? {
        for e in &record.networks {
            map.entry(e.network_id.clone()).or_default().push(Attached {
                id: id.clone(),
                name: record.name.clone(),
                endpoint: e.clone(),
            });
        }
    }
    Ok(map)
}

fn with_containers(engine: &Engine, record: NetworkRecord) -> Result<Network, EngineError> {
    let containers = users(engine)?.remove(&record.id).unwrap_or_default();
    Ok(Network { record, containers })
}

/// A network's gateway (given: a host address of `subnet`; else its first host) and
/// its `--ip-range` (inside `subnet`), in Docker's words when they are not.
fn gateway_and_range<N: ipam::Subnet>(
    subnet: N,
    gateway: Option<&str>,
    range: Option<&str>,
) -> Result<(N::Addr, Option<String>), EngineError> {
    let gateway = match gateway {
        Some(g) => {
            let ip: N::Addr = g
                .parse()
                .map_err(|_| EngineError::Invalid(format!("invalid gateway address {g:?}")))?;
            if !subnet.is_host_addr(ip) {
                return Err(EngineError::Invalid(format!(
                    "no matching subnet for gateway {g}: it is not a host address of {subnet}"
                )));
            }
            ip
        }
        None => subnet.first_host_addr(),
    };
    let range = match range {
        Some(r) => {
            let range = N::parse_net(r).map_err(EngineError::Invalid)?;
            if !subnet.covers_net(range) {
                return Err(EngineError::Invalid(format!(
                    "no matching subnet for range {r}: it is not inside {subnet}"
                )));
            }
            Some(range.to_string())
        }
        None => None,
    };
    Ok((gateway, range))
}

#[cfg(test)]
mod tests;
