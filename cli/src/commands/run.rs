//! `run` and `create`. A foreground `run` creates, attaches, starts, streams (see
//! `attach`), and exits with the container's code; with `--rm` it removes the
//! container itself once the exit is known, so no output is lost to an early removal. Exit codes are docker's: 125 when berth or berthd fails, 126 when
//! the command cannot be invoked, 127 when it is not found, else the container's.

use anyhow::anyhow;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::attach::{attached, exit_code, AttachOpts, Outcome};
use super::container::enc;
use super::pull::{pull_image, with_tag, Progress};
use super::Output;
use crate::client::{Client, ClientError};
use crate::run_args::CreateFlags;

/// docker's exit code for an error of the daemon or of the flags.
pub const EXIT_DAEMON_ERROR: u8 = 125;

/// Creates the container, pulling its image first as `--pull` says: `missing` pulls
/// when the daemon has no such image (telling so on stderr, as docker does).
async fn create_container(
    client: &Client,
    host: &str,
    flags: &CreateFlags,
    image: &str,
    cmd: &[String],
    detach: bool,
) -> anyhow::Result<String> {
    if flags.pull == "always" {
        pull_image(host, image, None, &mut Progress::on_stderr()).await?;
    }
    match create_once(client, flags, image, cmd, detach).await {
        Err(e) if matches!(flags.pull.as_str(), "missing" | "") && is_missing_image(&e) => {
            eprintln!("Unable to find image '{}' locally", with_tag(image));
            pull_image(host, image, None, &mut Progress::on_stderr()).await?;
            create_once(client, flags, image, cmd, detach).await
        }
        created => created,
    }
}

fn is_missing_image(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Daemon { status, message })
            if *status == StatusCode::NOT_FOUND && message.starts_with("No such image")
    )
}

async fn create_once(
    client: &Client,
    flags: &CreateFlags,
    image: &str,
    cmd: &[String],
    detach: bool,
) -> anyhow::Result<String> {
    let mut body = flags.to_create_body(image, cmd, detach, &|k| std::env::var(k).ok())?;
    if !detach && flags.rm {
        // The client removes the container after reading its logs and exit code.
        body["HostConfig"]["AutoRemove"] = Value::Bool(false);
    }
    let path = match &flags.name {
        Some(n) => format!("/containers/create?name={}", enc(n)),
        None => "/containers/create".to_string(),
    };
    let created = client.post_json(&path, Some(body)).await?;
    for line in warnings(&created) {
        eprintln!("{line}");
    }
    created["Id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the daemon's create answer has no Id: {created}"))
}

/// The create answer's `Warnings` (say, a block I/O weight the host discarded), as the
/// docker CLI prints them on stderr.
fn warnings(created: &Value) -> Vec<String> {
    created["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|w| format!("WARNING: {w}"))
        .collect()
}

/// docker's exit code when the command exists but cannot be invoked.
pub const EXIT_CANNOT_INVOKE: u8 = 126;
/// docker's exit code when the command is not found.
pub const EXIT_NOT_FOUND: u8 = 127;

fn daemon_error(e: anyhow::Error) -> anyhow::Result<Output> {
    Ok(Output::text(String::new())
        .failing(e)
        .with_code(EXIT_DAEMON_ERROR))
}

/// The exit code for a failed start, told from the daemon's message as docker's CLI
/// tells it (so it works the same against dockerd): 127 when the command is not
/// found, 126 when it cannot be invoked, else 125.
pub fn start_failure_code(message: &str) -> u8 {
    let missing = [
        "executable file not found",
        "no such file or directory",
        "system cannot find the file specified",
    ];
    if missing.iter().any(|m| message.contains(m)) {
        EXIT_NOT_FOUND
    } else if message.contains("permission denied") {
        EXIT_CANNOT_INVOKE
    } else {
        EXIT_DAEMON_ERROR
    }
}

/// `create`: prints the new container's id.
pub async fn create(
    client: &Client,
    host: &str,
    flags: &CreateFlags,
    image: &str,
    cmd: &[String],
) -> anyhow::Result<Output> {
    match create_container(client, host, flags, image, cmd, true).await {
        Ok(id) => Ok(Output::text(format!("{id}\n"))),
        Err(e) => daemon_error(e),
    }
}

/// How a foreground `run` attaches: `--sig-proxy` and `--detach-keys`.
#[derive(Debug, Clone)]
pub struct Foreground {
    pub sig_proxy: bool,
    pub detach_keys: Option<String>,
}

/// `run`; `foreground` is `None` for `-d`.
pub async fn run(
    client: &Client,
    host: &str,
    flags: &CreateFlags,
    foreground: Option<&Foreground>,
    image: &str,
    cmd: &[String],
) -> anyhow::Result<Output> {
    let id = match create_container(client, host, flags, image, cmd, foreground.is_none()).await {
        Ok(id) => id,
        Err(e) => return daemon_error(e),
    };
    let Some(fg) = foreground else {
        if let Err(e) = client
            .call(Method::POST, &format!("/containers/{id}/start"), None)
            .await
        {
            remove_after_failed_start(client, flags, &id).await;
            return Ok(start_failed(e.into()));
        }
        return Ok(Output::text(format!("{id}\n")));
    };
    let (stdin, stdout, stderr) = match flags.attached_streams() {
        Ok(s) => s,
        Err(e) => return daemon_error(e.into()),
    };
    let opts = AttachOpts {
        stdin,
        stdout,
        stderr,
        tty: flags.tty,
        detach_keys: fg.detach_keys.clone().unwrap_or_default(),
        sig_proxy: fg.sig_proxy,
    };
    let outcome = match attached(client, &id, &opts, true).await {
        Ok(o) => o,
        Err(e) => {
            remove_after_failed_start(client, flags, &id).await;
            return daemon_error(e);
        }
    };
    let code = match outcome {
        Outcome::StartFailed(e) => {
            remove_after_failed_start(client, flags, &id).await;
            return Ok(start_failed(e));
        }
        // The container runs on; docker leaves it (and its --rm) to the daemon.
        Outcome::Detached => return Ok(Output::text(String::new())),
        Outcome::Exited(code) => code,
    };
    if flags.rm {
        if let Err(e) = client
            .call(Method::DELETE, &format!("/containers/{id}?force=1"), None)
            .await
        {
            eprintln!("berth: removing the container: {e}");
        }
    }
    Ok(Output::text(String::new()).with_code(exit_code(code)))
}

async fn remove_after_failed_start(client: &Client, flags: &CreateFlags, id: &str) {
    if flags.rm {
        let _ = client
            .call(Method::DELETE, &format!("/containers/{id}?force=1"), None)
            .await;
    }
}

fn start_failed(e: anyhow::Error) -> Output {
    let code = start_failure_code(&format!("{e:#}"));
    Output::text(String::new()).failing(e).with_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_to_dockers_exit_codes() {
        let not_found = r#"Error response from daemon: shim create: container init failed: exec: "nope": executable file not found in $PATH"#;
        assert_eq!(start_failure_code(not_found), 127);
        let stat = r#"exec: "/nope": stat /nope: no such file or directory"#;
        assert_eq!(start_failure_code(stat), 127);
        let denied = r#"exec: "/etc/passwd": permission denied"#;
        assert_eq!(start_failure_code(denied), 126);
        assert_eq!(start_failure_code("cgroup: device busy"), 125);
    }

    #[test]
    fn create_warnings_are_printed_as_docker_prints_them() {
        let created = serde_json::json!({"Id": "abc", "Warnings": [
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
        ]});
        assert_eq!(
            warnings(&created),
            vec!["WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."]
        );
        for none in [
            serde_json::json!({"Id": "abc", "Warnings": []}),
            serde_json::json!({"Id": "abc", "Warnings": null}),
            serde_json::json!({"Id": "abc"}),
        ] {
            assert!(warnings(&none).is_empty());
        }
    }
}
