//! `kill -9` of a process writing image records, at random moments, several times: the
//! reopened store decodes every record, holds each name once, and shows each `put`,
//! `tag` and `remove` either done or not done, never half.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_image::manifest::Descriptor;
use berth_image::{ImageRecord, ImageStore};
use berth_snapshotter::Digest;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DIR_ENV: &str = "BERTH_IMAGE_STORE_CRASH_DIR";
const LATEST: &str = "example.com/crash/latest:latest";

fn a(seq: u64) -> String {
    format!("example.com/crash/a:{seq}")
}

fn b(seq: u64) -> String {
    format!("example.com/crash/b:{seq}")
}

/// The record the writer puts for `seq`, under `name`; big enough (about 15 KiB of
/// JSON) that a write spans several database pages.
fn record(name: &str, seq: u64) -> ImageRecord {
    let layers: Vec<Descriptor> = (0..60)
        .map(|i| Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::of(format!("layer {seq} {i}").as_bytes()),
            size: seq * 1000 + i,
            platform: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
        })
        .collect();
    ImageRecord {
        name: name.to_string(),
        index_digest: None,
        manifest_digest: Digest::of(format!("manifest {seq}").as_bytes()),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config_digest: Digest::of(format!("config {seq}").as_bytes()),
        diff_ids: (0..60)
            .map(|i| Digest::of(format!("diff {seq} {i}").as_bytes()))
            .collect(),
        chain_id: Some(Digest::of(format!("chain {seq}").as_bytes())),
        size: layers.iter().map(|l| l.size).sum(),
        layers,
        created: seq,
        diff_sizes: Some(vec![seq; 60]),
    }
}

/// The child half of `kill_9_leaves_a_consistent_image_store`: for seq = 0, 1, …
/// puts `a:seq`, tags it `b:seq` and `latest`, removes `a:seq`, until it is killed.
#[test]
#[ignore = "run only as the child process of kill_9_leaves_a_consistent_image_store"]
fn crash_writer_child() -> TestResult {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return Ok(());
    };
    let store = ImageStore::open(Path::new(&dir))?;
    for seq in 0.. {
        store.put(&record(&a(seq), seq))?;
        store.tag(&a(seq), &b(seq))?;
        store.tag(&a(seq), LATEST)?;
        store.remove(&a(seq))?;
    }
    Ok(())
}

/// The seq a writer's record name carries.
fn seq_of(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// Checks what the killed writer left and returns how many images it finished tagging.
fn check(store: &ImageStore) -> Result<u64, Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(store.db_path())?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(integrity, "ok");
    let duplicates: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (SELECT name FROM images GROUP BY name HAVING COUNT(*) > 1)",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(duplicates, 0, "a name is held twice");

    // Every record decodes, under its own name, with the content the writer put.
    let records = store.list()?;
    let mut by_name = HashMap::new();
    for rec in &records {
        assert_eq!(store.get(&rec.name)?.as_ref(), Some(rec));
        let seq = rec.created;
        assert_eq!(
            *rec,
            record(&rec.name, seq),
            "{} is not what was written",
            rec.name
        );
        assert!(by_name.insert(rec.name.clone(), seq).is_none());
    }

    // b:0 … b:n-1, each the copy of a:seq; the writer's progress on a:n or a:n-1 shows
    // as the one a: left and where latest points.
    let mut bs: Vec<u64> = by_name
        .keys()
        .filter_map(|n| seq_of(n, "example.com/crash/b:"))
        .collect();
    bs.sort_unstable();
    let n = bs.len() as u64;
    assert!(
        bs.iter().copied().eq(0..n),
        "tags b: are not 0..{n}: {bs:?}"
    );
    for seq in &bs {
        assert_eq!(by_name[&b(*seq)], *seq);
    }
    let a_left: Vec<u64> = by_name
        .keys()
        .filter_map(|n| seq_of(n, "example.com/crash/a:"))
        .collect();
    let latest = by_name.get(LATEST).copied();
    assert_eq!(
        records.len(),
        bs.len() + a_left.len() + usize::from(latest.is_some()),
        "unexpected names: {:?}",
        by_name.keys().collect::<Vec<_>>()
    );
    match a_left.as_slice() {
        // Between removing a:n-1 and putting a:n.
        [] => assert!(n == 0 || latest == Some(n - 1), "n={n} latest={latest:?}"),
        // a:n put, not tagged yet.
        [s] if *s == n => assert!(latest == n.checked_sub(1), "n={n} latest={latest:?}"),
        // a:n-1 tagged b:n-1, maybe latest, not removed yet.
        [s] if n > 0 && *s == n - 1 => assert!(
            latest == Some(n - 1) || latest == n.checked_sub(2),
            "n={n} latest={latest:?}"
        ),
        other => panic!("a: left {other:?} with {n} b: tags"),
    }
    Ok(n)
}

#[test]
fn kill_9_leaves_a_consistent_image_store() -> TestResult {
    let root = tempfile::tempdir()?;
    for round in 0..5u64 {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--exact", "crash_writer_child", "--ignored", "--nocapture"])
            .env(DIR_ENV, root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // A different moment each round: 250 ms plus up to 400 ms of clock noise.
        let jitter = u64::from(SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos()) % 400;
        std::thread::sleep(Duration::from_millis(250 + jitter));
        child.kill()?; // SIGKILL
        let status = child.wait()?;
        assert!(
            status.code().is_none(),
            "the writer stopped on its own: {status}"
        );

        let store = ImageStore::open(root.path())?;
        let n = check(&store)?;
        assert!(n > 0, "the writer committed nothing in round {round}");
        eprintln!(
            "round {round}: killed after {jitter_ms} ms, {n} images tagged",
            jitter_ms = 250 + jitter
        );
        // Empty the store so the next round's writer starts from seq 0 again; this
        // also writes to the database the crash left.
        for rec in store.list()? {
            store.remove(&rec.name)?;
        }
        assert!(store.list()?.is_empty());
    }
    Ok(())
}
