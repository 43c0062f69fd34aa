//! Tests of the stand-ins themselves: a fake that misbehaves in the wrong way
//! would make the Lambda's tests prove nothing. Plain reqwest plays the
//! client here, so these tests do not depend on the library.

mod support;

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{
    fake_hub::{
        EDGE_RETRY_AFTER, FakeHub, Fault, HAP429_BODY, RateLimit, RequestKind, fixtures, unix_now,
        unused_local_url,
    },
    moto::Moto,
};

fn client() -> Client {
    Client::builder()
        .user_agent("fake-hub-selftest/1")
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn repo_url(hub: &FakeHub, namespace: &str, name: &str) -> String {
    format!("{}{}", hub.url(), FakeHub::repo_path(namespace, name))
}

#[tokio::test]
async fn serves_fixture_bodies_verbatim_and_records_requests() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();

    let response = client()
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, fixtures::parse(fixtures::LIBRARY_HTTPD_CURRENT));
    assert_eq!(body["pull_count"], json!(4_871_203_345_u64));

    let (_, body) = get_json(&repo_url(&hub, "radoondas", "netatmobeat")).await;
    assert_eq!(body, fixtures::parse(fixtures::RADOONDAS_NETATMOBEAT));

    let requests = hub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].path,
        "/v2/namespaces/library/repositories/httpd"
    );
    assert_eq!(requests[0].kind, RequestKind::Repository);
    assert_eq!(requests[0].user_agent(), Some("fake-hub-selftest/1"));
    assert_eq!(hub.count("/v2/namespaces/library/repositories/httpd"), 1);
    assert_eq!(hub.count_kind(RequestKind::Repository), 2);
    assert_eq!(hub.total_requests(), 2);
}

#[tokio::test]
async fn synthetic_repositories_have_the_full_current_shape() {
    let hub = FakeHub::start().await;
    hub.add_repo("acme", "tool", 12_345_678_901, 42);
    let (status, body) = get_json(&repo_url(&hub, "acme", "tool")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pull_count"], json!(12_345_678_901_u64));
    assert_eq!(body["star_count"], json!(42));
    assert_eq!(body["namespace"], "acme");
    assert_eq!(body["collaborator_count"], json!(0));
    assert!(body["full_description"].as_str().unwrap().len() > 10_000);
    // Every field of the current fixture is there, plus `last_modified`.
    let current = fixtures::parse(fixtures::LIBRARY_HTTPD_CURRENT);
    for key in current.as_object().unwrap().keys() {
        assert!(body.get(key).is_some(), "synthetic body lacks {key}");
    }
}

#[tokio::test]
async fn unknown_repository_is_a_404_in_the_hub_shape() {
    let hub = FakeHub::start().await;
    let (status, body) = get_json(&repo_url(&hub, "acme", "missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixtures::parse(fixtures::NOT_FOUND_404));
}

#[tokio::test]
async fn deprecated_endpoint_is_refused_and_counted() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let url = format!("{}/v2/repositories/library/httpd/", hub.url());
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(hub.deprecated_hits(), 1);
    assert_eq!(hub.count_kind(RequestKind::Repository), 0);
}

#[tokio::test]
async fn listing_pages_follow_absolute_next_links() {
    let hub = FakeHub::start().await;
    let references = hub.add_synthetic_repos("bench", 250);
    assert_eq!(references[0], "bench/repo-00001");
    hub.add_repo("benchmark", "not-in-bench", 1, 1);

    let mut url = Some(format!(
        "{}/v2/namespaces/bench/repositories?page_size=100",
        hub.url()
    ));
    let mut names = Vec::new();
    let mut pages = 0;
    while let Some(current) = url {
        let (status, page) = get_json(&current).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["count"], json!(250));
        assert_eq!(page["previous"].is_null(), pages == 0);
        for entry in page["results"].as_array().unwrap() {
            assert_eq!(entry["namespace"], "bench");
            names.push(entry["name"].as_str().unwrap().to_owned());
        }
        url = page["next"].as_str().map(str::to_owned);
        if let Some(next) = &url {
            assert!(next.starts_with(hub.url()), "next must be absolute: {next}");
        }
        pages += 1;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=250).map(|i| format!("repo-{i:05}")).collect();
    assert_eq!(names, expected);
    assert_eq!(hub.count_kind(RequestKind::Listing), 3);
    assert_eq!(hub.count(&FakeHub::listing_path("bench")), 3);
}

#[tokio::test]
async fn listing_matches_the_recorded_page_shape() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let recorded = fixtures::parse(fixtures::NAMESPACE_LISTING_PAGE1);

    let url = format!(
        "{}/v2/namespaces/radoondas/repositories?page_size=4",
        hub.url()
    );
    let (_, page) = get_json(&url).await;
    assert_eq!(page["count"], recorded["count"]);
    assert_eq!(
        page["next"],
        json!(format!(
            "{}/v2/namespaces/radoondas/repositories?page=2&page_size=4",
            hub.url()
        ))
    );
    assert_eq!(page["previous"], Value::Null);
    let results = page["results"].as_array().unwrap();
    let expected = recorded["results"].as_array().unwrap();
    assert_eq!(results.len(), expected.len());
    for (got, want) in results.iter().zip(expected) {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(got), keys(want));
        for field in ["name", "namespace", "pull_count", "star_count"] {
            assert_eq!(got[field], want[field], "{field} of {}", want["name"]);
        }
    }

    let (_, last) = get_json(page["next"].as_str().unwrap()).await;
    assert_eq!(last["results"].as_array().unwrap().len(), 2);
    assert_eq!(last["next"], Value::Null);

    let (status, _) = get_json(&format!("{url}&page=3")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn page_size_is_capped_at_100() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 150);
    let (_, page) = get_json(&format!(
        "{}/v2/namespaces/bench/repositories?page_size=500&page=1",
        hub.url()
    ))
    .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 100);
    assert!(
        page["next"]
            .as_str()
            .unwrap()
            .ends_with("page=2&page_size=100")
    );
}

#[tokio::test]
async fn a_looping_listing_points_back_at_a_seen_page() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 250);
    hub.loop_listing("bench", 2, 1);
    let first = format!(
        "{}/v2/namespaces/bench/repositories?page=1&page_size=100",
        hub.url()
    );
    let (_, page1) = get_json(&first).await;
    let (_, page2) = get_json(page1["next"].as_str().unwrap()).await;
    assert_eq!(page2["next"], json!(first));
}

#[tokio::test]
async fn token_exchange_unlocks_private_repositories() {
    let hub = FakeHub::start().await;
    hub.require_token("alice", "dckr_pat_secret");
    hub.add_repo("alice", "public", 10, 0);
    hub.add_private_repo("alice", "secret", 20, 1);
    let http = client();
    let token_url = format!("{}/v2/auth/token", hub.url());

    let wrong = http
        .post(&token_url)
        .json(&json!({"identifier": "alice", "secret": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"detail": "Incorrect authentication credentials"})
    );

    let right: Value = http
        .post(&token_url)
        .json(&json!({"identifier": "alice", "secret": "dckr_pat_secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = right["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "JWT-like: {token}");
    assert_eq!(hub.issued_tokens(), vec![token.clone()]);
    assert_eq!(hub.count_kind(RequestKind::Auth), 2);

    let private = repo_url(&hub, "alice", "secret");
    let anonymous = http.get(&private).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
    let authed = http.get(&private).bearer_auth(&token).send().await.unwrap();
    assert_eq!(authed.status(), StatusCode::OK);
    assert_eq!(
        authed.json::<Value>().await.unwrap()["is_private"],
        json!(true)
    );
    let recorded = hub.requests_to(&FakeHub::repo_path("alice", "secret"));
    assert_eq!(
        recorded[1].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );

    let listing = format!("{}/v2/namespaces/alice/repositories", hub.url());
    let public_view: Value = http
        .get(&listing)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public_view["count"], json!(1));
    let owner_view: Value = http
        .get(&listing)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(owner_view["count"], json!(2));

    let bogus = http
        .get(&private)
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);
    hub.expire_tokens();
    let expired = http.get(&private).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scripted_rate_limits_have_exact_headers_then_normal_service() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let path = FakeHub::repo_path("library", "httpd");
    let reset = unix_now() + 5;
    hub.push_fault(&path, Fault::retry_after(2));
    hub.push_fault(&path, Fault::retry_after(reset));
    hub.push_fault(&path, Fault::rate_limit_reset(reset));
    hub.push_faults(&path, 2, Fault::status(503));
    assert_eq!(hub.pending_faults(&path), 5);
    let url = repo_url(&hub, "library", "httpd");
    let http = client();

    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.headers()["content-type"], "text/plain");
    assert_eq!(first.headers()["retry-after"], "2");
    assert!(first.headers().get("x-ratelimit-reset").is_none());
    assert_eq!(first.text().await.unwrap(), HAP429_BODY);

    let second = http.get(&url).send().await.unwrap();
    assert_eq!(second.headers()["retry-after"], reset.to_string().as_str());

    let third = http.get(&url).send().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().get("retry-after").is_none());
    assert_eq!(third.headers()["x-ratelimit-limit"], "180");
    assert_eq!(third.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        third.headers()["x-ratelimit-reset"],
        reset.to_string().as_str()
    );

    for _ in 0..2 {
        let unavailable = http.get(&url).send().await.unwrap();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let normal = http.get(&url).send().await.unwrap();
    assert_eq!(normal.status(), StatusCode::OK);
    assert_eq!(hub.pending_faults(&path), 0);
    assert_eq!(hub.count(&path), 6);
}

#[tokio::test]
async fn faults_are_per_path_and_query_specific_keys_win() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 150);
    hub.add_fixture_repos();
    let page2 = "/v2/namespaces/bench/repositories?page=2&page_size=100";
    hub.push_fault(page2, Fault::status(502));
    let http = client();

    let httpd = http
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(httpd.status(), StatusCode::OK);
    let page1 = http
        .get(format!(
            "{}/v2/namespaces/bench/repositories?page=1&page_size=100",
            hub.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page1.status(), StatusCode::OK);
    let failing = http
        .get(format!("{}{page2}", hub.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(failing.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(hub.pending_faults(page2), 0);
}

#[tokio::test]
async fn html_and_missing_pull_count_bodies() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::html());
    hub.fault_repo("library", "httpd", Fault::missing_pull_count());
    let url = repo_url(&hub, "library", "httpd");
    let http = client();

    let html = http.get(&url).send().await.unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.json::<Value>().await.is_err());

    let partial = http.get(&url).send().await.unwrap();
    assert_eq!(partial.status(), StatusCode::OK);
    let body: Value = partial.json().await.unwrap();
    assert!(body.get("pull_count").is_none());
    assert_eq!(body["star_count"], json!(4812));
}

#[tokio::test]
async fn a_delay_beyond_the_client_timeout_times_out() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::delay(Duration::from_secs(3)));
    let http = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = repo_url(&hub, "library", "httpd");

    let err = http.get(&url).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // The client hung up: the request must stop counting as in flight long
    // before the 3 s delay ends, or concurrency assertions after a timeout
    // would be inflated.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.in_flight(), 0);
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_huge_body_is_streamed_and_a_client_can_stop_reading() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::huge_body());
    let url = repo_url(&hub, "library", "httpd");

    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.content_length().is_none(),
        "chunked: the client must count"
    );
    let mut read = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        read += chunk.len();
        if read > 1024 * 1024 {
            break;
        }
    }
    drop(response);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = hub.huge_body_bytes_sent();
    assert!(
        sent < 20 * 1024 * 1024,
        "the fake kept producing after the client left: {sent} bytes"
    );
}

#[tokio::test]
async fn a_huge_body_read_to_the_end_is_valid_json_of_the_announced_size() {
    let hub = FakeHub::start().await;
    let len = 3 * 1024 * 1024 + 17;
    hub.fault_repo(
        "library",
        "httpd",
        Fault::HugeBody {
            len,
            declare_length: true,
        },
    );
    let response = client()
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_length(), Some(len));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, len);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["pull_count"], json!(1));
    assert_eq!(hub.huge_body_bytes_sent(), len);
}

#[tokio::test]
async fn a_reset_mid_body_is_a_client_error_and_service_resumes() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.fault_repo("library", "httpd", Fault::reset_mid_body());
    let url = repo_url(&hub, "library", "httpd");
    let http = client();

    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(4096));
    let err = response.bytes().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err:?}");

    let again = http.get(&url).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["name"], "httpd");
}

#[tokio::test]
async fn in_flight_requests_are_counted_at_their_peak() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 8);
    hub.set_latency(Duration::from_millis(300));
    let http = client();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=8 {
        let request = http.get(repo_url(&hub, "bench", &format!("repo-{i:05}")));
        tasks.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(hub.max_in_flight(), 8);
    assert_eq!(hub.in_flight(), 0);

    hub.reset_stats();
    hub.set_latency(Duration::from_millis(20));
    for i in 1..=3 {
        let response = http
            .get(repo_url(&hub, "bench", &format!("repo-{i:05}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(hub.max_in_flight(), 1);
    assert_eq!(hub.total_requests(), 3);
}

#[tokio::test]
async fn rate_limit_headers_decorate_successful_answers() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.set_rate_limit(Some(RateLimit {
        limit: 180,
        remaining: 3,
        reset: 1_764_268_560,
    }));
    let http = client();
    let ok = http
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-ratelimit-limit"], "180");
    assert_eq!(ok.headers()["x-ratelimit-remaining"], "3");
    assert_eq!(ok.headers()["x-ratelimit-reset"], "1764268560");
    let missing = http
        .get(repo_url(&hub, "acme", "missing"))
        .send()
        .await
        .unwrap();
    assert!(missing.headers().get("x-ratelimit-remaining").is_none());
}

#[tokio::test]
async fn stats_endpoint_reports_counts_without_counting_itself() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let http = client();
    http.get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    http.get(format!(
        "{}/v2/namespaces/radoondas/repositories?page_size=100",
        hub.url()
    ))
    .send()
    .await
    .unwrap();
    http.post(format!("{}/v2/auth/token", hub.url()))
        .json(&json!({"identifier": "x", "secret": "y"}))
        .send()
        .await
        .unwrap();

    let stats_url = format!("{}/_fake/stats", hub.url());
    let (_, stats) = get_json(&stats_url).await;
    assert_eq!(stats["requests"], json!(3));
    assert_eq!(stats["max_in_flight"], json!(1));
    assert_eq!(stats["by_kind"]["repository"], json!(1));
    assert_eq!(stats["by_kind"]["listing"], json!(1));
    assert_eq!(stats["by_kind"]["auth"], json!(1));
    assert_eq!(hub.total_requests(), 3);

    let reset = http
        .post(format!("{}/_fake/reset", hub.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let (_, stats) = get_json(&stats_url).await;
    assert_eq!(stats["requests"], json!(0));
}

#[tokio::test]
async fn unused_local_url_refuses_connections() {
    let err = client().get(unused_local_url()).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn moto_round_trips_parameters_with_decryption() {
    let moto = Moto::start().await;
    moto.put(
        "/docker-pulls/images",
        "httpd,radoondas/*",
        ParameterType::StringList,
    )
    .await;
    moto.put(
        "/docker-pulls/elasticsearch/url",
        "http://127.0.0.1:9200",
        ParameterType::String,
    )
    .await;
    moto.put(
        "/docker-pulls/dockerhub/token",
        "dckr_pat_secret",
        ParameterType::SecureString,
    )
    .await;

    let ssm = moto.ssm_client().await;
    let mut found = std::collections::BTreeMap::new();
    let mut pages = ssm
        .get_parameters_by_path()
        .path("/docker-pulls")
        .recursive(true)
        .with_decryption(true)
        .max_results(1)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for parameter in page.unwrap().parameters.unwrap_or_default() {
            found.insert(parameter.name.unwrap(), parameter.value.unwrap());
        }
    }
    assert_eq!(found.len(), 3);
    assert_eq!(found["/docker-pulls/images"], "httpd,radoondas/*");
    assert_eq!(found["/docker-pulls/dockerhub/token"], "dckr_pat_secret");

    let env = moto.env();
    assert!(env.contains(&("AWS_ENDPOINT_URL_SSM", moto.endpoint_url().to_owned())));

    moto.reset().await;
    let after = ssm
        .get_parameters_by_path()
        .path("/docker-pulls")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(after.parameters.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn the_edge_and_api_429s_look_like_docker_hubs() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let path = FakeHub::repo_path("library", "httpd");
    let reset = unix_now() + 42;
    hub.push_fault(&path, Fault::too_many_requests());
    hub.push_fault(&path, Fault::api_rate_limited(180, reset));
    let http = client();
    let url = repo_url(&hub, "library", "httpd");

    let edge = http.get(&url).send().await.unwrap();
    assert_eq!(edge.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(edge.headers()["content-type"], "text/plain");
    assert_eq!(
        edge.headers()["retry-after"],
        EDGE_RETRY_AFTER.to_string().as_str()
    );
    assert_eq!(edge.headers()["connection"], "close");
    assert!(edge.headers().get("x-ratelimit-limit").is_none());
    assert_eq!(edge.text().await.unwrap(), "Too Many Requests (HAP429).\n");

    let api = http.get(&url).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api.headers()["content-type"], "application/json");
    let reset = reset.to_string();
    assert_eq!(api.headers()["retry-after"], reset.as_str());
    assert_eq!(api.headers()["x-ratelimit-reset"], reset.as_str());
    assert_eq!(api.headers()["x-ratelimit-remaining"], "0");
    assert!(api.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn a_request_limit_counts_fixed_windows_on_every_answer() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.require_token("acme", "dckr_pat_x");
    hub.limit_requests(3, Duration::from_secs(60));
    let http = client();
    let before = unix_now();
    let token = http
        .post(format!("{}/v2/auth/token", hub.url()))
        .json(&json!({"identifier": "acme", "secret": "dckr_pat_x"}))
        .send()
        .await
        .unwrap();
    let missing = http
        .get(repo_url(&hub, "acme", "missing"))
        .send()
        .await
        .unwrap();
    let ok = http
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    let refused = http
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    let remaining: Vec<&str> = [&token, &missing, &ok]
        .iter()
        .map(|r| r.headers()["x-ratelimit-remaining"].to_str().unwrap())
        .collect();
    assert_eq!(remaining, ["2", "1", "0"]);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(ok.headers()["x-ratelimit-limit"], "3");
    let reset: u64 = ok.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((before + 60..=before + 62).contains(&reset), "{reset}");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], reset.to_string().as_str());
    assert_eq!(
        refused.headers()["x-ratelimit-reset"],
        reset.to_string().as_str()
    );
    assert_eq!(hub.rate_limited(), 1);
    // A new window (the next scheduled run): the budget is whole again.
    hub.next_window();
    let again = http
        .get(repo_url(&hub, "library", "httpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["x-ratelimit-remaining"], "2");
}

#[tokio::test]
async fn an_unknown_namespace_lists_empty_and_orderings_are_checked() {
    let hub = FakeHub::start().await;
    hub.add_private_repo("secretive", "app", 1, 1);
    for namespace in ["nobody", "secretive"] {
        let (status, page) = get_json(&format!(
            "{}/v2/namespaces/{namespace}/repositories?page_size=100",
            hub.url()
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            page,
            json!({"count": 0, "next": null, "previous": null, "results": []})
        );
    }
    let (status, _) = get_json(&format!(
        "{}/v2/namespaces/secretive/repositories?ordering=stars",
        hub.url()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Every name a client reading `next` links from `first` sees.
async fn read_listing(first: String) -> Vec<String> {
    let mut url = Some(first);
    let mut names = Vec::new();
    while let Some(current) = url {
        let (status, page) = get_json(&current).await;
        assert_eq!(status, StatusCode::OK, "{current}");
        for entry in page["results"].as_array().unwrap() {
            names.push(entry["name"].as_str().unwrap().to_owned());
        }
        url = page["next"].as_str().map(str::to_owned);
    }
    names
}

#[tokio::test]
async fn a_push_between_pages_moves_a_repository_in_the_default_order_only() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 250);
    hub.push_after_page("bench", 1, "repo-00150");
    let default_order = read_listing(format!(
        "{}/v2/namespaces/bench/repositories?page_size=100",
        hub.url()
    ))
    .await;
    assert_eq!(default_order.len(), 250);
    assert!(!default_order.contains(&"repo-00150".to_owned()));
    assert_eq!(
        default_order.iter().filter(|n| *n == "repo-00100").count(),
        2
    );

    hub.push_after_page("bench", 1, "repo-00160");
    let by_name = read_listing(format!(
        "{}/v2/namespaces/bench/repositories?page_size=100&ordering=name",
        hub.url()
    ))
    .await;
    let expected: Vec<String> = (1..=250).map(|i| format!("repo-{i:05}")).collect();
    assert_eq!(by_name, expected);
}

#[tokio::test]
async fn next_links_can_be_relative_and_keep_the_ordering() {
    let hub = FakeHub::start().await;
    hub.add_synthetic_repos("bench", 150);
    hub.set_relative_next(true);
    let (_, page) = get_json(&format!(
        "{}/v2/namespaces/bench/repositories?page_size=100&ordering=name",
        hub.url()
    ))
    .await;
    assert_eq!(
        page["next"],
        "/v2/namespaces/bench/repositories?page=2&page_size=100&ordering=name"
    );
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime() {
    let hub = FakeHub::start().await;
    hub.add_private_repo("acme", "secret-app", 42, 1);
    hub.require_token("acme", "dckr_pat_x");
    hub.set_token_lifetime(Duration::from_millis(300));
    let http = client();
    let token: Value = http
        .post(format!("{}/v2/auth/token", hub.url()))
        .json(&json!({"identifier": "acme", "secret": "dckr_pat_x"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let url = repo_url(&hub, "acme", "secret-app");
    let fresh = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
}
