//! The spool end to end: Elasticsearch outages, refusals and crashes never
//! lose or duplicate a data point. S3 is moto's (a real S3 API), the
//! directory spool is the one local mode uses, Elasticsearch is the strict
//! fake, Docker Hub the fake Hub.

mod support;

use docker_pulls::config::Settings;
use docker_pulls::retry::Deadline;
use docker_pulls::run::Job;
use docker_pulls::spool::{self, DirSpool, MemorySpool, S3Spool, SpoolError, SpoolStore};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness;
use support::moto::Moto;

const BUCKET: &str = "docker-pulls-spool";
const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];

/// A scheduled event `minutes_ago` minutes old (inside MAX_EVENT_AGE), and
/// its time.
fn scheduled(minutes_ago: u64) -> (Value, String) {
    harness::scheduled_event(Duration::from_secs(60 * minutes_ago))
}

fn job(settings: Settings, hub: &FakeHub, spool: Arc<dyn SpoolStore>) -> Job<Settings> {
    harness::job(settings, harness::quick_hub_options(hub.url())).with_spool(spool)
}

/// The documents Elasticsearch holds, by `_id`.
fn indexed(es: &FakeEs) -> BTreeMap<String, Value> {
    es.all_documents()
        .into_iter()
        .map(|(_, id, source)| (id, source))
        .collect()
}

/// Every document the three runs fetched is in Elasticsearch once, with the
/// run's own timestamp.
fn assert_every_run_indexed_once(es: &FakeEs, times: &[String]) {
    let documents = indexed(es);
    assert_eq!(
        documents.len(),
        IMAGES.len() * times.len(),
        "{:#?}",
        documents.keys()
    );
    for time in times {
        for (namespace, name) in [
            ("library", "httpd"),
            ("library", "mysql"),
            ("radoondas", "netatmobeat"),
        ] {
            let id = format!("{namespace}/{name}@{time}");
            let document = documents.get(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(document["@timestamp"], time.as_str(), "{id}");
            assert_eq!(document["http"]["docker_hub"]["name"], name, "{id}");
        }
    }
}

/// Two runs while Elasticsearch is unreachable, then one while it is back:
/// the first two succeed by spooling, the third indexes its own documents
/// and drains both spooled runs.
async fn outage_then_recovery(spool: Arc<dyn SpoolStore>) {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let down = unused_local_url();
    let mut times = Vec::new();

    for minutes_ago in [10, 5] {
        let (event, time) = scheduled(minutes_ago);
        let response = job(harness::settings(&IMAGES, Some(&down)), &hub, spool.clone())
            .handle(&event, harness::deadline())
            .await
            .expect("a run whose documents are spooled succeeds");
        assert_eq!(response["indexed"], 0, "{response}");
        assert_eq!(response["spooled"], 3, "{response}");
        assert!(
            response["elasticsearch_error"].as_str().is_some_and(
                |e| e.contains("could not connect to Elasticsearch at http://127.0.0.1:")
            ),
            "{response}"
        );
        times.push(time);
    }
    assert_eq!(spool.list().await.expect("list").len(), 2);

    let (event, time) = scheduled(0);
    times.push(time);
    let response = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    )
    .handle(&event, harness::deadline())
    .await
    .expect("run succeeds");
    assert_eq!(response["indexed"], 3, "{response}");
    assert_eq!(response["spooled"], 0, "{response}");
    assert_eq!(response["drained"], 6, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    assert_eq!(spool.list().await.expect("list"), Vec::<String>::new());
    assert_every_run_indexed_once(&es, &times);
}

#[tokio::test]
async fn elasticsearch_unreachable_for_two_runs_then_back_loses_nothing_on_s3() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    outage_then_recovery(Arc::new(S3Spool::new(moto.s3_client().await, BUCKET))).await;
    assert_eq!(moto.keys(BUCKET).await, Vec::<String>::new());
}

#[tokio::test]
async fn elasticsearch_unreachable_for_two_runs_then_back_loses_nothing_in_a_directory() {
    let dir = tempdir("outage");
    outage_then_recovery(Arc::new(DirSpool::new(&dir))).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "docker-pulls-{name}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Local mode, as people run it from cron: the real binary with `--spool`.
#[tokio::test]
async fn local_mode_spools_to_a_directory_and_drains_it_when_elasticsearch_is_back() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let dir = tempdir("local");
    let down = unused_local_url();
    let mut times = Vec::new();
    for (minutes_ago, es_url) in [(10, down.as_str()), (5, down.as_str()), (0, &es.url())] {
        let (_, time) = scheduled(minutes_ago);
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
            .args(["--images", &IMAGES.join(","), "--es-url", es_url])
            .args(["--pipeline", "none", "--time", &time, "--spool"])
            .arg(&dir)
            .env("DOCKER_HUB_URL", hub.url())
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .await
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let summary: Value = serde_json::from_str(&stdout).expect("summary on stdout");
        if es_url == down {
            assert_eq!(summary["spooled"], 3, "{summary}");
        } else {
            assert_eq!(
                (
                    &summary["indexed"],
                    &summary["drained"],
                    &summary["spool_backlog"]
                ),
                (&json!(3), &json!(6), &json!(0)),
                "{summary}"
            );
        }
        times.push(time);
    }
    assert_every_run_indexed_once(&es, &times);
    let left: Vec<_> = std::fs::read_dir(dir.join("spool"))
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn five_hundreds_to_the_end_are_spooled_and_the_run_succeeds() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    for _ in 0..100 {
        es.fail_next_bulk(503, json!({"error": "unavailable", "status": 503}));
    }
    let spool = Arc::new(MemorySpool::default());
    let (event, _) = scheduled(0);
    let response = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    )
    .handle(&event, Deadline::after(Duration::from_secs(8)))
    .await
    .expect("spooled: the run succeeds");
    assert_eq!(response["spooled"], 3, "{response}");
    assert_eq!(response["spool_backlog"], 1, "{response}");
    assert!(
        response["elasticsearch_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{response}"
    );
    let objects = spool.objects();
    let (key, body) = objects.iter().next().expect("one object");
    assert!(
        key.starts_with("spool/") && key.ends_with(".ndjson"),
        "{key}"
    );
    let entries = docker_pulls::ndjson::decode_creates(body).expect("bulk-ready NDJSON");
    assert_eq!(entries.len(), 3);
    assert!(indexed(&es).is_empty());
}

#[tokio::test]
async fn elasticsearch_down_and_the_spool_unwritable_fails_the_invocation() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let down = unused_local_url();
    let (event, _) = scheduled(0);

    // S3 on moto, but the bucket does not exist.
    let moto = Moto::start().await;
    let spool = Arc::new(S3Spool::new(moto.s3_client().await, "no-such-bucket"));
    let error = job(harness::settings(&IMAGES, Some(&down)), &hub, spool)
        .handle(&event, harness::deadline())
        .await
        .expect_err("documents could be lost: the invocation fails");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "DockerPulls.SpoolWriteFailed");
    assert!(
        diagnostic.error_message.contains("3 documents")
            && diagnostic
                .error_message
                .contains("s3://no-such-bucket/spool/"),
        "{}",
        diagnostic.error_message
    );

    // No spool configured at all: the documents are not indexed, so the
    // invocation fails (EventBridge retries it).
    let error = harness::job(
        harness::settings(&IMAGES, Some(&down)),
        harness::quick_hub_options(hub.url()),
    )
    .handle(&event, Deadline::after(Duration::from_secs(8)))
    .await
    .expect_err("not indexed, no spool");
    assert_eq!(
        lambda_runtime::Diagnostic::from(error).error_type,
        "DockerPulls.DocumentsNotIndexed"
    );
}

/// A spool that "crashes" after indexing: every delete is lost, as if the
/// function died between the `_bulk` answer and the delete.
struct CrashBeforeDelete<S> {
    inner: S,
    crashing: AtomicBool,
}

impl<S: SpoolStore> SpoolStore for CrashBeforeDelete<S> {
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
        if self.crashing.load(Ordering::SeqCst) {
            return Box::pin(async move {
                Err(SpoolError {
                    operation: "deleting",
                    location: key.to_owned(),
                    message: "the function died".into(),
                })
            });
        }
        self.inner.delete(key)
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        self.inner.list()
    }
}

#[tokio::test]
async fn a_crash_after_indexing_but_before_deleting_duplicates_nothing() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let spool = Arc::new(CrashBeforeDelete {
        inner: S3Spool::new(moto.s3_client().await, BUCKET),
        crashing: AtomicBool::new(true),
    });
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let down = unused_local_url();
    // No pipeline: each send is one request, so sends can be counted.
    let settings = |url: &str| {
        let mut settings = harness::settings(&IMAGES, Some(url));
        if let Some(es) = settings.elasticsearch.as_mut() {
            es.pipeline = None;
        }
        settings
    };

    let (event, spooled_time) = scheduled(5);
    job(settings(&down), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("spooled");

    // Elasticsearch is back: the backlog is indexed, but the delete is lost.
    let (event, second_time) = scheduled(0);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 3, "{response}");
    assert_eq!(response["spool_backlog"], 1, "still there: {response}");

    // The next run sends the same object again: 409s, counted as already
    // indexed (not as drained: the contract of 2026-12-03 counts in
    // `drained` only what a run delivered), and now it is deleted. Nothing
    // is indexed twice.
    spool.crashing.store(false, Ordering::SeqCst);
    let (event, third_time) = scheduled(0);
    let mut event = event;
    // A different run time than the second run (same minute is fine: a
    // retry of it would add nothing either).
    event["time"] = json!(third_time);
    let response = job(settings(&es.url()), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 0, "{response}");
    assert_eq!(response["drained_already_indexed"], 3, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    let bulk_ids: Vec<String> = es
        .bulk_requests()
        .iter()
        .flat_map(|r| r.ndjson())
        .filter_map(|line| line["create"]["_id"].as_str().map(str::to_owned))
        .filter(|id| id.ends_with(&spooled_time))
        .collect();
    assert_eq!(bulk_ids.len(), 6, "sent twice: {bulk_ids:?}");
    let mut times = vec![spooled_time, second_time];
    if third_time != times[1] {
        times.push(third_time);
    }
    assert_every_run_indexed_once(&es, &times);
    assert_eq!(moto.keys(BUCKET).await, Vec::<String>::new());
}

#[tokio::test]
async fn overlapping_runs_draining_the_same_backlog_duplicate_nothing() {
    let dir = tempdir("overlap");
    let spool = Arc::new(DirSpool::new(&dir));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let down = unused_local_url();
    let mut times = Vec::new();
    for minutes_ago in [12, 9, 6] {
        let (event, time) = scheduled(minutes_ago);
        job(harness::settings(&IMAGES, Some(&down)), &hub, spool.clone())
            .handle(&event, harness::deadline())
            .await
            .expect("spooled");
        times.push(time);
    }
    let (event, time) = scheduled(0);
    times.push(time);
    let first = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    );
    let second = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    );
    let (a, b) = tokio::join!(
        first.handle(&event, harness::deadline()),
        second.handle(&event, harness::deadline())
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    let total = |field: &str| a[field].as_u64().unwrap_or(0) + b[field].as_u64().unwrap_or(0);
    assert_eq!(total("indexed") + total("already_indexed"), 6, "{a}\n{b}");
    // Each spooled document is created by exactly one of the two runs:
    // `drained` counts only what a run delivered (the contract of
    // 2026-12-03), so the two add up to the backlog, never more.
    assert_eq!(total("drained"), 9, "{a}\n{b}");
    assert_eq!(spool.list().await.expect("list"), Vec::<String>::new());
    assert_every_run_indexed_once(&es, &times);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn per_item_403_and_404_are_spooled_with_their_reason_and_never_resent_without_the_pipeline()
{
    for (case, setup, expected) in [
        (
            "no write privilege",
            (|es: &FakeEs| es.deny_index_writes("docker-pulls-*")) as fn(&FakeEs),
            "`create_doc`",
        ),
        (
            "no privilege to create the index",
            (|es: &FakeEs| {
                es.deny_index_creation();
                es.deny_index_writes("docker-pulls-*");
            }) as fn(&FakeEs),
            "`auto_configure`",
        ),
        (
            "auto_create_index off",
            (|es: &FakeEs| es.disable_auto_create_index()) as fn(&FakeEs),
            "`action.auto_create_index`",
        ),
    ] {
        let hub = FakeHub::start().await;
        hub.add_fixture_repos();
        let es = FakeEs::start().await;
        // Our pipeline is installed: what refuses the items is the cluster.
        es.put_pipeline(
            "docker-hub-pulls",
            docker_pulls::es::setup::pipeline().expect("bundled pipeline"),
        );
        setup(&es);
        let spool = Arc::new(MemorySpool::default());
        let (event, _) = scheduled(0);
        let response = job(
            harness::settings(&IMAGES, Some(&es.url())),
            &hub,
            spool.clone(),
        )
        .handle(&event, harness::deadline())
        .await
        .unwrap_or_else(|e| panic!("{case}: spooled, so the run succeeds: {e}"));
        assert_eq!(response["spooled"], 3, "{case}: {response}");
        let reason = response["elasticsearch_error"].as_str().unwrap_or_default();
        assert!(reason.contains(expected), "{case}: {reason}");
        assert!(!reason.contains("pipeline"), "{case}: {reason}");
        // One request: a refusal is not re-sent without the pipeline.
        assert_eq!(es.bulk_request_count(), 1, "{case}");
        assert!(
            es.bulk_requests()[0].query_param("pipeline").is_some(),
            "{case}"
        );
        assert_eq!(spool.list().await.expect("list").len(), 1, "{case}");
    }
}

#[tokio::test]
async fn ingest_failures_answered_as_500_are_resent_without_the_pipeline_not_retried() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    es.ingest_failures_as_500();
    // The seed's pipeline fails on documents that arrive already trimmed.
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/elasticsearch/seed-pipeline.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("the seed's pipeline"),
    )
    .expect("pipeline JSON");
    es.put_pipeline("docker-hub-pulls", seed);
    let spool = Arc::new(MemorySpool::default());
    let (event, _) = scheduled(0);
    let response = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    )
    .handle(&event, harness::deadline())
    .await
    .expect("run succeeds");
    assert_eq!(response["indexed"], 3, "{response}");
    assert_eq!(response["spooled"], 0, "{response}");
    // Once through the pipeline (refused with 500s), once without it.
    assert_eq!(es.bulk_request_count(), 2);
    assert!(spool.objects().is_empty());
}

#[tokio::test]
async fn documents_refused_for_good_go_to_rejected_and_are_not_retried() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let (event, time) = scheduled(0);
    let id = format!("library/httpd@{time}");
    es.fail_item(
        &id,
        10,
        400,
        "mapper_parsing_exception",
        "failed to parse field [http.docker_hub.pull_count] of type [long]",
    );
    let mut settings = harness::settings(&IMAGES, Some(&es.url()));
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    let response = job(settings.clone(), &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("set aside, nothing lost: the run succeeds");
    assert_eq!(response["indexed"], 2, "{response}");
    assert_eq!(response["rejected"], 1, "{response}");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    let objects = spool.objects();
    let (key, body) = objects.iter().next().expect("one rejected object");
    assert!(key.starts_with(spool::REJECTED_PREFIX), "{key}");
    let record: Value = serde_json::from_slice(body).expect("one JSON record");
    assert_eq!(record["_id"], id.as_str());
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.contains("mapper_parsing_exception")),
        "{record}"
    );
    assert_eq!(record["document"]["@timestamp"], time.as_str());

    // The next run does not send it again.
    let requests_before = es.bulk_request_count();
    let (event, _) = scheduled(0);
    let mut event = event;
    event["images"] = json!(["radoondas/netatmobeat"]);
    let response = job(settings, &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["drained"], 0, "{response}");
    let resent = es.bulk_requests()[requests_before..]
        .iter()
        .flat_map(|r| r.ndjson())
        .any(|line| line["create"]["_id"] == id.as_str());
    assert!(!resent);
}

#[tokio::test]
async fn the_drain_goes_oldest_first_and_stops_within_the_deadline() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let spool = Arc::new(MemorySpool::default());
    let down = unused_local_url();
    let mut spooled_times = Vec::new();
    for minutes_ago in [14, 11, 8, 5] {
        let (event, time) = scheduled(minutes_ago);
        job(harness::settings(&IMAGES, Some(&down)), &hub, spool.clone())
            .handle(&event, harness::deadline())
            .await
            .expect("spooled");
        spooled_times.push(time);
    }
    // Each bulk request takes 1.5 s: a 6 s run indexes its own documents
    // and has time for at most part of the backlog.
    es.delay_responses(Duration::from_millis(1500));
    let (event, _) = scheduled(0);
    let started = Instant::now();
    let response = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    )
    .handle(&event, Deadline::after(Duration::from_secs(6)))
    .await
    .expect("run succeeds");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response["indexed"], 3, "{response}");
    let drained = response["drained"].as_u64().expect("drained");
    assert!(drained < 12, "stopped early: {response}");
    let backlog = response["spool_backlog"].as_u64().expect("backlog");
    assert_eq!(backlog as usize, spool.list().await.expect("list").len());
    assert_eq!(backlog, 4 - drained / 3, "{response}");
    // What was drained is the oldest.
    let documents = indexed(&es);
    for (i, time) in spooled_times.iter().enumerate() {
        let present = documents.keys().any(|id| id.ends_with(time.as_str()));
        assert_eq!(present, (i as u64) < drained / 3, "{time}: {response}");
    }

    // The next runs drain the rest.
    es.delay_responses(Duration::ZERO);
    let response = job(
        harness::settings(&IMAGES, Some(&es.url())),
        &hub,
        spool.clone(),
    )
    .handle(&event, harness::deadline())
    .await
    .expect("run succeeds");
    assert_eq!(response["spool_backlog"], 0, "{response}");
    assert_eq!(indexed(&es).len(), 15);
}

#[tokio::test]
async fn rejected_credentials_stop_sending_at_once_and_spool_everything() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    es.require_api_key("cmlnaHQ6a2V5");
    let spool = Arc::new(MemorySpool::default());
    let (event, time) = scheduled(0);
    let settings =
        harness::with_api_key(harness::settings(&IMAGES, Some(&es.url())), "d3Jvbmc6a2V5");
    let response = job(settings, &hub, spool.clone())
        .handle(&event, harness::deadline())
        .await
        .expect("spooled: the run succeeds");
    assert_eq!(response["spooled"], 3, "{response}");
    let reason = response["elasticsearch_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rejected the credentials (401)"),
        "{reason}"
    );
    assert!(!reason.contains("d3Jvbmc6a2V5"), "{reason}");
    assert_eq!(es.bulk_request_count(), 1, "stops at once");
    let objects = spool.objects();
    let body = objects.values().next().expect("one object");
    let ids: Vec<String> = docker_pulls::ndjson::decode_creates(body)
        .expect("bulk-ready")
        .into_iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(
        ids,
        [
            format!("library/httpd@{time}"),
            format!("library/mysql@{time}"),
            format!("radoondas/netatmobeat@{time}"),
        ]
    );
}
