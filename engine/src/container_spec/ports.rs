//! Exposed ports: the ports a container says it listens on, from its image's `EXPOSE`
//! and the config's (`--expose`), merged as Docker merges them.

use std::collections::BTreeMap;

use super::request::ImageDefaults;
use super::SpecError;

/// The protocols a port may name.
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// A port key (`80/tcp`, `53/udp`, `80`) as its number and protocol (`tcp` when the
/// key names none, as Docker reads it); `None` when it is not one.
pub fn parse(key: &str) -> Option<(u16, &str)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    if !PROTOCOLS.contains(&proto) || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((port.parse().ok()?, proto))
}

/// The container's `ExposedPorts` keys: the request's, then the image's the request
/// does not have (Docker's merge), in port order. A request key that is not
/// `port[/tcp|udp|sctp]` is refused; the image's are kept as the image has them.
pub fn exposed(requested: &[String], image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    for key in requested {
        if parse(key).is_none() {
            return Err(SpecError::ExposedPort(key.clone()));
        }
    }
    let mut all: BTreeMap<(u16, String), String> = BTreeMap::new();
    for key in requested
        .iter()
        .chain(image.exposed_ports.iter().flat_map(|p| p.keys()))
    {
        let sort = parse(key).map_or((0, key.clone()), |(p, proto)| (p, proto.to_string()));
        all.entry(sort).or_insert_with(|| key.clone());
    }
    Ok(all.into_values().collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ports(keys: &[&str]) -> Option<BTreeMap<String, serde_json::Value>> {
        Some(keys.iter().map(|k| (k.to_string(), json!({}))).collect())
    }

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn keys_parse_like_dockers_ports() {
        assert_eq!(parse("80/tcp"), Some((80, "tcp")));
        assert_eq!(parse("53/udp"), Some((53, "udp")));
        assert_eq!(parse("8080"), Some((8080, "tcp")));
        assert_eq!(parse("9/sctp"), Some((9, "sctp")));
        for bad in [
            "abc/tcp",
            "80/xyz",
            "70000/tcp",
            "80-81/tcp",
            "/tcp",
            "",
            "+80",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_request_and_the_image_merge() {
        let image = ImageDefaults {
            exposed_ports: ports(&["80/tcp", "53/udp"]),
            ..Default::default()
        };
        assert_eq!(
            exposed(&keys(&["9000/tcp", "80/tcp"]), &image).ok(),
            Some(vec!["53/udp".into(), "80/tcp".into(), "9000/tcp".into()])
        );
        assert_eq!(exposed(&[], &ImageDefaults::default()).ok(), Some(vec![]));
        let err = exposed(&keys(&["80-81/tcp"]), &image)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("\"80-81/tcp\"")),
            "{err:?}"
        );
    }
}
