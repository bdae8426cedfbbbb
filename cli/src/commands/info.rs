//! `berth info`: system-wide information, as `docker info` prints it.

use serde_json::Value;

use super::Output;
use crate::client::Client;
use crate::template::Template;

pub async fn run(client: &Client, format: Option<&str>) -> anyhow::Result<Output> {
    let info = client.get_json("/info").await?;
    if let Some(format) = format {
        return Ok(Output::text(Template::parse(format)?.render(&info)?));
    }
    let s = |k: &str| match &info[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let runtimes = info["Runtimes"]
        .as_object()
        .map(|r| r.keys().cloned().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut out = String::from("Server:\n");
    out.push_str(&format!(" Containers: {}\n", s("Containers")));
    out.push_str(&format!("  Running: {}\n", s("ContainersRunning")));
    out.push_str(&format!("  Paused: {}\n", s("ContainersPaused")));
    out.push_str(&format!("  Stopped: {}\n", s("ContainersStopped")));
    out.push_str(&format!(" Images: {}\n", s("Images")));
    for (label, key) in [
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
    ] {
        out.push_str(&format!(" {label}: {}\n", s(key)));
    }
    out.push_str(&format!(" Runtimes: {runtimes}\n"));
    for (label, key) in [
        ("Default Runtime", "DefaultRuntime"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
    ] {
        out.push_str(&format!(" {label}: {}\n", s(key)));
    }
    let mem = info["MemTotal"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    out.push_str(&format!(" Total Memory: {mem:.2}GiB\n"));
    for (label, key) in [
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
        ("Debug Mode", "Debug"),
    ] {
        out.push_str(&format!(" {label}: {}\n", s(key)));
    }
    Ok(Output::text(out))
}
