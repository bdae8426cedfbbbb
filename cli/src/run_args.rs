//! `berth run` / `berth create` flags, turned into the Docker API's create request
//! exactly as the docker CLI builds it, so berthd sees the same body from both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

/// Errors in `run`/`create` flags, each naming the flag and the value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlagError {
    #[error("invalid argument {value:?} for \"{flag}\" flag: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("Conflicting options: {0}")]
    Conflict(&'static str),
    #[error("reading --env-file {path}: {why}")]
    EnvFile { path: PathBuf, why: String },
    #[error("opening seccomp profile ({path}) failed: {why}")]
    SeccompFile { path: PathBuf, why: String },
    #[error("{0}")]
    Health(String),
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> FlagError {
    FlagError::Invalid {
        flag,
        value: value.to_string(),
        why: why.into(),
    }
}

/// `HostConfig.PortBindings`: `"80/tcp"` → `[{"HostIp", "HostPort"}]`.
type PortBindings = BTreeMap<String, Vec<Value>>;

/// The flags `docker create` and `docker run` share.
#[derive(Args, Debug, Default, Clone)]
pub struct CreateFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this shell).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Bind mount a volume (host-path:container-path[:ro], name:path, or path).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs directory (path[:options]).
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s) (name[:ro|rw]).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long = "cpus")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Runtime to use for this container (a name from berthd's [runtimes]).
    #[arg(long = "runtime")]
    pub runtime: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long = "entrypoint")]
    pub entrypoint: Option<String>,
    /// Set metadata on a container (KEY=VALUE).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long = "restart")]
    pub restart: Option<String>,
    /// Automatically remove the container when it exits.
    #[arg(long = "rm")]
    pub rm: bool,
    /// Pull the image before creating: "missing" (when it is not here), "always",
    /// "never".
    #[arg(long = "pull", default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Container host name.
    #[arg(long = "hostname")]
    pub hostname: Option<String>,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto]).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Connect the container to a network.
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// IPv4 address (e.g., 172.30.100.104) on the user network.
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Security options (seccomp=unconfined|FILE, no-new-privileges).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Logging driver for the container (json-file, local, none).
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3, compress=true).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Add a host device to the container (host[:container][:rwm]).
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Ulimit options (name=soft[:hard], -1 for unlimited).
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Disable the OOM killer (cgroup v1 hosts).
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Add additional groups to join (gid or name).
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long = "init")]
    pub init: bool,
    #[command(flatten)]
    pub health: crate::health_args::HealthFlags,
    /// Attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR, and STDIN with -i).
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
}

impl CreateFlags {
    /// The body of `POST /containers/create` for `image` and `cmd`. `detach` is
    /// `run -d`: a detached run attaches no stream. `lookup_env` resolves `-e KEY`.
    pub fn to_create_body(
        &self,
        image: &str,
        cmd: &[String],
        detach: bool,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Value, FlagError> {
        if self.rm && self.restart.as_deref().is_some_and(|r| r != "no") {
            return Err(FlagError::Conflict("--restart and --rm"));
        }
        let env = collect_env(&self.env, &self.env_file, lookup_env)?;
        let (binds, volumes) = self.split_volumes()?;
        let (exposed, bindings) = self.ports()?;
        let (attach_stdin, attach_stdout, attach_stderr) = if detach {
            (false, false, false)
        } else {
            self.attached_streams()?
        };
        let mut labels = Map::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), json!(v));
        }
        let mut tmpfs = Map::new();
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            if !path.starts_with('/') {
                return Err(invalid("--tmpfs", t, "the mount path must be absolute"));
            }
            tmpfs.insert(path.to_string(), json!(opts));
        }
        let entrypoint = self.entrypoint.as_ref().map(|e| json!([e]));
        let mut log_opts = Map::new();
        for o in &self.log_opt {
            let Some((k, v)) = o.split_once('=') else {
                return Err(invalid("--log-opt", o, "invalid key value pair format"));
            };
            log_opts.insert(k.to_string(), json!(v));
        }
        let mut host_config = json!({
            // As docker sends it: an empty Type takes the daemon's default driver.
            "LogConfig": {"Type": self.log_driver.as_deref().unwrap_or(""), "Config": log_opts},
            "Binds": (!binds.is_empty()).then_some(binds),
            "NetworkMode": self.network.as_deref().unwrap_or("default"),
            "PortBindings": bindings,
            "PublishAllPorts": self.publish_all,
            "Dns": self.dns,
            "DnsSearch": self.dns_search,
            "DnsOptions": self.dns_option,
            "RestartPolicy": restart_policy(self.restart.as_deref())?,
            "AutoRemove": self.rm,
            "Tmpfs": (!tmpfs.is_empty()).then_some(Value::Object(tmpfs)),
            "VolumesFrom": (!self.volumes_from.is_empty()).then_some(&self.volumes_from),
            "Memory": self.memory.as_deref().map(|m| parse_bytes("--memory", m)).transpose()?.unwrap_or(0),
            "NanoCpus": self.cpus.as_deref().map(parse_cpus).transpose()?.unwrap_or(0),
            "CpuShares": self.cpu_shares.unwrap_or(0),
            "PidsLimit": self.pids_limit,
            // Sent as given: the daemon checks the range, and discards the weight with a
            // warning on a host without block I/O weight support, as dockerd does.
            "BlkioWeight": self.blkio_weight.unwrap_or(0),
            "Privileged": self.privileged,
            "CapAdd": (!self.cap_add.is_empty()).then_some(&self.cap_add),
            "CapDrop": (!self.cap_drop.is_empty()).then_some(&self.cap_drop),
            "ReadonlyRootfs": self.read_only,
            "SecurityOpt": (!self.security_opt.is_empty()).then(|| self.security_opts()).transpose()?,
            // -1: the kernel default, as docker sends when --memory-swappiness is unset.
            "MemorySwappiness": -1,
            "Devices": self.device.iter().map(String::as_str).map(device).collect::<Result<Vec<_>, _>>()?,
            // docker 20.10 sends Devices always, Ulimits only when given.
            "Ulimits": (!self.ulimit.is_empty()).then(|| self.ulimit.iter().map(String::as_str).map(ulimit).collect::<Result<Vec<_>, _>>()).transpose()?,
            "OomKillDisable": self.oom_kill_disable,
            "GroupAdd": (!self.group_add.is_empty()).then_some(&self.group_add),
        });
        // Docker sends Init only when --init is given.
        if self.init {
            host_config["Init"] = json!(true);
        }
        // Docker sends Runtime only when --runtime is given.
        if let Some(runtime) = &self.runtime {
            host_config["Runtime"] = json!(runtime);
        }
        let mut body = json!({
            "Hostname": self.hostname.as_deref().unwrap_or(""),
            "User": self.user.as_deref().unwrap_or(""),
            "AttachStdin": attach_stdin,
            "AttachStdout": attach_stdout,
            "AttachStderr": attach_stderr,
            "ExposedPorts": (!exposed.is_empty()).then_some(exposed),
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "StdinOnce": attach_stdin && self.interactive,
            "Env": (!env.is_empty()).then_some(env),
            "Cmd": (!cmd.is_empty()).then_some(cmd),
            "Image": image,
            "Volumes": (!volumes.is_empty()).then_some(volumes),
            "WorkingDir": self.workdir.as_deref().unwrap_or(""),
            "Entrypoint": entrypoint,
            "Labels": labels,
            "HostConfig": host_config,
        });
        if let Some(check) = self
            .health
            .healthcheck()
            .map_err(|e| FlagError::Health(e.to_string()))?
        {
            body["Healthcheck"] = check;
        }
        strip_nulls(&mut body);
        if self.ip.is_some() || !self.network_alias.is_empty() {
            // Docker's: the network mode's endpoint, every field of its
            // EndpointSettings sent (the unset ones zero or null).
            let net = self.network.as_deref().unwrap_or("default");
            let mut ipam = json!({});
            if let Some(ip) = &self.ip {
                ipam["IPv4Address"] = json!(ip);
            }
            let endpoint = json!({
                "IPAMConfig": ipam,
                "Links": null,
                "Aliases": (!self.network_alias.is_empty()).then_some(&self.network_alias),
                "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null,
            });
            body["NetworkingConfig"] = json!({"EndpointsConfig": {net: endpoint}});
        }
        Ok(body)
    }

    /// `-v` entries: host paths and named volumes become binds; a lone path is an
    /// anonymous volume.
    fn split_volumes(&self) -> Result<(Vec<String>, Map<String, Value>), FlagError> {
        let mut binds = Vec::new();
        let mut volumes = Map::new();
        for v in &self.volume {
            let parts: Vec<&str> = v.split(':').collect();
            match parts.as_slice() {
                [path] if path.starts_with('/') => {
                    volumes.insert(path.to_string(), json!({}));
                }
                [_, target] | [_, target, _] if target.starts_with('/') => {
                    if let [_, _, mode] = parts.as_slice() {
                        for opt in mode.split(',') {
                            if ![
                                "ro", "rw", "z", "Z", "shared", "slave", "private", "rshared",
                                "rslave", "rprivate", "nocopy",
                            ]
                            .contains(&opt)
                            {
                                return Err(invalid("--volume", v, format!("invalid mode: {opt}")));
                            }
                        }
                    }
                    binds.push(v.clone());
                }
                _ => {
                    return Err(invalid(
                        "--volume",
                        v,
                        "expected [source:]destination[:mode] with an absolute destination",
                    ))
                }
            }
        }
        Ok((binds, volumes))
    }

    /// `-p` entries as ExposedPorts and PortBindings.
    fn ports(&self) -> Result<(Map<String, Value>, PortBindings), FlagError> {
        let mut exposed = Map::new();
        let mut bindings = PortBindings::new();
        for p in &self.publish {
            let (spec, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
            if !["tcp", "udp", "sctp"].contains(&proto) {
                return Err(invalid("--publish", p, format!("invalid proto: {proto}")));
            }
            let parts: Vec<&str> = spec.split(':').collect();
            let (ip, host_port, ctr_port) = match parts.as_slice() {
                [c] => ("", "", *c),
                [h, c] => ("", *h, *c),
                [ip, h, c] => (*ip, *h, *c),
                _ => {
                    return Err(invalid(
                        "--publish",
                        p,
                        "expected [ip:][hostPort:]containerPort[/proto]",
                    ))
                }
            };
            for port in [ctr_port, host_port] {
                if !port.is_empty() && port.parse::<u16>().map_or(true, |n| n == 0) {
                    return Err(invalid("--publish", p, format!("invalid port: {port}")));
                }
            }
            let key = format!("{ctr_port}/{proto}");
            exposed.insert(key.clone(), json!({}));
            bindings
                .entry(key)
                .or_default()
                .push(json!({"HostIp": ip, "HostPort": host_port}));
        }
        Ok((exposed, bindings))
    }
}

/// Drops unset fields: the daemon reads a missing field as its zero value, as Go does.
fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

/// `--env-file` entries, then `-e` ones, as docker orders them.
pub fn collect_env(
    env: &[String],
    env_file: &[PathBuf],
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::new();
    for path in env_file {
        out.extend(read_env_file(path, lookup_env)?);
    }
    for e in env {
        out.extend(env_entry(e, lookup_env));
    }
    Ok(out)
}

impl CreateFlags {
    /// The streams a foreground run attaches: `-a` ones, else stdout and stderr, and
    /// stdin with `-i`.
    pub fn attached_streams(&self) -> Result<(bool, bool, bool), FlagError> {
        if self.attach.is_empty() {
            return Ok((self.interactive, true, true));
        }
        let (mut i, mut o, mut e) = (false, false, false);
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => i = true,
                "stdout" => o = true,
                "stderr" => e = true,
                _ => {
                    return Err(invalid(
                        "--attach",
                        a,
                        "valid streams are STDIN, STDOUT and STDERR",
                    ))
                }
            }
        }
        Ok((i, o, e))
    }
}

/// `-e KEY=VALUE` as is; `-e KEY` takes KEY's value from this shell, and is passed
/// bare when the shell has none, as docker does.
fn env_entry(e: &str, lookup_env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    Some(lookup_env(e).map_or_else(|| e.to_string(), |v| format!("{e}={v}")))
}

impl CreateFlags {
    /// `--security-opt` as the daemon takes it: `seccomp=FILE` is read here and sent
    /// as the profile's (compacted) JSON, as the docker CLI does; the daemon may run
    /// on another machine.
    fn security_opts(&self) -> Result<Vec<String>, FlagError> {
        self.security_opt
            .iter()
            .map(|opt| {
                let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
                    return Ok(opt.clone());
                };
                if key != "seccomp" || matches!(value, "unconfined" | "builtin") {
                    return Ok(opt.clone());
                }
                let path = PathBuf::from(value);
                let bytes = std::fs::read(&path).map_err(|e| FlagError::SeccompFile {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
                serde_json::from_slice::<Value>(&bytes).map_err(|e| FlagError::SeccompFile {
                    path: path.clone(),
                    why: format!("not JSON: {e}"),
                })?;
                let text = String::from_utf8(bytes).map_err(|_| FlagError::SeccompFile {
                    path: path.clone(),
                    why: "not UTF-8 text".into(),
                })?;
                Ok(format!("seccomp={}", compact_json(&text)))
            })
            .collect()
    }
}

/// Valid JSON without the whitespace between tokens, keys kept in the file's order
/// (what the docker CLI sends; re-serialising would sort the keys).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

fn read_env_file(
    path: &PathBuf,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, FlagError> {
    let text = std::fs::read_to_string(path).map_err(|e| FlagError::EnvFile {
        path: path.clone(),
        why: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap_or("");
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(FlagError::EnvFile {
                path: path.clone(),
                why: format!("line {}: variable {key:?} contains whitespaces", n + 1),
            });
        }
        out.extend(env_entry(line, lookup_env));
    }
    Ok(out)
}

pub fn restart_policy(policy: Option<&str>) -> Result<Value, FlagError> {
    let Some(policy) = policy else {
        return Ok(json!({"Name": "no", "MaximumRetryCount": 0}));
    };
    let (name, count) = policy.split_once(':').unwrap_or((policy, ""));
    let count: i64 = match (name, count) {
        (_, "") => 0,
        ("on-failure", n) => n.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            invalid(
                "--restart",
                policy,
                "maximum retry count must be a non-negative integer",
            )
        })?,
        _ => {
            return Err(invalid(
                "--restart",
                policy,
                "maximum retry count can only be used with 'on-failure'",
            ))
        }
    };
    if !["no", "always", "unless-stopped", "on-failure"].contains(&name) {
        return Err(invalid("--restart", policy, "invalid restart policy"));
    }
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// Sizes as docker takes them: a number, then optionally a space, one of k, m, g, t, p
/// (binary units), an `i` and a `b`: `64m`, `64MiB`, `1g`, `512`.
/// `--device host[:container][:perms]` as the docker CLI sends it: the container path
/// defaults to the host's, the permissions to `rwm`.
fn device(value: &str) -> Result<Value, FlagError> {
    let valid_mode =
        |m: &str| !m.is_empty() && m.len() <= 3 && m.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = value.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, mode] if valid_mode(mode) => (*host, *host, *mode),
        [host, container] => (*host, *container, "rwm"),
        [host, container, mode] => (*host, *container, *mode),
        _ => {
            return Err(invalid(
                "--device",
                value,
                "expected host[:container][:rwm]",
            ))
        }
    };
    if !valid_mode(perms) {
        return Err(invalid(
            "--device",
            value,
            format!("bad mode specified: {perms}"),
        ));
    }
    if !container.starts_with('/') {
        return Err(invalid(
            "--device",
            value,
            format!("{container} is not an absolute path"),
        ));
    }
    Ok(json!({"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}))
}

/// `--ulimit name=soft[:hard]`: the hard limit defaults to the soft one.
fn ulimit(value: &str) -> Result<Value, FlagError> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| invalid("--ulimit", value, "expected name=soft[:hard]"))?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let number = |n: &str| {
        n.parse::<i64>()
            .map_err(|_| invalid("--ulimit", value, format!("invalid ulimit value {n:?}")))
    };
    let (soft, hard) = (number(soft)?, number(hard)?);
    // -1 is unlimited; other negative numbers are no limit at all.
    let limit = |v: i64| {
        if v == -1 {
            Some(u64::MAX)
        } else {
            u64::try_from(v).ok()
        }
    };
    match (limit(soft), limit(hard)) {
        (Some(s), Some(h)) if s <= h => {}
        (Some(_), Some(_)) => {
            return Err(invalid(
                "--ulimit",
                value,
                format!(
                    "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
                ),
            ))
        }
        _ => {
            return Err(invalid(
                "--ulimit",
                value,
                "a limit is a number, or -1 for unlimited",
            ))
        }
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

pub fn parse_bytes(flag: &'static str, value: &str) -> Result<i64, FlagError> {
    let lower = value.trim().to_ascii_lowercase();
    let rest = lower.strip_suffix('b').unwrap_or(&lower);
    let rest = rest.strip_suffix('i').unwrap_or(rest);
    let (number, multiplier) = match rest.chars().last() {
        Some(unit @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            let power = "kmgtp".find(unit).unwrap_or(0) as i32 + 1;
            (rest[..rest.len() - 1].trim_end(), 1024f64.powi(power))
        }
        _ if rest.len() != lower.len() && rest.ends_with(|c: char| !c.is_ascii_digit()) => {
            return Err(invalid(flag, value, "invalid size unit; use k, m, g or t"));
        }
        _ => (rest, 1.0),
    };
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0 && !number.starts_with('.'))
        .ok_or_else(|| {
            invalid(
                flag,
                value,
                "invalid size: expected a number with an optional unit (k, m, g)",
            )
        })?;
    Ok((n * multiplier) as i64)
}

/// `--cpus 1.5` as nano CPUs.
pub fn parse_cpus(value: &str) -> Result<i64, FlagError> {
    let cpus: f64 = value
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite() && *c >= 0.0)
        .ok_or_else(|| invalid("--cpus", value, "expected a non-negative number"))?;
    Ok((cpus * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("--memory", "64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("--memory", "1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("--memory", "512"), Ok(512));
        assert_eq!(parse_bytes("--memory", "2kb"), Ok(2048));
        assert_eq!(parse_bytes("--memory", "64MiB"), Ok(64 << 20));
        assert!(parse_bytes("--memory", "12x").is_err());
        assert!(parse_bytes("--memory", "m").is_err());
        assert!(parse_bytes("--memory", "-5m").is_err());
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert!(parse_cpus("-1").is_err());
    }

    #[test]
    fn blkio_weight_is_sent_as_given() -> Result<(), FlagError> {
        let flags = CreateFlags {
            blkio_weight: Some(300),
            ..Default::default()
        };
        let body = flags.to_create_body("img", &[], false, &|_| None)?;
        assert_eq!(body["HostConfig"]["BlkioWeight"], 300);
        let body = CreateFlags::default().to_create_body("img", &[], false, &|_| None)?;
        assert_eq!(body["HostConfig"]["BlkioWeight"], 0);
        Ok(())
    }

    #[test]
    fn log_driver_and_options_are_sent_as_docker_sends_them() -> Result<(), FlagError> {
        let flags = CreateFlags {
            log_driver: Some("json-file".into()),
            log_opt: vec!["max-size=10k".into(), "max-file=3".into()],
            ..Default::default()
        };
        let body = flags.to_create_body("img", &[], false, &|_| None)?;
        assert_eq!(
            body["HostConfig"]["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}})
        );
        let body = CreateFlags::default().to_create_body("img", &[], false, &|_| None)?;
        assert_eq!(
            body["HostConfig"]["LogConfig"],
            json!({"Type": "", "Config": {}})
        );
        let bad = CreateFlags {
            log_opt: vec!["max-size".into()],
            ..Default::default()
        };
        assert!(bad.to_create_body("img", &[], false, &|_| None).is_err());
        Ok(())
    }

    /// As the docker CLI sends them (captured from Debian's docker 20.10).
    #[test]
    fn devices_ulimits_groups_init_and_oom_are_sent_as_docker_sends_them() -> Result<(), FlagError>
    {
        let flags = CreateFlags {
            device: vec![
                "/dev/null:/dev/xnull".into(),
                "/dev/zero".into(),
                "/dev/fuse:r".into(),
            ],
            ulimit: vec!["nofile=1024:2048".into(), "core=-1".into()],
            group_add: vec!["1234".into(), "users".into()],
            oom_kill_disable: true,
            init: true,
            ..Default::default()
        };
        let body = flags.to_create_body("img", &[], false, &|_| None)?;
        let hc = &body["HostConfig"];
        assert_eq!(
            hc["Devices"],
            json!([
                {"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "r"},
            ])
        );
        assert_eq!(
            hc["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048},
                   {"Name": "core", "Soft": -1, "Hard": -1}])
        );
        assert_eq!(hc["GroupAdd"], json!(["1234", "users"]));
        assert_eq!(
            (&hc["OomKillDisable"], &hc["Init"]),
            (&json!(true), &json!(true))
        );
        // Without the flags: no devices, false, and no ulimits, groups or Init at all.
        let body = CreateFlags::default().to_create_body("img", &[], false, &|_| None)?;
        let hc = &body["HostConfig"];
        assert_eq!(hc["Devices"], json!([]));
        assert!(hc.get("Ulimits").is_none());
        assert_eq!(hc["OomKillDisable"], json!(false));
        assert!(hc.get("Init").is_none() && hc.get("GroupAdd").is_none());
        let bad = |f: CreateFlags| f.to_create_body("img", &[], false, &|_| None).err();
        for (device, ulimit) in [
            ("/dev/null:rel", "nofile=1"),
            ("/dev/null:/dev/x:rwx", "nofile=1"),
            ("/dev/null", "nofile=3:2"),
            ("/dev/null", "nofile"),
            ("/dev/null", "nofile=-2"),
        ] {
            let flags = CreateFlags {
                device: vec![device.into()],
                ulimit: vec![ulimit.into()],
                ..Default::default()
            };
            assert!(bad(flags).is_some(), "{device} {ulimit}");
        }
        Ok(())
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            restart_policy(Some("on-failure:3")),
            Ok(json!({"Name": "on-failure", "MaximumRetryCount": 3}))
        );
        assert_eq!(
            restart_policy(Some("always")),
            Ok(json!({"Name": "always", "MaximumRetryCount": 0}))
        );
        assert!(restart_policy(Some("always:3")).is_err());
        assert!(restart_policy(Some("sometimes")).is_err());
    }

    #[test]
    fn bad_volumes_and_ports_name_the_flag() {
        let flags = CreateFlags {
            volume: vec!["relative:dir".into()],
            ..Default::default()
        };
        let err = flags
            .to_create_body("img", &[], false, &|_| None)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("\"--volume\"")));
        let flags = CreateFlags {
            publish: vec!["99999:80".into()],
            ..Default::default()
        };
        let err = flags
            .to_create_body("img", &[], false, &|_| None)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("invalid port: 99999")));
    }

    #[test]
    fn a_seccomp_file_is_sent_as_its_contents() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("p.json");
        std::fs::write(
            &file,
            "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"architectures\": [ \"a b\\\" c\" ]\n}\n",
        )?;
        let flags = CreateFlags {
            security_opt: vec![
                format!("seccomp={}", file.display()),
                "seccomp=unconfined".into(),
                "no-new-privileges".into(),
            ],
            ..Default::default()
        };
        let body = flags.to_create_body("img", &[], false, &|_| None)?;
        assert_eq!(
            body["HostConfig"]["SecurityOpt"],
            json!([
                r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","architectures":["a b\" c"]}"#,
                "seccomp=unconfined",
                "no-new-privileges"
            ])
        );
        let missing = dir.path().join("missing.json");
        let flags = CreateFlags {
            security_opt: vec![format!("seccomp={}", missing.display())],
            ..Default::default()
        };
        let err = flags
            .to_create_body("img", &[], false, &|_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        Ok(())
    }
}
