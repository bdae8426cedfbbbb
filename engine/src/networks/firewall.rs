//! berth's own nftables table, one per engine (`inet berth_<hash of the root>`), so
//! daemons on one host never touch each other's rules nor anyone else's: a forward
//! chain at priority -1 that drops traffic between two berth networks' bridges (each
//! network is isolated from the others, as Docker isolates its bridges) and any
//! traffic leaving or entering an `--internal` network, and a postrouting nat chain
//! that masquerades what each non-internal network (the default bridge too) sends
//! outside its subnet (and its IPv6 subnet; the interface rules of the inet table
//! cover both families): one rule per network instead of the CNI bridge plugin's
//! per-container chain (`ipMasq`), whose `iptables` runs cost every container start and
//! stop tens of milliseconds. It holds rules only for the networks whose bridge exists,
//! and goes when there are none. The last script applied is remembered, so a sync
//! that changes nothing (every container start and stop on an existing network) runs
//! no `nft` at all; it only asks the kernel over netlink (`probe.rs`) whether the
//! table is still there with its rules, and applies the script again when someone
//! deleted or flushed it.

mod probe;

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
        .filter(|r| r.driver == "bridge" && bridge_exists(&r.bridge))
        .collect();
    let name = table(engine);
    let script = if live.is_empty() {
        String::new()
    } else {
        ruleset(&name, &live)
    };
    let mut applied = engine
        .firewall_applied
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if applied.as_deref() == Some(script.as_str()) {
        if script.is_empty() {
            return Ok(());
        }
        // Unchanged since the last sync: still in the kernel as it was applied?
        let want = rule_count(&script);
        match probe::inet_table_rules(&name) {
            Ok(Some(n)) if n == want => return Ok(()),
            Ok(found) => tracing::warn!(
                table = %name,
                rules = ?found,
                want,
                "berth's nft table was deleted or changed outside berth; applying it again"
            ),
            Err(e) => {
                tracing::debug!(table = %name, "asking the kernel for the nft table: {e}; applying it again")
            }
        }
    }
    if script.is_empty() {
        if table_exists(&name) {
            nft(&format!("delete table inet {name}\n"))?;
        }
    } else {
        nft(&script)?;
    }
    *applied = Some(script);
    Ok(())
}

pub fn bridge_exists(bridge: &str) -> bool {
    !bridge.is_empty() && std::path::Path::new("/sys/class/net").join(bridge).exists()
}

/// Whether the kernel holds table `inet <name>` (asked over netlink; `nft list`
/// when that fails).
fn table_exists(name: &str) -> bool {
    match probe::inet_table_rules(name) {
        Ok(found) => found.is_some(),
        Err(_) => Command::new("nft")
            .args(["list", "table", "inet", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// How many rules `ruleset`'s script holds (its lines in a chain other than the
/// chain's `type` line).
fn rule_count(script: &str) -> usize {
    script
        .lines()
        .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with("type "))
        .count()
}

/// The whole table, replaced in one transaction.
fn ruleset(name: &str, live: &[NetworkRecord]) -> String {
    let mut rules = Vec::new();
    let mut masq = Vec::new();
    for n in live.iter().filter(|n| !n.internal && !n.subnet.is_empty()) {
        masq.push(format!(
            "ip saddr {s} ip daddr != {s} ip daddr != 224.0.0.0/4 masquerade",
            s = n.subnet
        ));
        if !n.subnet6.is_empty() {
            masq.push(format!(
                "ip6 saddr {s} ip6 daddr != {s} ip6 daddr != ff00::/8 ip6 daddr != fe80::/10 masquerade",
                s = n.subnet6
            ));
        }
    }
    // Isolation between user networks (the default bridge is not isolated, as before).
    let user: Vec<&NetworkRecord> = live.iter().filter(|n| !n.builtin).collect();
    for n in &user {
        let others: Vec<String> = user
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
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for r in masq {
        s.push_str(&format!("    {r}\n"));
    }
    s.push_str("  }\n}\n");
    s
}

/// Applies `script` in one `nft -f` transaction. One that fails for a reason that
/// passes (the kernel busy with another process's transaction) is tried again twice.
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
    let mut attempt = 0;
    loop {
        let out = run().map_err(EngineError::internal("running nft"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let passing = [
            "Interrupted system call",
            "Device or resource busy",
            "Resource temporarily unavailable",
        ]
        .iter()
        .any(|m| err.contains(m));
        attempt += 1;
        if !passing || attempt == 3 {
            return Err(EngineError::broken("updating berth's nftables table", err));
        }
        tracing::debug!("nft failed, trying again: {err}");
        std::thread::sleep(std::time::Duration::from_millis(50));
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
            ..Default::default()
        }
    }

    #[test]
    fn bridges_isolated_and_internal_closed() {
        let mut b1 = net("b1", false);
        b1.subnet = "10.1.0.0/16".into();
        b1.subnet6 = "fd00:1::/64".into();
        let mut b2 = net("b2", true);
        b2.subnet = "10.2.0.0/16".into();
        b2.subnet6 = "fd00:2::/64".into();
        let mut default = net("berth-br0", false);
        default.builtin = true;
        default.subnet = "172.17.0.0/16".into();
        let s = ruleset("berth_t", &[b1, b2, default]);
        assert!(s.starts_with("table inet berth_t {}\ndelete table inet berth_t\n"));
        assert!(s.contains("iifname \"b1\" oifname { \"b2\" } drop"));
        assert!(s.contains("iifname \"b2\" oifname { \"b1\" } drop"));
        assert!(s.contains("iifname \"b2\" oifname != \"b2\" drop"));
        assert!(s.contains("oifname \"b2\" iifname != \"b2\" drop"));
        assert!(!s.contains("oifname != \"b1\""));
        // The default bridge is masqueraded but not isolated; an internal one is not
        // masqueraded.
        assert!(!s.contains("\"berth-br0\""));
        assert!(s.contains(
            "ip saddr 10.1.0.0/16 ip daddr != 10.1.0.0/16 ip daddr != 224.0.0.0/4 masquerade"
        ));
        assert!(s.contains("ip saddr 172.17.0.0/16 ip daddr != 172.17.0.0/16"));
        assert!(!s.contains("ip saddr 10.2.0.0/16"));
        // IPv6 subnets alike; the interface rules above cover both families.
        assert!(s.contains("ip6 saddr fd00:1::/64 ip6 daddr != fd00:1::/64"));
        assert!(!s.contains("fd00:2::"));
        // Four isolation rules and three masquerades (b1's IPv4 and IPv6, the default
        // bridge's).
        assert_eq!(rule_count(&s), 7);
    }
}
