//! Interactive use through the Python `docker` SDK (installed by hack/deps.sh) against
//! a private berthd: `containers.run` in the foreground, `exec_run` (output, exit code,
//! `demux`, env/workdir/user, a TTY, a missing command) and `attach_socket` (stdin in,
//! stdcopy frames out, the container running on after the socket closes).

use anyhow::Result;
use berth_e2e::{require_root, Berthd};

const SCRIPT: &str = r#"
import sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])

out = c.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True)
assert out == b"hi\n", out
try:
    c.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    raise SystemExit("a failing run raised nothing")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e

box = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-exec")
r = box.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
assert r.exit_code == 3, r
assert sorted(r.output.splitlines()) == [b"err", b"out"], r.output
r = box.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
assert r.exit_code == 0 and r.output == (b"out\n", b"err\n"), r
r = box.exec_run(["sh", "-c", "echo $A; pwd; id -u"], environment={"A": "b"},
                 workdir="/tmp", user="1000")
assert r.exit_code == 0 and r.output == b"b\n/tmp\n1000\n", r
r = box.exec_run("tty", tty=True)
assert r.exit_code == 0 and r.output.startswith(b"/dev/pts/"), r
r = box.exec_run("no-such-command")
assert r.exit_code == 127, r
assert b"executable file not found" in r.output, r.output

cat = c.containers.run("busybox", ["cat"], detach=True, stdin_open=True, name="sdk-cat")
s = cat.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
sock = s._sock
sock.sendall(b"ping\n")
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("the attach stream ended early: %r" % buf)
        buf += chunk
    return buf
header = recv_exact(8)
assert header[0] == 1 and header[1:4] == b"\0\0\0", header
assert recv_exact(int.from_bytes(header[4:], "big")) == b"ping\n"
sock.close()
time.sleep(0.5)
cat.reload()
assert cat.status == "running", cat.status
print("sdk interactive ok")
"#;

#[test]
fn python_sdk_runs_execs_and_attaches() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = berthd.python_sdk(SCRIPT)?;
    assert_eq!(out.trim(), "sdk interactive ok");
    Ok(())
}
