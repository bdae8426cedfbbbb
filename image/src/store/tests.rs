//! The store on its own: records, tags, schema versions, corrupt rows and the import of
//! an older store's files. (The crash test is `tests/store_crash.rs`.)

use std::collections::BTreeMap;
use std::fs;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn record(name: &str, n: u64) -> ImageRecord {
    let layers: Vec<Descriptor> = (0..3)
        .map(|i| Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::of(format!("layer {n} {i}").as_bytes()),
            size: 100 + i,
            platform: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
        })
        .collect();
    ImageRecord {
        name: name.to_string(),
        index_digest: Some(Digest::of(format!("index {n}").as_bytes())),
        manifest_digest: Digest::of(format!("manifest {n}").as_bytes()),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config_digest: Digest::of(format!("config {n}").as_bytes()),
        diff_ids: (0..3)
            .map(|i| Digest::of(format!("diff {n} {i}").as_bytes()))
            .collect(),
        chain_id: Some(Digest::of(format!("chain {n}").as_bytes())),
        size: layers.iter().map(|l| l.size).sum(),
        layers,
        created: 1_700_000_000 + n,
        diff_sizes: Some(vec![1000 + n, 2000, 3000]),
    }
}

fn renamed(mut rec: ImageRecord, name: &str) -> ImageRecord {
    rec.name = name.to_string();
    rec
}

/// Writes `rec` the way stores before the database did.
fn write_legacy(root: &Path, rec: &ImageRecord) -> TestResult {
    let dir = root.join("images");
    fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{}.json", Digest::of(rec.name.as_bytes()).hex()));
    fs::write(file, serde_json::to_vec_pretty(rec)?)?;
    Ok(())
}

#[test]
fn store_is_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<ImageStore>();
}

#[test]
fn put_unless_named_writes_only_an_unnamed_image() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    let a = record("example.com/a:1", 1);
    store.put(&a)?;
    // Another name for the same image (config digest): not written.
    let other = renamed(a.clone(), "<none>@a");
    assert!(!store.put_unless_named(&other)?);
    assert_eq!(store.list()?, vec![a.clone()]);
    // Once nothing names it, it is.
    store.remove("example.com/a:1")?;
    assert!(store.put_unless_named(&other)?);
    assert_eq!(store.list()?, vec![other]);
    Ok(())
}

#[test]
fn put_get_list_tag_remove() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    assert_eq!(store.db_path(), root.path().join(DB_FILE));
    assert!(store.list()?.is_empty());
    let a = record("example.com/a:1", 1);
    let b = record("example.com/b:1", 2);
    store.put(&a)?;
    store.put(&b)?;
    assert_eq!(store.get("example.com/a:1")?, Some(a.clone()));
    assert_eq!(store.get("example.com/nope:1")?, None);
    assert_eq!(store.list()?, vec![a.clone(), b.clone()]);

    // A tag is a copy under the new name, and replaces what that name held.
    let tagged = store.tag("example.com/a:1", "example.com/b:1")?;
    assert_eq!(tagged, renamed(a.clone(), "example.com/b:1"));
    assert_eq!(store.get("example.com/b:1")?, Some(tagged.clone()));
    assert_eq!(
        store.by_config_digest(&a.config_digest)?,
        vec![a.clone(), tagged.clone()]
    );
    assert!(store.by_config_digest(&b.config_digest)?.is_empty());
    assert!(matches!(
        store.tag("example.com/nope:1", "example.com/c:1"),
        Err(StoreError::NotFound(ref n)) if n == "example.com/nope:1"
    ));
    assert_eq!(
        store.get("example.com/c:1")?,
        None,
        "a failed tag wrote nothing"
    );

    assert_eq!(store.remove("example.com/a:1")?, a);
    assert!(matches!(
        store.remove("example.com/a:1"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list()?, vec![tagged.clone()]);

    // Clones share the database; a reopened store sees what was committed.
    let clone = store.clone();
    let c = record("example.com/c:1", 3);
    clone.put(&c)?;
    drop(store);
    drop(clone);
    let store = ImageStore::open(root.path())?;
    assert_eq!(store.list()?, vec![tagged, c]);
    assert!(!root.path().join("images").exists());
    Ok(())
}

#[test]
fn lookup_columns_match_the_record() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    let a = record("example.com/a:1", 7);
    store.put(&a)?;
    let conn = Connection::open(root.path().join(DB_FILE))?;
    let (config, manifest, created): (String, String, i64) = conn.query_row(
        "SELECT config_digest, manifest_digest, created FROM images WHERE name = ?1",
        params![a.name],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    assert_eq!(config, a.config_digest.to_string());
    assert_eq!(manifest, a.manifest_digest.to_string());
    assert_eq!(created, i64::try_from(a.created)?);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    Ok(())
}

#[test]
fn a_newer_schema_is_refused() -> TestResult {
    let root = tempfile::tempdir()?;
    drop(ImageStore::open(root.path())?);
    let conn = Connection::open(root.path().join(DB_FILE))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
    drop(conn);
    let err = ImageStore::open(root.path()).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade berth"), "{err}");
    Ok(())
}

#[test]
fn a_corrupt_row_is_an_error_naming_the_image() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    store.put(&record("example.com/good:1", 1))?;
    let conn = Connection::open(root.path().join(DB_FILE))?;
    conn.execute(
        "INSERT INTO images VALUES ('example.com/bad:1', 'x', 'y', 0, '{\"name\": 3')",
        [],
    )?;
    conn.execute(
        "INSERT INTO images SELECT 'example.com/moved:1', config_digest, manifest_digest,
             created, record FROM images WHERE name = 'example.com/good:1'",
        [],
    )?;
    for (name, result) in [
        ("example.com/bad:1", store.get("example.com/bad:1")),
        ("example.com/moved:1", store.get("example.com/moved:1")),
        ("example.com/bad:1", store.list().map(|_| None)),
        (
            "example.com/bad:1",
            store.tag("example.com/bad:1", "example.com/x:1").map(Some),
        ),
        (
            "example.com/bad:1",
            store.remove("example.com/bad:1").map(Some),
        ),
    ] {
        match result {
            Err(err @ StoreError::Corrupt { .. }) => {
                assert!(err.to_string().contains(name), "{err}")
            }
            other => panic!("{name}: expected a corrupt-record error, got {other:?}"),
        }
    }
    assert_eq!(store.get("example.com/x:1")?, None);
    assert!(store.get("example.com/good:1")?.is_some());
    Ok(())
}

#[test]
fn an_older_stores_files_are_imported_once_and_removed() -> TestResult {
    let root = tempfile::tempdir()?;
    let a = record("docker.io/library/busybox:latest", 1);
    let b = record("example.com/b:1", 2);
    write_legacy(root.path(), &a)?;
    write_legacy(root.path(), &b)?;
    // A write the old store never renamed into place is not a record.
    fs::write(root.path().join("images/deadbeef.tmp"), b"{\"name\":")?;

    let store = ImageStore::open(root.path())?;
    // Older stores derived a digest reference from each tagged record: it is a row now.
    let a_digest = renamed(a.clone(), &a.digest_ref().ok_or("a is tagged")?);
    let b_digest = renamed(b.clone(), &b.digest_ref().ok_or("b is tagged")?);
    let all = vec![a.clone(), a_digest.clone(), b.clone(), b_digest.clone()];
    assert_eq!(store.list()?, all);
    assert!(!root.path().join("images").exists());

    // A crash after the import committed but before the files were gone: the same
    // files again. Importing them again changes nothing and removes them.
    store.remove(&b.name)?;
    store.put(&b)?;
    drop(store);
    write_legacy(root.path(), &a)?;
    write_legacy(root.path(), &b)?;
    let store = ImageStore::open(root.path())?;
    assert_eq!(store.list()?, all);
    assert!(!root.path().join("images").exists());
    Ok(())
}

#[test]
fn import_keeps_foreign_files_and_refuses_bad_records() -> TestResult {
    let root = tempfile::tempdir()?;
    let a = record("example.com/a:1", 1);
    write_legacy(root.path(), &a)?;
    fs::write(root.path().join("images/README"), b"not a record")?;
    let store = ImageStore::open(root.path())?;
    let a_digest = renamed(a.clone(), &a.digest_ref().ok_or("a is tagged")?);
    assert_eq!(store.list()?, vec![a.clone(), a_digest.clone()]);
    assert!(root.path().join("images/README").exists());
    assert_eq!(fs::read_dir(root.path().join("images"))?.count(), 1);
    drop(store);

    // A file that is not a record stops the import before anything is written.
    let b = record("example.com/b:1", 2);
    write_legacy(root.path(), &b)?;
    let bad = root.path().join("images/0000.json");
    fs::write(&bad, b"{\"name\": \"example.com/c:1\"")?;
    let err = ImageStore::open(root.path()).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, StoreError::Json { ref path, .. } if *path == bad),
        "{err}"
    );
    assert!(err.to_string().contains("0000.json"), "{err}");
    fs::remove_file(&bad)?;
    let store = ImageStore::open(root.path())?;
    let b_digest = renamed(b.clone(), &b.digest_ref().ok_or("b is tagged")?);
    assert_eq!(store.list()?, vec![a, a_digest, b, b_digest]);
    Ok(())
}

#[test]
fn the_error_stays_small() {
    // Carried inside the errors of pull, load, the CRI server and berthd, whose
    // `Result`s clippy wants small; as small as it was with the record files.
    assert!(std::mem::size_of::<StoreError>() <= 56);
}

#[test]
fn a_pull_by_tag_adds_the_digest_reference_once() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    // Selected from an index: the reference is the index's digest, as Docker's.
    let a = record("example.com/a:1", 1);
    let index = a.index_digest.clone().ok_or("the record has an index")?;
    let a_digest = renamed(a.clone(), &format!("example.com/a@{index}"));
    assert_eq!(a.digest_ref().as_deref(), Some(a_digest.name.as_str()));
    store.put_pulled(&a)?;
    assert_eq!(store.list()?, vec![a.clone(), a_digest.clone()]);
    // A later pull of another image under the same digest reference keeps the
    // reference's image (Docker does not move digest references).
    let other = renamed(record("example.com/a:2", 2), "example.com/a:2");
    let mut moved = other.clone();
    moved.index_digest = Some(index.clone());
    store.put_pulled(&moved)?;
    assert_eq!(store.get(&a_digest.name)?, Some(a_digest.clone()));
    // A pull by digest is its own reference only.
    let c_name = format!("example.com/c@{}", Digest::of(b"c"));
    let by_digest = renamed(record("example.com/c:1", 3), &c_name);
    assert_eq!(by_digest.digest_ref(), None);
    store.put_pulled(&by_digest)?;
    assert_eq!(store.list()?, vec![a, moved, a_digest, by_digest]);
    // Dangling records (named by image ID) have no reference.
    let dangling = renamed(record("x:1", 4), &Digest::of(b"config 4").to_string());
    assert_eq!(dangling.digest_ref(), None);
    Ok(())
}

#[test]
fn a_push_adds_the_pushed_digest_reference() -> TestResult {
    let root = tempfile::tempdir()?;
    let store = ImageStore::open(root.path())?;
    let a = record("example.com/copy:2", 1);
    store.put(&a)?;
    let pushed = Digest::of(b"pushed manifest");
    let name = store.add_digest_ref(&a, &pushed)?;
    assert_eq!(name, format!("example.com/copy@{pushed}"));
    assert_eq!(store.get(&name)?, Some(renamed(a.clone(), &name)));
    // Again: unchanged.
    assert_eq!(store.add_digest_ref(&a, &pushed)?, name);
    assert_eq!(store.list()?.len(), 2);
    Ok(())
}

#[test]
fn a_version_1_database_gets_its_digest_references() -> TestResult {
    let root = tempfile::tempdir()?;
    let tagged = record("example.com/a:1", 1);
    let b_name = format!("example.com/b@{}", Digest::of(b"b"));
    let by_digest = renamed(record("example.com/b:1", 2), &b_name);
    let dangling = renamed(record("x:1", 3), &Digest::of(b"config 3").to_string());
    // A version 1 row: written before records kept diff_sizes.
    let mut old = serde_json::to_value(&tagged)?;
    old.as_object_mut()
        .ok_or("a record is an object")?
        .remove("diff_sizes");
    {
        let conn = Connection::open(root.path().join(DB_FILE))?;
        conn.execute_batch(
            "CREATE TABLE images (
                 name TEXT PRIMARY KEY NOT NULL, config_digest TEXT NOT NULL,
                 manifest_digest TEXT NOT NULL, created INTEGER NOT NULL,
                 record TEXT NOT NULL);
             PRAGMA user_version = 1;",
        )?;
        for (name, json) in [
            (&tagged.name, old.to_string()),
            (&by_digest.name, serde_json::to_string(&by_digest)?),
            (&dangling.name, serde_json::to_string(&dangling)?),
        ] {
            conn.execute(
                "INSERT INTO images VALUES (?1, 'c', 'm', 0, ?2)",
                params![name, json],
            )?;
        }
    }
    let store = ImageStore::open(root.path())?;
    let mut a = tagged.clone();
    a.diff_sizes = None;
    let a_digest = renamed(a.clone(), &tagged.digest_ref().ok_or("tagged")?);
    let mut want = vec![a, a_digest, by_digest, dangling];
    want.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(store.list()?, want);
    let conn = Connection::open(root.path().join(DB_FILE))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);
    // Once migrated, a removed digest reference stays removed.
    store.remove(&want[1].name)?;
    drop(store);
    let store = ImageStore::open(root.path())?;
    assert_eq!(store.list()?.len(), 3);
    Ok(())
}

#[test]
fn layer_sizes_of_older_records_are_measured_on_their_snapshots() -> TestResult {
    let root = tempfile::tempdir()?;
    let snapshots = Snapshotter::open(root.path())?;
    let diff_ids = vec![Digest::of(b"diff 0"), Digest::of(b"diff 1")];
    let chains = berth_snapshotter::digest::chain_ids(&diff_ids);
    for (i, (chain, bytes)) in chains.iter().zip([1234usize, 56]).enumerate() {
        let key = format!("extract-{i}");
        snapshots.prepare(&key, None)?;
        fs::write(snapshots.fs_path(&key)?.join("f"), vec![0u8; bytes])?;
        let parent = i.checked_sub(1).map(|p| chains[p].to_string());
        snapshots.commit_layer(&chain.to_string(), &key, parent.as_deref())?;
    }
    let store = ImageStore::open(root.path())?;
    let mut old = record("example.com/old:1", 1);
    old.diff_ids = diff_ids;
    old.diff_sizes = None;
    let mut lost = record("example.com/lost:1", 2);
    lost.diff_sizes = None;
    let current = record("example.com/new:1", 3);
    for r in [&old, &lost, &current] {
        store.put(r)?;
    }
    assert_eq!(store.backfill_diff_sizes(&snapshots)?, 1);
    let measured = store.get(&old.name)?.ok_or("old is there")?;
    assert_eq!(measured.diff_sizes, Some(vec![1234, 56]));
    assert_eq!(measured.unpacked_size(), Some(1290));
    // Without snapshots the size stays unknown; measured records are left alone.
    assert_eq!(store.get(&lost.name)?, Some(lost));
    assert_eq!(store.get(&current.name)?, Some(current));
    assert_eq!(store.backfill_diff_sizes(&snapshots)?, 0);
    Ok(())
}
