//! One shim per pod, and runtime handlers (RuntimeClass), through berthd's CRI:
//! - every container of a pod is supervised by the pod's one berth-shim; a container
//!   that exits (and is removed) leaves the shim serving the others, also across a
//!   `kill -9` of berthd; the shim goes with the pod's last container;
//! - a pod whose runtime handler is `runc` (a `[runtimes]` entry) runs its containers
//!   under Debian's runc, which knows them in its state dir; an unknown handler is
//!   refused naming the configured ones; Status lists the handlers;
//! - the Docker API's `--runtime` picks a handler the same way;
//! - a pod's exited containers keep their state, exit code and times across berthd
//!   restarts (kill -9 and SIGTERM), whether they exited before or while berthd was
//!   down, until the kubelet removes them.

mod cri_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use berth_e2e::{require_root, run_ok};
use k8s_cri::v1 as cri;

use cri_common::{container, host_pod, run_pod, setup_base, Client, PodGuard};

const RUNC: &str = "/usr/sbin/runc";

/// The container's init pid, from ContainerStatus' verbose info.
fn container_pid(client: &Client, id: &str) -> Result<u32> {
    let mut rt = client.runtime()?;
    let resp = client
        .block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))?
        .into_inner();
    let info: serde_json::Value =
        serde_json::from_str(resp.info.get("info").context("no verbose info")?)?;
    let pid = info["pid"].as_u64().context("no pid in the verbose info")?;
    ensure!(pid > 0, "container {id} has pid 0: {info}");
    Ok(pid as u32)
}

/// The process supervising `pid`: its parent, which must be a berth-shim.
fn shim_of(pid: u32) -> Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ppid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .context("no PPid")?
        .trim()
        .parse()?;
    let exe = std::fs::read_link(format!("/proc/{ppid}/exe"))?;
    ensure!(
        exe.file_name().is_some_and(|n| n == "berth-shim"),
        "the parent of {pid} is {} ({}), not a berth-shim",
        ppid,
        exe.display()
    );
    Ok(ppid)
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_gone(pid: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("process {pid} is still there");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn exec_says(client: &Client, id: &str, word: &str) -> Result<()> {
    let r = client.exec(id, &["echo", word], 10)?;
    ensure!(
        r.exit_code == 0 && String::from_utf8_lossy(&r.stdout) == format!("{word}\n"),
        "exec in {id}: {r:?}"
    );
    Ok(())
}

#[test]
fn a_pod_shares_one_shim_and_runtime_handlers_pick_the_runtime() -> Result<()> {
    require_root();
    ensure!(
        Path::new(RUNC).exists(),
        "{RUNC} is missing (hack/deps.sh installs runc)"
    );
    let mut s = setup_base(
        "podshim/busybox",
        &format!("\n[runtimes.runc]\npath = {RUNC:?}\n"),
    )?;
    let image = s.base();
    let client = Client::new(&s.berthd.cri_socket())?;
    let mut rt = client.runtime()?;

    // Status names the handlers: the default ("") first, then berth and runc.
    let status = client
        .block_on(rt.status(cri::StatusRequest { verbose: false }))?
        .into_inner();
    let names: Vec<&str> = status
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["", "berth", "runc"]);

    // Three containers in one pod: one shim serves them all.
    let pod = host_pod("podshim", &s.work);
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;
    let sleeper = "trap 'exit 0' TERM; while :; do sleep 1; done";
    let quick = client.create_and_start(
        &sandbox,
        &pod,
        container("quick", &image, "echo quick; sleep 2; exit 3", "quick.log"),
    )?;
    let a = client.create_and_start(&sandbox, &pod, container("a", &image, sleeper, "a.log"))?;
    let b = client.create_and_start(&sandbox, &pod, container("b", &image, sleeper, "b.log"))?;
    let shim = shim_of(container_pid(&client, &a)?)?;
    for id in [&quick, &b] {
        assert_eq!(
            shim_of(container_pid(&client, id)?)?,
            shim,
            "container {id} has a shim of its own"
        );
    }

    // The first container exits and is removed: the shim stays for the others.
    let st = client.wait_state(&quick, cri::ContainerState::ContainerExited)?;
    assert_eq!(st.exit_code, 3);
    client.block_on(rt.remove_container(cri::RemoveContainerRequest {
        container_id: quick.clone(),
    }))?;
    assert!(alive(shim), "the pod's shim went with its first container");
    exec_says(&client, &a, "still-here")?;
    assert_eq!(
        client.status(&b)?.state,
        cri::ContainerState::ContainerRunning as i32
    );

    // berthd killed and restarted: it finds the shared shim again.
    s.berthd.kill9()?;
    s.berthd.restart()?;
    let client = Client::new(&s.berthd.cri_socket())?;
    let mut rt = client.runtime()?;
    exec_says(&client, &b, "after-restart")?;
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: a.clone(),
        timeout: 10,
    }))?;
    let st = client.wait_state(&a, cri::ContainerState::ContainerExited)?;
    assert_eq!(st.exit_code, 0, "a did not end through its TERM trap");
    assert!(alive(shim), "the pod's shim went while b still runs");
    exec_says(&client, &b, "last-one")?;

    // A container added now joins the same shim.
    let c = client.create_and_start(&sandbox, &pod, container("c", &image, sleeper, "c.log"))?;
    assert_eq!(shim_of(container_pid(&client, &c)?)?, shim);

    // The pod goes: its shim with it.
    client.block_on(rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    wait_gone(shim).context("the pod's shim outlived the pod")?;

    // A pod under the runc handler: runc runs its container and knows it.
    let pod = host_pod("podrunc", &s.work);
    let sandbox = run_pod(&client, &pod, "runc")?;
    let _runc_guard = PodGuard {
        socket: s.berthd.cri_socket(),
        id: sandbox.clone(),
    };
    let r = client.create_and_start(&sandbox, &pod, container("r", &image, sleeper, "r.log"))?;
    let runc_root = s.berthd.state().join("runtimes").join("runc");
    let state = run_ok(
        Command::new(RUNC)
            .arg("--root")
            .arg(&runc_root)
            .args(["state", &r]),
    )?;
    let state: serde_json::Value = serde_json::from_str(&state)?;
    assert_eq!(state["status"], "running", "runc's view of {r}: {state}");
    assert_eq!(
        state["pid"].as_u64(),
        Some(u64::from(container_pid(&client, &r)?)),
        "runc and berth disagree on the pid"
    );
    exec_says(&client, &r, "from-runc")?;
    client.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: r.clone(),
        timeout: 10,
    }))?;
    let st = client.wait_state(&r, cri::ContainerState::ContainerExited)?;
    assert_eq!(st.exit_code, 0);
    client.block_on(rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    }))?;
    let left = run_ok(Command::new(RUNC).arg("--root").arg(&runc_root).arg("list"))?;
    assert!(!left.contains(&r), "runc still lists {r}: {left}");

    // An unknown handler: refused, naming it and what is configured; nothing made.
    let err = client
        .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(host_pod("podkata", &s.work)),
            runtime_handler: "kata".into(),
        }))
        .expect_err("an unknown runtime handler was accepted");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("\"kata\"") && err.message().contains("berth, runc"),
        "{}",
        err.message()
    );
    let pods = client
        .block_on(rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }))?
        .into_inner()
        .items;
    assert!(
        pods.iter()
            .all(|p| p.metadata.as_ref().is_some_and(|m| m.name != "podkata")),
        "a refused pod was recorded"
    );

    // The Docker API: --runtime runc through the berth CLI, and a bad name refused.
    let out = run_ok(s.berthd.berth()?.args([
        "run",
        "--rm",
        "--runtime",
        "runc",
        &image,
        "sh",
        "-c",
        "echo via-runc",
    ]))?;
    assert_eq!(out, "via-runc\n");
    let bad = s
        .berthd
        .berth()?
        .args(["run", "--rm", "--runtime", "nope", &image, "true"])
        .output()?;
    assert_eq!(bad.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("unknown or invalid runtime name: nope"),
        "{stderr}"
    );
    Ok(())
}

/// The status fields the kubelet reads of an exited container (what `crictl inspect`
/// shows as status.state, exitCode, reason, startedAt, finishedAt).
fn exit_view(st: &cri::ContainerStatus) -> (i32, i32, String, i64, i64) {
    (
        st.state,
        st.exit_code,
        st.reason.clone(),
        st.started_at,
        st.finished_at,
    )
}

#[test]
fn exited_containers_keep_their_status_across_restarts() -> Result<()> {
    require_root();
    let mut s = setup_base("exitkept/busybox", "")?;
    let image = s.base();
    let client = Client::new(&s.berthd.cri_socket())?;
    let pod = host_pod("exitkept", &s.work);
    let (sandbox, _pod_guard) = s.start_pod(&pod)?;
    let sleeper = "trap 'exit 0' TERM; while :; do sleep 1; done";
    // One exits before berthd goes, one while it is down, one runs throughout (the
    // pod's shim serves all three).
    let early = client.create_and_start(
        &sandbox,
        &pod,
        container("early", &image, "exit 3", "early.log"),
    )?;
    let late = client.create_and_start(
        &sandbox,
        &pod,
        container("late", &image, "sleep 2; exit 4", "late.log"),
    )?;
    let keeper = client.create_and_start(
        &sandbox,
        &pod,
        container("keeper", &image, sleeper, "k.log"),
    )?;
    let late_pid = container_pid(&client, &late)?;
    let st = client.wait_state(&early, cri::ContainerState::ContainerExited)?;
    let early_view = exit_view(&st);
    assert_eq!(
        (early_view.1, early_view.2.as_str()),
        (3, "Error"),
        "{st:?}"
    );
    assert!(early_view.4 >= early_view.3 && early_view.3 > 0, "{st:?}");

    s.berthd.kill9()?;
    wait_gone(late_pid).context("the late container did not exit while berthd was down")?;
    s.berthd.restart()?;
    let client = Client::new(&s.berthd.cri_socket())?;
    let exited = cri::ContainerState::ContainerExited as i32;
    let st = client.status(&early)?;
    assert_eq!(
        exit_view(&st),
        early_view,
        "after kill -9: {}",
        s.berthd.log()
    );
    let st = client.status(&late)?;
    let late_view = exit_view(&st);
    assert_eq!(
        (late_view.0, late_view.1, late_view.2.as_str()),
        (exited, 4, "Error"),
        "{st:?}"
    );
    assert!(late_view.4 > late_view.3, "{st:?}");
    exec_says(&client, &keeper, "kept")?;

    // A second start finds both exited in their records: they stay as they are.
    s.berthd.restart()?;
    let client = Client::new(&s.berthd.cri_socket())?;
    for (id, want) in [(&early, &early_view), (&late, &late_view)] {
        let st = client.status(id)?;
        assert_eq!(
            &exit_view(&st),
            want,
            "{id} after a restart: {}",
            s.berthd.log()
        );
    }
    assert_eq!(
        client
            .list(cri::ContainerFilter {
                pod_sandbox_id: sandbox.clone(),
                state: Some(cri::ContainerStateValue { state: exited }),
                ..Default::default()
            })?
            .len(),
        2
    );
    exec_says(&client, &keeper, "still-kept")?;
    // The kubelet removes them when it is done with them.
    let mut rt = client.runtime()?;
    for id in [&early, &late] {
        client.block_on(rt.remove_container(cri::RemoveContainerRequest {
            container_id: id.to_string(),
        }))?;
        assert!(client.status(id).is_err(), "{id} is still there");
    }
    exec_says(&client, &keeper, "last")?;
    Ok(())
}
