//! The container's process: arguments, environment and working directory merged from
//! the request and the image the way Docker merges them.

use oci_spec::runtime::{Spec, User};

use super::mounts::oci_mount;
use super::request::ImageDefaults;
use super::{process_mut, Container, SpecError};
use crate::config::ProcessConfig;
use crate::init_binary;

/// `process`: arguments, environment (with `HOSTNAME`, `TERM` and the user's `HOME`),
/// working directory, terminal, user and `OomScoreAdj`.
pub(super) fn with_process(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    let req = &c.config().process;
    let mut env = env(&config_env(req, c.inputs.image), &c.hostname, req.tty);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", c.user.home));
    }
    let mut user = User::default();
    user.set_uid(c.user.uid);
    user.set_gid(c.user.gid);
    user.set_additional_gids(Some(c.user.additional_gids.clone()));
    let oom_score_adj = match c.config().security.oom_score_adj {
        0 => None,
        adj => Some(
            i32::try_from(adj)
                .map_err(|_| SpecError::Resources(format!("OomScoreAdj {adj} is out of range")))?,
        ),
    };
    let process = process_mut(spec);
    process.set_terminal(Some(req.tty));
    process.set_user(user);
    process.set_args(Some(c.args.clone()));
    process.set_env(Some(env));
    process.set_cwd(c.cwd.clone().into());
    process.set_oom_score_adj(oom_score_adj);
    Ok(())
}

/// With `init`: berth's init bound read-only at Docker's path and run as PID 1, the
/// command after its `--`, as dockerd does for `--init`.
pub(super) fn with_init(spec: &mut Spec, c: &Container<'_>) -> Result<(), SpecError> {
    if !c.config().process.init {
        return Ok(());
    }
    let source = c.inputs.init_binary.to_string_lossy();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != std::path::Path::new(init_binary::IN_CONTAINER));
    mounts.push(oci_mount(
        init_binary::IN_CONTAINER,
        "bind",
        &source,
        vec!["bind".into(), "ro".into()],
    ));
    spec.set_mounts(Some(mounts));
    let process = process_mut(spec);
    let mut args = vec![init_binary::IN_CONTAINER.to_string(), "--".to_string()];
    args.extend(process.args().clone().unwrap_or_default());
    process.set_args(Some(args));
    Ok(())
}

/// PATH when neither the image nor the request sets one (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `Entrypoint` + `Cmd`: a request's entrypoint replaces the image's and drops the
/// image's `Cmd`; `--entrypoint ""` clears the entrypoint.
pub fn args(req: &ProcessConfig, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let (entrypoint, cmd) = match &req.entrypoint {
        Some(entrypoint) => {
            let entrypoint: Vec<String> = entrypoint
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect();
            (entrypoint, req.cmd.clone().unwrap_or_default())
        }
        None => {
            let cmd = match &req.cmd {
                Some(cmd) if !cmd.is_empty() => cmd.clone(),
                _ => image.cmd.clone().unwrap_or_default(),
            };
            (image.entrypoint.clone().unwrap_or_default(), cmd)
        }
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// The key of an environment entry: what comes before the first `=` (all of a bare
/// `KEY`).
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// The container's `Config.Env`, merged as Docker merges a request with its image: the
/// request's entries as sent, then each image entry whose key the request does not
/// name. A bare `KEY` (an unset `-e KEY`) names the key too, so it hides the image's.
pub fn config_env(req: &ProcessConfig, image: &ImageDefaults) -> Vec<String> {
    let requested = req.env.clone();
    if requested.is_empty() {
        return image.env.clone().unwrap_or_default();
    }
    let mut out = requested.clone();
    for entry in image.env.iter().flatten() {
        if !requested.iter().any(|r| env_key(r) == env_key(entry)) {
            out.push(entry.clone());
        }
    }
    out
}

/// The process's environment from `Config.Env` ([`config_env`]): `PATH`, `HOSTNAME` and
/// (with a terminal) `TERM=xterm` first, each replaced in place by a `Config.Env` entry
/// of the same key, the other entries after them in order; a bare `KEY` removes that
/// default, as Docker builds it. `HOME` is added by the caller, from the user.
pub fn env(config_env: &[String], hostname: &str, tty: bool) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    let defaults = env.len();
    let mut removed = vec![false; defaults];
    for entry in config_env {
        let key = env_key(entry);
        let default = env[..defaults].iter().position(|d| env_key(d) == key);
        match (entry.contains('='), default) {
            (true, Some(i)) => env[i] = entry.clone(),
            (true, None) => env.push(entry.clone()),
            (false, Some(i)) => removed[i] = true,
            (false, None) => {}
        }
    }
    let mut index = 0;
    env.retain(|_| {
        let keep = !removed.get(index).copied().unwrap_or(false);
        index += 1;
        keep
    });
    env
}

/// The request's working dir, else the image's, else `/`; it must be absolute.
pub fn cwd(req: &ProcessConfig, image: &ImageDefaults) -> Result<String, SpecError> {
    let cwd = [&req.working_dir, &image.working_dir]
        .into_iter()
        .find(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(SpecError::RelativeWorkdir(cwd));
    }
    Ok(cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn entrypoint_and_cmd_merge_like_docker() {
        let image = ImageDefaults {
            entrypoint: strings(&["/entry"]),
            cmd: strings(&["default"]),
            ..Default::default()
        };
        let req = |entrypoint, cmd| ProcessConfig {
            entrypoint,
            cmd,
            ..Default::default()
        };
        assert_eq!(
            args(&req(None, None), &image).ok(),
            strings(&["/entry", "default"])
        );
        assert_eq!(
            args(&req(None, strings(&["x"])), &image).ok(),
            strings(&["/entry", "x"])
        );
        assert_eq!(
            args(&req(strings(&["/bin/sh"]), None), &image).ok(),
            strings(&["/bin/sh"])
        );
        assert_eq!(
            args(&req(strings(&[""]), strings(&["ls"])), &image).ok(),
            strings(&["ls"])
        );
        assert!(matches!(
            args(&req(strings(&[""]), None), &image),
            Err(SpecError::NoCommand)
        ));
    }

    #[test]
    fn config_env_is_the_request_then_what_the_image_adds() {
        let image = ImageDefaults {
            env: strings(&["PATH=/img", "A=1", "B=2", "C=3"]),
            ..Default::default()
        };
        let req = |env: &[&str]| ProcessConfig {
            env: strings(env).unwrap_or_default(),
            ..Default::default()
        };
        assert_eq!(
            Some(config_env(&req(&["B=3", "C", "D=4"]), &image)),
            strings(&["B=3", "C", "D=4", "PATH=/img", "A=1"])
        );
        assert_eq!(Some(config_env(&req(&[]), &image)), image.env);
        assert!(config_env(&ProcessConfig::default(), &ImageDefaults::default()).is_empty());
    }

    #[test]
    fn process_env_starts_from_dockers_defaults() {
        let config = config_env(
            &ProcessConfig {
                env: strings(&["B=3", "C", "D=4"]).unwrap_or_default(),
                ..Default::default()
            },
            &ImageDefaults {
                env: strings(&["PATH=/img", "A=1", "C=2"]),
                ..Default::default()
            },
        );
        assert_eq!(
            Some(env(&config, "h", true)),
            strings(&["PATH=/img", "HOSTNAME=h", "TERM=xterm", "B=3", "D=4", "A=1"])
        );
        assert_eq!(
            Some(env(&[], "h", false)),
            strings(&[&format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h"])
        );
        // A bare key unsets a default (docker run -e HOSTNAME with none set locally).
        assert_eq!(
            Some(env(&["HOSTNAME".into(), "PATH=/x".into()], "h", true)),
            strings(&["PATH=/x", "TERM=xterm"])
        );
    }

    #[test]
    fn workdir_falls_back_and_must_be_absolute() {
        let image = ImageDefaults {
            working_dir: "/srv".into(),
            ..Default::default()
        };
        assert_eq!(
            cwd(&ProcessConfig::default(), &image).ok().as_deref(),
            Some("/srv")
        );
        assert_eq!(
            cwd(&ProcessConfig::default(), &ImageDefaults::default())
                .ok()
                .as_deref(),
            Some("/")
        );
        let req = ProcessConfig {
            working_dir: "rel".into(),
            ..Default::default()
        };
        assert!(matches!(
            cwd(&req, &image),
            Err(SpecError::RelativeWorkdir(_))
        ));
    }
}
