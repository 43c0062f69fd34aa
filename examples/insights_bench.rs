//! What insights add to a run, and what they cost in S3 requests.
//!
//! ```text
//! cargo run --release --example insights_bench -- [--repos 1000] [--runs 288]
//! ```
//!
//! A synthetic history (`--repos` repositories, hourly runs for 31 days,
//! written with the real archive encoder) sits in an in-memory archive that
//! counts requests; then `--runs` five-minute runs (288: a day) each write
//! their object and run [`Insights::after_run`] with a badge bucket and the
//! alert state (in-memory, counting writes). Pull rates are spread from 0
//! to 100,000 a day with random noise; a few repositories spike, stall or
//! go backwards during the day.
//!
//! Side by side, per run: the archive write alone (insights off) and the
//! archive write plus insights (on), wall time (median and max) and the
//! peak heap the insights call adds (a counting allocator; the run that
//! builds the daily page apart). Per day: the
//! objects written (badges, index, page, alert state) and the archive's
//! lists and gets, priced at S3 Standard's us-east-1 request prices
//! ($0.005 per 1,000 PUT/LIST, $0.0004 per 1,000 GET). The first run (cold
//! container: every badge written, the day's page built) is reported apart.
//! It prints a table and, last, the figures as one JSON line.

use docker_pulls::archive::{self, ArchiveError, ArchiveStore};
use docker_pulls::document::{Document, RepositoryStats, RunTime};
use docker_pulls::insights::alerts::Thresholds;
use docker_pulls::insights::store::{Bucket, Condition, Object, StoreError, Written};
use docker_pulls::insights::{self, Insights};
use futures_util::future::BoxFuture;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Default)]
struct MemArchive {
    objects: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
    lists: AtomicUsize,
    gets: AtomicUsize,
}

impl ArchiveStore for MemArchive {
    fn location(&self) -> String {
        "memory://archive/".into()
    }
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), ArchiveError>> {
        // Create-only, as S3's If-None-Match and the directory store are.
        self.objects
            .lock()
            .expect("lock")
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(body));
        Box::pin(async { Ok(()) })
    }
    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        self.list(prefix, None)
    }
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<bool, ArchiveError>> {
        Box::pin(async move {
            let body = std::fs::read(path).map_err(|e| ArchiveError {
                operation: "reading",
                location: path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut objects = self.objects.lock().expect("lock");
            if objects.contains_key(key) {
                return Ok(false);
            }
            objects.insert(key.to_owned(), Arc::new(body));
            Ok(true)
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ArchiveError>> {
        self.objects.lock().expect("lock").remove(key);
        Box::pin(async { Ok(()) })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ArchiveError>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let body = self.objects.lock().expect("lock").get(key).cloned();
        Box::pin(async move {
            body.map(|b| b.to_vec()).ok_or_else(|| ArchiveError {
                operation: "reading",
                location: key.to_owned(),
                message: "missing".into(),
            })
        })
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let keys = self
            .objects
            .lock()
            .expect("lock")
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| from.is_none_or(|f| k.as_str() >= f))
            .map(|(k, _)| k.clone())
            .collect();
        Box::pin(async move { Ok(keys) })
    }
}

#[derive(Default)]
struct MemBucket {
    objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    puts: Mutex<BTreeMap<&'static str, usize>>,
    gets: AtomicUsize,
}

impl Bucket for MemBucket {
    fn location(&self) -> String {
        "memory://badges/".into()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>, StoreError>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let object = self
            .objects
            .lock()
            .expect("lock")
            .get(key)
            .map(|(body, version)| Object {
                body: body.clone(),
                etag: version.to_string(),
            });
        Box::pin(async move { Ok(object) })
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        _content_type: &'static str,
        condition: Condition,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        let kind = if key.ends_with("index.json") {
            "index"
        } else if key.ends_with(".html") {
            "page"
        } else if key.starts_with("alerts/") {
            "alert_state"
        } else {
            "badge"
        };
        let mut objects = self.objects.lock().expect("lock");
        let current = objects.get(key).map(|(_, v)| *v);
        let holds = match (&condition, current) {
            (Condition::None, _) | (Condition::Absent, None) => true,
            (Condition::Matches(tag), Some(v)) => *tag == v.to_string(),
            _ => false,
        };
        let result = if holds {
            objects.insert(key.to_owned(), (body, current.unwrap_or(0) + 1));
            *self.puts.lock().expect("lock").entry(kind).or_default() += 1;
            Written::Yes
        } else {
            Written::Conflict
        };
        Box::pin(async move { Ok(result) })
    }
}

struct Repo {
    name: String,
    /// Pulls a day.
    rate: f64,
    pulls: f64,
}

fn repos(n: usize) -> Vec<Repo> {
    let mut rng = fastrand::Rng::with_seed(23);
    (0..n)
        .map(|i| {
            // Log-uniform from 0.1 to 100,000 a day; a tenth never pulled.
            let rate = if i % 10 == 0 {
                0.0
            } else {
                10f64.powf(rng.f64() * 6.0 - 1.0)
            };
            Repo {
                name: format!("app{i:04}"),
                rate,
                pulls: (rng.f64() * 1e7).floor(),
            }
        })
        .collect()
}

fn documents(repos: &[Repo], at: &RunTime) -> Vec<Document> {
    repos
        .iter()
        .map(|r| Document {
            timestamp: *at,
            stats: RepositoryStats {
                namespace: "bench".into(),
                name: r.name.clone(),
                pull_count: r.pulls as u64,
                star_count: 1,
                collaborator_count: Some(0),
            },
        })
        .collect()
}

/// Advances every count by `hours` of pulls, with noise.
fn advance(repos: &mut [Repo], hours: f64, rng: &mut fastrand::Rng) {
    for r in repos {
        let expected = r.rate * hours / 24.0;
        r.pulls += (expected * (0.5 + rng.f64())).round();
    }
}

fn time_at(t: i64) -> RunTime {
    let t = time::OffsetDateTime::from_unix_timestamp(t).expect("time");
    RunTime::parse(
        &t.format(&time::format_description::well_known::Rfc3339)
            .expect("fmt"),
    )
    .expect("valid")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = arg("--repos", 1000);
    let runs = arg("--runs", 288);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut repos = repos(n);
    let archive = MemArchive::default();
    let deadline = || docker_pulls::retry::Deadline::after(Duration::from_secs(60));
    // 2026-11-01T00:00:00Z; 31 days of hourly runs.
    let start = 1_793_491_200;
    for h in 0..(31 * 24) {
        advance(&mut repos, 1.0, &mut rng);
        let at = time_at(start + h * 3600);
        archive::write::write_once(
            &archive,
            &documents(&repos, &at),
            time::OffsetDateTime::now_utc(),
            deadline(),
        )
        .await
        .expect("write");
    }
    let day_start = start + 31 * 24 * 3600;
    let bucket = Arc::new(MemBucket::default());
    let insights = Insights::default()
        .with_badges(bucket.clone())
        .with_alert_state(bucket.clone());
    let thresholds = Thresholds::default();
    let (lists0, gets0) = (
        archive.lists.load(Ordering::Relaxed),
        archive.gets.load(Ordering::Relaxed),
    );
    let mut off = Vec::new();
    let mut reads = Vec::new();
    let mut on = Vec::new();
    let mut peak_added = 0usize;
    let mut page_peak = 0usize;
    let mut alerts = 0;
    let mut first = None;
    for run in 0..runs {
        advance(&mut repos, 5.0 / 60.0, &mut rng);
        // A few repositories misbehave during the day.
        if run == 100 {
            repos[1].rate *= 40.0;
            repos[2].rate = 0.0;
            repos[3].pulls -= 5_000.0;
        }
        let at = time_at(day_start + run as i64 * 300);
        let docs = documents(&repos, &at);
        // Off: the archive write alone.
        let begun = Instant::now();
        archive::write::write_once(&archive, &docs, time::OffsetDateTime::now_utc(), deadline())
            .await
            .expect("write");
        let write = begun.elapsed();
        off.push(write);
        // The look-backs alone (the archive reads), for the breakdown.
        let set: std::collections::BTreeSet<(String, String)> = docs
            .iter()
            .map(|d| (d.stats.namespace.clone(), d.stats.name.clone()))
            .collect();
        let counted = (
            archive.lists.load(Ordering::Relaxed),
            archive.gets.load(Ordering::Relaxed),
        );
        let begun = Instant::now();
        let _ = docker_pulls::insights::look_back(&archive, None, at.unix_seconds(), &set).await;
        reads.push(begun.elapsed());
        // Not the run's requests: taken back out of the day's counts.
        archive.lists.store(counted.0, Ordering::Relaxed);
        archive.gets.store(counted.1, Ordering::Relaxed);
        // On: the same write, then insights (timed apart: the write happened).
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let begun = Instant::now();
        let outcome = insights
            .after_run(&archive, &docs, &thresholds, insights::TIMEOUT)
            .await
            .expect("insights");
        let took = begun.elapsed();
        let added = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        if outcome.page_written {
            page_peak = page_peak.max(added);
        } else {
            peak_added = peak_added.max(added);
        }
        alerts += outcome.alerts;
        if run == 0 {
            first = Some((took, outcome.badges_written, outcome.page_written));
        } else {
            on.push(write + took);
        }
    }
    let puts = bucket.puts.lock().expect("lock").clone();
    let lists = archive.lists.load(Ordering::Relaxed) - lists0;
    let gets = archive.gets.load(Ordering::Relaxed) - gets0 + bucket.gets.load(Ordering::Relaxed);
    let written: usize = puts.values().sum();
    let first = first.expect("a run");
    // A cold start writes every badge once; steady state is the rest.
    let steady_writes = written - first.1;
    let per_month = |per_day: f64, price_per_1000: f64| per_day * 30.0 * price_per_1000 / 1000.0;
    let cost = per_month(written as f64 + lists as f64, 0.005) + per_month(gets as f64, 0.0004);
    let (off_median, on_median) = (median(&mut off.clone()), median(&mut on.clone()));
    let on_max = on.iter().max().copied().unwrap_or_default();
    let reads_median = median(&mut reads);
    println!(
        "look-backs alone (median)         {:.2} ms",
        reads_median.as_secs_f64() * 1e3
    );
    println!("repositories                      {n}");
    println!("runs (5 min)                      {runs}");
    println!(
        "run, insights off (median)        {:.2} ms (archive write)",
        off_median.as_secs_f64() * 1e3
    );
    println!(
        "run, insights on (median, max)    {:.2} ms, {:.2} ms",
        on_median.as_secs_f64() * 1e3,
        on_max.as_secs_f64() * 1e3
    );
    println!(
        "added by insights (median)        {:.2} ms",
        (on_median.as_secs_f64() - off_median.as_secs_f64()) * 1e3
    );
    println!(
        "first run (cold: all badges, page) {:.1} ms, {} badges",
        first.0.as_secs_f64() * 1e3,
        first.1
    );
    println!(
        "peak heap added by insights       {:.2} MiB (the daily page's run: {:.2} MiB)",
        peak_added as f64 / 1048576.0,
        page_peak as f64 / 1048576.0
    );
    println!(
        "objects written a day             {written} ({puts:?}; {steady_writes} after the cold start)"
    );
    println!("archive lists / gets a day        {lists} / {gets}");
    println!("S3 requests a month               ${cost:.3}");
    println!("alerts raised                     {alerts}");
    println!(
        "{}",
        json!({
            "repos": n, "runs": runs,
            "off_median_ms": off_median.as_secs_f64() * 1e3,
            "on_median_ms": on_median.as_secs_f64() * 1e3,
            "on_max_ms": on_max.as_secs_f64() * 1e3,
            "first_run_ms": first.0.as_secs_f64() * 1e3,
            "peak_heap_added_mib": peak_added as f64 / 1048576.0,
            "page_run_peak_heap_added_mib": page_peak as f64 / 1048576.0,
            "objects_written_per_day": written, "writes_by_kind": puts,
            "archive_lists_per_day": lists, "gets_per_day": gets,
            "s3_requests_usd_per_month": cost, "alerts": alerts,
        })
    );
}
