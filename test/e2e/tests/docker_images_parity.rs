//! Image commands of Debian's docker 20.10 CLI against berthd, each compared with what
//! Docker prints for the same commands: `images` with `reference` filters, images pulled
//! by digest, unpacked sizes, `rmi` and `image prune` with their `Untagged:`/`Deleted:`
//! lines and conflicts, and a store written by an older berth.
//!
//! The expected outputs are Debian's dockerd 20.10.24 answers to the same command
//! sequences (run side by side while writing these tests); the conflict messages are
//! moby's (`daemon/images/image_delete.go`), the list rules its `daemon/images/images.go`
//! and `reference.FamiliarMatch`, and a size is its layers' `DiffSize` (the apparent
//! sizes of a layer's files, hard links once).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};
use berth_fixtures::{images, Registry};
use serde_json::Value;

/// Runs a command that must fail; returns its stderr.
fn refused(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The output's lines, sorted (the docker CLI prints an image's repositories in map
/// order, so rows of one image come in any order).
fn sorted_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// `GET path` on berthd's API socket, as JSON.
fn api_get(berthd: &Berthd, path: &str) -> Result<Value> {
    let mut stream = UnixStream::connect(berthd.docker_socket())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .with_context(|| format!("no body in {response:?}"))?;
    serde_json::from_str(body).with_context(|| format!("GET {path}: {body}"))
}

/// Docker's size of a layer directory: the apparent sizes of everything but
/// directories, each inode once (moby's `directory.Size`).
fn docker_diff_size(dir: &Path) -> Result<u64> {
    fn walk(p: &Path, seen: &mut HashSet<u64>, total: &mut u64) -> Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(p)? {
                walk(&entry?.path(), seen, total)?;
            }
        } else if meta.len() > 0 && seen.insert(meta.ino()) {
            *total += meta.len();
        }
        Ok(())
    }
    let mut total = 0;
    walk(dir, &mut HashSet::new(), &mut total)?;
    Ok(total)
}

/// The unpacked size of the busybox layer every fixture image starts with.
fn busybox_size() -> Result<u64> {
    let dir = tempfile::tempdir()?;
    berth_fixtures::busybox_rootfs(dir.path())?;
    docker_diff_size(dir.path())
}

/// The docker CLI's `units.HumanSizeWithPrecision`: decimal units, `precision`
/// significant digits (Go's `%.*g`), as in `1.99MB`.
fn human_size(bytes: u64, precision: i32) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < units.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if bytes == 0 {
        return "0B".into();
    }
    let exponent = size.log10().floor() as i32;
    let decimals = (precision - 1 - exponent).max(0) as usize;
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", units[unit])
}

#[test]
fn human_sizes_are_formatted_like_the_docker_cli() {
    assert_eq!(human_size(1_985_665, 3), "1.99MB");
    assert_eq!(human_size(1_985_665, 4), "1.986MB");
    assert_eq!(human_size(1_062_522, 3), "1.06MB");
    assert_eq!(human_size(1_500_000, 3), "1.5MB");
    assert_eq!(human_size(999, 3), "999B");
    assert_eq!(human_size(12_345, 3), "12.3kB");
    assert_eq!(human_size(0, 3), "0B");
}

/// `docker images --filter reference=…` lists the references the patterns match (Go
/// `path.Match` globs on `name:tag` and on the name, OR'ed), and an image pulled by
/// digest is listed under its repository with tag `<none>` and its digest.
#[test]
fn reference_filters_and_digest_pulls_list_as_docker() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    let base = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&base, "busybox:1.36")?;
    let labelled = images::with_labels(&tmp.path().join("labelled"), &[("team", "berth")])?;
    registry.push(&labelled, "labelled:1")?;
    let by_digest = format!("{}/labelled@{}", registry.host(), labelled.manifest_digest);
    let berthd = Berthd::start()?;
    let docker = || berthd.docker();

    run_ok(docker().args(["pull", &source]))?;
    for tag in [
        "busybox:latest",
        "busybox:1.36",
        "other/busybox:2",
        "alpine:3",
    ] {
        run_ok(docker().args(["tag", &source, tag]))?;
    }
    run_ok(docker().args(["pull", &by_digest]))?;
    let listed = |filters: &[&str]| -> Result<Vec<String>> {
        let mut cmd = docker();
        cmd.args(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for f in filters {
            cmd.args(["--filter", &format!("reference={f}")]);
        }
        Ok(sorted_lines(&run_ok(&mut cmd)?))
    };
    let reg = registry.host();
    let in_registry = format!("{reg}/busybox:1.36");
    let cases: [(&[&str], &[&str]); 7] = [
        (&["busybox"], &["busybox:1.36", "busybox:latest"]),
        (&["busy*"], &["busybox:1.36", "busybox:latest"]),
        (&["busybox:1*"], &["busybox:1.36"]),
        (&["*busybox*"], &["busybox:1.36", "busybox:latest"]),
        (&["*/busy*"], &[&in_registry, "other/busybox:2"]),
        (
            &["busybox", "alpine"],
            &["alpine:3", "busybox:1.36", "busybox:latest"],
        ),
        (&["nothing-like-it"], &[]),
    ];
    for (filters, want) in cases {
        assert_eq!(listed(filters)?, want, "reference filters {filters:?}");
    }
    // `docker images NAME` is the same filter: the image pulled by digest is there.
    let by_repo = run_ok(docker().args([
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
        &format!("{reg}/labelled"),
    ]))?;
    assert_eq!(
        by_repo.trim(),
        format!("{reg}/labelled <none> {}", labelled.manifest_digest)
    );
    // berth's own CLI lists it the same way.
    let ours = run_ok(berthd.berth()?.args([
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
        &format!("{reg}/labelled"),
    ]))?;
    assert_eq!(ours, by_repo, "berth images NAME against docker's");
    // A tagged pull has its digest too; `docker tag` adds no digest.
    let digests = run_ok(docker().args([
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
        "--filter",
        "reference=*/busybox",
    ]))?;
    assert_eq!(
        sorted_lines(&digests),
        [
            format!("{reg}/busybox:1.36 {}", base.manifest_digest),
            "other/busybox:2 <none>".to_string()
        ]
    );
    // Without tags it counts as dangling, as in Docker 20.10.
    let dangling = run_ok(docker().args(["images", "-q", "--filter", "dangling=true"]))?;
    assert_eq!(dangling.trim(), &labelled.config_digest[7..19]);
    let bad = refused(docker().args(["images", "--filter", "reference=["]))?;
    assert!(bad.contains("syntax error in pattern"), "{bad}");

    // The API's answer: references in Docker's order, `null` for an empty list and for
    // an image without labels.
    let list = api_get(&berthd, "/v1.41/images/json")?;
    let entry = |id: &str| -> Result<&Value> {
        list.as_array()
            .and_then(|a| a.iter().find(|e| e["Id"] == id))
            .with_context(|| format!("{id} is not listed: {list}"))
    };
    let busybox = entry(&base.config_digest)?;
    assert_eq!(
        busybox["RepoTags"],
        serde_json::json!([
            format!("{reg}/busybox:1.36"),
            "alpine:3",
            "busybox:1.36",
            "busybox:latest",
            "other/busybox:2"
        ])
    );
    assert_eq!(
        busybox["RepoDigests"],
        serde_json::json!([format!("{reg}/busybox@{}", base.manifest_digest)])
    );
    assert_eq!(busybox["Labels"], Value::Null);
    let pinned = entry(&labelled.config_digest)?;
    assert_eq!(pinned["RepoTags"], Value::Null);
    assert_eq!(pinned["RepoDigests"], serde_json::json!([by_digest]));
    assert_eq!(pinned["Labels"], serde_json::json!({"team": "berth"}));
    Ok(())
}

/// Sizes are the unpacked layers' (busybox 1.99MB, not its 1.06MB gzip), in `images`,
/// `history` (per layer) and `inspect`.
#[test]
fn sizes_are_the_unpacked_layers_as_docker_reports() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    // Two layers: busybox, then one that only makes directories (size 0).
    let built = images::with_workdir(&tmp.path().join("workdir"), "/srv/app")?;
    let source = registry.push(&built, "sized:1")?;
    let berthd = Berthd::start()?;
    run_ok(berthd.docker().args(["pull", &source]))?;

    let unpacked = busybox_size()?;
    let compressed: u64 = built.layers.iter().map(|l| l.size).sum();
    ensure!(
        human_size(unpacked, 3) != human_size(compressed, 3),
        "the fixture should tell the sizes apart"
    );
    let inspect = run_ok(berthd.docker().args([
        "image",
        "inspect",
        "-f",
        "{{.Size}} {{.VirtualSize}}",
        &source,
    ]))?;
    assert_eq!(inspect.trim(), format!("{unpacked} {unpacked}"));
    let table = run_ok(
        berthd
            .docker()
            .args(["images", "--format", "{{.Size}}", &source]),
    )?;
    assert_eq!(table.trim(), human_size(unpacked, 3));
    let history = run_ok(berthd.docker().args([
        "history",
        "--human=false",
        "--format",
        "{{.Size}} {{.CreatedBy}}",
        &source,
    ]))?;
    assert_eq!(
        history.lines().collect::<Vec<_>>(),
        [
            "0 berth-fixtures layer 1".to_string(),
            format!("{unpacked} berth-fixtures layer 0")
        ]
    );
    let human = run_ok(
        berthd
            .docker()
            .args(["history", "--format", "{{.Size}}", &source]),
    )?;
    assert_eq!(human.lines().last(), Some(human_size(unpacked, 3).as_str()));
    let list = api_get(&berthd, "/v1.41/images/json")?;
    assert_eq!(list[0]["Size"], unpacked, "{list}");
    assert_eq!(list[0]["VirtualSize"], unpacked, "{list}");
    Ok(())
}

/// `docker rmi` and `docker image prune`: the `Untagged:` lines for the tag and the
/// repository digest, `Deleted:` for the image and each layer it frees, and Docker's
/// conflicts when a container uses the image.
#[test]
fn rmi_and_prune_answer_as_docker() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    let base = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&base, "busybox:1.36")?;
    let labelled = images::with_labels(&tmp.path().join("labelled"), &[("team", "berth")])?;
    registry.push(&labelled, "labelled:1")?;
    let by_digest = format!("{}/labelled@{}", registry.host(), labelled.manifest_digest);
    let berthd = Berthd::start()?;
    let docker = || berthd.docker();
    let reg = registry.host();
    let id = base.config_digest.clone();
    let short = &id[7..19];
    // The image's one layer: its chain ID is its diff ID.
    let layer = &base.layers[0].diff_id;
    let digest_ref = format!("{reg}/busybox@{}", base.manifest_digest);

    run_ok(docker().args(["pull", &source]))?;
    run_ok(docker().args(["tag", &source, "alpine:3"]))?;
    assert_eq!(
        run_ok(docker().args(["rmi", "alpine:3"]))?,
        "Untagged: alpine:3\n"
    );

    // A stopped container: its image's only reference stays without -f, and so does
    // the image when named by ID.
    let stopped = run_ok(docker().args(["create", &source, "true"]))?;
    let stopped = &stopped.trim()[..12];
    let err = refused(docker().args(["rmi", &source]))?;
    assert_eq!(
        err.trim(),
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"{source}\" (must force) - container {stopped} is using its referenced image {short}"
        )
    );
    let err = refused(docker().args(["rmi", short]))?;
    assert_eq!(
        err.trim(),
        format!(
            "Error response from daemon: conflict: unable to delete {short} (must be forced) - image is being used by stopped container {stopped}"
        )
    );
    run_ok(docker().args(["rm", stopped]))?;

    // A running container: nothing forces the image out; -f by reference removes the
    // references and leaves the image, `<none>`.
    let running = run_ok(docker().args(["run", "-d", &source, "sleep", "1000"]))?;
    let running = &running.trim()[..12];
    for args in [vec!["rmi", short], vec!["rmi", "-f", short]] {
        let err = refused(docker().args(&args))?;
        assert_eq!(
            err.trim(),
            format!(
                "Error response from daemon: conflict: unable to delete {short} (cannot be forced) - image is being used by running container {running}"
            ),
            "{args:?}"
        );
    }
    assert_eq!(
        run_ok(docker().args(["rmi", "-f", &source]))?,
        format!("Untagged: {source}\nUntagged: {digest_ref}\n")
    );
    let left = run_ok(docker().args(["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]))?;
    assert_eq!(left.trim(), format!("<none> <none> {short}"));
    run_ok(docker().args(["rm", "-f", running]))?;
    assert_eq!(
        run_ok(docker().args(["rmi", short]))?,
        format!("Deleted: {id}\nDeleted: {layer}\n")
    );

    // Two names: the first only untags; the last takes the digest, image and layer.
    run_ok(docker().args(["pull", &source]))?;
    run_ok(docker().args(["tag", &source, "busybox"]))?;
    assert_eq!(
        run_ok(docker().args(["rmi", "busybox"]))?,
        "Untagged: busybox:latest\n"
    );
    assert_eq!(
        run_ok(docker().args(["rmi", &source]))?,
        format!("Untagged: {source}\nUntagged: {digest_ref}\nDeleted: {id}\nDeleted: {layer}\n")
    );
    let missing = refused(docker().args(["rmi", "nothing-here:1"]))?;
    assert!(
        missing.contains("No such image: nothing-here:1"),
        "{missing}"
    );

    // Prune: an image known only by digest is pruned as dangling; -a takes the rest.
    // Space reclaimed counts the unpacked layers deleted.
    run_ok(docker().args(["pull", &source]))?;
    run_ok(docker().args(["pull", &by_digest]))?;
    let shared = labelled.layers[0].digest == base.layers[0].digest;
    let size = human_size(busybox_size()?, 4);
    let pruned = run_ok(docker().args(["image", "prune", "-f"]))?;
    let mut want = format!(
        "Deleted Images:\nuntagged: {by_digest}\ndeleted: {}\n",
        labelled.config_digest
    );
    if !shared {
        want.push_str(&format!("deleted: {}\n", labelled.layers[0].diff_id));
    }
    let freed = if shared { "0B" } else { size.as_str() };
    want.push_str(&format!("\nTotal reclaimed space: {freed}\n"));
    assert_eq!(pruned, want);
    let pruned = run_ok(docker().args(["image", "prune", "-a", "-f"]))?;
    assert_eq!(
        pruned,
        format!(
            "Deleted Images:\nuntagged: {source}\nuntagged: {digest_ref}\ndeleted: {id}\ndeleted: {layer}\n\nTotal reclaimed space: {size}\n"
        )
    );
    assert_eq!(run_ok(docker().args(["images", "-aq"]))?, "");
    Ok(())
}

/// A store an older berth wrote (schema 1: no digest references of their own, no
/// layer sizes) answers as a new one once berthd opens it.
#[test]
fn an_older_store_gets_digest_references_and_sizes() -> Result<()> {
    require_root();
    let tmp = tempfile::tempdir()?;
    let registry = Registry::start()?;
    let base = images::base(&tmp.path().join("base"))?;
    let source = registry.push(&base, "old:1")?;
    let mut berthd = Berthd::start()?;
    run_ok(berthd.docker().args(["pull", &source]))?;
    berthd.stop()?;
    {
        let conn = rusqlite::Connection::open(berthd.root().join("images.db"))?;
        conn.execute("DELETE FROM images WHERE name LIKE '%@%'", [])?;
        let rows: Vec<(String, String)> = conn
            .prepare("SELECT name, record FROM images")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        ensure!(rows.len() == 1, "one record: {rows:?}");
        for (name, json) in rows {
            let mut rec: Value = serde_json::from_str(&json)?;
            let removed = rec
                .as_object_mut()
                .and_then(|o| o.remove("diff_sizes"))
                .is_some();
            ensure!(removed, "a new record has diff_sizes: {json}");
            conn.execute(
                "UPDATE images SET record = ?1 WHERE name = ?2",
                rusqlite::params![rec.to_string(), name],
            )?;
        }
        conn.pragma_update(None, "user_version", 1)?;
    }
    berthd.restart()?;
    let out = run_ok(berthd.docker().args([
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}} {{.Size}}",
    ]))?;
    assert_eq!(
        out.trim(),
        format!(
            "{source} {} {}",
            base.manifest_digest,
            human_size(busybox_size()?, 3)
        )
    );
    assert!(
        berthd
            .log()
            .contains("measured the unpacked layer sizes of older image records"),
        "{}",
        berthd.log()
    );
    Ok(())
}
