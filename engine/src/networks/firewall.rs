//! berth's own nftables table, one per engine (`inet berth_<hash of the root>`), so
//! daemons on one host never touch each other's rules nor anyone else's: a forward
//! chain at priority -1 that drops traffic between two berth networks' bridges (each
//! network is isolated from the others, as Docker isolates its bridges) and any
//! traffic leaving or entering an `--internal` network. It holds rules only for the
//! networks whose bridge exists, and goes when there are none.

use std::io::Write;
use std::process::{Command, Stdio};

use super::NetworkRecord;
use crate::{Engine, EngineError};

/// The engine's table name: stable for a root, different between roots.
pub fn table(engine: &Engine) -> String {
    // FNV-1a of the root path.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in engine.root().as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("berth_{:012x}", h & 0xffff_ffff_ffff)
}

/// Brings the table in line with the networks whose bridges exist.
pub fn sync(engine: &Engine) -> Result<(), EngineError> {
    let _guard = engine.networks_lock();
    sync_locked(engine)
}

/// `sync` with the networks' lock held.
pub fn sync_locked(engine: &Engine) -> Result<(), EngineError> {
    let live: Vec<NetworkRecord> = super::records(engine)?
        .into_iter()
        .filter(|r| !r.builtin && bridge_exists(&r.bridge))
        .collect();
    let name = table(engine);
    let script = if live.is_empty() {
        if !table_exists(&name) {
            return Ok(());
        }
        format!("delete table inet {name}\n")
    } else {
        ruleset(&name, &live)
    };
    nft(&script)
}

pub fn bridge_exists(bridge: &str) -> bool {
    !bridge.is_empty() && std::path::Path::new("/sys/class/net").join(bridge).exists()
}

fn table_exists(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The whole table, replaced in one transaction.
fn ruleset(name: &str, live: &[NetworkRecord]) -> String {
    let mut rules = Vec::new();
    for n in live {
        let others: Vec<String> = live
            .iter()
            .filter(|o| o.bridge != n.bridge)
            .map(|o| format!("\"{}\"", o.bridge))
            .collect();
        if !others.is_empty() {
            rules.push(format!(
                "iifname \"{}\" oifname {{ {} }} drop",
                n.bridge,
                others.join(", ")
            ));
        }
        if n.internal {
            rules.push(format!(
                "iifname \"{b}\" oifname != \"{b}\" drop",
                b = n.bridge
            ));
            rules.push(format!(
                "oifname \"{b}\" iifname != \"{b}\" drop",
                b = n.bridge
            ));
        }
    }
    let mut s = format!("table inet {name} {{}}\ndelete table inet {name}\n");
    s.push_str(&format!(
        "table inet {name} {{\n  chain forward {{\n    type filter hook forward priority -1; policy accept;\n"
    ));
    for r in rules {
        s.push_str(&format!("    {r}\n"));
    }
    s.push_str("  }\n}\n");
    s
}

fn nft(script: &str) -> Result<(), EngineError> {
    let run = || -> std::io::Result<std::process::Output> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        child.wait_with_output()
    };
    let out = run().map_err(EngineError::internal("running nft"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EngineError::broken(
            "updating berth's nftables table",
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(bridge: &str, internal: bool) -> NetworkRecord {
        NetworkRecord {
            version: 1,
            id: "x".repeat(64),
            name: bridge.into(),
            driver: "bridge".into(),
            created: String::new(),
            subnet: String::new(),
            gateway: String::new(),
            ip_range: None,
            internal,
            attachable: false,
            bridge: bridge.into(),
            labels: Default::default(),
            options: Default::default(),
            builtin: false,
        }
    }

    #[test]
    fn bridges_isolated_and_internal_closed() {
        let s = ruleset("berth_t", &[net("b1", false), net("b2", true)]);
        assert!(s.starts_with("table inet berth_t {}\ndelete table inet berth_t\n"));
        assert!(s.contains("iifname \"b1\" oifname { \"b2\" } drop"));
        assert!(s.contains("iifname \"b2\" oifname { \"b1\" } drop"));
        assert!(s.contains("iifname \"b2\" oifname != \"b2\" drop"));
        assert!(s.contains("oifname \"b2\" iifname != \"b2\" drop"));
        assert!(!s.contains("oifname != \"b1\""));
    }
}
