//! Docker Hub side of a run, against the fake Hub: which requests are made,
//! what ends up as documents, and every fault rule of the contract. These
//! runs are dry runs (nothing indexed) so each test isolates the Hub.

mod support;

use docker_pulls::Error;
use docker_pulls::document::RepositoryStats;
use docker_pulls::hub::{FetchOutcome, FetchPlan, HubOptions};
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
async fn rate_limit_as_plain_text_without_headers_backs_off() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::too_many_requests());
    let summary = dry_run(&hub, &["httpd"]).await.expect("run succeeds");
    assert_eq!(repositories(&summary), ["library/httpd"]);
    assert_eq!(hub.count(&FakeHub::repo_path("library", "httpd")), 2);
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
    assert_eq!(names(&outcome.fetched), ["library/mysql"]);
    assert_eq!(outcome.deferred, ["library/httpd"]);
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.rate_limited, 1);
    assert_eq!(outcome.requests, 2);
    assert_eq!(hub.total_requests(), 2);
}
