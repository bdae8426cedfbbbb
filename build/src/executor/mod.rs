//! The executor: a parsed Dockerfile built on berth's engine, step by step as Docker's
//! classic builder does (its `Step N/M :` output, its history lines), into an image
//! record per tag.
//!
//! FROM takes a local image, an earlier stage or `scratch`; config instructions change
//! the config (`config.rs`); COPY/ADD write a layer from the context (`copy.rs`); RUN
//! runs a container whose changes become a layer (`run.rs`). A failed step leaves no
//! image: the intermediate records a RUN needed are removed, the container too.

pub mod cache;
pub mod commit;
pub mod config;
pub mod copy;
pub mod fetch;
pub mod layers;
pub mod run;
pub mod secrets;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use berth_engine::Engine;
use berth_image::config::{ContainerConfig, History, ImageConfig, RootFs};
use berth_image::manifest::Descriptor;
use berth_snapshotter::Digest;

use crate::dockerfile::expand::expand;
use crate::dockerfile::mounts::{MountType, RunMount, Sharing};
use crate::dockerfile::shell::ShellError;
use crate::dockerfile::{
    instructions, CommandForm, Dockerfile, Instruction, NetworkMode, ParseError, Step,
};

/// Where the build's progress text goes (lines with their `\n`).
pub type Output = Arc<dyn Fn(String) + Send + Sync>;

/// Asked between steps and while a RUN runs: true stops the build (the client went
/// away), leaving nothing behind.
pub type Cancelled = Arc<dyn Fn() -> bool + Send + Sync>;

/// Pulls an image reference (`--pull`); the build holds the GC lock meanwhile.
pub type Pull =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What to build.
pub struct BuildRequest {
    pub dockerfile: Dockerfile,
    /// The context, unpacked.
    pub context: PathBuf,
    /// Normalised references to tag the result with.
    pub tags: Vec<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--label`s, set on the result.
    pub labels: BTreeMap<String, String>,
    /// `--network`: RUN steps' network unless a step says `RUN --network`.
    pub network: Option<NetworkMode>,
    /// `--no-cache`: run every step (the results still fill the cache).
    pub no_cache: bool,
    pub cancelled: Option<Cancelled>,
    /// Keep the containers of successful RUN steps (the API's `rm=false`).
    pub keep_containers: bool,
    /// After each step, how long it took (berth's `progress=plain`).
    pub timings: bool,
    /// `--pull`: each FROM image (not a stage, not `scratch`) pulled before use.
    pub pull: Option<Pull>,
    /// `--secret`s by id: shown to the RUN steps that mount them, nowhere else.
    pub secrets: BTreeMap<String, Vec<u8>>,
}

const CANCELLED: &str = "the build was cancelled: the client went away";

/// The built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// `sha256:…`
    pub id: String,
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A step failed; the message is Docker's where Docker has one.
    #[error("{0}")]
    Step(String),
}

/// Arguments Docker lets a build set without an ARG declaring them.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Clone)]
struct State {
    image: ImageConfig,
    layers: Vec<Descriptor>,
    /// The stage's ARGs with values, in order.
    args: Vec<(String, String)>,
    cmd_set: bool,
    /// The cache key of the state (the base's ID, then one step after another).
    key: String,
}

impl State {
    fn cfg(&self) -> ContainerConfig {
        self.image.config.clone().unwrap_or_default()
    }

    /// What `$name` sees at this step: ARGs, then ENV (which wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        for e in self.cfg().env.unwrap_or_default() {
            if let Some((k, val)) = e.split_once('=') {
                v.push((k.to_string(), val.to_string()));
            }
        }
        v
    }

    fn id(&self) -> Result<Digest, String> {
        Ok(Digest::of(&layers::config_bytes(&self.image)?))
    }

    fn history(&mut self, created_by: String, empty: bool) {
        self.image.history.push(History {
            created: Some(now()),
            created_by: Some(created_by),
            comment: None,
            empty_layer: empty.then_some(true),
        });
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The variant Docker names for the host's architecture (`v7` for 32-bit arm).
fn host_variant() -> &'static str {
    match std::env::consts::ARCH {
        "arm" => "v7",
        _ => "",
    }
}

/// `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT` and their `BUILD…`
/// twins: berth builds for the host, so both describe it.
fn platform_args() -> Vec<(String, String)> {
    let (arch, variant) = (host_arch(), host_variant());
    let platform = if variant.is_empty() {
        format!("linux/{arch}")
    } else {
        format!("linux/{arch}/{variant}")
    };
    let mut v = Vec::new();
    for side in ["BUILD", "TARGET"] {
        v.push((format!("{side}PLATFORM"), platform.clone()));
        v.push((format!("{side}OS"), "linux".to_string()));
        v.push((format!("{side}ARCH"), arch.to_string()));
        v.push((format!("{side}VARIANT"), variant.to_string()));
    }
    v
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

struct Run<'a> {
    engine: &'a Arc<Engine>,
    req: &'a BuildRequest,
    /// The build's output, or the stage's when stages run side by side.
    out: Output,
    escape: char,
    used_args: Arc<Mutex<BTreeSet<String>>>,
    meta: Vec<(String, String)>,
    /// Records written for RUN containers, removed at the end.
    intermediates: Arc<Mutex<Vec<String>>>,
    cache: cache::Cache,
    /// Set when a stage failed: the stages running beside it stop.
    failed: Arc<AtomicBool>,
    /// The client's cancellation or a failed sibling stage.
    stop: Cancelled,
}

/// What a stage stopped by a failed sibling reports (the sibling's error wins).
const SIBLING_FAILED: &str = "stopped: another stage of the build failed";

/// Runs the futures concurrently on the current task and returns their outputs in
/// order, once all are done (none is dropped half way: a RUN always cleans up).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(outputs.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Stage `i` of `done`, which the dependency order built before the stage asking.
fn built(done: &[Option<State>], i: usize) -> Result<&State, BuildError> {
    done[i].as_ref().ok_or_else(|| {
        BuildError::Step(format!(
            "stage {i} is used but was not built: berth's builder did not see the reference"
        ))
    })
}

fn shell_err(step: &Step) -> impl Fn(ShellError) -> BuildError + '_ {
    move |e| BuildError::Step(format!("{}: {e}", step.text))
}

/// Builds the image `req` describes, reporting progress to `out`.
pub async fn build(
    engine: &Arc<Engine>,
    req: &BuildRequest,
    out: &Output,
) -> Result<Built, BuildError> {
    let _gc = engine.images.gc_lock.read().await;
    let failed = Arc::new(AtomicBool::new(false));
    let stop: Cancelled = {
        let failed = failed.clone();
        let client = req.cancelled.clone();
        Arc::new(move || failed.load(Ordering::SeqCst) || client.as_ref().is_some_and(|c| c()))
    };
    let mut r = Run {
        engine,
        req,
        out: out.clone(),
        escape: req.dockerfile.directives.escape,
        used_args: Default::default(),
        meta: Vec::new(),
        intermediates: Default::default(),
        cache: cache::Cache::open(engine.root()),
        failed,
        stop,
    };
    let result = r.build().await;
    let keep = result.as_ref().ok().map(|b| b.id.clone());
    let names = std::mem::take(&mut *r.intermediates.lock().unwrap());
    for name in names {
        if Some(&name) != keep.as_ref() {
            let _ = engine.images.store.remove(&name);
        }
    }
    result
}

/// Passes the outputs of stages running side by side on in stage order: the first
/// one's as it comes, each next one's (held until then) once those before it ended.
#[derive(Clone)]
struct Relay {
    out: Output,
    state: Arc<Mutex<RelayState>>,
}

struct RelayState {
    live: usize,
    held: Vec<Vec<String>>,
    ended: Vec<bool>,
}

impl Relay {
    fn new(out: Output, n: usize) -> Relay {
        Relay {
            out,
            state: Arc::new(Mutex::new(RelayState {
                live: 0,
                held: vec![Vec::new(); n],
                ended: vec![false; n],
            })),
        }
    }

    fn output(&self, k: usize) -> Output {
        let relay = self.clone();
        Arc::new(move |s: String| {
            let mut st = relay.state.lock().unwrap();
            if st.live == k {
                (relay.out)(s);
            } else {
                st.held[k].push(s);
            }
        })
    }

    fn finish(&self, k: usize) {
        let mut st = self.state.lock().unwrap();
        st.ended[k] = true;
        while st.live < st.ended.len() && st.ended[st.live] {
            st.live += 1;
            let live = st.live;
            if live < st.held.len() {
                for s in std::mem::take(&mut st.held[live]) {
                    (self.out)(s);
                }
            }
        }
    }
}

impl<'a> Run<'a> {
    /// The same build, its output going to `out`.
    fn with_output(&self, out: Output) -> Run<'a> {
        Run {
            engine: self.engine,
            req: self.req,
            out,
            escape: self.escape,
            used_args: self.used_args.clone(),
            meta: self.meta.clone(),
            intermediates: self.intermediates.clone(),
            cache: self.cache.clone(),
            failed: self.failed.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<'a> Run<'a> {
    fn say(&self, s: String) {
        (self.out)(s)
    }

    async fn build(&mut self) -> Result<Built, BuildError> {
        let df = &self.req.dockerfile;
        let last = df.target(self.req.target.as_deref())?;
        // The platform ARGs, in the global scope as BuildKit defines them (a stage
        // sees one after `ARG NAME`).
        self.meta = platform_args();
        // The meta ARGs' values first: the stages a target needs depend on them.
        for step in &df.meta_args {
            let Instruction::Arg(decls) =
                expand(&step.instruction, self.escape, &self.meta).map_err(shell_err(step))?
            else {
                continue;
            };
            for d in decls {
                if let Some(v) = self.arg_value(&d.name, d.default) {
                    self.meta.push((d.name.clone(), v));
                }
            }
        }
        let (needed, deps) = self.needed_stages(last);
        let total = df.meta_args.len()
            + df.stages[..=last]
                .iter()
                .zip(&needed)
                .filter(|(_, n)| **n)
                .map(|(s, _)| 1 + s.steps.len())
                .sum::<usize>();
        let mut n = 0;
        for step in &df.meta_args {
            n += 1;
            self.say(format!("Step {n}/{total} : {}\n", step.text));
        }
        // Each needed stage's first step number, as if built one after another.
        let mut first = vec![0; last + 1];
        for (si, stage) in df.stages[..=last].iter().enumerate() {
            if needed[si] {
                first[si] = n;
                n += 1 + stage.steps.len();
            }
        }
        // Stages in waves: a stage runs once every stage it names is built; the
        // stages of a wave run at the same time.
        let mut level = vec![0usize; last + 1];
        for si in 0..=last {
            level[si] = deps[si].iter().map(|d| level[*d] + 1).max().unwrap_or(0);
        }
        let waves = (0..=last)
            .filter(|i| needed[*i])
            .map(|i| level[i])
            .max()
            .unwrap_or(0);
        let mut done: Vec<Option<State>> = vec![None; last + 1];
        for wave in 0..=waves {
            let stages: Vec<usize> = (0..=last)
                .filter(|i| needed[*i] && level[*i] == wave)
                .collect();
            // One stage's output goes out as it comes; the others' is held and goes
            // out in stage order, so the output reads as one stage after another.
            let relay = Relay::new(self.out.clone(), stages.len());
            let runs: Vec<Run> = (0..stages.len())
                .map(|k| self.with_output(relay.output(k)))
                .collect();
            let results = join_all(
                stages
                    .iter()
                    .zip(&runs)
                    .enumerate()
                    .map(|(k, (&si, run))| {
                        let relay = relay.clone();
                        let (done, n) = (&done[..si], first[si]);
                        async move {
                            let r = run.stage(si, n, total, done).await;
                            relay.finish(k);
                            r
                        }
                    })
                    .collect(),
            )
            .await;
            let mut errors = Vec::new();
            for (si, r) in stages.iter().zip(results) {
                match r {
                    Ok(st) => done[*si] = Some(st),
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                let first_real = errors
                    .iter()
                    .position(|e| !matches!(e, BuildError::Step(m) if m == SIBLING_FAILED))
                    .unwrap_or(0);
                return Err(errors.swap_remove(first_real));
            }
        }
        let unused: Vec<&String> = self
            .req
            .build_args
            .keys()
            .filter(|k| {
                !self.used_args.lock().unwrap().contains(*k)
                    && !PREDEFINED_ARGS.contains(&k.as_str())
            })
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        let Some(mut fin) = done.swap_remove(last) else {
            unreachable!("the target stage is built");
        };
        if !self.req.labels.is_empty() {
            let cfg = fin.image.config.get_or_insert_with(Default::default);
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(self.req.labels.clone());
        }
        // The last step's time, so a build served wholly from the cache gives the
        // same image.
        fin.image.created = fin
            .image
            .history
            .last()
            .and_then(|h| h.created.clone())
            .or_else(|| Some(now()));
        self.finish(fin)
    }

    /// One stage: its FROM, the base's ONBUILD triggers, its steps. `done` holds the
    /// stages before it (`None`: not built, because the stage does not need it).
    async fn stage(
        &self,
        si: usize,
        mut n: usize,
        total: usize,
        done: &[Option<State>],
    ) -> Result<State, BuildError> {
        let result = self.stage_steps(si, &mut n, total, done).await;
        if result.is_err() && self.failed.swap(true, Ordering::SeqCst) {
            // Another stage failed first: its error is the build's.
            return Err(BuildError::Step(SIBLING_FAILED.into()));
        }
        result
    }

    async fn stage_steps(
        &self,
        si: usize,
        n: &mut usize,
        total: usize,
        done: &[Option<State>],
    ) -> Result<State, BuildError> {
        let df = &self.req.dockerfile;
        let stage = &df.stages[si];
        *n += 1;
        self.say(format!("Step {n}/{total} : {}\n", stage.from.text));
        let Instruction::From(from) = expand(&stage.from.instruction, self.escape, &self.meta)
            .map_err(shell_err(&stage.from))?
        else {
            unreachable!("a stage starts with FROM");
        };
        if let Some(p) = &from.platform {
            let host = format!("linux/{}", host_arch());
            if p != &host && p != "linux" {
                return Err(BuildError::Step(format!(
                    "platform {p:?} is not supported: berth builds for {host}"
                )));
            }
        }
        let stage_name = from.image.to_ascii_lowercase();
        let is_stage = df.stages[..si]
            .iter()
            .any(|s| s.name() == Some(stage_name.as_str()));
        if let Some(pull) = self
            .req
            .pull
            .as_ref()
            .filter(|_| !is_stage && from.image != "scratch")
        {
            self.say(format!("Pulling {}\n", from.image));
            pull(from.image.clone()).await.map_err(BuildError::Step)?;
        }
        let mut st = self.base(&from.image, done, df)?;
        self.say(format!(
            " ---> {}\n",
            short(&st.id().map_err(BuildError::Step)?)
        ));
        let triggers = st
            .image
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if !triggers.is_empty() {
            self.say(format!("# Executing {} build triggers\n", triggers.len()));
        }
        for t in triggers {
            let instruction = instructions::parse(&t, &[], self.escape).map_err(|e| {
                BuildError::Step(format!("the base image's ONBUILD trigger {t:?}: {e}"))
            })?;
            let step = Step {
                line: 0,
                end_line: 0,
                text: t.clone(),
                instruction,
            };
            self.step(&mut st, &step, done).await?;
        }
        for step in &stage.steps {
            if self.failed.load(Ordering::SeqCst) {
                return Err(BuildError::Step(SIBLING_FAILED.into()));
            }
            *n += 1;
            self.say(format!("Step {n}/{total} : {}\n", step.text));
            let began = std::time::Instant::now();
            self.step(&mut st, step, done).await?;
            self.say(format!(
                " ---> {}\n",
                short(&st.id().map_err(BuildError::Step)?)
            ));
            if self.req.timings {
                self.say(format!(
                    " ---> Step {n}/{total} done in {:.3}s\n",
                    began.elapsed().as_secs_f64()
                ));
            }
        }
        Ok(st)
    }

    fn finish(&self, fin: State) -> Result<Built, BuildError> {
        let images = &self.engine.images;
        let names: Vec<String> = if self.req.tags.is_empty() {
            vec![String::new()]
        } else {
            self.req.tags.clone()
        };
        let mut id = String::new();
        for name in &names {
            let (rec, old) = layers::write_image(images, &fin.image, &fin.layers, name)
                .map_err(BuildError::Step)?;
            id = rec.config_digest.to_string();
            self.intermediates.lock().unwrap().retain(|n| n != &id);
            if let Some(old) = old.filter(|o| o.config_digest != rec.config_digest) {
                let _ = images.keep_dangling(Some(old));
            }
        }
        let digest = Digest::of(&layers::config_bytes(&fin.image).map_err(BuildError::Step)?);
        self.say(format!("Successfully built {}\n", short(&digest)));
        for t in &self.req.tags {
            self.say(format!("Successfully tagged {}\n", display_tag(t)));
        }
        Ok(Built {
            id,
            tags: self.req.tags.clone(),
        })
    }

    /// The value a declared ARG takes: the build's, else its default, else a meta
    /// ARG's of that name.
    fn arg_value(&self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.req.build_args.get(name) {
            self.used_args.lock().unwrap().insert(name.to_string());
            return Some(v.clone());
        }
        default.or_else(|| {
            self.meta
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    fn base(
        &self,
        image: &str,
        done: &[Option<State>],
        df: &Dockerfile,
    ) -> Result<State, BuildError> {
        let lower = image.to_ascii_lowercase();
        if let Some(i) = df.stages[..done.len()]
            .iter()
            .position(|s| s.name() == Some(lower.as_str()))
        {
            let mut st = built(done, i)?.clone();
            st.args.clear();
            st.cmd_set = false;
            st.key = cache::key(&st.key, "stage");
            return Ok(st);
        }
        if image == "scratch" {
            return Ok(State {
                image: ImageConfig {
                    architecture: host_arch().into(),
                    os: "linux".into(),
                    config: Some(ContainerConfig {
                        env: Some(vec![
                            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                                .into(),
                        ]),
                        ..Default::default()
                    }),
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: vec![],
                    },
                    ..Default::default()
                },
                layers: vec![],
                args: vec![],
                cmd_set: false,
                key: "scratch".into(),
            });
        }
        let images = &self.engine.images;
        let rec = berth_engine::find_image(images, image).map_err(|e| {
            BuildError::Step(format!("pull access denied for {image}, repository does not exist or may require 'docker login': {e}"))
        })?;
        let cfg = berth_engine::image_config(images, &rec)
            .map_err(|e| BuildError::Step(e.to_string()))?;
        Ok(State {
            image: cfg,
            layers: rec.layers.clone(),
            args: vec![],
            cmd_set: false,
            key: cache::of_digest(&rec.config_digest),
        })
    }

    async fn execute(
        &self,
        st: &mut State,
        step: &Step,
        done: &[Option<State>],
        fetched: Option<&fetch::Fetched>,
    ) -> Result<(), BuildError> {
        let fail = |m: String| BuildError::Step(m);
        match &step.instruction {
            Instruction::From(_) => unreachable!("FROM starts a stage"),
            Instruction::Arg(_) => {
                // The values were taken in `step`.
                let cfg = st.cfg();
                st.history(config::nop_created_by(&step.text, &cfg), true);
            }
            Instruction::Run(r) => self.run(st, step, r, done).await?,
            Instruction::Copy(_) | Instruction::Add(_) => {
                let expanded =
                    expand(&step.instruction, self.escape, &st.vars()).map_err(shell_err(step))?;
                self.copy(st, &expanded, done, fetched)?;
            }
            other => {
                let expanded = expand(other, self.escape, &st.vars()).map_err(shell_err(step))?;
                config::apply(&mut st.image, &expanded, &mut st.cmd_set).map_err(fail)?;
                let made = match expanded {
                    Instruction::Workdir(_) => self.make_workdir(st)?,
                    _ => false,
                };
                let cfg = st.cfg();
                st.history(config::nop_created_by(&step.text, &cfg), !made);
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        st: &mut State,
        step: &Step,
        r: &instructions::Run,
        done: &[Option<State>],
    ) -> Result<(), BuildError> {
        let mut views = Vec::new();
        let result = self.run_mounted(st, step, r, done, &mut views).await;
        for v in views {
            let _ = v.unmount();
        }
        result
    }

    /// A `RUN --mount` as a mount of the step's container; read-only views of stages
    /// or images it binds go into `views` (unmounted by the caller).
    fn run_mount<'v>(
        &self,
        m: &RunMount,
        workdir: &str,
        done: &[Option<State>],
        views: &mut Vec<layers::View<'v>>,
    ) -> Result<Option<berth_engine::config::Mount>, BuildError>
    where
        'a: 'v,
    {
        let fail = BuildError::Step;
        let target = m.target.clone().unwrap_or_default();
        let bind = |source: PathBuf, read_only: bool| berth_engine::config::MountKind::Bind {
            source: source.display().to_string(),
            read_only,
            recursive: false,
            propagation: Default::default(),
            create_source: false,
        };
        let kind = match m.kind {
            MountType::Bind => {
                if !m.read_only {
                    return Err(fail(
                        "RUN --mount=type=bind,rw is not supported by berth's builder: its writes would reach the source".into(),
                    ));
                }
                let source = m.source.clone().unwrap_or_else(|| ".".into());
                let root = match &m.from {
                    None => self.req.context.clone(),
                    Some(from) => {
                        let layers = self.source_layers(from, done)?;
                        let engine: &'a Arc<Engine> = self.engine;
                        let view = layers::View::mount(&engine.images, &layers).map_err(fail)?;
                        let p = view.path().to_path_buf();
                        views.push(view);
                        p
                    }
                };
                let found = copy::sources(
                    "RUN --mount",
                    &root,
                    std::slice::from_ref(&source),
                    m.from.is_some(),
                )
                .map_err(fail)?;
                let Some((_, host)) = found.into_iter().next() else {
                    return Err(fail(format!("RUN --mount: {source}: not found")));
                };
                bind(host, true)
            }
            MountType::Cache => {
                if m.from.is_some() {
                    return Err(fail(
                        "RUN --mount=type=cache,from= is not supported by berth's builder".into(),
                    ));
                }
                if matches!(m.sharing, Some(Sharing::Private) | Some(Sharing::Locked)) {
                    return Err(fail("RUN --mount=type=cache: only sharing=shared is supported by berth's builder".into()));
                }
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let dir = self
                    .engine
                    .root()
                    .join("build-cache-mounts")
                    .join(cache::key("cache-mount", &id));
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| fail(format!("the cache mount {id}: {e}")))?;
                    use std::os::unix::fs::PermissionsExt;
                    let mode = m.mode.unwrap_or(0o755);
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| fail(format!("the cache mount {id}: {e}")))?;
                    std::os::unix::fs::chown(
                        &dir,
                        Some(m.uid.unwrap_or(0)),
                        Some(m.gid.unwrap_or(0)),
                    )
                    .map_err(|e| fail(format!("the cache mount {id}: {e}")))?;
                }
                bind(dir, m.read_only)
            }
            MountType::Tmpfs => {
                let mut options = vec!["exec".to_string(), "suid".to_string(), "dev".to_string()];
                if let Some(size) = &m.size {
                    options.push(format!("size={size}"));
                }
                berth_engine::config::MountKind::Tmpfs { options }
            }
            MountType::Secret => unreachable!("secret mounts are made by run_mounted"),
            MountType::Ssh => {
                return Err(fail(
                    "RUN --mount=type=ssh is not supported by berth's builder".into(),
                ))
            }
        };
        let destination = if target.starts_with('/') {
            target
        } else {
            config::clean(&format!("{}/{target}", workdir.trim_end_matches('/')))
        };
        Ok(Some(berth_engine::config::Mount { destination, kind }))
    }

    async fn run_mounted<'v>(
        &self,
        st: &mut State,
        step: &Step,
        r: &instructions::Run,
        done: &[Option<State>],
        views: &mut Vec<layers::View<'v>>,
    ) -> Result<(), BuildError>
    where
        'a: 'v,
    {
        if let Some(s) = &r.security {
            return Err(BuildError::Step(format!(
                "RUN --security={s} is not supported by berth's builder"
            )));
        }
        let cfg = st.cfg();
        let workdir = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
        let mut mounts = Vec::new();
        let mut secret_env = Vec::new();
        let mut had_secret = false;
        // Removed (with the files in it) when the step ends, whatever happens; under
        // the uploads dir, which the next start empties should berthd die meanwhile.
        let mut step_secrets = secrets::StepSecrets::new(&self.engine.images.uploads);
        for m in &r.mounts {
            if m.kind != MountType::Secret {
                mounts.extend(self.run_mount(m, &workdir, done, views)?);
                continue;
            }
            let Some(given) = step_secrets
                .give(m, &self.req.secrets)
                .map_err(BuildError::Step)?
            else {
                continue;
            };
            had_secret = true;
            secret_env.extend(given.env);
            if let Some((source, target)) = given.file {
                let destination = if target.starts_with('/') {
                    target
                } else {
                    config::clean(&format!("{}/{target}", workdir.trim_end_matches('/')))
                };
                mounts.push(berth_engine::config::Mount {
                    destination,
                    kind: berth_engine::config::MountKind::Bind {
                        source: source.display().to_string(),
                        read_only: true,
                        recursive: false,
                        propagation: Default::default(),
                        create_source: false,
                    },
                });
            }
        }
        let args = match &r.command {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(_) => {
                let mut v = config::shell(&cfg);
                v.push(r.shell_script().unwrap_or_default());
                v
            }
        };
        // The image the container starts from: this step's parent, stored by ID.
        let images = &self.engine.images;
        let (rec, _) =
            layers::write_image(images, &st.image, &st.layers, "").map_err(BuildError::Step)?;
        let parent = rec.name.clone();
        {
            let mut intermediates = self.intermediates.lock().unwrap();
            if !intermediates.contains(&parent) {
                intermediates.push(parent.clone());
            }
        }
        let mut env = cfg.env.clone().unwrap_or_default();
        for (k, v) in &st.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k))
            {
                env.push(format!("{k}={v}"));
            }
        }
        for e in secret_env {
            let name = e.split('=').next().unwrap_or_default().to_string();
            env.retain(|x| x.split('=').next() != Some(name.as_str()));
            env.push(e);
        }
        let spec = run::RunSpec {
            image: parent,
            args: args.clone(),
            env,
            user: cfg.user.clone().unwrap_or_default(),
            working_dir: cfg.working_dir.clone().unwrap_or_default(),
            network: match r.network.clone().or_else(|| self.req.network.clone()) {
                // RUN steps keep a loopback-only namespace: joining the default
                // bridge would bind /etc/hosts and friends into the step's rootfs,
                // whose diff becomes the layer.
                None | Some(NetworkMode::Default) | Some(NetworkMode::None) => {
                    berth_engine::config::NetworkMode::None
                }
                Some(NetworkMode::Host) => berth_engine::config::NetworkMode::Host,
            },
            mounts,
        };
        let layer = run::run(
            self.engine,
            spec,
            &st.image.rootfs.diff_ids,
            &self.out,
            Some(self.stop.clone()),
            // A container that saw a secret is not kept (rm=false): its config
            // would hold an env= secret.
            self.req.keep_containers && !had_secret,
        )
        .await
        .map_err(BuildError::Step)?;
        st.image.rootfs.diff_ids.push(layer.digest.clone());
        st.layers.push(layer);
        let mut created_by = args.join(" ");
        if !st.args.is_empty() {
            let pairs: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            created_by = format!("|{} {} {created_by}", pairs.len(), pairs.join(" "));
        }
        let _ = step;
        st.history(created_by, false);
        Ok(())
    }

    /// WORKDIR creates its directory when the image lacks it (Docker: "created even if
    /// it's not used in any subsequent Dockerfile instruction"), 0755 and owned by the
    /// current USER as BuildKit and buildah make it: a layer, only when something was
    /// missing.
    fn make_workdir(&self, st: &mut State) -> Result<bool, BuildError> {
        let fail = BuildError::Step;
        let cfg = st.cfg();
        let Some(dir) = cfg.working_dir.clone().filter(|d| d != "/") else {
            return Ok(false);
        };
        let images = &self.engine.images;
        let rootfs = copy::Layers(layers::layer_dirs(images, &st.image.rootfs.diff_ids));
        // A file where the directory should be fails the build, as in Docker.
        let dirs = copy::workdir_dirs(&dir, &rootfs).map_err(fail)?;
        if dirs.is_empty() {
            return Ok(false);
        }
        let user = cfg.user.clone().unwrap_or_default();
        let owner = if user.is_empty() {
            (0, 0)
        } else {
            copy::user_owner(&user, &rootfs).map_err(fail)?
        };
        let layer = layers::store_layer(images, &st.image.rootfs.diff_ids, |w| {
            copy::workdir(&dirs, owner, w).map(|_| ())
        })
        .map_err(fail)?;
        st.image.rootfs.diff_ids.push(layer.digest.clone());
        st.layers.push(layer);
        Ok(true)
    }

    fn copy(
        &self,
        st: &mut State,
        ins: &Instruction,
        done: &[Option<State>],
        fetched: Option<&fetch::Fetched>,
    ) -> Result<(), BuildError> {
        let (c, keyword) = match ins {
            Instruction::Copy(c) => (c, "COPY"),
            Instruction::Add(c) => (c, "ADD"),
            _ => unreachable!("COPY or ADD"),
        };
        let fail = BuildError::Step;
        if c.checksum.is_some() && fetched.is_none() {
            return Err(fail(
                "ADD --checksum applies only to URL sources (http:// or https://)".into(),
            ));
        }
        if c.parents || !c.exclude.is_empty() || c.keep_git_dir {
            return Err(fail(format!(
                "{keyword} --parents, --exclude and --keep-git-dir are not supported by berth's builder"
            )));
        }
        if keyword == "ADD"
            && fetched.is_none()
            && c.sources
                .iter()
                .any(|s| s.contains("://") || s.starts_with("git@"))
        {
            return Err(fail(
                "ADD from a git repository or a URL other than http(s) is not supported by berth's builder".into(),
            ));
        }
        let images = &self.engine.images;
        let rootfs = copy::Layers(layers::layer_dirs(images, &st.image.rootfs.diff_ids));
        let owner = match &c.chown {
            Some(spec) => copy::owner(spec, &rootfs).map_err(fail)?,
            None => (0, 0),
        };
        let chmod = c
            .chmod
            .as_deref()
            .map(copy::mode)
            .transpose()
            .map_err(fail)?;
        let cfg = st.cfg();
        let workdir = cfg.working_dir.clone().unwrap_or_default();
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let base = if workdir.is_empty() {
                "/".to_string()
            } else {
                workdir
            };
            let joined = format!("{}/{}", base.trim_end_matches('/'), c.dest);
            if c.dest.ends_with('/') || c.dest == "." || c.dest.ends_with("/.") {
                format!("{}/", config::clean(&joined))
            } else {
                config::clean(&joined)
            }
        };
        let step = copy::CopyStep {
            keyword,
            sources: match fetched {
                Some(f) => f.names.clone(),
                None => c.sources.clone(),
            },
            heredocs: c
                .heredocs
                .iter()
                .map(|h| (h.name.clone(), h.content.clone()))
                .collect(),
            dest: dest.clone(),
            owner,
            chmod,
            // Docker does not extract an archive ADD downloaded.
            extract: keyword == "ADD" && fetched.is_none(),
            scoped: false,
        };
        let layer = match &c.from {
            None => {
                let ctx = match fetched {
                    Some(f) => f.dir.clone(),
                    None => self.req.context.clone(),
                };
                layers::store_layer(images, &st.image.rootfs.diff_ids, |w| {
                    copy::write(&step, &ctx, &rootfs, w).map(|_| ())
                })
            }
            Some(from) => {
                let source = self.source_layers(from, done)?;
                let step = copy::CopyStep {
                    scoped: true,
                    extract: false,
                    ..step
                };
                let view = layers::View::mount(images, &source).map_err(fail)?;
                let result = layers::store_layer(images, &st.image.rootfs.diff_ids, |w| {
                    copy::write(&step, view.path(), &rootfs, w).map(|_| ())
                });
                view.unmount().map_err(fail)?;
                result
            }
        }
        .map_err(fail)?;
        let created_by = format!(
            "{} #(nop) {keyword} {}:{} in {dest} ",
            config::shell(&cfg).join(" "),
            if c.sources.len() == 1 {
                "file"
            } else {
                "multi"
            },
            layer.digest.hex()
        );
        st.image.rootfs.diff_ids.push(layer.digest.clone());
        st.layers.push(layer);
        st.history(created_by, false);
        Ok(())
    }
}

impl Run<'_> {
    /// Which stages up to `last` the target needs, and each stage's dependencies: itself and, transitively, the
    /// stages its FROM, `COPY --from` and `RUN --mount=from=` name (a `--from` with a variable in it
    /// counts as needing every earlier stage).
    fn needed_stages(&self, last: usize) -> (Vec<bool>, Vec<Vec<usize>>) {
        let df = &self.req.dockerfile;
        let index_of = |name: &str, before: usize| -> Option<usize> {
            let lower = name.to_ascii_lowercase();
            df.stages[..before]
                .iter()
                .position(|s| s.name() == Some(lower.as_str()))
                .or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
        };
        let deps: Vec<Vec<usize>> = df.stages[..=last]
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let mut d = Vec::new();
                if let Ok(Instruction::From(f)) =
                    expand(&stage.from.instruction, self.escape, &self.meta)
                {
                    let lower = f.image.to_ascii_lowercase();
                    d.extend(
                        df.stages[..i]
                            .iter()
                            .position(|s| s.name() == Some(lower.as_str())),
                    );
                }
                for step in &stage.steps {
                    let froms: Vec<&str> = match &step.instruction {
                        Instruction::Copy(c) => c.from.as_deref().into_iter().collect(),
                        Instruction::Run(r) => {
                            r.mounts.iter().filter_map(|m| m.from.as_deref()).collect()
                        }
                        _ => vec![],
                    };
                    for f in froms {
                        if f.contains('$') {
                            d.extend(0..i);
                        } else {
                            d.extend(index_of(f, i));
                        }
                    }
                }
                d
            })
            .collect();
        let mut needed = vec![false; last + 1];
        let mut todo = vec![last];
        while let Some(i) = todo.pop() {
            if !needed[i] {
                needed[i] = true;
                todo.extend(deps[i].iter().copied());
            }
        }
        (needed, deps)
    }

    /// One step: its cache key from the state's and what the step is; the cached
    /// result when there is one (and `--no-cache` was not asked), else the step run
    /// and its result cached.
    async fn step(
        &self,
        st: &mut State,
        step: &Step,
        done: &[Option<State>],
    ) -> Result<(), BuildError> {
        let vars = st.vars();
        // An ADD's downloads, removed when the step ends.
        let mut fetched: Option<fetch::Fetched> = None;
        let desc = match &step.instruction {
            Instruction::Arg(decls) => {
                for d in decls {
                    let default = d
                        .default
                        .as_deref()
                        .map(|v| crate::dockerfile::shell::process_word(v, self.escape, &vars))
                        .transpose()
                        .map_err(shell_err(step))?;
                    if let Some(v) = self.arg_value(&d.name, default) {
                        st.args.retain(|(k, _)| k != &d.name);
                        st.args.push((d.name.clone(), v));
                    }
                }
                format!("{:?}|{:?}", step.instruction, st.args)
            }
            Instruction::Run(r) => {
                // What a bind mount shows is part of the step, as a COPY's files are.
                let mut what = String::new();
                for m in r.mounts.iter().filter(|m| m.kind == MountType::Bind) {
                    match &m.from {
                        Some(from) => {
                            what.push_str(&format!("|from:{}", self.source_key(from, done)?))
                        }
                        None => {
                            let src = m.source.clone().unwrap_or_else(|| ".".into());
                            let ctx = &self.req.context;
                            let srcs = copy::sources("RUN --mount", ctx, &[src], false)
                                .map_err(BuildError::Step)?;
                            let sum = cache::checksum(ctx, &srcs)
                                .map_err(|e| BuildError::Step(format!("RUN --mount: {e}")))?;
                            what.push('|');
                            what.push_str(&sum);
                        }
                    }
                }
                format!("{:?}|{:?}{what}", step.instruction, st.args)
            }
            Instruction::Copy(_) | Instruction::Add(_) => {
                let expanded =
                    expand(&step.instruction, self.escape, &vars).map_err(shell_err(step))?;
                let c = match &expanded {
                    Instruction::Copy(c) | Instruction::Add(c) => c,
                    _ => unreachable!("COPY or ADD"),
                };
                let urls = step.instruction.keyword() == "ADD"
                    && c.from.is_none()
                    && c.sources.iter().any(|s| fetch::is_url(s));
                if urls {
                    if !c.sources.iter().all(|s| fetch::is_url(s)) {
                        return Err(BuildError::Step(
                            "ADD of URLs and local files in one instruction is not supported by berth's builder: use one ADD for each".into(),
                        ));
                    }
                    let f = fetch::fetch(
                        // Emptied at the next start, should berthd die meanwhile.
                        &self.engine.images.uploads.join("build-downloads"),
                        &c.sources,
                        &c.dest,
                        c.checksum.as_deref(),
                    )
                    .await
                    .map_err(BuildError::Step)?;
                    let srcs =
                        copy::sources("ADD", &f.dir, &f.names, false).map_err(BuildError::Step)?;
                    let sum = cache::checksum(&f.dir, &srcs)
                        .map_err(|e| BuildError::Step(format!("ADD failed: {e}")))?;
                    fetched = Some(f);
                    // The URLs stay in the key: the file names come from them.
                    format!("{expanded:?}|fetched:{sum}")
                } else {
                    let what = match &c.from {
                        Some(from) => format!("from:{}", self.source_key(from, done)?),
                        None => {
                            let kw = step.instruction.keyword();
                            let srcs = copy::sources(kw, &self.req.context, &c.sources, false)
                                .map_err(BuildError::Step)?;
                            cache::checksum(&self.req.context, &srcs)
                                .map_err(|e| BuildError::Step(format!("{kw} failed: {e}")))?
                        }
                    };
                    format!("{expanded:?}|{what}")
                }
            }
            other => format!(
                "{:?}",
                expand(other, self.escape, &vars).map_err(shell_err(step))?
            ),
        };
        let key = cache::key(&st.key, &desc);
        if !self.req.no_cache {
            if let Some(e) = self.cache.get(&self.engine.images, &key) {
                self.say(" ---> Using cache\n".into());
                st.image = e.image;
                st.layers = e.layers;
                st.cmd_set = e.cmd_set;
                st.key = key;
                return Ok(());
            }
        }
        self.execute(st, step, done, fetched.as_ref()).await?;
        self.cache.put(
            &key,
            &cache::Entry {
                image: st.image.clone(),
                layers: st.layers.clone(),
                cmd_set: st.cmd_set,
            },
        );
        st.key = key;
        Ok(())
    }

    /// The cache key of what `COPY --from=` names.
    fn source_key(&self, from: &str, done: &[Option<State>]) -> Result<String, BuildError> {
        let df = &self.req.dockerfile;
        let lower = from.to_ascii_lowercase();
        let by_name = df.stages[..done.len()]
            .iter()
            .position(|s| s.name() == Some(lower.as_str()));
        let by_index = from.parse::<usize>().ok().filter(|i| *i < done.len());
        if let Some(i) = by_name.or(by_index) {
            return Ok(built(done, i)?.key.clone());
        }
        let diff_ids = self.source_layers(from, done)?;
        Ok(format!("{diff_ids:?}"))
    }

    /// The layers `COPY --from=` names: an earlier stage (by name or index) or an image.
    fn source_layers(&self, from: &str, done: &[Option<State>]) -> Result<Vec<Digest>, BuildError> {
        let df = &self.req.dockerfile;
        let lower = from.to_ascii_lowercase();
        let by_name = df.stages[..done.len()]
            .iter()
            .position(|s| s.name() == Some(lower.as_str()));
        let by_index = from.parse::<usize>().ok().filter(|i| *i < done.len());
        if let Some(i) = by_name.or(by_index) {
            return Ok(built(done, i)?.image.rootfs.diff_ids.clone());
        }
        if from.parse::<usize>().is_ok()
            || df.stages.iter().any(|s| s.name() == Some(lower.as_str()))
        {
            return Err(BuildError::Step(format!(
                "invalid from flag value {from}: refers to a stage that is not built before this one"
            )));
        }
        let images = &self.engine.images;
        let rec = berth_engine::find_image(images, from)
            .map_err(|e| BuildError::Step(format!("invalid from flag value {from}: {e}")))?;
        Ok(rec.diff_ids)
    }
}

/// A tag as the docker CLI shows it (`docker.io/library/x:1` → `x:1`).
pub fn display_tag(t: &str) -> String {
    let t = t.strip_prefix("docker.io/").unwrap_or(t);
    t.strip_prefix("library/").unwrap_or(t).to_string()
}
