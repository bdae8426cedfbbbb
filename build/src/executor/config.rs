//! The instructions that only change the image's config (ENV, WORKDIR, USER, LABEL,
//! EXPOSE, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD,
//! MAINTAINER), applied as Docker's classic builder applies them, and the history
//! line (`created_by`) each step leaves.

use std::collections::BTreeMap;

use berth_image::config::{ContainerConfig, ImageConfig};
use serde_json::json;

use crate::dockerfile::{CommandForm, Healthcheck, Instruction};

/// The shell a stage's shell forms run under.
pub fn shell(cfg: &ContainerConfig) -> Vec<String> {
    cfg.shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// A command as the image keeps it: the exec form as written, the shell form under the
/// stage's shell.
pub fn command(form: &CommandForm, cfg: &ContainerConfig) -> Vec<String> {
    match form {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut v = shell(cfg);
            v.push(s.clone());
            v
        }
    }
}

/// Sets `KEY=value` in an env list, replacing an earlier definition.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key) || e.as_str() == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// `EXPOSE` entries as the image keeps them (`80` → `80/tcp`), checked.
pub fn port_key(p: &str) -> Result<String, String> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let valid = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match port.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(port),
    };
    if !ok {
        return Err(format!("invalid containerPort: {port}"));
    }
    Ok(format!("{port}/{proto}"))
}

fn nanos(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| d.as_nanos() as u64)
}

/// Applies a config-only instruction (already substituted) to `cfg`. `cmd_set` says
/// whether this stage set CMD (an ENTRYPOINT clears an inherited CMD, as Docker does).
pub fn apply(image: &mut ImageConfig, ins: &Instruction, cmd_set: &mut bool) -> Result<(), String> {
    let cfg = image.config.get_or_insert_with(ContainerConfig::default);
    match ins {
        Instruction::Env(pairs) => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                set_env(env, k, v);
            }
        }
        Instruction::Label(pairs) => {
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(k.clone(), v.clone());
            }
        }
        Instruction::Workdir(dir) => {
            let base = cfg.working_dir.clone().unwrap_or_default();
            cfg.working_dir = Some(join_workdir(&base, dir));
        }
        Instruction::User(u) => cfg.user = Some(u.clone()),
        Instruction::Expose(ports) => {
            let exposed = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                exposed.insert(port_key(p)?, json!({}));
            }
        }
        Instruction::Volume(vols) => {
            let v = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for vol in vols {
                if vol.trim().is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                v.insert(vol.clone(), json!({}));
            }
        }
        Instruction::Stopsignal(sig) => {
            berth_engine::parse_signal(sig).map_err(|_| format!("Invalid signal: {sig}"))?;
            cfg.stop_signal = Some(sig.clone());
        }
        Instruction::Cmd(form) => {
            cfg.cmd = Some(command(form, cfg));
            *cmd_set = true;
        }
        Instruction::Entrypoint(form) => {
            cfg.entrypoint = Some(command(form, cfg));
            if !*cmd_set {
                cfg.cmd = None;
            }
        }
        Instruction::Shell(v) => cfg.shell = Some(v.clone()),
        Instruction::Onbuild { expression, .. } => {
            cfg.on_build
                .get_or_insert_with(Vec::new)
                .push(expression.clone());
        }
        Instruction::Healthcheck(h) => {
            cfg.healthcheck = Some(match h {
                Healthcheck::None => json!({ "Test": ["NONE"] }),
                Healthcheck::Check {
                    command,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    let test = match command {
                        CommandForm::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            t
                        }
                        CommandForm::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    };
                    let mut h = serde_json::Map::new();
                    h.insert("Test".into(), json!(test));
                    for (k, v) in [
                        ("Interval", nanos(*interval)),
                        ("Timeout", nanos(*timeout)),
                        ("StartPeriod", nanos(*start_period)),
                        ("StartInterval", nanos(*start_interval)),
                    ] {
                        if let Some(v) = v {
                            h.insert(k.into(), json!(v));
                        }
                    }
                    if let Some(r) = retries {
                        h.insert("Retries".into(), json!(r));
                    }
                    serde_json::Value::Object(h)
                }
            });
        }
        Instruction::Maintainer(m) => image.author = Some(m.clone()),
        other => return Err(format!("{} is not a config instruction", other.keyword())),
    }
    Ok(())
}

/// WORKDIR: an absolute path replaces, a relative one goes under the previous one.
pub fn join_workdir(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", if base.is_empty() { "/" } else { base })
    };
    clean(&joined)
}

/// Lexical cleaning of an absolute path.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// What `docker history` shows for a step that changes only the config.
pub fn nop_created_by(text: &str, cfg: &ContainerConfig) -> String {
    format!("{} #(nop)  {}", shell(cfg).join(" "), text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn apply_all(lines: &[Instruction]) -> ImageConfig {
        let mut img = ImageConfig::default();
        let mut cmd_set = false;
        for i in lines {
            apply(&mut img, i, &mut cmd_set).unwrap();
        }
        img
    }

    #[test]
    fn env_workdir_user_labels_ports_volumes() {
        let img = apply_all(&[
            Instruction::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())]),
            Instruction::Env(vec![("A".into(), "3".into())]),
            Instruction::Workdir("/a".into()),
            Instruction::Workdir("b/../c".into()),
            Instruction::User("app:app".into()),
            Instruction::Label(vec![("k".into(), "v".into())]),
            Instruction::Expose(vec!["80".into(), "53/UDP".into()]),
            Instruction::Volume(vec!["/data".into()]),
            Instruction::Stopsignal("SIGQUIT".into()),
            Instruction::Maintainer("me".into()),
        ]);
        let c = img.config.unwrap();
        assert_eq!(c.env.unwrap(), vec!["A=3", "B=2"]);
        assert_eq!(c.working_dir.as_deref(), Some("/a/c"));
        assert_eq!(c.user.as_deref(), Some("app:app"));
        assert_eq!(c.labels.unwrap()["k"], "v");
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp"]);
        assert!(c.volumes.unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(img.author.as_deref(), Some("me"));
    }

    #[test]
    fn cmd_entrypoint_shell() {
        let mut img = ImageConfig {
            config: Some(ContainerConfig {
                cmd: Some(vec!["sh".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut cmd_set = false;
        apply(
            &mut img,
            &Instruction::Entrypoint(CommandForm::Exec(vec!["/bin/echo".into()])),
            &mut cmd_set,
        )
        .unwrap();
        // An inherited CMD does not survive a new ENTRYPOINT.
        assert_eq!(img.config.as_ref().unwrap().cmd, None);
        apply(
            &mut img,
            &Instruction::Shell(vec!["/bin/ash".into(), "-e".into(), "-c".into()]),
            &mut cmd_set,
        )
        .unwrap();
        apply(
            &mut img,
            &Instruction::Cmd(CommandForm::Shell("echo hi".into())),
            &mut cmd_set,
        )
        .unwrap();
        let c = img.config.as_ref().unwrap();
        assert_eq!(
            c.cmd.clone().unwrap(),
            vec!["/bin/ash", "-e", "-c", "echo hi"]
        );
        apply(
            &mut img,
            &Instruction::Entrypoint(CommandForm::Exec(vec!["/x".into()])),
            &mut cmd_set,
        )
        .unwrap();
        assert!(img.config.as_ref().unwrap().cmd.is_some());
    }

    #[test]
    fn healthcheck_as_docker_keeps_it() {
        let img = apply_all(&[Instruction::Healthcheck(Healthcheck::Check {
            command: CommandForm::Shell("true".into()),
            interval: Some(Duration::from_secs(5)),
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: Some(2),
        })]);
        assert_eq!(
            img.config.unwrap().healthcheck.unwrap(),
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 2})
        );
    }

    #[test]
    fn refusals() {
        let mut img = ImageConfig::default();
        let mut c = false;
        assert_eq!(
            apply(
                &mut img,
                &Instruction::Expose(vec!["80/xtp".into()]),
                &mut c
            )
            .unwrap_err(),
            "invalid proto: xtp"
        );
        assert_eq!(
            apply(&mut img, &Instruction::Expose(vec!["http".into()]), &mut c).unwrap_err(),
            "invalid containerPort: http"
        );
        assert_eq!(
            apply(&mut img, &Instruction::Stopsignal("SIGNOPE".into()), &mut c).unwrap_err(),
            "Invalid signal: SIGNOPE"
        );
    }

    #[test]
    fn history_text() {
        assert_eq!(
            nop_created_by("ENV A=1", &ContainerConfig::default()),
            "/bin/sh -c #(nop)  ENV A=1"
        );
        assert_eq!(join_workdir("", "app"), "/app");
        assert_eq!(join_workdir("/a", "/b/"), "/b");
    }
}
