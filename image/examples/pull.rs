//! `pull [--plain-http HOST]... [--concurrency N] [--platform P] ROOT REF`: pulls REF into
//! a berth store at ROOT (content, snapshots, image record) and prints the time taken.
//! Used by hack/bench/pull.sh; not a product binary.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_image::registry::RegistryConfig;
use berth_image::{Client, ImageStore, PullOptions, Puller};
use berth_snapshotter::{ContentStore, Snapshotter};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut config = RegistryConfig::default();
    let mut opts = PullOptions::default();
    let mut positional = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--plain-http" => {
                config
                    .host_mut(&args.next().context("--plain-http HOST")?)
                    .insecure = true
            }
            "--concurrency" => {
                opts.max_concurrent_downloads = args.next().context("--concurrency N")?.parse()?
            }
            "--platform" => opts.platform = args.next().context("--platform P")?.parse()?,
            _ => positional.push(a),
        }
    }
    let [root, reference] = positional.as_slice() else {
        bail!("usage: pull [--plain-http HOST] [--concurrency N] ROOT REF");
    };
    let root = std::path::Path::new(root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let rec = rt.block_on(async {
        let content = ContentStore::open(root)?;
        let snapshots = Arc::new(Snapshotter::open(root)?);
        let images = ImageStore::open(root)?;
        let puller = Puller::new(Arc::new(Client::new(config)?), content, snapshots, images);
        anyhow::Ok(puller.pull(reference, &opts).await?)
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "pulled {} {} layers={} bytes={} seconds={secs:.3} MB/s={:.1}",
        rec.name,
        rec.manifest_digest,
        rec.layers.len(),
        rec.size,
        rec.size as f64 / 1e6 / secs
    );
    Ok(())
}
