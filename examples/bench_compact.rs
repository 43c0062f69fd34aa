//! Compaction and replay from Parquet: peak memory and time.
//!
//! ```text
//! cargo run --release --example bench_compact                       # a 10,000-repository day: compaction's peak RSS and time
//! cargo run --release --example bench_compact -- --repos 1000 --days 7 --replay
//! ```
//!
//! It writes `--days` days of 288 runs of `--repos` repositories with the
//! function's own writer (`archive::write`) into a directory archive, then
//! compacts each day in a child process (`--compact-only DIR DAY`), which
//! reports its peak resident set (`VmHWM` from /proc/self/status) and time,
//! so the writing does not count against compaction's memory. The bound is
//! 64 MiB for a 10,000-repository day (2.88 million rows).
//!
//! With `--replay` it first replays the raw days into the in-process fake
//! Elasticsearch (`replay::replay`, what `docker-pulls replay` runs), then,
//! after compaction, the same range again into an empty fake, now read from
//! Parquet, and prints both times and their ratio. The last line is every
//! figure as JSON.

#[path = "common/repositories.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use docker_pulls::archive::{self, ArchiveStore, DirArchive};
use docker_pulls::document::{Document, RunTime};
use docker_pulls::retry::Deadline;
use serde_json::json;
use std::time::{Duration, Instant};

/// The peak resident set of this process so far, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn day(n: usize) -> time::Date {
    time::Date::from_calendar_date(2026, time::Month::March, 1).expect("date")
        + time::Duration::days(n as i64)
}

/// The child: compacts one day of `dir`, prints its figures as JSON.
async fn compact_only(dir: &str, date: &str) {
    let store = DirArchive::new(dir);
    let date = archive::reader::parse_day(date).expect("a day");
    let started = Instant::now();
    let report = archive::compact::compact_day(&store, date, &std::env::temp_dir(), None)
        .await
        .expect("compacts");
    let seconds = started.elapsed().as_secs_f64();
    let key = report.key.clone().unwrap_or_default();
    let bytes = std::fs::metadata(std::path::Path::new(dir).join(&key)).map_or(0, |m| m.len());
    println!(
        "{}",
        json!({
            "date": report.date,
            "outcome": report.outcome,
            "rows": report.rows,
            "objects": report.objects,
            "seconds": seconds,
            "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
            "parquet_bytes": bytes,
        })
    );
}

async fn replay_into_fake(store: &DirArchive, days: usize) -> (f64, usize, usize, usize) {
    let es = support::fake_es::FakeEs::start().await;
    let settings = docker_pulls::config::EsSettings {
        url: es.url(),
        auth: docker_pulls::config::EsAuth::None,
        index_prefix: "docker-pulls".into(),
        pipeline: None,
        aws_region: None,
    };
    let request =
        docker_pulls::replay::ReplayRequest::new(&day(0).to_string(), &day(days).to_string(), None)
            .expect("valid");
    let client =
        docker_pulls::es::EsClient::new(docker_pulls::http_client().expect("http"), settings);
    let started = Instant::now();
    let summary = docker_pulls::replay::replay(
        store,
        &client,
        &Default::default(),
        &request,
        Deadline::after(Duration::from_secs(36_000)),
        &docker_pulls::progress::Silent,
    )
    .await
    .expect("replay");
    assert!(summary.all_indexed(), "{summary:?}");
    (
        started.elapsed().as_secs_f64(),
        summary.documents,
        summary.objects,
        summary.parquet_files,
    )
}

/// Reads every measurement of the days through the archive's reader, no
/// Elasticsearch: the reading's own cost; (seconds, documents).
async fn read_only(store: &DirArchive, days: usize, parquet: bool) -> (f64, usize) {
    let from = day(0).midnight().assume_utc();
    let mut options = archive::reader::Options::new(from, from + time::Duration::days(days as i64));
    options.parquet = parquet;
    let mut reader = archive::reader::Reader::new(store, options);
    let started = Instant::now();
    let mut documents = 0;
    while let Some(item) = reader.next().await.expect("reads") {
        if matches!(item, archive::reader::Item::Document(_)) {
            documents += 1;
        }
    }
    (started.elapsed().as_secs_f64(), documents)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--compact-only") {
        return compact_only(&args[1], &args[2]).await;
    }
    let (mut repos, mut days, mut replay) = (10_000usize, 1usize, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut number = || -> usize {
            rest.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--repos" => repos = number(),
            "--days" => days = number(),
            "--replay" => replay = true,
            other => panic!("unknown argument {other}; see the file's doc comment"),
        }
    }
    let dir =
        std::env::temp_dir().join(format!("docker-pulls-bench-compact-{}", std::process::id()));
    let store = DirArchive::new(&dir);
    let mut repositories = common::repositories(repos);
    let mut rng = fastrand::Rng::with_seed(42);
    let started = Instant::now();
    for n in 0..days {
        let midnight = day(n).midnight().assume_utc().unix_timestamp();
        for run in 0..288 {
            let time = RunTime::from_unix_micros((midnight + 300 * run) * 1_000_000).expect("time");
            for repo in &mut repositories {
                repo.pull_count += repo.pull_count / 50_000 + rng.u64(..3);
            }
            let documents: Vec<Document> = repositories
                .iter()
                .map(|stats| Document {
                    timestamp: time,
                    stats: stats.clone(),
                })
                .collect();
            // The run's own writer: each measurement once.
            archive::write::write_once(
                &store,
                &documents,
                time::OffsetDateTime::now_utc(),
                Deadline::after(Duration::from_secs(60)),
            )
            .await
            .expect("write");
        }
    }
    eprintln!(
        "wrote {days} day(s) of 288 runs x {repos} repositories in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut figures = json!({"repositories": repos, "days": days});
    if replay {
        let (seconds, documents, objects, _) = replay_into_fake(&store, days).await;
        eprintln!(
            "replay from raw objects: {documents} documents, {objects} objects, {seconds:.1} s"
        );
        figures["replay_raw_seconds"] = json!(seconds);
        figures["replay_documents"] = json!(documents);
    }
    let (raw_read, _) = read_only(&store, days, false).await;
    figures["read_raw_seconds"] = json!(raw_read);
    let mut compactions = Vec::new();
    for n in 0..days {
        let output = std::process::Command::new(std::env::current_exe().expect("exe"))
            .arg("--compact-only")
            .arg(&dir)
            .arg(day(n).to_string())
            .output()
            .expect("the child runs");
        assert!(output.status.success(), "{output:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the child's JSON");
        eprintln!("compacted {report}");
        compactions.push(report);
    }
    figures["compactions"] = json!(compactions);
    let (parquet_read, documents) = read_only(&store, days, true).await;
    figures["read_parquet_seconds"] = json!(parquet_read);
    eprintln!(
        "reading {documents} documents without Elasticsearch: raw objects {raw_read:.2} s, Parquet {parquet_read:.2} s"
    );
    if replay {
        let (seconds, documents, objects, parquet) = replay_into_fake(&store, days).await;
        eprintln!(
            "replay from Parquet: {documents} documents, {parquet} Parquet files, {objects} objects, {seconds:.1} s"
        );
        figures["replay_parquet_seconds"] = json!(seconds);
        let raw = figures["replay_raw_seconds"].as_f64().unwrap_or_default();
        figures["replay_raw_over_parquet"] = json!(raw / seconds);
    }
    let listed = store
        .list(archive::PREFIX, None)
        .await
        .map_or(0, |k| k.len());
    figures["raw_objects"] = json!(listed);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{figures}");
}
