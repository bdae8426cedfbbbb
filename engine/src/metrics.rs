//! The engine's Prometheus metrics: what it records as it works (start latency, image
//! pulls, health check results) and what it reads from its store at scrape time
//! (containers by state, images, shims and their memory).
//!
//! Recording is an atomic add or a histogram observation; nothing here is locked
//! across an await. berthd registers [`EngineMetrics::collectors`] and serves them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use berth_image::pull::{LayerState, Progress, ProgressFn};

use crate::Engine;

/// Buckets for operations that take milliseconds to tens of seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets for image pulls, which take up to minutes.
const PULL_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// What the engine records as it works.
pub struct EngineMetrics {
    /// `berth_container_start_duration_seconds`.
    pub start_latency: Histogram,
    /// `berth_image_pull_bytes_total`.
    pub pull_bytes: IntCounter,
    /// `berth_image_pull_duration_seconds`.
    pub pull_duration: Histogram,
    /// `berth_health_checks_total{result}`.
    pub health_checks: IntCounterVec,
    /// Shim pids by address, asked once per shim (Connect) and kept while berthd
    /// watches it.
    shim_pids: Mutex<HashMap<String, u32>>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    // Names and buckets are constants: a failure here is a bug caught by the tests.
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

impl EngineMetrics {
    pub fn new() -> Self {
        EngineMetrics {
            start_latency: histogram(
                "berth_container_start_duration_seconds",
                "Time from a container start request to its process running (shim launched, task created and started), in seconds.",
                LATENCY_BUCKETS,
            ),
            pull_bytes: IntCounter::new(
                "berth_image_pull_bytes_total",
                "Bytes of image layers downloaded from registries.",
            )
            .unwrap_or_else(|e| panic!("berth_image_pull_bytes_total: {e}")),
            pull_duration: histogram(
                "berth_image_pull_duration_seconds",
                "Time an image pull took, successful or not, in seconds.",
                PULL_BUCKETS,
            ),
            health_checks: IntCounterVec::new(
                Opts::new(
                    "berth_health_checks_total",
                    "Health check probes run, by result: healthy (exit 0), unhealthy (other exit), timeout, error (could not run).",
                ),
                &["result"],
            )
            .unwrap_or_else(|e| panic!("berth_health_checks_total: {e}")),
            shim_pids: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one health check probe's `result`.
    pub fn health_check(&self, result: &str) {
        self.health_checks.with_label_values(&[result]).inc();
    }

    /// A progress function counting downloaded layer bytes into
    /// `berth_image_pull_bytes_total`, then calling `inner`; and a timer for the pull's
    /// duration (observed when [`PullTimer::finish`] is called or it is dropped).
    pub fn pull_progress(self: &Arc<Self>, inner: Option<ProgressFn>) -> (ProgressFn, PullTimer) {
        let counter = self.pull_bytes.clone();
        // Reports carry each layer's running total; the counter takes the increase.
        let seen: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
        let progress: ProgressFn = Arc::new(move |p: &Progress| {
            if p.state == LayerState::Downloading || p.state == LayerState::Done {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let last = seen.entry(p.layer.to_string()).or_insert(0);
                if p.state == LayerState::Downloading && p.done > *last {
                    counter.inc_by(p.done - *last);
                    *last = p.done;
                }
            }
            if let Some(inner) = &inner {
                inner(p);
            }
        });
        let timer = PullTimer {
            histogram: self.pull_duration.clone(),
            started: Instant::now(),
        };
        (progress, timer)
    }

    /// The collectors berthd registers: the recorded metrics and the state read at
    /// scrape time from `engine`.
    pub fn collectors(engine: &Arc<Engine>) -> Vec<Box<dyn Collector>> {
        let m = &engine.metrics;
        vec![
            Box::new(m.start_latency.clone()),
            Box::new(m.pull_bytes.clone()),
            Box::new(m.pull_duration.clone()),
            Box::new(m.health_checks.clone()),
            Box::new(StateCollector::new(Arc::downgrade(engine))),
        ]
    }
}

/// Observes a pull's duration once.
pub struct PullTimer {
    histogram: Histogram,
    started: Instant,
}

impl PullTimer {
    pub fn finish(self) {}
}

impl Drop for PullTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Every container state a record can be in, so each has a series (zero included).
const STATES: &[crate::Status] = &[
    crate::Status::Created,
    crate::Status::Running,
    crate::Status::Paused,
    crate::Status::Restarting,
    crate::Status::Removing,
    crate::Status::Exited,
    crate::Status::Dead,
];

/// Reads the engine's state when Prometheus scrapes.
struct StateCollector {
    engine: Weak<Engine>,
    containers: IntGaugeVec,
    images: IntGauge,
    shims: IntGauge,
    shim_memory: IntGauge,
    descs: Vec<Desc>,
}

impl StateCollector {
    fn new(engine: Weak<Engine>) -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let containers = IntGaugeVec::new(
            Opts::new(
                "berth_containers",
                "Containers in the engine's store, by state (created, running, paused, restarting, removing, exited, dead).",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("berth_containers: {e}"));
        let images = gauge(
            "berth_images",
            "Images in the image store (distinct image IDs).",
        );
        let shims = gauge("berth_shims", "berth-shim processes berthd is watching.");
        let shim_memory = gauge(
            "berth_shim_memory_bytes",
            "Memory of the berth-shim processes berthd is watching: the sum of their PSS from /proc/<pid>/smaps_rollup (RSS where PSS is not offered).",
        );
        let descs = [
            containers.desc(),
            images.desc(),
            shims.desc(),
            shim_memory.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        StateCollector {
            engine,
            containers,
            images,
            shims,
            shim_memory,
            descs,
        }
    }
}

impl Collector for StateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(engine) = self.engine.upgrade() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match crate::list(&engine) {
            Ok(records) => {
                let mut by_state: BTreeMap<&str, i64> =
                    STATES.iter().map(|s| (s.as_str(), 0)).collect();
                for r in &records {
                    *by_state.entry(r.state.status.as_str()).or_insert(0) += 1;
                }
                for (state, n) in by_state {
                    self.containers.with_label_values(&[state]).set(n);
                }
                out.extend(self.containers.collect());
            }
            Err(e) => tracing::warn!(error = %e, "metrics: listing containers"),
        }
        match engine.images.store.list() {
            Ok(images) => {
                let ids: HashSet<String> =
                    images.iter().map(|i| i.config_digest.to_string()).collect();
                self.images.set(ids.len() as i64);
                out.extend(self.images.collect());
            }
            Err(e) => tracing::warn!(error = %e, "metrics: listing images"),
        }
        let pids = engine.watched_shim_pids();
        let memory: u64 = pids.iter().filter_map(|pid| shim_memory(*pid)).sum();
        self.shims.set(pids.len() as i64);
        self.shim_memory.set(memory as i64);
        out.extend(self.shims.collect());
        out.extend(self.shim_memory.collect());
        out
    }
}

impl Engine {
    /// The pids of the shims berthd watches (one connection per shim address), asked
    /// of each shim once and remembered while it is watched.
    fn watched_shim_pids(&self) -> Vec<u32> {
        let conns = self.watch_conns_snapshot();
        let mut cache = self
            .metrics
            .shim_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.retain(|address, _| conns.iter().any(|(a, _)| a == address));
        let missing: Vec<_> = conns
            .iter()
            .filter(|(a, _)| !cache.contains_key(a))
            .cloned()
            .collect();
        drop(cache);
        // Outside the lock: a Connect is a round trip to the shim.
        let asked: Vec<(String, u32)> = missing
            .into_iter()
            .filter_map(|(address, conn)| conn.shim_pid("").ok().map(|pid| (address, pid)))
            .collect();
        let mut cache = self
            .metrics
            .shim_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.extend(asked);
        cache.values().copied().collect()
    }
}

/// A process's proportional set size (or its RSS) in bytes, from
/// `/proc/<pid>/smaps_rollup`; `None` when it is gone.
fn shim_memory(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_smaps_rollup(&text)
}

fn parse_smaps_rollup(text: &str) -> Option<u64> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kb = rest.trim().strip_suffix("kB")?.trim();
            kb.parse::<u64>().ok().map(|kb| kb * 1024)
        })
    };
    field("Pss").or_else(|| field("Rss"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_gives_pss_else_rss() {
        let text = "55d0c-7ffd [rollup]\nRss:                1200 kB\nPss:                 800 kB\nPss_Anon:  100 kB\n";
        assert_eq!(parse_smaps_rollup(text), Some(800 * 1024));
        assert_eq!(parse_smaps_rollup("Rss:  12 kB\n"), Some(12 * 1024));
        assert_eq!(parse_smaps_rollup("nothing\n"), None);
    }

    #[test]
    fn pull_progress_counts_increases_once_per_byte() {
        let m = Arc::new(EngineMetrics::new());
        let (progress, timer) = m.pull_progress(None);
        let digest: berth_snapshotter::Digest = match format!("sha256:{}", "a".repeat(64)).parse() {
            Ok(d) => d,
            Err(e) => panic!("digest: {e}"),
        };
        for (done, state) in [
            (10, LayerState::Downloading),
            (25, LayerState::Downloading),
            (25, LayerState::Done),
        ] {
            progress(&Progress {
                layer: digest.clone(),
                done,
                total: 25,
                state,
            });
        }
        timer.finish();
        assert_eq!(m.pull_bytes.get(), 25);
        assert_eq!(m.pull_duration.get_sample_count(), 1);
    }
}
