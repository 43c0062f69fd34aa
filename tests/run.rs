//! The whole handler as Lambda runs it: events from events/, settings from
//! SSM on moto, the fake Docker Hub and the strict fake Elasticsearch.

mod support;

use aws_sdk_ssm::types::ParameterType;
use docker_pulls::config::{SsmParameterStore, SsmSettings};
use docker_pulls::run::Job;
use serde_json::{Value, json};
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;
use support::harness::{self, LogCapture};
use support::moto::Moto;

const API_KEY: &str = "Zm9vYmFyOmZha2Utc2VjcmV0LWtleS0xMjM0NQ==";
const HUB_TOKEN: &str = "dckr_pat_e2e_secret_value";

fn event(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

struct Stack {
    moto: Moto,
    hub: FakeHub,
    es: FakeEs,
    job: Job<SsmSettings<SsmParameterStore>>,
}

/// SSM holds what the README tells users to put there.
async fn stack(images: &str) -> Stack {
    let moto = Moto::start().await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.add_private_repo("acme", "private-app", 1234, 5);
    hub.require_token("acme", HUB_TOKEN);
    let es = FakeEs::start().await;
    es.require_api_key(API_KEY);

    moto.put("/docker-pulls/images", images, ParameterType::StringList)
        .await;
    moto.put(
        "/docker-pulls/elasticsearch/url",
        &es.url(),
        ParameterType::String,
    )
    .await;
    moto.put(
        "/docker-pulls/elasticsearch/api_key",
        API_KEY,
        ParameterType::SecureString,
    )
    .await;
    moto.put(
        "/docker-pulls/dockerhub/username",
        "acme",
        ParameterType::String,
    )
    .await;
    moto.put(
        "/docker-pulls/dockerhub/token",
        HUB_TOKEN,
        ParameterType::SecureString,
    )
    .await;

    let job = Job::new(
        SsmSettings::new(
            SsmParameterStore::new(moto.ssm_client().await),
            "/docker-pulls",
        ),
        harness::hub_client(harness::quick_hub_options(hub.url())),
        docker_pulls::http_client().expect("http"),
    )
    .with_bulk_options(harness::quick_bulk_options());
    Stack { moto, hub, es, job }
}

#[tokio::test]
async fn scheduled_event_indexes_every_repository_once_and_a_retry_adds_nothing() {
    let (logs, _guard) = LogCapture::start();
    let s = stack("httpd, library/mysql\nradoondas/*\nacme/private-app\nUPPER/Case").await;
    // Delivered a minute late, as Lambda's own retries may be: the event's
    // time stands.
    let (scheduled, time) = harness::scheduled_event(std::time::Duration::from_secs(60));
    let index = format!("docker-pulls-{}", &time[..4]);

    let response = s
        .job
        .handle(&scheduled, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["index"], index.as_str());
    assert_eq!(response["timestamp"], time.as_str());
    assert!(response.get("late_event").is_none(), "{response}");
    assert_eq!(response["indexed"], 9);
    assert_eq!(response["already_indexed"], 0);
    assert_eq!(response["requested"], 10);
    assert_eq!(response["dry_run"], false);
    assert_eq!(response["failed"][0]["image"], "UPPER/Case");
    assert!(response.get("documents").is_none());

    let documents = s.es.documents(&index);
    assert_eq!(documents.len(), 9);
    let private = s.es.document(&index, &format!("acme/private-app@{time}"));
    assert_eq!(
        private,
        Some(json!({"@timestamp":time,"http":{"docker_hub":{
            "namespace":"acme","name":"private-app","pull_count":1234,"star_count":5,"collaborator_count":0}}}))
    );

    // EventBridge retries the same event: nothing new.
    let retry = s
        .job
        .handle(&scheduled, harness::deadline())
        .await
        .expect("retry succeeds");
    assert_eq!(
        (retry["indexed"].as_u64(), retry["already_indexed"].as_u64()),
        (Some(0), Some(9))
    );
    assert_eq!(s.es.documents(&index).len(), 9);

    logs.assert_no_secrets(
        &[API_KEY, HUB_TOKEN],
        &[&response.to_string(), &retry.to_string()],
    );
    assert!(
        logs.text().contains("run finished"),
        "one summary line per run"
    );
}

#[tokio::test]
async fn a_dry_run_returns_the_documents_and_indexes_nothing() {
    let s = stack("httpd").await;
    let response = s
        .job
        .handle(&event("dry-run.json"), harness::deadline())
        .await
        .expect("dry run succeeds");
    assert_eq!(response["dry_run"], true);
    assert_eq!(response["indexed"], 0);
    let documents = response["documents"].as_array().expect("documents");
    let names: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["http"]["docker_hub"]["name"].as_str())
        .collect();
    assert_eq!(names, ["httpd", "mysql", "netatmobeat"]);
    assert!(
        documents
            .iter()
            .all(|d| d["@timestamp"] == response["timestamp"])
    );
    assert_eq!(s.es.bulk_request_count(), 0);
    assert!(s.es.all_documents().is_empty());
}

#[tokio::test]
async fn setup_event_installs_the_assets() {
    let s = stack("httpd").await;
    let response = s
        .job
        .handle(&event("setup.json"), harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(response["pipeline"]["result"], "created");
    assert_eq!(response["index_template"]["result"], "created");
    assert!(s.es.pipeline("docker-hub-pulls").is_some());
    // With our pipeline in place, a run is a single request.
    let run = s
        .job
        .handle(&event("manual.json"), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(run["indexed"], 8);
    assert_eq!(s.es.bulk_request_count(), 1);
}

#[tokio::test]
async fn a_404_is_listed_and_the_run_still_succeeds() {
    let (logs, _guard) = LogCapture::start();
    let s = stack("httpd acme/missing").await;
    let response = s
        .job
        .handle(
            &json!({"time": "2026-11-27T18:40:00Z"}),
            harness::deadline(),
        )
        .await
        .expect("run succeeds");
    assert_eq!(response["indexed"], 1);
    assert_eq!(
        response["failed"],
        json!([{"image": "acme/missing", "reason": "404 not found"}])
    );
    assert!(logs.text().contains("WARN"), "{}", logs.text());
}

#[tokio::test]
async fn configuration_and_credential_errors_fail_the_invocation_clearly() {
    let (logs, _guard) = LogCapture::start();
    let s = stack("httpd").await;

    s.moto
        .put(
            "/docker-pulls/elasticsearch/api_key",
            "d3Jvbmc6a2V5",
            ParameterType::SecureString,
        )
        .await;
    let error = s
        .job
        .handle(&event("scheduled.json"), harness::deadline())
        .await
        .unwrap_err();
    let diagnostic: lambda_runtime::Diagnostic = error.into();
    assert_eq!(diagnostic.error_type, "DockerPulls.ElasticsearchAuthError");
    assert!(
        diagnostic
            .error_message
            .contains("rejected the credentials (401)"),
        "{}",
        diagnostic.error_message
    );
    assert_eq!(s.es.bulk_request_count(), 1);

    let unknown = s
        .job
        .handle(&json!({"action": "reindex"}), harness::deadline())
        .await
        .unwrap_err();
    assert_eq!(
        lambda_runtime::Diagnostic::from(unknown).error_type,
        "DockerPulls.UnknownAction"
    );

    let s = stack("httpd").await;
    s.moto
        .ssm_client()
        .await
        .delete_parameter()
        .name("/docker-pulls/images")
        .send()
        .await
        .expect("deleted");
    let error = s
        .job
        .handle(&event("scheduled.json"), harness::deadline())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "missing SSM parameter /docker-pulls/images (a list of image references such as `httpd, radoondas/*`)"
    );
    // The event's own list replaces the parameter.
    let response = s
        .job
        .handle(&json!({"images": ["httpd"]}), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["indexed"], 1);

    logs.assert_no_secrets(
        &[API_KEY, HUB_TOKEN, "d3Jvbmc6a2V5"],
        &[&diagnostic.error_message],
    );
}

#[tokio::test]
async fn nothing_fetched_fails_the_invocation() {
    let s = stack("acme/missing").await;
    let error = s
        .job
        .handle(&event("scheduled.json"), harness::deadline())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "not a single image could be fetched (1 failed); first: acme/missing: 404 not found"
    );
    assert_eq!(s.es.bulk_request_count(), 0);
    drop(s.hub);
}

#[tokio::test]
async fn a_two_day_old_scheduled_event_is_stamped_with_the_fetch_time() {
    let (logs, _guard) = LogCapture::start();
    let s = stack("httpd, radoondas/netatmobeat").await;
    let (late, event_time) = harness::scheduled_event(std::time::Duration::from_secs(2 * 86_400));
    let before = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");

    let response = s
        .job
        .handle(&late, harness::deadline())
        .await
        .expect("run succeeds");

    let after = time::OffsetDateTime::now_utc();
    let stamped = response["timestamp"].as_str().expect("timestamp");
    let stamped_at =
        time::OffsetDateTime::parse(stamped, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert!(
        before <= stamped_at && stamped_at <= after,
        "{stamped} is not the fetch time ({before} .. {after})"
    );
    assert_eq!(response["late_event"]["event_time"], event_time.as_str());
    assert!(response["late_event"]["age_seconds"].as_u64() >= Some(2 * 86_400));
    assert_eq!(response["indexed"], 2);
    // Every document carries the fetch time, none the event's.
    for (_, _, document) in s.es.all_documents() {
        assert_eq!(document["@timestamp"], stamped, "{document}");
    }
    assert!(
        logs.text().contains("MAX_EVENT_AGE"),
        "the log says why the time was replaced"
    );

    // A manual event's explicit time is a person's assertion: honoured.
    let manual = s
        .job
        .handle(
            &json!({"time": event_time, "images": ["httpd"]}),
            harness::deadline(),
        )
        .await
        .expect("run succeeds");
    assert_eq!(manual["timestamp"], event_time.as_str());
    assert!(manual.get("late_event").is_none(), "{manual}");
}

/// Issue 9's first finding: 40 repositories, a Hub answering in 0.5 s, two
/// requests at a time and a short deadline used to fetch 14 and index none.
/// The Hub phase now stops with time left to index what it fetched.
#[tokio::test]
async fn a_slow_hub_still_indexes_what_it_fetched_before_the_deadline() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("slow", 40);
    hub.set_latency(std::time::Duration::from_millis(500));
    let es = FakeEs::start().await;
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 2;
    options.request_timeout = std::time::Duration::from_secs(5);
    let job = harness::job(harness::settings(&refs, Some(&es.url())), options).with_spool(
        std::sync::Arc::new(docker_pulls::spool::MemorySpool::default()),
    );
    let budget = std::time::Duration::from_secs(8);
    let started = std::time::Instant::now();
    let (event, _) = harness::scheduled_event(std::time::Duration::ZERO);
    let response = job
        .handle(&event, docker_pulls::retry::Deadline::after(budget))
        .await
        .expect("run succeeds");
    assert!(started.elapsed() < budget, "{:?}", started.elapsed());
    let indexed = response["indexed"].as_u64().expect("indexed");
    assert!(indexed >= 5, "{response}");
    assert_eq!(response["spooled"], 0, "nothing left over: {response}");
    assert_eq!(response["failed"], json!([]), "{response}");
    assert_eq!(
        response["deferred"].as_u64().expect("deferred") + indexed,
        40,
        "{response}"
    );
    assert_eq!(es.all_documents().len() as u64, indexed);
}

/// Without `setup`, every run used to send its documents through a pipeline
/// that does not exist, have them all refused and send them again. A warm
/// container remembers, so steady state is one request per run, until a
/// setup action installs the pipeline.
#[tokio::test]
async fn a_missing_pipeline_costs_one_extra_request_once_not_every_run() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es = FakeEs::start().await;
    let job = harness::job(
        harness::settings(&["httpd", "library/mysql"], Some(&es.url())),
        harness::quick_hub_options(hub.url()),
    );
    let mut responses = Vec::new();
    for minutes_ago in [10, 5, 0] {
        let (event, _) = harness::scheduled_event(std::time::Duration::from_secs(60 * minutes_ago));
        let response = job
            .handle(&event, harness::deadline())
            .await
            .expect("run succeeds");
        assert_eq!(response["indexed"], 2, "{response}");
        responses.push(response["bulk_requests"].as_u64());
    }
    assert_eq!(responses, [Some(2), Some(1), Some(1)]);
    let named: Vec<bool> = es
        .bulk_requests()
        .iter()
        .map(|r| r.query_param("pipeline").is_some())
        .collect();
    assert_eq!(named, [true, false, false, false]);

    // Setup installs it: the next run names it again, in one request.
    job.handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup");
    es.clear_requests();
    let response = job
        .handle(&json!({"images": ["httpd"]}), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(response["bulk_requests"], 1, "{response}");
    assert_eq!(
        es.bulk_requests()[0].query_param("pipeline").as_deref(),
        Some("docker-hub-pulls")
    );
}
