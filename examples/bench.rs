//! The benchmark: the real release binary under an emulated Lambda Runtime
//! API, against the fake Docker Hub, the fake Elasticsearch and moto's SSM.
//!
//! ```text
//! scripts/bench                       # builds, then runs this with defaults
//! target/release/examples/bench --binary target/release/docker-pulls \
//!     [--sizes 100,1000,5000] [--latency-ms 50] [--concurrency 32] \
//!     [--processes 3] [--warm 3] [--images listing|event] [--pipeline NAME] \
//!     [--memory-mb 128] [--lambda-limits] [--env KEY=VALUE]… \
//!     [--lambda target/lambda/docker-pulls/bootstrap]
//! ```
//!
//! For each size N it starts a fresh fake Docker Hub with N synthetic
//! repositories `bench/repo-00001…` (every answer delayed by `--latency-ms`)
//! and a fresh fake Elasticsearch, stores the settings in moto (`images` =
//! `bench/*`, so the paged listing is exercised, unless `--images event`
//! names every repository in the event instead), and then, `--processes`
//! times, spawns the function with `AWS_LAMBDA_RUNTIME_API` pointing at the
//! emulator below and invokes it `1 + --warm` times (a cold invocation, then
//! warm ones) with scheduled events whose `time`s differ.
//!
//! Each service is reached through a timestamping TCP relay, which is how the
//! phases (SSM, Hub listing, Hub repositories, `_bulk`) are timed from the
//! outside without touching the function. Per invocation it measures:
//!
//! - wall: from the `/next` answer carrying the event to the `/response` POST;
//! - peak RSS of the function (VmHWM, reset through `/proc/PID/clear_refs`
//!   before each invocation), user+sys CPU (`/proc/PID/stat`, read before the
//!   hand-out and after the function polls `/next` again);
//! - Docker Hub requests by kind and the peak in flight, `_bulk` requests,
//!   documents in the index (`_count`), TCP connections opened;
//!
//! and per process the init time (spawn → first `/next` poll) and its CPU.
//!
//! `--lambda-limits` (root, cgroup v1) runs the function with the CPU share
//! Lambda gives `--memory-mb` (memory / 1,769 MB of one vCPU: 7.2 % at 128 MB)
//! and that memory limit, to see what the throttled CPU does to wall time.
//! It prints a table and, as its last stdout line, the figures as JSON.
//! It never judges the numbers; it fails only when the function does.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::types::ParameterType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, RequestKind};
use support::moto::Moto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const USAGE: &str = "usage: bench [--binary PATH] [--sizes 100,1000,5000] [--latency-ms 50] \
                     [--concurrency 32] [--processes 3] [--warm 3] [--images listing|event] \
                     [--pipeline none|NAME] [--memory-mb 128] [--lambda-limits] [--env KEY=VALUE] [--lambda BOOTSTRAP]";

const SSM_PREFIX: &str = "/docker-pulls-bench";
const NAMESPACE: &str = "bench";
const INDEX: &str = "docker-pulls-2026";
/// Docker Hub's listing page size, as the function asks for it.
const PAGE_SIZE: usize = 100;
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
const REPOLL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Args {
    binary: PathBuf,
    sizes: Vec<usize>,
    latency_ms: u64,
    concurrency: usize,
    processes: usize,
    warm: usize,
    images_in_event: bool,
    pipeline: String,
    memory_mb: u32,
    /// A `cargo lambda build` bootstrap whose size is reported (not run).
    lambda: Option<PathBuf>,
    /// Run the function in cgroups (v1) with a Lambda's CPU share for
    /// `memory_mb` (memory_mb / 1769 of a CPU) and its memory limit.
    lambda_limits: bool,
    /// Extra `KEY=VALUE` variables for the function (`--env`, repeatable).
    env: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        binary: PathBuf::from("target/release/docker-pulls"),
        sizes: vec![100, 1000, 5000],
        latency_ms: 50,
        concurrency: 32,
        processes: 3,
        warm: 3,
        images_in_event: false,
        pipeline: "none".into(),
        memory_mb: 128,
        lambda: None,
        lambda_limits: false,
        env: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("binary") => args.binary = parser.value()?.into(),
            Long("sizes") => {
                let text = parser.value()?.string()?;
                args.sizes = text
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| lexopt::Error::from(format!("--sizes {text:?}: {e}")))?;
            }
            Long("latency-ms") => args.latency_ms = parser.value()?.parse()?,
            Long("concurrency") => args.concurrency = parser.value()?.parse()?,
            Long("processes") => args.processes = parser.value()?.parse::<usize>()?.max(1),
            Long("warm") => args.warm = parser.value()?.parse()?,
            Long("images") => {
                args.images_in_event = match parser.value()?.string()?.as_str() {
                    "listing" => false,
                    "event" => true,
                    other => return Err(format!("--images {other:?}: listing or event").into()),
                }
            }
            Long("pipeline") => args.pipeline = parser.value()?.string()?,
            Long("memory-mb") => args.memory_mb = parser.value()?.parse()?,
            Long("lambda") => args.lambda = Some(parser.value()?.into()),
            Long("lambda-limits") => args.lambda_limits = true,
            Long("env") => {
                let pair = parser.value()?.string()?;
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--env {pair:?}: expected KEY=VALUE"))?;
                args.env.push((key.to_owned(), value.to_owned()));
            }
            Long("help") | Short('h') => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        return Err("--sizes needs positive numbers".into());
    }
    Ok(args)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- timestamping relay --------------------------------------------------

/// When bytes went each way through a relay (since the last reset).
#[derive(Debug, Default, Clone)]
struct Stamps {
    first_up: Option<Instant>,
    last_down: Option<Instant>,
    /// First and last Docker Hub listing request, first repository request.
    first_listing: Option<Instant>,
    last_listing: Option<Instant>,
    first_repository: Option<Instant>,
    connections: u64,
    bytes_up: u64,
    bytes_down: u64,
}

/// A TCP relay on 127.0.0.1 in front of a local service.
struct Relay {
    url: String,
    stamps: Arc<Mutex<Stamps>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stamps = Arc::new(Mutex::new(Stamps::default()));
        let shared = Arc::clone(&stamps);
        // Accepts until the relay is dropped (the task is aborted then).
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                lock(&shared).connections += 1;
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, Arc::clone(&shared), true),
                        pump(server_read, client_write, shared, false),
                    );
                });
            }
        });
        Ok(Self { url, stamps, task })
    }

    fn reset(&self) {
        let mut stamps = lock(&self.stamps);
        *stamps = Stamps::default();
    }

    fn stamps(&self) -> Stamps {
        lock(&self.stamps).clone()
    }
}

/// Copies one direction until EOF or an error, stamping every chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stamps: Arc<Mutex<Stamps>>,
    up: bool,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        {
            let mut s = lock(&stamps);
            if up {
                s.first_up.get_or_insert(now);
                s.bytes_up += n as u64;
                // Requests are written whole (hyper, HTTP/1.1, no pipelining).
                match hub_request_kind(&buffer[..n]) {
                    Some(true) => {
                        s.first_listing.get_or_insert(now);
                        s.last_listing = Some(now);
                    }
                    Some(false) => {
                        s.first_repository.get_or_insert(now);
                    }
                    None => {}
                }
            } else {
                s.last_down = Some(now);
                s.bytes_down += n as u64;
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `Some(true)` for a Docker Hub listing request, `Some(false)` for a
/// repository request, `None` for anything else.
fn hub_request_kind(chunk: &[u8]) -> Option<bool> {
    let rest = chunk.strip_prefix(b"GET /v2/namespaces/")?;
    let path_end = rest.iter().position(|&b| b == b' ')?;
    let path = &rest[..path_end];
    let after = path.windows(13).position(|w| w == b"/repositories")? + 13;
    match path.get(after) {
        None | Some(b'?') => Some(true),
        Some(b'/') => Some(false),
        Some(_) => None,
    }
}

// ---- Lambda Runtime API emulator -----------------------------------------

struct Invocation {
    id: String,
    body: String,
    deadline_ms: u64,
}

#[derive(Debug)]
enum Note {
    Polled(Instant),
    HandedOut(String, Instant),
    Response(String, Instant, Bytes),
    Error(String, Instant, Bytes),
    InitError(Bytes),
}

struct Emulator {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<Invocation>,
    notes: mpsc::UnboundedReceiver<Note>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct EmuState {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    notes: mpsc::UnboundedSender<Note>,
}

impl Emulator {
    async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let state = Arc::new(EmuState {
            events: tokio::sync::Mutex::new(events_rx),
            notes: notes_tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            events,
            notes,
            task,
        })
    }

    /// The next note, or an error naming what was awaited.
    async fn note(&mut self, timeout: Duration, what: &str) -> Result<Note, String> {
        match tokio::time::timeout(timeout, self.notes.recv()).await {
            Ok(Some(note)) => Ok(note),
            Ok(None) => Err(format!("runtime emulator stopped while waiting for {what}")),
            Err(_) => Err(format!("no {what} within {timeout:?}")),
        }
    }
}

async fn next_invocation(State(state): State<Arc<EmuState>>) -> Response {
    let _ = state.notes.send(Note::Polled(Instant::now()));
    let invocation = state.events.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let _ = state
        .notes
        .send(Note::HandedOut(invocation.id.clone(), Instant::now()));
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    put("content-type", "application/json".into());
    put("lambda-runtime-aws-request-id", invocation.id.clone());
    put(
        "lambda-runtime-deadline-ms",
        invocation.deadline_ms.to_string(),
    );
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:docker-pulls-bench".into(),
    );
    put(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{:0>24};Parent=53995c3f42cd8ad8;Sampled=0",
            unix_millis() / 1000,
            invocation.id.replace('-', "")
        ),
    );
    (headers, invocation.body).into_response()
}

async fn invocation_response(
    State(state): State<Arc<EmuState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let _ = state.notes.send(Note::Response(id, Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(state): State<Arc<EmuState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let _ = state.notes.send(Note::Error(id, Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<EmuState>>, body: Bytes) -> StatusCode {
    let _ = state.notes.send(Note::InitError(body));
    StatusCode::ACCEPTED
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---- /proc ---------------------------------------------------------------

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of a process's live threads in nanoseconds, from
/// `/proc/PID/task/*/schedstat` (finer than the clock ticks of `stat`; threads
/// that have exited are not counted).
fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten().take(1024) {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// A `/proc/PID/status` line in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

// ---- Lambda-like limits (cgroup v1) ----------------------------------------

/// A CPU and a memory cgroup for one function process, removed on drop.
struct Limits {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, opened before the fork so the child only writes.
    procs: Vec<std::fs::File>,
}

/// Lambda: "at 1,769 MB, a function has the equivalent of one vCPU".
const MB_PER_VCPU: f64 = 1769.0;

impl Limits {
    fn create(memory_mb: u32, name: &str) -> Result<Self, String> {
        let mut limits = Limits {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let period: u64 = 100_000;
        let quota = ((f64::from(memory_mb) / MB_PER_VCPU) * period as f64).round() as u64;
        let memory = u64::from(memory_mb) * 1024 * 1024;
        let settings: [(&str, Vec<(&str, String)>); 2] = [
            (
                "cpu",
                vec![
                    ("cpu.cfs_period_us", period.to_string()),
                    ("cpu.cfs_quota_us", quota.max(1000).to_string()),
                ],
            ),
            (
                "memory",
                vec![("memory.limit_in_bytes", memory.to_string())],
            ),
        ];
        for (controller, files) in settings {
            let dir = PathBuf::from(format!("/sys/fs/cgroup/{controller}/{name}"));
            std::fs::create_dir(&dir).map_err(|e| {
                format!(
                    "--lambda-limits needs root and cgroup v1 ({}): {e}",
                    dir.display()
                )
            })?;
            limits.dirs.push(dir.clone());
            for (file, value) in files {
                std::fs::write(dir.join(file), &value)
                    .map_err(|e| format!("{}/{file} = {value}: {e}", dir.display()))?;
            }
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| format!("{}/cgroup.procs: {e}", dir.display()))?;
            limits.procs.push(procs);
        }
        Ok(limits)
    }

    /// Makes the child join the cgroups between fork and exec, so its whole
    /// life (init included) runs under them.
    fn apply(&self, command: &mut tokio::process::Command) -> Result<(), String> {
        let files = self
            .procs
            .iter()
            .map(|f| f.try_clone())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        // SAFETY: the closure only calls getpid and write(2) on files opened
        // before the fork, formatting into a stack buffer: no allocation, no
        // locks, as the child of a multi-threaded parent requires.
        unsafe {
            command.pre_exec(move || {
                use std::io::Write as _;
                let mut digits = [0u8; 20];
                let mut pid = std::process::id();
                let mut start = digits.len();
                loop {
                    start -= 1;
                    digits[start] = b'0' + (pid % 10) as u8;
                    pid /= 10;
                    if pid == 0 {
                        break;
                    }
                }
                for mut file in &files {
                    file.write_all(&digits[start..])?;
                }
                Ok(())
            });
        }
        Ok(())
    }
}

impl Drop for Limits {
    fn drop(&mut self) {
        self.procs.clear();
        for dir in self.dirs.iter().rev() {
            // Empty once the child has been waited for; retried briefly.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ---- one size ------------------------------------------------------------

/// The services of one size N, each behind a relay.
struct Stand {
    hub: FakeHub,
    es: FakeEs,
    hub_relay: Relay,
    es_relay: Relay,
    ssm_relay: Relay,
    http: reqwest::Client,
}

#[derive(Debug, Clone, Default)]
struct Sample {
    cold: bool,
    wall_ms: f64,
    ssm_ms: Option<f64>,
    /// From the hand-out to the first Hub request.
    hub_start_ms: Option<f64>,
    /// From the first listing request to the last one (the pages are
    /// sequential; repositories are fetched meanwhile).
    listing_ms: Option<f64>,
    /// From the first repository request to the last Hub byte.
    repositories_ms: Option<f64>,
    bulk_ms: Option<f64>,
    /// From the last Elasticsearch byte to the `/response` POST.
    tail_ms: Option<f64>,
    peak_rss_kib: u64,
    rss_after_kib: u64,
    /// Of `rss_after_kib`: anonymous memory (heap, stacks) and file-backed
    /// pages (the binary and libraries).
    rss_anon_kib: u64,
    rss_file_kib: u64,
    cpu_s: f64,
    /// The same from schedstat, in milliseconds.
    cpu_ms_precise: Option<f64>,
    hub_repository_requests: u64,
    hub_listing_requests: u64,
    hub_auth_requests: u64,
    hub_max_in_flight: u64,
    hub_connections: u64,
    hub_bytes_down: u64,
    bulk_requests: usize,
    bulk_bytes_up: u64,
    documents: u64,
    indexed: u64,
    failed: u64,
    bench_cpu_s: f64,
}

#[derive(Debug, Clone, Default)]
struct Init {
    init_ms: f64,
    init_cpu_s: f64,
    init_cpu_ms_precise: Option<f64>,
    rss_kib: u64,
    rss_anon_kib: u64,
    peak_rss_kib: u64,
}

struct SizeResult {
    n: usize,
    samples: Vec<Sample>,
    inits: Vec<Init>,
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

fn span(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(ms(from?, to?))
}

async fn run_size(
    args: &Args,
    moto: &Moto,
    n: usize,
    ticks: u64,
    sequence: &mut u64,
) -> Result<SizeResult, String> {
    let hub = FakeHub::start_on(0)
        .await
        .map_err(|e| format!("fake Docker Hub: {e}"))?;
    hub.add_synthetic_repos(NAMESPACE, n);
    hub.set_latency(Duration::from_millis(args.latency_ms));
    let es = FakeEs::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("fake Elasticsearch: {e}"))?;
    let moto_addr: SocketAddr = moto
        .endpoint_url()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("moto endpoint {}: {e}", moto.endpoint_url()))?;
    let relay = |addr| async move { Relay::start(addr).await.map_err(|e| format!("relay: {e}")) };
    let stand = Stand {
        hub_relay: relay(hub.addr()).await?,
        es_relay: relay(es.addr()).await?,
        ssm_relay: relay(moto_addr).await?,
        hub,
        es,
        http: reqwest::Client::new(),
    };

    let images = if args.images_in_event {
        // Not used by the run (the event names the images), but required.
        format!("{NAMESPACE}/repo-00001")
    } else {
        format!("{NAMESPACE}/*")
    };
    for (name, value) in [
        ("images", images.as_str()),
        ("elasticsearch/url", stand.es_relay.url.as_str()),
        ("elasticsearch/pipeline", args.pipeline.as_str()),
    ] {
        moto.put(
            &format!("{SSM_PREFIX}/{name}"),
            value,
            ParameterType::String,
        )
        .await;
    }

    let mut result = SizeResult {
        n,
        samples: Vec::new(),
        inits: Vec::new(),
    };
    for process in 0..args.processes {
        run_process(args, &stand, n, ticks, process, sequence, &mut result).await?;
    }
    Ok(result)
}

async fn run_process(
    args: &Args,
    stand: &Stand,
    n: usize,
    ticks: u64,
    process: usize,
    sequence: &mut u64,
    result: &mut SizeResult,
) -> Result<(), String> {
    let mut emulator = Emulator::start()
        .await
        .map_err(|e| format!("runtime emulator: {e}"))?;
    let log = std::env::temp_dir().join(format!(
        "docker-pulls-bench-{}-{n}-{process}.log",
        std::process::id()
    ));
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(&args.binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", emulator.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "docker-pulls-bench")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            args.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/docker-pulls-bench",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/27/[$LATEST]bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("TZ", ":UTC")
        .env("SSM_PREFIX", SSM_PREFIX)
        .env("AWS_ENDPOINT_URL_SSM", &stand.ssm_relay.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("DOCKER_HUB_URL", &stand.hub_relay.url)
        .env("HUB_CONCURRENCY", args.concurrency.to_string())
        .envs(args.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true);
    let limits = if args.lambda_limits {
        let limits = Limits::create(
            args.memory_mb,
            &format!("docker-pulls-bench-{}-{n}-{process}", std::process::id()),
        )?;
        limits.apply(&mut command)?;
        Some(limits)
    } else {
        None
    };
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", args.binary.display()))?;
    let pid = child.id().ok_or("the function exited at once")?;
    let fail = |what: String| {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = output.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("{what}\nfunction log ({}):\n{tail}", log.display())
    };

    let polled = match emulator.note(INIT_TIMEOUT, "first /next poll").await {
        Ok(Note::Polled(at)) => at,
        Ok(Note::InitError(body)) => {
            return Err(fail(format!(
                "init error: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(other) => return Err(fail(format!("unexpected before init: {other:?}"))),
        Err(e) => return Err(fail(e)),
    };
    result.inits.push(Init {
        init_ms: ms(spawned, polled),
        init_cpu_s: cpu_ticks(pid).unwrap_or(0) as f64 / ticks as f64,
        init_cpu_ms_precise: cpu_ns(pid).map(|ns| ns as f64 / 1e6),
        rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        rss_anon_kib: status_kib(pid, "RssAnon").unwrap_or(0),
        peak_rss_kib: status_kib(pid, "VmHWM").unwrap_or(0),
    });

    for invocation in 0..=args.warm {
        *sequence += 1;
        let sample = invoke(args, stand, &mut emulator, pid, n, ticks, *sequence)
            .await
            .map_err(fail)?;
        result.samples.push(Sample {
            cold: invocation == 0,
            ..sample
        });
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    drop(limits);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

async fn invoke(
    args: &Args,
    stand: &Stand,
    emulator: &mut Emulator,
    pid: u32,
    n: usize,
    ticks: u64,
    sequence: u64,
) -> Result<Sample, String> {
    // Distinct times, five minutes apart, so every run writes new documents.
    let time = time::OffsetDateTime::from_unix_timestamp(1_795_132_800 + sequence as i64 * 300)
        .map_err(|e| e.to_string())?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let id = format!("00000000-0000-4000-8000-{sequence:012}");
    let event = if args.images_in_event {
        let images: Vec<String> = (1..=n)
            .map(|i| format!("{NAMESPACE}/repo-{i:05}"))
            .collect();
        json!({"images": images, "time": time})
    } else {
        json!({
            "version": "0", "id": id, "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": time,
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/docker-pulls-bench"],
            "detail": {}
        })
    };

    stand.hub.reset_stats();
    stand.es.clear_requests();
    for relay in [&stand.hub_relay, &stand.es_relay, &stand.ssm_relay] {
        relay.reset();
    }
    if !reset_peak_rss(pid) {
        return Err("cannot reset the peak RSS through /proc/PID/clear_refs".into());
    }
    let cpu_before = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
    let ns_before = cpu_ns(pid);
    let bench_before = cpu_ticks(std::process::id()).unwrap_or(0);
    emulator
        .events
        .send(Invocation {
            id: id.clone(),
            body: event.to_string(),
            deadline_ms: unix_millis() + 120_000,
        })
        .map_err(|_| "runtime emulator stopped")?;
    let handed_out = match emulator.note(INIT_TIMEOUT, "event hand-out").await? {
        Note::HandedOut(got, at) if got == id => at,
        other => return Err(format!("expected the hand-out of {id}, got {other:?}")),
    };
    let (responded, body) = match emulator.note(INVOKE_TIMEOUT, "response").await? {
        Note::Response(got, at, body) if got == id => (at, body),
        Note::Error(got, at, body) => {
            return Err(format!(
                "invocation {got} failed after {:.0} ms: {}",
                ms(handed_out, at),
                String::from_utf8_lossy(&body)
            ));
        }
        other => return Err(format!("expected the response to {id}, got {other:?}")),
    };
    match emulator.note(REPOLL_TIMEOUT, "next /next poll").await? {
        Note::Polled(_) => {}
        other => return Err(format!("expected a /next poll, got {other:?}")),
    }
    let cpu_after = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
    let ns_after = cpu_ns(pid);
    let bench_after = cpu_ticks(std::process::id()).unwrap_or(0);
    let peak_rss_kib = status_kib(pid, "VmHWM").unwrap_or(0);
    let rss_after_kib = status_kib(pid, "VmRSS").unwrap_or(0);
    let rss_anon_kib = status_kib(pid, "RssAnon").unwrap_or(0);
    let rss_file_kib = status_kib(pid, "RssFile").unwrap_or(0);

    let summary: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("response is not JSON ({e}): {body:?}"))?;
    let count = |key: &str| summary.get(key).and_then(Value::as_u64).unwrap_or(0);
    let failed = summary
        .get("failed")
        .and_then(Value::as_array)
        .map_or(0, |f| f.len() as u64);
    if failed > 0 {
        eprintln!("bench: N={n}: {failed} image(s) failed: {summary}");
    }

    let documents = stand
        .http
        .get(format!("{}/{INDEX}/_count", stand.es.url()))
        .send()
        .await
        .map_err(|e| format!("_count: {e}"))?
        .json::<Value>()
        .await
        .map_err(|e| format!("_count: {e}"))?
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // Keeps the fake's memory flat across invocations.
    let _ = stand
        .http
        .delete(format!("{}/{INDEX}", stand.es.url()))
        .send()
        .await;

    let hub = stand.hub_relay.stamps();
    let es = stand.es_relay.stamps();
    let ssm = stand.ssm_relay.stamps();
    Ok(Sample {
        wall_ms: ms(handed_out, responded),
        ssm_ms: span(ssm.first_up, ssm.last_down),
        hub_start_ms: span(Some(handed_out), hub.first_up),
        listing_ms: span(hub.first_listing, hub.last_listing),
        repositories_ms: span(hub.first_repository, hub.last_down),
        bulk_ms: span(es.first_up, es.last_down),
        tail_ms: span(es.last_down, Some(responded)),
        peak_rss_kib,
        rss_after_kib,
        rss_anon_kib,
        rss_file_kib,
        cpu_s: cpu_after.saturating_sub(cpu_before) as f64 / ticks as f64,
        cpu_ms_precise: ns_before
            .zip(ns_after)
            .map(|(before, after)| after.saturating_sub(before) as f64 / 1e6),
        hub_repository_requests: stand.hub.count_kind(RequestKind::Repository),
        hub_listing_requests: stand.hub.count_kind(RequestKind::Listing),
        hub_auth_requests: stand.hub.count_kind(RequestKind::Auth),
        hub_max_in_flight: stand.hub.max_in_flight() as u64,
        hub_connections: hub.connections,
        hub_bytes_down: hub.bytes_down,
        bulk_requests: stand.es.bulk_request_count(),
        bulk_bytes_up: es.bytes_up,
        documents,
        indexed: count("indexed"),
        failed,
        bench_cpu_s: bench_after.saturating_sub(bench_before) as f64 / ticks as f64,
        ..Sample::default()
    })
}

// ---- report --------------------------------------------------------------

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn med<T>(items: &[T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    median(items.iter().filter_map(f).collect())
}

fn max_of<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    items.iter().map(f).fold(0.0, f64::max)
}

struct Bounds {
    fetch_ms: f64,
    listing_ms: f64,
    listing_pages: usize,
}

fn bounds(args: &Args, n: usize) -> Bounds {
    let latency = args.latency_ms as f64;
    let listing_pages = if args.images_in_event {
        0
    } else {
        n.div_ceil(PAGE_SIZE)
    };
    Bounds {
        fetch_ms: n.div_ceil(args.concurrency.max(1)) as f64 * latency,
        listing_ms: listing_pages as f64 * latency,
        listing_pages,
    }
}

fn summarize(args: &Args, result: &SizeResult, samples: &[&Sample]) -> Value {
    let owned: Vec<Sample> = samples.iter().map(|s| (*s).clone()).collect();
    let s = &owned[..];
    let b = bounds(args, result.n);
    let wall = med(s, |x| Some(x.wall_ms)).unwrap_or(f64::NAN);
    let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
    json!({
        "samples": s.len(),
        "wall_ms": round(Some(wall)),
        "wall_ms_max": round(Some(max_of(s, |x| x.wall_ms))),
        "ratio_to_bound_with_listing": round(Some(wall / (b.fetch_ms + b.listing_ms) * 100.0)).map(|v| v / 100.0),
        "ratio_to_bound_without_listing": round(Some(wall / b.fetch_ms * 100.0)).map(|v| v / 100.0),
        "ssm_ms": round(med(s, |x| x.ssm_ms)),
        "hub_start_ms": round(med(s, |x| x.hub_start_ms)),
        "listing_ms": round(med(s, |x| x.listing_ms)),
        "repositories_ms": round(med(s, |x| x.repositories_ms)),
        "bulk_ms": round(med(s, |x| x.bulk_ms)),
        "tail_ms": round(med(s, |x| x.tail_ms)),
        "peak_rss_mib": round(med(s, |x| Some(x.peak_rss_kib as f64 / 1024.0))),
        "peak_rss_mib_max": round(Some(max_of(s, |x| x.peak_rss_kib as f64 / 1024.0))),
        "rss_after_mib": round(med(s, |x| Some(x.rss_after_kib as f64 / 1024.0))),
        "rss_anon_after_mib": round(med(s, |x| Some(x.rss_anon_kib as f64 / 1024.0))),
        "rss_file_after_mib": round(med(s, |x| Some(x.rss_file_kib as f64 / 1024.0))),
        "cpu_s": med(s, |x| Some(x.cpu_s)),
        "cpu_s_max": max_of(s, |x| x.cpu_s),
        "cpu_ms_schedstat": round(med(s, |x| x.cpu_ms_precise)),
        "bench_cpu_s": med(s, |x| Some(x.bench_cpu_s)),
        "hub_repository_requests": max_of(s, |x| x.hub_repository_requests as f64),
        "hub_listing_requests": max_of(s, |x| x.hub_listing_requests as f64),
        "hub_auth_requests": max_of(s, |x| x.hub_auth_requests as f64),
        "hub_max_in_flight": max_of(s, |x| x.hub_max_in_flight as f64),
        "hub_connections_opened": med(s, |x| Some(x.hub_connections as f64)),
        "hub_connections_opened_max": max_of(s, |x| x.hub_connections as f64),
        "hub_mib_received": round(med(s, |x| Some(x.hub_bytes_down as f64 / 1048576.0))),
        "bulk_requests": max_of(s, |x| x.bulk_requests as f64),
        "bulk_body_kib": round(med(s, |x| Some(x.bulk_bytes_up as f64 / 1024.0))),
        "documents_indexed": med(s, |x| Some(x.documents as f64)),
        "summary_indexed": med(s, |x| Some(x.indexed as f64)),
        "failed": max_of(s, |x| x.failed as f64),
    })
}

fn binary_info(path: &Path) -> Value {
    let arch = std::fs::read(path).ok().and_then(|bytes| {
        let machine = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
        Some(match machine {
            0x3e => "x86_64",
            0xb7 => "aarch64",
            _ => "other",
        })
    });
    json!({
        "path": path.display().to_string(),
        "bytes": std::fs::metadata(path).map(|m| m.len()).ok(),
        "arch": arch,
    })
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "date": now,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

fn fmt(v: &Value, key: &str, digits: usize) -> String {
    match v.get(key).and_then(Value::as_f64) {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn table(args: &Args, rows: &[(usize, Value, Value, Value)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| N | run | wall ms | bound ms (fetch / +listing) | ratio (fetch / +listing) | SSM ms | listing span ms | repos ms | bulk ms | peak RSS MiB | CPU s (schedstat ms) | Hub requests (repo+listing / expected) | max in flight | _bulk | docs |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (n, cold, warm, _) in rows {
        let b = bounds(args, *n);
        for (label, v) in [("cold", cold), ("warm", warm)] {
            if v.get("samples").and_then(Value::as_u64).unwrap_or(0) == 0 {
                continue;
            }
            let requests = v["hub_repository_requests"].as_f64().unwrap_or(0.0)
                + v["hub_listing_requests"].as_f64().unwrap_or(0.0)
                + v["hub_auth_requests"].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {n} | {label} (median of {}) | {} | {:.0} / {:.0} | {} / {} | {} | {} | {} | {} | {} (max {}) | {} ({}) | {requests:.0} / {} | {} | {} | {} |",
                v["samples"],
                fmt(v, "wall_ms", 0),
                b.fetch_ms,
                b.fetch_ms + b.listing_ms,
                fmt(v, "ratio_to_bound_without_listing", 2),
                fmt(v, "ratio_to_bound_with_listing", 2),
                fmt(v, "ssm_ms", 0),
                fmt(v, "listing_ms", 0),
                fmt(v, "repositories_ms", 0),
                fmt(v, "bulk_ms", 0),
                fmt(v, "peak_rss_mib", 1),
                fmt(v, "peak_rss_mib_max", 1),
                fmt(v, "cpu_s", 2),
                fmt(v, "cpu_ms_schedstat", 0),
                n + b.listing_pages,
                fmt(v, "hub_max_in_flight", 0),
                fmt(v, "bulk_requests", 0),
                fmt(v, "documents_indexed", 0),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| N | init ms (median, max) | init CPU ms (schedstat) | RSS after init MiB (anonymous) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    for (n, _, _, init) in rows {
        let _ = writeln!(
            out,
            "| {n} | {} ({}) | {} | {} ({}) |",
            fmt(init, "init_ms", 1),
            fmt(init, "init_ms_max", 1),
            fmt(init, "init_cpu_ms_schedstat", 1),
            fmt(init, "rss_mib", 1),
            fmt(init, "rss_anon_mib", 1),
        );
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !args.binary.is_file() {
        eprintln!(
            "bench: {} not found: build it with `cargo build --release --bin docker-pulls`",
            args.binary.display()
        );
        return ExitCode::from(2);
    }
    let ticks = clock_ticks_per_second();
    eprintln!("bench: starting moto…");
    let moto = Moto::start().await;

    let mut rows = Vec::new();
    let mut sequence = 0;
    for &n in &args.sizes {
        eprintln!(
            "bench: N={n}: {} process(es) × (1 cold + {} warm) invocations…",
            args.processes, args.warm
        );
        let result = match run_size(&args, &moto, n, ticks, &mut sequence).await {
            Ok(result) => result,
            Err(e) => {
                eprintln!("bench: N={n}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let cold: Vec<&Sample> = result.samples.iter().filter(|s| s.cold).collect();
        let warm: Vec<&Sample> = result.samples.iter().filter(|s| !s.cold).collect();
        let inits = &result.inits;
        let init = json!({
            "processes": inits.len(),
            "init_ms": med(inits, |i| Some(i.init_ms)),
            "init_ms_max": max_of(inits, |i| i.init_ms),
            "init_cpu_s": med(inits, |i| Some(i.init_cpu_s)),
            "init_cpu_ms_schedstat": med(inits, |i| i.init_cpu_ms_precise),
            "rss_mib": med(inits, |i| Some(i.rss_kib as f64 / 1024.0)),
            "rss_anon_mib": med(inits, |i| Some(i.rss_anon_kib as f64 / 1024.0)),
            "peak_rss_mib": med(inits, |i| Some(i.peak_rss_kib as f64 / 1024.0)),
        });
        let row = (
            n,
            summarize(&args, &result, &cold),
            summarize(&args, &result, &warm),
            init,
        );
        eprintln!(
            "bench: N={n}: warm wall {} ms, peak RSS {} MiB, CPU {} s",
            fmt(&row.2, "wall_ms", 0),
            fmt(&row.2, "peak_rss_mib", 1),
            fmt(&row.2, "cpu_s", 2)
        );
        rows.push(row);
    }

    let mut binaries = vec![binary_info(&args.binary)];
    if let Some(lambda) = args.lambda.as_ref().filter(|p| p.is_file()) {
        binaries.push(binary_info(lambda));
    }
    let machine = machine();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\ndocker-pulls benchmark — {} on {} × {} (2 shared cores: function, fakes, moto and this bench)",
        machine["date"].as_str().unwrap_or(""),
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        text,
        "Hub latency {} ms, HUB_CONCURRENCY {}, images {}, pipeline {:?}, {} process(es) × (1 cold + {} warm)",
        args.latency_ms,
        args.concurrency,
        if args.images_in_event {
            "named in the event (no listing)"
        } else {
            "bench/* (paged listing, 100 a page)"
        },
        args.pipeline,
        args.processes,
        args.warm
    );
    if args.lambda_limits {
        let _ = writeln!(
            text,
            "function limited like a {} MB Lambda: {:.1} % of one CPU (cgroup cpu quota), {} MiB memory",
            args.memory_mb,
            f64::from(args.memory_mb) / MB_PER_VCPU * 100.0,
            args.memory_mb
        );
    }
    let _ = writeln!(
        text,
        "bound = ceil(N/{}) × {} ms (fetch); +listing adds ceil(N/100) sequential pages × {} ms\n",
        args.concurrency, args.latency_ms, args.latency_ms
    );
    text.push_str(&table(&args, &rows));
    for b in &binaries {
        let _ = writeln!(
            text,
            "binary {} ({}): {} bytes ({:.1} MiB)",
            b["path"].as_str().unwrap_or(""),
            b["arch"].as_str().unwrap_or("?"),
            b["bytes"],
            b["bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        );
    }
    println!("{text}");

    let json = json!({
        "machine": machine,
        "config": {
            "latency_ms": args.latency_ms,
            "hub_concurrency": args.concurrency,
            "processes": args.processes,
            "warm_invocations": args.warm,
            "images": if args.images_in_event { "event" } else { "listing" },
            "pipeline": args.pipeline,
            "memory_mb": args.memory_mb,
            "env": args.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "lambda_limits": args.lambda_limits.then(|| json!({
                "cpu_share": f64::from(args.memory_mb) / MB_PER_VCPU,
                "memory_limit_mb": args.memory_mb,
            })),
        },
        "binaries": binaries,
        "results": rows.iter().map(|(n, cold, warm, init)| {
            let b = bounds(&args, *n);
            json!({
                "n": n,
                "bound_fetch_ms": b.fetch_ms,
                "bound_with_listing_ms": b.fetch_ms + b.listing_ms,
                "listing_pages": b.listing_pages,
                "expected_hub_requests": n + b.listing_pages,
                "init": init, "cold": cold, "warm": warm,
            })
        }).collect::<Vec<_>>(),
    });
    println!("{json}");
    ExitCode::SUCCESS
}
