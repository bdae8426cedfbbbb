//! CRI streaming over TLS (`enable_tls_streaming`): a certificate the test makes with
//! openssl and passes through `tls_cert_file`/`tls_key_file`, which both clients trust
//! (Go's crypto/tls under the spdystream client, Python's ssl under websocket-client);
//! berthd's own self-signed certificate when no files are given; bad files refused at
//! start, naming the setting and the file.

mod cri_common;
mod cri_streaming_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use berth_e2e::require_root;
use cri_common::setup_base;
use cri_streaming_common::*;
use serde_json::Value;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM files.
fn openssl_cert(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=berth-e2e"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert, key))
}

fn tls_config(cert: &Path, key: &Path) -> String {
    format!(
        "[cri_streaming]\nenable_tls_streaming = true\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// The Go client, trusting only `ca` when given (else not verifying).
fn spdy_tls(go: &Path, ca: Option<&Path>, args: &[&str], stdin: &str) -> Result<Value> {
    let mut cmd = Command::new(go);
    match ca {
        Some(ca) => cmd.env("SPDY_CLIENT_CA_FILE", ca),
        None => cmd.env_remove("SPDY_CLIENT_CA_FILE"),
    };
    cmd.args(args);
    run_client(cmd, stdin)
}

const SCRIPT: &str = "echo out; echo err >&2; exit 3";

#[test]
fn exec_and_port_forward_over_tls_with_given_certificate() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let go = build_spdy_client(dir.path())?;
    let (cert, key) = openssl_cert(dir.path(), "stream")?;
    let setup = setup_base("crie2e/stream-tls", &tls_config(&cert, &key))?;
    let c = &setup.client;
    let (pod_id, id, _guard) = sleeper(&setup, "stream-tls")?;

    // SPDY over TLS, the client trusting only the given certificate.
    let url = exec_url(c, &id, &["sh", "-c", SCRIPT], OUT_ERR)?;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let v = spdy_tls(&go, Some(&cert), &["exec", &url, "-stdout", "-stderr"], "")?;
    assert_eq!(v["http_status"], 101, "{v}");
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_exit(&v, 3)?;

    // stdin over TLS too.
    let o = Opts {
        stdin: true,
        ..OUT_ERR
    };
    let url = exec_url(c, &id, &["cat"], o)?;
    let v = spdy_tls(
        &go,
        Some(&cert),
        &["exec", &url, "-stdin", "-stdout", "-stderr"],
        "over tls\n",
    )?;
    assert_eq!(v["stdout"], "over tls\n", "{v}");
    assert_success(&v)?;

    // WebSocket over TLS (wss), trusting the given certificate.
    let url = exec_url(c, &id, &["sh", "-c", SCRIPT], OUT_ERR)?;
    let ca = cert.display().to_string();
    let v = ws(&["exec", &url, "--ca", &ca])?;
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_exit(&v, 3)?;

    // Port-forward to an httpd on the (host-network) pod's loopback, both protocols.
    let port = 30000 + (std::process::id() % 10000) as u16;
    let pod = cri_common::host_pod("stream-tls", &setup.work);
    httpd(&setup, &pod, &pod_id, port, "tls-ok")?;
    let p = port.to_string();
    let url = port_forward_url(c, &pod_id, &[i32::from(port)])?;
    assert!(url.starts_with("https://"), "{url}");
    let v = spdy_tls(&go, Some(&cert), &["portforward", &url, &p, GET], "")?;
    let served = v["ports"][&p]["data"].as_str().unwrap_or("");
    assert!(served.contains("tls-ok"), "{v}");
    let url = port_forward_url(c, &pod_id, &[i32::from(port)])?;
    let v = ws(&[
        "portforward",
        &format!("{url}?port={port}"),
        "--send",
        GET,
        "--ca",
        &ca,
    ])?;
    let served = v["ports"][&p]["data"].as_str().unwrap_or("");
    assert!(served.contains("tls-ok"), "{v}");

    // A client that trusts another certificate refuses the server: it is really TLS,
    // with really this certificate.
    let (other, _) = openssl_cert(dir.path(), "other")?;
    let url = exec_url(c, &id, &["true"], OUT_ERR)?;
    let v = spdy_tls(&go, Some(&other), &["exec", &url, "-stdout"], "");
    let text = format!("{v:?}");
    assert!(
        text.contains("certificate") || text.contains("x509"),
        "{text}"
    );
    Ok(())
}

#[test]
fn tls_without_files_serves_a_self_signed_certificate() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let go = build_spdy_client(dir.path())?;
    let setup = setup_base(
        "crie2e/stream-tls-self",
        "[cri_streaming]\nenable_tls_streaming = true\n",
    )?;
    let c = &setup.client;
    let (_pod_id, id, _guard) = sleeper(&setup, "stream-tls-self")?;
    let url = exec_url(c, &id, &["sh", "-c", SCRIPT], OUT_ERR)?;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let v = spdy_tls(&go, None, &["exec", &url, "-stdout", "-stderr"], "")?;
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_exit(&v, 3)?;
    let url = exec_url(c, &id, &["sh", "-c", SCRIPT], OUT_ERR)?;
    let v = ws(&["exec", &url])?;
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_exit(&v, 3)?;
    Ok(())
}

#[test]
fn bad_tls_files_stop_berthd_naming_the_setting_and_file() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let (cert, key) = openssl_cert(dir.path(), "good")?;
    let missing = dir.path().join("missing.crt");
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key\n")?;
    let (_, other_key) = openssl_cert(dir.path(), "other")?;
    let cases = [
        (tls_config(&missing, &key), "tls_cert_file", &missing),
        (tls_config(&cert, &garbage), "tls_key_file", &garbage),
        (
            tls_config(&cert, &other_key),
            "do not go together",
            &other_key,
        ),
        (
            format!(
                "[cri_streaming]\nenable_tls_streaming = true\ntls_key_file = {:?}\n",
                key.display().to_string()
            ),
            "tls_key_file",
            &key,
        ),
    ];
    for (config, setting, file) in cases {
        let err = match berth_e2e::Berthd::start_with_config(&config) {
            Ok(_) => bail!("berthd started with {config:?}"),
            Err(e) => format!("{e:#}"),
        };
        let file = file.display().to_string();
        assert!(
            err.contains(setting) && err.contains(&file),
            "{config:?}: {err}"
        );
    }
    Ok(())
}
