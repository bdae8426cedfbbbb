//! `berth version`: client and server versions, as `docker version` prints them.

use serde_json::{json, Value};

use super::Output;
use crate::client::{Client, API_VERSION};
use crate::template::Template;

pub async fn run(client: &Client, format: Option<&str>) -> anyhow::Result<Output> {
    let arch = go_arch();
    let client_data = json!({
        "Platform": { "Name": "berth" },
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "Os": "linux",
        "Arch": arch,
        "Context": "default",
    });
    // The client section prints even when the daemon is down, as docker's does.
    let server = client.get_json("/version").await;
    let server_data = server.as_ref().ok().map(server_fields);
    let data = json!({ "Client": client_data, "Server": server_data });
    if let Some(format) = format {
        return Ok(Output::text(Template::parse(format)?.render(&data)?));
    }
    let mut out = format!(
        "Client:\n Version:           {}\n API version:       {API_VERSION}\n OS/Arch:           linux/{arch}\n Context:           default\n",
        env!("CARGO_PKG_VERSION")
    );
    match server {
        Ok(server) => {
            let s = |k: &str| server[k].as_str().unwrap_or("").to_string();
            out.push_str(&format!(
                "\nServer: {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel Version:   {}\n",
                server["Platform"]["Name"].as_str().unwrap_or(""),
                s("Version"),
                s("ApiVersion"),
                s("MinAPIVersion"),
                s("Os"),
                s("Arch"),
                s("KernelVersion"),
            ));
            Ok(Output::text(out))
        }
        Err(err) => Ok(Output::text(out).failing(err.into())),
    }
}

/// The server's answer under docker's Go field names (`APIVersion`, not `ApiVersion`).
fn server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(map) = v.as_object_mut() {
        if let Some(api) = map.remove("ApiVersion") {
            map.insert("APIVersion".to_string(), api);
        }
    }
    v
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
