//! The benchmark: the real release binary under an emulated Lambda Runtime
//! API, against the fake Docker Hub, the fake Elasticsearch and moto's SSM.
//!
//! ```text
//! scripts/bench                       # builds, then runs this with defaults
//! target/release/examples/bench --binary target/release/docker-pulls \
//!     [--sizes 100,1000,5000] [--latency-ms 50] [--concurrency 32] \
//!     [--processes 3] [--warm 3] [--images listing|event] [--pipeline NAME] \
//!     [--memory-mb 128] [--lambda-limits] [--env KEY=VALUE]… \
//!     [--lambda target/lambda/docker-pulls/bootstrap] \
//!     [--namespace-counts details|listing] [--rate-limit 180] \
//!     [--timeout-s TEMPLATE_TIMEOUT] [--cover [--max-runs 50]]
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
//! As deployed, the function has an archive and spool bucket and a badge
//! bucket (`ARCHIVE_BUCKET` = `SPOOL_BUCKET`, `BADGE_BUCKET`, fresh in moto
//! for each N), with S3 reached through a relay that counts each request by
//! operation and key area (`PUT archive`, `LIST spool`, `PUT badges/repo`…).
//! The function's log gives each run's distinct EMF metrics and its bytes.
//! After the last process's runs the bench invokes `{"action":"compact"}`
//! for the runs' day and records its S3 requests. scripts/cost.py turns
//! these figures into a month's bill (docs/performance.md).
//! Each invocation's deadline is template.yaml's `Timeout` (`--timeout-s`
//! overrides), and the function gets `MAX_EVENT_AGE` of ten years so that
//! the events' past times, five minutes apart, are kept: the function
//! rotates its repository list by the event's time.
//!
//! `--namespace-counts listing` stores `dockerhub/namespace_counts` =
//! `listing` (counts from the listing pages, 100 repositories a request;
//! default `details`). `--rate-limit R` gives the fake Hub Docker Hub's API
//! rate limit, R requests per fixed one-minute window with `X-RateLimit-*`
//! on every answer and the API's 429 past it; a fresh window starts before
//! each run, as the five minutes between two scheduled runs would. Per run
//! the summary's `deferred`, `hub_requests`, `hub_rate_limited` and
//! `bulk_requests`, the 429s the fake served, and which repositories got a
//! document are recorded; `--cover` keeps invoking (after the warm runs, at
//! most `--max-runs` runs) until every repository has had a document once:
//! how many runs the rotation needs.
//!
//! `--lambda-limits` (root, cgroup v1) runs the function with the CPU share
//! Lambda gives `--memory-mb` (memory / 1,769 MB of one vCPU: 7.2 % at 128 MB)
//! and that memory limit, to see what the throttled CPU does to wall time.
//! It prints a table and, as its last stdout line, the figures as JSON.
//! It never judges the numbers; it fails only when the function does.
//!
//! **Drain mode** (`--drain`, or `--drain-backlog OBJECTS`) sizes the spool's
//! drain instead: it writes a backlog of OBJECTS spooled runs (default 288, a
//! day of five-minute runs) of `--docs-per-object` documents each (default
//! 1,000) to moto's S3, keys and bodies made by the function's own
//! `spool::object_key` and `spool::encode_object`, five minutes apart; then
//! it starts one function process with `SPOOL_BUCKET` and
//! `AWS_ENDPOINT_URL_S3` (through a timing relay) and invokes it with
//! scheduled events (`time` = now, a new second each run, `--drain-images`
//! repositories of its own, default 10) under a deadline of template.yaml's
//! `Timeout` (`--timeout-s` overrides) until `spool_backlog` is 0, at most
//! `--max-runs` (50) times, plus one run with the spool empty;
//! `--es-latency-ms` delays every answer of the fake Elasticsearch, like a
//! real cluster's `_bulk` round trip. Per run:
//! wall, the drain part (from its first S3 request to the response),
//! documents and objects drained, `_bulk` requests, peak RSS, CPU. It then
//! fails unless the fake Elasticsearch holds exactly the backlog and every
//! run's own documents (`_count`, and each backlog document by `_id` with its
//! original source) and the bucket is empty.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
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
use docker_pulls::config::DEFAULT_INDEX_PREFIX;
use docker_pulls::document::{Document, RepositoryStats, RunTime, index_name};
use docker_pulls::ndjson::BulkEntry;
use docker_pulls::spool;
use serde_json::{Value, json};
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, RequestKind};
use support::moto::Moto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const USAGE: &str = "usage: bench [--binary PATH] [--sizes 100,1000,5000] [--latency-ms 50] \
                     [--concurrency 32] [--processes 3] [--warm 3] [--images listing|event] \
                     [--pipeline none|NAME] [--memory-mb 128] [--lambda-limits] [--env KEY=VALUE] [--lambda BOOTSTRAP] \
                     [--namespace-counts details|listing] [--rate-limit PER_MINUTE] [--timeout-s TEMPLATE_TIMEOUT] \
                     [--cover [--max-runs 50]]\n\
                     drain mode: bench --drain [--drain-backlog 288] [--docs-per-object 1000] [--drain-images 10] \
                     [--timeout-s TEMPLATE_TIMEOUT] [--max-runs 50] [--es-latency-ms 0] [--latency-ms 50] [--lambda-limits]";

/// A day of five-minute runs: the backlog `--drain` builds by default.
const DEFAULT_BACKLOG_OBJECTS: usize = 288;

const SSM_PREFIX: &str = "/docker-pulls-bench";
const NAMESPACE: &str = "bench";
const INDEX: &str = "docker-pulls-2026";
/// Docker Hub's listing page size, as the function asks for it.
const PAGE_SIZE: usize = 100;
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
const REPOLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Docker Hub's rate-limit window ("per minute").
const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// `MAX_EVENT_AGE` for the function: the bench's event times are in the
/// past (five minutes apart, so each run rotates on), and must be taken as
/// they are rather than replaced by the time of the run.
const BENCH_MAX_EVENT_AGE_S: u64 = 10 * 365 * 86_400;

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
    /// Drain mode (`--drain`, `--drain-backlog`): a spool backlog of this
    /// many objects, drained by repeated runs.
    drain_objects: Option<usize>,
    /// Documents in each backlog object (one spooled run of N repositories).
    docs_per_object: usize,
    /// Repositories of each drain run's own image list.
    drain_images: usize,
    /// The invocation deadline in seconds; by default template.yaml's Timeout.
    timeout_s: Option<u64>,
    /// Drain runs to try before giving up.
    max_runs: usize,
    /// Drain mode: the fake Elasticsearch answers every request this late,
    /// like a real cluster's `_bulk` round trip.
    es_latency_ms: u64,
    /// `dockerhub/namespace_counts` in SSM: `details` or `listing`.
    namespace_counts: String,
    /// Docker Hub's API rate limit: this many requests per fixed window of
    /// a minute (`--rate-limit 180`); a new window starts before each run,
    /// as the five minutes between two scheduled runs would.
    rate_limit: Option<u32>,
    /// Keep invoking each process until every repository has had a
    /// document (or `max_runs` runs): how many runs the rotation needs.
    cover: bool,
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
        drain_objects: None,
        docs_per_object: 1000,
        drain_images: 10,
        timeout_s: None,
        max_runs: 50,
        es_latency_ms: 0,
        namespace_counts: "details".into(),
        rate_limit: None,
        cover: false,
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
            Long("drain") => {
                args.drain_objects.get_or_insert(DEFAULT_BACKLOG_OBJECTS);
            }
            Long("drain-backlog") => args.drain_objects = Some(parser.value()?.parse()?),
            Long("docs-per-object") => args.docs_per_object = parser.value()?.parse()?,
            Long("drain-images") => args.drain_images = parser.value()?.parse()?,
            Long("timeout-s") => args.timeout_s = Some(parser.value()?.parse()?),
            Long("max-runs") => args.max_runs = parser.value()?.parse()?,
            Long("es-latency-ms") => args.es_latency_ms = parser.value()?.parse()?,
            Long("namespace-counts") => {
                args.namespace_counts = match parser.value()?.string()?.as_str() {
                    mode @ ("details" | "listing") => mode.to_owned(),
                    other => {
                        return Err(
                            format!("--namespace-counts {other:?}: details or listing").into()
                        );
                    }
                }
            }
            Long("rate-limit") => {
                args.rate_limit = Some(parser.value()?.parse::<u32>()?).filter(|&r| r > 0);
            }
            Long("cover") => args.cover = true,
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
    if args.drain_objects == Some(0)
        || args.docs_per_object == 0
        || args.drain_images == 0
        || args.max_runs == 0
        || args.timeout_s == Some(0)
    {
        return Err(
            "--drain-backlog, --docs-per-object, --drain-images, --max-runs and --timeout-s need positive numbers"
                .into(),
        );
    }
    if args.drain_images > 99_999 {
        return Err("--drain-images goes up to 99999 (repo-00001…)".into());
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
    /// S3 requests by [`s3_request_class`] (only the S3 relay sees any).
    s3_requests: BTreeMap<String, u64>,
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
                if let Some(class) = s3_request_class(&buffer[..n]) {
                    *s.s3_requests.entry(class).or_default() += 1;
                }
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

/// The bench's bucket for the archive and the spool (one bucket, as in
/// template.yaml) and its badge bucket, per size N.
fn archive_bucket(n: usize) -> String {
    format!("docker-pulls-bench-{n}")
}

fn badge_bucket(n: usize) -> String {
    format!("docker-pulls-bench-badges-{n}")
}

/// What an S3 request is, for the cost model (scripts/cost.py): its
/// operation (`PUT`, `GET`, `HEAD`, `DELETE`, `POST`, or `LIST` for a GET of
/// the bucket itself) and the area it touches: the key's (or the listing
/// prefix's) first segment (`archive`, `archive-pending`, `parquet`,
/// `parquet-due`, `spool`, `alerts`), with `badges/` split into
/// `badges/index` (index.json, index.html) and `badges/repo` (one
/// repository's badge). `None` for anything that is not a path-style
/// request to a bench bucket.
fn s3_request_class(chunk: &[u8]) -> Option<String> {
    let line_end = chunk.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&chunk[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let rest = target.strip_prefix("/docker-pulls-bench-")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let key = path.split_once('/').map_or("", |(_, key)| key);
    let (op, key) = if key.is_empty() {
        let prefix = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("prefix="))
            .unwrap_or("");
        let op = if method == "GET" { "LIST" } else { method };
        (op, support::fake_es::percent_decode(prefix, false))
    } else {
        (method, support::fake_es::percent_decode(key, false))
    };
    let area = match key.split_once('/') {
        Some(("badges", "index.json" | "index.html")) => "badges/index",
        Some(("badges", rest)) if !rest.is_empty() => "badges/repo",
        Some((first, _)) => first,
        None => key.as_str(),
    }
    .to_owned();
    Some(format!("{op} {area}"))
}

/// What the function's log says about one run: the distinct EMF metrics
/// (namespace, name and dimension values: each is a CloudWatch custom
/// metric) and the bytes it wrote (what CloudWatch Logs ingests).
#[derive(Debug, Clone, Default)]
struct LogFigures {
    emf_metrics: BTreeSet<String>,
    bytes: u64,
}

/// Reads `log` from `offset` on (advancing it): the run's [`LogFigures`].
fn read_log_figures(log: &Path, offset: &mut u64) -> LogFigures {
    let text = std::fs::read(log).unwrap_or_default();
    let start = (*offset as usize).min(text.len());
    let new = &text[start..];
    *offset = text.len() as u64;
    let mut figures = LogFigures {
        bytes: new.len() as u64,
        ..LogFigures::default()
    };
    for line in String::from_utf8_lossy(new).lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // Under AWS_LAMBDA_LOG_FORMAT=JSON an EMF record is the line itself.
        let Some(directives) = record["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        for directive in directives {
            let namespace = directive["Namespace"].as_str().unwrap_or("");
            let dimension_sets = directive["Dimensions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let name = metric["Name"].as_str().unwrap_or("");
                for set in &dimension_sets {
                    let dims: Vec<String> = set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|d| format!("{d}={}", record[d].as_str().unwrap_or("")))
                        .collect();
                    figures
                        .emf_metrics
                        .insert(format!("{namespace}/{name}[{}]", dims.join(",")));
                }
            }
        }
    }
    figures
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

impl Limits {
    fn memory_dir(&self) -> Option<&PathBuf> {
        self.dirs
            .iter()
            .find(|dir| dir.starts_with("/sys/fs/cgroup/memory"))
    }

    /// Starts the memory cgroup's peak (`memory.max_usage_in_bytes`) afresh.
    fn reset_memory_peak(&self) {
        if let Some(dir) = self.memory_dir() {
            let _ = std::fs::write(dir.join("memory.max_usage_in_bytes"), "0");
        }
    }

    /// The memory cgroup's peak since the last reset: what the 128 MiB limit
    /// is held against (RSS and any page cache the process caused).
    fn memory_peak_bytes(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.memory_dir()?.join("memory.max_usage_in_bytes"));
        text.ok()?.trim().parse().ok()
    }

    /// How often the memory limit was hit (`memory.failcnt`).
    fn memory_failures(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.memory_dir()?.join("memory.failcnt"));
        text.ok()?.trim().parse().ok()
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
    /// moto's S3, for the archive, spool and badge buckets of a run.
    s3_relay: Relay,
    http: reqwest::Client,
}

/// moto's address, for a relay in front of it.
fn moto_addr(moto: &Moto) -> Result<SocketAddr, String> {
    moto.endpoint_url()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("moto endpoint {}: {e}", moto.endpoint_url()))
}

impl Stand {
    /// A fresh fake Hub with `repositories` synthetic repositories, a fresh
    /// fake Elasticsearch, relays in front of them and of moto, and the
    /// function's settings in moto's SSM.
    async fn start(
        args: &Args,
        moto: &Moto,
        repositories: usize,
        images: &str,
    ) -> Result<Self, String> {
        let hub = FakeHub::start_on(0)
            .await
            .map_err(|e| format!("fake Docker Hub: {e}"))?;
        hub.add_synthetic_repos(NAMESPACE, repositories);
        hub.set_latency(Duration::from_millis(args.latency_ms));
        if let Some(limit) = args.rate_limit {
            hub.limit_requests(limit, RATE_LIMIT_WINDOW);
        }
        let es = FakeEs::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("fake Elasticsearch: {e}"))?;
        let relay =
            |addr| async move { Relay::start(addr).await.map_err(|e| format!("relay: {e}")) };
        let stand = Stand {
            hub_relay: relay(hub.addr()).await?,
            es_relay: relay(es.addr()).await?,
            ssm_relay: relay(moto_addr(moto)?).await?,
            s3_relay: relay(moto_addr(moto)?).await?,
            hub,
            es,
            http: reqwest::Client::new(),
        };
        for (name, value) in [
            ("images", images),
            ("elasticsearch/url", stand.es_relay.url.as_str()),
            ("elasticsearch/pipeline", args.pipeline.as_str()),
            ("dockerhub/namespace_counts", args.namespace_counts.as_str()),
        ] {
            moto.put(
                &format!("{SSM_PREFIX}/{name}"),
                value,
                ParameterType::String,
            )
            .await;
        }
        Ok(stand)
    }
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
    /// The summary's `deferred`, `hub_requests`, `hub_rate_limited` and
    /// `bulk_requests`.
    deferred: u64,
    summary_hub_requests: u64,
    summary_rate_limited: u64,
    summary_bulk_requests: u64,
    /// 429s the fake Hub answered in this run.
    hub_429: u64,
    /// The run's deadline, in seconds from the hand-out.
    budget_s: u64,
    /// Repositories with a document in this run, and with one in this or an
    /// earlier run of the process.
    repositories: Vec<String>,
    covered_so_far: usize,
    /// S3 requests by [`s3_request_class`].
    s3_requests: BTreeMap<String, u64>,
    /// What the run wrote to its log.
    log: LogFigures,
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
    /// The `compact` invocation after the last process's runs.
    compaction: Option<Value>,
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
    let images = if args.images_in_event {
        // Not used by the run (the event names the images), but required.
        format!("{NAMESPACE}/repo-00001")
    } else {
        format!("{NAMESPACE}/*")
    };
    let stand = Stand::start(args, moto, n, &images).await?;
    // As deployed: the archive and the spool share a bucket, badges have
    // their own; fresh ones per size, so the compaction reads this size's.
    moto.create_bucket(&archive_bucket(n)).await;
    moto.create_bucket(&badge_bucket(n)).await;

    let mut result = SizeResult {
        n,
        samples: Vec::new(),
        inits: Vec::new(),
        compaction: None,
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
    let mut command = function_command(args, emulator.addr, stand, &log)?;
    command
        .env("ARCHIVE_BUCKET", archive_bucket(n))
        .env("SPOOL_BUCKET", archive_bucket(n))
        .env("BADGE_BUCKET", badge_bucket(n))
        .env("AWS_ENDPOINT_URL_S3", &stand.s3_relay.url);
    let mut log_offset = 0;
    let limits_name = format!("docker-pulls-bench-{}-{n}-{process}", std::process::id());
    let (limits, mut child, pid, spawned) = spawn_function(args, &mut command, &limits_name)?;
    let fail = |what: String| with_log_tail(what, &log);

    let init = await_init(&mut emulator, pid, spawned, ticks)
        .await
        .map_err(fail)?;
    result.inits.push(init);
    read_log_figures(&log, &mut log_offset);

    let mut covered = BTreeSet::new();
    let mut invocation = 0;
    loop {
        let more = if args.cover {
            (covered.len() < n || invocation <= args.warm) && invocation < args.max_runs.max(1)
        } else {
            invocation <= args.warm
        };
        if !more {
            break;
        }
        *sequence += 1;
        let mut sample = invoke(args, stand, &mut emulator, pid, n, ticks, *sequence)
            .await
            .map_err(fail)?;
        sample.log = read_log_figures(&log, &mut log_offset);
        covered.extend(sample.repositories.iter().cloned());
        eprintln!(
            "bench: N={n} run {}: wall {:.0} ms, {} documents, {} deferred, {} Hub requests, {} 429s, covered {}/{n}",
            invocation + 1,
            sample.wall_ms,
            sample.documents,
            sample.deferred,
            sample.summary_hub_requests,
            sample.hub_429,
            covered.len()
        );
        result.samples.push(Sample {
            cold: invocation == 0,
            covered_so_far: covered.len(),
            ..sample
        });
        invocation += 1;
    }
    if process + 1 == args.processes {
        let compaction = compact(stand, &mut emulator, *sequence)
            .await
            .map_err(fail)?;
        result.compaction = Some(compaction);
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    drop(limits);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// The function's command line: the release binary under the emulator at
/// `runtime_api`, with Lambda's variables and the stand's services, in an
/// otherwise empty environment; its output goes to `log`.
fn function_command(
    args: &Args,
    runtime_api: SocketAddr,
    stand: &Stand,
    log: &Path,
) -> Result<tokio::process::Command, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(&args.binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
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
        .env("MAX_EVENT_AGE", BENCH_MAX_EVENT_AGE_S.to_string())
        .envs(args.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true);
    Ok(command)
}

/// The last lines of the function's log, after `what` went wrong.
/// Starts the function (under `--lambda-limits`, in a cgroup named
/// `limits_name`): its limits, the child, its pid and when it was spawned.
fn spawn_function(
    args: &Args,
    command: &mut tokio::process::Command,
    limits_name: &str,
) -> Result<(Option<Limits>, tokio::process::Child, u32, Instant), String> {
    let limits = if args.lambda_limits {
        let limits = Limits::create(args.memory_mb, limits_name)?;
        limits.apply(command)?;
        Some(limits)
    } else {
        None
    };
    let spawned = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", args.binary.display()))?;
    let pid = child.id().ok_or("the function exited at once")?;
    Ok((limits, child, pid, spawned))
}

fn with_log_tail(what: String, log: &Path) -> String {
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("{what}\nfunction log ({}):\n{tail}", log.display())
}

/// Waits for the function's first `/next` poll: the end of its init.
async fn await_init(
    emulator: &mut Emulator,
    pid: u32,
    spawned: Instant,
    ticks: u64,
) -> Result<Init, String> {
    let polled = match emulator.note(INIT_TIMEOUT, "first /next poll").await? {
        Note::Polled(at) => at,
        Note::InitError(body) => {
            return Err(format!("init error: {}", String::from_utf8_lossy(&body)));
        }
        other => return Err(format!("unexpected before init: {other:?}")),
    };
    Ok(Init {
        init_ms: ms(spawned, polled),
        init_cpu_s: cpu_ticks(pid).unwrap_or(0) as f64 / ticks as f64,
        init_cpu_ms_precise: cpu_ns(pid).map(|ns| ns as f64 / 1e6),
        rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        rss_anon_kib: status_kib(pid, "RssAnon").unwrap_or(0),
        peak_rss_kib: status_kib(pid, "VmHWM").unwrap_or(0),
    })
}

/// One invocation as the Runtime API sees it.
struct Exchange {
    /// When `/next` answered with the event.
    handed_out: Instant,
    /// When the function POSTed its response.
    responded: Instant,
    body: Bytes,
}

/// Hands `event` out with a deadline `budget` from now, waits for the
/// response (at most `response_timeout`) and for the function to poll
/// `/next` again. An `/error` POST is an error naming what the function said.
async fn exchange(
    emulator: &mut Emulator,
    id: &str,
    event: String,
    budget: Duration,
    response_timeout: Duration,
) -> Result<Exchange, String> {
    emulator
        .events
        .send(Invocation {
            id: id.to_owned(),
            body: event,
            deadline_ms: unix_millis() + budget.as_millis() as u64,
        })
        .map_err(|_| "runtime emulator stopped")?;
    let handed_out = match emulator.note(INIT_TIMEOUT, "event hand-out").await? {
        Note::HandedOut(got, at) if got == id => at,
        other => return Err(format!("expected the hand-out of {id}, got {other:?}")),
    };
    let (responded, body) = match emulator.note(response_timeout, "response").await? {
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
    Ok(Exchange {
        handed_out,
        responded,
        body,
    })
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
    let time = run_time(sequence)?
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
    // A scheduled run starts five minutes after the last: a fresh window.
    stand.hub.next_window();
    let rejected_before = stand.hub.rate_limited();
    let budget_s = args.timeout_s.unwrap_or(120);
    stand.es.clear_requests();
    for relay in [
        &stand.hub_relay,
        &stand.es_relay,
        &stand.ssm_relay,
        &stand.s3_relay,
    ] {
        relay.reset();
    }
    if !reset_peak_rss(pid) {
        return Err("cannot reset the peak RSS through /proc/PID/clear_refs".into());
    }
    let cpu_before = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
    let ns_before = cpu_ns(pid);
    let bench_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let Exchange {
        handed_out,
        responded,
        body,
    } = exchange(
        emulator,
        &id,
        event.to_string(),
        Duration::from_secs(budget_s),
        INVOKE_TIMEOUT.max(Duration::from_secs(budget_s + 60)),
    )
    .await?;
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
    let repositories: Vec<String> = stand
        .es
        .documents(INDEX)
        .into_iter()
        .filter_map(|(id, _)| Some(id.split_once('@')?.0.to_owned()))
        .collect();
    let hub_429 = stand.hub.rate_limited().saturating_sub(rejected_before);
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
        deferred: count("deferred"),
        summary_hub_requests: count("hub_requests"),
        summary_rate_limited: count("hub_rate_limited"),
        summary_bulk_requests: count("bulk_requests"),
        hub_429,
        budget_s,
        repositories,
        s3_requests: stand.s3_relay.stamps().s3_requests,
        ..Sample::default()
    })
}

/// The run time of the bench's `sequence`-th invocation: five minutes apart
/// from a fixed day, so every run writes new documents.
fn run_time(sequence: u64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(1_795_132_800 + sequence as i64 * 300)
        .map_err(|e| e.to_string())
}

/// The daily `{"action":"compact"}` for the day of the last run: its S3
/// requests by class and its summary. It reads every archive object this
/// size's runs wrote (one per run), which scripts/cost.py scales to a
/// day's 288.
async fn compact(stand: &Stand, emulator: &mut Emulator, sequence: u64) -> Result<Value, String> {
    let day = run_time(sequence)?.date();
    let day = format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    stand.s3_relay.reset();
    let Exchange {
        handed_out,
        responded,
        body,
    } = exchange(
        emulator,
        &format!("00000000-0000-4000-9000-{sequence:012}"),
        json!({"action": "compact", "day": day}).to_string(),
        Duration::from_secs(900),
        INVOKE_TIMEOUT,
    )
    .await?;
    let summary: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("compact response is not JSON ({e}): {body:?}"))?;
    Ok(json!({
        "day": day,
        "wall_ms": round1(ms(handed_out, responded)),
        "s3_requests": stand.s3_relay.stamps().s3_requests,
        "summary": summary,
    }))
}

// ---- drain mode ------------------------------------------------------------

/// The spool bucket of drain mode (in moto).
const SPOOL_BUCKET: &str = "docker-pulls-bench-spool";
/// Backlog objects uploaded at once.
const UPLOAD_CONCURRENCY: usize = 8;
/// The schedule: a run every five minutes.
const RUN_INTERVAL_S: i64 = 300;

/// The function's `Timeout` in template.yaml: the deadline Lambda gives.
fn template_timeout_s() -> Result<u64, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let timeout = |value: Option<&serde_norway::Value>| value?.get("Timeout")?.as_u64();
    let functions = yaml
        .get("Resources")
        .and_then(serde_norway::Value::as_mapping)
        .into_iter()
        .flat_map(|resources| resources.values())
        .filter(|resource| {
            resource.get("Type").and_then(serde_norway::Value::as_str)
                == Some("AWS::Serverless::Function")
        });
    for function in functions {
        if let Some(seconds) = timeout(function.get("Properties")) {
            return Ok(seconds);
        }
    }
    timeout(yaml.get("Globals").and_then(|g| g.get("Function")))
        .ok_or_else(|| format!("{}: no Timeout for the function", path.display()))
}

fn unix_seconds() -> i64 {
    (unix_millis() / 1000) as i64
}

fn rfc3339(unix_seconds: i64) -> Result<String, String> {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map_err(|e| e.to_string())?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())
}

/// The time of backlog object `k` (0 is the oldest) of `objects`: five
/// minutes apart, the newest five minutes before `now`.
fn backlog_time(now: i64, objects: usize, k: usize) -> Result<RunTime, String> {
    let at = now - (objects - k) as i64 * RUN_INTERVAL_S;
    RunTime::parse(&rfc3339(at)?).map_err(|e| e.to_string())
}

/// The documents of backlog object `k`: one run of `repositories`
/// repositories at `time` that Elasticsearch did not take, built with the
/// function's own types so the format cannot drift from what it spools.
fn backlog_entries(time: &RunTime, repositories: usize, k: usize) -> Vec<BulkEntry> {
    let index = index_name(DEFAULT_INDEX_PREFIX, time);
    (1..=repositories)
        .map(|i| {
            let i = i as u64;
            let document = Document {
                timestamp: *time,
                stats: RepositoryStats {
                    namespace: NAMESPACE.into(),
                    name: format!("repo-{i:05}"),
                    pull_count: 1_000 * i + k as u64,
                    star_count: i % 50,
                    collaborator_count: Some(i % 3),
                },
            };
            BulkEntry::new(&index, &document)
        })
        .collect()
}

/// Every key in the spool bucket, `spool/rejected/` included.
async fn bucket_keys(s3: &aws_sdk_s3::Client) -> Result<Vec<String>, String> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(SPOOL_BUCKET)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "listing s3://{SPOOL_BUCKET}/: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

/// Writes the backlog to the spool bucket as the function would have:
/// `objects` runs, keys from `spool::object_key`, bodies from
/// `spool::encode_object`. Returns the bytes written.
async fn upload_backlog(
    s3: &aws_sdk_s3::Client,
    now: i64,
    objects: usize,
    docs_per_object: usize,
) -> Result<u64, String> {
    use futures_util::StreamExt as _;
    let uploads = futures_util::stream::iter(0..objects)
        .map(|k| async move {
            let time = backlog_time(now, objects, k)?;
            let body = spool::encode_object(&backlog_entries(&time, docs_per_object, k));
            let bytes = body.len() as u64;
            let key = spool::object_key(&time);
            s3.put_object()
                .bucket(SPOOL_BUCKET)
                .key(&key)
                .content_type("application/x-ndjson")
                .body(body.into())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "writing s3://{SPOOL_BUCKET}/{key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )
                })?;
            Ok::<u64, String>(bytes)
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    uploads.into_iter().sum()
}

/// The next run's time: now, to the second, later than the last run's.
async fn next_run_time(last: &mut i64) -> Result<String, String> {
    loop {
        let now = unix_seconds();
        if now > *last {
            *last = now;
            return rfc3339(now);
        }
        tokio::time::sleep(Duration::from_millis(1000 - unix_millis() % 1000)).await;
    }
}

/// One run of drain mode.
#[derive(Debug, Clone, Default)]
struct DrainRun {
    /// The run after the spool was empty: what a run costs without a backlog.
    baseline: bool,
    /// The summary's `timestamp` and `index`.
    timestamp: String,
    index: String,
    wall_ms: f64,
    /// From the drain's first S3 request (its listing) to the response.
    drain_ms: Option<f64>,
    indexed: u64,
    already_indexed: u64,
    drained: u64,
    spool_backlog: u64,
    /// Backlog objects gone in this run (the backlog before minus after).
    objects_drained: u64,
    spooled: u64,
    rejected: u64,
    deferred: u64,
    failed: u64,
    summary_bulk_requests: u64,
    /// `_bulk` requests the fake Elasticsearch received.
    bulk_requests: usize,
    bulk_bytes_up: u64,
    s3_bytes_down: u64,
    s3_connections: u64,
    peak_rss_kib: u64,
    rss_after_kib: u64,
    rss_anon_kib: u64,
    cpu_s: f64,
    cpu_ms_precise: Option<f64>,
    /// `--lambda-limits`: the memory cgroup's peak and its limit hits.
    cgroup_peak_bytes: Option<u64>,
    cgroup_failures: Option<u64>,
}

impl DrainRun {
    fn docs_per_s(&self) -> Option<f64> {
        if self.drained == 0 {
            return None;
        }
        let drain_ms = self.drain_ms.filter(|&ms| ms > 0.0)?;
        Some(self.drained as f64 / drain_ms * 1000.0)
    }
}

/// The services of drain mode: the usual stand, a relay in front of moto's
/// S3 (timing the drain) and the function's process.
struct DrainStand<'a> {
    stand: &'a Stand,
    s3_relay: &'a Relay,
    emulator: Emulator,
    pid: u32,
    limits: Option<&'a Limits>,
    budget: Duration,
    ticks: u64,
}

impl DrainStand<'_> {
    async fn invoke(&mut self, time: &str, sequence: u64) -> Result<DrainRun, String> {
        let stand = self.stand;
        let pid = self.pid;
        let id = format!("00000000-0000-4000-8000-{sequence:012}");
        let event = json!({
            "version": "0", "id": id, "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": time,
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/docker-pulls-bench"],
            "detail": {}
        });
        stand.hub.reset_stats();
        stand.es.clear_requests();
        for relay in [
            &stand.hub_relay,
            &stand.es_relay,
            &stand.ssm_relay,
            self.s3_relay,
        ] {
            relay.reset();
        }
        if !reset_peak_rss(pid) {
            return Err("cannot reset the peak RSS through /proc/PID/clear_refs".into());
        }
        if let Some(limits) = self.limits {
            limits.reset_memory_peak();
        }
        let cpu_before = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
        let ns_before = cpu_ns(pid);
        let Exchange {
            handed_out,
            responded,
            body,
        } = exchange(
            &mut self.emulator,
            &id,
            event.to_string(),
            self.budget,
            self.budget + Duration::from_secs(30),
        )
        .await?;
        let cpu_after = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
        let ns_after = cpu_ns(pid);
        let summary: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("response is not JSON ({e}): {body:?}"))?;
        let count = |key: &str| summary.get(key).and_then(Value::as_u64).unwrap_or(0);
        let text = |key: &str| {
            summary
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let s3 = self.s3_relay.stamps();
        let es = stand.es_relay.stamps();
        Ok(DrainRun {
            timestamp: text("timestamp"),
            index: text("index"),
            wall_ms: ms(handed_out, responded),
            drain_ms: span(s3.first_up, Some(responded)),
            indexed: count("indexed"),
            already_indexed: count("already_indexed"),
            drained: count("drained"),
            spool_backlog: count("spool_backlog"),
            spooled: count("spooled"),
            rejected: count("rejected"),
            deferred: count("deferred"),
            failed: summary
                .get("failed")
                .and_then(Value::as_array)
                .map_or(0, |f| f.len() as u64),
            summary_bulk_requests: count("bulk_requests"),
            bulk_requests: stand.es.bulk_request_count(),
            bulk_bytes_up: es.bytes_up,
            s3_bytes_down: s3.bytes_down,
            s3_connections: s3.connections,
            peak_rss_kib: status_kib(pid, "VmHWM").unwrap_or(0),
            rss_after_kib: status_kib(pid, "VmRSS").unwrap_or(0),
            rss_anon_kib: status_kib(pid, "RssAnon").unwrap_or(0),
            cpu_s: cpu_after.saturating_sub(cpu_before) as f64 / self.ticks as f64,
            cpu_ms_precise: ns_before
                .zip(ns_after)
                .map(|(before, after)| after.saturating_sub(before) as f64 / 1e6),
            cgroup_peak_bytes: self.limits.and_then(Limits::memory_peak_bytes),
            cgroup_failures: self.limits.and_then(Limits::memory_failures),
            ..DrainRun::default()
        })
    }
}

/// What drain mode measured and checked.
struct DrainReport {
    objects: usize,
    backlog_documents: u64,
    backlog_bytes: u64,
    upload_s: f64,
    timeout_s: u64,
    init: Init,
    runs: Vec<DrainRun>,
    /// `GET docker-pulls-*/_count` at the end, and what it must be.
    count: u64,
    expected_count: u64,
    /// Backlog documents absent, or present with another source.
    backlog_missing: u64,
    backlog_altered: u64,
    /// The runs' own documents absent.
    own_missing: u64,
    /// Keys left in the bucket at the end (`spool/rejected/` included).
    bucket_left: usize,
    /// Everything that makes the bench fail.
    problems: Vec<String>,
}

/// Drain mode: a backlog of `--drain-backlog` objects in the spool bucket,
/// then scheduled runs of the function until the backlog is gone, and one
/// more with an empty spool; then every document is checked in the fake
/// Elasticsearch.
async fn run_drain(args: &Args, moto: &Moto, ticks: u64) -> Result<DrainReport, String> {
    let objects = args.drain_objects.unwrap_or(DEFAULT_BACKLOG_OBJECTS);
    let docs_per_object = args.docs_per_object;
    let timeout_s = match args.timeout_s {
        Some(seconds) => seconds,
        None => template_timeout_s()?,
    };
    let stand = Stand::start(args, moto, args.drain_images, &format!("{NAMESPACE}/*")).await?;
    stand
        .es
        .delay_responses(Duration::from_millis(args.es_latency_ms));
    let s3_relay = Relay::start(moto_addr(moto)?)
        .await
        .map_err(|e| format!("relay: {e}"))?;
    moto.create_bucket(SPOOL_BUCKET).await;
    let s3 = moto.s3_client().await;

    let now = unix_seconds();
    eprintln!(
        "bench: drain: writing a backlog of {objects} objects × {docs_per_object} documents to s3://{SPOOL_BUCKET}/spool/…"
    );
    let upload_started = Instant::now();
    let backlog_bytes = upload_backlog(&s3, now, objects, docs_per_object).await?;
    let upload_s = upload_started.elapsed().as_secs_f64();
    let waiting = bucket_keys(&s3).await?.len();
    if waiting != objects {
        return Err(format!(
            "wrote {objects} backlog objects, but the bucket lists {waiting}"
        ));
    }

    let emulator = Emulator::start()
        .await
        .map_err(|e| format!("runtime emulator: {e}"))?;
    let name = format!("docker-pulls-bench-{}-drain", std::process::id());
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let mut command = function_command(args, emulator.addr, &stand, &log)?;
    command
        .env("SPOOL_BUCKET", SPOOL_BUCKET)
        .env("AWS_ENDPOINT_URL_S3", &s3_relay.url);
    let (limits, mut child, pid, spawned) = spawn_function(args, &mut command, &name)?;
    let fail = |what: String| with_log_tail(what, &log);
    let mut drain = DrainStand {
        stand: &stand,
        s3_relay: &s3_relay,
        emulator,
        pid,
        limits: limits.as_ref(),
        budget: Duration::from_secs(timeout_s),
        ticks,
    };
    let init = await_init(&mut drain.emulator, pid, spawned, ticks)
        .await
        .map_err(fail)?;

    let mut runs: Vec<DrainRun> = Vec::new();
    let mut problems = Vec::new();
    let mut backlog = objects as u64;
    let mut last_time = now;
    let mut drained_out = false;
    loop {
        let time = next_run_time(&mut last_time).await?;
        let sequence = runs.len() as u64 + 1;
        let mut run = drain.invoke(&time, sequence).await.map_err(fail)?;
        run.baseline = drained_out;
        run.objects_drained = backlog.saturating_sub(run.spool_backlog);
        backlog = run.spool_backlog;
        let label = if run.baseline {
            "after the drain".to_owned()
        } else {
            format!("run {sequence}")
        };
        eprintln!(
            "bench: drain: {label}: {} ms, drained {} documents ({} objects), backlog {}, peak RSS {:.1} MiB",
            run.wall_ms.round(),
            run.drained,
            run.objects_drained,
            run.spool_backlog,
            run.peak_rss_kib as f64 / 1024.0
        );
        if run.failed > 0 || run.deferred > 0 {
            problems.push(format!(
                "{label}: {} image(s) failed, {} deferred",
                run.failed, run.deferred
            ));
        }
        if run.indexed + run.already_indexed != args.drain_images as u64 {
            problems.push(format!(
                "{label}: indexed {} of its {} documents",
                run.indexed + run.already_indexed,
                args.drain_images
            ));
        }
        if run.spooled > 0 || run.rejected > 0 {
            problems.push(format!(
                "{label}: spooled {} and rejected {} documents",
                run.spooled, run.rejected
            ));
        }
        let baseline = run.baseline;
        runs.push(run);
        if baseline {
            break;
        }
        if backlog == 0 {
            drained_out = true;
        } else if runs.len() >= args.max_runs {
            problems.push(format!(
                "the backlog was not drained in {} runs: {backlog} objects still waiting",
                runs.len()
            ));
            break;
        }
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    drop(drain);
    drop(limits);

    // Nothing lost, nothing duplicated: the index holds exactly the backlog
    // and every run's own documents, each with its original source.
    stand.es.delay_responses(Duration::ZERO);
    let backlog_documents = (objects * docs_per_object) as u64;
    let expected_count = backlog_documents + runs.len() as u64 * args.drain_images as u64;
    let count = stand
        .http
        .get(format!(
            "{}/{DEFAULT_INDEX_PREFIX}-*/_count",
            stand.es.url()
        ))
        .send()
        .await
        .map_err(|e| format!("_count: {e}"))?
        .json::<Value>()
        .await
        .map_err(|e| format!("_count: {e}"))?
        .get("count")
        .and_then(Value::as_u64)
        .ok_or("_count: no count in the answer")?;
    if count != expected_count {
        problems.push(format!(
            "{DEFAULT_INDEX_PREFIX}-*/_count is {count}, expected {expected_count} ({backlog_documents} backlog + {} runs × {} own documents)",
            runs.len(),
            args.drain_images
        ));
    }
    let drained: u64 = runs.iter().map(|r| r.drained).sum();
    if drained != backlog_documents {
        problems.push(format!(
            "the runs report {drained} documents drained, the backlog had {backlog_documents}"
        ));
    }
    let (mut backlog_missing, mut backlog_altered) = (0, 0);
    for k in 0..objects {
        let time = backlog_time(now, objects, k)?;
        for entry in backlog_entries(&time, docs_per_object, k) {
            match stand.es.document(&entry.index, &entry.id) {
                None => backlog_missing += 1,
                Some(source) => {
                    if serde_json::from_str::<Value>(&entry.source).ok() != Some(source) {
                        backlog_altered += 1;
                    }
                }
            }
        }
    }
    if backlog_missing + backlog_altered > 0 {
        problems.push(format!(
            "{backlog_missing} backlog documents missing and {backlog_altered} altered in Elasticsearch"
        ));
    }
    let mut own_missing = 0;
    for run in &runs {
        for i in 1..=args.drain_images {
            let id = format!("{NAMESPACE}/repo-{i:05}@{}", run.timestamp);
            if stand.es.document(&run.index, &id).is_none() {
                own_missing += 1;
            }
        }
    }
    if own_missing > 0 {
        problems.push(format!(
            "{own_missing} of the runs' own documents missing in Elasticsearch"
        ));
    }
    let left = bucket_keys(&s3).await?;
    if !left.is_empty() {
        problems.push(format!(
            "{} objects left in s3://{SPOOL_BUCKET}/, first {}",
            left.len(),
            left[0]
        ));
    }
    if problems.is_empty() {
        let _ = std::fs::remove_file(&log);
    } else {
        problems.push(format!("function log: {}", log.display()));
    }
    Ok(DrainReport {
        objects,
        backlog_documents,
        backlog_bytes,
        upload_s,
        timeout_s,
        init,
        runs,
        count,
        expected_count,
        backlog_missing,
        backlog_altered,
        own_missing,
        bucket_left: left.len(),
        problems,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The report's totals over the drain runs (the baseline run excluded).
fn drain_totals(args: &Args, report: &DrainReport) -> Value {
    let draining: Vec<&DrainRun> = report.runs.iter().filter(|r| !r.baseline).collect();
    let drained: u64 = draining.iter().map(|r| r.drained).sum();
    let drain_ms: f64 = draining.iter().filter_map(|r| r.drain_ms).sum();
    let wall_ms: f64 = draining.iter().map(|r| r.wall_ms).sum();
    let peak_rss_kib = draining.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    let cgroup_peak = draining.iter().filter_map(|r| r.cgroup_peak_bytes).max();
    let drained_out = report.runs.last().is_some_and(|r| r.baseline);
    json!({
        "drained": drained_out,
        "runs_to_drain": draining.len(),
        "objects_per_run": round1(report.objects as f64 / draining.len().max(1) as f64),
        "documents_drained": drained,
        "drain_s": round1(drain_ms / 1000.0),
        "wall_s": round1(wall_ms / 1000.0),
        "documents_per_s": (drain_ms > 0.0).then(|| (drained as f64 / drain_ms * 1000.0).round()),
        "objects_per_s": (drain_ms > 0.0).then(|| round1(report.objects as f64 / drain_ms * 1000.0)),
        "bulk_requests": draining.iter().map(|r| r.bulk_requests).sum::<usize>(),
        "peak_rss_mib_max": round1(peak_rss_kib as f64 / 1024.0),
        "peak_rss_share_of_memory": (peak_rss_kib as f64 / 1024.0 / f64::from(args.memory_mb) * 1000.0).round() / 1000.0,
        "cgroup_peak_mib_max": cgroup_peak.map(|b| round1(mib(b))),
        "cpu_s": draining.iter().map(|r| r.cpu_s).sum::<f64>(),
    })
}

fn drain_table(report: &DrainReport) -> String {
    let limited = report.runs.iter().any(|r| r.cgroup_peak_bytes.is_some());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| run | wall ms | drain ms | own docs | drained docs | objects drained | backlog after | docs/s drained | _bulk | peak RSS MiB | RSS after MiB (anon) | CPU s (schedstat ms) | S3 MiB read |{}",
        if limited { " cgroup peak MiB |" } else { "" }
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if limited { "---:|" } else { "" }
    );
    for (i, run) in report.runs.iter().enumerate() {
        let label = if run.baseline {
            "after (empty spool)".to_owned()
        } else {
            format!("{}{}", i + 1, if i == 0 { " (cold)" } else { "" })
        };
        let optional =
            |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} ({:.1}) | {:.2} ({}) | {:.1} |{}",
            run.wall_ms,
            optional(run.drain_ms, 0),
            run.indexed + run.already_indexed,
            run.drained,
            run.objects_drained,
            run.spool_backlog,
            optional(run.docs_per_s(), 0),
            run.bulk_requests,
            run.peak_rss_kib as f64 / 1024.0,
            run.rss_after_kib as f64 / 1024.0,
            run.rss_anon_kib as f64 / 1024.0,
            run.cpu_s,
            optional(run.cpu_ms_precise, 0),
            mib(run.s3_bytes_down),
            if limited {
                format!(" {} |", optional(run.cgroup_peak_bytes.map(mib), 1))
            } else {
                String::new()
            }
        );
    }
    out
}

fn drain_run_json(run: &DrainRun) -> Value {
    json!({
        "baseline": run.baseline,
        "timestamp": run.timestamp,
        "wall_ms": round1(run.wall_ms),
        "drain_ms": run.drain_ms.map(round1),
        "own_documents": run.indexed + run.already_indexed,
        "drained": run.drained,
        "objects_drained": run.objects_drained,
        "spool_backlog": run.spool_backlog,
        "documents_per_s": run.docs_per_s().map(f64::round),
        "bulk_requests": run.bulk_requests,
        "summary_bulk_requests": run.summary_bulk_requests,
        "bulk_body_mib": round1(mib(run.bulk_bytes_up)),
        "s3_mib_received": round1(mib(run.s3_bytes_down)),
        "s3_connections_opened": run.s3_connections,
        "peak_rss_mib": round1(run.peak_rss_kib as f64 / 1024.0),
        "rss_after_mib": round1(run.rss_after_kib as f64 / 1024.0),
        "rss_anon_after_mib": round1(run.rss_anon_kib as f64 / 1024.0),
        "cpu_s": run.cpu_s,
        "cpu_ms_schedstat": run.cpu_ms_precise.map(round1),
        "cgroup_peak_mib": run.cgroup_peak_bytes.map(|b| round1(mib(b))),
        "cgroup_memory_failcnt": run.cgroup_failures,
    })
}

/// Runs drain mode, prints its table and JSON; fails when the function did or
/// when a document was lost or duplicated.
async fn drain_main(args: &Args, moto: &Moto, ticks: u64) -> ExitCode {
    let report = match run_drain(args, moto, ticks).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("bench: drain: {e}");
            return ExitCode::FAILURE;
        }
    };
    let totals = drain_totals(args, &report);
    let machine = machine();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\ndocker-pulls drain benchmark — {} on {} × {} (shared cores: function, fakes, moto and this bench)",
        machine["date"].as_str().unwrap_or(""),
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        text,
        "backlog: {} objects × {} documents = {} documents ({:.1} MiB of NDJSON, written in {:.1} s), 5 minutes apart; \
         each run: {} repositories (bench/*), Hub latency {} ms, Elasticsearch latency {} ms, deadline {} s{}",
        report.objects,
        args.docs_per_object,
        report.backlog_documents,
        mib(report.backlog_bytes),
        report.upload_s,
        args.drain_images,
        args.latency_ms,
        args.es_latency_ms,
        report.timeout_s,
        if args.timeout_s.is_none() {
            " (template.yaml Timeout)"
        } else {
            ""
        }
    );
    write_limits(&mut text, args);
    let _ = writeln!(
        text,
        "init {:.1} ms, RSS after init {:.1} MiB\n",
        report.init.init_ms,
        report.init.rss_kib as f64 / 1024.0
    );
    text.push_str(&drain_table(&report));
    let _ = writeln!(
        text,
        "\ndrained in {} run(s) ({} objects a run); {} documents in {} s of draining = {} documents/s; \
         peak RSS while draining {} MiB = {} of {} MiB",
        totals["runs_to_drain"],
        totals["objects_per_run"],
        totals["documents_drained"],
        totals["drain_s"],
        totals["documents_per_s"],
        totals["peak_rss_mib_max"],
        totals["peak_rss_share_of_memory"],
        args.memory_mb
    );
    let _ = writeln!(
        text,
        "{DEFAULT_INDEX_PREFIX}-*/_count {} (expected {}); backlog documents missing {}, altered {}; own documents missing {}; objects left in the bucket {}",
        report.count,
        report.expected_count,
        report.backlog_missing,
        report.backlog_altered,
        report.own_missing,
        report.bucket_left
    );
    println!("{text}");
    let json = json!({
        "machine": machine,
        "mode": "drain",
        "config": {
            "backlog_objects": report.objects,
            "docs_per_object": args.docs_per_object,
            "images_per_run": args.drain_images,
            "latency_ms": args.latency_ms,
            "es_latency_ms": args.es_latency_ms,
            "hub_concurrency": args.concurrency,
            "timeout_s": report.timeout_s,
            "max_runs": args.max_runs,
            "memory_mb": args.memory_mb,
            "env": args.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "lambda_limits": args.lambda_limits.then(|| json!({
                "cpu_share": f64::from(args.memory_mb) / MB_PER_VCPU,
                "memory_limit_mb": args.memory_mb,
            })),
        },
        "binary": binary_info(&args.binary),
        "backlog": {
            "objects": report.objects,
            "documents": report.backlog_documents,
            "mib": round1(mib(report.backlog_bytes)),
            "upload_s": round1(report.upload_s),
        },
        "init": {
            "init_ms": round1(report.init.init_ms),
            "rss_mib": round1(report.init.rss_kib as f64 / 1024.0),
        },
        "runs": report.runs.iter().map(drain_run_json).collect::<Vec<_>>(),
        "totals": totals,
        "check": {
            "count": report.count,
            "expected_count": report.expected_count,
            "backlog_missing": report.backlog_missing,
            "backlog_altered": report.backlog_altered,
            "own_missing": report.own_missing,
            "bucket_left": report.bucket_left,
            "problems": report.problems,
        },
    });
    println!("{json}");
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        for problem in &report.problems {
            eprintln!("bench: drain: {problem}");
        }
        ExitCode::FAILURE
    }
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
    /// Hub requests a run needs for every repository.
    requests: usize,
}

fn bounds(args: &Args, n: usize) -> Bounds {
    let latency = args.latency_ms as f64;
    let listing_pages = if args.images_in_event {
        0
    } else {
        n.div_ceil(PAGE_SIZE)
    };
    // In listing mode the pages carry the counts: no repository requests.
    let fetched = if listing_mode(args) { 0 } else { n };
    Bounds {
        fetch_ms: fetched.div_ceil(args.concurrency.max(1)) as f64 * latency,
        listing_ms: listing_pages as f64 * latency,
        listing_pages,
        requests: fetched + listing_pages,
    }
}

/// `dockerhub/namespace_counts = listing` with `bench/*` in SSM.
fn listing_mode(args: &Args) -> bool {
    args.namespace_counts == "listing" && !args.images_in_event
}

/// The requests Docker Hub's rate limit admits in a run of `wall_ms`: the
/// limit for each window the run reached (the first starts with the run).
fn rate_limit_bound(args: &Args, wall_ms: f64) -> Option<f64> {
    let limit = f64::from(args.rate_limit?);
    let windows = (wall_ms / RATE_LIMIT_WINDOW.as_millis() as f64)
        .ceil()
        .max(1.0);
    Some(limit * windows)
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
        "deferred": med(s, |x| Some(x.deferred as f64)),
        "deferred_max": max_of(s, |x| x.deferred as f64),
        "summary_hub_requests": med(s, |x| Some(x.summary_hub_requests as f64)),
        "summary_hub_requests_max": max_of(s, |x| x.summary_hub_requests as f64),
        "hub_rate_limited": max_of(s, |x| x.summary_rate_limited as f64),
        "hub_429_served": max_of(s, |x| x.hub_429 as f64),
        "summary_bulk_requests": max_of(s, |x| x.summary_bulk_requests as f64),
        "rate_limit_bound": med(s, |x| rate_limit_bound(args, x.wall_ms)),
        "budget_s": max_of(s, |x| x.budget_s as f64),
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

/// The commit the bench ran at, and whether the work tree had changes to
/// tracked files (then the figures are not that commit's).
fn source() -> Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    json!({
        "commit": git(&["rev-parse", "HEAD"]),
        "tracked_changes": git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
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

/// One row of the result: N, cold and warm summaries, init, every run, the
/// compaction.
type Row = (usize, Value, Value, Value, Vec<Value>, Value);

/// One invocation's figures, for the per-run table and the JSON.
fn run_json(args: &Args, n: usize, sample: &Sample) -> Value {
    json!({
        "cold": sample.cold,
        "wall_ms": (sample.wall_ms * 10.0).round() / 10.0,
        "budget_s": sample.budget_s,
        "documents": sample.documents,
        "deferred": sample.deferred,
        "hub_requests": sample.summary_hub_requests,
        "hub_rate_limited": sample.summary_rate_limited,
        "hub_429_served": sample.hub_429,
        "rate_limit_bound": rate_limit_bound(args, sample.wall_ms),
        "bulk_requests": sample.summary_bulk_requests,
        "peak_rss_mib": round1(sample.peak_rss_kib as f64 / 1024.0),
        "cpu_s": sample.cpu_s,
        "covered_so_far": sample.covered_so_far,
        "covered_all": sample.covered_so_far >= n,
        "s3_requests": sample.s3_requests,
        "emf_metrics": sample.log.emf_metrics.len(),
        "emf_metric_names": sample.log.emf_metrics,
        "log_bytes": sample.log.bytes,
    })
}

fn runs_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| N | run | wall ms | docs | deferred | Hub requests (summary) | ÷ rate-limit bound | 429s (summary / fake) | _bulk | peak RSS MiB | covered so far | S3 requests | EMF metrics | log KiB |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (n, _, _, _, runs, _) in rows {
        for (k, r) in runs.iter().enumerate() {
            let requests = r["hub_requests"].as_f64().unwrap_or(0.0);
            let ratio = r["rate_limit_bound"]
                .as_f64()
                .map_or("-".into(), |b| format!("{:.2}", requests / b));
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {requests:.0} | {ratio} | {} / {} | {} | {} | {} / {n} | {} | {} | {:.1} |",
                k + 1,
                fmt(r, "wall_ms", 0),
                r["documents"],
                r["deferred"],
                r["hub_rate_limited"],
                r["hub_429_served"],
                r["bulk_requests"],
                fmt(r, "peak_rss_mib", 1),
                r["covered_so_far"],
                r["s3_requests"]
                    .as_object()
                    .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>()),
                r["emf_metrics"],
                r["log_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            );
        }
    }
    out
}

fn table(args: &Args, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| N | run | wall ms | bound ms (fetch / +listing) | ratio (fetch / +listing) | SSM ms | listing span ms | repos ms | bulk ms | peak RSS MiB | CPU s (schedstat ms) | Hub requests (repo+listing / expected) | max in flight | _bulk | docs | deferred | 429s |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (n, cold, warm, _, _, _) in rows {
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
                "| {n} | {label} (median of {}) | {} | {:.0} / {:.0} | {} / {} | {} | {} | {} | {} | {} (max {}) | {} ({}) | {requests:.0} / {} | {} | {} | {} | {} | {} |",
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
                b.requests,
                fmt(v, "hub_max_in_flight", 0),
                fmt(v, "bulk_requests", 0),
                fmt(v, "documents_indexed", 0),
                fmt(v, "deferred", 0),
                fmt(v, "hub_429_served", 0),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| N | init ms (median, max) | init CPU ms (schedstat) | RSS after init MiB (anonymous) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    for (n, _, _, init, _, _) in rows {
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
    if args.drain_objects.is_some() {
        return drain_main(&args, &moto, ticks).await;
    }
    let mut args = args;
    if args.timeout_s.is_none() {
        match template_timeout_s() {
            Ok(seconds) => args.timeout_s = Some(seconds),
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

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
        let runs: Vec<Value> = result
            .samples
            .iter()
            .map(|sample| run_json(&args, n, sample))
            .collect();
        let row = (
            n,
            summarize(&args, &result, &cold),
            summarize(&args, &result, &warm),
            init,
            runs,
            result.compaction.clone().unwrap_or(Value::Null),
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
        "Hub latency {} ms, HUB_CONCURRENCY {}, dockerhub/namespace_counts {}, rate limit {}, deadline {} s, images {}, pipeline {:?}, {} process(es) × (1 cold + {} warm){}",
        args.latency_ms,
        args.concurrency,
        args.namespace_counts,
        args.rate_limit.map_or("none".into(), |r| format!(
            "{r} per minute (fixed windows, a fresh one per run)"
        )),
        args.timeout_s.unwrap_or(0),
        if args.images_in_event {
            "named in the event (no listing)"
        } else {
            "bench/* (paged listing, 100 a page)"
        },
        args.pipeline,
        args.processes,
        args.warm,
        if args.cover {
            ", then until every repository had a document"
        } else {
            ""
        }
    );
    write_limits(&mut text, &args);
    let _ = writeln!(
        text,
        "bound = ceil(N/{}) × {} ms (fetch); +listing adds ceil(N/100) sequential pages × {} ms\n",
        args.concurrency, args.latency_ms, args.latency_ms
    );
    text.push_str(&table(&args, &rows));
    text.push_str(&runs_table(&rows));
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
        "source": source(),
        "command": std::env::args().skip(1).collect::<Vec<_>>(),
        "config": {
            "latency_ms": args.latency_ms,
            "hub_concurrency": args.concurrency,
            "processes": args.processes,
            "warm_invocations": args.warm,
            "images": if args.images_in_event { "event" } else { "listing" },
            "pipeline": args.pipeline,
            "memory_mb": args.memory_mb,
            "namespace_counts": args.namespace_counts,
            "rate_limit_per_minute": args.rate_limit,
            "deadline_s": args.timeout_s,
            "cover": args.cover,
            "env": args.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "lambda_limits": args.lambda_limits.then(|| json!({
                "cpu_share": f64::from(args.memory_mb) / MB_PER_VCPU,
                "memory_limit_mb": args.memory_mb,
            })),
        },
        "binaries": binaries,
        "results": rows.iter().map(|(n, cold, warm, init, runs, compaction)| {
            let b = bounds(&args, *n);
            let runs_to_cover = runs
                .iter()
                .position(|r| r["covered_all"].as_bool() == Some(true))
                .map(|k| k + 1);
            json!({
                "n": n,
                "bound_fetch_ms": b.fetch_ms,
                "bound_with_listing_ms": b.fetch_ms + b.listing_ms,
                "listing_pages": b.listing_pages,
                "expected_hub_requests": b.requests,
                "runs_to_cover": runs_to_cover,
                "init": init, "cold": cold, "warm": warm, "runs": runs,
                "compaction": compaction,
            })
        }).collect::<Vec<_>>(),
    });
    println!("{json}");
    ExitCode::SUCCESS
}

/// The `--lambda-limits` line of a report header.
fn write_limits(text: &mut String, args: &Args) {
    if args.lambda_limits {
        let _ = writeln!(
            text,
            "function limited like a {} MB Lambda: {:.1} % of one CPU (cgroup cpu quota), {} MiB memory",
            args.memory_mb,
            f64::from(args.memory_mb) / MB_PER_VCPU * 100.0,
            args.memory_mb
        );
    }
}
