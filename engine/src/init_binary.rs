//! berth's container init: PID 1 of a container whose config asks for `init`, which
//! runs the command, forwards signals to it, reaps zombies and exits with the
//! command's status, as `docker run --init` does with docker-init. Its source is
//! `engine/init/berth_init.rs`; the build script links it statically so it runs in
//! any image, and the engine installs it under its root, bound read-only into the
//! containers that ask for it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The static executable.
pub const BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where a container sees it (Docker's path for its init).
pub const IN_CONTAINER: &str = "/sbin/docker-init";

/// Writes the init to `<root>/berth-init` unless it is there already, and returns the
/// path. A new version replaces the file by rename: running containers keep the one
/// they have bound.
pub fn install(root: &Path) -> std::io::Result<PathBuf> {
    let path = root.join("berth-init");
    if std::fs::read(&path).is_ok_and(|b| b == BYTES) {
        return Ok(path);
    }
    let tmp = root.join(format!(".berth-init.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(BYTES)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o555))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a freshly installed binary. Another test's thread may fork while
    /// `install` still holds the file open for writing; until that child execs, its
    /// copy of the descriptor makes exec fail with ETXTBSY, so a few retries.
    fn run(cmd: &mut std::process::Command) -> std::io::Result<std::process::ExitStatus> {
        let mut tries = 0;
        loop {
            match cmd.status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    #[test]
    fn the_init_is_static_and_installs_once() -> std::io::Result<()> {
        // An ELF without a PT_INTERP program header needs no dynamic loader.
        assert_eq!(&BYTES[..4], b"\x7fELF");
        let dir = tempfile::tempdir()?;
        let path = install(dir.path())?;
        let meta = std::fs::metadata(&path)?;
        assert_eq!(meta.permissions().mode() & 0o777, 0o555);
        let out = std::process::Command::new("ldd").arg(&path).output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("not a dynamic executable") || text.contains("statically linked"),
            "{text}"
        );
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        install(dir.path())?;
        let again = std::fs::metadata(&path)?;
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&again), inode);
        Ok(())
    }

    #[test]
    fn the_init_passes_the_status_through() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = install(dir.path())?;
        let status = run(std::process::Command::new(&path).args(["--", "sh", "-c", "exit 7"]))?;
        assert_eq!(status.code(), Some(7));
        let status =
            run(std::process::Command::new(&path).args(["--", "sh", "-c", "kill -TERM $$"]))?;
        assert_eq!(status.code(), Some(128 + 15));
        let status = run(std::process::Command::new(&path).args(["--", "/nonexistent/x"]))?;
        assert_eq!(status.code(), Some(127));
        Ok(())
    }

    /// The command leads a process group of its own, and on a terminal it is the
    /// foreground group (`script` gives the init a pseudo-terminal).
    #[test]
    fn the_command_runs_in_its_own_foreground_group() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = install(dir.path())?;
        // Fields of /proc/PID/stat: 5 the process group, 8 the terminal's foreground group.
        let own_group = r#"set -- $(cat /proc/$$/stat); [ "$5" = "$$" ] || exit 9"#;
        let status = run(std::process::Command::new(&path).args(["--", "sh", "-c", own_group]))?;
        assert_eq!(status.code(), Some(0));
        let foreground = format!(
            r#"{} -- sh -c 'set -- $(cat /proc/$$/stat); [ "$5" = "$$" ] && [ "$8" = "$$" ] || exit 9'"#,
            path.display()
        );
        // script(1) gets a stdin that stays open until the command is done: on an
        // early end of its input it could hang the terminal up under the command.
        let spawned = std::process::Command::new("script")
            .args(["-qec", &foreground, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut child) => {
                let stdin = child.stdin.take();
                let out = child.wait_with_output()?;
                drop(stdin);
                assert_eq!(out.status.code(), Some(0), "{out:?}");
            }
            Err(e) => eprintln!("skipped the terminal case (no script(1): {e})"),
        }
        Ok(())
    }
}
