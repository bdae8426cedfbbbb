//! `RUN --mount=type=bind|cache|tmpfs|secret|ssh,...`: the comma-separated fields of a
//! mount, checked as BuildKit checks them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub read_only: bool,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    pub size: Option<String>,
    pub env: Option<String>,
}

fn bool_value(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("invalid value for {key}: {v}")),
    }
}

/// Parses the value of one `--mount` flag.
pub fn parse_mount(spec: &str) -> Result<RunMount, String> {
    let mut kind = MountType::Bind;
    // The type decides the defaults, so find it first.
    for field in spec.split(',') {
        if let Some(t) = field.trim().strip_prefix("type=") {
            kind = match t.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => return Err(format!("unsupported mount type {t:?}")),
            };
        }
    }
    let mut m = RunMount {
        kind,
        target: None,
        source: None,
        from: None,
        read_only: matches!(kind, MountType::Bind | MountType::Secret | MountType::Ssh),
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    for field in spec.split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = || {
            value
                .map(str::to_string)
                .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        let number = |v: String| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("invalid value for {key}: {v}"))
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => m.target = Some(need()?),
            "source" | "src" => m.source = Some(need()?),
            "from" => m.from = Some(need()?),
            "readonly" | "ro" => m.read_only = bool_value(&key, value)?,
            "readwrite" | "rw" => m.read_only = !bool_value(&key, value)?,
            "required" => m.required = bool_value(&key, value)?,
            "id" => m.id = Some(need()?),
            "sharing" => {
                m.sharing = Some(match need()?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(format!("unsupported sharing value {other:?}")),
                })
            }
            "mode" => {
                let v = need()?;
                m.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| format!("invalid value for mode: {v}"))?,
                )
            }
            "uid" => m.uid = Some(number(need()?)?),
            "gid" => m.gid = Some(number(need()?)?),
            "size" if kind == MountType::Tmpfs => m.size = Some(need()?),
            "env" if kind == MountType::Secret => m.env = Some(need()?),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.is_none() && !matches!(kind, MountType::Secret | MountType::Ssh) {
        return Err(format!(
            "mount type {} requires a target",
            format!("{kind:?}").to_ascii_lowercase()
        ));
    }
    if m.sharing.is_some() && kind != MountType::Cache {
        return Err("sharing is only supported for cache mounts".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount() {
        let m = parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o700));
        assert_eq!(m.uid, Some(1));
        assert!(!m.read_only);
    }

    #[test]
    fn bind_is_read_only_by_default() {
        let m = parse_mount("target=/src,from=build,source=/out").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        assert_eq!(m.from.as_deref(), Some("build"));
        let m = parse_mount("type=bind,dst=/src,rw").unwrap();
        assert!(!m.read_only);
    }

    #[test]
    fn secret_and_tmpfs() {
        let m = parse_mount("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!(m.kind, MountType::Secret);
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = parse_mount("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size.as_deref(), Some("64m"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_mount("type=nfs,target=/x").unwrap_err(),
            "unsupported mount type \"nfs\""
        );
        assert_eq!(
            parse_mount("type=cache,target=/x,color=red").unwrap_err(),
            "unexpected key 'color' in 'color=red'"
        );
        assert_eq!(
            parse_mount("type=cache").unwrap_err(),
            "mount type cache requires a target"
        );
        assert_eq!(
            parse_mount("type=cache,target=/x,sharing=maybe").unwrap_err(),
            "unsupported sharing value \"maybe\""
        );
        assert!(parse_mount("type=bind,target=/x,size=1").is_err());
        assert!(parse_mount("type=cache,target=/x,mode=9").is_err());
    }
}
