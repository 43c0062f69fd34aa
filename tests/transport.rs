//! Where credentials may travel: an Elasticsearch request never follows a
//! redirect to another origin (the API key, a session token or a signed
//! `Host` would go where nobody configured them to), and a Docker Hub token
//! is never sent over plain `http://` except to this machine.
//! (Plain `http://` with Elasticsearch credentials is refused when the
//! settings are read: src/config's unit tests.)

mod support;

use docker_pulls::spool::MemorySpool;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;
use support::harness;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];
const API_KEY: &str = "cmVkaXJlY3Q6bmV2ZXItZm9sbG93ZWQ=";

/// Answers every request with `307` to the same path at `target`; counts them.
async fn redirector(target: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                let mut read = 0;
                // Headers, then whatever body came with them: enough to answer.
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let request = String::from_utf8_lossy(&buffer[..read]);
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn an_elasticsearch_redirect_to_another_origin_is_not_followed() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let other = FakeEs::start().await;
    let (url, redirects) = redirector(other.url()).await;
    let settings = harness::with_api_key(harness::settings(&IMAGES, Some(&url)), API_KEY);
    let spool = Arc::new(MemorySpool::default());
    let job =
        harness::job(settings, harness::quick_hub_options(hub.url())).with_spool(spool.clone());
    let (event, _) = harness::scheduled_event(std::time::Duration::ZERO);
    let summary = job
        .run(&harness::request(event), harness::deadline())
        .await
        .expect("a spooled run succeeds");
    assert_eq!((summary.indexed, summary.spooled), (0, 3), "{summary:?}");
    assert!(redirects.load(Ordering::SeqCst) >= 1);
    assert!(
        other.requests().is_empty(),
        "the other origin got {:?}",
        other.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let reason = summary.elasticsearch_error.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "redirected from {url} to another origin, {}, which is not followed",
            other.url()
        )),
        "{reason}"
    );
    assert!(!reason.contains(API_KEY), "{reason}");

    // Setup too: its requests fail with the same reason.
    let error = job
        .setup(harness::deadline())
        .await
        .expect_err("setup cannot reach the cluster");
    assert!(error.to_string().contains("to another origin"), "{error}");
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn a_docker_hub_token_never_goes_over_plain_http_to_another_machine() {
    let settings = harness::with_hub_token(
        harness::settings(&IMAGES, None),
        "acme",
        "dckr_pat_plain_http",
    );
    // Nothing listens there; the run must stop before any connection.
    let job = harness::job(
        settings,
        harness::quick_hub_options("http://hub.example.invalid"),
    );
    let error = job
        .run(
            &harness::request(json!({"dry_run": true})),
            harness::deadline(),
        )
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("DOCKER_HUB_URL http://hub.example.invalid is plain http://"),
        "{text}"
    );
    assert!(!text.contains("dckr_pat_plain_http"), "{text}");
}
