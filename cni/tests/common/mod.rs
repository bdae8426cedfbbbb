//! Shared set-up for the CNI integration tests: every test gets its own conf, cache,
//! state and host-local dirs, its own bridge name and its own 10.250.N.0/24 subnet, so the
//! tests run in parallel without touching each other or the host's networks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_cni::{Cni, CniOptions, DefaultNetwork, Netns, PodNetwork};

pub struct TestNet {
    pub n: u8,
    pub bridge: String,
    pub network: String,
    pub dir: tempfile::TempDir,
    pub cni: Cni,
}

impl TestNet {
    /// A test network number `n` (1..=254): bridge `bcni<n>`, subnet 10.250.<n>.0/24,
    /// written as berth's default network into an empty conf dir.
    pub fn new(n: u8) -> Result<TestNet> {
        berth_fixtures::require_root();
        let dir = tempfile::tempdir()?;
        let bridge = format!("bcni{n}");
        // A leftover from a crashed earlier run of this same test.
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        let network = format!("berth-test-{n}");
        let opts = Self::options_in(dir.path(), n);
        Ok(TestNet {
            n,
            bridge,
            network,
            cni: Cni::new(opts),
            dir,
        })
    }

    pub fn options_in(dir: &Path, n: u8) -> CniOptions {
        CniOptions {
            conf_dir: dir.join("net.d"),
            bin_dirs: vec![dir.join("bin"), "/usr/lib/cni".into()],
            cache_dir: dir.join("cache"),
            default_network: Some(DefaultNetwork {
                name: format!("berth-test-{n}"),
                bridge: format!("bcni{n}"),
                subnet: format!("10.250.{n}.0/24"),
                ipam_data_dir: Some(dir.join("ipam")),
            }),
            plugin_timeout: Duration::from_secs(30),
            if_name: "eth0".into(),
        }
    }

    /// A second `Cni` over the same dirs, as a restarted daemon would build.
    pub fn fresh_cni(&self) -> Cni {
        Cni::new(Self::options_in(self.dir.path(), self.n))
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    pub fn netns_dir(&self) -> PathBuf {
        self.dir.path().join("netns")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam").join(&self.network)
    }
    pub fn subnet_prefix(&self) -> String {
        format!("10.250.{}.", self.n)
    }
    pub fn gateway(&self) -> String {
        format!("10.250.{}.1", self.n)
    }

    /// A pod with a fresh netns.
    pub fn pod(&self, name: &str) -> Result<(Netns, PodNetwork)> {
        let ns = Netns::create(&self.netns_dir(), name)?;
        let pod = PodNetwork {
            id: name.to_string(),
            namespace: "testns".into(),
            name: format!("pod-{name}"),
            uid: format!("uid-{name}"),
            netns: ns.path().to_path_buf(),
            ..Default::default()
        };
        Ok((ns, pod))
    }

    /// IP reservation files host-local holds for this network.
    pub fn ipam_reservations(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.ipam_dir()) else {
            return Ok(out);
        };
        for e in rd {
            let name = e?.file_name().to_string_lossy().to_string();
            if name.starts_with("10.") {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Links enslaved to this test's bridge (the host ends of pod veths).
    pub fn bridge_ports(&self) -> Result<Vec<String>> {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// iptables rules (v4, nat + filter, whichever backend `iptables` uses) that mention
    /// this test's subnet or network name.
    pub fn firewall_rules(&self) -> Result<Vec<String>> {
        let out = Command::new("iptables-save")
            .output()
            .context("iptables-save")?;
        if !out.status.success() {
            bail!(
                "iptables-save failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let quoted_name = format!("\\\"{}\\\"", self.network);
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&self.subnet_prefix()) || l.contains(&quoted_name))
            .map(str::to_string)
            .collect())
    }

    pub fn netns_left(&self) -> Result<Vec<String>> {
        let Ok(rd) = std::fs::read_dir(self.netns_dir()) else {
            return Ok(Vec::new());
        };
        Ok(rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect())
    }

    pub fn cache_left(&self) -> Result<Vec<String>> {
        let Ok(rd) = std::fs::read_dir(self.dir.path().join("cache/results")) else {
            return Ok(Vec::new());
        };
        Ok(rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect())
    }

    /// Asserts nothing of this test's pods is left on the host.
    pub fn assert_clean(&self) -> Result<()> {
        let ports = self.bridge_ports()?;
        let res = self.ipam_reservations()?;
        let rules = self.firewall_rules()?;
        let ns = self.netns_left()?;
        let cache = self.cache_left()?;
        if !(ports.is_empty()
            && res.is_empty()
            && rules.is_empty()
            && ns.is_empty()
            && cache.is_empty())
        {
            bail!("leftovers: veths {ports:?}, IPAM {res:?}, rules {rules:?}, netns {ns:?}, cache {cache:?}");
        }
        Ok(())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Best effort after a failed test: detach whatever is cached, drop namespaces,
        // then the bridge.
        if let Ok(list) = self.cni.cached_attachments() {
            for a in list {
                let pod = PodNetwork {
                    id: a.pod_id,
                    ..Default::default()
                };
                let _ = self.cni.teardown(&pod);
            }
        }
        if let Ok(names) = self.netns_left() {
            for n in names {
                let _ = Netns::at(self.netns_dir().join(n)).remove();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// Runs a command inside a namespace and returns stdout, failing with its stderr.
pub fn run_in(ns: &Netns, program: &str, args: &[&str]) -> Result<String> {
    let out = ns
        .command(program)?
        .args(args)
        .output()
        .with_context(|| format!("running {program} in {}", ns.path().display()))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} in {} failed: {}{}",
            ns.path().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A CNI plugin written for the tests: records its stdin and environment per command
/// into `<record_dir>/<COMMAND>.json` and passes `prevResult` through, as chained
/// plugins do. `sleep` seconds delay its ADD (for timeout tests); `fail` makes ADD return a CNI
/// error result; a file `fail-next-del` in the record dir makes the next DEL fail once,
/// `status-fail` makes STATUS report the plugin not available.
pub fn write_recorder_plugin(
    bin_dir: &Path,
    name: &str,
    record_dir: &Path,
    sleep: u32,
    fail: bool,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin_dir)?;
    std::fs::create_dir_all(record_dir)?;
    let script = format!(
        r#"#!/usr/bin/python3
import json, os, sys, time
cmd = os.environ.get("CNI_COMMAND", "")
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}))
    sys.exit(0)
conf = json.load(sys.stdin)
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
# Written whole, then renamed: a test that waits for the file reads it complete.
path = os.path.join({record:?}, cmd + ".json")
with open(path + ".part", "w") as f:
    json.dump({{"conf": conf, "env": env, "pid": os.getpid()}}, f)
os.replace(path + ".part", path)
if cmd == "STATUS" and os.path.exists(os.path.join({record:?}, "status-fail")):
    print(json.dumps({{"cniVersion": conf.get("cniVersion"), "code": 50, "msg": "pool exhausted", "details": ""}}))
    sys.exit(1)
if cmd == "ADD":
    time.sleep({sleep})
marker = os.path.join({record:?}, "fail-next-del")
if cmd == "DEL" and os.path.exists(marker):
    os.remove(marker)
    print(json.dumps({{"cniVersion": conf.get("cniVersion"), "code": 11, "msg": "DEL refused once", "details": "try again"}}))
    sys.exit(1)
if cmd == "ADD" and {fail}:
    print(json.dumps({{"cniVersion": conf.get("cniVersion"), "code": 11, "msg": "recorder refuses", "details": "asked to fail"}}))
    sys.exit(1)
if cmd == "ADD":
    print(json.dumps(conf.get("prevResult", {{"cniVersion": conf.get("cniVersion")}})))
"#,
        record = record_dir.display().to_string(),
        fail = if fail { "True" } else { "False" },
    );
    let path = bin_dir.join(name);
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
