//! The network berth writes when the conf dir holds no config at all, so a fresh node has
//! pod networking with no other step: a bridge with host-local IPAM, masquerading, the
//! firewall plugin (accepts forwarded pod traffic even under a DROP FORWARD policy) and
//! `portmap` for hostPorts. The pod's `lo` is brought up by berth itself.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the written default config; sorts early so it wins once written.
pub const DEFAULT_CONFLIST: &str = "10-berth.conflist";

/// Parameters of the default network; tests change the bridge and subnet to stay isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    pub name: String,
    pub bridge: String,
    /// IPv4 subnet in CIDR notation.
    pub subnet: String,
    /// host-local's reservation dir; `None` keeps its default (`/var/lib/cni/networks`).
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for DefaultNetwork {
    fn default() -> Self {
        DefaultNetwork {
            name: "berth".into(),
            bridge: "berth0".into(),
            subnet: "10.88.0.0/16".into(),
            ipam_data_dir: None,
        }
    }
}

impl DefaultNetwork {
    pub fn conflist(&self) -> serde_json::Value {
        let mut ipam = serde_json::json!({
            "type": "host-local",
            "ranges": [[{"subnet": self.subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        });
        if let (Some(dir), Some(obj)) = (&self.ipam_data_dir, ipam.as_object_mut()) {
            obj.insert("dataDir".into(), dir.display().to_string().into());
        }
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                {"type": "firewall", "backend": "iptables"},
                {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
            ],
        })
    }

    /// Writes `<conf_dir>/10-berth.conflist` atomically and returns its path.
    pub fn write(&self, conf_dir: &Path) -> io::Result<PathBuf> {
        fs::create_dir_all(conf_dir)?;
        let path = conf_dir.join(DEFAULT_CONFLIST);
        let tmp = conf_dir.join(format!(".{DEFAULT_CONFLIST}.tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&self.conflist()).map_err(io::Error::other)?;
        let res = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|()| path)
    }
}
