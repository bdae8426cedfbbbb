//! `exec`: a command in a running container. Attached: the exec's stream on this
//! terminal (see `hijack`), then its exit code as ours; `-d`: started and left.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use hyper::Method;
use serde_json::json;

use super::attach::exit_code;
use super::container::enc;
use super::hijack::{self, End, Streams};
use super::Output;
use crate::client::Client;
use crate::run_args::collect_env;
use crate::terminal;

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]").
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true)]
    pub args: Vec<String>,
}

impl ExecArgs {
    /// `POST /containers/{id}/exec`'s body, as the docker CLI builds it.
    pub fn to_body(
        &self,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<serde_json::Value> {
        let env = collect_env(&self.env, &self.env_file, lookup_env)?;
        let attach = !self.detach;
        Ok(json!({
            "User": self.user.as_deref().unwrap_or(""),
            "Privileged": self.privileged,
            "Tty": self.tty,
            "AttachStdin": attach && self.interactive,
            "AttachStdout": attach,
            "AttachStderr": attach,
            "Detach": self.detach,
            "DetachKeys": self.detach_keys.as_deref().unwrap_or(""),
            "Env": env,
            "WorkingDir": self.workdir.as_deref().unwrap_or(""),
            "Cmd": &self.args[1..],
        }))
    }
}

pub async fn exec(client: &Client, args: &ExecArgs) -> anyhow::Result<Output> {
    let keys = hijack::parse_detach_keys(args.detach_keys.as_deref().unwrap_or(""))?;
    let body = args.to_body(&|k| std::env::var(k).ok())?;
    let container = &args.args[0];
    let created = client
        .post_json(&format!("/containers/{}/exec", enc(container)), Some(body))
        .await?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon's exec answer has no Id: {created}"))?
        .to_string();
    let mut start = json!({"Detach": args.detach, "Tty": args.tty});
    if args.tty {
        if let Some((h, w)) = terminal::size() {
            start["ConsoleSize"] = json!([h, w]);
        }
    }
    if args.detach {
        client
            .call(Method::POST, &format!("/exec/{id}/start"), Some(start))
            .await?;
        return Ok(Output::text(String::new()));
    }
    let conn = client
        .hijack(&format!("/exec/{id}/start"), Some(start))
        .await?;
    let monitor = if args.tty {
        hijack::monitor_size(client, format!("/exec/{id}/resize"))
    } else {
        None
    };
    let end = hijack::stream(
        conn,
        Streams {
            stdin: args.interactive,
            tty: args.tty,
            detach_keys: keys,
        },
    )
    .await;
    if let Some(m) = monitor {
        m.abort();
    }
    if end? == End::Detached {
        return Ok(Output::text(String::new()));
    }
    let info = client
        .get_json(&format!("/exec/{id}/json"))
        .await
        .context("reading the exec's exit code")?;
    let code = info["ExitCode"].as_i64().unwrap_or(0);
    Ok(Output::text(String::new()).with_code(exit_code(code)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ExecArgs,
    }

    #[test]
    fn flags_make_dockers_body() {
        let cmd = Cmd::try_parse_from([
            "exec",
            "-it",
            "-w",
            "/tmp",
            "-e",
            "A=b",
            "-e",
            "HOMEX",
            "-u",
            "1000",
            "--privileged",
            "web",
            "sh",
            "-c",
            "id",
        ])
        .map_err(|e| e.to_string());
        let args = cmd.map(|c| c.args).unwrap_or_else(|e| panic!("{e}"));
        let body = args
            .to_body(&|k| (k == "HOMEX").then(|| "/x".to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.args[0], "web");
        assert_eq!(body["Cmd"], json!(["sh", "-c", "id"]));
        assert_eq!(body["Env"], json!(["A=b", "HOMEX=/x"]));
        assert_eq!(body["WorkingDir"], "/tmp");
        assert_eq!(body["User"], "1000");
        assert_eq!(body["Tty"], true);
        assert_eq!(body["AttachStdin"], true);
        assert_eq!(body["Privileged"], true);
        let detached = Cmd::try_parse_from(["exec", "-d", "web", "true"])
            .map(|c| c.args)
            .unwrap_or_else(|e| panic!("{e}"));
        let body = detached
            .to_body(&|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["AttachStdout"], false);
        assert_eq!(body["Detach"], true);
    }
}
