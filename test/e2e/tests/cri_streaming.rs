//! CRI streaming (Exec, Attach, PortForward) against a real berthd, driven by real
//! clients of each protocol: a Go client on Docker's spdystream (the SPDY library of
//! kubelet's and crictl's client stack, built offline by `test/e2e/go/build-spdy.sh`)
//! and a Python client on the websocket-client library (`test/e2e/py/ws-client.py`).

mod cri_common;
mod cri_streaming_common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_e2e::require_root;
use cri_common::{container, host_pod, setup_base};
use cri_streaming_common::*;
use k8s_cri::v1 as cri;

#[test]
fn exec_over_spdy_in_every_stream_combination() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let go = build_spdy_client(dir.path())?;
    let setup = setup_base("crie2e/stream-exec", "")?;
    let c = &setup.client;
    let (_pod, id, _guard) = sleeper(&setup, "stream-exec")?;

    // stdout and stderr apart, the exit code in the Status.
    let url = exec_url(
        c,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        OUT_ERR,
    )?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(OUT_ERR));
    let v = spdy(&go, &args, "")?;
    assert_eq!(v["protocol"], "v4.channel.k8s.io", "{v}");
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_exit(&v, 3)?;

    // stdin without a tty: cat echoes it, stdin's end ends cat.
    let o = Opts {
        stdin: true,
        ..OUT_ERR
    };
    let url = exec_url(c, &id, &["cat"], o)?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(o));
    let v = spdy(&go, &args, "hello over spdy\n")?;
    assert_eq!(v["stdout"], "hello over spdy\n", "{v}");
    assert_success(&v)?;

    // A tty without stdin: the size the client sent is the terminal's.
    let o = Opts {
        stdout: true,
        tty: true,
        ..Default::default()
    };
    let url = exec_url(c, &id, &["sh", "-c", "sleep 1; stty size"], o)?;
    let mut args = vec!["exec", url.as_str(), "-resize", "100x40"];
    args.extend(flags(o));
    let v = spdy(&go, &args, "")?;
    assert_eq!(v["stdout"].as_str().map(str::trim), Some("40 100"), "{v}");
    assert_success(&v)?;

    // A tty with stdin: a line read through the terminal.
    let o = Opts {
        stdin: true,
        stdout: true,
        tty: true,
        ..Default::default()
    };
    let url = exec_url(c, &id, &["sh", "-c", "read x; echo got-$x; exit 4"], o)?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(o));
    let v = spdy(&go, &args, "abc\n")?;
    assert!(
        v["stdout"].as_str().unwrap_or("").contains("got-abc"),
        "{v}"
    );
    assert_exit(&v, 4)?;

    // A command that does not exist is reported as such.
    let url = exec_url(c, &id, &["no-such-command-here"], OUT_ERR)?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(OUT_ERR));
    let v = spdy(&go, &args, "")?;
    let s = status(&v)?;
    assert_eq!(s["status"], "Failure", "{v}");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-command-here"),
        "{v}"
    );

    // Older clients: v3 and v1 carry the failure as text, nothing on success.
    for protocol in ["v3.channel.k8s.io", "channel.k8s.io"] {
        let url = exec_url(c, &id, &["sh", "-c", "echo old; exit 2"], OUT_ERR)?;
        let mut args = vec!["exec", url.as_str(), "-protocol", protocol];
        args.extend(flags(OUT_ERR));
        let v = spdy(&go, &args, "")?;
        assert_eq!(v["stdout"], "old\n", "{protocol}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("non-zero exit code"),
            "{protocol}: {v}"
        );
        let url = exec_url(c, &id, &["true"], OUT_ERR)?;
        let mut args = vec!["exec", url.as_str(), "-protocol", protocol];
        args.extend(flags(OUT_ERR));
        let v = spdy(&go, &args, "")?;
        assert_eq!(v["error"], "", "{protocol}: {v}");
    }

    // A token is good once; an unknown one never.
    let url = exec_url(c, &id, &["true"], OUT_ERR)?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(OUT_ERR));
    assert_success(&spdy(&go, &args, "")?)?;
    let v = spdy(&go, &args, "")?;
    assert_eq!(v["http_status"], 404, "{v}");
    let bogus = format!("{}x", url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url));
    let v = spdy(&go, &["exec", &format!("{bogus}/nope"), "-stdout"], "")?;
    assert_eq!(v["http_status"], 404, "{v}");

    // Invalid requests are refused at the RPC.
    let mut rt = c.runtime()?;
    for (cmd, o) in [
        (vec![], OUT_ERR),
        (vec!["true".to_string()], Opts::default()),
        (
            vec!["true".to_string()],
            Opts {
                tty: true,
                ..OUT_ERR
            },
        ),
    ] {
        let err = c
            .block_on(rt.exec(cri::ExecRequest {
                container_id: id.clone(),
                cmd,
                tty: o.tty,
                stdin: o.stdin,
                stdout: o.stdout,
                stderr: o.stderr,
            }))
            .expect_err("an invalid Exec was accepted");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    }

    // A client that goes away mid-stream takes its process with it.
    let url = exec_url(c, &id, &["sleep", "4242"], OUT_ERR)?;
    let mut args = vec!["exec", url.as_str(), "-disconnect-after", "1s"];
    args.extend(flags(OUT_ERR));
    let v = spdy(&go, &args, "")?;
    assert_eq!(v["fail"], "disconnected", "{v}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = c.exec(&id, &["ps", "-o", "args"], 10)?;
        let text = String::from_utf8_lossy(&ps.stdout).into_owned();
        if !text.contains("sleep 4242") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the disconnected exec's process is still there: {text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn exec_and_attach_over_websocket_and_attach_over_spdy() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let go = build_spdy_client(dir.path())?;
    let setup = setup_base("crie2e/stream-ws", "")?;
    let c = &setup.client;
    let (_pod, id, _guard) = sleeper(&setup, "stream-ws")?;

    let url = exec_url(
        c,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        OUT_ERR,
    )?;
    let v = ws(&["exec", &url, "--protocol", "v4.channel.k8s.io"])?;
    assert_eq!(v["protocol"], "v4.channel.k8s.io", "{v}");
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_exit(&v, 3)?;

    // v5: stdin closed by the close signal.
    let o = Opts {
        stdin: true,
        ..OUT_ERR
    };
    let url = exec_url(c, &id, &["cat"], o)?;
    let v = ws(&[
        "exec",
        &url,
        "--protocol",
        "v5.channel.k8s.io",
        "--stdin",
        "over v5\n",
        "--v5-close-stdin",
    ])?;
    assert_eq!(v["stdout"], "over v5\n", "{v}");
    assert_success(&v)?;

    // base64 framing; v1 status (nothing on success).
    let url = exec_url(c, &id, &["echo", "b64"], OUT_ERR)?;
    let v = ws(&["exec", &url, "--protocol", "base64.channel.k8s.io"])?;
    assert_eq!(v["stdout"], "b64\n", "{v}");
    assert_eq!(v["error"], "", "{v}");

    // A tty's size from the resize channel.
    let o = Opts {
        stdout: true,
        tty: true,
        ..Default::default()
    };
    let url = exec_url(c, &id, &["sh", "-c", "sleep 1; stty size"], o)?;
    let v = ws(&["exec", &url, "--resize", "90x30"])?;
    assert_eq!(v["stdout"].as_str().map(str::trim), Some("30 90"), "{v}");

    // A reused token is refused at the handshake.
    let v = ws(&["exec", &url])?;
    assert_eq!(v["http_status"], 404, "{v}");

    // Attach to a container echoing its stdin, two clients at once (SPDY first, then
    // WebSocket); both detach by hanging up, and the container runs on.
    let pod = host_pod("stream-attach", &setup.work);
    let (pod_id, _g2) = setup.start_pod(&pod)?;
    let mut config = container("echo", &setup.base(), "cat", "");
    config.stdin = true;
    let cid = c.create_and_start(&pod_id, &pod, config)?;
    let o = Opts {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let spdy_url = attach_url(c, &cid, o)?;
    let ws_url = attach_url(c, &cid, o)?;
    let spdy_attach = {
        let go = go.clone();
        std::thread::spawn(move || {
            let mut args = vec!["exec", spdy_url.as_str(), "-disconnect-after", "4s"];
            args.extend(flags(o));
            spdy(&go, &args, "one\n")
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let w = ws(&[
        "exec",
        &ws_url,
        "--protocol",
        "v5.channel.k8s.io",
        "--stdin",
        "two\n",
        "--delay",
        "1",
        "--for",
        "2",
    ])?;
    let s = spdy_attach
        .join()
        .map_err(|_| anyhow::anyhow!("the SPDY attach thread panicked"))??;
    assert_eq!(s["stdout"], "one\ntwo\n", "{s}");
    assert_eq!(w["stdout"], "two\n", "{w}");
    assert_eq!(w["hung_up"], true, "{w}");
    std::thread::sleep(Duration::from_millis(300));
    let st = c.status(&cid)?;
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerRunning as i32,
        "detaching stopped the container: {st:?}"
    );

    // stdin_once: the attacher's stdin end is the container's, and its end the attach's.
    let mut config = container("echo-once", &setup.base(), "cat", "");
    config.stdin = true;
    config.stdin_once = true;
    let once = c.create_and_start(&pod_id, &pod, config)?;
    let url = attach_url(c, &once, o)?;
    let mut args = vec!["exec", url.as_str()];
    args.extend(flags(o));
    let v = spdy(&go, &args, "once\n")?;
    assert_eq!(v["stdout"], "once\n", "{v}");
    assert_success(&v)?;
    c.wait_state(&once, cri::ContainerState::ContainerExited)?;
    Ok(())
}

#[test]
fn port_forward_to_bridged_and_host_network_pods() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let go = build_spdy_client(dir.path())?;
    let setup = setup_base("crie2e/stream-pf", "")?;
    let c = &setup.client;

    // A bridged pod: the server listens on the pod's loopback only.
    let _bridge = BridgeGuard("bcripf0");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "cripf-net",
        "plugins": [{
            "type": "bridge", "bridge": "bcripf0", "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.252.7.0/24"}]],
                     "dataDir": setup.work.join("ipam")}
        }]
    });
    std::fs::write(
        setup.work.join("net.d").join("10-pf.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    let mut pod = host_pod("stream-pf", &setup.work);
    if let Some(ns) = pod
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        ns.network = cri::NamespaceMode::Pod as i32;
    }
    let (pod_id, _guard) = setup.start_pod(&pod)?;
    httpd(&setup, &pod, &pod_id, 8080, "bridged-ok")?;

    // Two ports over one connection: one served, one refused.
    let url = port_forward_url(c, &pod_id, &[8080, 8081])?;
    let v = spdy(&go, &["portforward", &url, "8080,8081", GET], "")?;
    assert_eq!(v["protocol"], "portforward.k8s.io", "{v}");
    let served = v["ports"]["8080"]["data"].as_str().unwrap_or("");
    assert!(served.contains("bridged-ok"), "{v}");
    assert_eq!(v["ports"]["8080"]["error"], "", "{v}");
    let refused = v["ports"]["8081"]["error"].as_str().unwrap_or("");
    assert!(refused.contains("failed to connect"), "{v}");

    // The WebSocket form: ports in the query.
    let url = port_forward_url(c, &pod_id, &[8080])?;
    let v = ws(&[
        "portforward",
        &format!("{url}?port=8080"),
        "--protocol",
        "v4.channel.k8s.io",
        "--send",
        GET,
    ])?;
    let served = v["ports"]["8080"]["data"].as_str().unwrap_or("");
    assert!(served.contains("bridged-ok"), "{v}");

    // A host-network pod: the host's loopback.
    let port = 20000 + (std::process::id() % 10000) as u16;
    let host = host_pod("stream-pf-host", &setup.work);
    let (host_id, _g2) = setup.start_pod(&host)?;
    httpd(&setup, &host, &host_id, port, "host-ok")?;
    let url = port_forward_url(c, &host_id, &[i32::from(port)])?;
    let v = spdy(&go, &["portforward", &url, &port.to_string(), GET], "")?;
    let served = v["ports"][port.to_string()]["data"].as_str().unwrap_or("");
    assert!(served.contains("host-ok"), "{v}");
    Ok(())
}
