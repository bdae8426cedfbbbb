//! Builds berth's container init (`init/berth_init.rs`) as a static executable, so it
//! runs in any image whatever libc the image has (or none); the engine embeds it
//! (`init_binary`). Cargo cannot link one crate of a workspace statically, so the build
//! script calls rustc itself.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/berth_init.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "berth_init",
            "--target",
            &target,
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "panic=abort"])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "strip=symbols",
            "-C",
            "debuginfo=0",
        ])
        .arg("-o")
        .arg(out.join("berth-init"))
        .arg(src)
        .status()
        .expect("running rustc for the container init");
    assert!(status.success(), "building the container init {src} failed");
}
