use std::collections::BTreeMap;

use super::*;
use crate::runtimes::RuntimeHandlers;
use crate::{EngineConfig, RunState};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(dir: &Path) -> Result<Engine, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("root"))?;
    Ok(Engine::open(EngineConfig {
        root: dir.join("root"),
        state: dir.join("state"),
        runtimes: RuntimeHandlers {
            state: dir.join("state"),
            default: "berth".into(),
            handlers: BTreeMap::new(),
        },
    })?)
}

fn named(name: &str, labels: &[(&str, &str)]) -> NewVolume {
    NewVolume {
        name: Some(name.into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A container record that names `volumes`, as a create would store it.
fn container_using(engine: &Engine, id: &str, volumes: &[&str]) -> TestResult {
    let record = ContainerRecord {
        id: id.into(),
        name: format!("c-{id}"),
        created: String::new(),
        image: String::new(),
        image_id: String::new(),
        snapshot: String::new(),
        parent_snapshot: None,
        request: serde_json::Value::Null,
        path: String::new(),
        args: Vec::new(),
        env: Vec::new(),
        exposed_ports: Vec::new(),
        working_dir: String::new(),
        user: String::new(),
        labels: BTreeMap::new(),
        tty: false,
        open_stdin: false,
        stdin_once: false,
        stop_signal: String::new(),
        auto_remove: false,
        restart_policy: Default::default(),
        bind_sources: None,
        mounts: Vec::new(),
        volumes: volumes
            .iter()
            .map(|v| VolumeMount {
                name: v.to_string(),
                destination: "/data".into(),
                read_only: false,
                anonymous: false,
            })
            .collect(),
        networks: Vec::new(),
        ports: Vec::new(),
        network_container: None,
        state: RunState::default(),
        log_path: None,
        log: Default::default(),
        cri: None,
        runtime: String::new(),
        health: None,
    };
    engine
        .store
        .put(Kind::Container, id, Some(&record.name), &record)?;
    Ok(())
}

#[test]
fn create_inspect_list_remove_and_survive_a_reopen() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let engine = open(tmp.path())?;
    let v = create(&engine, named("db-data", &[("env", "prod")]))?;
    assert_eq!(v.mountpoint, tmp.path().join("root/volumes/db-data/_data"));
    assert!(v.mountpoint.is_dir());
    assert_eq!(v.record.driver, "local");
    assert!(!v.record.anonymous);
    std::fs::write(v.mountpoint.join("f"), b"kept")?;
    // Creating it again answers the same volume and keeps its data.
    let again = create(&engine, named("db-data", &[]))?;
    assert_eq!(again.record, v.record);
    assert_eq!(std::fs::read(v.mountpoint.join("f"))?, b"kept");
    let anon = create(
        &engine,
        NewVolume {
            anonymous: true,
            ..Default::default()
        },
    )?;
    assert!(anon.record.anonymous);
    assert_eq!(anon.record.name.len(), 64);
    drop(engine);

    let engine = open(tmp.path())?;
    assert_eq!(get(&engine, "db-data")?.record, v.record);
    let names: Vec<String> = list(&engine, &VolumeFilter::default())?
        .into_iter()
        .map(|v| v.record.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"db-data".to_string()));
    remove(&engine, "db-data", false)?;
    assert!(!tmp.path().join("root/volumes/db-data").exists());
    assert!(matches!(
        get(&engine, "db-data"),
        Err(EngineError::NotFound {
            what: Object::Volume,
            ..
        })
    ));
    assert!(remove(&engine, "db-data", false).is_err());
    remove(&engine, "db-data", true)?;
    remove(&engine, &anon.record.name, false)?;
    Ok(())
}

#[test]
fn bad_input_is_refused_and_nothing_is_made() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let engine = open(tmp.path())?;
    for bad in ["a", "../x", "a/b", ".hidden", "-x"] {
        let err = create(&engine, named(bad, &[]));
        assert!(
            matches!(&err, Err(EngineError::Invalid(m)) if m.contains("invalid characters")),
            "{bad}: {err:?}"
        );
    }
    let err = create(
        &engine,
        NewVolume {
            name: Some("vv".into()),
            driver: Some("nfs".into()),
            ..Default::default()
        },
    );
    assert!(matches!(&err, Err(EngineError::Invalid(m)) if m.contains("nfs")));
    let err = create(
        &engine,
        NewVolume {
            name: Some("vv".into()),
            options: [("type".to_string(), "tmpfs".to_string())].into(),
            ..Default::default()
        },
    );
    assert!(
        matches!(&err, Err(EngineError::Invalid(m)) if m.contains("missing required option: \"device\""))
    );
    assert!(list(&engine, &VolumeFilter::default())?.is_empty());
    let top = dir(&engine);
    assert!(!top.exists() || std::fs::read_dir(&top)?.next().is_none());
    Ok(())
}

#[test]
fn in_use_volumes_are_kept_and_prune_takes_the_unused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let engine = open(tmp.path())?;
    create(&engine, named("used", &[]))?;
    create(&engine, named("named", &[("keep", "yes")]))?;
    create(&engine, named("other", &[]))?;
    // Created without a name: a generated one, but not anonymous.
    let unnamed = create(&engine, NewVolume::default())?.record.name;
    let anon = create(
        &engine,
        NewVolume {
            anonymous: true,
            ..Default::default()
        },
    )?
    .record
    .name;
    std::fs::write(data_dir(&engine, &anon).join("f"), vec![0u8; 1000])?;
    container_using(&engine, "c1", &["used"])?;

    let err = remove(&engine, "used", true);
    assert!(
        matches!(&err, Err(EngineError::VolumeInUse { containers, .. }) if containers == &["c1".to_string()]),
        "{err:?}"
    );
    assert_eq!(get(&engine, "used")?.used_by, ["c1"]);
    let dangling = VolumeFilter {
        dangling: Some(true),
        ..Default::default()
    };
    assert_eq!(list(&engine, &dangling)?.len(), 4);
    let named_only = VolumeFilter {
        names: vec!["name".into()],
        ..Default::default()
    };
    assert_eq!(list(&engine, &named_only)?.len(), 1);

    // By default only the anonymous volume goes.
    let pruned = prune(&engine, &PruneOptions::default())?;
    assert_eq!(pruned.names, [anon]);
    assert_eq!(pruned.bytes, 1000);
    // With all, the unused named ones the filter takes.
    let pruned = prune(
        &engine,
        &PruneOptions {
            all: true,
            filter: VolumeFilter {
                not_labels: vec!["keep".into()],
                ..Default::default()
            },
        },
    )?;
    let mut want = vec!["other".to_string(), unnamed];
    want.sort();
    assert_eq!(pruned.names, want);
    let left: Vec<String> = list(&engine, &VolumeFilter::default())?
        .into_iter()
        .map(|v| v.record.name)
        .collect();
    assert_eq!(left, ["named", "used"]);
    Ok(())
}

#[test]
fn a_newer_record_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let engine = open(tmp.path())?;
    let mut record = create(&engine, named("future", &[]))?.record;
    record.version = RECORD_VERSION + 1;
    engine.store.put(Kind::Volume, "future", None, &record)?;
    assert!(matches!(
        get(&engine, "future"),
        Err(EngineError::Internal { .. })
    ));
    Ok(())
}

#[test]
fn attached_volumes_are_in_use_until_released_and_a_failed_attach_leaves_nothing() -> TestResult {
    use crate::config::{ContainerConfig, Mount, MountKind};
    let tmp = tempfile::tempdir()?;
    let engine = open(tmp.path())?;
    let volume = |name: Option<&str>, destination: &str| Mount {
        destination: destination.into(),
        kind: MountKind::Volume {
            name: name.map(str::to_string),
            read_only: false,
            nocopy: false,
            source: String::new(),
            create: Default::default(),
        },
    };
    let mut config = ContainerConfig {
        mounts: vec![volume(Some("named"), "/n")],
        image_volumes: true,
        ..Default::default()
    };
    // The image's /n is covered by the named volume; /srv gets an anonymous one.
    let attached = attach(&engine, &mut config, &["/n".into(), "/srv/".into()])?;
    assert_eq!(attached.mounts.len(), 2);
    assert_eq!(attached.mounts[1].destination, "/srv");
    assert!(attached.mounts[1].anonymous);
    assert!(
        matches!(&config.mounts[1].kind, MountKind::Volume { source, .. } if source.ends_with("/_data"))
    );
    let all = PruneOptions {
        all: true,
        ..Default::default()
    };
    assert!(prune(&engine, &all)?.names.is_empty());
    assert!(matches!(
        remove(&engine, "named", false),
        Err(EngineError::VolumeInUse { .. })
    ));
    release(&engine, &attached.pending);
    assert_eq!(prune(&engine, &all)?.names.len(), 2);

    // A bad name after a good one: the one made is removed again.
    let mut config = ContainerConfig {
        mounts: vec![volume(Some("fine"), "/a"), volume(Some("b/ad"), "/b")],
        ..Default::default()
    };
    assert!(attach(&engine, &mut config, &[]).is_err());
    assert!(list(&engine, &VolumeFilter::default())?.is_empty());
    Ok(())
}
