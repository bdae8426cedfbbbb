//! The container's process: arguments, environment and working directory merged from
//! the request and the image the way Docker merges them.

use super::request::{CreateRequest, ImageDefaults};
use super::SpecError;

/// PATH when neither the image nor the request sets one (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `Entrypoint` + `Cmd`: a request's entrypoint replaces the image's and drops the
/// image's `Cmd`; `--entrypoint ""` clears the entrypoint.
pub fn args(req: &CreateRequest, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
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

/// The image's environment overlaid by the request's (same key: the request wins),
/// plus `HOSTNAME`, a `PATH` if none, and `TERM=xterm` with a terminal.
pub fn env(req: &CreateRequest, image: &ImageDefaults, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |entry: &str| {
        let key = entry.split('=').next().unwrap_or(entry);
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(existing) => *existing = entry.to_string(),
            None => env.push(entry.to_string()),
        }
    };
    set(&format!("PATH={DEFAULT_PATH}"));
    set(&format!("HOSTNAME={hostname}"));
    if req.tty {
        set("TERM=xterm");
    }
    for entry in image.env.iter().flatten().chain(req.env.iter().flatten()) {
        // A bare KEY (an unset `-e KEY`) sets nothing, as in Docker.
        if entry.contains('=') {
            set(entry);
        }
    }
    env
}

/// The request's working dir, else the image's, else `/`; it must be absolute.
pub fn cwd(req: &CreateRequest, image: &ImageDefaults) -> Result<String, SpecError> {
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
        let req = |entrypoint, cmd| CreateRequest {
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
    fn env_overlays_and_defaults() {
        let image = ImageDefaults {
            env: strings(&["PATH=/img", "A=1", "B=2"]),
            ..Default::default()
        };
        let req = CreateRequest {
            env: strings(&["B=3", "C", "D=4"]),
            tty: true,
            ..Default::default()
        };
        assert_eq!(
            Some(env(&req, &image, "h")),
            strings(&["PATH=/img", "HOSTNAME=h", "TERM=xterm", "A=1", "B=3", "D=4"])
        );
    }

    #[test]
    fn workdir_falls_back_and_must_be_absolute() {
        let image = ImageDefaults {
            working_dir: "/srv".into(),
            ..Default::default()
        };
        assert_eq!(
            cwd(&CreateRequest::default(), &image).ok().as_deref(),
            Some("/srv")
        );
        assert_eq!(
            cwd(&CreateRequest::default(), &ImageDefaults::default())
                .ok()
                .as_deref(),
            Some("/")
        );
        let req = CreateRequest {
            working_dir: "rel".into(),
            ..Default::default()
        };
        assert!(matches!(
            cwd(&req, &image),
            Err(SpecError::RelativeWorkdir(_))
        ));
    }
}
