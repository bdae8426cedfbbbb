//! The test harness cleans up after a test that failed at the worst moment: between a
//! `kill -9` of berthd and the restart after it, with a container running on its own.

use anyhow::Result;
use berth_e2e::{processes_with, require_root, run_ok, Berthd};

#[test]
fn a_dropped_berthd_removes_containers_a_kill9_left_running() -> Result<()> {
    require_root();
    let (id, dir) = {
        let mut berthd = Berthd::start()?;
        berthd.import_busybox("busybox")?;
        let id = run_ok(
            berthd
                .berth()?
                .args(["run", "-d", "busybox", "sleep", "1000"]),
        )?;
        berthd.kill9()?;
        (id.trim().to_string(), berthd.dir().to_path_buf())
    };
    let dir_text = dir.display().to_string();
    assert_eq!(processes_with(&dir_text), Vec::<String>::new());
    assert_eq!(
        berth_fixtures::cgroups::dirs(&format!("berth/{id}")),
        Vec::<std::path::PathBuf>::new()
    );
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir_text))
        .map(str::to_string)
        .collect();
    assert_eq!(mounts, Vec::<String>::new());
    assert!(!dir.exists(), "{dir_text} removed");
    Ok(())
}
