//! What Debian's docker 20.10 CLI prints for containers on berthd, case by case against
//! what it prints for dockerd 20.10 on the same commands: `Config.Env` and the
//! process's environment, `docker top` (with and without ps arguments), `-v` and
//! `--mount` bind sources, and exposed ports in `docker ps` and `docker inspect`.
//! The expected strings are dockerd's (read from its behaviour and source).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};
use berth_fixtures::{images, Registry};

/// `docker ARGS` prints exactly `expected` on stdout.
fn prints(berthd: &Berthd, args: &[&str], expected: &str) -> Result<()> {
    let out = run_ok(berthd.docker().args(args))?;
    if out != expected {
        bail!(
            "docker {}:\n got: {out:?}\nwant: {expected:?}",
            args.join(" ")
        );
    }
    Ok(())
}

/// `docker ARGS` fails with exit code `code` and exactly `expected` on stderr.
fn fails(berthd: &Berthd, args: &[&str], code: i32, expected: &str) -> Result<()> {
    let (got_code, _, err) = run(berthd.docker().args(args))?;
    if (got_code, err.as_str()) != (code, expected) {
        bail!(
            "docker {}:\n got: {got_code} {err:?}\nwant: {code} {expected:?}",
            args.join(" ")
        );
    }
    Ok(())
}

/// Pushes `image` to a fresh registry and pulls it into `berthd` with the docker CLI;
/// returns the reference and the registry (which must outlive the test's pulls).
fn pull(
    berthd: &Berthd,
    image: &berth_fixtures::BuiltImage,
    name: &str,
) -> Result<(String, Registry)> {
    let registry = Registry::start()?;
    let reference = registry.push(image, name)?;
    run_ok(berthd.docker().args(["pull", "-q", &reference]))?;
    Ok((reference, registry))
}

/// Waits for `container` to exit; its logs.
fn logs_after_exit(berthd: &Berthd, container: &str) -> Result<String> {
    run_ok(berthd.docker().args(["wait", container]))?;
    run_ok(berthd.docker().args(["logs", container]))
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn config_env_is_the_merged_env_and_the_process_also_gets_hostname_and_home() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let berthd = Berthd::start()?;
    let image = images::with_env(tmp.path(), &[("FOO", "img"), ("KEEP", "yes")])?;
    let (image, _registry) = pull(&berthd, &image, "env:1")?;

    // One -e per container: docker 20.10 sends several in a random order.
    let id = run_ok(
        berthd
            .docker()
            .args(["run", "-d", "-e", "FOO=req", &image, "env"]),
    )?;
    let id = id.trim();
    let config_env = format!("[\"FOO=req\",\"{DEFAULT_PATH}\",\"KEEP=yes\"]\n");
    prints(
        &berthd,
        &["inspect", "-f", "{{json .Config.Env}}", id],
        &config_env,
    )?;
    // dockerd: PATH and HOSTNAME first (PATH replaced in place), Config.Env's other
    // entries in order, HOME from the user's passwd entry last.
    let env = logs_after_exit(&berthd, id)?;
    assert_eq!(
        env,
        format!(
            "{DEFAULT_PATH}\nHOSTNAME={}\nFOO=req\nKEEP=yes\nHOME=/root\n",
            &id[..12]
        )
    );

    // HOME follows the user (www-data's home in the image's passwd).
    let id = run_ok(
        berthd
            .docker()
            .args(["run", "-d", "-u", "33", &image, "env"]),
    )?;
    let env = logs_after_exit(&berthd, id.trim())?;
    assert!(env.ends_with("KEEP=yes\nHOME=/var/www\n"), "{env}");
    prints(
        &berthd,
        &["inspect", "-f", "{{json .Config.Env}}", id.trim()],
        &format!("[\"{DEFAULT_PATH}\",\"FOO=img\",\"KEEP=yes\"]\n"),
    )?;

    // `-e HOSTNAME` with no HOSTNAME on the client's side sends a bare key: it is kept
    // in Config.Env and unsets HOSTNAME in the process, as with dockerd.
    let id = run_ok(
        berthd
            .docker()
            .env_remove("HOSTNAME")
            .args(["run", "-d", "-e", "HOSTNAME", &image, "env"]),
    )?;
    let id = id.trim();
    prints(
        &berthd,
        &["inspect", "-f", "{{json .Config.Env}}", id],
        &format!("[\"HOSTNAME\",\"{DEFAULT_PATH}\",\"FOO=img\",\"KEEP=yes\"]\n"),
    )?;
    assert_eq!(
        logs_after_exit(&berthd, id)?,
        format!("{DEFAULT_PATH}\nFOO=img\nKEEP=yes\nHOME=/root\n")
    );
    Ok(())
}

/// The host's user name for `uid` (what `ps` on the host shows).
fn host_user(uid: u32) -> Result<String> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .with_context(|| format!("uid {uid} is not in the host's /etc/passwd"))
}

/// `docker top` writes each cell padded to 20 columns, the last one as it is.
fn top_line(cells: &[&str]) -> String {
    let mut line = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(&format!("{c:<20}"));
        }
    }
    line + "\n"
}

#[test]
fn top_runs_ps_on_the_host_with_dockers_columns_and_arguments() -> Result<()> {
    require_root();
    // Uid 1 has a name on the host (Debian's `daemon`) and none in the image: the name
    // shown must be the host's, as `ps` on the host prints it.
    let user = host_user(1)?;
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let id = run_ok(berthd.docker().args([
        "run", "-d", "--name", "sleeper", "-u", "1", "busybox", "sleep", "1000",
    ]))?;
    let id = id.trim();
    let pid = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Pid}}", "sleeper"]),
    )?;
    let pid = pid.trim();

    // `ps -ef` on the host, the container's line: docker top must show the same cells.
    // C (recent CPU share) and STIME may move between two calls: docker top's output
    // must equal what the host's ps printed just before or just after it.
    let host_cells = || -> Result<Vec<String>> {
        let ps = run_ok(Command::new("ps").args(["-ef"]))?;
        let line: Vec<&str> = ps
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&pid))
            .with_context(|| format!("pid {pid} not in ps -ef:\n{ps}"))?;
        let mut cells: Vec<String> = line[..7].iter().map(|s| s.to_string()).collect();
        cells.push(line[7..].join(" "));
        Ok(cells)
    };
    let header = top_line(&["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    let expected = |cells: &[String]| {
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        header.clone() + &top_line(&cells)
    };
    let mut last = (String::new(), Vec::new());
    for _ in 0..5 {
        let before = host_cells()?;
        let top = run_ok(berthd.docker().args(["top", "sleeper"]))?;
        let after = host_cells()?;
        assert_eq!(before[0], user, "{before:?}");
        assert_eq!(before[7], "sleep 1000");
        if top == expected(&before) || top == expected(&after) {
            last = (String::new(), Vec::new());
            break;
        }
        last = (top, after);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        last.0.is_empty(),
        "docker top:\n{}\nhost's ps -ef line: {:?}",
        last.0,
        last.1
    );

    // ps arguments go to the host's ps (docker top C aux).
    let aux = run_ok(berthd.docker().args(["top", "sleeper", "aux"]))?;
    let mut lines = aux.lines();
    assert_eq!(
        lines.next().map(|l| format!("{l}\n")),
        Some(top_line(&[
            "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"
        ]))
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        (row.first(), row.get(1), row.get(6), row.get(10..)),
        (
            Some(&user.as_str()),
            Some(&pid),
            Some(&"?"),
            Some(&["sleep", "1000"][..])
        ),
        "{aux}"
    );
    assert_eq!(lines.next(), None, "{aux}");
    prints(
        &berthd,
        &["top", "sleeper", "-o", "pid,comm"],
        &(top_line(&["PID", "COMMAND"]) + &top_line(&[pid, "sleep"])),
    )?;
    fails(
        &berthd,
        &["top", "sleeper", "-o user=PID"],
        1,
        "Error response from daemon: specifying \"user=PID\" is not allowed\n",
    )?;
    fails(
        &berthd,
        &["top", "sleeper", "--no-such-option"],
        1,
        "Error response from daemon: ps: error: unknown gnu long option\n",
    )?;
    run_ok(berthd.docker().args(["kill", "sleeper"]))?;
    run_ok(berthd.docker().args(["wait", "sleeper"]))?;
    fails(
        &berthd,
        &["top", "sleeper"],
        1,
        &format!("Error response from daemon: Container {id} is not running\n"),
    )?;
    Ok(())
}

#[test]
fn volume_binds_make_missing_sources_at_start_and_mount_binds_do_not() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let path = |p: &str| dir.join(p).display().to_string();

    // -v: made (0755, with its parents) and mounted.
    let made = path("made/by/run");
    let id = run_ok(berthd.docker().args([
        "run",
        "-d",
        "-v",
        &format!("{made}:/x"),
        "busybox",
        "sh",
        "-c",
        "test -d /x && touch /x/inside && echo mounted",
    ]))?;
    assert_eq!(logs_after_exit(&berthd, id.trim())?, "mounted\n");
    let meta = std::fs::metadata(&made)?;
    assert!(meta.is_dir());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o755
    );
    assert!(Path::new(&made).join("inside").exists());

    // dockerd makes it when the container starts, not at create.
    let later = path("made-at-start");
    run_ok(berthd.docker().args([
        "create",
        "--name",
        "later",
        "-v",
        &format!("{later}:/x"),
        "busybox",
        "true",
    ]))?;
    assert!(!Path::new(&later).exists(), "docker create made {later}");
    run_ok(berthd.docker().args(["start", "later"]))?;
    assert!(Path::new(&later).is_dir());

    // --mount type=bind: the source must exist; nothing is made.
    let missing = path("missing");
    let mount = format!("type=bind,source={missing},target=/x");
    fails(
        &berthd,
        &["run", "--mount", &mount, "busybox", "true"],
        125,
        &format!("docker: Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist: {missing}.\nSee 'docker run --help'.\n"),
    )?;
    fails(
        &berthd,
        &["create", "--mount", &mount, "busybox", "true"],
        1,
        &format!("Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist: {missing}\n"),
    )?;
    assert!(!Path::new(&missing).exists());

    // A request refused for another reason makes nothing.
    let refused = path("refused");
    fails(
        &berthd,
        &[
            "create",
            "-v",
            &format!("{refused}:/x"),
            "--memory",
            "1k",
            "busybox",
            "true",
        ],
        1,
        "Error response from daemon: Minimum memory limit allowed is 6MB\n",
    )?;
    fails(
        &berthd,
        &[
            "run",
            "-v",
            &format!("{refused}:/x:bogus"),
            "busybox",
            "true",
        ],
        125,
        "docker: Error response from daemon: invalid mode: bogus.\nSee 'docker run --help'.\n",
    )?;
    assert!(!Path::new(&refused).exists());

    // An existing source through --mount, read-only, next to a --mount tmpfs.
    let id = run_ok(berthd.docker().args([
        "run",
        "-d",
        "--mount",
        &format!("type=bind,source={made},target=/b,readonly"),
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "busybox",
        "sh",
        "-c",
        "ls /b; touch /b/no 2>/dev/null || echo read-only; grep ' /t ' /proc/mounts",
    ]))?;
    assert_eq!(
        logs_after_exit(&berthd, id.trim())?,
        "inside\nread-only\ntmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k 0 0\n"
    );
    Ok(())
}

#[test]
fn exposed_ports_show_in_ps_and_inspect_like_dockers() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let berthd = Berthd::start()?;
    let image = images::with_exposed_ports(tmp.path(), &["80/tcp", "53/udp"])?;
    let (image, _registry) = pull(&berthd, &image, "exposed:1")?;
    berthd.import_busybox("busybox")?;

    run_ok(berthd.docker().args([
        "run", "-d", "--name", "web", "--expose", "9000", &image, "sleep", "1000",
    ]))?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "quiet",
        "--network",
        "none",
        &image,
        "sleep",
        "1000",
    ]))?;
    run_ok(
        berthd
            .docker()
            .args(["create", "--name", "later", &image, "true"]),
    )?;
    run_ok(
        berthd
            .docker()
            .args(["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]),
    )?;

    // Docker lists a running container's exposed ports on its default network, none for
    // `--network none` or a container that is not running.
    prints(
        &berthd,
        &["ps", "-a", "--format", "{{.Names}}|{{.Ports}}"],
        "plain|\nlater|\nquiet|\nweb|80/tcp, 53/udp, 9000/tcp\n",
    )?;
    let table = run_ok(berthd.docker().args(["ps", "--filter", "name=web"]))?;
    let header = table.lines().next().unwrap_or("");
    let row = table.lines().nth(1).unwrap_or("");
    let at = header.find("PORTS").with_context(|| table.clone())?;
    assert!(
        row[at..].starts_with("80/tcp, 53/udp, 9000/tcp   web"),
        "{table}"
    );
    // berth's own CLI lays the column out the same way.
    assert_eq!(
        run_ok(berthd.berth()?.args(["ps", "--filter", "name=web"]))?
            .lines()
            .nth(1)
            .map(|l| &l[at..]),
        Some(&row[at..])
    );

    for (container, exposed, network) in [
        (
            "web",
            r#"{"53/udp":{},"80/tcp":{},"9000/tcp":{}}"#,
            r#"{"53/udp":null,"80/tcp":null,"9000/tcp":null}"#,
        ),
        ("quiet", r#"{"53/udp":{},"80/tcp":{}}"#, "{}"),
        ("later", r#"{"53/udp":{},"80/tcp":{}}"#, "{}"),
        ("plain", "null", "{}"),
    ] {
        prints(
            &berthd,
            &[
                "inspect",
                "-f",
                "{{json .Config.ExposedPorts}} {{json .NetworkSettings.Ports}}",
                container,
            ],
            &format!("{exposed} {network}\n"),
        )?;
    }
    run_ok(berthd.docker().args(["stop", "-t", "0", "web"]))?;
    prints(
        &berthd,
        &["ps", "-a", "--filter", "name=web", "--format", "{{.Ports}}"],
        "\n",
    )?;

    // A port the API cannot read is refused by name (dockerd stores it as it is and
    // never lists it).
    fails(
        &berthd,
        &["create", "--expose", "80/xyz", &image, "true"],
        1,
        "Error response from daemon: invalid exposed port \"80/xyz\": expected port[/tcp|udp|sctp], one port per entry\n",
    )?;
    Ok(())
}
