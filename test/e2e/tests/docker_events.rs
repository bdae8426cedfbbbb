//! `GET /events` through Debian's docker 20.10 client, berth's own CLI and the Python
//! SDK: a container's lifecycle and image operations replayed with `--since/--until`
//! and filters, followed live, and an unknown filter kind refused.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// Now as a Unix time with nanoseconds, as `--since` takes it.
fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn docker_cli_replays_and_filters_events() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let t0 = now();
    run_ok(berthd.docker().args([
        "run", "-d", "--name", "ev1", "--label", "tier=web", "busybox", "sh", "-c", "exit 3",
    ]))?;
    assert_eq!(run_ok(berthd.docker().args(["wait", "ev1"]))?.trim(), "3");
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "ev2", "busybox", "sleep", "100"]),
    )?;
    run_ok(berthd.docker().args(["kill", "ev2"]))?;
    run_ok(berthd.docker().args(["wait", "ev2"]))?;
    run_ok(berthd.docker().args(["rename", "ev2", "ev2b"]))?;
    run_ok(berthd.docker().args(["tag", "busybox", "evtag:1"]))?;
    run_ok(berthd.docker().args(["rmi", "evtag:1"]))?;
    run_ok(berthd.docker().args(["rm", "ev1", "ev2b"]))?;
    let t1 = now();
    let events = |args: &[&str]| -> Result<String> {
        run_ok(
            berthd
                .docker()
                .args(["events", "--since", &t0, "--until", &t1])
                .args(args),
        )
    };

    // One container's lifecycle, in order, by name.
    let ev1 = events(&["--filter", "container=ev1", "--format", "{{.Status}}"])?;
    assert_eq!(lines(&ev1), ["create", "start", "die", "destroy"], "{ev1}");
    // die carries the exit code; kill the signal; rename the old name.
    let die = events(&[
        "--filter",
        "event=die",
        "--filter",
        "container=ev1",
        "--format",
        "{{.Actor.Attributes.exitCode}} {{.Actor.Attributes.name}} {{.From}}",
    ])?;
    assert_eq!(lines(&die), ["3 ev1 busybox"], "{die}");
    let kill = events(&[
        "--filter",
        "event=kill",
        "--format",
        "{{.Actor.Attributes.signal}}",
    ])?;
    assert_eq!(lines(&kill), ["9"], "{kill}");
    let rename = events(&[
        "--filter",
        "event=rename",
        "--format",
        "{{.Actor.Attributes.oldName}} {{.Actor.Attributes.name}}",
    ])?;
    assert_eq!(lines(&rename), ["/ev2 ev2b"], "{rename}");
    // Labels select the labelled container's events only.
    let labelled = events(&[
        "--filter",
        "label=tier=web",
        "--format",
        "{{.Actor.Attributes.name}}",
    ])?;
    assert_eq!(lines(&labelled), ["ev1"; 4], "{labelled}");
    // Several event kinds are alternatives; the type filter keeps images apart.
    let both = events(&[
        "--filter",
        "event=create",
        "--filter",
        "event=destroy",
        "--format",
        "{{.Action}}",
    ])?;
    assert_eq!(
        lines(&both),
        ["create", "create", "destroy", "destroy"],
        "{both}"
    );
    let images = events(&[
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ])?;
    let images = lines(&images);
    assert_eq!(images.len(), 2, "{images:?}");
    assert_eq!(images[0], "tag evtag:1");
    assert!(images[1].starts_with("untag sha256:"), "{images:?}");
    // The image filter matches containers of the image, and the image's own events.
    let by_image = events(&[
        "--filter",
        "image=busybox",
        "--filter",
        "event=start",
        "--format",
        "{{.Actor.Attributes.name}}",
    ])?;
    assert_eq!(lines(&by_image), ["ev1", "ev2"], "{by_image}");
    // The default line: time, type, action, id, attributes.
    let plain = events(&["--filter", "container=ev1", "--filter", "event=create"])?;
    assert!(
        plain.contains(" container create ")
            && plain.contains("name=ev1")
            && plain.contains("tier=web"),
        "{plain}"
    );
    // berth's own CLI agrees with docker's.
    let ours = run_ok(berthd.berth()?.args([
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=ev1",
        "--format",
        "{{.Status}}",
    ]))?;
    assert_eq!(ours, ev1);
    let ours = run_ok(berthd.berth()?.args([
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=ev1",
        "--filter",
        "event=create",
    ]))?;
    assert_eq!(ours, plain);

    // Nothing before --since, nothing after --until.
    let empty = run_ok(
        berthd
            .docker()
            .args(["events", "--since", &t1, "--until", &now()]),
    )?;
    assert!(empty.trim().is_empty(), "{empty}");

    // A filter of an unknown kind is refused, naming it.
    let (code, _, err) =
        run(berthd
            .docker()
            .args(["events", "--filter", "bogus=1", "--until", &now()]))?;
    assert_ne!(code, 0);
    assert!(err.contains("bogus"), "{err}");
    let (code, _, err) = run(berthd.berth()?.args(["events", "--filter", "bogus=1"]))?;
    assert_ne!(code, 0);
    assert!(err.contains("bogus"), "{err}");
    Ok(())
}

#[test]
fn docker_cli_follows_events_live() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    // Replayed from just before the run, then followed live: a follower that connects
    // late (a loaded machine) still sees every event.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
    let mut follower = berthd
        .docker()
        .args([
            "events",
            "--since",
            &since,
            "--filter",
            "container=live",
            "--format",
            "{{.Action}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker events")?;
    let stdout = follower.stdout.take().context("the follower's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "live", "busybox", "sleep", "100"]),
    )?;
    run_ok(berthd.docker().args(["pause", "live"]))?;
    run_ok(berthd.docker().args(["unpause", "live"]))?;
    run_ok(berthd.docker().args(["rm", "-f", "live"]))?;
    let want = [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "destroy",
    ];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < want.len() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    if seen != want {
        bail!("live events {seen:?}, expected {want:?}");
    }
    Ok(())
}

#[test]
fn python_sdk_reads_dockers_event_json() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let script = r#"
import sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
t0 = time.time()
ctr = c.containers.run("busybox", ["true"], detach=True, name="sdk-ev", labels={"k": "v"})
ctr.wait()
ctr.remove()
t1 = time.time() + 0.001
evs = list(c.events(since=t0, until=t1, decode=True, filters={"container": "sdk-ev"}))
assert [e["Action"] for e in evs] == ["create", "start", "die", "destroy"], evs
for e in evs:
    assert e["Type"] == "container" and e["scope"] == "local", e
    assert e["status"] == e["Action"] and e["id"] == ctr.id == e["Actor"]["ID"], e
    assert e["from"] == "busybox" and e["Actor"]["Attributes"]["k"] == "v", e
    assert e["time"] == e["timeNano"] // 1_000_000_000, e
    assert t0 <= e["timeNano"] / 1e9 <= t1, e
assert evs[2]["Actor"]["Attributes"]["exitCode"] == "0", evs[2]
# The SDK's events() does not check the status (nor with Docker): ask directly.
r = c.api._get(c.api._url("/events"), params={"filters": '{"nope":["x"]}'})
assert r.status_code == 400 and "nope" in r.json()["message"], (r.status_code, r.text)
print("ok")
"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.py");
    std::fs::write(&path, script)?;
    let out = run_ok(Command::new("python3").arg(&path).arg(berthd.docker_host()))
        .with_context(|| format!("berthd's log:\n{}", berthd.log()))?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}
