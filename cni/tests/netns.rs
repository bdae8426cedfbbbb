//! Pinned network namespaces: created without a process, entered, removed idempotently.

use std::os::unix::fs::MetadataExt;

use anyhow::Result;
use berth_cni::{Netns, NetnsError};

/// Tasks (threads of any process) whose network namespace has inode `ino`.
fn tasks_in(ino: u64) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() == ino) {
                found.push(t.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn create_enter_remove() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let ns = Netns::create(dir.path(), "one")?;
    assert!(ns.is_pinned());
    assert_eq!(ns.path(), dir.path().join("one"));
    // A namespace of its own, not the host's.
    let host_ino = std::fs::metadata("/proc/self/ns/net")?.ino();
    let ns_ino = std::fs::metadata(ns.path())?.ino();
    assert_ne!(ns_ino, host_ino);
    // Only the mount holds it: no thread or process was left inside.
    assert_eq!(tasks_in(ns_ino), Vec::<String>::new());
    // Only lo inside, and set_loopback_up brings it up.
    let out = ns.command("ip")?.args(["-o", "link"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("lo:") && !text.contains(",UP"), "{text}");
    ns.set_loopback_up()?;
    let out = ns.command("ip")?.args(["-o", "link"]).output()?;
    assert!(String::from_utf8_lossy(&out.stdout).contains(",UP"));
    // run() executes on a thread inside the namespace; the caller's thread stays put.
    let inside = ns.run(|| std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino()))??;
    assert_eq!(inside, std::fs::metadata(ns.path())?.ino());
    assert_eq!(
        std::fs::metadata("/proc/thread-self/ns/net")?.ino(),
        host_ino
    );
    // Creating the same id again is refused while it exists.
    assert!(matches!(
        Netns::create(dir.path(), "one"),
        Err(NetnsError::AlreadyExists(_))
    ));
    ns.remove()?;
    assert!(!ns.path().exists());
    ns.remove()?;
    // The id can be reused after removal.
    let again = Netns::create(dir.path(), "one")?;
    again.remove()?;
    Ok(())
}

#[test]
fn stale_file_without_mount_is_reused_and_removed() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("stale"), b"")?;
    let stale = Netns::at(dir.path().join("stale"));
    assert!(!stale.is_pinned());
    let ns = Netns::create(dir.path(), "stale")?;
    assert!(ns.is_pinned());
    ns.remove()?;
    std::fs::write(dir.path().join("plain"), b"")?;
    Netns::at(dir.path().join("plain")).remove()?;
    assert!(!dir.path().join("plain").exists());
    Ok(())
}

/// A mount namespace made after the pin holds a copy of it; removing the pin removes the
/// copy too (unlink detaches mounts in other namespaces), so the namespace does not
/// outlive its pod even when the pin dir is a private mount, as it is here.
#[test]
fn removal_reaches_copies_in_later_mount_namespaces() -> Result<()> {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir()?;
    let ns = Netns::create(dir.path(), "copied")?;
    let ino = std::fs::metadata(ns.path())?.ino();
    let mut child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "unchanged", "sleep", "30"])
        .spawn()?;
    let mountinfo = format!("/proc/{}/mountinfo", child.id());
    let path = ns.path().display().to_string();
    // Wait for the child to be in its own mount namespace with the copy.
    let mut seen = false;
    for _ in 0..100 {
        let own = std::fs::read_link(format!("/proc/{}/ns/mnt", child.id()))?;
        if own != std::fs::read_link("/proc/self/ns/mnt")? {
            seen = std::fs::read_to_string(&mountinfo)?.contains(&path);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let outcome = (|| -> Result<()> {
        anyhow::ensure!(seen, "the child's mount namespace has no copy of the pin");
        ns.remove()?;
        let after = std::fs::read_to_string(&mountinfo)?;
        anyhow::ensure!(!after.contains(&path), "the copy survived removal");
        anyhow::ensure!(tasks_in(ino).is_empty());
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    outcome
}
