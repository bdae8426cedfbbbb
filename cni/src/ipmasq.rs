//! Removes the masquerade rules of the `bridge` plugin when its DEL could not.
//!
//! The bridge plugin (containernetworking-plugins ≤ 1.x) learns which addresses to
//! un-masquerade from the container's interface, so when the netns or the pod's
//! interface is already gone its DEL returns success and leaves the per-container `nat`
//! chain and `POSTROUTING` jump behind. berth knows the addresses from its result cache and removes those rules
//! itself, naming them the way the plugin does: chain `CNI-` + sha512(network + id) in hex
//! (28 characters in all), comment `name: "<network>" id: "<id>"`. Each step tolerates
//! the rule or chain being absent, so this is idempotent.

use std::net::IpAddr;
use std::process::Command;

use sha2::{Digest, Sha512};

pub fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let mut chain = format!("CNI-{}", hex::encode(digest));
    chain.truncate(28);
    chain
}

pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Go's `%q` for the strings that can reach here (validated ids and network names).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Deletes the POSTROUTING jumps for `ips` and the container's chain; returns what failed.
pub fn teardown(network: &str, container_id: &str, ips: &[IpAddr]) -> Result<(), String> {
    let chain = chain_name(network, container_id);
    let comment = comment(network, container_id);
    let mut errors = Vec::new();
    for (tool, v6) in [("iptables", false), ("ip6tables", true)] {
        let mine: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv6() == v6).collect();
        if mine.is_empty() {
            continue;
        }
        // The chain exists only while some rule was left; that is the rare case.
        if ipt(tool, &["-t", "nat", "-S", &chain]).is_err() {
            continue;
        }
        for ip in mine {
            let src = ip.to_string();
            // Absent rules make -D fail; that is the state we want, so ignore it.
            let _ = ipt(
                tool,
                &[
                    "-t",
                    "nat",
                    "-D",
                    "POSTROUTING",
                    "-s",
                    &src,
                    "-j",
                    &chain,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                ],
            );
        }
        if let Err(e) = ipt(tool, &["-t", "nat", "-F", &chain]) {
            errors.push(e);
        }
        if let Err(e) = ipt(tool, &["-t", "nat", "-X", &chain]) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn ipt(tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_the_plugin() {
        let c = chain_name("net", "abc");
        assert!(c.starts_with("CNI-"));
        assert_eq!(c.len(), 28);
        assert_eq!(comment("net", "abc"), "name: \"net\" id: \"abc\"");
        // As seen in iptables-save after the Debian bridge plugin's ADD.
        assert_eq!(
            chain_name("berth-test-11", "b11"),
            "CNI-77cee0267d29e2300c265a7c"
        );
    }
}
