//! What the archive costs: bytes and objects per day at a given number of
//! repositories, and how long replay takes to index a day of it.
//!
//! ```text
//! cargo run --release --example archive_size -- [--repos 1000] [--runs 288] [--no-replay]
//! ```
//!
//! It writes `--runs` runs (288: one day at the five-minute schedule) of
//! `--repos` repositories to a directory archive with the real code
//! (`archive::write::write_once`: the same encoding and gzip level as in Lambda), then
//! reports the objects' sizes, the bytes per day, month and year, and the
//! CPU time to encode (JSON + gzip) and to decode an object. The repositories are synthetic
//! but shaped like real ones: names of 3 to 30 characters in a few dozen
//! namespaces (a third of them `library`), pull counts spread from tens to
//! billions and growing between runs, star and collaborator counts.
//!
//! Then (unless `--no-replay`) it replays the whole day into the in-process
//! fake Elasticsearch with `replay::replay` and reports documents a second:
//! an upper bound for the replay's own cost (reading, decoding, building
//! and answering `_bulk`), since a real cluster indexes more slowly than the
//! fake. It prints a table and, last, the figures as one JSON line.

#[path = "common/repositories.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use docker_pulls::archive::{self, ArchiveStore, DirArchive};
use docker_pulls::document::{Document, RunTime};
use docker_pulls::retry::Deadline;
use serde_json::json;
use std::time::{Duration, Instant};

struct Options {
    repos: usize,
    runs: usize,
    replay: bool,
}

fn options() -> Options {
    let mut options = Options {
        repos: 1_000,
        runs: 288,
        replay: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--repos" => options.repos = number("--repos"),
            "--runs" => options.runs = number("--runs"),
            "--no-replay" => options.replay = false,
            other => panic!("unknown argument {other}; see the file's doc comment"),
        }
    }
    options
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = options();
    let dir =
        std::env::temp_dir().join(format!("docker-pulls-archive-size-{}", std::process::id()));
    let store = DirArchive::new(&dir);
    let mut repositories = common::repositories(options.repos);
    let mut rng = fastrand::Rng::with_seed(42);
    let start = RunTime::parse("2026-03-01T00:00:00Z").expect("valid");
    let mut sizes = Vec::new();
    let mut plain_bytes = 0usize;
    let mut encode_time = Duration::ZERO;
    let mut decode_time = Duration::ZERO;
    for run in 0..options.runs {
        let time = RunTime::parse(
            &time::OffsetDateTime::from_unix_timestamp(start.unix_seconds() + 300 * run as i64)
                .expect("valid")
                .format(&time::format_description::well_known::Rfc3339)
                .expect("formats"),
        )
        .expect("valid");
        for repo in &mut repositories {
            // About 0.002 % of the count every five minutes, plus noise.
            repo.pull_count += repo.pull_count / 50_000 + rng.u64(..3);
        }
        let documents: Vec<Document> = repositories
            .iter()
            .map(|stats| Document {
                timestamp: time,
                stats: stats.clone(),
            })
            .collect();
        plain_bytes += documents
            .iter()
            .map(|d| serde_json::to_vec(d).expect("JSON").len() + 1)
            .sum::<usize>();
        let started = Instant::now();
        let encoded = archive::encode(&documents).expect("encode");
        encode_time += started.elapsed();
        drop(encoded);
        let written = archive::write::write_once(
            &store,
            &documents,
            time::OffsetDateTime::now_utc(),
            Deadline::after(Duration::from_secs(60)),
        )
        .await
        .expect("write");
        let key = written.keys.first().expect("one object written");
        let body = store.get(key).await.expect("read");
        let started = Instant::now();
        let decoded = archive::decode(&body).expect("decode");
        decode_time += started.elapsed();
        assert_eq!(decoded.documents.len(), options.repos);
        sizes.push(body.len());
    }
    let total: usize = sizes.iter().sum();
    let per_day = total as f64 * 288.0 / options.runs as f64;
    let gb = 1024.0 * 1024.0 * 1024.0;
    let mut figures = json!({
        "repositories": options.repos,
        "runs": options.runs,
        "objects_per_day": 288,
        "documents_per_day": options.repos * 288,
        "object_bytes_min": sizes.iter().min(),
        "object_bytes_avg": total / sizes.len().max(1),
        "object_bytes_max": sizes.iter().max(),
        "bytes_per_document": total as f64 / (options.runs * options.repos) as f64,
        "uncompressed_bytes_per_document": plain_bytes as f64 / (options.runs * options.repos) as f64,
        "bytes_per_day": per_day.round(),
        "gib_per_year": per_day * 365.0 / gb,
        "encode_ms_per_object": encode_time.as_secs_f64() * 1000.0 / options.runs as f64,
        "decode_ms_per_object": decode_time.as_secs_f64() * 1000.0 / options.runs as f64,
    });
    println!(
        "{} repositories, {} runs: objects {}..{} bytes (avg {}), {:.1} bytes a document ({:.0} uncompressed)",
        options.repos,
        options.runs,
        figures["object_bytes_min"],
        figures["object_bytes_max"],
        figures["object_bytes_avg"],
        figures["bytes_per_document"].as_f64().unwrap_or_default(),
        figures["uncompressed_bytes_per_document"]
            .as_f64()
            .unwrap_or_default(),
    );
    println!(
        "per day: 288 objects, {:.2} MB; per 30 days {:.0} MB; per year {:.2} GiB",
        per_day / 1e6,
        per_day * 30.0 / 1e6,
        per_day * 365.0 / gb
    );
    println!(
        "encode (JSON + gzip) {:.2} ms, decode {:.2} ms per object",
        figures["encode_ms_per_object"].as_f64().unwrap_or_default(),
        figures["decode_ms_per_object"].as_f64().unwrap_or_default()
    );

    if options.replay {
        let es = support::fake_es::FakeEs::start().await;
        let settings = docker_pulls::config::EsSettings {
            url: es.url(),
            auth: docker_pulls::config::EsAuth::None,
            index_prefix: "docker-pulls".into(),
            pipeline: None,
            aws_region: None,
        };
        let request = docker_pulls::replay::ReplayRequest::new("2026-03-01", "2026-03-02", None)
            .expect("valid");
        let client = docker_pulls::es::EsClient::new(
            docker_pulls::http_client().expect("http client"),
            settings,
        );
        let started = Instant::now();
        let summary = docker_pulls::replay::replay(
            &store,
            &client,
            &Default::default(),
            &request,
            Deadline::after(Duration::from_secs(3600)),
            &docker_pulls::progress::Stderr::default(),
        )
        .await
        .expect("replay");
        let elapsed = started.elapsed();
        assert!(summary.all_indexed(), "{summary:?}");
        println!(
            "replay of {} objects, {} documents into the in-process fake: {:.1} s, {:.0} documents/s, {} _bulk requests",
            summary.objects,
            summary.documents,
            elapsed.as_secs_f64(),
            summary.documents as f64 / elapsed.as_secs_f64(),
            summary.bulk_requests
        );
        figures["replay_seconds"] = json!(elapsed.as_secs_f64());
        figures["replay_documents_per_second"] =
            json!(summary.documents as f64 / elapsed.as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{figures}");
}
