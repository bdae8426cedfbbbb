// Minimal: create evalcg-min in memory+pids (v1), set memory limit and pids.max, delete.
use std::fs;
fn main() -> std::io::Result<()> {
    let dirs = ["/sys/fs/cgroup/memory/evalcg-min-std", "/sys/fs/cgroup/pids/evalcg-min-std"];
    for d in dirs { fs::create_dir_all(d)?; }
    let r = (|| -> std::io::Result<()> {
        fs::write(format!("{}/memory.limit_in_bytes", dirs[0]), "104857600")?;
        fs::write(format!("{}/pids.max", dirs[1]), "64")?;
        println!("{}", fs::read_to_string(format!("{}/memory.limit_in_bytes", dirs[0]))?.trim());
        Ok(())
    })();
    for d in dirs { let _ = fs::remove_dir(d); }
    r
}
