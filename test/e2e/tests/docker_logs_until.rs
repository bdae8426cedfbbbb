//! `logs -f --until`: following stops when the until time passes, as Docker's does,
//! though the container goes on writing; through Debian's docker 20.10 client and
//! through `berth logs`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run_ok, Berthd};

/// Seconds since the epoch of an RFC 3339 UTC time as `logs -t` prints it
/// (`2026-12-05T05:10:00.123456789Z`).
fn unix_of(ts: &str) -> Option<f64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (proleptic Gregorian), 1970-01-01 being day 0.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(secs as f64 + format!("0.{frac}").parse::<f64>().ok()?)
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `cmd` to its end, failing if it takes longer than `limit` (it is killed
/// then); its stdout and how long it ran.
fn run_within(cmd: &mut Command, limit: Duration) -> Result<(String, Duration)> {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the logs client")?;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            if !status.success() {
                bail!(
                    "{cmd:?} failed ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            return Ok((String::from_utf8(out.stdout)?, started.elapsed()));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "{cmd:?} still following after {limit:?} (its --until passed); it printed {} bytes",
                out.stdout.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Follows `chatty`'s log until `ahead` seconds from now with `client`: the stream
/// ends by itself soon after that time, every line printed is from before it, and
/// lines up to shortly before it are there.
fn follow_until(client: &mut Command, ahead: f64) -> Result<()> {
    let until = now_unix() + ahead;
    let until_arg = format!("{until:.3}");
    let (out, took) = run_within(
        client.args(["logs", "-f", "-t", "--until", &until_arg, "chatty"]),
        Duration::from_secs_f64(ahead + 20.0),
    )?;
    assert!(
        took >= Duration::from_secs_f64(ahead - 1.0),
        "ended after {took:?}, before the until time ({ahead} s)"
    );
    let stamps: Vec<f64> = out
        .lines()
        .map(|l| {
            let ts = l.split_once(' ').map_or(l, |(ts, _)| ts);
            unix_of(ts).with_context(|| format!("no timestamp in {l:?}"))
        })
        .collect::<Result<_>>()?;
    let last = *stamps.last().context("no lines followed")?;
    for s in &stamps {
        assert!(*s < until, "a line at {s} after --until {until}: {out}");
    }
    // The container writes every 0.2 s: the last line shown is from just before
    // the until time (the follow went on up to it).
    assert!(
        last > until - 1.5,
        "last line at {last}, until {until}: the follow stopped early: {out}"
    );
    Ok(())
}

#[test]
fn follow_ends_at_until_while_the_container_writes() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    run_ok(berthd.docker().args([
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done",
    ]))?;

    follow_until(&mut berthd.docker(), 3.0)?;
    follow_until(&mut berthd.berth()?, 3.0)?;

    // An until already past: what was written before it, and the stream ends at
    // once though it follows.
    let until = now_unix() - 1.0;
    let until_arg = format!("{until:.3}");
    for mut client in [berthd.docker(), berthd.berth()?] {
        let (out, took) = run_within(
            client.args(["logs", "-f", "--until", &until_arg, "chatty"]),
            Duration::from_secs(15),
        )?;
        assert!(out.starts_with("line0\n"), "{out}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }

    let running = run_ok(
        berthd
            .docker()
            .args(["inspect", "-f", "{{.State.Running}}", "chatty"]),
    )?;
    assert_eq!(running.trim(), "true", "the container wrote all along");

    let out = berthd
        .berth()?
        .args(["logs", "-f", "--until", "tomorrow", "chatty"])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value for --until: \"tomorrow\""),
        "{err}"
    );
    run_ok(berthd.docker().args(["rm", "-f", "chatty"]))?;
    Ok(())
}

#[test]
fn timestamps_parse() {
    assert_eq!(unix_of("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(unix_of("2023-11-14T22:13:20.5Z"), Some(1_700_000_000.5));
    assert_eq!(
        unix_of("2000-03-01T00:00:00.000000000Z"),
        Some(951_868_800.0)
    );
}
