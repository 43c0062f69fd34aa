//! Nothing lost under ordinary faults: a proxy's 500, a wrong path, one
//! refused old index, one slow answer, a damaged or large spool object, a
//! spool that fails or stalls. Each test is one situation a user could meet,
//! and asserts what they would notice: every document arrives once, with its
//! original time, and the run answers before its deadline.

mod support;

use docker_pulls::config::Settings;
use docker_pulls::document::{Document, RepositoryStats, RunTime};
use docker_pulls::ndjson::BulkEntry;
use docker_pulls::retry::Deadline;
use docker_pulls::run::Job;
use docker_pulls::spool::{self, MemorySpool, SpoolError, SpoolStore};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness::{self, LogCapture};

const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];

fn scheduled(minutes_ago: u64) -> (Value, String) {
    harness::scheduled_event(Duration::from_secs(60 * minutes_ago))
}

/// Settings without the ingest pipeline: each send is one request, so the
/// requests can be counted.
fn settings(url: &str) -> Settings {
    let mut settings = harness::settings(&IMAGES, Some(url));
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    settings
}

fn job(settings: Settings, hub: &FakeHub, spool: Arc<dyn SpoolStore>) -> Job<Settings> {
    harness::job(settings, harness::quick_hub_options(hub.url())).with_spool(spool)
}

fn indexed(es: &FakeEs) -> BTreeMap<String, Value> {
    es.all_documents()
        .into_iter()
        .map(|(_, id, source)| (id, source))
        .collect()
}

/// Keys under `spool/rejected/`.
fn rejected_keys(spool: &MemorySpool) -> Vec<String> {
    spool
        .objects()
        .into_keys()
        .filter(|key| key.starts_with(spool::REJECTED_PREFIX))
        .collect()
}

/// A spool object for documents of `names` (namespace `acme`) stamped
/// `time`, as a run would have written it.
fn spooled_object(time: &str, names: &[&str]) -> (String, Vec<BulkEntry>) {
    let time = RunTime::parse(time).expect("a time");
    let entries: Vec<BulkEntry> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let document = Document {
                timestamp: time,
                stats: RepositoryStats {
                    namespace: "acme".into(),
                    name: (*name).into(),
                    pull_count: 1_000 + i as u64,
                    star_count: 3,
                    collaborator_count: Some(0),
                },
            };
            BulkEntry::new(
                &docker_pulls::document::index_name("docker-pulls", &time),
                &document,
            )
        })
        .collect();
    (spool::object_key(&time), entries)
}

async fn put_object(spool: &dyn SpoolStore, key: &str, entries: &[BulkEntry]) {
    spool
        .put(key, spool::encode_object(entries))
        .await
        .expect("put");
}

/// Issue 14 item 1: a proxy answering 500 to every `_bulk` of a run is not a
/// verdict on the documents. Nothing goes to `spool/rejected/`; once
/// Elasticsearch is back, all nine documents (a backlog object and two
/// runs) arrive.
#[tokio::test]
async fn a_proxys_500_to_every_bulk_of_a_run_rejects_nothing_and_all_arrive_later() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let (event, first) = scheduled(10);
    job(settings(&unused_local_url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("spooled");

    let rounds = harness::quick_bulk_options().max_rounds as usize;
    for _ in 0..rounds {
        es.fail_next_bulk(
            500,
            json!({"error": {"type": "exception", "reason": "upstream connect error"}, "status": 500}),
        );
    }
    let (event, second) = scheduled(5);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("a run whose documents are spooled succeeds");
    assert_eq!(response["spooled"], 3, "{response}");
    assert_eq!(response["rejected"], 0, "{response}");
    assert_eq!(es.bulk_request_count(), rounds, "retried, and no drain");
    assert!(
        response["elasticsearch_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("500")),
        "{response}"
    );
    assert_eq!(response["spool_backlog"], 2, "{response}");
    assert_eq!(rejected_keys(&spool), Vec::<String>::new());

    let (event, third) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["indexed"], 3, "{response}");
    assert_eq!(response["drained"], 6, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    let documents = indexed(&es);
    assert_eq!(documents.len(), 9);
    for time in [first, second, third] {
        assert_eq!(
            documents.keys().filter(|id| id.ends_with(&time)).count(),
            3,
            "{time}"
        );
    }
    assert!(spool.objects().is_empty(), "{:?}", spool.objects().keys());
}

/// Issue 14 item 1: a wrong path prefix in `elasticsearch/url` keeps
/// everything in the spool, whether Elasticsearch answers it (400, no
/// handler for the URI) or a proxy does (404, which names the URL and says
/// what to check).
#[tokio::test]
async fn a_wrong_path_in_the_url_spools_everything_and_says_what_to_check() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let wrong = format!("{}/proxy/elasticsearch", es.url());
    let (event, _) = scheduled(10);
    let response = job(settings(&wrong), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("spooled");
    assert_eq!(response["spooled"], 3, "{response}");
    assert_eq!(response["rejected"], 0, "{response}");
    let reason = response["elasticsearch_error"].as_str().unwrap_or_default();
    assert!(reason.contains("no handler found for uri"), "{reason}");

    let rounds = harness::quick_bulk_options().max_rounds as usize;
    for _ in 0..rounds {
        es.fail_next_bulk_raw(404, "text/html", "<html><body>404 Not Found</body></html>");
    }
    let (event, _) = scheduled(5);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("spooled");
    assert_eq!(response["spooled"], 3, "{response}");
    let reason = response["elasticsearch_error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("404") && reason.contains(&format!("{}/_bulk", es.url())),
        "{reason}"
    );
    assert!(reason.contains("wrong path"), "{reason}");
    assert_eq!(rejected_keys(&spool), Vec::<String>::new());

    let (event, _) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 6, "{response}");
    assert_eq!(indexed(&es).len(), 9);
}

/// Issue 14 item 2: last year's index under a write block holds back none
/// of the newer objects behind it, run after run; its own object waits, and
/// the log names the refusing index once per run.
#[tokio::test]
async fn a_write_blocked_old_index_does_not_hold_back_newer_objects() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    es.deny_index_writes("docker-pulls-2025");
    let spool = Arc::new(MemorySpool::default());
    let (old_key, old) = spooled_object("2025-12-31T23:55:00Z", &["a", "b", "c"]);
    let (newer_key, newer) = spooled_object("2026-01-01T00:00:00Z", &["a", "b", "c"]);
    let (newest_key, newest) = spooled_object("2026-01-01T00:05:00Z", &["a", "b", "c"]);
    put_object(spool.as_ref(), &old_key, &old).await;
    put_object(spool.as_ref(), &newer_key, &newer).await;
    put_object(spool.as_ref(), &newest_key, &newest).await;

    for (run, minutes_ago) in [12, 8, 4].into_iter().enumerate() {
        let (capture, guard) = LogCapture::start();
        let (event, _) = scheduled(minutes_ago);
        let response = job(settings(&es.url()), &hub, spool.clone())
            .handle(&event, harness::deadline())
            .await
            .expect("run succeeds");
        drop(guard);
        assert_eq!(response["indexed"], 3, "run {run}: {response}");
        let expected_drained = if run == 0 { 6 } else { 0 };
        assert_eq!(
            response["drained"], expected_drained,
            "run {run}: {response}"
        );
        assert_eq!(response["spool_backlog"], 1, "run {run}: {response}");
        let logs = capture.text();
        let named = logs
            .lines()
            .filter(|line| {
                line.contains("refuses documents for this index")
                    && line.contains("docker-pulls-2025")
            })
            .count();
        assert_eq!(named, 1, "run {run}: once per run:\n{logs}");
    }
    let documents = indexed(&es);
    for entry in newer.iter().chain(&newest) {
        assert!(documents.contains_key(&entry.id), "{} delivered", entry.id);
    }
    for entry in &old {
        assert!(!documents.contains_key(&entry.id), "{} refused", entry.id);
    }
    // The refused object waits whole, under its own time.
    assert_eq!(spool.list().await.expect("list"), vec![old_key.clone()]);
    let kept = spool.objects()[&old_key].clone();
    assert_eq!(
        docker_pulls::ndjson::decode_creates(&kept).expect("bulk-ready"),
        old
    );
    assert_eq!(rejected_keys(&spool), Vec::<String>::new());

    // The block is lifted: the object goes too.
    es.allow_index_writes();
    let (event, _) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 3, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
}

/// Issue 14 item 3: a slow answer to a one-document drain does not make
/// the same container's next run (200 repositories, 30 s) defer anything.
#[tokio::test]
async fn a_slow_tiny_drain_does_not_make_the_next_run_defer() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let images = hub.add_synthetic_repos("acme", 200);
    hub.set_latency(Duration::from_millis(20));
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let (key, entries) = spooled_object("2026-01-01T00:00:00Z", &["tiny"]);
    put_object(spool.as_ref(), &key, &entries).await;
    let one_container = job(settings(&es.url()), &hub, spool.clone());

    es.delay_responses(Duration::from_millis(1500));
    let response = one_container
        .handle(
            &json!({"images": ["httpd"]}),
            Deadline::after(Duration::from_secs(30)),
        )
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 1, "{response}");

    es.delay_responses(Duration::ZERO);
    let started = Instant::now();
    let response = one_container
        .handle(
            &json!({"images": images}),
            Deadline::after(Duration::from_secs(30)),
        )
        .await
        .expect("run succeeds");
    assert_eq!(response["deferred"], 0, "{response}");
    assert_eq!(response["indexed"], 200, "{response}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Issue 14 item 4: an object whose last line was cut mid-JSON delivers its
/// whole documents; only the damaged lines are set aside, with their
/// numbers and why.
#[tokio::test]
async fn a_damaged_object_loses_only_its_damaged_lines() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let (key, entries) = spooled_object("2026-01-01T00:00:00Z", &["a", "b", "c"]);
    let mut body = spool::encode_object(&entries);
    body.truncate(body.len() - 30);
    spool.put(&key, body).await.expect("put");

    let (event, _) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 2, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    let documents = indexed(&es);
    for entry in &entries[..2] {
        assert_eq!(
            documents.get(&entry.id),
            Some(&serde_json::from_str::<Value>(&entry.source).expect("json")),
            "{}",
            entry.id
        );
    }
    let aside = rejected_keys(&spool);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].ends_with(".unreadable.ndjson"), "{aside:?}");
    let records: Vec<Value> = String::from_utf8(spool.objects()[&aside[0]].clone())
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON record a line"))
        .collect();
    let lines: Vec<u64> = records
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, vec![5, 6], "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r["object"] == key.as_str() && r["reason"].is_string())
    );
    assert!(
        records[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&entries[2].id)),
        "the action line names the lost document: {records:?}"
    );
}

/// A spool that refuses writes under `spool/rejected/` (or everywhere).
struct FailingWrites {
    inner: MemorySpool,
    all: AtomicBool,
}

impl SpoolStore for FailingWrites {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move {
            if self.all.load(Ordering::SeqCst) || key.starts_with(spool::REJECTED_PREFIX) {
                return Err(SpoolError {
                    operation: "writing",
                    location: key.to_owned(),
                    message: "refused by the test".into(),
                });
            }
            self.inner.put(key, body).await
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>> {
        self.inner.get(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>> {
        self.inner.delete(key)
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        self.inner.list()
    }
}

/// Issue 14 item 5: when a run has both documents refused for good and
/// undelivered ones, the undelivered are spooled first; a failure to set
/// the refused ones aside no longer loses them, and the error counts
/// everything not kept.
#[tokio::test]
async fn the_recoverable_is_written_before_the_rejected() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    for all in [false, true] {
        let es = FakeEs::start().await;
        let spool = Arc::new(FailingWrites {
            inner: MemorySpool::default(),
            all: AtomicBool::new(all),
        });
        let (event, time) = scheduled(0);
        es.fail_item(
            &format!("library/httpd@{time}"),
            1,
            400,
            "document_parsing_exception",
            "failed to parse field [http.docker_hub.pull_count]",
        );
        es.fail_item(
            &format!("library/mysql@{time}"),
            100,
            503,
            "unavailable_shards_exception",
            "primary shard is not active",
        );
        let error = job(settings(&es.url()), &hub, spool.clone())
            .handle(&event, harness::deadline())
            .await
            .expect_err("a document could be lost: the invocation fails");
        let message = error.to_string();
        let expected = if all { "2 documents" } else { "1 documents" };
        assert!(message.starts_with(expected), "{message}");
        let kept: Vec<String> = spool
            .inner
            .objects()
            .values()
            .flat_map(|body| docker_pulls::ndjson::decode_creates(body).expect("bulk-ready"))
            .map(|entry| entry.id)
            .collect();
        if all {
            assert_eq!(kept, Vec::<String>::new());
        } else {
            assert_eq!(kept, vec![format!("library/mysql@{time}")], "spooled first");
        }
    }
}

/// A spool whose listing takes `delay` (or never answers).
struct SlowListing {
    inner: MemorySpool,
    delay: Option<Duration>,
}

impl SpoolStore for SlowListing {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>> {
        self.inner.put(key, body)
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>> {
        self.inner.get(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>> {
        self.inner.delete(key)
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        Box::pin(async move {
            match self.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending::<()>().await,
            }
            self.inner.list().await
        })
    }
}

/// Issue 14 item 6: a listing that takes 5 s, with a 10 s deadline: the run
/// answers in time, indexes its own documents and drains what time allows;
/// a listing that never answers is cut at the deadline, and the backlog is
/// reported as unknown rather than 0. Nothing is lost either way.
#[tokio::test]
async fn a_slow_spool_does_not_carry_the_run_past_its_deadline() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    for delay in [Some(Duration::from_secs(5)), None] {
        let es = FakeEs::start().await;
        let spool = Arc::new(SlowListing {
            inner: MemorySpool::default(),
            delay,
        });
        let (key, entries) = spooled_object("2026-01-01T00:00:00Z", &["a", "b"]);
        put_object(spool.as_ref(), &key, &entries).await;
        let budget = Duration::from_secs(10);
        let started = Instant::now();
        let (event, _) = scheduled(0);
        let response = job(settings(&es.url()), &hub, spool.clone())
            .handle(&event, Deadline::after(budget))
            .await
            .expect("run succeeds");
        assert!(
            started.elapsed() < budget,
            "{delay:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(response["indexed"], 3, "{delay:?}: {response}");
        match delay {
            Some(_) => {
                // Drained, or (a slow S3 makes the next object look too
                // costly for the time left) still waiting: never gone.
                let drained = response["drained"].as_u64().expect("drained");
                let waiting = spool.inner.objects().len() as u64;
                assert_eq!(drained + 2 * waiting, 2, "{response}");
                assert_eq!(response["spool_backlog"], waiting, "{response}");
            }
            None => {
                assert_eq!(response["drained"], 0, "{response}");
                assert!(response["spool_backlog"].is_null(), "unknown: {response}");
                // Still waiting, for a later run.
                assert_eq!(spool.inner.objects().len(), 1);
            }
        }
    }
}

/// Issue 14 item 7, the logic (memory is measured by `scripts/bench
/// --drain-object`): an object larger than a slice is indexed a slice at a
/// time; when the deadline comes part-way, what was not read goes back into
/// the spool under the object's time, and the next run finishes it. Every
/// document arrives once.
#[tokio::test]
async fn a_large_object_is_drained_a_slice_at_a_time_and_its_rest_kept_at_the_deadline() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let names: Vec<String> = (0..40).map(|i| format!("app{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (key, entries) = spooled_object("2026-01-01T00:00:00Z", &names);
    put_object(spool.as_ref(), &key, &entries).await;
    let one_pair = spool::encode_object(&entries[..1]).len() as u64;

    // Four documents a slice, each `_bulk` 700 ms: an 8 s run has time for
    // its own documents and a few slices, not for all ten.
    es.delay_responses(Duration::from_millis(700));
    let (event, _) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .with_drain_slice_bytes(one_pair * 4)
        .handle(&event, Deadline::after(Duration::from_secs(8)))
        .await
        .expect("run succeeds");
    let drained = response["drained"].as_u64().expect("drained");
    assert!(drained > 0 && drained < 40, "part of it: {response}");
    assert!(
        !spool.objects().contains_key(&key),
        "the object is replaced by what is left of it"
    );
    let left: usize = spool
        .objects()
        .iter()
        .filter(|(k, _)| k.starts_with(&key[..key.len() - 24]))
        .map(|(_, body)| {
            docker_pulls::ndjson::decode_creates(body)
                .expect("bulk-ready")
                .len()
        })
        .sum();
    assert_eq!(left as u64, 40 - drained, "{response}");

    es.delay_responses(Duration::ZERO);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .with_drain_slice_bytes(one_pair * 4)
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(
        response["drained"].as_u64(),
        Some(40 - drained),
        "{response}"
    );
    assert_eq!(response["spool_backlog"], 0, "{response}");
    let documents = indexed(&es);
    for entry in &entries {
        assert!(documents.contains_key(&entry.id), "{}", entry.id);
    }
    assert!(spool.objects().is_empty());
}

/// Issue 14 item 8: a run that fails still writes its metrics record with
/// what it did, so the alarms see the failures they exist for.
#[tokio::test]
async fn a_failed_run_still_writes_its_metrics_record() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    // No spool, Elasticsearch down: the documents could be lost, so the
    // invocation fails.
    let job = harness::job(
        settings(&unused_local_url()),
        harness::quick_hub_options(hub.url()),
    )
    .with_metrics_writer(
        "docker-pulls",
        Arc::new(move |line: &str| sink.lock().expect("lock").push(line.to_owned())),
    );
    let (event, _) = scheduled(0);
    let error = job
        .handle(&event, harness::deadline())
        .await
        .expect_err("fails");
    assert_eq!(error.kind(), "DocumentsNotIndexed");
    let lines = lines.lock().expect("lock").clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let record: Value = serde_json::from_str(&lines[0]).expect("one JSON object");
    assert_eq!(record["Requested"], 3, "{record}");
    assert_eq!(record["Indexed"], 0, "{record}");
    assert_eq!(
        record["SpoolBacklog"], 0,
        "no spool, nothing waiting: {record}"
    );
    assert!(record["Duration"].as_u64().is_some(), "{record}");
}
