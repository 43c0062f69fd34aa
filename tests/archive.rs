//! The archive end to end (issue 17): every run's documents kept outside the
//! cluster, whatever Elasticsearch does; SQL over them with DuckDB; replay
//! rebuilding a deleted index exactly; export-index bringing an index's
//! history (Metricbeat-era documents included) into the archive.
//!
//! S3 is moto's, Elasticsearch the strict fake (and osmem-server for
//! export), Docker Hub the fake Hub. Archive objects are read back with
//! flate2 and serde_json directly, not with the code under test, and
//! documents are compared as parsed JSON.

mod support;

use docker_pulls::archive::{self, ArchiveStore, DirArchive, S3Archive};
use docker_pulls::config::Settings;
use docker_pulls::export::{ExportRequest, export_index};
use docker_pulls::progress::Silent;
use docker_pulls::replay::ReplayRequest;
use docker_pulls::retry::Deadline;
use docker_pulls::run::Job;
use docker_pulls::spool::MemorySpool;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness::{self, LogCapture};
use support::moto::Moto;
use support::osmem::Osmem;

const BUCKET: &str = "docker-pulls-archive";
const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];

/// Settings for the fakes, without an ingest pipeline (the fake has none
/// installed; naming it would only double the requests).
fn settings(es_url: &str) -> Settings {
    let mut settings = harness::settings(&IMAGES, Some(es_url));
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    settings
}

fn job(es_url: &str, hub: &FakeHub, store: Arc<dyn ArchiveStore>) -> Job<Settings> {
    harness::job(settings(es_url), harness::quick_hub_options(hub.url())).with_archive(store)
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "docker-pulls-{name}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn deadline() -> Deadline {
    harness::deadline()
}

/// A manual run at `time` (a person's explicit time is honoured).
async fn run_at(job: &Job<Settings>, time: &str) -> Value {
    job.handle(&json!({ "time": time }), deadline())
        .await
        .unwrap_or_else(|e| panic!("run at {time}: {e}"))
}

/// Every archive object in `store` and its lines, read with flate2 and
/// serde_json (not the code under test).
async fn archived(store: &dyn ArchiveStore) -> BTreeMap<String, Vec<Value>> {
    let mut objects = BTreeMap::new();
    for key in store.list(archive::PREFIX, None).await.expect("list") {
        let body = store.get(&key).await.expect("get");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key} is not gzip: {e}"));
        assert!(text.ends_with('\n'), "{key}: no final newline");
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}")))
            .collect();
        objects.insert(key, lines);
    }
    objects
}

/// The documents Elasticsearch holds, by `(index, _id)`.
fn indexed(es: &FakeEs) -> BTreeMap<(String, String), Value> {
    es.all_documents()
        .into_iter()
        .map(|(index, id, source)| ((index, id), source))
        .collect()
}

fn by_name(mut documents: Vec<Value>) -> Vec<Value> {
    documents.sort_by_key(|d| d["http"]["docker_hub"]["name"].to_string());
    documents
}

async fn delete_index(es: &FakeEs, index: &str) {
    let status = reqwest::Client::new()
        .delete(format!("{}/{index}", es.url()))
        .send()
        .await
        .expect("reach the fake")
        .status();
    assert!(status.is_success(), "DELETE /{index}: {status}");
}

// --- 1. Archive ---------------------------------------------------------------

/// A run archives what it fetched to S3 when Elasticsearch indexed it, and
/// when Elasticsearch was down and the documents went to the spool: the
/// archive records measurements, the spool deliveries.
#[tokio::test]
async fn every_run_archives_what_it_fetched_to_s3_whether_indexed_or_spooled() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let store: Arc<dyn ArchiveStore> = Arc::new(S3Archive::new(moto.s3_client().await, BUCKET));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;

    let indexed_run = run_at(&job(&es.url(), &hub, store.clone()), "2026-03-01T10:00:00Z").await;
    assert_eq!(
        (
            &indexed_run["indexed"],
            &indexed_run["archived"],
            &indexed_run["archive_failed"]
        ),
        (&json!(3), &json!(3), &json!(0)),
        "{indexed_run}"
    );
    let spool = Arc::new(MemorySpool::default());
    let spooled_run = run_at(
        &job(&unused_local_url(), &hub, store.clone()).with_spool(spool.clone()),
        "2026-03-01T10:05:00Z",
    )
    .await;
    assert_eq!(
        (&spooled_run["spooled"], &spooled_run["archived"]),
        (&json!(3), &json!(3)),
        "{spooled_run}"
    );

    let objects = archived(&*store).await;
    let keys: Vec<&String> = objects.keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with("archive/year=2026/month=03/day=01/20260301T100000.000Z-")
            && keys[1].starts_with("archive/year=2026/month=03/day=01/20260301T100500.000Z-")
            && keys.iter().all(|k| k.ends_with(".ndjson.gz")),
        "{keys:?}"
    );
    // Exactly the indexed documents…
    let in_es: Vec<Value> = indexed(&es).into_values().collect();
    assert_eq!(by_name(objects[keys[0]].clone()), by_name(in_es));
    // …and exactly the spooled ones.
    let spooled: Vec<Value> = spool
        .objects()
        .values()
        .flat_map(|body| docker_pulls::ndjson::decode_creates(body).expect("spool object"))
        .map(|entry| serde_json::from_str(&entry.source).expect("JSON"))
        .collect();
    assert_eq!(spooled.len(), 3);
    assert_eq!(by_name(objects[keys[1]].clone()), by_name(spooled));
    assert_eq!(
        objects[keys[1]][0]["@timestamp"], "2026-03-01T10:05:00Z",
        "the measurement's own time"
    );
    // Nothing but the two objects in the bucket, and (the runs' day being
    // long over) the marker that tells compaction to do that day again.
    let mut bucket = moto.keys(BUCKET).await;
    bucket.retain(|key| key != "parquet-due/2026-03-01");
    assert_eq!(bucket.len(), 2, "{bucket:?}");
}

#[tokio::test]
async fn a_dry_run_archives_nothing() {
    let dir = tempdir("dry-run");
    let store: Arc<dyn ArchiveStore> = Arc::new(DirArchive::new(&dir));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let response = job(&es.url(), &hub, store.clone())
        .handle(
            &json!({"dry_run": true, "time": "2026-03-01T10:00:00Z"}),
            deadline(),
        )
        .await
        .expect("dry run");
    assert_eq!(response["documents"].as_array().map(Vec::len), Some(3));
    assert_eq!(response["archived"], 0, "{response}");
    assert!(archived(&*store).await.is_empty());
    assert!(!dir.join("archive").exists());
    assert_eq!(es.bulk_request_count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bucket does not exist: the run whose documents were indexed (or
/// spooled) still succeeds; the failure is logged as an error and counted
/// in `archive_failed`, which is the `ArchiveFailed` metric.
#[tokio::test]
async fn a_failed_archive_write_does_not_fail_a_run_whose_documents_were_kept_and_is_counted() {
    let moto = Moto::start().await;
    let store: Arc<dyn ArchiveStore> =
        Arc::new(S3Archive::new(moto.s3_client().await, "no-such-bucket"));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let (logs, _guard) = LogCapture::start();

    let request = harness::request(json!({"time": "2026-03-01T10:00:00Z"}));
    let summary = job(&es.url(), &hub, store.clone())
        .run(&request, deadline())
        .await
        .expect("indexed: the run succeeds");
    assert_eq!(
        (summary.indexed, summary.archived, summary.archive_failed),
        (3, 0, 3)
    );
    let record: Value = serde_json::from_str(&docker_pulls::metrics::emf_line(
        "docker-pulls",
        0,
        &summary.counts,
    ))
    .expect("EMF JSON");
    assert_eq!(record["ArchiveFailed"], 3, "{record}");
    assert_eq!(record["Archived"], 0, "{record}");
    let metrics = record["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
    assert!(metrics.contains("\"ArchiveFailed\""), "{metrics}");
    let text = logs.text();
    assert!(
        text.contains("could not archive this run's documents") && text.contains("no-such-bucket"),
        "{text}"
    );

    let spool = Arc::new(MemorySpool::default());
    let response = run_at(
        &job(&unused_local_url(), &hub, store).with_spool(spool),
        "2026-03-01T10:05:00Z",
    )
    .await;
    assert_eq!(
        (
            &response["spooled"],
            &response["archive_failed"],
            &response["archived"]
        ),
        (&json!(3), &json!(3), &json!(0)),
        "{response}"
    );
}

// --- 3. SQL without a cluster ---------------------------------------------------

/// Runs written by the real code across two days, with the counts the fake
/// Hub served changing between runs; DuckDB reads the directory as Athena
/// would (`read_json`, hive partitioning) through tests/support/archive_sql.py.
#[tokio::test]
async fn duckdb_reads_the_archive_runs_wrote_rows_partitions_and_a_daily_delta() {
    let python = support::checkers::python();
    let has_duckdb = std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_duckdb && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED: duckdb is not importable by {} (pip install duckdb, or set CHECKERS_PYTHON); under CI this fails instead",
            python.display()
        );
        return;
    }
    let dir = tempdir("duckdb");
    let store: Arc<dyn ArchiveStore> = Arc::new(DirArchive::new(&dir));
    let hub = FakeHub::start().await;
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store);
    // (time, httpd pulls, mysql pulls); netatmobeat stays at 159.
    let runs = [
        ("2026-03-01T10:00:00Z", 2_244_658_322u64, 1_000),
        ("2026-03-01T22:00:00Z", 2_244_659_322, 1_040),
        ("2026-03-02T09:00:00Z", 2_244_660_000, 1_100),
        ("2026-03-02T21:00:00Z", 2_244_661_500, 1_090),
    ];
    for (time, httpd, mysql) in runs {
        hub.add_repo("library", "httpd", httpd, 3321);
        hub.add_repo("library", "mysql", mysql, 15);
        hub.add_repo("radoondas", "netatmobeat", 159, 0);
        let response = run_at(&job, time).await;
        assert_eq!(response["archived"], 3, "{response}");
    }
    let output = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/support/archive_sql.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(&dir)
        .output()
        .expect("run archive_sql.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(result["rows"], 12, "{result}");
    assert_eq!(result["partitions"], json!([[2026, 3, 1], [2026, 3, 2]]));
    let daily = |repository: &str, day: &str| {
        result["daily"]
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r["repository"] == repository && r["day"] == day)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no daily row for {repository} {day}: {result}"))
    };
    // The day's highest count less the previous day's highest, as served.
    assert_eq!(
        daily("library/httpd", "2026-03-02")["pulls_gained"],
        2_244_661_500u64 - 2_244_659_322
    );
    assert_eq!(
        daily("library/mysql", "2026-03-02")["pulls_gained"],
        1_100 - 1_040
    );
    assert_eq!(
        daily("library/mysql", "2026-03-02")["last_pull_count"],
        1_100
    );
    assert_eq!(
        daily("library/httpd", "2026-03-01")["pulls_gained"],
        Value::Null
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `python` imports every module named, else (outside CI) why the
/// test is skipped.
fn python_has(python: &Path, modules: &str) -> bool {
    let ok = std::process::Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED: {modules} not importable by {} (scripts/setup installs them); under CI this fails instead",
            python.display()
        );
    }
    ok || std::env::var_os("CI").is_some()
}

/// The SQL of docs/operations.md as printed: every statement parses as
/// Athena SQL (sqlglot), the queries run in DuckDB over what the function
/// wrote (raw objects with a hand-made duplicate, and the Parquet files
/// `docker-pulls compact` made of them) against the Parquet table and the
/// raw view alike, with hand-computed answers; pyarrow reads the Parquet
/// files as a second reader.
#[tokio::test]
async fn the_documented_sql_parses_and_answers_over_raw_and_parquet() {
    let python = support::checkers::python();
    if !python_has(&python, "duckdb, sqlglot, pyarrow") {
        return;
    }
    let dir = tempdir("docs-sql");
    let store: Arc<dyn ArchiveStore> = Arc::new(DirArchive::new(&dir));
    let hub = FakeHub::start().await;
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store.clone());
    // (time, httpd pulls, httpd stars, mysql pulls); netatmobeat stays at 159.
    let runs = [
        ("2026-02-28T12:00:00Z", 100u64, 10u64, 50u64),
        ("2026-03-01T10:00:00Z", 200, 11, 60),
        ("2026-03-01T22:00:00Z", 260, 12, 65),
        ("2026-03-02T09:00:00Z", 300, 13, 80),
    ];
    for (time, httpd, stars, mysql) in runs {
        hub.add_repo("library", "httpd", httpd, stars);
        hub.add_repo("library", "mysql", mysql, 15);
        hub.add_repo("radoondas", "netatmobeat", 159, 0);
        assert_eq!(run_at(&job, time).await["archived"], 3);
    }
    // A hand-made second copy of the 22:00 run, with other counts, under a
    // key that sorts after the original: every reader keeps the original.
    let original = store
        .list("archive/year=2026/month=03/day=01/", None)
        .await
        .expect("list")
        .into_iter()
        .find(|k| k.contains("/20260301T220000"))
        .expect("the 22:00 object");
    let copy = format!(
        "{}ffffffffffffffff.ndjson.gz",
        original
            .trim_end_matches(".ndjson.gz")
            .trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    assert!(copy > original, "{copy}");
    let mut lines = archived(&*store)
        .await
        .remove(&original)
        .expect("the object");
    for line in &mut lines {
        line["http"]["docker_hub"]["pull_count"] = json!(999_999);
        line["http"]["docker_hub"]["star_count"] = json!(99);
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text.as_bytes()).expect("gzip");
    store
        .put(&copy, gz.finish().expect("gzip"))
        .await
        .expect("put the copy");

    let compacted = std::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
        .args([
            "compact",
            "--from",
            "2026-02-28",
            "--to",
            "2026-03-03",
            "--archive",
        ])
        .arg(&dir)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("docker-pulls compact");
    assert!(compacted.status.success(), "{compacted:?}");
    let summary: Value = serde_json::from_slice(&compacted.stdout).expect("summary");
    let outcomes: Vec<(&Value, &Value, &Value)> = summary["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| (&d["outcome"], &d["rows"], &d["duplicates"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("written"), &json!(3), &json!(0)),
            (&json!("written"), &json!(6), &json!(3)),
            (&json!("written"), &json!(3), &json!(0)),
        ],
        "{summary}"
    );

    let output = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/support/archive_sql.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("--docs")
        .arg(format!("{}/docs/operations.md", env!("CARGO_MANIFEST_DIR")))
        .arg(&dir)
        .output()
        .expect("run archive_sql.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");

    // The DDL: both tables, the view, three queries; the tables' columns
    // are the ones the function writes.
    assert_eq!(result["statements"], 6, "{result}");
    assert_eq!(result["views"], json!(["docker_pulls_recent"]));
    let parquet = &result["tables"]["docker_pulls"];
    assert_eq!(
        parquet["columns"],
        json!([
            "timestamp",
            "namespace",
            "name",
            "pull_count",
            "star_count",
            "collaborator_count"
        ])
    );
    assert_eq!(parquet["partitions"], json!(["date"]));
    assert_eq!(parquet["location"], "s3://BUCKET/parquet/");
    let mut actual = parquet["columns"].as_array().expect("columns").clone();
    actual.push(json!("date"));
    assert_eq!(result["actual_columns"]["docker_pulls"], json!(actual));
    assert_eq!(
        result["tables"]["docker_pulls_raw"]["columns"],
        json!(["line"])
    );
    assert_eq!(
        result["tables"]["docker_pulls_raw"]["location"],
        "s3://BUCKET/archive/"
    );

    let (h, m, n) = ("library/httpd", "library/mysql", "radoondas/netatmobeat");
    let daily = json!([
        [h, "2026-02-28", 100, null],
        [h, "2026-03-01", 260, 160],
        [h, "2026-03-02", 300, 40],
        [m, "2026-02-28", 50, null],
        [m, "2026-03-01", 65, 15],
        [m, "2026-03-02", 80, 15],
        [n, "2026-02-28", 159, null],
        [n, "2026-03-01", 159, 0],
        [n, "2026-03-02", 159, 0],
    ]);
    let top = json!([[h, 200], [m, 30], [n, 0]]);
    let stars = json!([
        [h, "2026-02-28", 10],
        [h, "2026-03-01", 12],
        [h, "2026-03-02", 13],
        [m, "2026-02-28", 15],
        [m, "2026-03-01", 15],
        [m, "2026-03-02", 15],
        [n, "2026-02-28", 0],
        [n, "2026-03-01", 0],
        [n, "2026-03-02", 0],
    ]);
    let queries = result["queries"].as_array().expect("queries");
    assert_eq!(queries.len(), 3, "{result}");
    for (query, expected) in queries.iter().zip([daily, top, stars]) {
        assert_eq!(query["parquet"], expected, "on the Parquet table: {query}");
        assert_eq!(query["recent"], expected, "on the raw view: {query}");
    }

    // pyarrow: three files, the schema compaction writes, every
    // measurement once with the original's counts.
    let arrow = &result["pyarrow"];
    assert_eq!(arrow["files"].as_array().map(Vec::len), Some(3), "{arrow}");
    assert_eq!(
        arrow["schema"],
        json!([
            "timestamp: timestamp[us, tz=UTC] not null",
            "namespace: string not null",
            "name: string not null",
            "pull_count: int64 not null",
            "star_count: int64 not null",
            "collaborator_count: int64"
        ])
    );
    assert_eq!(arrow["rows"], 12);
    let covered: Vec<usize> = arrow["covered_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(covered, [1, 3, 1], "the copy is covered, its rows left out");
    let httpd: Vec<(&Value, &Value)> = arrow["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["name"] == "httpd")
        .map(|r| (&r["timestamp"], &r["pull_count"]))
        .collect();
    assert_eq!(
        httpd,
        [
            (&json!("2026-02-28T12:00:00+00:00"), &json!(100)),
            (&json!("2026-03-01T10:00:00+00:00"), &json!(200)),
            (&json!("2026-03-01T22:00:00+00:00"), &json!(260)),
            (&json!("2026-03-02T09:00:00+00:00"), &json!(300)),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// --- 4. Replay ------------------------------------------------------------------

/// The times of the month of runs: every day of January 2026 at noon, a
/// second run on the 15th, and one run on each side of the month.
fn month_of_runs() -> (Vec<String>, Vec<String>) {
    let mut inside: Vec<String> = (1..=31)
        .map(|day| format!("2026-01-{day:02}T12:00:00Z"))
        .collect();
    inside.push("2026-01-15T12:05:00Z".into());
    inside.push("2026-01-31T23:59:59.999Z".into());
    let outside = vec![
        "2025-12-31T23:55:00Z".to_owned(),
        "2026-02-01T00:00:00Z".to_owned(),
    ];
    (inside, outside)
}

fn in_january(documents: &BTreeMap<(String, String), Value>) -> BTreeMap<(String, String), Value> {
    documents
        .iter()
        .filter(|(_, source)| {
            source["@timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-01-"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A month indexed through normal runs (archive in S3), the index deleted,
/// one replay: the identical set of documents, ids and sources, and nothing
/// from outside the range. Replaying again (as the Lambda event) creates
/// nothing and says so.
#[tokio::test]
async fn replay_rebuilds_a_deleted_index_with_identical_ids_and_sources_and_twice_adds_nothing() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let store: Arc<dyn ArchiveStore> = Arc::new(S3Archive::new(moto.s3_client().await, BUCKET));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store.clone());
    let (inside, outside) = month_of_runs();
    for (n, time) in inside.iter().chain(&outside).enumerate() {
        hub.add_repo("library", "mysql", 1_000 + n as u64 * 37, 15);
        run_at(&job, time).await;
    }
    let before = indexed(&es);
    let january = in_january(&before);
    assert_eq!(january.len(), inside.len() * 3);
    assert_eq!(before.len(), (inside.len() + outside.len()) * 3);

    delete_index(&es, "docker-pulls-2026").await;
    delete_index(&es, "docker-pulls-2025").await;
    assert!(indexed(&es).is_empty());

    let request = ReplayRequest::new("2026-01-01", "2026-02-01", None).expect("valid");
    let summary = job
        .replay(&request, deadline(), &Silent)
        .await
        .expect("replay");
    assert!(summary.all_indexed(), "{summary:?}");
    assert_eq!(summary.objects, inside.len());
    assert_eq!(
        (summary.created, summary.already_indexed, summary.documents),
        (january.len(), 0, january.len())
    );
    assert_eq!(summary.cursor, None);
    assert_eq!(
        indexed(&es),
        january,
        "ids and sources as the runs indexed them"
    );

    let again = job
        .handle(
            &json!({"action": "replay", "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}),
            deadline(),
        )
        .await
        .expect("replay event");
    assert_eq!(
        (
            &again["created"],
            &again["already_indexed"],
            &again["complete"]
        ),
        (&json!(0), &json!(january.len()), &json!(true)),
        "{again}"
    );
    assert_eq!(indexed(&es), january);

    // From a cursor: S3 lists from that key on, in every partition.
    let keys = store.list(archive::PREFIX, None).await.expect("list");
    let january_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("archive/year=2026/month=01/"))
        .collect();
    assert_eq!(january_keys.len(), inside.len());
    let request =
        ReplayRequest::new("2026-01-01", "2026-02-01", Some(january_keys[10])).expect("valid");
    let resumed = job
        .replay(&request, deadline(), &Silent)
        .await
        .expect("replay");
    assert_eq!(
        (resumed.objects, resumed.already_indexed, resumed.created),
        (inside.len() - 10, (inside.len() - 10) * 3, 0),
        "{resumed:?}"
    );
}

/// The daily compaction on S3 (moto) through the Lambda event: one Parquet
/// file a day, written once (a second event finds it up to date), a hand-
/// made duplicate left out; replay then reads the day from Parquet (one
/// file instead of its objects) and rebuilds the index exactly.
#[tokio::test]
async fn the_compact_event_writes_each_day_once_to_s3_and_replay_reads_the_parquet() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let store: Arc<dyn ArchiveStore> = Arc::new(S3Archive::new(moto.s3_client().await, BUCKET));
    let es = FakeEs::start().await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let job = job(&es.url(), &hub, store.clone());
    for time in THREE_RUNS {
        run_at(&job, time).await;
    }
    let before = indexed(&es);
    let first = store
        .list("archive/year=2026/month=01/day=05/", None)
        .await
        .expect("list")
        .remove(0);
    let body = store.get(&first).await.expect("get");
    let copy = format!("{}-ffffffffffffffff.ndjson.gz", &first[..first.len() - 27]);
    assert!(copy > first, "{copy} after {first}");
    store.put(&copy, body).await.expect("a hand-made duplicate");

    let event = json!({"action": "compact", "day": "2026-01-05"});
    let compacted = job.handle(&event, deadline()).await.expect("compact");
    let day = &compacted["days"][0];
    assert_eq!(
        (
            &day["outcome"],
            &day["rows"],
            &day["objects"],
            &day["duplicates"]
        ),
        (&json!("written"), &json!(6), &json!(3), &json!(3)),
        "{compacted}"
    );
    let key = day["key"].as_str().expect("key").to_owned();
    assert!(
        key.starts_with("parquet/date=2026-01-05/") && key.ends_with(".parquet"),
        "{key}"
    );
    let again = job.handle(&event, deadline()).await.expect("compact again");
    assert_eq!(
        (&again["days"][0]["outcome"], &again["days"][0]["key"]),
        (&json!("up_to_date"), &json!(key)),
        "{again}"
    );
    let files = store.list_all("parquet/").await.expect("list");
    assert_eq!(files, std::slice::from_ref(&key));
    let rows = archive::compact::read_parquet(&*store, &key)
        .await
        .expect("rows");
    let from_parquet: BTreeMap<(String, String), Value> = rows
        .iter()
        .map(|d| {
            (
                (format!("docker-pulls-{}", d.timestamp.year()), d.id()),
                serde_json::to_value(d).expect("JSON"),
            )
        })
        .collect();
    let day_one: BTreeMap<_, _> = before
        .iter()
        .filter(|((_, id), _)| id.contains("@2026-01-05"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(from_parquet, day_one, "each measurement once, as indexed");

    for index in es.indices() {
        delete_index(&es, &index).await;
    }
    let request = ReplayRequest::new("2026-01-05", "2026-01-07", None).expect("valid");
    let summary = job
        .replay(&request, deadline(), &Silent)
        .await
        .expect("replay");
    assert!(summary.all_indexed(), "{summary:?}");
    assert_eq!(
        (
            summary.parquet_files,
            summary.objects,
            summary.duplicates,
            summary.created
        ),
        (1, 1, 0, 9),
        "the 5th from Parquet, the 6th's one object: {summary:?}"
    );
    assert_eq!(indexed(&es), before);

    // An object listed, then gone (S3 answers NoSuchKey): reported by key
    // and passed over, the others read.
    let gone = "archive/year=2026/month=01/day=06/20260106T090000.000Z-00000000000000aa.ndjson.gz";
    let failure = store.read(gone).await.expect_err("no such key");
    assert!(failure.permanent, "{failure}");
    let mut options = archive::reader::Options::new(
        time::OffsetDateTime::UNIX_EPOCH,
        time::OffsetDateTime::now_utc(),
    );
    let sixth = store
        .list("archive/year=2026/month=01/day=06/", None)
        .await
        .expect("list");
    options.keys = Some(vec![gone.to_owned(), sixth[0].clone()]);
    let mut reader = archive::reader::Reader::new(&*store, options);
    let (mut documents, mut unreadable) = (0, Vec::new());
    while let Some(item) = reader.next().await.expect("reads") {
        match item {
            archive::reader::Item::Document(_) => documents += 1,
            archive::reader::Item::Unreadable(u) => unreadable.push(u.key),
        }
    }
    assert_eq!((documents, unreadable), (3, vec![gone.to_owned()]));
}

/// Writes `times` through normal runs into a directory archive; the
/// documents the runs indexed.
async fn archive_runs(
    dir: &Path,
    es: &FakeEs,
    times: &[&str],
) -> (Job<Settings>, BTreeMap<(String, String), Value>) {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let job = job(&es.url(), &hub, Arc::new(DirArchive::new(dir)));
    for time in times {
        run_at(&job, time).await;
    }
    let before = indexed(es);
    for index in es.indices() {
        delete_index(es, &index).await;
    }
    (job, before)
}

const THREE_RUNS: [&str; 3] = [
    "2026-01-05T10:00:00Z",
    "2026-01-05T10:05:00Z",
    "2026-01-06T10:00:00Z",
];

#[tokio::test]
async fn a_document_its_index_refuses_is_reported_never_dropped_silently() {
    let dir = tempdir("refused");
    let es = FakeEs::start().await;
    let (job, before) = archive_runs(&dir, &es, &THREE_RUNS).await;
    let refused = "library/httpd@2026-01-05T10:05:00Z";
    es.fail_item(
        refused,
        100,
        400,
        "mapper_parsing_exception",
        "failed to parse field [http.docker_hub.pull_count] of type [long]",
    );
    let request = ReplayRequest::new("2026-01-01", "2026-02-01", None).expect("valid");
    let summary = job
        .replay(&request, deadline(), &Silent)
        .await
        .expect("replay");
    assert!(summary.complete);
    assert!(!summary.all_indexed(), "a refusal is not success");
    assert_eq!((summary.created, summary.rejected), (8, 1), "{summary:?}");
    assert_eq!(summary.rejections.len(), 1);
    let rejection = &summary.rejections[0];
    assert_eq!(
        (rejection.index.as_str(), rejection.id.as_str()),
        ("docker-pulls-2026", refused)
    );
    assert!(
        rejection.reason.contains("mapper_parsing_exception"),
        "{rejection:?}"
    );
    let response = serde_json::to_value(&summary).expect("JSON");
    assert_eq!(response["rejections"][0]["id"], refused, "{response}");
    let after = indexed(&es);
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.keys().any(|(_, id)| id == refused));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Elasticsearch down: replay stops at the first object with a cursor and
/// counts what it could not index; the same request with the cursor, once
/// Elasticsearch is back, indexes everything.
#[tokio::test]
async fn replay_stops_with_a_cursor_when_elasticsearch_is_down_and_continues_from_it() {
    let dir = tempdir("down");
    let es = FakeEs::start().await;
    let (_, before) = archive_runs(&dir, &es, &THREE_RUNS).await;
    let hub = FakeHub::start().await;
    let store: Arc<dyn ArchiveStore> = Arc::new(DirArchive::new(&dir));
    let down = job(&unused_local_url(), &hub, store.clone());
    let request = ReplayRequest::new("2026-01-05", "2026-01-07", None).expect("valid");
    let stopped = down
        .replay(&request, deadline(), &Silent)
        .await
        .expect("a summary");
    assert!(!stopped.complete);
    // One _bulk for the three objects' nine documents: none acknowledged,
    // so the cursor is the start of the range.
    assert_eq!(
        (stopped.created, stopped.not_indexed, stopped.objects),
        (0, 9, 3)
    );
    let cursor = stopped.cursor.clone().expect("a cursor");
    assert_eq!(cursor, "2026-01-05T00:00:00Z");
    assert!(
        stopped
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("could not connect")),
        "{stopped:?}"
    );

    let back = job(&es.url(), &hub, store);
    let request = ReplayRequest::new("2026-01-05", "2026-01-07", Some(&cursor)).expect("valid");
    let finished = back
        .replay(&request, deadline(), &Silent)
        .await
        .expect("replay");
    assert!(finished.all_indexed(), "{finished:?}");
    assert_eq!(finished.created, 9);
    assert_eq!(indexed(&es), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `count` documents of distinct repositories, stamped `at`.
fn many_documents(at: &str, count: usize) -> Vec<docker_pulls::document::Document> {
    let timestamp = docker_pulls::document::RunTime::parse(at).expect("time");
    (0..count)
        .map(|n| docker_pulls::document::Document {
            timestamp,
            stats: docker_pulls::document::RepositoryStats {
                namespace: "bench".into(),
                name: format!("repo-{n:05}"),
                pull_count: 1_000 + n as u64,
                star_count: 1,
                collaborator_count: Some(0),
            },
        })
        .collect()
}

/// The Lambda's manual event within a short deadline: batches span objects
/// (five objects of 2,000 documents go in two `_bulk`s of 5,000); it stops
/// in time with a cursor, the last acknowledged document; the next
/// invocation with that cursor finishes; together they index every
/// document once.
#[tokio::test]
async fn lambda_replay_stops_within_its_deadline_with_a_cursor_and_the_next_call_finishes() {
    let dir = tempdir("deadline");
    let es = FakeEs::start().await;
    let store = DirArchive::new(&dir);
    let mut ids = std::collections::BTreeSet::new();
    for minute in 0..5 {
        let at = format!("2026-01-05T10:{:02}:00Z", minute * 5);
        let documents = many_documents(&at, 2_000);
        ids.extend(documents.iter().map(|d| d.id()));
        let time = docker_pulls::document::RunTime::parse(&at).expect("time");
        let _ = time;
        archive::write::write_once(
            &store,
            &documents,
            time::OffsetDateTime::now_utc(),
            deadline(),
        )
        .await
        .expect("archived");
    }
    let hub = FakeHub::start().await;
    let job = job(&es.url(), &hub, Arc::new(store));
    // The first _bulk (5,000 documents) takes the 3 s delay and some: the
    // slowest batch then asks for 1.5 times that, more than is left.
    es.delay_responses(Duration::from_millis(3_000));
    let event = json!({"action": "replay", "from": "2026-01-05", "to": "2026-01-06"});
    let budget = Duration::from_millis(8_000);
    let started = Instant::now();
    let first = job
        .handle(&event, Deadline::after(budget))
        .await
        .expect("first call");
    assert!(
        started.elapsed() < budget + Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(first["complete"], false, "{first}");
    assert_eq!(
        (&first["created"], &first["bulk_requests"]),
        (&json!(5_000), &json!(1)),
        "{first}"
    );
    let cursor = first["cursor"].as_str().expect("a cursor").to_owned();
    assert_eq!(cursor, "2026-01-05T10:10:00Z/bench/repo-00999", "{first}");

    es.delay_responses(Duration::ZERO);
    let mut next = event.clone();
    next["cursor"] = json!(cursor);
    let second = job.handle(&next, deadline()).await.expect("second call");
    assert_eq!(second["complete"], true, "{second}");
    assert!(second.get("cursor").is_none(), "{second}");
    assert_eq!(
        (
            &second["created"],
            &second["already_indexed"],
            &second["bulk_requests"]
        ),
        (&json!(5_000), &json!(0), &json!(1)),
        "{second}"
    );
    let got: std::collections::BTreeSet<String> =
        indexed(&es).into_keys().map(|(_, id)| id).collect();
    assert_eq!(got, ids);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_replay_event_needs_an_archive_and_valid_bounds() {
    let hub = FakeHub::start().await;
    let es = FakeEs::start().await;
    let without = harness::job(settings(&es.url()), harness::quick_hub_options(hub.url()));
    let error = without
        .handle(
            &json!({"action": "replay", "from": "2026-01-01", "to": "2026-02-01"}),
            deadline(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ARCHIVE_BUCKET"), "{error}");
    assert_eq!(error.kind(), "ArchiveError");
    let error = without
        .handle(
            &json!({"action": "replay", "from": "2026-02-01", "to": "2026-01-01"}),
            deadline(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("must be before `to`"), "{error}");
    let error = without
        .handle(&json!({"action": "rewind"}), deadline())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "UnknownAction");
}

/// Local mode as a person runs it: runs archive to `--archive DIR`, the
/// index is deleted, `docker-pulls replay` rebuilds it and says so; the
/// second replay says already indexed.
#[tokio::test]
async fn local_runs_archive_to_a_directory_and_the_replay_command_rebuilds_the_index() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let dir = tempdir("local-replay");
    let binary = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"));
        command
            .args(args)
            .env("DOCKER_HUB_URL", hub.url())
            .env_remove("AWS_LAMBDA_RUNTIME_API");
        command
    };
    for time in THREE_RUNS {
        let output = binary(&["--images", &IMAGES.join(","), "--pipeline", "none"])
            .args(["--es-url", &es.url(), "--time", time, "--archive"])
            .arg(&dir)
            .output()
            .await
            .expect("the binary runs");
        assert!(output.status.success(), "{output:?}");
        let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
        assert_eq!(summary["archived"], 3, "{summary}");
    }
    let before = indexed(&es);
    delete_index(&es, "docker-pulls-2026").await;

    let replay = |from: &str, to: &str| {
        let mut command = binary(&["replay", "--from", from, "--to", to, "--pipeline", "none"]);
        command.args(["--es-url", &es.url(), "--archive"]).arg(&dir);
        command
    };
    let output = replay("2026-01-01", "2026-02-01")
        .output()
        .await
        .expect("replay runs");
    assert!(output.status.success(), "{output:?}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
    assert_eq!(
        (
            &summary["created"],
            &summary["already_indexed"],
            &summary["complete"]
        ),
        (&json!(9), &json!(0), &json!(true)),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("done in") && stderr.contains("9 created"),
        "{stderr}"
    );
    assert_eq!(indexed(&es), before);

    let output = replay("2026-01-01", "2026-02-01")
        .output()
        .await
        .expect("replay runs");
    assert!(output.status.success(), "{output:?}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
    assert_eq!(
        (&summary["created"], &summary["already_indexed"]),
        (&json!(0), &json!(9)),
        "{summary}"
    );

    let output = replay("2026-02-01", "2026-01-01")
        .output()
        .await
        .expect("replay runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be before `to`"));
    let _ = std::fs::remove_dir_all(&dir);
}

// --- 5. Bringing old history along ---------------------------------------------

/// A Metricbeat 7.10 `http.json` document as the 2021 recipe stored it (the
/// seed's own pipeline removed only some fields): counts re-encoded as
/// floats, millisecond timestamps, Hub fields the seed never listed.
fn metricbeat_source(time: &str, namespace: &str, name: &str, pulls: f64, stars: u64) -> Value {
    json!({
        "@timestamp": time,
        "fields": {"env": "home"},
        "tags": ["docker_hub"],
        "http": {"docker_hub": {
            "namespace": namespace, "name": name,
            "pull_count": pulls, "star_count": stars, "collaborator_count": 0,
            "affiliation": "", "content_types": ["image"], "date_registered": "2014-06-05T20:04:44Z",
            "media_types": ["application/vnd.oci.image.index.v1+json"], "storage_size": 1234567
        }}
    })
}

/// The history to export: Metricbeat-era documents in `docker-pulls-2021`
/// (pairs sharing a timestamp, so pages split ties), the function's own in
/// `docker-pulls-2026`, and one document of another metricset.
fn history() -> Vec<(&'static str, String, Value)> {
    let mut documents = Vec::new();
    for (n, time) in [
        "2021-01-15T10:07:40.660Z",
        "2021-01-15T10:12:40.660Z",
        "2021-01-15T23:57:40.001Z",
        "2021-01-16T00:02:40.500Z",
        "2021-01-16T00:07:40Z",
    ]
    .iter()
    .enumerate()
    {
        let pulls = 2.244658322e9 + n as f64 * 1000.0;
        documents.push((
            "docker-pulls-2021",
            format!("mb-httpd-{n}"),
            metricbeat_source(time, "library", "httpd", pulls, 3321),
        ));
        documents.push((
            "docker-pulls-2021",
            format!("mb-netatmobeat-{n}"),
            metricbeat_source(time, "radoondas", "netatmobeat", 159.0 + n as f64, 0),
        ));
    }
    documents.push((
        "docker-pulls-2021",
        "mb-system".into(),
        json!({"@timestamp": "2021-01-15T10:07:41Z", "metricset": {"name": "cpu"}, "system": {"cpu": {"total": {"pct": 0.5}}}}),
    ));
    // A docker_hub document whose count is not a whole number: asked for
    // (it has a pull_count), and refused with its reason, never guessed at.
    documents.push((
        "docker-pulls-2021",
        "mb-broken".into(),
        json!({"@timestamp": "2021-01-15T10:07:42Z", "http": {"docker_hub": {
            "namespace": "library", "name": "broken", "pull_count": 1.5, "star_count": 1}}}),
    ));
    for time in ["2026-01-05T10:00:00Z", "2026-01-05T10:05:00Z"] {
        for (namespace, name, pulls) in [
            ("library", "httpd", 4_871_203_345u64),
            ("library", "mysql", 7),
        ] {
            let source = json!({"@timestamp": time, "http": {"docker_hub": {
                "namespace": namespace, "name": name, "pull_count": pulls, "star_count": 1, "collaborator_count": 0}}});
            documents.push((
                "docker-pulls-2026",
                format!("{namespace}/{name}@{time}"),
                source,
            ));
        }
    }
    documents
}

/// What the project's pipeline (elasticsearch/pipeline.json, executed by
/// tests/support/ingest.rs) makes of every document of [`history`] that has
/// the shape; `@timestamp` as an instant (the archive writes it in the
/// function's own RFC 3339 form, `…40.66Z` for `…40.660Z`).
fn expected_export() -> Vec<Value> {
    let pipeline: Value = serde_json::from_str(include_str!("../elasticsearch/pipeline.json"))
        .expect("pipeline JSON");
    let mut expected: Vec<Value> = history()
        .into_iter()
        .filter(|(_, id, _)| id != "mb-system" && id != "mb-broken")
        .map(|(_, _, mut source)| {
            support::ingest::run_pipeline(&pipeline, &mut source).expect("the pipeline runs");
            normalized(source)
        })
        .collect();
    expected.sort_by_key(Value::to_string);
    expected
}

fn normalized(mut document: Value) -> Value {
    let instant = document["@timestamp"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp_nanos())
        .unwrap_or_else(|| panic!("no RFC 3339 @timestamp in {document}"));
    document["@timestamp"] = json!(instant.to_string());
    document
}

/// Every line of every archive object, normalised, sorted; and the objects'
/// keys.
async fn exported(store: &dyn ArchiveStore) -> (Vec<Value>, Vec<String>) {
    let objects = archived(store).await;
    let mut lines: Vec<Value> = objects
        .values()
        .flatten()
        .cloned()
        .map(normalized)
        .collect();
    lines.sort_by_key(Value::to_string);
    (lines, objects.into_keys().collect())
}

async fn bulk_load(url: &str, documents: &[(&str, String, Value)]) {
    let mut body = String::new();
    for (index, id, source) in documents {
        body.push_str(&json!({"index": {"_index": index, "_id": id}}).to_string());
        body.push('\n');
        body.push_str(&source.to_string());
        body.push('\n');
    }
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/_bulk?refresh=true"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("bulk")
        .json()
        .await
        .expect("bulk answer");
    assert_eq!(answer["errors"], false, "{answer}");
}

fn es_settings(url: &str) -> docker_pulls::config::EsSettings {
    settings(url).elasticsearch.expect("es settings")
}

fn check_export(summary: &docker_pulls::export::ExportSummary, lines: &[Value], keys: &[String]) {
    // Another metricset's document (mb-system) is not even asked for: the
    // search filters on http.docker_hub.pull_count.
    assert_eq!(summary.read, 15, "{summary:?}");
    assert_eq!((summary.archived, summary.refused), (14, 1), "{summary:?}");
    assert_eq!(summary.refusals[0].id, "mb-broken");
    assert!(
        summary.refusals[0]
            .reason
            .contains("not a non-negative integer"),
        "{summary:?}"
    );
    assert_eq!(lines, expected_export());
    // One object per index and UTC day, in the runs' layout.
    let days: Vec<&str> = keys
        .iter()
        .map(|k| k.rsplit_once('/').map_or("", |(folder, _)| folder))
        .collect();
    assert_eq!(
        days,
        [
            "archive/year=2021/month=01/day=15",
            "archive/year=2021/month=01/day=16",
            "archive/year=2026/month=01/day=05",
        ],
        "{keys:?}"
    );
    assert_eq!(summary.first.as_deref(), Some("2021-01-15T10:07:40.66Z"));
    assert_eq!(summary.last.as_deref(), Some("2026-01-05T10:05:00Z"));
}

/// From the strict fake, two hits a page: ties on `@timestamp` fall across
/// page boundaries and `search_after` must carry the namespace and name.
#[tokio::test]
async fn export_index_archives_metricbeat_era_and_current_documents_from_the_fake() {
    let es = FakeEs::start().await;
    bulk_load(&es.url(), &history()).await;
    let dir = tempdir("export-fake");
    let store = DirArchive::new(&dir);
    let client = docker_pulls::es::EsClient::new(
        docker_pulls::http_client().expect("http"),
        es_settings(&es.url()),
    );
    let mut request = ExportRequest::new("docker-pulls-*");
    request.page_size = 2;
    let summary = export_index(&client, &store, &request, deadline(), &Silent)
        .await
        .expect("export");
    let (lines, keys) = exported(&store).await;
    check_export(&summary, &lines, &keys);
    assert_eq!(summary.indices, ["docker-pulls-2021", "docker-pulls-2026"]);
    let searches = es
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_search"))
        .count();
    assert!(
        searches >= 8,
        "{searches} searches for 15 documents, 2 a page"
    );

    // The exported history replays into an empty cluster, and lands where a
    // run would have put it.
    let fresh = FakeEs::start().await;
    let hub = FakeHub::start().await;
    let replayed = job(&fresh.url(), &hub, Arc::new(DirArchive::new(&dir)))
        .replay(
            &ReplayRequest::new("2021-01-01", "2027-01-01", None).expect("valid"),
            deadline(),
            &Silent,
        )
        .await
        .expect("replay");
    assert!(replayed.all_indexed(), "{replayed:?}");
    assert_eq!(replayed.created, 14);
    assert!(
        fresh
            .document("docker-pulls-2021", "library/httpd@2021-01-15T10:07:40.66Z")
            .is_some()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// From osmem-server (OpenSearch 3 compatible): a dynamically mapped index
/// (namespace and name are text with a `.keyword` sub-field, so the
/// tiebreaker must use those) beside one mapped as keyword, through the
/// `export-index` command.
#[tokio::test]
async fn export_index_command_reads_osmem_server_with_dynamic_and_keyword_mappings() {
    let osmem = match Osmem::start().await {
        Ok(osmem) => osmem,
        Err(reason) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {reason}; under CI this fails instead");
            return;
        }
        Err(reason) => panic!("{reason}"),
    };
    let http = reqwest::Client::new();
    let mapping = json!({"mappings": {"properties": {
        "@timestamp": {"type": "date"},
        "http": {"properties": {"docker_hub": {"properties": {
            "namespace": {"type": "keyword"}, "name": {"type": "keyword"},
            "pull_count": {"type": "long"}, "star_count": {"type": "long"},
            "collaborator_count": {"type": "long"}}}}}}}});
    let created = http
        .put(format!("{}/docker-pulls-2026", osmem.url()))
        .json(&mapping)
        .send()
        .await
        .expect("create index");
    assert!(created.status().is_success(), "{created:?}");
    bulk_load(osmem.url(), &history()).await;
    let dynamic: Value = http
        .get(format!("{}/docker-pulls-2021/_mapping", osmem.url()))
        .send()
        .await
        .expect("mapping")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        dynamic["docker-pulls-2021"]["mappings"]["properties"]["http"]["properties"]["docker_hub"]
            ["properties"]["namespace"]["type"],
        "text",
        "{dynamic}"
    );

    // The library with two hits a page (real search_after on ties)…
    let dir = tempdir("export-osmem");
    let store = DirArchive::new(&dir);
    let client = docker_pulls::es::EsClient::new(
        docker_pulls::http_client().expect("http"),
        es_settings(osmem.url()),
    );
    let mut request = ExportRequest::new("docker-pulls-*");
    request.page_size = 2;
    let summary = export_index(&client, &store, &request, deadline(), &Silent)
        .await
        .expect("export");
    let (lines, keys) = exported(&store).await;
    check_export(&summary, &lines, &keys);
    let _ = std::fs::remove_dir_all(&dir);

    // …and the command, as a person runs it.
    let dir = tempdir("export-osmem-cli");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
        .args([
            "export-index",
            "--index",
            "docker-pulls-*",
            "--es-url",
            osmem.url(),
        ])
        .arg("--archive")
        .arg(&dir)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .await
        .expect("the binary runs");
    // One document could not be trimmed: reported, and the exit code says so.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary");
    assert_eq!(
        (
            &summary["archived"],
            &summary["refused"],
            &summary["refusals"][0]["id"]
        ),
        (&json!(14), &json!(1), &json!("mb-broken")),
        "{summary}"
    );
    let (lines, _) = exported(&DirArchive::new(&dir)).await;
    assert_eq!(lines, expected_export());
    let _ = std::fs::remove_dir_all(&dir);
}
