//! `bench_registry`: builds the ~200 MB fixture images (random and text), starts a
//! loopback docker-registry, pushes both as `bench/random:1` and `bench/text:1`, prints
//! `HOST <host>` and `SIZE <repo> <bytes>` lines, then serves until stdin closes (the
//! registry is stopped and removed on exit). Used by hack/bench/pull.sh.

use std::io::Read;

use anyhow::Result;
use berth_fixtures::{large, Registry};

fn main() -> Result<()> {
    let random = large::large_random()?;
    let text = large::large_text()?;
    let reg = Registry::start()?;
    reg.push(&random, "bench/random:1")?;
    reg.push(&text, "bench/text:1")?;
    println!("HOST {}", reg.host());
    for (name, img) in [("bench/random:1", &random), ("bench/text:1", &text)] {
        let size: u64 = img.layers.iter().map(|l| l.size).sum();
        let raw: u64 = img.layers.iter().map(|l| l.uncompressed_size).sum();
        println!("SIZE {name} {size} {raw}");
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(reg);
    Ok(())
}
