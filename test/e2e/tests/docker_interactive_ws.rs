//! Docker's WebSocket attach (`GET /containers/{id}/attach/ws`) through the Python
//! `docker` SDK's `attach_socket(ws=True)` and `websocket-client` (both installed by
//! hack/deps.sh) against a private berthd: input in, raw output out (no stdcopy frames)
//! with and without a TTY, the detach keys, the client closing, the output ending,
//! the refusals (unknown, paused); the containers run on and berthd keeps no
//! descriptor.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};

const SCRIPT: &str = r#"
import socket, sys, threading, time, docker, websocket

# docker-py makes the WebSocket URL by swapping its base URL's http:// for ws://, which
# a unix socket's http+docker:// does not match: serve the SDK a loopback TCP port
# relayed to berthd's socket.
def relay(unix_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    def accept():
        while True:
            client, _ = server.accept()
            berthd = socket.socket(socket.AF_UNIX)
            berthd.connect(unix_path)
            threading.Thread(target=pipe, args=(client, berthd), daemon=True).start()
            threading.Thread(target=pipe, args=(berthd, client), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]

c = docker.DockerClient(base_url="tcp://127.0.0.1:%d" % relay(sys.argv[1]))

def recv_until(ws, done):
    got = b""
    while not done(got):
        m = ws.recv()
        assert not isinstance(m, str), "a text frame at API 1.41: %r" % m
        if not m:
            raise SystemExit("the WebSocket closed early: %r" % got)
        got += m
    return got

def closed(ws):
    try:
        return ws.recv() in ("", b"")
    except websocket.WebSocketConnectionClosedException:
        return True

def running(box):
    time.sleep(0.3)
    box.reload()
    return box.status == "running"

# A TTY: the terminal echoes the line and cat writes it back; the detach keys end the
# session, the container runs on.
tty = c.containers.run("busybox", ["cat"], detach=True, stdin_open=True, tty=True,
                       name="ws-tty")
ws = tty.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
                       ws=True)
ws.settimeout(10)
ws.send("ping\n")
got = recv_until(ws, lambda b: b.count(b"ping\r\n") >= 2)
assert got == b"ping\r\nping\r\n", got
ws.send_binary(b"\x10\x11")
assert closed(ws), "the detach keys did not close the WebSocket"
assert running(tty), tty.status
# Attach again, with other detach keys.
ws = tty.attach_socket(params={"stream": 1, "detachKeys": "ctrl-x"}, ws=True)
ws.settimeout(10)
ws.send("again\n")
recv_until(ws, lambda b: b.count(b"again\r\n") >= 2)
ws.send("\x18")
assert closed(ws), "ctrl-x did not close the WebSocket"
assert running(tty), tty.status

# No TTY, the SDK's default parameters (no stdin named: API 1.41 attaches it anyway):
# the output raw, without stdcopy headers; the client closing leaves the container.
plain = c.containers.run("busybox", ["cat"], detach=True, stdin_open=True, name="ws-plain")
ws = plain.attach_socket(ws=True)
ws.settimeout(10)
ws.send_binary(b"pong\n")
assert recv_until(ws, lambda b: b.endswith(b"\n")) == b"pong\n"
ws.close()
assert running(plain), plain.status

# The output ending (the process exits) closes the WebSocket; stderr comes too.
once = c.containers.run("busybox", ["sh", "-c", "read x; echo got-$x; echo err >&2"],
                        detach=True, stdin_open=True, name="ws-once")
ws = once.attach_socket(ws=True)
ws.settimeout(10)
ws.send("it\n")
got = recv_until(ws, lambda b: b"got-it\n" in b and b"err\n" in b)
assert sorted(got.splitlines()) == [b"err", b"got-it"], got
assert closed(ws), "the end of the output did not close the WebSocket"
once.reload()
assert once.status == "exited", once.status

# Refusals: Docker's status codes in the handshake's answer.
def refused(ref):
    try:
        c.api.attach_socket(ref, ws=True)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    raise SystemExit("attach/ws to %s was not refused" % ref)
assert refused("no-such-container") == 404
plain.pause()
assert refused("ws-plain") == 409
plain.unpause()
assert running(plain), plain.status

for box in (tty, plain, once):
    box.remove(force=True)
c.close()
print("sdk websocket attach ok")
"#;

/// berthd's open descriptors, its inotify ones left out (the engine's log follower
/// outlives an attach until the container writes again or stops; see
/// docker_interactive.rs).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy() != "anon_inode:inotify")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn python_sdk_attaches_over_a_websocket() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let pid = berthd.pid().context("berthd's pid")?;
    // Warm up what berthd opens once (the shim machinery, the log reader).
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "warm", "busybox", "sleep", "1000"]),
    )?;
    run_ok(berthd.docker().args(["exec", "warm", "true"]))?;
    run_ok(berthd.docker().args(["rm", "-f", "warm"]))?;
    let before = open_fds(pid);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("scenario.py");
    std::fs::write(&path, SCRIPT)?;
    let out = run_ok(
        Command::new("python3")
            .arg(&path)
            .arg(berthd.docker_socket()),
    )
    .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "sdk websocket attach ok");

    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > before {
        if Instant::now() > deadline {
            bail!(
                "berthd had {before} descriptors before the attaches and still has {}",
                open_fds(pid)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
