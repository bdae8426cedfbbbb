//! `-v`/`Binds` and `--tmpfs` as OCI mounts.

use serde_json::{json, Value};

use super::SpecError;

/// `host:container[:opts]` binds. Named volumes arrive with the volumes issue; until
/// then they are refused by name rather than silently made anonymous.
pub fn binds(binds: &[String]) -> Result<Vec<Value>, SpecError> {
    let mut out = Vec::new();
    for bind in binds {
        let parts: Vec<&str> = bind.split(':').collect();
        let (source, destination, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => {
                return Err(SpecError::Mount(format!(
                    "invalid bind {bind:?}: expected source:destination[:options]"
                )))
            }
        };
        if !source.starts_with('/') {
            return Err(SpecError::Mount(format!(
                "bind {bind:?}: named volumes are not supported yet; use an absolute host path"
            )));
        }
        if !destination.starts_with('/') || destination.split('/').any(|c| c == "..") {
            return Err(SpecError::Mount(format!(
                "bind {bind:?}: the destination must be an absolute path without '..'"
            )));
        }
        if !std::path::Path::new(source).exists() {
            return Err(SpecError::Mount(format!(
                "bind {bind:?}: source path {source} does not exist"
            )));
        }
        let mut options = vec!["rbind".to_string()];
        let mut propagation = "rprivate";
        let mut mode = "rw";
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" | "rw" => mode = opt,
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    propagation = opt
                }
                "z" | "Z" | "nocopy" => {}
                other => {
                    return Err(SpecError::Mount(format!(
                        "bind {bind:?}: invalid option {other:?}"
                    )))
                }
            }
        }
        options.push(mode.to_string());
        options.push(propagation.to_string());
        out.push(json!({"destination": destination, "type": "bind", "source": source, "options": options}));
    }
    Ok(out)
}

/// `--tmpfs /path:opts`: noexec, nosuid, nodev unless the options say otherwise.
pub fn tmpfs(entries: impl Iterator<Item = (String, String)>) -> Result<Vec<Value>, SpecError> {
    let mut out = Vec::new();
    for (destination, opts) in entries {
        if !destination.starts_with('/') {
            return Err(SpecError::Mount(format!(
                "tmpfs {destination:?}: the path must be absolute"
            )));
        }
        let mut options = vec![
            "noexec".to_string(),
            "nosuid".to_string(),
            "nodev".to_string(),
        ];
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let flip = match opt {
                "exec" => Some("noexec"),
                "suid" => Some("nosuid"),
                "dev" => Some("nodev"),
                _ => None,
            };
            match flip {
                Some(off) => options.retain(|o| o != off),
                None => options.push(opt.to_string()),
            }
        }
        out.push(json!({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options}));
    }
    Ok(out)
}
