//! Containers through the Python `docker` SDK (the `docker` package on PyPI, installed
//! by hack/deps.sh) against a private berthd: run with env, labels, limits, workdir and
//! user; list with filters; logs; wait; stop, kill, restart, pause, rename, top,
//! remove, prune; a restart policy; and the SDK's error classes. What a container
//! sees is checked from inside it, through its logs.

use anyhow::Result;
use berth_e2e::{require_root, Berthd};

/// Shared by every script: the client and a polling helper.
const PRELUDE: &str = r#"
import sys, time, re, docker
c = docker.DockerClient(base_url=sys.argv[1])

def eventually(what, f, secs=20):
    deadline = time.time() + secs
    while time.time() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)
"#;

/// Runs `script` (after the prelude) with python3 against `berthd`; returns stdout.
fn sdk(berthd: &Berthd, script: &str) -> Result<String> {
    berthd.python_sdk(&format!("{PRELUDE}\n{script}"))
}

const RUN_INSPECT_LIST_LOGS: &str = r#"
script = ("echo $FOO; pwd; id -u; id -g; echo to-stderr >&2; "
          "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "
          "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
          "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; "
          "echo ready; sleep 1000")
web = c.containers.run("busybox", ["sh", "-c", script], detach=True, name="sdk-web",
                       environment={"FOO": "bar"}, labels={"app": "sdk", "tier": "web"},
                       mem_limit="64m", pids_limit=50, nano_cpus=500_000_000,
                       working_dir="/tmp", user="33:44")
assert len(web.id) == 64, web.id
eventually("the script's output", lambda: b"ready" in web.logs())

# What the container saw, from inside: env, workdir, user, limits.
out = web.logs(stdout=True, stderr=False).decode().splitlines()
assert out == ["bar", "/tmp", "33", "44", "67108864", "50", "50000", "ready"], out
err = web.logs(stdout=False, stderr=True).decode()
assert err == "to-stderr\n", repr(err)
assert web.logs(tail=1) == b"ready\n", web.logs(tail=1)
stamped = web.logs(timestamps=True, tail=2).decode().splitlines()
assert len(stamped) == 2, stamped
for line in stamped:
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (\d+|ready)$", line), line

# What the daemon reports.
web.reload()
a = web.attrs
assert a["Name"] == "/sdk-web", a["Name"]
assert a["State"]["Status"] == "running" and a["State"]["Running"] is True, a["State"]
assert a["State"]["Pid"] > 0, a["State"]
assert "FOO=bar" in a["Config"]["Env"], a["Config"]["Env"]
assert a["Config"]["Labels"] == {"app": "sdk", "tier": "web"}, a["Config"]["Labels"]
assert a["Config"]["WorkingDir"] == "/tmp" and a["Config"]["User"] == "33:44", a["Config"]
assert a["Config"]["Image"] == "busybox", a["Config"]["Image"]
assert a["HostConfig"]["Memory"] == 64 * 1024 * 1024, a["HostConfig"]["Memory"]
assert a["HostConfig"]["PidsLimit"] == 50, a["HostConfig"]["PidsLimit"]
assert a["HostConfig"]["NanoCpus"] == 500_000_000, a["HostConfig"]["NanoCpus"]
assert web.status == "running" and web.name == "sdk-web" and web.labels["tier"] == "web"
assert web.image.id == c.images.get("busybox").id

# A second container that has exited, with its exit code.
job = c.containers.run("busybox", ["sh", "-c", "echo done; exit 3"], detach=True,
                       name="sdk-job", labels={"app": "sdk", "tier": "job"})
assert job.wait()["StatusCode"] == 3
job.reload()
assert job.status == "exited" and job.attrs["State"]["ExitCode"] == 3, job.attrs["State"]
assert job.logs() == b"done\n"

# Lists: running by default, all, and filters.
names = lambda cs: sorted(x.name for x in cs)
assert names(c.containers.list()) == ["sdk-web"], names(c.containers.list())
assert names(c.containers.list(all=True)) == ["sdk-job", "sdk-web"]
assert names(c.containers.list(all=True, filters={"label": "tier=job"})) == ["sdk-job"]
assert names(c.containers.list(all=True, filters={"label": "app"})) == ["sdk-job", "sdk-web"]
assert names(c.containers.list(all=True, filters={"status": "exited"})) == ["sdk-job"]
assert names(c.containers.list(filters={"name": "sdk-web"})) == ["sdk-web"]
assert names(c.containers.list(all=True, filters={"id": job.id[:10]})) == ["sdk-job"]
assert names(c.containers.list(all=True, filters={"ancestor": "busybox"})) == ["sdk-job", "sdk-web"]
assert names(c.containers.list(all=True, filters={"exited": "3"})) == ["sdk-job"]
assert c.containers.list(all=True, filters={"label": "tier=db"}) == []
assert c.containers.get(web.id[:8]).id == web.id

# top, pause/unpause, rename.
top = web.top()
cmd_col = top["Titles"].index("CMD")
assert any("sleep 1000" in p[cmd_col] for p in top["Processes"]), top
web.pause()
web.reload()
assert web.status == "paused" and web.attrs["State"]["Paused"] is True, web.attrs["State"]
web.unpause()
web.reload()
assert web.status == "running", web.status
web.rename("sdk-renamed")
web.reload()
assert web.name == "sdk-renamed", web.name
assert c.containers.get("sdk-renamed").id == web.id

# sh as PID 1 ignores SIGTERM: stop(timeout=1) kills it after a second.
t0 = time.time()
web.stop(timeout=1)
took = time.time() - t0
assert 0.9 < took < 8, took
web.reload()
assert web.status == "exited" and web.attrs["State"]["ExitCode"] == 137, web.attrs["State"]

# Without detach, run waits, returns the output, and removes with remove=True.
assert c.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
try:
    c.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 4"], name="sdk-fails")
    raise SystemExit("a failing command should raise ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 4 and b"oops" in e.stderr, (e.exit_status, e.stderr)
c.containers.get("sdk-fails").remove()

# remove(force=True) takes a running container; prune the exited ones.
again = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-again")
again.remove(force=True)
pruned = c.containers.prune()
assert sorted(pruned["ContainersDeleted"]) == sorted([web.id, job.id]), pruned
assert c.containers.list(all=True) == [], c.containers.list(all=True)
print("sdk ok")
"#;

#[test]
fn python_sdk_runs_inspects_lists_logs_stops_and_removes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = sdk(&berthd, RUN_INSPECT_LIST_LOGS)?;
    assert_eq!(out.trim(), "sdk ok");
    Ok(())
}

const SIGNALS_RESTART_POLICY: &str = r#"
# kill(signal): the container's trap sees the signal and exits with its own code.
trap = c.containers.run("busybox", ["sh", "-c",
                        "trap 'echo got-usr1; exit 5' USR1; echo armed; sleep 1000 & wait"],
                        detach=True, name="sdk-trap")
eventually("the trap armed", lambda: b"armed" in trap.logs())
trap.kill(signal="SIGUSR1")
assert trap.wait()["StatusCode"] == 5
assert trap.logs() == b"armed\ngot-usr1\n", trap.logs()

# kill by number; wait reports 128+9.
sleeper = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-sleeper")
sleeper.kill(signal=9)
assert sleeper.wait()["StatusCode"] == 137

# restart: the same container runs its command once more.
counter = c.containers.run("busybox", ["sh", "-c", "echo start; sleep 1000"], detach=True,
                           name="sdk-counter")
eventually("first start", lambda: counter.logs() == b"start\n")
counter.reload()
first_pid = counter.attrs["State"]["Pid"]
counter.restart(timeout=0)
eventually("second start", lambda: counter.logs() == b"start\nstart\n")
counter.reload()
assert counter.status == "running", counter.status
assert counter.attrs["State"]["Pid"] not in (0, first_pid), counter.attrs["State"]

# on-failure:2 restarts a failing command twice, then leaves it exited.
flaky = c.containers.run("busybox", ["sh", "-c", "echo run; exit 1"], detach=True,
                         name="sdk-flaky",
                         restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
def settled():
    flaky.reload()
    s = flaky.attrs
    # The count goes up as a restart is scheduled, before its run (which, on the
    # default bridge, attaches first): the third run's output marks the end.
    return (s["State"]["Status"] == "exited" and s["RestartCount"] == 2
            and flaky.logs() == b"run\nrun\nrun\n")
eventually("two restarts and a final exit", settled)
time.sleep(1)
flaky.reload()
assert flaky.attrs["RestartCount"] == 2, flaky.attrs["RestartCount"]
assert flaky.attrs["State"]["ExitCode"] == 1
assert flaky.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
assert flaky.logs() == b"run\nrun\nrun\n", flaky.logs()
# A clean exit is not a failure: no restart.
fine = c.containers.run("busybox", ["true"], detach=True, name="sdk-fine",
                        restart_policy={"Name": "on-failure", "MaximumRetryCount": 5})
assert fine.wait()["StatusCode"] == 0
time.sleep(1)
fine.reload()
assert fine.attrs["RestartCount"] == 0 and fine.status == "exited", fine.attrs

# prune removes the exited containers only.
pruned = c.containers.prune()
gone = sorted(pruned["ContainersDeleted"])
assert gone == sorted([trap.id, sleeper.id, flaky.id, fine.id]), pruned
assert [x.name for x in c.containers.list(all=True)] == ["sdk-counter"]
counter.remove(force=True)
print("sdk ok")
"#;

#[test]
fn python_sdk_kills_restarts_prunes_and_follows_restart_policies() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = sdk(&berthd, SIGNALS_RESTART_POLICY)?;
    assert_eq!(out.trim(), "sdk ok");
    Ok(())
}

const ERRORS: &str = r#"
try:
    c.containers.get("no-such-container")
    raise SystemExit("get should raise NotFound")
except docker.errors.NotFound as e:
    assert e.status_code == 404, e.status_code
    assert "No such container: no-such-container" in e.explanation, e.explanation

first = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-dup")
try:
    c.containers.run("busybox", ["true"], detach=True, name="sdk-dup")
    raise SystemExit("a taken name should be a conflict")
except docker.errors.APIError as e:
    assert e.status_code == 409 and e.is_client_error(), e.status_code
    assert 'The container name "/sdk-dup" is already in use' in e.explanation, e.explanation
try:
    first.remove()
    raise SystemExit("removing a running container should be a conflict")
except docker.errors.APIError as e:
    assert e.status_code == 409, e.status_code
for op in (lambda: c.containers.get("sdk-nope").stop(), lambda: c.api.kill("sdk-nope"),
           lambda: c.api.remove_container("sdk-nope"), lambda: c.api.logs("sdk-nope")):
    try:
        op()
        raise SystemExit("an unknown container should raise NotFound")
    except docker.errors.NotFound:
        pass

try:
    c.containers.create("no-such-image:1", ["true"])
    raise SystemExit("create should raise ImageNotFound")
except docker.errors.ImageNotFound as e:
    assert e.status_code == 404, e.status_code

# A command that does not exist: the start is refused (400) and the container keeps
# docker's exit code 127; one that cannot be invoked gets 126.
for cmd, code in ((["no-such-command"], 127), (["/etc/passwd"], 126)):
    bad = c.containers.create("busybox", cmd)
    try:
        bad.start()
        raise SystemExit("starting %s should fail" % cmd)
    except docker.errors.APIError as e:
        assert e.status_code == 400, (cmd, e.status_code, e.explanation)
    bad.reload()
    assert bad.attrs["State"]["ExitCode"] == code, (cmd, bad.attrs["State"])
    assert bad.attrs["State"]["Error"], bad.attrs["State"]
    bad.remove()
first.remove(force=True)
print("sdk ok")
"#;

#[test]
fn python_sdk_errors_are_dockers_classes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = sdk(&berthd, ERRORS)?;
    assert_eq!(out.trim(), "sdk ok");
    Ok(())
}
