//! Elasticsearch side of a run, against the strict fake cluster: what gets
//! indexed, exactly once, through every pipeline state and every fault rule
//! of the contract.

mod support;

use docker_pulls::Error;
use docker_pulls::config::{EsAuth, Settings};
use docker_pulls::retry::Deadline;
use docker_pulls::run::Summary;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;
use support::harness::{self, LogCapture};

const TIME: &str = "2026-11-27T18:35:00Z";
const INDEX: &str = "docker-pulls-2026";
const IMAGES: [&str; 3] = [
    "httpd",
    "library/mysql",
    "docker.io/radoondas/netatmobeat:latest",
];

/// The seed article's original pipeline: its first `remove` has no
/// `ignore_missing`, so it fails on an already trimmed document.
fn seed_pipeline() -> Value {
    serde_json::from_str(include_str!("fixtures/elasticsearch/seed-pipeline.json"))
        .expect("seed pipeline JSON")
}

fn expected_documents() -> Vec<(String, Value)> {
    support::fake_hub::fixture_documents(TIME)
}

struct Setup {
    hub: FakeHub,
    es: FakeEs,
}

async fn servers() -> Setup {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.require_token(HUB_USER, HUB_TOKEN);
    let es = FakeEs::start().await;
    es.require_api_key(ES_KEY);
    Setup { hub, es }
}

/// Credentials every run carries unless a test sets its own.
const ES_KEY: &str = "ZXMtdGVzdHM6a2V5LW5ldmVyLXByaW50ZWQ=";
const HUB_USER: &str = "acme";
const HUB_TOKEN: &str = "dckr_pat_es_tests_fedcba9876543210";

/// Fills in the default credentials where `settings` has none.
fn with_credentials(mut settings: Settings) -> Settings {
    if settings.hub_credentials.is_none() {
        settings = harness::with_hub_token(settings, HUB_USER, HUB_TOKEN);
    }
    match settings.elasticsearch.as_ref().map(|es| &es.auth) {
        Some(EsAuth::None) => harness::with_api_key(settings, ES_KEY),
        _ => settings,
    }
}

/// The secret values `settings` holds.
fn secrets_of(settings: &Settings) -> Vec<String> {
    let mut secrets: Vec<String> = settings
        .hub_credentials
        .iter()
        .map(|c| c.token.expose().to_owned())
        .collect();
    match settings.elasticsearch.as_ref().map(|es| &es.auth) {
        Some(EsAuth::ApiKey(key)) => secrets.push(key.expose().to_owned()),
        Some(EsAuth::Basic { password, .. }) => secrets.push(password.expose().to_owned()),
        _ => {}
    }
    secrets
}

impl Setup {
    fn settings(&self) -> Settings {
        with_credentials(harness::settings(&IMAGES, Some(&self.es.url())))
    }

    /// One run; its logs, summary and error are checked for every secret it
    /// held, including the bearer token the Hub token was exchanged for.
    async fn run_with(&self, settings: Settings, deadline: Deadline) -> Result<Summary, Error> {
        let settings = with_credentials(settings);
        let mut secrets = secrets_of(&settings);
        let (logs, _guard) = LogCapture::start();
        let job = harness::job(settings, harness::quick_hub_options(self.hub.url()));
        let result = job
            .run(&harness::request(json!({"time": TIME})), deadline)
            .await;
        let said = match &result {
            Ok(summary) => serde_json::to_string(summary).expect("summary serialises"),
            Err(error) => format!("{error} {error:?}"),
        };
        secrets.extend(self.hub.issued_tokens());
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        logs.assert_no_secrets(&secrets, &[&said]);
        result
    }

    async fn run(&self) -> Result<Summary, Error> {
        self.run_with(self.settings(), harness::deadline()).await
    }

    /// Documents in the index, sorted by `_id`.
    fn indexed(&self) -> Vec<(String, Value)> {
        let mut documents = self.es.documents(INDEX);
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        documents
    }

    fn bulk_ids(&self, nth: usize) -> Vec<String> {
        self.es.bulk_requests()[nth]
            .ndjson()
            .iter()
            .filter_map(|line| line["create"]["_id"].as_str().map(str::to_owned))
            .collect()
    }
}

fn without_pipeline(mut settings: Settings) -> Settings {
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    settings
}

#[tokio::test]
async fn without_the_pipeline_documents_are_resent_without_it_and_nothing_is_lost() {
    let s = servers().await;
    let summary = s.run().await.expect("run succeeds");
    assert_eq!(
        (summary.indexed, summary.already_indexed, summary.requested),
        (3, 0, 3)
    );
    assert_eq!(summary.index, INDEX);
    assert_eq!(s.indexed(), expected_documents());

    // One request naming the pipeline, one re-send without it.
    let bulks = s.es.bulk_requests();
    assert_eq!(bulks.len(), 2);
    assert_eq!(
        bulks[0].query_param("pipeline").as_deref(),
        Some("docker-hub-pulls")
    );
    assert_eq!(bulks[1].query_param("pipeline"), None);
    assert_eq!(
        bulks[0].header("content-type"),
        Some("application/x-ndjson")
    );
    let filter = bulks[0].query_param("filter_path").unwrap_or_default();
    assert!(
        filter.contains("items.*.status") && filter.contains("items.*._id"),
        "{filter}"
    );
}

#[tokio::test]
async fn the_seed_pipeline_fails_trimmed_documents_and_they_are_resent_unchanged() {
    let s = servers().await;
    s.es.put_pipeline("docker-hub-pulls", seed_pipeline());
    let summary = s.run().await.expect("run succeeds");
    assert_eq!(summary.indexed, 3);
    assert_eq!(s.indexed(), expected_documents());
    assert_eq!(s.es.bulk_request_count(), 2);
}

#[tokio::test]
async fn our_pipeline_passes_documents_through_in_one_request() {
    let s = servers().await;
    let setup = harness::job(s.settings(), harness::quick_hub_options(s.hub.url()))
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(setup["pipeline"]["result"], "created");
    let summary = s.run().await.expect("run succeeds");
    assert_eq!(summary.indexed, 3);
    assert_eq!(s.indexed(), expected_documents());
    assert_eq!(s.es.bulk_request_count(), 1);
    assert_eq!(
        s.es.bulk_requests()[0].query_param("pipeline").as_deref(),
        Some("docker-hub-pulls")
    );
}

#[tokio::test]
async fn with_the_pipeline_disabled_one_request_without_it() {
    let s = servers().await;
    let summary = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(summary.indexed, 3);
    assert_eq!(s.es.bulk_request_count(), 1);
    assert_eq!(s.es.bulk_requests()[0].query_param("pipeline"), None);
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn a_retried_event_never_duplicates_a_document() {
    let s = servers().await;
    let settings = without_pipeline(s.settings());
    for attempt in 0..3 {
        let summary = s
            .run_with(settings.clone(), harness::deadline())
            .await
            .expect("run succeeds");
        if attempt == 0 {
            assert_eq!((summary.indexed, summary.already_indexed), (3, 0));
        } else {
            assert_eq!((summary.indexed, summary.already_indexed), (0, 3));
        }
    }
    assert_eq!(s.indexed(), expected_documents());

    // The same event three times at once.
    let s = servers().await;
    let settings = without_pipeline(s.settings());
    let (a, b, c) = tokio::join!(
        s.run_with(settings.clone(), harness::deadline()),
        s.run_with(settings.clone(), harness::deadline()),
        s.run_with(settings.clone(), harness::deadline()),
    );
    let summaries = [a.expect("a"), b.expect("b"), c.expect("c")];
    assert_eq!(summaries.iter().map(|s| s.indexed).sum::<usize>(), 3);
    assert_eq!(
        summaries.iter().map(|s| s.already_indexed).sum::<usize>(),
        6
    );
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn rejected_credentials_fail_at_once_without_showing_them() {
    // `run_with` checks that this key never shows in logs, error or summary.
    let key = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
    let s = servers().await;
    s.es.require_api_key("c29tZS1vdGhlci1rZXk=");
    let error = s
        .run_with(
            harness::with_api_key(s.settings(), key),
            harness::deadline(),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::EsAuth { status: 401, .. }),
        "{message}"
    );
    assert!(
        message.contains("rejected the credentials (401)"),
        "{message}"
    );
    assert_eq!(s.es.bulk_request_count(), 1, "401 is not retried");

    let s = servers().await;
    s.es.forbid();
    let error = s
        .run_with(s.settings(), harness::deadline())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::EsAuth { status: 403, .. }),
        "{error}"
    );
    assert_eq!(s.es.bulk_request_count(), 1, "403 is not retried");
}

#[tokio::test]
async fn api_key_and_basic_credentials_are_sent() {
    let key = "a2V5LWlkOmtleS1zZWNyZXQ=";
    let s = servers().await;
    s.es.require_api_key(key);
    let summary = s
        .run_with(
            harness::with_api_key(without_pipeline(s.settings()), key),
            harness::deadline(),
        )
        .await;
    assert_eq!(summary.expect("run succeeds").indexed, 3);

    let s = servers().await;
    s.es.require_basic("elastic", "p@ss:word");
    let mut settings = without_pipeline(s.settings());
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.auth = EsAuth::Basic {
            username: "elastic".into(),
            password: docker_pulls::config::Secret::new("p@ss:word"),
        };
    }
    assert_eq!(
        s.run_with(settings, harness::deadline())
            .await
            .expect("run succeeds")
            .indexed,
        3
    );
}

#[tokio::test]
async fn whole_request_429_and_503_are_retried() {
    for status in [429, 502, 503, 504] {
        let s = servers().await;
        s.es.fail_next_bulk(status, json!({"error": {"type": "es_rejected_execution_exception", "reason": "busy"}, "status": status}));
        let summary = s
            .run_with(without_pipeline(s.settings()), harness::deadline())
            .await
            .expect("run succeeds");
        assert_eq!(summary.indexed, 3, "status {status}");
        assert_eq!(s.es.bulk_request_count(), 2, "status {status}");
        assert_eq!(s.indexed(), expected_documents());
    }
}

#[tokio::test]
async fn a_413_splits_the_request() {
    let s = servers().await;
    // Room for one document (two NDJSON lines) per request, not three.
    s.es.set_max_content_length(400);
    let summary = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(summary.indexed, 3);
    assert_eq!(s.indexed(), expected_documents());
    assert!(s.es.bulk_request_count() >= 3);
}

#[tokio::test]
async fn per_item_429_retries_only_those_items() {
    let s = servers().await;
    let id = format!("library/mysql@{TIME}");
    s.es.fail_item(
        &id,
        2,
        429,
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation",
    );
    let summary = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(summary.indexed, 3);
    assert_eq!(s.es.bulk_request_count(), 3);
    assert_eq!(s.bulk_ids(1), std::slice::from_ref(&id));
    assert_eq!(s.bulk_ids(2), [id]);
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn per_item_409_counts_as_already_indexed() {
    let s = servers().await;
    let settings = without_pipeline(s.settings());
    // A previous run indexed httpd only.
    let first = s
        .run_with(
            harness::settings(&["httpd"], Some(&s.es.url())),
            harness::deadline(),
        )
        .await;
    assert_eq!(first.expect("first run").indexed, 1);
    let summary = s
        .run_with(settings, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!((summary.indexed, summary.already_indexed), (2, 1));
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn a_mapping_conflict_is_reported_not_retried_and_fails_the_run() {
    let s = servers().await;
    let id = format!("library/mysql@{TIME}");
    s.es.fail_item(
        &id,
        100,
        400,
        "document_parsing_exception",
        "failed to parse field [http.docker_hub.pull_count] of type [long]",
    );
    let error = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::NotIndexed {
                count: 1,
                total: 3,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains(&id) && message.contains("document_parsing_exception"),
        "{message}"
    );
    assert_eq!(
        s.es.bulk_request_count(),
        1,
        "a 400 without pipeline is final"
    );
    assert_eq!(s.indexed().len(), 2);

    // Through the pipeline it is tried once more without it, then reported.
    let s = servers().await;
    s.es.fail_item(
        &id,
        100,
        400,
        "document_parsing_exception",
        "failed to parse field",
    );
    let error = s.run().await.unwrap_err();
    assert!(
        matches!(error, Error::NotIndexed { count: 1, .. }),
        "{error}"
    );
    assert_eq!(s.es.bulk_request_count(), 2);
}

#[tokio::test]
async fn a_connection_dropped_after_sending_is_retried_without_duplicates() {
    let s = servers().await;
    s.es.drop_connection_after_bulk_next(1);
    let summary = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .expect("run succeeds");
    // The first request was stored before the connection dropped: the retry
    // finds every document there already.
    assert_eq!((summary.indexed, summary.already_indexed), (0, 3));
    assert_eq!(s.es.bulk_request_count(), 2);
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn a_response_with_fewer_items_than_sent_is_not_success() {
    let s = servers().await;
    s.es.truncate_items_next();
    let summary = s
        .run_with(without_pipeline(s.settings()), harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(summary.indexed + summary.already_indexed, 3);
    assert_eq!(s.es.bulk_request_count(), 2);
    assert_eq!(s.indexed(), expected_documents());
}

#[tokio::test]
async fn near_the_deadline_retries_stop_and_the_unindexed_are_reported() {
    let s = servers().await;
    for _ in 0..50 {
        s.es.fail_next_bulk(503, json!({"error": "unavailable", "status": 503}));
    }
    let mut settings = without_pipeline(s.settings());
    settings.images.truncate(1);
    let started = Instant::now();
    let error = s
        .run_with(settings, Deadline::after(Duration::from_millis(1500)))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(
        matches!(error, Error::NotIndexed { count: 1, .. }),
        "{message}"
    );
    assert!(message.contains("library/httpd@"), "{message}");
    assert!(s.indexed().is_empty());
}

#[tokio::test]
async fn setup_installs_pipeline_and_template_idempotently() {
    let s = servers().await;
    let mut settings = s.settings();
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.index_prefix = "pulls".into();
    }
    let job = harness::job(settings, harness::quick_hub_options(s.hub.url()));
    let first = job
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(first["pipeline"]["name"], "docker-hub-pulls");
    assert_eq!(first["pipeline"]["result"], "created");
    assert_eq!(first["index_template"]["result"], "created");
    assert_eq!(
        first["index_template"]["index_patterns"],
        json!(["pulls-*"])
    );
    let template = s.es.index_template("pulls").expect("template installed");
    assert_eq!(template["index_patterns"], json!(["pulls-*"]));
    assert!(s.es.pipeline("docker-hub-pulls").is_some());

    let second = job
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(second["pipeline"]["result"], "unchanged");
    assert_eq!(second["index_template"]["result"], "unchanged");

    // The seed's pipeline (no version) is replaced.
    s.es.put_pipeline("docker-hub-pulls", seed_pipeline());
    let third = job
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(third["pipeline"]["result"], "updated");
}

#[tokio::test]
async fn setup_without_privileges_names_the_missing_one() {
    let s = servers().await;
    s.es.forbid();
    let job = harness::job(s.settings(), harness::quick_hub_options(s.hub.url()));
    let error = job
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("403") && error.contains("`manage_pipeline`"),
        "{error}"
    );
    // `read_pipeline` only exists from 7.11, and the PUT needs more anyway.
    assert!(!error.contains("read_pipeline"), "{error}");
}

/// A setup action's response, run as the function would.
async fn setup(s: &Setup, settings: Settings) -> Value {
    harness::job(settings, harness::quick_hub_options(s.hub.url()))
        .handle(&json!({"action": "setup"}), harness::deadline())
        .await
        .expect("setup succeeds")
}

/// Our bundled pipeline and template with another `version`.
fn assets_at(offset: i64) -> (Value, Value) {
    let mut pipeline = docker_pulls::es::setup::pipeline().expect("bundled pipeline");
    let mut template =
        docker_pulls::es::setup::index_template_for("docker-pulls").expect("bundled template");
    for asset in [&mut pipeline, &mut template] {
        let ours = asset["version"].as_i64().expect("a version");
        asset["version"] = json!(ours + offset);
    }
    (pipeline, template)
}

fn puts(es: &FakeEs) -> Vec<String> {
    es.requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn setup_replaces_a_lower_version_and_leaves_an_equal_one() {
    let s = servers().await;
    let (ours_pipeline, ours_template) = assets_at(0);
    let ours = ours_pipeline["version"].as_i64().unwrap();
    let ours_t = ours_template["version"].as_i64().unwrap();
    let (older_pipeline, older_template) = assets_at(-1);
    s.es.put_pipeline("docker-hub-pulls", older_pipeline);
    s.es.put_index_template("docker-pulls", older_template);

    let first = setup(&s, s.settings()).await;
    assert_eq!(
        first["pipeline"],
        json!({"name": "docker-hub-pulls", "result": "updated", "version": ours, "installed_version": ours - 1})
    );
    assert_eq!(
        first["index_template"],
        json!({"name": "docker-pulls", "result": "updated", "version": ours_t,
               "installed_version": ours_t - 1, "index_patterns": ["docker-pulls-*"]})
    );
    assert_eq!(s.es.pipeline("docker-hub-pulls"), Some(ours_pipeline));
    assert_eq!(s.es.index_template("docker-pulls"), Some(ours_template));

    s.es.clear_requests();
    let second = setup(&s, s.settings()).await;
    assert_eq!(second["pipeline"]["result"], "unchanged");
    assert_eq!(second["pipeline"]["installed_version"], json!(ours));
    assert_eq!(second["index_template"]["result"], "unchanged");
    assert_eq!(puts(&s.es), Vec::<String>::new(), "nothing re-installed");
}

#[tokio::test]
async fn setup_never_downgrades_a_newer_pipeline_or_template_and_says_so() {
    let s = servers().await;
    let (mut newer_pipeline, newer_template) = assets_at(1);
    newer_pipeline["description"] = json!("installed by a newer docker-pulls");
    s.es.put_pipeline("docker-hub-pulls", newer_pipeline.clone());
    s.es.put_index_template("docker-pulls", newer_template.clone());
    let ours = assets_at(0).0["version"].as_i64().unwrap();

    let (logs, _guard) = LogCapture::start();
    let response = setup(&s, s.settings()).await;
    assert_eq!(
        response["pipeline"],
        json!({"name": "docker-hub-pulls", "result": "newer_installed", "version": ours,
               "installed_version": newer_pipeline["version"]})
    );
    assert_eq!(response["index_template"]["result"], "newer_installed");
    assert_eq!(
        response["index_template"]["installed_version"],
        newer_template["version"]
    );
    assert_eq!(puts(&s.es), Vec::<String>::new(), "nothing was downgraded");
    assert_eq!(s.es.pipeline("docker-hub-pulls"), Some(newer_pipeline));
    assert_eq!(s.es.index_template("docker-pulls"), Some(newer_template));
    let logged = logs.text();
    assert!(
        logged.contains("a newer ingest pipeline is installed")
            && logged.contains("a newer index template is installed"),
        "{logged}"
    );
}

#[tokio::test]
async fn setup_puts_the_pipeline_under_its_exact_name_percent_encoded() {
    let s = servers().await;
    let mut settings = s.settings();
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = Some("pulls-\u{fc}".into());
    }
    let response = setup(&s, settings).await;
    assert_eq!(response["pipeline"]["result"], "created");
    assert!(s.es.pipeline("pulls-\u{fc}").is_some());
    assert!(
        puts(&s.es).contains(&"/_ingest/pipeline/pulls-%C3%BC".to_owned()),
        "{:?}",
        puts(&s.es)
    );
}
