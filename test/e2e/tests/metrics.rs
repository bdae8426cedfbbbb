//! berthd's Prometheus metrics scraped by a real Prometheus (Debian's package, a
//! private data dir, loopback): its query API sees the containers by state and a
//! start-latency histogram after a few runs. Prometheus is killed and its dir removed
//! at the end, on failure too.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_e2e::{require_root, run, run_ok, Berthd};

/// A free loopback port (bound and let go; nothing else on the host takes it meanwhile
/// in practice).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` on loopback `port`: the body of a 200, an error otherwise.
fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {head}");
    }
    Ok(body.to_string())
}

/// A Prometheus process and its data dir, both gone on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Result<Prometheus> {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-prom-")
            .tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: berthd\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )?;
        let port = free_port()?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log"))?)
            .spawn()
            .context("starting prometheus (Debian's prometheus package; hack/deps.sh)")?;
        Ok(Prometheus { child, port, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result vector of an instant query.
    fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = http_get(self.port, &format!("/api/v1/query?query={encoded}"))?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        if v["status"] != "success" {
            bail!("query {expr}: {body}");
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query answering one sample; `None` when it answers none yet.
    fn scalar(&self, expr: &str) -> Result<Option<f64>> {
        let result = self.query(expr)?;
        Ok(result
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_containers_by_state_and_start_latency() -> Result<()> {
    require_root();
    let metrics_port = free_port()?;
    let berthd =
        Berthd::start_with_config(&format!("metrics_address = \"127.0.0.1:{metrics_port}\"\n"))?;
    // berthd's own endpoint answers before Prometheus is involved.
    let text = http_get(metrics_port, "/metrics")?;
    assert!(
        text.contains("berth_containers{state=\"running\"} 0"),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");

    berthd.import_busybox("busybox")?;
    for name in ["m1", "m2"] {
        run_ok(
            berthd
                .berth()?
                .args(["run", "-d", "--name", name, "busybox", "sleep", "1000"]),
        )?;
    }
    let (code, _, err) = run(berthd
        .berth()?
        .args(["run", "--name", "m3", "busybox", "true"]))?;
    assert_eq!(code, 0, "{err}");
    let runs = 3.0;

    let text = http_get(metrics_port, "/metrics")?;
    assert!(text.contains("berth_shim_memory_bytes"), "{text}");
    assert!(
        text.contains("berth_docker_request_duration_seconds_count{method=\"POST\",route=\"/containers/{id}/start\",status=\"204\"}"),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/containers/m1"),
        "ids in labels: {text}"
    );

    let prometheus = Prometheus::start(metrics_port)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last;
    loop {
        let running = prometheus.scalar("berth_containers{state=\"running\"}");
        let exited = prometheus.scalar("berth_containers{state=\"exited\"}");
        let starts = prometheus.scalar("berth_container_start_duration_seconds_count");
        match (running, exited, starts) {
            (Ok(Some(r)), Ok(Some(e)), Ok(Some(s))) if r == 2.0 && e == 1.0 && s >= runs => break,
            other => last = format!("{other:?}"),
        }
        if Instant::now() > deadline {
            bail!(
                "Prometheus never saw 2 running, 1 exited and {runs} starts (last: {last}):\n{}",
                prometheus.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The histogram's buckets are there to compute quantiles from.
    prometheus.query(
        "histogram_quantile(0.99, rate(berth_container_start_duration_seconds_bucket[1m]))",
    )?;
    assert!(
        prometheus
            .query("berth_container_start_duration_seconds_bucket")?
            .len()
            > 1
    );
    let up = prometheus.scalar("up{job=\"berthd\"}")?;
    assert_eq!(up, Some(1.0));
    drop(prometheus);
    drop(berthd);
    Ok(())
}

#[test]
fn an_unbindable_metrics_address_stops_berthd_naming_the_key() -> Result<()> {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let result = Berthd::start_with_config(&format!("metrics_address = \"127.0.0.1:{port}\"\n"));
    let Err(err) = result else {
        bail!("berthd started on a taken metrics_address");
    };
    let err = format!("{err:#}");
    assert!(err.contains("metrics_address"), "{err}");
    Ok(())
}
