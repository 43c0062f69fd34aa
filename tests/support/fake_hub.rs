//! An in-process fake Docker Hub.
//!
//! The real Hub cannot be used from tests: it rate-limits, changes its counts
//! every second and cannot be made to fail on demand. This fake serves the
//! endpoints the Lambda uses with the recorded wire shapes of
//! `fixtures/dockerhub/` (embedded in [`fixtures`], so the tests need no
//! files outside the repository), and lets a test script the failures the
//! client must survive: 429 with every rate-limit header form, 5xx, slow
//! answers, HTML, JSON without `pull_count`, endless bodies and connections
//! reset mid-body.
//!
//! Everything it receives is recorded (method, path and query, headers), and
//! it tracks how many requests were in flight at once, so tests can assert the
//! `HUB_CONCURRENCY` bound, the `User-Agent`, the bearer token and that the
//! deprecated `/v2/repositories/…` endpoints are never called.
//!
//! It is an axum server rather than a raw socket server: hyper keeps HTTP/1.1
//! connections alive for the client's pool, and the connection-level faults
//! are still possible because hyper honours an explicit `Content-Length` on a
//! streamed body and drops the connection when that stream fails.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        Arc, LazyLock, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures_util::{StreamExt as _, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// Docker Hub's default `page_size` for listings.
const DEFAULT_PAGE_SIZE: u32 = 10;
/// Docker Hub refuses larger pages; the fake clamps to it.
const MAX_PAGE_SIZE: u32 = 100;
/// Size of the chunks a streamed huge body is cut into.
const CHUNK: usize = 64 * 1024;
/// The body Docker Hub's edge (its HAProxy in front of the API) sends with
/// a 429.
pub const HAP429_BODY: &str = "Too Many Requests (HAP429).\n";
/// How long the edge tells a client to stay away after its 429.
pub const EDGE_RETRY_AFTER: u64 = 60;
/// The listing orders Docker Hub accepts (`ordering=`); without one, the
/// most recently updated repository comes first.
const ORDERINGS: [&str; 6] = [
    "name",
    "-name",
    "last_updated",
    "-last_updated",
    "pull_count",
    "-pull_count",
];

/// The recorded Docker Hub responses of `tests/fixtures/dockerhub/` (a copy of
/// the team's shared fixtures), byte for byte.
pub mod fixtures {
    use serde_json::Value;

    /// `GET /v2/repositories/library/httpd` as the seed article showed it (2021).
    pub const LIBRARY_HTTPD_2021: &str =
        include_str!("../fixtures/dockerhub/library-httpd-2021.json");

    /// library/httpd with the fields Docker Hub has added since (values illustrative).
    pub const LIBRARY_HTTPD_CURRENT: &str =
        include_str!("../fixtures/dockerhub/library-httpd-current-fields.json");

    /// radoondas/netatmobeat as the seed article showed it.
    pub const RADOONDAS_NETATMOBEAT: &str =
        include_str!("../fixtures/dockerhub/radoondas-netatmobeat.json");

    /// The first page of `radoondas/*` with `page_size=4` (as served by the real Hub).
    pub const NAMESPACE_LISTING_PAGE1: &str =
        include_str!("../fixtures/dockerhub/namespace-listing-page1.json");

    /// The body of a 404 for an unknown repository.
    pub const NOT_FOUND_404: &str = include_str!("../fixtures/dockerhub/not-found-404.json");

    /// Parses one of the constants above.
    pub fn parse(fixture: &str) -> Value {
        serde_json::from_str(fixture).expect("embedded fixtures are valid JSON")
    }
}

/// What a request was for, as the benchmark and the tests count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `GET /v2/namespaces/{ns}/repositories/{name}`.
    Repository,
    /// `GET /v2/namespaces/{ns}/repositories`.
    Listing,
    /// `POST /v2/auth/token`.
    Auth,
    /// Anything under the deprecated `/v2/repositories/`: never served.
    Deprecated,
    /// Everything else (answered 404).
    Other,
}

impl RequestKind {
    const ALL: [RequestKind; 5] = [
        RequestKind::Repository,
        RequestKind::Listing,
        RequestKind::Auth,
        RequestKind::Deprecated,
        RequestKind::Other,
    ];

    /// The key used in `GET /_fake/stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Repository => "repository",
            RequestKind::Listing => "listing",
            RequestKind::Auth => "auth",
            RequestKind::Deprecated => "deprecated",
            RequestKind::Other => "other",
        }
    }

    fn of(path: &str) -> Self {
        if path == "/v2/auth/token" {
            return RequestKind::Auth;
        }
        if path.starts_with("/v2/repositories/") {
            return RequestKind::Deprecated;
        }
        let parts: Vec<&str> = match path.strip_prefix("/v2/namespaces/") {
            Some(rest) => rest.trim_end_matches('/').split('/').collect(),
            None => return RequestKind::Other,
        };
        match parts.as_slice() {
            [_, "repositories"] => RequestKind::Listing,
            [_, "repositories", _] => RequestKind::Repository,
            _ => RequestKind::Other,
        }
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v2/namespaces/bench/repositories?page_size=100&page=2`.
    pub path: String,
    /// Header names are lowercase (as HTTP/1.1 parsing normalises them), in arrival order.
    pub headers: Vec<(String, String)>,
    pub kind: RequestKind,
}

impl RecordedRequest {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }
}

/// Fixed `X-RateLimit-*` headers added to successful repository and listing
/// answers (a snapshot; see [`FakeHub::limit_requests`] for a real limit).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub limit: u32,
    pub remaining: u32,
    /// Unix time at which `remaining` resets.
    pub reset: u64,
}

/// A scripted misbehaviour, served instead of (or around) the normal answer
/// for one request to the path it was queued for.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with exactly this status, headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then serve the normal answer: longer than the client's timeout
    /// makes a timeout, shorter makes a slow server.
    Delay(Duration),
    /// 200 with an HTML page, as a captive portal or a CDN error page sends.
    Html,
    /// 200 with the normal JSON minus `pull_count`.
    MissingPullCount,
    /// 200 with a valid JSON body of `len` bytes streamed in 64 KiB chunks, so
    /// only a client that caps the body size avoids reading it all. With
    /// `declare_length` the size is announced in `Content-Length`, otherwise
    /// the body is chunked and the client must count.
    HugeBody { len: u64, declare_length: bool },
    /// 200 announcing `Content-Length: content_length`, then `prefix`, then
    /// the connection is dropped (a client sees an incomplete body error).
    ResetMidBody { content_length: u64, prefix: String },
}

impl Fault {
    /// `status` with a `text/plain` body of the reason phrase, as the edge
    /// answers 5xx.
    pub fn status(status: u16) -> Self {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Fault::Respond {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("{reason}\n"),
        }
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Fault::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// The 429 of Docker Hub's edge (its overall, anti-abuse limit): plain
    /// text `Too Many Requests (HAP429).`, `Retry-After: 60`, no
    /// `X-RateLimit-*`, and the connection is closed.
    pub fn too_many_requests() -> Self {
        Fault::Respond {
            status: 429,
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("retry-after".into(), EDGE_RETRY_AFTER.to_string()),
                ("connection".into(), "close".into()),
            ],
            body: HAP429_BODY.into(),
        }
    }

    /// The API's own 429, once a client is past `X-RateLimit-Limit`: JSON,
    /// with `Retry-After` as a Unix time equal to `X-RateLimit-Reset`.
    pub fn api_rate_limited(limit: u32, reset_unix: u64) -> Self {
        Fault::json(
            429,
            json!({"message": "httperror 429: too many requests", "errinfo": {}}),
        )
        .with_header("retry-after", reset_unix)
        .with_header("x-ratelimit-limit", limit)
        .with_header("x-ratelimit-remaining", 0)
        .with_header("x-ratelimit-reset", reset_unix)
    }

    /// A 429 with no header at all, as a proxy in between may send (Docker
    /// Hub itself always says when to come back). Add headers with
    /// [`Fault::with_header`].
    pub fn bare_429() -> Self {
        Fault::Respond {
            status: 429,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: HAP429_BODY.into(),
        }
    }

    /// A scripted 429 with `Retry-After: <value>`: seconds (`2`) or a Unix
    /// time (`unix_now() + 2`), the two forms the contract requires honouring.
    pub fn retry_after(value: impl ToString) -> Self {
        Fault::bare_429().with_header("retry-after", value)
    }

    /// A scripted 429 with `X-RateLimit-Limit: 180`, `X-RateLimit-Remaining:
    /// 0` and `X-RateLimit-Reset: <reset_unix>`, no `Retry-After`.
    pub fn rate_limit_reset(reset_unix: u64) -> Self {
        Fault::bare_429()
            .with_header("x-ratelimit-limit", 180)
            .with_header("x-ratelimit-remaining", 0)
            .with_header("x-ratelimit-reset", reset_unix)
    }

    /// The 429 of fixtures/dockerhub/rate-limited-429.txt: every header, with
    /// `Retry-After: 60` and a reset 60 s from now.
    pub fn rate_limited_fixture() -> Self {
        Fault::rate_limit_reset(unix_now() + 60).with_header("retry-after", 60)
    }

    pub fn delay(delay: Duration) -> Self {
        Fault::Delay(delay)
    }

    pub fn html() -> Self {
        Fault::Html
    }

    pub fn missing_pull_count() -> Self {
        Fault::MissingPullCount
    }

    /// A 40 MiB chunked body.
    pub fn huge_body() -> Self {
        Fault::HugeBody {
            len: 40 * 1024 * 1024,
            declare_length: false,
        }
    }

    /// Headers for a 4 KiB body, the first bytes of a repository JSON, then a
    /// dropped connection.
    pub fn reset_mid_body() -> Self {
        Fault::ResetMidBody {
            content_length: 4096,
            prefix: r#"{"user":"library","name":"httpd","namespace":"library","repository_type":"image","status":1,"pull_count":48712"#.into(),
        }
    }

    /// Adds a response header to a [`Fault::Respond`].
    ///
    /// # Panics
    /// On any other variant: their headers are fixed.
    pub fn with_header(mut self, name: &str, value: impl ToString) -> Self {
        match &mut self {
            Fault::Respond { headers, .. } => {
                headers.push((name.to_ascii_lowercase(), value.to_string()));
            }
            other => panic!("with_header only applies to Fault::Respond, not {other:?}"),
        }
        self
    }
}

/// Current Unix time in seconds, for `Retry-After` and `X-RateLimit-Reset` values.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A base URL on which nothing listens, so connections are refused.
///
/// A bound port cannot refuse connections, so this binds an ephemeral port
/// and releases it; the kernel does not hand out the same ephemeral port again
/// right away.
pub fn unused_local_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The fake Docker Hub. Dropping it stops the server.
pub struct FakeHub {
    addr: SocketAddr,
    url: String,
    state: Arc<HubState>,
    server: JoinHandle<()>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeHub {
    /// Starts on an ephemeral port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on(0).await.expect("start the fake Docker Hub")
    }

    /// Starts on a given port of 127.0.0.1 (0: any), for `examples/fake_services`.
    pub async fn start_on(port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let state = Arc::new(HubState::new(url.clone()));
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("fake Docker Hub stopped: {err}");
            }
        });
        Ok(FakeHub {
            addr,
            url,
            state,
            server,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`, for `DOCKER_HUB_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The path of the repository endpoint, for faults and counters.
    pub fn repo_path(namespace: &str, name: &str) -> String {
        format!("/v2/namespaces/{namespace}/repositories/{name}")
    }

    /// The path of the listing endpoint (without query), for faults and counters.
    pub fn listing_path(namespace: &str) -> String {
        format!("/v2/namespaces/{namespace}/repositories")
    }

    // ---- repositories -------------------------------------------------

    /// A public repository with a realistic full body (every current field,
    /// a ~12 KiB `full_description`) built from these counts.
    pub fn add_repo(&self, namespace: &str, name: &str, pull_count: u64, star_count: u64) {
        self.insert(
            namespace,
            name,
            RepoBody::Synthetic {
                pull_count,
                star_count,
            },
            false,
        );
    }

    /// A public repository answered with exactly this body (a fixture).
    pub fn add_repo_body(&self, namespace: &str, name: &str, body: Value) {
        self.insert(namespace, name, RepoBody::Raw(body), false);
    }

    /// A private repository: answered (and listed) only with a bearer token
    /// from `POST /v2/auth/token`; without one it is a 404 like an unknown
    /// repository, as Docker Hub does not reveal private repositories.
    pub fn add_private_repo(&self, namespace: &str, name: &str, pull_count: u64, star_count: u64) {
        self.insert(
            namespace,
            name,
            RepoBody::Synthetic {
                pull_count,
                star_count,
            },
            true,
        );
    }

    /// `count` synthetic repositories `{namespace}/repo-00001`… with distinct
    /// counts; returns their references.
    pub fn add_synthetic_repos(&self, namespace: &str, count: usize) -> Vec<String> {
        (1..=count)
            .map(|i| {
                let name = format!("repo-{i:05}");
                let i = i as u64;
                self.add_repo(namespace, &name, 1_000 * i + 7, i % 50);
                format!("{namespace}/{name}")
            })
            .collect()
    }

    /// The repositories of the fixtures: `library/httpd` (current fields),
    /// `library/mysql`, `radoondas/netatmobeat` (the seed's body) and the rest
    /// of `radoondas/*` with the counts of the listing fixture, six in all as
    /// its `count` says (the two not on its first page are illustrative).
    pub fn add_fixture_repos(&self) {
        self.add_repo_body(
            "library",
            "httpd",
            fixtures::parse(fixtures::LIBRARY_HTTPD_CURRENT),
        );
        self.add_repo("library", "mysql", 2_503_118_992, 15_921);
        self.add_repo_body(
            "radoondas",
            "netatmobeat",
            fixtures::parse(fixtures::RADOONDAS_NETATMOBEAT),
        );
        self.add_repo("radoondas", "earthquakebeat", 98, 0);
        self.add_repo("radoondas", "owmbeat", 412, 1);
        self.add_repo("radoondas", "safecastbeat", 77, 2);
        self.add_repo("radoondas", "solaredgebeat", 53, 0);
        self.add_repo("radoondas", "wunderbeat", 31, 0);
    }

    pub fn remove_repo(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .repos
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    fn insert(&self, namespace: &str, name: &str, body: RepoBody, private: bool) {
        self.state.lock().repos.insert(
            (namespace.to_owned(), name.to_owned()),
            Repo {
                body,
                private,
                pushed: None,
            },
        );
    }

    // ---- authentication -----------------------------------------------

    /// A refused `POST /v2/auth/token` answers 401 with the secret it was
    /// sent in its `detail`, as a careless server might.
    pub fn echo_secret_on_401(&self) {
        self.state.lock().echo_secret = true;
    }

    /// Accept `{"identifier": user, "secret": pat}` at `POST /v2/auth/token`.
    /// Without it every exchange is a 401.
    pub fn require_token(&self, user: &str, pat: &str) {
        self.state.lock().credentials = Some((user.to_owned(), pat.to_owned()));
    }

    /// The access tokens handed out so far, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().issued_tokens.clone()
    }

    /// How long an issued token is accepted (Docker Hub: 10 minutes); past
    /// it, requests bearing it get a 401.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().token_lifetime = lifetime;
    }

    /// Invalidates every issued token, as their 10-minute expiry would: later
    /// requests bearing one get a 401.
    pub fn expire_tokens(&self) {
        let mut inner = self.state.lock();
        let expired = std::mem::take(&mut inner.issued_tokens);
        inner.expired_tokens.extend(expired);
    }

    // ---- behaviour ----------------------------------------------------

    /// Delay applied to every request before it is answered (faults included).
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// Fixed `X-RateLimit-*` headers on successful repository and listing
    /// answers (`None`: no such headers, the default).
    pub fn set_rate_limit(&self, rate_limit: Option<RateLimit>) {
        self.state.lock().rate_limit = rate_limit;
    }

    /// Docker Hub's API rate limit: `limit` requests per fixed window of
    /// `window`, counted from now. Every answer carries `X-RateLimit-Limit`,
    /// `-Remaining` (after this request) and `-Reset` (the window's end, a
    /// Unix time); a request past the limit gets the API's JSON 429 with
    /// `Retry-After` equal to the reset, and is not served.
    pub fn limit_requests(&self, limit: u32, window: Duration) {
        self.state.lock().windows = Some(Windows {
            limit,
            window,
            start: SystemTime::now(),
            used: 0,
            rejected: 0,
        });
    }

    /// Starts a new rate-limit window now, as the minutes between two
    /// scheduled runs would.
    pub fn next_window(&self) {
        if let Some(windows) = self.state.lock().windows.as_mut() {
            windows.start = SystemTime::now();
            windows.used = 0;
        }
    }

    /// Requests refused with a 429 for being past the limit, so far.
    pub fn rate_limited(&self) -> u64 {
        self.state.lock().windows.as_ref().map_or(0, |w| w.rejected)
    }

    /// `next` links as a path (`/v2/namespaces/…?page=2…`) instead of an
    /// absolute URL, as other clients have seen the Hub send.
    pub fn set_relative_next(&self, relative: bool) {
        self.state.lock().relative_next = relative;
    }

    /// Once page `page` of the namespace's listing has been served, the
    /// repository is pushed to (becomes the most recently updated): the
    /// Hub's default order (by last update) then moves it between pages.
    pub fn push_after_page(&self, namespace: &str, page: u32, name: &str) {
        self.state
            .lock()
            .pushes_after_page
            .entry((namespace.to_owned(), page))
            .or_default()
            .push(name.to_owned());
    }

    /// Queues a fault for the next request to `path`. `path` is matched
    /// against the request path without query, unless it contains `?`, in
    /// which case it must equal the request's path and query exactly. Faults
    /// queued for one path are served first in, first out; then the path is
    /// served normally again.
    pub fn push_fault(&self, path: &str, fault: Fault) {
        self.push_faults(path, 1, fault);
    }

    /// Queues the same fault for the next `times` requests to `path`.
    pub fn push_faults(&self, path: &str, times: usize, fault: Fault) {
        let mut inner = self.state.lock();
        let queue = inner.faults.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Queues a fault for the next request for a repository.
    pub fn fault_repo(&self, namespace: &str, name: &str, fault: Fault) {
        self.push_fault(&Self::repo_path(namespace, name), fault);
    }

    /// Queues a fault for the next listing request of a namespace (any page).
    pub fn fault_listing(&self, namespace: &str, fault: Fault) {
        self.push_fault(&Self::listing_path(namespace), fault);
    }

    /// Faults still queued for `path` (a test can assert they were all consumed).
    pub fn pending_faults(&self, path: &str) -> usize {
        self.state.lock().faults.get(path).map_or(0, VecDeque::len)
    }

    /// From now on, page `at_page` of the namespace listing has a `next`
    /// pointing back at page `back_to`: a client that does not detect the
    /// loop pages forever.
    pub fn loop_listing(&self, namespace: &str, at_page: u32, back_to: u32) {
        self.state
            .lock()
            .listing_loops
            .insert(namespace.to_owned(), (at_page, back_to));
    }

    // ---- observations -------------------------------------------------

    /// Every request so far (except `/_fake/…`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// The requests whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.state
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    pub fn total_requests(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Requests to `path` (without query).
    pub fn count(&self, path: &str) -> u64 {
        self.state.lock().by_path.get(path).copied().unwrap_or(0)
    }

    pub fn count_kind(&self, kind: RequestKind) -> u64 {
        self.state.lock().by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// Requests to the deprecated `/v2/repositories/…` (must stay 0).
    pub fn deprecated_hits(&self) -> u64 {
        self.count_kind(RequestKind::Deprecated)
    }

    /// The most requests in flight at once: counted from arrival until the
    /// response head is ready (latency and delays included, body streaming
    /// excluded).
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Bytes of huge bodies handed to the connection so far. A client that
    /// stops reading makes this stall well short of the body length (give or
    /// take the socket buffers).
    pub fn huge_body_bytes_sent(&self) -> u64 {
        self.state.huge_bytes_sent.load(Ordering::SeqCst)
    }

    /// Clears the request log and the counters; repositories, credentials,
    /// faults and settings stay.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }
}

// ---- state ------------------------------------------------------------

enum RepoBody {
    Synthetic { pull_count: u64, star_count: u64 },
    Raw(Value),
}

struct Repo {
    body: RepoBody,
    private: bool,
    /// Order of a push during the test (higher: more recent); repositories
    /// never pushed to tie, and ties are in name order.
    pushed: Option<u64>,
}

impl Repo {
    fn render(&self, namespace: &str, name: &str) -> Value {
        match &self.body {
            RepoBody::Raw(body) => body.clone(),
            RepoBody::Synthetic {
                pull_count,
                star_count,
            } => synthetic_body(namespace, name, *pull_count, *star_count, self.private),
        }
    }
}

/// The live rate limit of [`FakeHub::limit_requests`].
struct Windows {
    limit: u32,
    window: Duration,
    /// Start of the current window; windows follow each other from it.
    start: SystemTime,
    used: u32,
    rejected: u64,
}

impl Windows {
    /// Counts a request: `Ok(remaining)` when it is served, `Err(())` when
    /// past the limit; and the window's reset (Unix seconds, rounded up).
    fn count(&mut self, now: SystemTime) -> (Result<u32, ()>, u64) {
        let elapsed = now.duration_since(self.start).unwrap_or_default();
        if elapsed >= self.window {
            let windows = (elapsed.as_secs_f64() / self.window.as_secs_f64()).floor();
            self.start += self.window.mul_f64(windows);
            self.used = 0;
        }
        let end = (self.start + self.window)
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        let reset = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        if self.used >= self.limit {
            self.rejected += 1;
            return (Err(()), reset);
        }
        self.used += 1;
        (Ok(self.limit - self.used), reset)
    }
}

struct Inner {
    /// Sorted, so a namespace listing is a range and pages are stable.
    repos: BTreeMap<(String, String), Repo>,
    faults: HashMap<String, VecDeque<Fault>>,
    listing_loops: HashMap<String, (u32, u32)>,
    latency: Duration,
    rate_limit: Option<RateLimit>,
    windows: Option<Windows>,
    relative_next: bool,
    pushes: u64,
    pushes_after_page: HashMap<(String, u32), Vec<String>>,
    credentials: Option<(String, String)>,
    /// A refused token exchange echoes the secret it was sent.
    echo_secret: bool,
    issued_tokens: Vec<String>,
    token_issued_at: HashMap<String, std::time::Instant>,
    token_lifetime: Duration,
    expired_tokens: Vec<String>,
    requests: Vec<RecordedRequest>,
    by_path: HashMap<String, u64>,
    by_kind: HashMap<RequestKind, u64>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            repos: BTreeMap::new(),
            faults: HashMap::new(),
            listing_loops: HashMap::new(),
            latency: Duration::ZERO,
            rate_limit: None,
            windows: None,
            relative_next: false,
            pushes: 0,
            pushes_after_page: HashMap::new(),
            credentials: None,
            echo_secret: false,
            issued_tokens: Vec::new(),
            token_issued_at: HashMap::new(),
            token_lifetime: Duration::from_secs(600),
            expired_tokens: Vec::new(),
            requests: Vec::new(),
            by_path: HashMap::new(),
            by_kind: HashMap::new(),
        }
    }
}

struct HubState {
    base_url: String,
    inner: Mutex<Inner>,
    total: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    huge_bytes_sent: Arc<AtomicU64>,
    tokens_issued: AtomicU64,
}

impl HubState {
    fn new(base_url: String) -> Self {
        HubState {
            base_url,
            inner: Mutex::default(),
            total: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            huge_bytes_sent: Arc::default(),
            tokens_issued: AtomicU64::new(0),
        }
    }

    /// The lock is never held across an await, and a panicking test thread
    /// must not hide the state from the others: ignore poisoning.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, req: &Request, kind: RequestKind) {
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.total.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.lock();
        *inner
            .by_path
            .entry(req.uri().path().to_owned())
            .or_default() += 1;
        *inner.by_kind.entry(kind).or_default() += 1;
        inner.requests.push(RecordedRequest {
            method: req.method().to_string(),
            path,
            headers,
            kind,
        });
    }

    fn pop_fault(&self, req: &Request) -> Option<Fault> {
        let mut inner = self.lock();
        let exact = req.uri().path_and_query().map(|pq| pq.as_str());
        for key in exact.into_iter().chain([req.uri().path()]) {
            if let Some(fault) = inner.faults.get_mut(key).and_then(VecDeque::pop_front) {
                return Some(fault);
            }
        }
        None
    }

    fn reset_stats(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.by_path.clear();
        inner.by_kind.clear();
        self.total.store(0, Ordering::SeqCst);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.huge_bytes_sent.store(0, Ordering::SeqCst);
    }

    fn bearer(&self, headers: &HeaderMap) -> Bearer {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Bearer::Absent;
        };
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
        let inner = self.lock();
        let alive = |token: &str| {
            inner.issued_tokens.iter().any(|t| t == token)
                && inner
                    .token_issued_at
                    .get(token)
                    .is_some_and(|at| at.elapsed() < inner.token_lifetime)
        };
        match token {
            Some(token) if alive(token) => Bearer::Valid,
            _ => Bearer::Invalid,
        }
    }

    fn issue_token(&self, user: &str) -> String {
        let n = self.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let now = unix_now();
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let claims = json!({
            "iss": "fake-docker-hub",
            "sub": user,
            "jti": n,
            "iat": now,
            "exp": now + 600,
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(format!("fake-signature-{n}")),
        );
        let mut inner = self.lock();
        inner.issued_tokens.push(token.clone());
        inner
            .token_issued_at
            .insert(token.clone(), std::time::Instant::now());
        token
    }

    fn stats(&self) -> Value {
        let inner = self.lock();
        let by_kind: serde_json::Map<String, Value> = RequestKind::ALL
            .iter()
            .map(|k| {
                let n = inner.by_kind.get(k).copied().unwrap_or(0);
                (k.as_str().to_owned(), json!(n))
            })
            .collect();
        json!({
            "requests": self.total.load(Ordering::SeqCst),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "by_kind": by_kind,
            "huge_body_bytes_sent": self.huge_bytes_sent.load(Ordering::SeqCst),
        })
    }
}

#[derive(PartialEq)]
enum Bearer {
    Absent,
    Valid,
    Invalid,
}

/// Counts a request in flight for as long as it lives; dropping it (the
/// response is ready, or the client went away and the handler was dropped)
/// counts it out.
struct InFlight<'a>(&'a HubState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a HubState) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---- HTTP -------------------------------------------------------------

fn router(state: Arc<HubState>) -> Router {
    Router::new()
        .route("/v2/namespaces/{ns}/repositories/{name}", get(repository))
        .route("/v2/namespaces/{ns}/repositories", get(listing))
        .route("/v2/repositories/{*rest}", any(deprecated))
        .route("/v2/auth/token", post(auth_token))
        .route("/_fake/stats", get(stats))
        .route("/_fake/reset", post(reset))
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Records the request, counts it in flight, applies the latency and any
/// queued fault, and decorates successful answers with rate-limit headers.
async fn observe(State(state): State<Arc<HubState>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_fake/") {
        return next.run(req).await;
    }
    let kind = RequestKind::of(req.uri().path());
    state.record(&req, kind);
    let _in_flight = InFlight::enter(&state);

    let latency = state.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let limited = state
        .lock()
        .windows
        .as_mut()
        .map(|windows| (windows.limit, windows.count(SystemTime::now())));
    let mut response = match limited {
        Some((limit, (Err(()), reset))) => {
            return fault_response(Fault::api_rate_limited(limit, reset));
        }
        _ => match state.pop_fault(&req) {
            None => next.run(req).await,
            Some(fault) => apply_fault(&state, fault, req, next).await,
        },
    };
    if let Some((limit, (Ok(remaining), reset))) = limited {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(limit)),
            ("x-ratelimit-remaining", u64::from(remaining)),
            ("x-ratelimit-reset", reset),
        ] {
            headers
                .entry(HeaderName::from_static(name))
                .or_insert_with(|| HeaderValue::from(value));
        }
    }

    let rate_limit = state.lock().rate_limit;
    let decorated = matches!(kind, RequestKind::Repository | RequestKind::Listing);
    if let Some(rl) = rate_limit.filter(|_| decorated && response.status().is_success()) {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(rl.limit)),
            ("x-ratelimit-remaining", u64::from(rl.remaining)),
            ("x-ratelimit-reset", rl.reset),
        ] {
            headers
                .entry(HeaderName::from_static(name))
                .or_insert_with(|| HeaderValue::from(value));
        }
    }
    response
}

/// A [`Fault::Respond`] as a response.
fn fault_response(fault: Fault) -> Response {
    let Fault::Respond {
        status,
        headers,
        body,
    } = fault
    else {
        panic!("fault_response only serves Fault::Respond, not {fault:?}");
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("valid status code");
    for (name, value) in headers {
        response.headers_mut().append(
            HeaderName::try_from(name).expect("valid header name"),
            HeaderValue::try_from(value).expect("valid header value"),
        );
    }
    response
}

async fn apply_fault(state: &HubState, fault: Fault, req: Request, next: Next) -> Response {
    match fault {
        respond @ Fault::Respond { .. } => fault_response(respond),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
        Fault::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html>\n<html><head><title>Docker Hub</title></head>\n\
             <body><h1>We'll be right back</h1><p>Docker Hub is undergoing maintenance.</p></body></html>\n",
        )
            .into_response(),
        Fault::MissingPullCount => {
            let response = next.run(req).await;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("buffer the fake's own body");
            let mut value: Value =
                serde_json::from_slice(&bytes).expect("the fake's normal answers are JSON");
            if let Some(object) = value.as_object_mut() {
                object.remove("pull_count");
            }
            let mut response = Json(value).into_response();
            *response.status_mut() = parts.status;
            response
        }
        Fault::HugeBody {
            len,
            declare_length,
        } => {
            let body = Body::from_stream(huge_body(len, state.huge_bytes_sent.clone()));
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if declare_length {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            response
        }
        Fault::ResetMidBody {
            content_length,
            prefix,
        } => {
            // The pause lets hyper flush the head and the prefix before the
            // stream fails, so the client sees a body cut short rather than
            // no answer at all.
            let reset = stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "fake Docker Hub: connection reset mid-body",
                ))
            });
            let body = stream::iter([Ok(Bytes::from(prefix))]).chain(reset);
            let mut response = Response::new(Body::from_stream(body));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
            response
        }
    }
}

/// A valid JSON repository body of exactly `len` bytes (at least the framing),
/// produced one chunk at a time so the fake never holds it in memory.
fn huge_body(
    len: u64,
    sent: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    const PREFIX: &[u8] = br#"{"user":"bench","name":"huge","namespace":"bench","repository_type":"image","status":1,"star_count":0,"pull_count":1,"full_description":""#;
    const SUFFIX: &[u8] = br#""}"#;
    let len = len.max((PREFIX.len() + SUFFIX.len()) as u64);
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let suffix_start = len - SUFFIX.len() as u64;
    stream::unfold(0u64, move |pos| {
        let filler = filler.clone();
        let sent = sent.clone();
        async move {
            if pos >= len {
                return None;
            }
            let end = (pos + CHUNK as u64).min(len);
            let n = (end - pos) as usize;
            let chunk = if pos >= PREFIX.len() as u64 && end <= suffix_start {
                filler.slice(..n)
            } else {
                let byte_at = |i: u64| match i {
                    i if i < PREFIX.len() as u64 => PREFIX[i as usize],
                    i if i >= suffix_start => SUFFIX[(i - suffix_start) as usize],
                    _ => b'x',
                };
                Bytes::from((pos..end).map(byte_at).collect::<Vec<u8>>())
            };
            sent.fetch_add(n as u64, Ordering::SeqCst);
            Some((Ok(chunk), end))
        }
    })
}

async fn repository(
    State(state): State<Arc<HubState>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let bearer = state.bearer(&headers);
    if bearer == Bearer::Invalid {
        return invalid_token();
    }
    let inner = state.lock();
    match inner.repos.get(&(namespace.clone(), name.clone())) {
        Some(repo) if !repo.private || bearer == Bearer::Valid => {
            Json(repo.render(&namespace, &name)).into_response()
        }
        _ => not_found(json!({"namespace": namespace, "repository": name})),
    }
}

#[derive(Deserialize)]
struct ListingQuery {
    page: Option<u32>,
    page_size: Option<u32>,
    ordering: Option<String>,
}

async fn listing(
    State(state): State<Arc<HubState>>,
    Path(namespace): Path<String>,
    Query(query): Query<ListingQuery>,
    headers: HeaderMap,
) -> Response {
    let bearer = state.bearer(&headers);
    if bearer == Bearer::Invalid {
        return invalid_token();
    }
    let page = query.page.unwrap_or(1).max(1);
    let page_size = match query.page_size {
        None | Some(0) => DEFAULT_PAGE_SIZE,
        Some(n) => n.min(MAX_PAGE_SIZE),
    };

    if let Some(ordering) = query.ordering.as_deref().filter(|o| !ORDERINGS.contains(o)) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "message": format!("httperror 400: invalid ordering {ordering:?}"),
                "errinfo": {},
            })),
        )
            .into_response();
    }

    let mut inner = state.lock();
    let mut visible: Vec<(&Repo, Value)> = inner
        .repos
        .range((namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == namespace)
        .filter(|(_, repo)| !repo.private || bearer == Bearer::Valid)
        .map(|((ns, name), repo)| (repo, listing_entry(&repo.render(ns, name), ns, name)))
        .collect();
    let count_of = |entry: &Value| entry["pull_count"].as_u64().unwrap_or(0);
    match query.ordering.as_deref() {
        Some("name") => {}
        Some("-name") => visible.reverse(),
        Some("last_updated") => visible.sort_by_key(|(repo, _)| repo.pushed),
        Some("pull_count") => visible.sort_by_key(|(_, entry)| count_of(entry)),
        Some("-pull_count") => visible.sort_by_key(|(_, entry)| std::cmp::Reverse(count_of(entry))),
        // The Hub's default: the most recently updated first.
        _ => visible.sort_by_key(|(repo, _)| std::cmp::Reverse(repo.pushed)),
    }
    let visible: Vec<Value> = visible.into_iter().map(|(_, entry)| entry).collect();
    // An unknown namespace, or one without a repository this client may
    // see, is an empty listing, not a 404.
    if visible.is_empty() {
        return Json(json!({"count": 0, "next": null, "previous": null, "results": []}))
            .into_response();
    }
    let start = (page as usize - 1) * page_size as usize;
    if start >= visible.len() {
        return not_found(json!({"namespace": namespace, "page": page}));
    }
    let end = (start + page_size as usize).min(visible.len());
    let ordering = query
        .ordering
        .as_deref()
        .map_or_else(String::new, |o| format!("&ordering={o}"));
    let origin = if inner.relative_next {
        ""
    } else {
        state.base_url.as_str()
    };
    let page_url = |p: u32| {
        format!(
            "{origin}/v2/namespaces/{namespace}/repositories?page={p}&page_size={page_size}{ordering}"
        )
    };
    let next = match inner.listing_loops.get(&namespace) {
        Some(&(at, back_to)) if at == page => Some(page_url(back_to)),
        _ => (end < visible.len()).then(|| page_url(page + 1)),
    };
    let previous = (page > 1).then(|| page_url(page - 1));
    let body = json!({
        "count": visible.len(),
        "next": next,
        "previous": previous,
        "results": &visible[start..end],
    });
    for name in inner
        .pushes_after_page
        .remove(&(namespace.clone(), page))
        .unwrap_or_default()
    {
        inner.pushes += 1;
        let pushed = inner.pushes;
        if let Some(repo) = inner.repos.get_mut(&(namespace.clone(), name)) {
            repo.pushed = Some(pushed);
        }
    }
    Json(body).into_response()
}

async fn deprecated() -> Response {
    (
        StatusCode::GONE,
        Json(json!({
            "message": "httperror 410: /v2/repositories/ is deprecated; use /v2/namespaces/{namespace}/repositories/{repository}",
            "errinfo": {},
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    identifier: String,
    secret: String,
}

async fn auth_token(State(state): State<Arc<HubState>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"detail": "identifier and secret are required", "message": "bad request"})),
        )
            .into_response();
    };
    let (accepted, echo) = {
        let inner = state.lock();
        let accepted = inner
            .credentials
            .as_ref()
            .is_some_and(|(user, pat)| *user == request.identifier && *pat == request.secret);
        (accepted, inner.echo_secret)
    };
    if !accepted {
        let detail = if echo {
            format!(
                "Incorrect authentication credentials: secret {} (Bearer {})",
                request.secret, request.secret
            )
        } else {
            "Incorrect authentication credentials".to_owned()
        };
        return (StatusCode::UNAUTHORIZED, Json(json!({ "detail": detail }))).into_response();
    }
    Json(json!({"access_token": state.issue_token(&request.identifier)})).into_response()
}

async fn stats(State(state): State<Arc<HubState>>) -> Json<Value> {
    Json(state.stats())
}

async fn reset(State(state): State<Arc<HubState>>) -> StatusCode {
    state.reset_stats();
    StatusCode::NO_CONTENT
}

async fn unknown() -> Response {
    not_found(json!({}))
}

fn not_found(errinfo: Value) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "httperror 404: object not found", "errinfo": errinfo})),
    )
        .into_response()
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "httperror 401: invalid or expired bearer token", "errinfo": {}})),
    )
        .into_response()
}

// ---- bodies -----------------------------------------------------------

/// The summary a listing carries per repository (fixtures' listing shape),
/// taken from the full body with the listing's defaults for missing fields.
fn listing_entry(full: &Value, namespace: &str, name: &str) -> Value {
    let field = |key: &str, default: Value| full.get(key).cloned().unwrap_or(default);
    let last_updated = field("last_updated", Value::Null);
    json!({
        "name": name,
        "namespace": namespace,
        "repository_type": field("repository_type", json!("image")),
        "status": field("status", json!(1)),
        "status_description": field("status_description", json!("active")),
        "description": field("description", json!("")),
        "is_private": field("is_private", json!(false)),
        "star_count": field("star_count", json!(0)),
        "pull_count": field("pull_count", json!(0)),
        "last_updated": last_updated.clone(),
        "last_modified": field("last_modified", last_updated),
        "date_registered": field("date_registered", json!("2019-03-01T10:00:00.000000Z")),
        "affiliation": "",
        "media_types": field("media_types", json!(["application/vnd.docker.container.image.v1+json"])),
        "content_types": field("content_types", json!(["image"])),
        "categories": field("categories", json!([])),
        "storage_size": field("storage_size", json!(123456)),
    })
}

/// Every field a current Docker Hub repository answer has, so the client is
/// tested against the full shape and not just the fields it reads.
fn synthetic_body(
    namespace: &str,
    name: &str,
    pull_count: u64,
    star_count: u64,
    private: bool,
) -> Value {
    json!({
        "user": namespace,
        "name": name,
        "namespace": namespace,
        "repository_type": "image",
        "status": 1,
        "status_description": "active",
        "description": format!("{name}: an image published by {namespace}"),
        "is_private": private,
        "is_automated": false,
        "can_edit": false,
        "star_count": star_count,
        "pull_count": pull_count,
        "last_updated": "2026-11-20T08:14:03.512846Z",
        "last_modified": "2026-11-20T08:14:03.512846Z",
        "date_registered": "2019-03-01T10:00:00.000000Z",
        "is_migrated": false,
        "collaborator_count": 0,
        "affiliation": null,
        "has_starred": false,
        "full_description": format!("# {namespace}/{name}\n\n{}", *FULL_DESCRIPTION),
        "permissions": {"read": true, "write": false, "admin": false},
        "hub_user": namespace,
        "media_types": [
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.index.v1+json"
        ],
        "content_types": ["image"],
        "categories": [{"name": "Developer Tools", "slug": "developer-tools"}],
        "immutable_tags_settings": {"enabled": false, "rules": []},
        "storage_size": 16_034_373_482_u64,
    })
}

/// A README of the size official images have (~12 KiB of Markdown): the part
/// of the answer the Lambda throws away, and most of its bytes.
static FULL_DESCRIPTION: LazyLock<String> = LazyLock::new(|| {
    let mut text = String::from(
        "# Quick reference\n\n\
         -\t**Maintained by**:  \n\t[the Docker Community](https://github.com/docker-library)\n\n\
         -\t**Where to get help**:  \n\t[the Docker Community Slack](https://dockr.ly/comm-slack), \
         [Server Fault](https://serverfault.com/help/on-topic), \
         [Unix & Linux](https://unix.stackexchange.com/help/on-topic), or \
         [Stack Overflow](https://stackoverflow.com/help/on-topic)\n\n\
         # Supported tags and respective `Dockerfile` links\n\n",
    );
    for version in 0..40 {
        text.push_str(&format!(
            "-\t[`2.4.{version}`, `2.4.{version}-bookworm`](https://github.com/docker-library/httpd/blob/master/2.4/Dockerfile)\n"
        ));
    }
    text.push_str("\n# How to use this image\n\n");
    for section in 0..24 {
        text.push_str(&format!(
            "## Configuration, part {section}\n\n\
             To customize the configuration, copy the default file from the image and mount it:\n\n\
             ```console\n$ docker run --rm image:latest cat /usr/local/etc/config > my-config-{section}\n\
             $ docker run -dit --name app-{section} -p 8080:80 -v \"$PWD\":/usr/local/data/ image:latest\n```\n\n\
             The image ships with sensible defaults; environment variables override them at start-up.\n\n"
        ));
    }
    text.push_str(
        "# License\n\nView license information for the software contained in this image.\n\n\
         As with all Docker images, these likely also contain other software which may be under \
         other licenses (such as Bash, etc from the base distribution, along with any direct or \
         indirect dependencies of the primary software being contained).\n",
    );
    text
});

/// The documents ([`_id`, source] pairs) a run at `time` makes of
/// `library/httpd`, `library/mysql` and `radoondas/netatmobeat` as
/// [`FakeHub::add_fixture_repos`] serves them.
pub fn fixture_documents(time: &str) -> Vec<(String, Value)> {
    let doc = |ns: &str, name: &str, pulls: u64, stars: u64| {
        (
            format!("{ns}/{name}@{time}"),
            json!({"@timestamp": time, "http": {"docker_hub": {
                "namespace": ns, "name": name, "pull_count": pulls, "star_count": stars, "collaborator_count": 0}}}),
        )
    };
    vec![
        doc("library", "httpd", 4_871_203_345, 4812),
        doc("library", "mysql", 2_503_118_992, 15_921),
        doc("radoondas", "netatmobeat", 159, 0),
    ]
}
