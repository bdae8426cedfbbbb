// Minimal: the same with cgroups-rs (fs API, auto hierarchy, only memory+pids controllers).
use cgroups_rs::fs::{cgroup_builder::CgroupBuilder, hierarchies, memory::MemController, MaxValue};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cg = CgroupBuilder::new("evalcg-min-cgrs")
        .set_specified_controllers(vec!["memory".into(), "pids".into()])
        .memory().memory_hard_limit(104857600).done()
        .pid().maximum_number_of_processes(MaxValue::Value(64)).done()
        .build(hierarchies::auto());
    let cg = match cg { Ok(c) => c, Err(e) => { cleanup(); return Err(e.into()); } };
    let m: &MemController = cg.controller_of().ok_or("no memory")?;
    println!("{}", m.memory_stat().limit_in_bytes);
    cg.delete()?;
    Ok(())
}
fn cleanup() {
    for c in ["memory", "pids"] { let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/evalcg-min-cgrs")); }
}
