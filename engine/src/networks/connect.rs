//! `network connect` and `disconnect` (user networks and the default bridge): an endpoint added to or removed from a
//! container's record, and while it runs, an interface added to or removed from its
//! network namespace through the network's CNI chain; the isolation rules and the DNS
//! servers follow.

use std::sync::Arc;

use super::attach::{attach_one, detach_one, if_name_of};
use super::{firewall, Endpoint};
use crate::{blocking, put, Engine, EngineError};

/// What `connect` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connect {
    pub container: String,
    pub network: String,
    /// `--ip`; empty: any.
    pub ip: String,
    /// `--ip6`; empty: any (on a network with IPv6).
    pub ip6: String,
    /// `--alias`.
    pub aliases: Vec<String>,
}

fn running(record: &crate::record::ContainerRecord) -> bool {
    record.state.status.has_task()
}

/// Connects a container to a user network (attached at once when it runs).
pub async fn connect(engine: &Arc<Engine>, req: Connect) -> Result<(), EngineError> {
    let id = crate::lookup::resolve(&engine.store, crate::store::Kind::Container, &req.container)?;
    let _guard = engine.lock(&id).await;
    let d = Arc::clone(engine);
    blocking(move || connect_locked(&d, &id, &req)).await
}

fn connect_locked(engine: &Engine, id: &str, req: &Connect) -> Result<(), EngineError> {
    let mut record = crate::get(engine, id)?;
    let net = super::get(engine, &req.network)?.record;
    if net.driver != "bridge" {
        return Err(EngineError::Forbidden(
            "container cannot be disconnected from host network or connected to host network"
                .into(),
        ));
    }
    if net.builtin && (!req.ip.is_empty() || !req.ip6.is_empty()) {
        // The default bridge: addresses and aliases refused in dockerd's words.
        return Err(EngineError::Invalid(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    if net.builtin && !req.aliases.is_empty() {
        return Err(EngineError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    if record.networks.is_empty() && !super::attach::has_own_netns(engine, &record) {
        // Docker's words for a host, none or container: mode container.
        let none = record.request["HostConfig"]["NetworkMode"].as_str() == Some("none");
        return Err(EngineError::Forbidden(if none {
            "container cannot be connected to multiple networks with one of the networks in private (none) mode".into()
        } else {
            "container sharing network namespace with another container or host cannot be connected to any other network".into()
        }));
    }
    if record.networks.iter().any(|e| e.network_id == net.id) {
        return Err(EngineError::Forbidden(format!(
            "endpoint with name {} already exists in network {}",
            record.name.trim_start_matches('/'),
            net.name
        )));
    }
    if !req.ip.is_empty() {
        super::attach::check_ip(&net, &req.ip)?;
    }
    if !req.ip6.is_empty() {
        super::attach::check_ip6(&net, &req.ip6)?;
    }
    let taken: Vec<String> = record
        .networks
        .iter()
        .enumerate()
        .map(|(i, e)| if_name_of(i, e))
        .collect();
    let if_name = (0..)
        .map(|n| format!("eth{n}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_default();
    let mut ep = Endpoint {
        network_id: net.id.clone(),
        network_name: net.name.clone(),
        requested_ip: req.ip.clone(),
        requested_ip6: req.ip6.clone(),
        aliases: req.aliases.clone(),
        if_name,
        endpoint_id: crate::create::random_id(),
        ..Default::default()
    };
    if running(&record) {
        let index = record.networks.len();
        let name = record.name.clone();
        attach_one(engine, id, &name, index, &mut ep, Vec::new())?;
        record.networks.push(ep);
        if let Err(e) = put(engine, &record) {
            let _ = detach_one(engine, id, &record.networks[index].if_name);
            return Err(e);
        }
        firewall::sync(engine)?;
        super::dns::sync(engine, Some(&record))?;
    } else {
        record.networks.push(ep);
        put(engine, &record)?;
    }
    Ok(())
}

/// Disconnects a container from a network (detached at once when it runs). `force`
/// also removes an endpoint whose detach failed.
pub async fn disconnect(
    engine: &Arc<Engine>,
    container: &str,
    network: &str,
    force: bool,
) -> Result<(), EngineError> {
    let id = crate::lookup::resolve(&engine.store, crate::store::Kind::Container, container)?;
    let _guard = engine.lock(&id).await;
    let d = Arc::clone(engine);
    let network = network.to_string();
    blocking(move || disconnect_locked(&d, &id, &network, force)).await
}

fn disconnect_locked(
    engine: &Engine,
    id: &str,
    network: &str,
    force: bool,
) -> Result<(), EngineError> {
    let mut record = crate::get(engine, id)?;
    let net = super::get(engine, network)?.record;
    if net.driver != "bridge" {
        return Err(EngineError::Forbidden(
            "container cannot be disconnected from host network or connected to host network"
                .into(),
        ));
    }
    let name = record.name.trim_start_matches('/').to_string();
    let Some(index) = record.networks.iter().position(|e| e.network_id == net.id) else {
        return Err(EngineError::Forbidden(format!(
            "container {name} is not connected to network {}",
            net.name
        )));
    };
    if running(&record) {
        let if_name = if_name_of(index, &record.networks[index]);
        if let Err(e) = detach_one(engine, id, &if_name) {
            if !force {
                return Err(e);
            }
            tracing::warn!(container = %id, error = %e, "forced disconnect: detach failed");
        }
    }
    // The published ports go through the first endpoint: renumber the rest so their
    // interfaces keep their names.
    for (i, ep) in record.networks.iter_mut().enumerate() {
        ep.if_name = if_name_of(i, ep);
    }
    record.networks.remove(index);
    put(engine, &record)?;
    firewall::sync(engine)?;
    super::dns::sync(engine, Some(&record))
}
