//! Throwaway evaluation of cgroups-rs 0.5.1 on this host. Every cgroup made here is
//! named evalcg-* and removed at the end of its step (also on failure, via Guard).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, Controller, MaxValue, Resources};
use cgroups_rs::{CgroupPid, FreezerState, FsManager, Manager};
use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder};

const ROOT: &str = "/sys/fs/cgroup";
/// v1 hierarchies as cgroups-rs creates them on this host (plus name=systemd at "systemd").
const V1: &[&str] = &[
    "blkio", "memory", "pids", "cpuset", "cpuacct", "cpu", "devices", "freezer", "systemd",
];

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// rmdir evalcg-<name> in every hierarchy (v1 dirs, the unified dir, and / for the
/// absolute-path footgun) when dropped.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        cleanup(&self.0);
    }
}
fn cleanup(name: &str) {
    assert!(name.starts_with("evalcg-"));
    let mut dirs: Vec<PathBuf> = V1.iter().map(|c| Path::new(ROOT).join(c).join(name)).collect();
    dirs.push(Path::new(ROOT).join("unified").join(name));
    dirs.push(Path::new(ROOT).join(name)); // v2 simulation (mount namespace)
    for d in dirs {
        for _ in 0..50 {
            match fs::remove_dir(&d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if d.exists() {
            eprintln!("!! could not remove {}", d.display());
        }
    }
}

fn raw(p: impl AsRef<Path>) -> String {
    match fs::read_to_string(p.as_ref()) {
        Ok(s) => s.trim().replace('\n', " | "),
        Err(e) => format!("<{e}>"),
    }
}
fn v1(ctrl: &str, name: &str, file: &str) -> String {
    raw(Path::new(ROOT).join(ctrl).join(name).join(file))
}
fn sleeper() -> R<Child> {
    Ok(Command::new("sleep").arg("1000").spawn()?)
}
fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}
fn show<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, r: &Result<T, E>) {
    match r {
        Ok(v) => println!("  {what}: Ok({v:?})"),
        Err(e) => println!("  {what}: Err({e})"),
    }
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("detect") => detect(),
        Some("manage") => manage(),
        Some("fsapi") => fsapi(),
        Some("errors") => errors(),
        Some("malformed") => malformed(),
        Some("bench") => bench(args.get(2).map_or(100, |s| s.parse().unwrap_or(100)), args.get(3).cloned().unwrap_or_default()),
        Some("stats") => stats(),
        Some("oom") => oom(),
        Some("v2sim") => v2sim(),
        _ => Err("usage: eval detect|manage|fsapi|errors|malformed|bench N|stats|oom|v2sim".into()),
    }
}

// ---------------------------------------------------------------- detect
fn detect() -> R<()> {
    println!("is_cgroup2_unified_mode() = {}", hierarchies::is_cgroup2_unified_mode());
    let h = hierarchies::auto();
    println!("auto().v2() = {}   root() = {}", h.v2(), h.root().display());
    for s in h.subsystems() {
        let c = s.to_controller();
        println!("  subsystem {:<14} path={}", s.controller_name(), c.path().display());
    }
    // The OCI cgroupsPath is usually absolute: what does load() do with it?
    let cg = Cgroup::load(hierarchies::auto(), "/evalcg-abs/x");
    for s in cg.subsystems().iter().take(2) {
        println!("  load(\"/evalcg-abs/x\") -> {} at {}", s.controller_name(), s.to_controller().path().display());
    }
    let cg = Cgroup::load(hierarchies::auto(), "evalcg-rel/x");
    for s in cg.subsystems().iter().take(2) {
        println!("  load(\"evalcg-rel/x\") -> {} at {}", s.controller_name(), s.to_controller().path().display());
    }
    let m = FsManager::new("evalcg-probe")?;
    println!("  FsManager paths(): {:?}", m.paths());
    println!("  FsManager mounts(): {:?}", m.mounts());
    Ok(())
}

// ---------------------------------------------------------------- manage (FsManager, OCI)
fn res_all() -> R<Vec<(&'static str, LinuxResources)>> {
    let mut v = Vec::new();
    v.push(("memory 100M", LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(100 << 20).build()?).build()?));
    v.push(("memory 100M + memsw 200M", LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(100 << 20).swap(200 << 20).build()?).build()?));
    v.push(("memory raise 300M + memsw 400M", LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(300 << 20).swap(400 << 20).build()?).build()?));
    v.push(("memory lower 50M + memsw 60M", LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(50 << 20).swap(60 << 20).build()?).build()?));
    v.push(("cpu shares 512 quota 50000 period 100000", LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().shares(512u64).quota(50000i64).period(100000u64).build()?).build()?));
    v.push(("cpuset cpus 0 mems 0", LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("0").mems("0").build()?).build()?));
    v.push(("pids 64", LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(64i64).build()?).build()?));
    v.push(("blkio throttles 254:0", LinuxResourcesBuilder::default()
        .block_io(LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default().major(254i64).minor(0i64).rate(1048576u64).build()?])
            .throttle_write_bps_device(vec![LinuxThrottleDeviceBuilder::default().major(254i64).minor(0i64).rate(2097152u64).build()?])
            .throttle_read_iops_device(vec![LinuxThrottleDeviceBuilder::default().major(254i64).minor(0i64).rate(100u64).build()?])
            .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default().major(254i64).minor(0i64).rate(200u64).build()?])
            .build()?).build()?));
    v.push(("blkio weight 500", LinuxResourcesBuilder::default()
        .block_io(LinuxBlockIoBuilder::default().weight(500u16).build()?).build()?));
    v.push(("devices deny all, allow c 1:3 rwm", LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?,
            LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::C).major(1i64).minor(3i64).access("rwm").build()?,
        ]).build()?));
    v.push(("hugetlb 2MB 4M", LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default().page_size("2MB").limit(4i64 << 20).build()?]).build()?));
    v.push(("hugetlb empty list", LinuxResourcesBuilder::default()
        .hugepage_limits(vec![]).build()?));
    v.push(("devices empty list", LinuxResourcesBuilder::default()
        .devices(vec![]).build()?));
    Ok(v)
}

fn dump_limits(n: &str) {
    println!("    memory.limit_in_bytes={} memsw={} cpu.shares={} quota={} period={} cpuset.cpus={} mems={} pids.max={}",
        v1("memory", n, "memory.limit_in_bytes"), v1("memory", n, "memory.memsw.limit_in_bytes"),
        v1("cpu", n, "cpu.shares"), v1("cpu", n, "cpu.cfs_quota_us"), v1("cpu", n, "cpu.cfs_period_us"),
        v1("cpuset", n, "cpuset.cpus"), v1("cpuset", n, "cpuset.mems"), v1("pids", n, "pids.max"));
    println!("    blkio.bfq.weight={} blkio.weight={} read_bps={} write_bps={} read_iops={} write_iops={}",
        v1("blkio", n, "blkio.bfq.weight"), v1("blkio", n, "blkio.weight"),
        v1("blkio", n, "blkio.throttle.read_bps_device"), v1("blkio", n, "blkio.throttle.write_bps_device"),
        v1("blkio", n, "blkio.throttle.read_iops_device"), v1("blkio", n, "blkio.throttle.write_iops_device"));
    println!("    devices.list={}", v1("devices", n, "devices.list"));
}

fn manage() -> R<()> {
    let name = "evalcg-mgr";
    let _g = Guard(name.into());
    let child = sleeper()?;
    let pid = child.id() as u64;
    let r = (|| -> R<()> {
        let mut m = FsManager::new(name)?;
        println!("FsManager::new -> exists={}", m.exists());
        let t = Instant::now();
        show("add_proc(sleeper) [creates the cgroup]", &m.add_proc(CgroupPid::from(pid)));
        println!("    took {:?}; dirs now: {:?}", t.elapsed(),
            V1.iter().filter(|c| Path::new(ROOT).join(c).join(name).is_dir()).collect::<Vec<_>>());
        println!("    /proc/pid/cgroup: {}", raw(format!("/proc/{pid}/cgroup")));
        for (what, res) in res_all()? {
            let r = m.set(&res);
            show(&format!("set({what})"), &r);
        }
        dump_limits(name);
        println!("  pids(): {:?}", m.pids());
        show("freeze(Frozen)", &m.freeze(FreezerState::Frozen));
        println!("    freezer.state right after = {}", v1("freezer", name, "freezer.state"));
        std::thread::sleep(Duration::from_millis(50));
        println!("    freezer.state +50ms = {} ; /proc/pid/status State: {}", v1("freezer", name, "freezer.state"),
            raw(format!("/proc/{pid}/status")).split(" | ").find(|l| l.starts_with("State")).unwrap_or(""));
        show("freeze(Thawed)", &m.freeze(FreezerState::Thawed));
        println!("    freezer.state = {}", v1("freezer", name, "freezer.state"));
        let t = Instant::now();
        show("destroy() with the sleeper still inside", &m.destroy());
        println!("    took {:?}; sleeper now in: {}", t.elapsed(), raw(format!("/proc/{pid}/cgroup")));
        println!("    dirs left: {:?}", V1.iter().filter(|c| Path::new(ROOT).join(c).join(name).is_dir()).collect::<Vec<_>>());
        Ok(())
    })();
    kill(child);
    r
}

// ---------------------------------------------------------------- fsapi (Cgroup + Resources)
fn fsapi() -> R<()> {
    let name = "evalcg-fsapi";
    let _g = Guard(name.into());
    let child = sleeper()?;
    let r = (|| -> R<()> {
        let cg = Cgroup::new(hierarchies::auto(), name)?;
        println!("Cgroup::new ok; cpuset.cpus={} mems={}", v1("cpuset", name, "cpuset.cpus"), v1("cpuset", name, "cpuset.mems"));
        let mut res = Resources::default();
        res.memory.memory_hard_limit = Some(100 << 20);
        res.memory.memory_swap_limit = Some(200 << 20);
        show("apply(memory 100M, memsw 200M)", &cg.apply(&res));
        res.memory.memory_hard_limit = Some(300 << 20);
        res.memory.memory_swap_limit = Some(400 << 20);
        show("apply(memory raised to 300M, memsw 400M)", &cg.apply(&res));
        println!("    -> memory.limit_in_bytes={} memsw={}", v1("memory", name, "memory.limit_in_bytes"), v1("memory", name, "memory.memsw.limit_in_bytes"));
        let mut res = Resources::default();
        res.blkio.weight = Some(500);
        show("apply(blkio.weight 500)", &cg.apply(&res));
        println!("    -> blkio.bfq.weight={} blkio.weight={}", v1("blkio", name, "blkio.bfq.weight"), v1("blkio", name, "blkio.weight"));
        let mut res = Resources::default();
        res.hugepages.limits.push(cgroups_rs::fs::HugePageResource { size: "2MB".into(), limit: 4 << 20 });
        show("apply(hugetlb 2MB 4M) [no hugetlb v1 hierarchy]", &cg.apply(&res));
        let mut res = Resources::default();
        res.cpu.cpus = Some("7".into());
        show("apply(cpuset.cpus=7 on a 2-cpu host)", &cg.apply(&res));
        println!("    -> cpuset.cpus={}", v1("cpuset", name, "cpuset.cpus"));
        let mut res = Resources::default();
        res.cpu.shares = Some(1);
        show("apply(cpu.shares=1: kernel clamps to 2)", &cg.apply(&res));
        let mut res = Resources::default();
        res.pid.maximum_number_of_processes = Some(MaxValue::Value(-5));
        show("apply(pids.max=-5)", &cg.apply(&res));
        show("add_task_by_tgid(sleeper)", &cg.add_task_by_tgid(CgroupPid::from(child.id() as u64)));
        show("delete() with a process inside", &cg.delete());
        println!("    dirs left: {:?}", V1.iter().filter(|c| Path::new(ROOT).join(c).join(name).is_dir()).collect::<Vec<_>>());
        Ok(())
    })();
    kill(child);
    r
}

// ---------------------------------------------------------------- errors
fn errors() -> R<()> {
    let name = "evalcg-err";
    let _g = Guard(name.into());
    let cg = Cgroup::new(hierarchies::auto(), name)?;
    let blk: &BlkIoController = cg.controller_of().ok_or("blkio")?;
    let e = blk.set_weight(500);
    show("BlkIoController::set_weight(500) (writes blkio.weight, absent here)", &e);
    if let Err(e) = &e {
        println!("    kind={:?} source={:?}", e.kind(), std::error::Error::source(e).map(|s| s.to_string()));
    }
    let cpu: &CpuController = cg.controller_of().ok_or("cpu")?;
    show("CpuController::set_cfs_quota(-5)", &cpu.set_cfs_quota(-5));
    let mem: &MemController = cg.controller_of().ok_or("memory")?;
    show("MemController::set_limit(1) ", &mem.set_limit(1));
    show("MemController::set_memswap_limit(1) (below memory limit)", &mem.set_memswap_limit(1));
    // FsManager errors
    let mut m = FsManager::new(name)?;
    let res = LinuxResourcesBuilder::default().cpu(LinuxCpuBuilder::default().cpus("7").build()?).build()?;
    show("FsManager::set(cpuset.cpus=7)", &m.set(&res));
    let res = LinuxResourcesBuilder::default().hugepage_limits(vec![]).build()?;
    show("FsManager::set(hugepageLimits: [])", &m.set(&res));
    let res = LinuxResourcesBuilder::default().memory(LinuxMemoryBuilder::default().swappiness(200u64).build()?).build()?;
    show("FsManager::set(swappiness 200)", &m.set(&res));
    // a cgroup that was never created
    let mut gone = FsManager::new("evalcg-never")?;
    let res = LinuxResourcesBuilder::default().pids(LinuxPidsBuilder::default().limit(5i64).build()?).build()?;
    show("FsManager::set on a cgroup that does not exist", &gone.set(&res));
    println!("    created by set()? {}", Path::new(ROOT).join("pids/evalcg-never").exists());
    cg.delete()?;
    Ok(())
}

// ---------------------------------------------------------------- malformed files
fn catch<T: std::fmt::Debug>(what: &str, f: impl FnOnce() -> T + std::panic::UnwindSafe) {
    match std::panic::catch_unwind(f) {
        Ok(v) => {
            let s = format!("{v:?}");
            println!("  {what}: returned {}", if s.len() > 160 { format!("{}...", &s[..160]) } else { s });
        }
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            println!("  {what}: PANIC {msg:?}");
        }
    }
}

fn malformed() -> R<()> {
    std::panic::set_hook(Box::new(|_| {}));
    let base = PathBuf::from("/work/eval-cgroups/fake");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base)?;
    let dir = |n: &str| -> R<PathBuf> { let d = base.join(n); fs::create_dir_all(&d)?; Ok(d) };
    // v2 io.stat with a minor above i16::MAX (e.g. 259:40000)
    let d = dir("io-bigminor")?;
    fs::write(d.join("io.stat"), "259:40000 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), true);
    catch("v2 io.stat minor 40000 -> blkio()", move || c.blkio().io_stat);
    // v2 io.stat with extra keys (iocost/iolatency enabled)
    let d = dir("io-extra")?;
    fs::write(d.join("io.stat"), "8:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=5\n")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), true);
    catch("v2 io.stat line with 9 fields -> blkio().io_stat", move || c.blkio().io_stat);
    // v2 io.stat without discard fields (kernels < 5.0)
    let d = dir("io-old")?;
    fs::write(d.join("io.stat"), "8:0 rbytes=100 wbytes=200 rios=3 wios=4\n")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), true);
    catch("v2 io.stat line with 5 fields -> blkio().io_stat", move || c.blkio().io_stat);
    // v1 blkio with a minor above i16::MAX
    let d = dir("blkio-bigminor")?;
    fs::write(d.join("blkio.throttle.io_service_bytes"), "259:40000 Read 10\n259:40000 Write 20\nTotal 30\n")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), false);
    catch("v1 throttle.io_service_bytes minor 40000 -> blkio().throttle.io_service_bytes", move || c.blkio().throttle.io_service_bytes);
    let d = dir("blkio-time")?;
    fs::write(d.join("blkio.time_recursive"), "259:40000 55\n")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), false);
    catch("v1 blkio.time_recursive minor 40000 -> blkio().time_recursive", move || c.blkio().time_recursive);
    // v1 memory.oom_control with a non-number
    let d = dir("oom-bad")?;
    fs::write(d.join("memory.oom_control"), "oom_kill_disable x\nunder_oom 0\noom_kill 0\n")?;
    let c = MemController::new(d.clone(), PathBuf::new(), false);
    catch("v1 memory.oom_control 'oom_kill_disable x' -> memory_stat()", move || c.memory_stat().oom_control);
    // v1 memory.oom_control with an extra first line (field order change)
    let d = dir("oom-order")?;
    fs::write(d.join("memory.oom_control"), "under_oom 0\noom_kill_disable 0\noom_kill 3\n")?;
    let c = MemController::new(d.clone(), PathBuf::new(), false);
    catch("v1 memory.oom_control reordered (oom_kill 3) -> memory_stat().oom_control", move || c.memory_stat().oom_control);
    // v1 memory.numa_stat short
    let d = dir("numa-short")?;
    fs::write(d.join("memory.numa_stat"), "total=5 N0=5\n")?;
    let c = MemController::new(d.clone(), PathBuf::new(), false);
    catch("v1 memory.numa_stat with one line -> memory_stat()", move || c.memory_stat().usage_in_bytes);
    let d = dir("numa-empty")?;
    fs::write(d.join("memory.numa_stat"), "")?;
    let c = MemController::new(d.clone(), PathBuf::new(), false);
    catch("v1 memory.numa_stat empty -> memory_stat()", move || c.memory_stat().usage_in_bytes);
    // v1 memory.usage_in_bytes garbage
    let d = dir("usage-bad")?;
    fs::write(d.join("memory.usage_in_bytes"), "lots\n")?;
    let c = MemController::new(d.clone(), PathBuf::new(), false);
    catch("v1 memory.usage_in_bytes 'lots' -> memory_stat().usage_in_bytes", move || c.memory_stat().usage_in_bytes);
    // pids.current garbage
    let d = dir("pids-bad")?;
    fs::write(d.join("pids.current"), "x\n")?;
    fs::write(d.join("pids.max"), "max\n")?;
    let c = PidController::new(d.clone(), PathBuf::new(), false);
    catch("pids.current 'x' -> get_pid_current()", move || c.get_pid_current().map_err(|e| e.to_string()));
    // freezer state unexpected
    let d = dir("freezer")?;
    fs::write(d.join("freezer.state"), "WEIRD\n")?;
    let c = FreezerController::new(d.clone(), PathBuf::new(), false);
    catch("freezer.state 'WEIRD' -> state()", move || c.state().map(|_| ()).map_err(|e| e.to_string()));
    // write to a non-cgroupfs dir: File::create makes the file
    let d = dir("create")?;
    let c = BlkIoController::new(d.clone(), PathBuf::new(), false);
    catch("set_weight on a plain dir", move || c.set_weight(100).map_err(|e| e.to_string()));
    println!("    file created on a plain dir: {}", d.join("blkio.weight").exists());
    fs::remove_dir_all(&base)?;
    Ok(())
}

// ---------------------------------------------------------------- bench
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn std_create(name: &str) -> std::io::Result<()> {
    for c in V1 {
        let d = Path::new(ROOT).join(c).join(name);
        fs::create_dir(&d)?;
        if *c == "cpuset" {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = fs::read_to_string(d.join(f)).unwrap_or_default();
                if mine.trim().is_empty() {
                    let p = fs::read_to_string(Path::new(ROOT).join(c).join(f))?;
                    fs::write(d.join(f), p.trim())?;
                }
            }
        }
    }
    Ok(())
}
fn std_apply(name: &str) -> std::io::Result<()> {
    let w = |c: &str, f: &str, v: &str| fs::write(Path::new(ROOT).join(c).join(name).join(f), v);
    w("memory", "memory.limit_in_bytes", "268435456")?;
    w("cpu", "cpu.shares", "512")?;
    w("cpu", "cpu.cfs_period_us", "100000")?;
    w("cpu", "cpu.cfs_quota_us", "50000")?;
    w("pids", "pids.max", "128")?;
    Ok(())
}
fn std_delete(name: &str) -> std::io::Result<()> {
    for c in V1 {
        fs::remove_dir(Path::new(ROOT).join(c).join(name))?;
    }
    Ok(())
}
fn std_addpid(name: &str, pid: u32) -> std::io::Result<()> {
    for c in V1 {
        fs::write(Path::new(ROOT).join(c).join(name).join("cgroup.procs"), pid.to_string())?;
    }
    Ok(())
}
fn std_move_out(pid: u32) -> std::io::Result<()> {
    for c in V1 {
        fs::write(Path::new(ROOT).join(c).join("cgroup.procs"), pid.to_string())?;
    }
    Ok(())
}

fn fs_resources() -> Resources {
    let mut res = Resources::default();
    res.memory.memory_hard_limit = Some(268435456);
    res.cpu.shares = Some(512);
    res.cpu.period = Some(100000);
    res.cpu.quota = Some(50000);
    res.pid.maximum_number_of_processes = Some(MaxValue::Value(128));
    res
}
fn oci_resources() -> R<LinuxResources> {
    Ok(LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(268435456).build()?)
        .cpu(LinuxCpuBuilder::default().shares(512u64).quota(50000i64).period(100000u64).build()?)
        .pids(LinuxPidsBuilder::default().limit(128i64).build()?)
        .build()?)
}

fn bench(n: usize, only: String) -> R<()> {
    let on = |k: &str| only.is_empty() || only == k;
    let runs = if only.is_empty() { 3 } else { 1 };
    let child = sleeper()?;
    let pid = child.id();
    let r = (|| -> R<()> {
        let oci = oci_resources()?;
        let fsres = fs_resources();
        let mut results: HashMap<&str, Vec<f64>> = HashMap::new();
        for run in 0..runs {
            // A: cgroups-rs fs API (Cgroup::new + apply + delete), no process
            if on("A") {
            let t = Instant::now();
            for i in 0..n {
                let name = format!("evalcg-b-{run}-{i}");
                let _g = Guard(name.clone());
                let cg = Cgroup::new(hierarchies::auto(), &name)?;
                cg.apply(&fsres)?;
                cg.delete()?;
            }
            results.entry("A cgroups-rs Cgroup::new+apply+delete").or_default().push(t.elapsed().as_secs_f64() * 1e3);
            }
            // B: std::fs equivalent
            if on("B") {
            let t = Instant::now();
            for i in 0..n {
                let name = format!("evalcg-s-{run}-{i}");
                let _g = Guard(name.clone());
                std_create(&name)?;
                std_apply(&name)?;
                std_delete(&name)?;
            }
            results.entry("B std::fs mkdir+write+rmdir").or_default().push(t.elapsed().as_secs_f64() * 1e3);
            }
            // C: FsManager new + add_proc + set + destroy (moves the sleeper back out)
            if on("C") {
            let t = Instant::now();
            for i in 0..n {
                let name = format!("evalcg-m-{run}-{i}");
                let _g = Guard(name.clone());
                let mut m = FsManager::new(&name)?;
                m.add_proc(CgroupPid::from(pid as u64))?;
                m.set(&oci)?;
                m.destroy()?;
            }
            results.entry("C cgroups-rs FsManager new+add_proc+set+destroy").or_default().push(t.elapsed().as_secs_f64() * 1e3);
            }
            // D: std::fs equivalent with the process
            if on("D") {
            let t = Instant::now();
            for i in 0..n {
                let name = format!("evalcg-d-{run}-{i}");
                let _g = Guard(name.clone());
                std_create(&name)?;
                std_addpid(&name, pid)?;
                std_apply(&name)?;
                std_move_out(pid)?;
                std_delete(&name)?;
            }
            results.entry("D std::fs mkdir+procs+write+move out+rmdir").or_default().push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let mut keys: Vec<_> = results.keys().copied().collect();
        keys.sort();
        for k in keys {
            let v = &results[k];
            println!("{k:<50} runs(ms)={:?} median={:.1} ms  ({:.2} ms/cgroup)",
                v.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(), median(v.clone()), median(v.clone()) / n as f64);
        }
        Ok(())
    })();
    kill(child);
    r
}

// ---------------------------------------------------------------- stats
/// A reader of the same files berth's daemon/src/cri/cgroup_sample.rs::v1 reads
/// (written here independently, for timing and cross-checking).
fn raw_v1(rel: &str) -> Vec<(String, String)> {
    let p = |c: &str, f: &str| Path::new(ROOT).join(c).join(rel).join(f);
    let kv = |text: &str, k: &str| text.lines().find_map(|l| l.split_once(' ').filter(|(a, _)| *a == k).map(|(_, b)| b.trim().to_string())).unwrap_or_default();
    let mem = fs::read_to_string(p("memory", "memory.stat")).unwrap_or_default();
    let acct = fs::read_to_string(p("cpuacct", "cpuacct.stat")).unwrap_or_default();
    let cpu = fs::read_to_string(p("cpu", "cpu.stat")).unwrap_or_default();
    let oom = fs::read_to_string(p("memory", "memory.oom_control")).unwrap_or_default();
    let rd = |c: &str, f: &str| fs::read_to_string(p(c, f)).map(|s| s.trim().to_string()).unwrap_or_default();
    let usage: u64 = rd("memory", "memory.usage_in_bytes").parse().unwrap_or(0);
    let inactive: u64 = kv(&mem, "total_inactive_file").parse().unwrap_or(0);
    let blk = fs::read_to_string(p("blkio", "blkio.throttle.io_service_bytes")).unwrap_or_default();
    let (mut rb, mut wb) = (0u64, 0u64);
    for l in blk.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, v] = f[..] {
            match op { "Read" => rb += v.parse::<u64>().unwrap_or(0), "Write" => wb += v.parse::<u64>().unwrap_or(0), _ => {} }
        }
    }
    vec![
        ("cpuacct.usage".into(), rd("cpuacct", "cpuacct.usage")),
        ("cpuacct.stat user (ticks)".into(), kv(&acct, "user")),
        ("cpuacct.stat system (ticks)".into(), kv(&acct, "system")),
        ("cpu.stat nr_periods".into(), kv(&cpu, "nr_periods")),
        ("cpu.stat nr_throttled".into(), kv(&cpu, "nr_throttled")),
        ("cpu.stat throttled_time".into(), kv(&cpu, "throttled_time")),
        ("memory.usage_in_bytes".into(), usage.to_string()),
        ("working set (usage - total_inactive_file)".into(), usage.saturating_sub(inactive).to_string()),
        ("memory.stat total_rss".into(), kv(&mem, "total_rss")),
        ("memory.stat rss".into(), kv(&mem, "rss")),
        ("memory.stat total_cache".into(), kv(&mem, "total_cache")),
        ("memory.stat total_swap".into(), kv(&mem, "total_swap")),
        ("memory.failcnt".into(), rd("memory", "memory.failcnt")),
        ("memory.memsw.usage_in_bytes".into(), rd("memory", "memory.memsw.usage_in_bytes")),
        ("memory.oom_control oom_kill".into(), kv(&oom, "oom_kill")),
        ("pids.current".into(), rd("pids", "pids.current")),
        ("pids.max".into(), rd("pids", "pids.max")),
        ("blkio throttle Read bytes".into(), rb.to_string()),
        ("blkio throttle Write bytes".into(), wb.to_string()),
    ]
}

fn stats() -> R<()> {
    let name = "evalcg-stats";
    let _g = Guard(name.into());
    let file = "/work/eval-cgroups/ddfile";
    let mut m = FsManager::new(name)?;
    // The busy process: a 40 MiB dd buffer copied forever, after some direct I/O.
    let script = format!("dd if=/dev/zero of={file} bs=1M count=16 oflag=direct 2>/dev/null; dd if={file} of=/dev/null bs=1M iflag=direct 2>/dev/null; exec dd if=/dev/zero of=/dev/null bs=40M");
    // Start it stopped-in-cgroup: a shell that waits for a byte on stdin first.
    let mut child = Command::new("sh").arg("-c").arg(format!("read x; {script}")).stdin(Stdio::piped()).spawn()?;
    let r = (|| -> R<()> {
        m.add_proc(CgroupPid::from(child.id() as u64))?;
        m.set(&LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().quota(30000i64).period(100000u64).build()?)
            .memory(LinuxMemoryBuilder::default().limit(512 << 20).build()?)
            .build()?)?;
        use std::io::Write;
        child.stdin.take().ok_or("stdin")?.write_all(b"go\n")?;
        std::thread::sleep(Duration::from_secs(3));
        let s = m.stats();
        let raw = raw_v1(name);
        println!("--- raw files (same set as berth's cgroup_sample::v1)");
        for (k, v) in &raw { println!("  {k:<45} {v}"); }
        println!("--- cgroups-rs FsManager::stats()");
        println!("  cpu.cpu_acct: {:?}", s.cpu.cpu_acct.as_ref().map(|a| (a.total_usage, a.user_usage, a.system_usage, a.usage_percpu.clone())));
        println!("  cpu.cpu_throttling: {:?}", s.cpu.cpu_throttling);
        println!("  memory.memory: {:?}", s.memory.memory);
        println!("  memory.memory_swap: {:?}", s.memory.memory_swap);
        println!("  memory rss={} cache={} swap={} total_rss={} total_cache={} total_swap={} total_inactive_file={} use_hierarchy={}",
            s.memory.rss, s.memory.cache, s.memory.swap, s.memory.total_rss, s.memory.total_cache, s.memory.total_swap, s.memory.total_inactive_file, s.memory.use_hierarchy);
        println!("  pids: {:?}", s.pids);
        for b in &s.blkio.io_service_bytes_recursive { println!("  blkio io_service_bytes_recursive {}:{} {} {}", b.major, b.minor, b.op, b.value); }
        println!("  (no oom-kill or working-set field in CgroupStats)");
        // Timing of a stats read
        let n = 300;
        let t = Instant::now();
        for _ in 0..n { let m2 = FsManager::new(name)?; let _ = m2.stats(); }
        let a = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n { let _ = m.stats(); }
        let b = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n { let _ = raw_v1(name); }
        let c = t.elapsed() / n;
        println!("--- per read: FsManager::new+stats {a:?}; stats() on a kept FsManager {b:?}; raw file reader {c:?}");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    // The shell's dd child may survive the shell: kill whatever is left in the cgroup.
    for p in m.pids().unwrap_or_default() { unsafe { libc::kill(p.pid as i32, libc::SIGKILL); } }
    std::thread::sleep(Duration::from_millis(200));
    let _ = m.destroy();
    let _ = fs::remove_file(file);
    r
}

fn oom() -> R<()> {
    let name = "evalcg-oom";
    let _g = Guard(name.into());
    let mut m = FsManager::new(name)?;
    let mut child = Command::new("sh").arg("-c").arg("read x; exec dd if=/dev/zero of=/dev/null bs=200M count=1").stdin(Stdio::piped()).spawn()?;
    let r = (|| -> R<()> {
        m.add_proc(CgroupPid::from(child.id() as u64))?;
        m.set(&LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(32 << 20).swap(32 << 20).build()?).build()?)?;
        use std::io::Write;
        child.stdin.take().ok_or("stdin")?.write_all(b"go\n")?;
        let st = child.wait()?;
        println!("child exit: {st:?}");
        println!("raw memory.oom_control: {}", v1("memory", name, "memory.oom_control"));
        println!("raw memory.failcnt: {}  memsw.failcnt: {}", v1("memory", name, "memory.failcnt"), v1("memory", name, "memory.memsw.failcnt"));
        let s = m.stats();
        println!("FsManager::stats().memory.memory: {:?}", s.memory.memory);
        println!("FsManager::stats().memory.memory_swap: {:?}", s.memory.memory_swap);
        let cg = Cgroup::load(hierarchies::auto(), name);
        let mc: &MemController = cg.controller_of().ok_or("memory")?;
        println!("fs API MemController::memory_stat().oom_control: {:?}", mc.memory_stat().oom_control);
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = m.destroy();
    r
}

// ---------------------------------------------------------------- v2 simulation
fn v2sim() -> R<()> {
    println!("is_cgroup2_unified_mode() = {}", hierarchies::is_cgroup2_unified_mode());
    println!("root cgroup.controllers = {}", raw("/sys/fs/cgroup/cgroup.controllers"));
    let h = hierarchies::auto();
    println!("auto().v2() = {}", h.v2());
    for s in h.subsystems() { println!("  subsystem {}", s.controller_name()); }
    let name = "evalcg-v2";
    let _g = Guard(name.into());
    let child = sleeper()?;
    let pid = child.id();
    let r = (|| -> R<()> {
        let mut m = FsManager::new(name)?;
        show("add_proc", &m.add_proc(CgroupPid::from(pid as u64)));
        println!("    cgroup.procs = {}", raw(format!("/sys/fs/cgroup/{name}/cgroup.procs")));
        for (what, res) in res_all()? {
            show(&format!("set({what})"), &m.set(&res));
        }
        println!("    hugetlb.2MB.max = {}", raw(format!("/sys/fs/cgroup/{name}/hugetlb.2MB.max")));
        show("freeze(Frozen)", &m.freeze(FreezerState::Frozen));
        std::thread::sleep(Duration::from_millis(50));
        println!("    cgroup.events = {}", raw(format!("/sys/fs/cgroup/{name}/cgroup.events")));
        show("freeze(Thawed)", &m.freeze(FreezerState::Thawed));
        let s = m.stats();
        println!("  stats: cpu_acct={:?} throttling={:?} memory={:?} pids={:?}", s.cpu.cpu_acct.map(|a| a.total_usage), s.cpu.cpu_throttling, s.memory.memory, s.pids);
        println!("  raw cpu.stat = {}", raw(format!("/sys/fs/cgroup/{name}/cpu.stat")));
        show("destroy", &m.destroy());
        Ok(())
    })();
    kill(child);
    r
}
