//! Published ports of a container on a bridge network: what `-p`/`-P` asked for,
//! checked at create, given host ports at each start (a random free one when none or
//! a range was asked for), handed to the CNI `portmap` plugin (DNAT from the host's
//! addresses and its loopback), and forgotten at stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::config::NetworkAttachment;
use crate::record::ContainerRecord;
use crate::EngineError;

/// One published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Empty: every host address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
    /// As asked: empty (random), `8080`, or a range `8000-8010`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_port_spec: String,
    /// The host port while the container runs; 0 when stopped.
    #[serde(default)]
    pub host_port: u16,
}

impl PortBinding {
    /// `tcp`/`udp` key as Docker shows it: `80/tcp`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }
}

/// The bindings a create asks for: `-p` entries, and with `-P` every exposed port that
/// has none. Malformed entries and SCTP are refused by name.
pub fn requested(
    n: &NetworkAttachment,
    exposed: &[String],
) -> Result<Vec<PortBinding>, EngineError> {
    let mut out = Vec::new();
    for p in &n.published_ports {
        let (port, proto) =
            crate::container_spec::ports::parse(&p.container_port).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "invalid port specification: {:?}",
                    p.container_port
                ))
            })?;
        if proto == "sctp" {
            return Err(EngineError::Invalid(format!(
                "publishing SCTP port {} is not supported by berth yet",
                p.container_port
            )));
        }
        if p.host_ip.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(EngineError::Invalid(format!(
                "publishing port {} on the IPv6 host address [{}] is not supported by berth yet (IPv4 host addresses only)",
                p.container_port, p.host_ip
            )));
        }
        if !p.host_ip.is_empty() && p.host_ip.parse::<Ipv4Addr>().is_err() {
            return Err(EngineError::Invalid(format!(
                "invalid IP address in port binding {}: {:?} (IPv4 only)",
                p.container_port, p.host_ip
            )));
        }
        range_of(&p.host_port)?;
        out.push(PortBinding {
            container_port: port,
            protocol: proto.to_string(),
            host_ip: if p.host_ip == "0.0.0.0" {
                String::new()
            } else {
                p.host_ip.clone()
            },
            host_port_spec: p.host_port.clone(),
            host_port: 0,
        });
    }
    if n.publish_all {
        for key in exposed {
            let Some((port, proto)) = crate::container_spec::ports::parse(key) else {
                continue;
            };
            if proto == "sctp"
                || out
                    .iter()
                    .any(|b| b.container_port == port && b.protocol == proto)
            {
                continue;
            }
            out.push(PortBinding {
                container_port: port,
                protocol: proto.to_string(),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

/// `""` → any port; `8080` → that one; `8000-8010` → the first free of them.
fn range_of(spec: &str) -> Result<Option<(u16, u16)>, EngineError> {
    if spec.is_empty() {
        return Ok(None);
    }
    let bad = || EngineError::Invalid(format!("invalid hostPort: {spec}"));
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// Gives every binding of a starting container its host port: taken by no other
/// running container's binding and free on the host. Docker's error when an asked
/// port is not.
pub fn assign(record: &mut ContainerRecord, others: &[ContainerRecord]) -> Result<(), EngineError> {
    let taken: Vec<&PortBinding> = others
        .iter()
        .filter(|o| o.id != record.id)
        .flat_map(|o| o.ports.iter())
        .filter(|b| b.host_port != 0)
        .collect();
    let mut mine: Vec<PortBinding> = Vec::new();
    for b in &mut record.ports {
        let clash = |port: u16| {
            taken
                .iter()
                .chain(mine.iter().collect::<Vec<_>>().iter())
                .any(|t| {
                    t.host_port == port
                        && t.protocol == b.protocol
                        && (t.host_ip.is_empty() || b.host_ip.is_empty() || t.host_ip == b.host_ip)
                })
        };
        let ip: IpAddr = b
            .host_ip
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port = match range_of(&b.host_port_spec)? {
            None => (0..64)
                .find_map(|_| free_port(ip, &b.protocol).filter(|p| !clash(*p)))
                .ok_or_else(|| EngineError::Invalid("no free host port to publish on".into()))?,
            Some((lo, hi)) => (lo..=hi)
                .find(|p| !clash(*p) && bindable(ip, *p, &b.protocol))
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "Bind for {}:{} failed: port is already allocated",
                        if b.host_ip.is_empty() {
                            "0.0.0.0"
                        } else {
                            &b.host_ip
                        },
                        b.host_port_spec
                    ))
                })?,
        };
        b.host_port = port;
        mine.push(b.clone());
    }
    Ok(())
}

fn free_port(ip: IpAddr, proto: &str) -> Option<u16> {
    let addr = SocketAddr::new(ip, 0);
    let port = if proto == "udp" {
        UdpSocket::bind(addr).ok()?.local_addr().ok()?.port()
    } else {
        TcpListener::bind(addr).ok()?.local_addr().ok()?.port()
    };
    Some(port)
}

/// Whether a host process could listen there now (one that does would shadow the
/// DNAT for connections it accepts first, so berth does not publish over it).
fn bindable(ip: IpAddr, port: u16, proto: &str) -> bool {
    let addr = SocketAddr::new(ip, port);
    if proto == "udp" {
        UdpSocket::bind(addr).is_ok()
    } else {
        TcpListener::bind(addr).is_ok()
    }
}

/// The `portMappings` for CNI.
pub fn mappings(record: &ContainerRecord) -> Vec<berth_cni::PortMapping> {
    record
        .ports
        .iter()
        .filter(|b| b.host_port != 0)
        .map(|b| berth_cni::PortMapping {
            host_port: b.host_port,
            container_port: b.container_port,
            protocol: b.protocol.clone(),
            host_ip: b.host_ip.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PublishedPort;

    fn p(c: &str, ip: &str, h: &str) -> PublishedPort {
        PublishedPort {
            container_port: c.into(),
            host_ip: ip.into(),
            host_port: h.into(),
        }
    }

    #[test]
    fn requests_and_publish_all() {
        let n = NetworkAttachment {
            published_ports: vec![p("80/tcp", "127.0.0.1", "18080"), p("53/udp", "", "")],
            publish_all: true,
            ..Default::default()
        };
        let b = requested(&n, &["80/tcp".into(), "8080/tcp".into()]).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            (b[0].host_ip.as_str(), b[0].host_port_spec.as_str()),
            ("127.0.0.1", "18080")
        );
        assert_eq!(b[1].key(), "53/udp");
        assert_eq!(
            (b[2].key(), b[2].host_port_spec.as_str()),
            ("8080/tcp".to_string(), "")
        );
        for (bad, want) in [
            (p("80/sctp", "", ""), "SCTP"),
            (p("x/tcp", "", ""), "invalid port"),
            (p("80/tcp", "::1", ""), "IPv6 host address [::1]"),
            (p("80/tcp", "", "9-1"), "invalid hostPort"),
        ] {
            let n = NetworkAttachment {
                published_ports: vec![bad],
                ..Default::default()
            };
            let e = requested(&n, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
