//! Docker Hub side of a run, against the fake Hub: which requests are made,
//! what ends up as documents, and every fault rule of the contract. These
//! runs are dry runs (nothing indexed) so each test isolates the Hub.

mod support;

use docker_pulls::Error;
use docker_pulls::config::{HubCredentials, Secret};
use docker_pulls::document::RepositoryStats;
use docker_pulls::hub::{FetchError, FetchOutcome, FetchPlan, HubOptions, HubRun, NamespaceCounts};
use docker_pulls::image_ref::{self, ImageSpec};
use docker_pulls::retry::Deadline;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::fake_hub::{FakeHub, Fault, RateLimit, RequestKind, unix_now, unused_local_url};
use support::harness::{self, LogCapture};

/// Secrets every run carries, and that must never appear in what it says.
const HUB_USER: &str = "acme";
const HUB_TOKEN: &str = "dckr_pat_hub_tests_0123456789abcdef";
const ES_KEY: &str = "aHViLXRlc3RzOmVzLWtleS1uZXZlci1wcmludGVk";

/// A dry run of `images` against `hub` with a Hub token; the summary as JSON.
async fn dry_run(hub: &FakeHub, images: &[&str]) -> Result<Value, Error> {
    dry_run_with(
        Some(hub),
        harness::quick_hub_options(hub.url()),
        images,
        harness::deadline(),
    )
    .await
}

/// A dry run whose logs, summary and error are checked for secrets: the Hub
/// token (and the bearer token it is exchanged for) when `hub` is given, and
/// an Elasticsearch API key that a dry run holds but never uses.
async fn dry_run_with(
    hub: Option<&FakeHub>,
    options: docker_pulls::hub::HubOptions,
    images: &[&str],
    deadline: Deadline,
) -> Result<Value, Error> {
    let (logs, _guard) = LogCapture::start();
    let mut settings = harness::with_api_key(
        harness::settings(images, Some("http://127.0.0.1:9")),
        ES_KEY,
    );
    if let Some(hub) = hub {
        hub.require_token(HUB_USER, HUB_TOKEN);
        settings = harness::with_hub_token(settings, HUB_USER, HUB_TOKEN);
    }
    let job = harness::job(settings, options);
    let request = harness::request(json!({"dry_run": true, "time": "2026-11-27T18:35:00Z"}));
    let result = job
        .run(&request, deadline)
        .await
        .map(|summary| serde_json::to_value(summary).expect("summary serialises"));
    let said = match &result {
        Ok(summary) => summary.to_string(),
        Err(error) => format!("{error} {error:?}"),
    };
    let issued = hub.map(FakeHub::issued_tokens).unwrap_or_default();
    let mut secrets = vec![HUB_TOKEN, ES_KEY];
    secrets.extend(issued.iter().map(String::as_str));
    logs.assert_no_secrets(&secrets, &[&said]);
    result
}

fn documents(summary: &Value) -> Vec<Value> {
    summary["documents"].as_array().cloned().unwrap_or_default()
}

fn repositories(summary: &Value) -> Vec<String> {
    documents(summary)
        .iter()
        .map(|d| {
            let hub = &d["http"]["docker_hub"];
            format!(
                "{}/{}",
                hub["namespace"].as_str().unwrap_or("?"),
                hub["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn failed(summary: &Value) -> Vec<(String, String)> {
    summary["failed"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    (
                        f["image"].as_str().unwrap_or("").to_owned(),
                        f["reason"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn references_as_people_write_them_become_one_document_per_repository() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let summary = dry_run(
        &hub,
        &[
            "httpd",
            "library/mysql",
            "docker.io/radoondas/netatmobeat:latest",
            "radoondas/*",
            "library/httpd:2.4",
        ],
    )
    .await
    .expect("run succeeds");

    assert_eq!(
        repositories(&summary),
        [
            "library/httpd",
            "library/mysql",
            "radoondas/earthquakebeat",
            "radoondas/netatmobeat",
            "radoondas/owmbeat",
            "radoondas/safecastbeat",
            "radoondas/solaredgebeat",
            "radoondas/wunderbeat",
        ]
    );
    // Exactly the contract's document, integers and the event's time.
    let httpd = &documents(&summary)[0];
    assert_eq!(
        *httpd,
        json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{
            "namespace":"library","name":"httpd","pull_count":4871203345u64,"star_count":4812,"collaborator_count":0}}})
    );
    assert_eq!(summary["index"], "docker-pulls-2026");
    assert_eq!(summary["requested"], 8);
    assert_eq!(summary["dry_run"], true);
    assert!(failed(&summary).is_empty());

    // Each repository fetched once, plus the listing pages; never the
    // deprecated endpoints; always our User-Agent.
    assert_eq!(hub.count_kind(RequestKind::Repository), 8);
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 1);
    assert_eq!(hub.count_kind(RequestKind::Listing), 1);
    assert_eq!(hub.deprecated_hits(), 0);
    let agent = format!("docker-pulls/{}", env!("CARGO_PKG_VERSION"));
    assert!(
        hub.requests()
            .iter()
            .all(|r| r.user_agent() == Some(agent.as_str()))
    );
    assert!(
        hub.requests_to(&FakeHub::listing_path("radoondas"))[0]
            .path
            .contains("page_size=100")
    );
}

#[tokio::test]
async fn namespace_listing_follows_every_page() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 250);
    let summary = dry_run(&hub, &["bench/*"]).await.expect("run succeeds");
    assert_eq!(documents(&summary).len(), 250);
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
    assert_eq!(hub.count_kind(RequestKind::Repository), 250);
}

#[tokio::test]
async fn invalid_references_are_reported_and_never_sent() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let summary = dry_run(&hub, &["UPPER/Case", "a/b/c", "../etc", "httpd"])
        .await
        .expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    let failed = failed(&summary);
    assert_eq!(
        failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["UPPER/Case", "a/b/c", "../etc"]
    );
    assert!(failed[0].1.contains("lowercase"), "{failed:?}");
    assert!(failed[1].1.contains("too many path parts"), "{failed:?}");
    assert!(failed[2].1.contains("invalid path part"), "{failed:?}");
    assert_eq!(
        hub.count_kind(RequestKind::Repository),
        1,
        "{:?}",
        hub.requests()
    );
    assert_eq!(hub.count_kind(RequestKind::Listing), 0);
    assert_eq!(summary["requested"], 4);
}

#[tokio::test]
async fn concurrency_stays_within_the_bound_and_reaches_it() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", 60);
    hub.set_latency(Duration::from_millis(30));
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 6;
    let summary = dry_run_with(Some(&hub), options, &images, harness::deadline())
        .await
        .expect("run succeeds");
    assert_eq!(documents(&summary).len(), 60);
    assert_eq!(hub.max_in_flight(), 6);
}

#[tokio::test]
async fn rate_limit_retry_after_seconds_is_honoured() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::retry_after(1));
    let started = Instant::now();
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 2);
}

#[tokio::test]
async fn rate_limit_retry_after_unix_time_is_honoured() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::retry_after(unix_now() + 2));
    let started = Instant::now();
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    // The Unix time is whole seconds: at least one full second passes.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(repositories(&summary), ["library/httpd"]);
}

#[tokio::test]
async fn a_bare_429_without_headers_backs_off() {
    // Not Docker Hub's own answer (it always says when to come back), but
    // a proxy in between may send it: a short backoff, then the retry.
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::bare_429());
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 2);
}

#[tokio::test]
async fn the_edges_429_holds_every_request_for_its_minute() {
    // Changed with issue 11: this test expected a quick retry after the
    // edge's plain-text 429, which the real edge forbids (`Retry-After: 60`,
    // `Connection: close`). Within a short deadline nothing more is sent;
    // both repositories are deferred to the next run, neither failed.
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::too_many_requests());
    let started = Instant::now();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["httpd", "mysql"],
        &FetchPlan::unhurried(),
        Deadline::after(Duration::from_secs(5)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(outcome.fetched.is_empty(), "{:?}", outcome.fetched);
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.deferred, ["library/httpd", "library/mysql"]);
    assert_eq!((outcome.requests, outcome.rate_limited), (1, 1));
    assert_eq!(hub.total_requests(), 1);
}

#[tokio::test]
async fn rate_limit_reset_pauses_every_request() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::rate_limit_reset(unix_now() + 2));
    let started = Instant::now();
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(repositories(&summary), ["library/httpd"]);

    // Remaining 0 on a success also holds back the next requests.
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.set_rate_limit(Some(RateLimit {
        limit: 180,
        remaining: 0,
        reset: unix_now() + 2,
    }));
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 1;
    let started = Instant::now();
    let summary = dry_run_with(
        Some(&hub),
        options,
        &["httpd", "library/mysql"],
        harness::deadline(),
    )
    .await
    .expect("run succeeds");
    assert_eq!(documents(&summary).len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_once_then_success() {
    for status in [500, 502, 503, 504] {
        let hub = FakeHub::start().await;
        hub.add_fixture_repos();
        hub.fault_repo("library", "httpd", Fault::status(status));
        let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
        assert_eq!(repositories(&summary), ["library/httpd"], "status {status}");
        assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 2);
    }
}

#[tokio::test]
async fn persistent_server_errors_fail_that_image_only() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.push_faults(
        &FakeHub::repo_path("library", "mysql"),
        10,
        Fault::status(503),
    );
    let summary = dry_run(&hub, &["httpd", "mysql"])
        .await
        .expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(
        failed(&summary),
        [(
            "library/mysql".to_owned(),
            "HTTP 503 after 4 attempt(s)".to_owned()
        )]
    );
    assert_eq!(hub.count(&FakeHub::repo_path("library", "mysql")), 4);
}

#[tokio::test]
async fn a_slow_response_times_out_and_is_retried() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::delay(Duration::from_secs(3)));
    let started = Instant::now();
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    hub.push_faults(
        &FakeHub::repo_path("library", "httpd"),
        4,
        Fault::delay(Duration::from_secs(3)),
    );
    let error = dry_run(&hub, &["httpd"]).await.unwrap_err().to_string();
    assert!(
        error.contains("library/httpd: timed out after 4 attempt(s)"),
        "{error}"
    );
}

#[tokio::test]
async fn connection_refused_fails_the_run_when_nothing_is_fetched() {
    let url = unused_local_url();
    let error = dry_run_with(
        None,
        harness::quick_hub_options(&url),
        &["httpd", "mysql"],
        harness::deadline(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, Error::NothingFetched { count: 2, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("connection failed after 4 attempt(s)"),
        "{error}"
    );
}

#[tokio::test]
async fn connection_reset_mid_body_is_retried() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::reset_mid_body());
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 2);
}

#[tokio::test]
async fn html_and_incomplete_json_are_clear_per_image_failures() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::html());
    hub.fault_repo("library", "mysql", Fault::missing_pull_count());
    let summary = dry_run(&hub, &["httpd", "mysql", "radoondas/netatmobeat"])
        .await
        .expect("run succeeds");
    assert_eq!(repositories(&summary), ["radoondas/netatmobeat"]);
    let failed = failed(&summary);
    assert_eq!(failed[0].0, "library/httpd");
    assert!(
        failed[0].1.starts_with("unexpected response body") && failed[0].1.contains("<"),
        "{failed:?}"
    );
    assert_eq!(failed[1].0, "library/mysql");
    assert!(
        failed[1].1.contains("missing field `pull_count`"),
        "{failed:?}"
    );
    // Not retried: the answer will not get better.
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 1);
}

#[tokio::test]
async fn a_huge_body_is_cut_off_not_buffered() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::huge_body());
    let summary = dry_run(&hub, &["httpd", "mysql"])
        .await
        .expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/mysql"]);
    assert_eq!(
        failed(&summary),
        [(
            "library/httpd".to_owned(),
            "response body larger than 1048576 bytes".to_owned()
        )]
    );
    assert!(
        hub.huge_body_bytes_sent() < 8 * 1024 * 1024,
        "{} bytes sent",
        hub.huge_body_bytes_sent()
    );
}

#[tokio::test]
async fn a_listing_that_loops_is_stopped() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 250);
    hub.add_fixture_repos();
    hub.loop_listing("bench", 2, 1);
    let summary = dry_run(&hub, &["bench/*", "httpd"])
        .await
        .expect("run succeeds");
    // The namespace is reported; the 200 repositories its two real pages
    // named are still fetched, each once.
    let fetched = repositories(&summary);
    assert_eq!(fetched.len(), 201);
    assert_eq!(fetched[0], "bench/repo-00001");
    assert_eq!(fetched[199], "bench/repo-00200");
    assert_eq!(fetched[200], "library/httpd");
    assert_eq!(hub.count_kind(RequestKind::Repository), 201);
    let failed = failed(&summary);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "bench/*");
    assert!(failed[0].1.contains("loops back"), "{failed:?}");
    assert_eq!(summary["requested"], 202);
    // Page 1, page 2, then page 1 again under its explicit `page=1` URL,
    // whose `next` (page 2) has been seen: stopped there.
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
}

#[tokio::test]
async fn a_missing_repository_is_listed_and_the_run_succeeds() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let summary = dry_run(&hub, &["httpd", "acme/missing"])
        .await
        .expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(
        failed(&summary),
        [("acme/missing".to_owned(), "404 not found".to_owned())]
    );
    assert_eq!(hub.count(&FakeHub::repo_path("acme", "missing")), 1);
}

#[tokio::test]
async fn private_repositories_with_a_personal_access_token() {
    let token = "dckr_pat_2b3e36beeb386dfdaacb9b46004ccb7c";
    let (logs, _guard) = LogCapture::start();
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.add_private_repo("acme", "secret-app", 42, 1);
    hub.require_token("acme", token);

    // Without credentials the private repository is not found.
    let anonymous = harness::settings(&["acme/secret-app", "httpd"], None);
    let job = harness::job(anonymous, harness::quick_hub_options(hub.url()));
    let request = harness::request(json!({"dry_run": true}));
    let summary = job
        .run(&request, harness::deadline())
        .await
        .expect("run succeeds");
    let summary = serde_json::to_value(summary).expect("json");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(hub.count_kind(RequestKind::Auth), 0);

    // With them it is fetched with the exchanged bearer token.
    let settings = harness::with_hub_token(
        harness::settings(&["acme/secret-app", "httpd"], None),
        "acme",
        token,
    );
    let job = harness::job(settings, harness::quick_hub_options(hub.url()));
    let summary = serde_json::to_value(
        job.run(&request, harness::deadline())
            .await
            .expect("run succeeds"),
    )
    .expect("json");
    assert_eq!(repositories(&summary), ["acme/secret-app", "library/httpd"]);
    let issued = hub.issued_tokens();
    assert_eq!(issued.len(), 1);
    let private = hub.requests_to(&FakeHub::repo_path("acme", "secret-app"));
    assert_eq!(
        private.last().and_then(|r| r.header("authorization")),
        Some(format!("Bearer {}", issued[0]).as_str())
    );
    assert_eq!(hub.count_kind(RequestKind::Auth), 1);

    // A wrong token fails the run with a clear error that does not show it.
    let settings = harness::with_hub_token(
        harness::settings(&["httpd"], None),
        "acme",
        "dckr_pat_wrong_value",
    );
    let job = harness::job(settings, harness::quick_hub_options(hub.url()));
    let error = job.run(&request, harness::deadline()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::HubAuth { .. }), "{message}");
    assert!(
        message.contains("\"acme\"") && message.contains("401"),
        "{message}"
    );
    logs.assert_no_secrets(
        &[token, "dckr_pat_wrong_value", &issued[0]],
        &[&message, &summary.to_string()],
    );
}

/// A run's Hub phase alone, as the handler starts it: a client for the run
/// (anonymous), then `fetch_all` over the parsed references.
async fn fetch(
    options: HubOptions,
    images: &[&str],
    plan: &FetchPlan<'_>,
    deadline: Deadline,
) -> FetchOutcome {
    let specs: Vec<(String, ImageSpec)> = images
        .iter()
        .map(|image| ((*image).to_owned(), image_ref::parse(image).expect("valid")))
        .collect();
    let hub = harness::hub_client(options)
        .for_run(None, deadline)
        .await
        .expect("anonymous client");
    hub.fetch_all(&specs, plan, deadline).await
}

/// `failed` as a run reports it: image and reason.
fn reasons(outcome: &FetchOutcome) -> Vec<(String, String)> {
    outcome
        .failed
        .iter()
        .map(|(image, error)| (image.clone(), error.to_string()))
        .collect()
}

fn names(stats: &[RepositoryStats]) -> Vec<String> {
    stats
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect()
}

#[tokio::test]
async fn the_deadline_stops_waiting_and_defers_what_is_still_rate_limited() {
    // Changed with issue 11: a repository the rate limit keeps from being
    // fetched before the deadline is deferred (not a failure), not failed
    // with "stopped before the invocation deadline".
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::retry_after(60));
    let started = Instant::now();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["httpd", "mysql"],
        &FetchPlan::unhurried(),
        Deadline::after(Duration::from_secs(3)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The first request tells the budget; its 429 holds the other one too
    // (the limit is the client's, not the repository's).
    assert!(outcome.fetched.is_empty(), "{:?}", outcome.fetched);
    assert_eq!(outcome.deferred, ["library/httpd", "library/mysql"]);
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.rate_limited, 1);
    assert_eq!(outcome.requests, 1);
    assert_eq!(hub.total_requests(), 1);
}

// ---- issue 11: the request budget, the reserve, listing mode -----------

/// `rotation` as the handler derives it: the run's Unix time in 5-minute
/// steps (the schedule), so consecutive runs have consecutive values.
fn rotation_of(unix: u64) -> u64 {
    unix / 300
}

#[tokio::test]
async fn three_runs_under_a_limit_admitting_a_third_cover_every_repository() {
    const REPOSITORIES: usize = 30;
    const LIMIT: u32 = 10;
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", REPOSITORIES);
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    // A minute-long window, as Docker Hub's: each run (5 minutes apart)
    // starts in a fresh one and cannot wait for the next.
    hub.limit_requests(LIMIT, Duration::from_secs(60));
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 4;
    // The limit this Hub announces (the default, 180, is Docker Hub's).
    options.expected_rate_limit = u64::from(LIMIT);
    // One client for the three runs, as one Lambda container keeps it.
    let client = harness::hub_client(options);
    let specs: Vec<(String, ImageSpec)> = images
        .iter()
        .map(|image| ((*image).to_owned(), image_ref::parse(image).expect("valid")))
        .collect();

    let first_run = 1_764_268_500;
    let mut covered = std::collections::BTreeSet::new();
    for run in 0..3 {
        hub.next_window();
        let budget = Duration::from_secs(5);
        let deadline = Deadline::after(budget);
        let started = Instant::now();
        let plan = FetchPlan {
            rotation: rotation_of(first_run + 300 * run),
            ..FetchPlan::unhurried()
        };
        let outcome = client
            .for_run(None, deadline)
            .await
            .expect("client")
            .fetch_all(&specs, &plan, deadline)
            .await;
        assert!(
            started.elapsed() < budget,
            "run {run}: {:?}",
            started.elapsed()
        );
        assert!(outcome.failed.is_empty(), "run {run}: {:?}", outcome.failed);
        assert_eq!(outcome.fetched.len(), LIMIT as usize, "run {run}");
        assert_eq!(
            outcome.deferred.len(),
            REPOSITORIES - LIMIT as usize,
            "run {run}"
        );
        // Every request of the window spent on a repository, none refused.
        assert_eq!(
            (outcome.requests, outcome.rate_limited),
            (LIMIT as usize, 0),
            "run {run}"
        );
        let fetched = names(&outcome.fetched);
        for name in &fetched {
            assert!(!outcome.deferred.contains(name), "run {run}: {name}");
        }
        covered.extend(fetched);
    }
    assert_eq!(covered.len(), REPOSITORIES, "{covered:?}");
    assert_eq!(hub.rate_limited(), 0);
    assert_eq!(hub.total_requests(), 3 * u64::from(LIMIT));
}

#[tokio::test]
async fn a_spent_budget_waits_for_the_next_window_when_the_deadline_allows() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", 12);
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    hub.limit_requests(5, Duration::from_secs(2));
    let started = Instant::now();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &images,
        &FetchPlan::unhurried(),
        Deadline::after(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(outcome.fetched.len(), 12);
    assert!(outcome.deferred.is_empty() && outcome.failed.is_empty());
    // Three windows of five: at least two window ends waited for.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(outcome.rate_limited <= 1, "{}", outcome.rate_limited);
    assert_eq!(outcome.requests, 12 + outcome.rate_limited);
}

#[tokio::test]
async fn the_reserve_defers_what_the_deadline_leaves_no_time_for() {
    // Issue 9's slow Hub: 40 repositories, 0.5 s a request, two at a time,
    // a short deadline. The Hub phase keeps the reserve for indexing what
    // it fetched, and defers the rest instead of failing it.
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", 40);
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    hub.set_latency(Duration::from_millis(500));
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 2;
    options.request_timeout = Duration::from_secs(2);
    let reserve = |n: usize| Duration::from_secs(2) + Duration::from_millis(20) * n as u32;
    let plan = FetchPlan {
        reserve: &reserve,
        ..FetchPlan::unhurried()
    };
    let budget = Duration::from_secs(6);
    let started = Instant::now();
    let outcome = fetch(options, &images, &plan, Deadline::after(budget)).await;
    let elapsed = started.elapsed();

    let fetched = outcome.fetched.len();
    assert!(
        elapsed <= budget - reserve(fetched),
        "returned after {elapsed:?}, past the deadline minus the reserve for {fetched} documents"
    );
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert!(fetched >= 8, "only {fetched} fetched in {elapsed:?}");
    assert_eq!(outcome.deferred.len(), 40 - fetched);
    let mut all = names(&outcome.fetched);
    all.extend(outcome.deferred.iter().cloned());
    all.sort();
    assert_eq!(all, images);
    // Deferred repositories cost no request.
    assert!(
        outcome.requests <= fetched + 2,
        "{} requests",
        outcome.requests
    );
    assert_eq!(hub.total_requests(), outcome.requests as u64);
}

/// A plan that takes counts from listings.
fn listing_plan() -> FetchPlan<'static> {
    FetchPlan {
        counts: NamespaceCounts::Listing,
        ..FetchPlan::unhurried()
    }
}

#[tokio::test]
async fn listing_mode_counts_a_whole_namespace_in_two_requests() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("library", 172);
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["library/*"],
        &listing_plan(),
        harness::deadline(),
    )
    .await;
    assert_eq!(names(&outcome.fetched), images);
    assert!(outcome.failed.is_empty() && outcome.deferred.is_empty());
    assert_eq!(outcome.requests, 2);
    assert_eq!(hub.count_kind(RequestKind::Listing), 2);
    assert_eq!(hub.count_kind(RequestKind::Repository), 0);
    // The listing's counts, no collaborator_count.
    let first = &outcome.fetched[0];
    assert_eq!((first.pull_count, first.star_count), (1_007, 1));
    assert!(
        outcome
            .fetched
            .iter()
            .all(|s| s.collaborator_count.is_none())
    );

    // The same in details mode: the listing pages, then every repository.
    hub.reset_stats();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["library/*"],
        &FetchPlan::unhurried(),
        harness::deadline(),
    )
    .await;
    assert_eq!(outcome.fetched.len(), 172);
    assert_eq!(outcome.requests, 2 + 172);
    assert!(
        outcome
            .fetched
            .iter()
            .all(|s| s.collaborator_count == Some(0))
    );
}

#[tokio::test]
async fn listing_mode_lists_namespaces_shared_by_named_repositories() {
    let hub = FakeHub::start().await;
    let mut images = Vec::new();
    for namespace in ["alpha", "beta", "gamma"] {
        // 90 repositories each, 40 of them named: one page per namespace.
        let all = hub.add_synthetic_repos(namespace, 90);
        images.extend(all.into_iter().step_by(2).take(40));
    }
    // Two named in a fourth namespace: fetched one by one (with
    // collaborator_count), as a page would not save anything.
    hub.add_fixture_repos();
    images.extend([
        "radoondas/netatmobeat".to_owned(),
        "radoondas/owmbeat".to_owned(),
    ]);
    let references: Vec<&str> = images.iter().map(String::as_str).collect();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &references,
        &listing_plan(),
        harness::deadline(),
    )
    .await;
    let mut expected = images.clone();
    expected.sort();
    assert_eq!(names(&outcome.fetched), expected);
    assert!(outcome.failed.is_empty() && outcome.deferred.is_empty());
    assert_eq!(outcome.requests, 3 + 2);
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
    assert_eq!(hub.count_kind(RequestKind::Repository), 2);
    let listed = outcome
        .fetched
        .iter()
        .filter(|s| s.collaborator_count.is_none())
        .count();
    assert_eq!(listed, 120);
}

#[tokio::test]
async fn listing_mode_fetches_what_a_listing_does_not_show_one_by_one() {
    let hub = FakeHub::start().await;
    // 250 repositories: the three named ones are on the first page, so the
    // listing stops there; a fourth named one does not exist.
    hub.add_synthetic_repos("bench", 250);
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &[
            "bench/repo-00003",
            "bench/repo-00050",
            "bench/repo-00099",
            "bench/nope",
        ],
        &listing_plan(),
        harness::deadline(),
    )
    .await;
    assert_eq!(
        names(&outcome.fetched),
        ["bench/repo-00003", "bench/repo-00050", "bench/repo-00099"]
    );
    assert_eq!(
        reasons(&outcome),
        [(
            "bench/nope".to_owned(),
            "404 not found (private repository? set dockerhub/username and dockerhub/token)"
                .to_owned()
        )]
    );
    // Page 1 only: pages are in name order and "nope" sorts before its
    // last name, so no later page can have it. Then one request for it.
    assert_eq!(hub.count_kind(RequestKind::Listing), 1);
    assert_eq!(hub.count_kind(RequestKind::Repository), 1);

    // Ten named across all three pages: the three pages are cheaper.
    hub.reset_stats();
    let named: Vec<String> = (1..=10)
        .map(|i| format!("bench/repo-{:05}", i * 25))
        .collect();
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &named,
        &listing_plan(),
        harness::deadline(),
    )
    .await;
    assert_eq!(names(&outcome.fetched), named);
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
    assert_eq!(hub.count_kind(RequestKind::Repository), 0);
}

// ---- issue 11: what the real Hub answers ---------------------------------

#[tokio::test]
async fn an_empty_namespace_is_reported_not_silently_dropped() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.add_private_repo("secretive", "app", 1, 1);
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["radoondsa/*", "secretive/*", "httpd"],
        &FetchPlan::unhurried(),
        harness::deadline(),
    )
    .await;
    assert_eq!(names(&outcome.fetched), ["library/httpd"]);
    let reason = "no public repositories: check the name, or set a token".to_owned();
    assert_eq!(
        reasons(&outcome),
        [
            ("radoondsa/*".to_owned(), reason.clone()),
            ("secretive/*".to_owned(), reason)
        ]
    );
    // Through a run: listed in `failed` with the token's wording.
    let summary = dry_run(&hub, &["radoondsa/*", "httpd"])
        .await
        .expect("run succeeds");
    assert_eq!(
        failed(&summary),
        [(
            "radoondsa/*".to_owned(),
            "no repositories visible with the token: check the name".to_owned()
        )]
    );
}

#[tokio::test]
async fn the_private_repository_hint_is_on_a_404_without_a_token_only() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.add_private_repo("acme", "secret-app", 42, 1);
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["acme/secret-app", "httpd"],
        &FetchPlan::unhurried(),
        harness::deadline(),
    )
    .await;
    assert_eq!(
        outcome.failed,
        [(
            "acme/secret-app".to_owned(),
            FetchError::NotFound { anonymous: true }
        )]
    );
    assert!(
        outcome.failed[0]
            .1
            .to_string()
            .contains("set dockerhub/username")
    );
    // With a token, a 404 is only that, and a 401/403 never gets the hint.
    let summary = dry_run(&hub, &["acme/missing", "httpd"])
        .await
        .expect("run succeeds");
    assert_eq!(
        failed(&summary),
        [("acme/missing".to_owned(), "404 not found".to_owned())]
    );
    hub.fault_repo(
        "acme",
        "missing",
        Fault::json(403, json!({"message": "forbidden"})),
    );
    let summary = dry_run(&hub, &["acme/missing", "httpd"])
        .await
        .expect("run succeeds");
    assert_eq!(
        failed(&summary),
        [("acme/missing".to_owned(), "403 forbidden".to_owned())]
    );
}

/// A client for a run with the fake's credentials.
async fn with_token(hub: &FakeHub, options: HubOptions, deadline: Deadline) -> HubRun {
    hub.require_token(HUB_USER, HUB_TOKEN);
    harness::hub_client(options)
        .for_run(
            Some(&HubCredentials {
                username: HUB_USER.into(),
                token: Secret::new(HUB_TOKEN),
            }),
            deadline,
        )
        .await
        .expect("token accepted")
}

fn specs(images: &[&str]) -> Vec<(String, ImageSpec)> {
    images
        .iter()
        .map(|image| ((*image).to_owned(), image_ref::parse(image).expect("valid")))
        .collect()
}

#[tokio::test]
async fn the_bearer_token_is_renewed_before_it_expires() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", 12);
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    hub.add_private_repo("acme", "secret-app", 42, 1);
    // Tokens live 1 s here (10 minutes on the Hub); the client renews them
    // after 400 ms. 13 requests of 100 ms, one at a time: a token is never
    // used past about 500 ms of its second.
    hub.set_token_lifetime(Duration::from_secs(1));
    hub.set_latency(Duration::from_millis(100));
    let mut options = harness::quick_hub_options(hub.url());
    options.concurrency = 1;
    options.token_renew_after = Duration::from_millis(400);
    let deadline = harness::deadline();
    let client = with_token(&hub, options, deadline).await;
    let mut all = images.clone();
    all.push("acme/secret-app");
    let outcome = client
        .fetch_all(&specs(&all), &FetchPlan::unhurried(), deadline)
        .await;
    assert_eq!(outcome.fetched.len(), 13, "{:?}", outcome.failed);
    let exchanges = hub.count_kind(RequestKind::Auth);
    assert!(exchanges >= 3, "{exchanges} token exchanges");
    // No request was refused: every one counted is an exchange or a
    // repository fetched at the first attempt.
    assert_eq!(outcome.requests as u64, exchanges + 13);
    assert_eq!(hub.issued_tokens().len() as u64, exchanges);
}

#[tokio::test]
async fn a_401_re_authenticates_once_per_run() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let deadline = harness::deadline();
    let client = with_token(&hub, harness::quick_hub_options(hub.url()), deadline).await;
    // The token is refused (revoked, or expired early): one new exchange.
    hub.expire_tokens();
    let outcome = client
        .fetch_all(&specs(&["httpd"]), &FetchPlan::unhurried(), deadline)
        .await;
    assert_eq!(names(&outcome.fetched), ["library/httpd"]);
    assert_eq!(hub.issued_tokens().len(), 1);
    assert_eq!(hub.count_kind(RequestKind::Auth), 2);
    // Refused again in the same run: that 401 is final, without the hint.
    hub.expire_tokens();
    let outcome = client
        .fetch_all(
            &specs(&["library/mysql"]),
            &FetchPlan::unhurried(),
            deadline,
        )
        .await;
    assert!(outcome.fetched.is_empty());
    assert_eq!(
        outcome.failed,
        [("library/mysql".to_owned(), FetchError::Unauthorized(401))]
    );
    assert_eq!(hub.count_kind(RequestKind::Auth), 2);
}

#[tokio::test]
async fn listings_ask_for_name_order_so_a_push_between_pages_skips_nothing() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 250);
    // In the Hub's default order (last update first), repo-00150 moves
    // from page 2 to page 1 once page 1 is read: a client that does not ask
    // for name order never sees it.
    hub.push_after_page("bench", 1, "repo-00150");
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["bench/*"],
        &FetchPlan::unhurried(),
        harness::deadline(),
    )
    .await;
    assert_eq!(outcome.fetched.len(), 250);
    for request in hub.requests_to(&FakeHub::listing_path("bench")) {
        assert!(request.path.contains("ordering=name"), "{}", request.path);
    }
}

#[tokio::test]
async fn relative_next_links_are_followed() {
    let hub = FakeHub::start().await;
    let images = hub.add_synthetic_repos("bench", 250);
    hub.set_relative_next(true);
    let outcome = fetch(
        harness::quick_hub_options(hub.url()),
        &["bench/*"],
        &listing_plan(),
        harness::deadline(),
    )
    .await;
    assert_eq!(names(&outcome.fetched), images);
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
}
