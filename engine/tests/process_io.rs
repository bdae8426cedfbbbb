//! The engine's process-I/O API against a real container: a busybox image imported
//! into a fresh root, run under the real berth-shim (built next to this test by
//! `cargo build --workspace --bins`, as hack/test.sh does).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::config::{ContainerConfig, ProcessConfig};
use berth_engine::{self as engine, AttachOptions, Engine, EngineConfig, ExecConfig, NewContainer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn shim_binary() -> Result<PathBuf> {
    // target/<profile>/deps/<test> → target/<profile>/berth-shim
    let exe = std::env::current_exe()?;
    let shim = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("berth-shim"))
        .ok_or("no target dir")?;
    if !shim.is_file() {
        return Err(format!(
            "{} is not built: run `cargo build --workspace --bins`",
            shim.display()
        )
        .into());
    }
    Ok(shim)
}

struct Fixture {
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    /// The containers' parent cgroup (`/berth`) goes with the last fixture, as the e2e
    /// daemons remove it: a berthd keeps it, a test leaves nothing.
    fn drop(&mut self) {
        let _ = berth_fixtures::cgroups::remove_if_empty("berth");
    }
}

fn fixture() -> Result<Fixture> {
    std::env::set_var("BERTH_SHIM_BINARY", shim_binary()?);
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("root"))?;
    let engine = Engine::open(EngineConfig {
        root: dir.path().join("root"),
        state: dir.path().join("state"),
        runtimes: berth_engine::RuntimeHandlers {
            state: dir.path().join("state"),
            default: "berth".into(),
            handlers: Default::default(),
        },
    })?;
    let rootfs = dir.path().join("rootfs");
    berth_fixtures::busybox_rootfs(&rootfs)?;
    let tar = dir.path().join("rootfs.tar");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?
        .success();
    assert!(ok, "tar failed");
    let i = &engine.images;
    berth_image::import::import(
        &i.content,
        &i.snapshots,
        &i.store,
        &tar,
        "busybox:latest",
        &Default::default(),
        None,
    )?;
    Ok(Fixture {
        engine: Arc::new(engine),
        _dir: dir,
    })
}

async fn run_container(
    engine: &Arc<Engine>,
    cmd: &[&str],
    open_stdin: bool,
    tty: bool,
) -> Result<String> {
    let process = ProcessConfig {
        open_stdin,
        tty,
        ..Default::default()
    };
    run_with(engine, cmd, process).await
}

async fn run_with(engine: &Arc<Engine>, cmd: &[&str], process: ProcessConfig) -> Result<String> {
    let id = engine::create(
        engine,
        NewContainer {
            name: None,
            config: ContainerConfig {
                image: "busybox:latest".into(),
                process: ProcessConfig {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    ..process
                },
                ..Default::default()
            },
            body: serde_json::json!({}),
            restart_policy: Default::default(),
            auto_remove: false,
            log_path: None,
            log: Default::default(),
            cri: None,
            patch_spec: None,
        },
    )
    .await?;
    engine::start(engine, &id).await?;
    Ok(id)
}

async fn read_all(r: Option<impl AsyncRead + Unpin>) -> Result<String> {
    let mut out = Vec::new();
    if let Some(mut r) = r {
        tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out)).await??;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads until `want` has been seen (or 20 s passed).
async fn read_until(r: &mut (impl AsyncRead + Unpin), want: &str) -> Result<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains(want) {
        let n = tokio::time::timeout_at(deadline, r.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains(want), "wanted {want:?}, got {text:?}");
    Ok(text)
}

fn exec(args: &[&str]) -> ExecConfig {
    ExecConfig {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdout: true,
        stderr: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execs_and_attaches_through_the_engine() -> Result<()> {
    berth_fixtures_root_check();
    let f = fixture()?;
    let e = &f.engine;
    let id = run_container(
        e,
        &["sh", "-c", "while read l; do echo got:$l; done"],
        true,
        false,
    )
    .await?;

    // Output on both streams, and the exit code.
    let x = engine::exec_create(
        e,
        &id,
        exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
    )
    .await?;
    let io = engine::exec_start(e, &x).await?;
    let (out, err) = tokio::join!(read_all(io.stdout), read_all(io.stderr));
    assert_eq!((out?.as_str(), err?.as_str()), ("out\n", "err\n"));
    assert_eq!(engine::exec_wait(e, &x).await?, 3);
    let info = engine::exec_inspect(e, &x)?;
    assert_eq!((info.running, info.exit_code), (false, Some(3)));
    assert!(matches!(
        engine::exec_start(e, &x).await,
        Err(engine::EngineError::State { .. })
    ));

    // stdin to the process, closed by the end of the writer.
    let x = engine::exec_create(
        e,
        &id,
        ExecConfig {
            stdin: true,
            ..exec(&["cat"])
        },
    )
    .await?;
    let mut io = engine::exec_start(e, &x).await?;
    let mut stdin = io.stdin.take().ok_or("no stdin")?;
    stdin.write_all(b"hello\n").await?;
    stdin.shutdown().await?;
    drop(stdin);
    assert_eq!(read_all(io.stdout.take()).await?, "hello\n");
    assert_eq!(engine::exec_wait(e, &x).await?, 0);

    // A terminal, resized.
    let tty = ExecConfig {
        tty: true,
        ..exec(&["sh", "-c", "sleep 1; stty size"])
    };
    let x = engine::exec_create(e, &id, tty).await?;
    let mut io = engine::exec_start(e, &x).await?;
    assert!(io.stderr.is_none());
    engine::exec_resize(e, &x, 100, 40).await?;
    assert_eq!(read_all(io.stdout.take()).await?.trim(), "40 100");
    assert_eq!(engine::exec_wait(e, &x).await?, 0);

    // A command that does not exist: named in the error, 127 as Docker reports.
    let x = engine::exec_create(e, &id, exec(&["/no/such/binary"])).await?;
    let err = engine::exec_start(e, &x)
        .await
        .err()
        .ok_or("started a missing binary")?;
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    assert_eq!(engine::exec_inspect(e, &x)?.exit_code, Some(127));
    assert!(matches!(
        engine::exec_inspect(e, "nope"),
        Err(engine::EngineError::NotFound { .. })
    ));

    // Attach: stdin reaches the container's process, its output comes back; a second
    // attach after the first detached still has the process's stdin open.
    for word in ["one", "two"] {
        let opts = AttachOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            logs: false,
        };
        let mut io = engine::attach(e, &id, opts).await?;
        let mut stdin = io.stdin.take().ok_or("no stdin")?;
        stdin.write_all(format!("{word}\n").as_bytes()).await?;
        let mut stdout = io.stdout.take().ok_or("no stdout")?;
        read_until(&mut stdout, &format!("got:{word}")).await?;
        drop(stdin);
    }
    // A resize of a container without a tty is refused.
    assert!(matches!(
        engine::resize(e, &id, 80, 24).await,
        Err(engine::EngineError::Invalid(_))
    ));

    // The attached output ends when the container stops; no exec FIFOs stay.
    let opts = AttachOptions {
        stdout: true,
        ..Default::default()
    };
    let io = engine::attach(e, &id, opts).await?;
    engine::stop(e, &id, Some(1)).await?;
    read_all(io.stdout).await?;
    let left: Vec<_> = std::fs::read_dir(e.dir(&id))?
        .filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "exec dirs left: {left:?}");
    assert!(matches!(
        engine::exec_create(e, &id, exec(&["true"])).await,
        Err(engine::EngineError::State { .. })
    ));
    engine::remove(e, &id, true).await?;
    Ok(())
}

/// `docker run -i` (stdin_once, no tty): the end of the attached client's input is the
/// end of the container's, after all it wrote was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_once_closes_at_the_clients_eof() -> Result<()> {
    berth_fixtures_root_check();
    let f = fixture()?;
    let e = &f.engine;
    let process = ProcessConfig {
        open_stdin: true,
        stdin_once: true,
        ..Default::default()
    };
    let id = run_with(e, &["cat"], process).await?;
    let opts = AttachOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        logs: true,
    };
    let mut io = engine::attach(e, &id, opts).await?;
    let mut stdin = io.stdin.take().ok_or("no stdin")?;
    stdin.write_all(b"hi\n").await?;
    stdin.shutdown().await?;
    drop(stdin);
    assert_eq!(read_all(io.stdout.take()).await?, "hi\n");
    assert!(engine::wait_exit(e, &id, Some(Duration::from_secs(10))).await?);
    assert_eq!(engine::get(e, &id)?.state.exit_code, 0);
    engine::remove(e, &id, true).await?;
    Ok(())
}

fn berth_fixtures_root_check() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs containers: run it as root"
    );
}
