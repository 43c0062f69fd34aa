//! Writing the archive (issue 21, items 1 and 2): each measurement once, and
//! no gaps.
//!
//! S3 is moto's, Elasticsearch the strict fake, Docker Hub the fake Hub.
//! Archive objects are read back with flate2 and serde_json directly, not
//! with the code under test, and compared as parsed JSON by `_id`.

mod support;

use docker_pulls::archive::{self, ArchiveStore, S3Archive};
use docker_pulls::config::Settings;
use docker_pulls::document::{Document, RepositoryStats, RunTime};
use docker_pulls::run::Job;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use support::fake_es::FakeEs;
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness;
use support::moto::Moto;

const BUCKET: &str = "docker-pulls-archive";
const SPOOL_BUCKET: &str = "docker-pulls-spool";
const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];

fn job(es_url: &str, hub: &FakeHub, store: Arc<dyn ArchiveStore>) -> Job<Settings> {
    let mut settings = harness::settings(&IMAGES, Some(es_url));
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    harness::job(settings, harness::quick_hub_options(hub.url())).with_archive(store)
}

async fn handle(job: &Job<Settings>, event: &Value) -> Value {
    job.handle(event, harness::deadline())
        .await
        .unwrap_or_else(|e| panic!("{event}: {e}"))
}

/// The `_id` of an archived or indexed document, as the function derives it.
fn id_of(document: &Value) -> String {
    let hub = &document["http"]["docker_hub"];
    format!(
        "{}/{}@{}",
        hub["namespace"].as_str().expect("namespace"),
        hub["name"].as_str().expect("name"),
        document["@timestamp"].as_str().expect("@timestamp")
    )
}

/// Every object under `prefix` in `store` and its lines, read with flate2
/// and serde_json (not the code under test).
async fn objects(store: &dyn ArchiveStore, prefix: &str) -> BTreeMap<String, Vec<Value>> {
    let mut objects = BTreeMap::new();
    for key in store.list(prefix, None).await.expect("list") {
        let body = store.get(&key).await.expect("get");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key} is not gzip: {e}"));
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}")))
            .collect();
        objects.insert(key, lines);
    }
    objects
}

/// Every archived line, and the same lines by `_id` (a duplicate would
/// make the map shorter than the list).
async fn archived_lines(store: &dyn ArchiveStore) -> (Vec<Value>, BTreeMap<String, Value>) {
    let lines: Vec<Value> = objects(store, archive::PREFIX)
        .await
        .into_values()
        .flatten()
        .collect();
    let by_id = lines.iter().map(|l| (id_of(l), l.clone())).collect();
    (lines, by_id)
}

/// What the fake Elasticsearch holds, by `_id`.
fn indexed(es: &FakeEs) -> BTreeMap<String, Value> {
    es.all_documents()
        .into_iter()
        .map(|(_, id, source)| (id, source))
        .collect()
}

/// The S3 archive in moto, and the same bucket through a client whose
/// endpoint is a closed port (S3 down), without the SDK's own retries so
/// the test stays quick.
async fn s3_up_and_down(moto: &Moto) -> (Arc<dyn ArchiveStore>, Arc<dyn ArchiveStore>) {
    let client = moto.s3_client().await;
    let down = client
        .config()
        .to_builder()
        .endpoint_url(unused_local_url())
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    (
        Arc::new(S3Archive::new(client, BUCKET)),
        Arc::new(S3Archive::new(aws_sdk_s3::Client::from_conf(down), BUCKET)),
    )
}

fn is_content_key(key: &str) -> bool {
    let Some(hex) = key
        .strip_suffix(".ndjson.gz")
        .and_then(|k| k.rsplit_once('-'))
        .map(|(_, hex)| hex)
    else {
        return false;
    };
    hex.len() == 16 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

// --- 1. Each measurement once ------------------------------------------------

/// Three scheduled events, the last delivered twice with Docker Hub's
/// counts moved on in between (Lambda delivers at least once): 9
/// measurements, 9 archive lines, the same documents Elasticsearch kept
/// (the first copy), in three objects named by their content.
#[tokio::test]
async fn the_same_scheduled_event_twice_archives_its_measurements_once() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (store, _) = s3_up_and_down(&moto).await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store.clone());

    let mut events = Vec::new();
    for minutes in [10, 5, 0] {
        let (event, _) = harness::scheduled_event(std::time::Duration::from_secs(minutes * 60));
        events.push(event);
    }
    for event in &events {
        let response = handle(&job, event).await;
        assert_eq!(
            (&response["archived"], &response["already_archived"]),
            (&json!(3), &json!(0)),
            "{response}"
        );
    }
    hub.add_repo("library", "httpd", 9_999_999_999, 3321);
    let again = handle(&job, &events[2]).await;
    assert_eq!(
        (
            &again["already_indexed"],
            &again["archived"],
            &again["already_archived"],
            &again["archive_failed"]
        ),
        (&json!(3), &json!(0), &json!(3), &json!(0)),
        "{again}"
    );

    let in_es = indexed(&es);
    assert_eq!(in_es.len(), 9);
    let (lines, by_id) = archived_lines(&*store).await;
    assert_eq!(lines.len(), 9, "each measurement once: {lines:#?}");
    assert_eq!(by_id, in_es, "the archive holds what Elasticsearch kept");
    let keys: Vec<String> = store.list(archive::PREFIX, None).await.expect("list");
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| is_content_key(k)), "{keys:?}");
}

/// A run at the same time as one already archived, measuring one more
/// repository (a retry after the image list changed, another stack): only
/// the new measurement is written, in an object of its own; a third run
/// of the same set writes nothing.
#[tokio::test]
async fn a_run_whose_set_partly_overlaps_the_archive_writes_only_what_is_new() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (store, _) = s3_up_and_down(&moto).await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store.clone());
    let time = "2026-03-01T10:00:00Z";

    let first = handle(
        &job,
        &json!({"time": time, "images": ["httpd", "library/mysql"]}),
    )
    .await;
    assert_eq!(first["archived"], 2, "{first}");
    let second = handle(&job, &json!({ "time": time })).await;
    assert_eq!(
        (&second["archived"], &second["already_archived"]),
        (&json!(1), &json!(2)),
        "{second}"
    );
    let third = handle(&job, &json!({ "time": time })).await;
    assert_eq!(
        (&third["archived"], &third["already_archived"]),
        (&json!(0), &json!(3)),
        "{third}"
    );

    let by_key = objects(&*store, archive::PREFIX).await;
    let names: Vec<Vec<String>> = by_key
        .values()
        .map(|lines| {
            let mut names: Vec<String> = lines
                .iter()
                .map(|l| {
                    l["http"]["docker_hub"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            names.sort();
            names
        })
        .collect();
    let mut names_sorted = names.clone();
    names_sorted.sort();
    assert_eq!(
        names_sorted,
        [
            vec!["httpd".to_owned(), "mysql".to_owned()],
            vec!["netatmobeat".to_owned()]
        ]
    );
    let (lines, by_id) = archived_lines(&*store).await;
    assert_eq!((lines.len(), by_id.len()), (3, 3));
    assert_eq!(by_id, indexed(&es));
    // Written for a day long over: compaction is told to do it again.
    let bucket = moto.keys(BUCKET).await;
    assert!(
        bucket.contains(&"parquet-due/2026-03-01".to_owned()),
        "{bucket:?}"
    );
}

/// Two stacks sharing one bucket, running at the same time with the same
/// run time (both list before either writes): one object survives, the
/// other writer's conditional PUT is told it exists; 3 lines, not 6.
#[tokio::test]
async fn two_stacks_writing_the_same_measurements_at_once_never_duplicate_them() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (store, _) = s3_up_and_down(&moto).await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let (es_a, es_b) = (FakeEs::start().await, FakeEs::start().await);
    let (a, b) = (
        job(&es_a.url(), &hub, store.clone()),
        job(&es_b.url(), &hub, store.clone()),
    );
    let event = json!({"time": "2026-03-01T10:00:00Z"});
    let (first, second) = tokio::join!(handle(&a, &event), handle(&b, &event));
    let written =
        first["archived"].as_u64().unwrap_or(99) + second["archived"].as_u64().unwrap_or(99);
    let already = first["already_archived"].as_u64().unwrap_or(99)
        + second["already_archived"].as_u64().unwrap_or(99);
    // Both may have written (the second PUT answered 412) or one may have
    // seen the other's object: either way, six documents accounted for.
    assert_eq!(written + already, 6, "{first} {second}");
    let (lines, by_id) = archived_lines(&*store).await;
    assert_eq!((lines.len(), by_id.len()), (3, 3), "{lines:#?}");
    assert_eq!(
        store.list(archive::PREFIX, None).await.expect("list").len(),
        1
    );
}

// --- 2. No gaps --------------------------------------------------------------

/// S3 down for the archive: the run still indexes, keeps a pending copy
/// beside the spool and says so (`archive_pending`, the `ArchivePending`
/// metric), and is not counted as a failure. The next run, S3 back,
/// archives its own documents and drains the pending copy: every
/// measurement archived once, nothing pending left.
#[tokio::test]
async fn an_archive_write_that_fails_lands_in_a_later_run_each_measurement_once() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    moto.create_bucket(SPOOL_BUCKET).await;
    let (up, down) = s3_up_and_down(&moto).await;
    let pending: Arc<dyn ArchiveStore> =
        Arc::new(S3Archive::new(moto.s3_client().await, SPOOL_BUCKET));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;

    let (first_event, _) = harness::scheduled_event(std::time::Duration::from_secs(300));
    let request = harness::request(first_event);
    let summary = job(&es.url(), &hub, down.clone())
        .with_archive_pending(pending.clone())
        .run(&request, harness::deadline())
        .await
        .expect("indexed: the run succeeds");
    assert_eq!(
        (
            summary.indexed,
            summary.archived,
            summary.archive_pending,
            summary.archive_failed
        ),
        (3, 0, 3, 0)
    );
    let record: Value = serde_json::from_str(&docker_pulls::metrics::emf_line(
        "docker-pulls",
        0,
        &summary.counts,
    ))
    .expect("EMF JSON");
    assert_eq!(
        (&record["ArchivePending"], &record["ArchiveFailed"]),
        (&json!(3), &json!(0)),
        "{record}"
    );
    let waiting = moto.keys(SPOOL_BUCKET).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert!(
        waiting[0].starts_with("archive-pending/archive/year=") && is_content_key(&waiting[0]),
        "{waiting:?}"
    );
    assert!(moto.keys(BUCKET).await.is_empty());

    let (second_event, _) = harness::scheduled_event(std::time::Duration::ZERO);
    let back = handle(
        &job(&es.url(), &hub, up.clone()).with_archive_pending(pending.clone()),
        &second_event,
    )
    .await;
    assert_eq!(
        (
            &back["archived"],
            &back["archive_drained"],
            &back["archive_pending_backlog"],
            &back["archive_pending"]
        ),
        (&json!(3), &json!(3), &json!(0), &json!(0)),
        "{back}"
    );
    assert!(
        moto.keys(SPOOL_BUCKET).await.is_empty(),
        "pending copy deleted"
    );
    let (lines, by_id) = archived_lines(&*up).await;
    assert_eq!(lines.len(), 6);
    assert_eq!(by_id, indexed(&es), "every measurement, once");
}

/// An archive store that fails its first `failures` writes (a 503, a
/// timeout), then is S3 again.
struct Flaky {
    inner: Arc<dyn ArchiveStore>,
    failures: std::sync::atomic::AtomicUsize,
    /// Requests seen: (list, get, put).
    requests: std::sync::Mutex<(usize, usize, usize)>,
}

impl Flaky {
    fn new(inner: Arc<dyn ArchiveStore>, failures: usize) -> Self {
        Self {
            inner,
            failures: failures.into(),
            requests: Default::default(),
        }
    }

    /// (list, get, put) since the last call.
    fn take_requests(&self) -> (usize, usize, usize) {
        std::mem::take(&mut *self.requests.lock().expect("lock"))
    }
}

impl ArchiveStore for Flaky {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), archive::ArchiveError>> {
        use std::sync::atomic::Ordering;
        self.requests.lock().expect("lock").2 += 1;
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Box::pin(async move {
                Err(archive::ArchiveError {
                    operation: "writing",
                    location: key.to_owned(),
                    message: "503 Slow Down".into(),
                })
            });
        }
        self.inner.put(key, body)
    }
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, archive::ArchiveError>> {
        self.requests.lock().expect("lock").1 += 1;
        self.inner.get(key)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, archive::ArchiveError>> {
        self.requests.lock().expect("lock").0 += 1;
        self.inner.list(prefix, from)
    }
    fn list_all<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, archive::ArchiveError>> {
        self.inner.list_all(prefix)
    }
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
    ) -> futures_util::future::BoxFuture<'a, Result<bool, archive::ArchiveError>> {
        self.inner.put_file_if_absent(key, path)
    }
    fn delete<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), archive::ArchiveError>> {
        self.inner.delete(key)
    }
}

/// A write that fails once is tried again within the run: archived, no
/// pending copy, nothing counted as failed.
#[tokio::test]
async fn an_archive_write_that_fails_once_is_retried_within_the_run() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (up, _) = s3_up_and_down(&moto).await;
    let flaky: Arc<dyn ArchiveStore> = Arc::new(Flaky::new(up.clone(), 1));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let (event, _) = harness::scheduled_event(std::time::Duration::ZERO);
    let response = handle(&job(&es.url(), &hub, flaky), &event).await;
    assert_eq!(
        (
            &response["archived"],
            &response["archive_pending"],
            &response["archive_failed"]
        ),
        (&json!(3), &json!(0), &json!(0)),
        "{response}"
    );
    let (lines, by_id) = archived_lines(&*up).await;
    assert_eq!((lines.len(), by_id.len()), (3, 3));
    assert!(
        up.list(archive::PENDING_PREFIX, None)
            .await
            .expect("list")
            .is_empty()
    );
}

/// S3 refusing every write, to the archive and to the pending copy alike
/// (one bucket for both, as in the template): the run counts its documents
/// as `archive_failed` and the container holds them; its next run, S3
/// back, writes them: the archive still ends complete, each once.
#[tokio::test]
async fn documents_no_store_took_are_held_by_the_container_for_its_next_run() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (up, _) = s3_up_and_down(&moto).await;
    // Three attempts of the archive write, then the pending copy: refused.
    let flaky: Arc<dyn ArchiveStore> = Arc::new(Flaky::new(up.clone(), 4));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, flaky);
    let (first, _) = harness::scheduled_event(std::time::Duration::from_secs(300));
    let failed = handle(&job, &first).await;
    assert_eq!(
        (
            &failed["indexed"],
            &failed["archive_failed"],
            &failed["archive_pending"]
        ),
        (&json!(3), &json!(3), &json!(0)),
        "{failed}"
    );
    assert!(archived_lines(&*up).await.0.is_empty());
    let (second, _) = harness::scheduled_event(std::time::Duration::ZERO);
    let back = handle(&job, &second).await;
    assert_eq!(
        (
            &back["archived"],
            &back["archive_drained"],
            &back["archive_failed"]
        ),
        (&json!(3), &json!(3), &json!(0)),
        "{back}"
    );
    let (lines, by_id) = archived_lines(&*up).await;
    assert_eq!(lines.len(), 6);
    assert_eq!(by_id, indexed(&es), "every measurement, once");
}

/// A false failure: the object landed but the answer was lost, so a
/// pending copy exists too (here of a day long over, two of its three
/// documents already archived). Draining writes only the third, marks the
/// day due for compaction, and deletes the copy; no line twice.
#[tokio::test]
async fn draining_a_copy_that_already_landed_writes_nothing_twice() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (store, _) = s3_up_and_down(&moto).await;
    let time = RunTime::parse("2026-03-01T10:00:00Z").expect("time");
    let documents: Vec<Document> = ["httpd", "mysql", "redis"]
        .iter()
        .map(|name| Document {
            timestamp: time,
            stats: RepositoryStats {
                namespace: "library".into(),
                name: (*name).into(),
                pull_count: 7,
                star_count: 1,
                collaborator_count: Some(0),
            },
        })
        .collect();
    let deadline = harness::deadline();
    archive::write::write_once(
        &*store,
        &documents[..2],
        time::OffsetDateTime::now_utc(),
        deadline,
    )
    .await
    .expect("two landed");
    let kept = archive::pending::keep(&*store, &documents, &time, deadline)
        .await
        .expect("pending copy");
    assert!(kept.starts_with("archive-pending/archive/year=2026/month=03/day=01/"));

    let drained = archive::pending::drain(&*store, &*store, deadline).await;
    assert!(drained.error.is_none(), "{:?}", drained.error);
    assert_eq!(
        (
            drained.objects,
            drained.documents,
            drained.already,
            drained.waiting
        ),
        (1, 1, 2, Some(0))
    );
    let (lines, by_id) = archived_lines(&*store).await;
    assert_eq!((lines.len(), by_id.len()), (3, 3));
    let expected: BTreeMap<String, Value> = documents
        .iter()
        .map(|d| (d.id(), serde_json::to_value(d).expect("JSON")))
        .collect();
    assert_eq!(by_id, expected);
    let bucket = moto.keys(BUCKET).await;
    assert!(
        bucket.contains(&"parquet-due/2026-03-01".to_owned())
            && !bucket.iter().any(|k| k.starts_with("archive-pending/")),
        "{bucket:?}"
    );
    // Draining again finds nothing to do.
    let again = archive::pending::drain(&*store, &*store, deadline).await;
    assert_eq!((again.objects, again.waiting), (0, Some(0)));
}

/// Two writers of one key (two stacks sharing a bucket, a write retried
/// after a lost answer): S3's `If-None-Match: *` keeps the first body, and
/// the second writer is told success.
#[tokio::test]
async fn an_s3_archive_object_is_never_overwritten() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (store, _) = s3_up_and_down(&moto).await;
    let key = "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz";
    store.put(key, b"first".to_vec()).await.expect("created");
    store
        .put(key, b"second".to_vec())
        .await
        .expect("412 is success");
    assert_eq!(store.get(key).await.expect("read"), b"first");
}

// --- Durable: the documented undelete --------------------------------------

/// The shell block under `heading` in docs/operations.md, exactly as
/// printed.
fn documented_block(heading: &str) -> String {
    let path = format!("{}/docs/operations.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("docs/operations.md");
    let section = &text[text.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("closed block");
    section[start..start + end].to_owned()
}

/// A versioned bucket (as the template makes it) whose archive was removed
/// with `aws s3 rm --recursive`: the block of "When archive objects were
/// deleted", run as printed with the AWS CLI against moto, brings every
/// object back with its content.
#[tokio::test]
async fn the_documented_undelete_brings_back_an_archive_removed_recursively() {
    let python = support::checkers::python();
    let bin = python
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let has_cli = bin.join("aws").exists();
    if !has_cli && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED: no aws next to {} (pip install awscli: scripts/requirements.txt); under CI this fails instead",
            python.display()
        );
        return;
    }
    assert!(has_cli, "the AWS CLI is needed: {}", bin.display());
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let client = moto.s3_client().await;
    client
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let (store, _) = s3_up_and_down(&moto).await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, store.clone());
    for time in ["2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z"] {
        handle(&job, &json!({ "time": time })).await;
    }
    let before = objects(&*store, archive::PREFIX).await;
    assert_eq!(before.len(), 2);

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = |script: &str| {
        let output = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env("PATH", &path)
            .env("BUCKET", BUCKET)
            .env("AWS_ENDPOINT_URL", moto.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{script}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    shell(r#"aws s3 rm --recursive "s3://$BUCKET/archive/""#);
    assert!(
        objects(&*store, archive::PREFIX).await.is_empty(),
        "removed"
    );

    shell(&documented_block("### When archive objects were deleted"));
    assert_eq!(objects(&*store, archive::PREFIX).await, before, "all back");
    // Run again with nothing to undo, it is harmless.
    shell(&documented_block("### When archive objects were deleted"));
    assert_eq!(objects(&*store, archive::PREFIX).await, before);
}

/// What archiving costs in S3 requests (docs/performance.md): a run lists
/// its run time's prefix and `archive-pending/` and writes one object; a
/// repeated delivery lists the same, reads the one object there and writes
/// nothing; a run of a day over also writes the day's marker, before and
/// after the object.
#[tokio::test]
async fn a_run_costs_two_listings_and_one_write() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (up, _) = s3_up_and_down(&moto).await;
    let counting = Arc::new(Flaky::new(up.clone(), 0));
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = job(&es.url(), &hub, counting.clone());
    let (event, _) = harness::scheduled_event(std::time::Duration::ZERO);
    handle(&job, &event).await;
    assert_eq!(counting.take_requests(), (2, 0, 1), "list, get, put");
    handle(&job, &event).await;
    assert_eq!(
        counting.take_requests(),
        (2, 1, 0),
        "a repeat reads, writes nothing"
    );
    handle(&job, &json!({"time": "2026-03-01T10:00:00Z"})).await;
    assert_eq!(
        counting.take_requests(),
        (2, 0, 3),
        "marker, object, marker again"
    );
}

/// A store where a compaction runs between a late write's marker and its
/// object: it deletes the day's marker (as compaction does before listing
/// the day) just before the object lands.
struct CompactionInBetween {
    inner: Arc<dyn ArchiveStore>,
}

impl ArchiveStore for CompactionInBetween {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), archive::ArchiveError>> {
        Box::pin(async move {
            if key.starts_with(archive::PREFIX) {
                self.inner.delete("parquet-due/2026-03-01").await?;
            }
            self.inner.put(key, body).await
        })
    }
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, archive::ArchiveError>> {
        self.inner.get(key)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, archive::ArchiveError>> {
        self.inner.list(prefix, from)
    }
    fn list_all<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, archive::ArchiveError>> {
        self.inner.list_all(prefix)
    }
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
    ) -> futures_util::future::BoxFuture<'a, Result<bool, archive::ArchiveError>> {
        self.inner.put_file_if_absent(key, path)
    }
    fn delete<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), archive::ArchiveError>> {
        self.inner.delete(key)
    }
}

/// A compaction that deleted the day's marker and listed the day just
/// before a late object landed has not seen it: the marker is written
/// again after the object, so the day is compacted again.
#[tokio::test]
async fn a_late_object_landing_after_a_compaction_listed_its_day_marks_it_again() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let (up, _) = s3_up_and_down(&moto).await;
    let store = CompactionInBetween { inner: up.clone() };
    let document = Document {
        timestamp: RunTime::parse("2026-03-01T10:00:00Z").expect("time"),
        stats: RepositoryStats {
            namespace: "library".into(),
            name: "httpd".into(),
            pull_count: 7,
            star_count: 1,
            collaborator_count: Some(0),
        },
    };
    let written = archive::write::write_once(
        &store,
        std::slice::from_ref(&document),
        time::OffsetDateTime::now_utc(),
        harness::deadline(),
    )
    .await
    .expect("written");
    assert_eq!(written.written, 1);
    let bucket = moto.keys(BUCKET).await;
    assert!(
        bucket.contains(&"parquet-due/2026-03-01".to_owned()),
        "{bucket:?}"
    );
}
