//! The Docker Hub client: repository statistics and namespace listings,
//! fetched concurrently but politely.
//!
//! At most `concurrency` requests are in flight (listing pages and repository
//! fetches share the bound, and repositories are fetched as soon as a listing
//! page names them, so a run takes about N / `concurrency` round trips rather
//! than the listing pages followed by those); each has a timeout; a 429
//! pauses every request until the time the Hub names (`Retry-After` in seconds
//! or as a Unix time, `X-RateLimit-Reset`); 5xx, timeouts and broken
//! connections are retried with backoff; a 404 is final. Bodies are read with
//! a size cap and decoded into just the fields we keep.

use crate::config::{HubCredentials, Secret};
use crate::document::RepositoryStats;
use crate::http::{ReadError, error_chain, read_capped};
use crate::image_ref::{ImageSpec, Repository};
use crate::retry::{self, Deadline};
use futures_util::{StreamExt, stream};
use reqwest::{Method, Response, StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub use crate::config::{DEFAULT_HUB_CONCURRENCY as DEFAULT_CONCURRENCY, DEFAULT_HUB_URL};

/// Tunables of the Docker Hub client; the defaults suit the Lambda.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub base_url: String,
    /// Most requests in flight at once (`HUB_CONCURRENCY`).
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A repository answer is a few kilobytes (`full_description` at most
    /// 25,000 characters); anything far larger is not what we asked for.
    pub max_repository_body: usize,
    pub max_listing_body: usize,
    /// Listing pages followed per namespace (100 repositories each).
    pub max_listing_pages: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_HUB_URL.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(4),
            max_repository_body: 1024 * 1024,
            max_listing_body: 8 * 1024 * 1024,
            max_listing_pages: 500,
        }
    }
}

/// Why one image could not be fetched. Reported per image; never fatal alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("404 not found")]
    NotFound,
    #[error("{0} unauthorized (private repository? set dockerhub/username and dockerhub/token)")]
    Unauthorized(u16),
    #[error("HTTP {status} after {attempts} attempt(s)")]
    Status { status: u16, attempts: u32 },
    #[error("rate limited (429) after {attempts} attempt(s)")]
    RateLimited { attempts: u32 },
    #[error("timed out after {attempts} attempt(s)")]
    Timeout { attempts: u32 },
    #[error("connection failed after {attempts} attempt(s): {message}")]
    Connection { message: String, attempts: u32 },
    #[error("stopped before the invocation deadline; last: {0}")]
    OutOfTime(String),
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("unexpected response body: {0}")]
    InvalidBody(String),
    #[error("listing of namespace {namespace:?} loops back to a page already seen")]
    ListingLoop { namespace: String },
    #[error("listing of namespace {namespace:?} has more than {pages} pages")]
    ListingTooLong { namespace: String, pages: usize },
}

pub use crate::config::NamespaceCounts;

/// How one run spends its Docker Hub requests and its time.
#[derive(Clone, Copy)]
pub struct FetchPlan<'a> {
    /// Successive runs start at a different place in the list (derived from
    /// the run's time, so the function stays stateless).
    pub rotation: u64,
    /// Time to keep back for indexing `n` fetched documents: no new Hub
    /// request starts when `deadline.remaining() <= reserve(n)`.
    pub reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync),
    pub counts: NamespaceCounts,
}

fn no_reserve(_: usize) -> Duration {
    Duration::ZERO
}

impl FetchPlan<'static> {
    /// No rotation, no reserve, per-repository counts: for tests and tools
    /// that only fetch.
    pub fn unhurried() -> Self {
        Self {
            rotation: 0,
            reserve: &no_reserve,
            counts: NamespaceCounts::Details,
        }
    }
}

impl Default for FetchPlan<'static> {
    fn default() -> Self {
        Self::unhurried()
    }
}

impl std::fmt::Debug for FetchPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchPlan")
            .field("rotation", &self.rotation)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// What was asked for and what came of it.
#[derive(Debug, Default)]
pub struct FetchOutcome {
    /// Sorted by namespace and name.
    pub fetched: Vec<RepositoryStats>,
    /// `(image as requested, reason)`, for references and namespaces that failed.
    pub failed: Vec<(String, FetchError)>,
    /// Repositories not fetched this run because the rate-limit budget or the
    /// time (deadline minus reserve) could not pay for them: not failures.
    pub deferred: Vec<String>,
    /// Docker Hub requests made (token exchange, listing pages,
    /// repositories; every attempt counts).
    pub requests: usize,
    /// 429 answers seen.
    pub rate_limited: usize,
}

/// Shared by every request of a run: when the Hub says "not before T", nobody
/// asks before T.
#[derive(Debug, Default)]
struct RateLimitGate {
    not_before: Mutex<Option<Instant>>,
}

impl RateLimitGate {
    fn hold_until(&self, until: Instant) {
        if let Ok(mut guard) = self.not_before.lock() {
            if guard.is_none_or(|current| current < until) {
                *guard = Some(until);
            }
        }
    }

    fn wait(&self) -> Option<Duration> {
        let until = (*self.not_before.lock().ok()?)?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

/// Counters of one run, shared by every clone of its client.
#[derive(Debug, Default)]
struct RunCounters {
    requests: AtomicUsize,
    rate_limited: AtomicUsize,
}

/// When a run may still start a request: not once the deadline is within
/// the reserve kept for indexing what was fetched.
struct Pace<'a> {
    deadline: Deadline,
    reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync),
    fetched: AtomicUsize,
}

impl<'a> Pace<'a> {
    fn new(deadline: Deadline, reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync)) -> Self {
        Self {
            deadline,
            reserve,
            fetched: AtomicUsize::new(0),
        }
    }

    /// Time left before the reserve.
    fn available(&self) -> Duration {
        let reserve = (self.reserve)(self.fetched.load(Ordering::SeqCst));
        self.deadline.remaining().saturating_sub(reserve)
    }
}

/// Why a request ended without an answer to use.
enum Stop {
    Failed(FetchError),
    /// Not started (or not retried) because the time or the rate-limit
    /// budget could not pay for it.
    Deferred,
}

impl From<FetchError> for Stop {
    fn from(error: FetchError) -> Self {
        Stop::Failed(error)
    }
}

/// One attempt's result, as the retry loop sees it.
enum Attempt<T> {
    Done(T),
    Fatal(FetchError),
    /// Retry after `wait` (or a backoff when `None`).
    Retry {
        error: FetchError,
        wait: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base_url: Url,
    options: Arc<HubOptions>,
    gate: Arc<RateLimitGate>,
    /// `concurrency` permits, one held by each request in flight (listing
    /// pages, repositories and the token exchange alike).
    permits: Arc<Semaphore>,
    bearer: Option<Arc<Secret>>,
    counters: Arc<RunCounters>,
}

/// What the listings (and the explicit references) hand to the fetcher.
enum Found {
    /// A repository to fetch (duplicates are dropped on arrival).
    Repository(Repository),
    /// A listing named something that is not a repository name: it is
    /// reported, never put into a URL.
    InvalidName(String),
    /// Listing `i` failed (or was deferred) part-way; it is reported.
    ListingFailed(usize, Stop),
}

impl Found {
    /// A name from the listing of `namespace`, checked like a reference.
    fn listed(namespace: &str, name: String) -> Self {
        let reference = format!("{namespace}/{name}");
        match crate::image_ref::parse(&reference) {
            Ok(ImageSpec::Repository(repository))
                if repository.namespace == namespace && repository.name == name =>
            {
                Found::Repository(repository)
            }
            _ => Found::InvalidName(reference),
        }
    }
}

#[derive(Deserialize)]
struct ListingPage {
    #[serde(default)]
    next: Option<String>,
    results: Vec<ListedRepository>,
}

#[derive(Deserialize)]
struct ListedRepository {
    name: String,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
}

impl HubClient {
    /// `http` is shared for the life of the process so connections are reused.
    pub fn new(http: reqwest::Client, options: HubOptions) -> Result<Self, String> {
        let mut base_url = Url::parse(&options.base_url)
            .map_err(|e| format!("DOCKER_HUB_URL {:?} is not a URL: {e}", options.base_url))?;
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let concurrency = options.concurrency.max(1);
        Ok(Self {
            http,
            base_url,
            options: Arc::new(HubOptions {
                concurrency,
                ..options
            }),
            gate: Arc::new(RateLimitGate::default()),
            permits: Arc::new(Semaphore::new(concurrency)),
            bearer: None,
            counters: Arc::default(),
        })
    }

    /// A client for one run: fresh rate-limit state and, with credentials, a
    /// bearer token from `POST /v2/auth/token`.
    pub async fn for_run(
        &self,
        credentials: Option<&HubCredentials>,
        deadline: Deadline,
    ) -> Result<Self, FetchError> {
        let mut client = Self {
            gate: Arc::new(RateLimitGate::default()),
            permits: Arc::new(Semaphore::new(self.options.concurrency)),
            bearer: None,
            counters: Arc::default(),
            ..self.clone()
        };
        if let Some(credentials) = credentials {
            let url = client.url("v2/auth/token")?;
            let body = serde_json::json!({
                "identifier": credentials.username,
                "secret": credentials.token.expose(),
            });
            let pace = Pace::new(deadline, &no_reserve);
            let token: AccessToken = client
                .request_json(Method::POST, url, Some(&body), 64 * 1024, &pace)
                .await
                .map_err(|stop| match stop {
                    Stop::Failed(error) => error,
                    Stop::Deferred => {
                        FetchError::OutOfTime("no time left for the token exchange".into())
                    }
                })?;
            client.bearer = Some(Arc::new(Secret::new(token.access_token)));
        }
        Ok(client)
    }

    /// Expands namespaces, drops duplicates and fetches every repository.
    ///
    /// Repositories are fetched while the listings are still paging: each
    /// page's names go to the fetcher at once. A listing that fails part-way
    /// is reported as failed, and the repositories its earlier pages named
    /// are still fetched and kept: a data point for them beats a hole.
    pub async fn fetch_all(
        &self,
        specs: &[(String, ImageSpec)],
        plan: &FetchPlan<'_>,
        deadline: Deadline,
    ) -> FetchOutcome {
        let pace = Pace::new(deadline, plan.reserve);
        let pace = &pace;
        let mut explicit = BTreeSet::new();
        let mut namespaces = Vec::new();
        for (reference, spec) in specs {
            match spec {
                ImageSpec::Repository(repository) => {
                    explicit.insert(repository.clone());
                }
                ImageSpec::Namespace(namespace) => namespaces.push((reference, namespace)),
            }
        }
        namespaces.sort_by(|a, b| a.1.cmp(b.1));
        namespaces.dedup_by(|a, b| a.1 == b.1);

        let (found, arrivals) = mpsc::unbounded_channel();
        for repository in explicit {
            let _ = found.send(Found::Repository(repository));
        }
        let namespaces = &namespaces;
        // Ends (dropping the last sender, which ends the fetcher's input)
        // when every listing has.
        let list = async move {
            stream::iter(namespaces.iter().enumerate())
                .for_each_concurrent(self.options.concurrency, |(index, (_, namespace))| {
                    let found = found.clone();
                    async move {
                        let listed = self
                            .list_namespace_pages(namespace, pace, |names| {
                                for name in names {
                                    let _ = found.send(Found::listed(namespace, name));
                                }
                            })
                            .await;
                        if let Err(stop) = listed {
                            let _ = found.send(Found::ListingFailed(index, stop));
                        }
                    }
                })
                .await;
        };

        let mut seen = BTreeSet::new();
        let mut failed_listings: Vec<Option<Stop>> = std::iter::repeat_with(|| None)
            .take(namespaces.len())
            .collect();
        let mut invalid_names = Vec::new();
        let fetch = stream::unfold(arrivals, |mut arrivals| async move {
            arrivals.recv().await.map(|found| (found, arrivals))
        })
        .filter_map(|found| {
            let next = match found {
                Found::Repository(repository) => {
                    seen.insert(repository.clone()).then_some(repository)
                }
                Found::ListingFailed(index, error) => {
                    failed_listings[index] = Some(error);
                    None
                }
                Found::InvalidName(reference) => {
                    invalid_names.push(reference);
                    None
                }
            };
            std::future::ready(next)
        })
        .map(|repository| async move {
            let result = self.fetch_repository(&repository, pace).await;
            if result.is_ok() {
                pace.fetched.fetch_add(1, Ordering::SeqCst);
            }
            (repository, result)
        })
        .buffer_unordered(self.options.concurrency)
        .collect::<Vec<_>>();
        let ((), results) = futures_util::future::join(list, fetch).await;

        let mut outcome = FetchOutcome::default();
        for (index, stop) in failed_listings.into_iter().enumerate() {
            let reference = namespaces[index].0;
            match stop {
                None => {}
                Some(Stop::Failed(error)) => {
                    tracing::warn!(image = %reference, %error, "namespace listing failed");
                    outcome.failed.push((reference.clone(), error));
                }
                Some(Stop::Deferred) => outcome.deferred.push(reference.clone()),
            }
        }
        for reference in invalid_names {
            let error =
                FetchError::InvalidBody("the namespace listing named an invalid repository".into());
            tracing::warn!(image = %reference, %error, "image not fetched");
            outcome.failed.push((reference, error));
        }
        for (repository, result) in results {
            match result {
                Ok(stats) => outcome.fetched.push(stats),
                Err(Stop::Failed(error)) => {
                    tracing::warn!(image = %repository, %error, "image not fetched");
                    outcome.failed.push((repository.to_string(), error));
                }
                Err(Stop::Deferred) => outcome.deferred.push(repository.to_string()),
            }
        }
        if !outcome.deferred.is_empty() {
            tracing::info!(
                deferred = outcome.deferred.len(),
                "repositories deferred to a later run (rate limit or time)"
            );
        }
        outcome.deferred.sort();
        outcome.requests = self.counters.requests.load(Ordering::SeqCst);
        outcome.rate_limited = self.counters.rate_limited.load(Ordering::SeqCst);
        outcome
            .fetched
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        outcome.failed.sort_by(|a, b| a.0.cmp(&b.0));
        outcome
    }

    /// `GET /v2/namespaces/{ns}/repositories/{name}`.
    async fn fetch_repository(
        &self,
        repository: &Repository,
        pace: &Pace<'_>,
    ) -> Result<RepositoryStats, Stop> {
        let url = self.url(&format!(
            "v2/namespaces/{}/repositories/{}",
            repository.namespace, repository.name
        ))?;
        let stats: RepositoryStats = self
            .request_json(
                Method::GET,
                url,
                None,
                self.options.max_repository_body,
                pace,
            )
            .await?;
        tracing::debug!(image = %repository, pulls = stats.pull_count, "fetched");
        Ok(stats)
    }

    /// Every repository name in a namespace, page by page: `on_page` gets
    /// each page's names as soon as the page is read. `next` links are
    /// resolved against our base URL, so a listing can never send us (or our
    /// token) to another host.
    async fn list_namespace_pages(
        &self,
        namespace: &str,
        pace: &Pace<'_>,
        mut on_page: impl FnMut(Vec<String>),
    ) -> Result<(), Stop> {
        let mut url = self.url(&format!(
            "v2/namespaces/{namespace}/repositories?page_size=100"
        ))?;
        let mut seen = HashSet::new();
        loop {
            if !seen.insert(url.as_str().to_owned()) {
                return Err(Stop::Failed(FetchError::ListingLoop {
                    namespace: namespace.to_owned(),
                }));
            }
            if seen.len() > self.options.max_listing_pages {
                return Err(Stop::Failed(FetchError::ListingTooLong {
                    namespace: namespace.to_owned(),
                    pages: self.options.max_listing_pages,
                }));
            }
            let page: ListingPage = self
                .request_json(
                    Method::GET,
                    url.clone(),
                    None,
                    self.options.max_listing_body,
                    pace,
                )
                .await?;
            on_page(page.results.into_iter().map(|r| r.name).collect());
            match page.next.filter(|next| !next.is_empty()) {
                None => return Ok(()),
                Some(next) => url = self.same_origin(&next)?,
            }
        }
    }

    fn url(&self, path: &str) -> Result<Url, FetchError> {
        self.base_url
            .join(path)
            .map_err(|e| FetchError::InvalidBody(format!("cannot build URL for {path}: {e}")))
    }

    /// The path and query of `next`, on our base URL.
    fn same_origin(&self, next: &str) -> Result<Url, FetchError> {
        let parsed = self
            .base_url
            .join(next)
            .map_err(|e| FetchError::InvalidBody(format!("listing `next` {next:?}: {e}")))?;
        let mut url = self.base_url.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        Ok(url)
    }

    /// One request with retries, decoded as `T`.
    ///
    /// No attempt starts once the time before the pace's reserve is gone,
    /// and an attempt's timeout ends there: what cannot be asked in time is
    /// deferred (so is a repository still rate limited at that point), while
    /// one whose retries ran out of time after real failures (5xx, timeouts)
    /// failed.
    async fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        max_body: usize,
        pace: &Pace<'_>,
    ) -> Result<T, Stop> {
        const MIN_ATTEMPT: Duration = Duration::from_millis(50);
        let options = &self.options;
        let mut attempt = 0;
        let mut last: Option<FetchError> = None;
        // Out of time: deferred unless the Hub itself kept failing.
        let out_of_time = |last: Option<FetchError>| match last {
            None | Some(FetchError::RateLimited { .. }) => Stop::Deferred,
            Some(error) => Stop::Failed(FetchError::OutOfTime(error.to_string())),
        };
        loop {
            attempt += 1;
            // Held for the attempt (request and body), released for backoff.
            let permit = self.permits.acquire().await;
            if let Some(wait) = self.gate.wait() {
                if wait + MIN_ATTEMPT >= pace.available() {
                    return Err(Stop::Deferred);
                }
                tokio::time::sleep(wait).await;
            }
            let available = pace.available();
            if available < MIN_ATTEMPT {
                return Err(out_of_time(last));
            }
            let timeout = options.request_timeout.min(available);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(header::ACCEPT, "application/json")
                .timeout(timeout);
            if let Some(token) = &self.bearer {
                let mut value = header::HeaderValue::try_from(format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        FetchError::InvalidBody("access token is not a header value".into())
                    })?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            self.counters.requests.fetch_add(1, Ordering::SeqCst);
            let result = match request.send().await {
                Ok(response) => self.answer(response, max_body, attempt).await,
                Err(error) => transport_error(&error, attempt),
            };
            // The connection goes back to the pool in a task of its own once
            // the body is read; let it run before the next request takes this
            // permit, or that request opens another connection (another TLS
            // handshake) instead of reusing this one.
            tokio::task::yield_now().await;
            drop(permit);
            let (error, wait) = match result {
                Attempt::Done(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        Stop::Failed(FetchError::InvalidBody(describe_json_error(&e, &bytes)))
                    });
                }
                Attempt::Fatal(error) => return Err(Stop::Failed(error)),
                // Cut short by the reserve, not by the Hub: no time for it.
                Attempt::Retry {
                    error: FetchError::Timeout { .. },
                    ..
                } if timeout < options.request_timeout => return Err(out_of_time(last)),
                Attempt::Retry { error, wait } => (error, wait),
            };
            if attempt >= options.max_attempts {
                return Err(Stop::Failed(error));
            }
            let wait = wait.unwrap_or_else(|| {
                retry::backoff(attempt, options.backoff_base, options.backoff_cap)
            });
            if wait + MIN_ATTEMPT >= pace.available() {
                return Err(out_of_time(Some(error)));
            }
            last = Some(error);
            tokio::time::sleep(wait).await;
        }
    }

    /// Classifies a response and reads its body (capped) when it is a success.
    async fn answer(&self, response: Response, max_body: usize, attempts: u32) -> Attempt<Vec<u8>> {
        let status = response.status();
        let headers = response.headers();
        let now = retry::unix_now();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let reset = header("x-ratelimit-reset").and_then(|v| retry::parse_rate_limit_reset(v, now));
        let exhausted = header("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
        if exhausted {
            if let Some(reset) = reset {
                self.gate.hold_until(Instant::now() + reset);
            }
        }
        match status {
            StatusCode::OK | StatusCode::CREATED => match read_capped(response, max_body).await {
                Ok(bytes) => Attempt::Done(bytes),
                Err(ReadError::TooLarge) => {
                    Attempt::Fatal(FetchError::BodyTooLarge { limit: max_body })
                }
                Err(ReadError::Transport(error)) => transport_error(&error, attempts),
            },
            StatusCode::NOT_FOUND => Attempt::Fatal(FetchError::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fatal(FetchError::Unauthorized(status.as_u16()))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                self.counters.rate_limited.fetch_add(1, Ordering::SeqCst);
                let wait = header("retry-after")
                    .and_then(|v| retry::parse_retry_after(v, now))
                    .or(reset);
                if let Some(wait) = wait {
                    self.gate.hold_until(Instant::now() + wait);
                }
                Attempt::Retry {
                    error: FetchError::RateLimited { attempts },
                    wait,
                }
            }
            s if s.is_server_error() => Attempt::Retry {
                error: FetchError::Status {
                    status: s.as_u16(),
                    attempts,
                },
                wait: None,
            },
            s => Attempt::Fatal(FetchError::Status {
                status: s.as_u16(),
                attempts,
            }),
        }
    }
}

fn transport_error<T>(error: &reqwest::Error, attempts: u32) -> Attempt<T> {
    let error = if error.is_timeout() {
        FetchError::Timeout { attempts }
    } else {
        FetchError::Connection {
            message: error_chain(error),
            attempts,
        }
    };
    Attempt::Retry { error, wait: None }
}

/// A JSON error with a hint of what the body was (HTML from a proxy, etc.).
fn describe_json_error(error: &serde_json::Error, body: &[u8]) -> String {
    let start: String = String::from_utf8_lossy(&body[..body.len().min(60)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{error} (body starts with {:?})", start.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_stay_on_the_configured_host() {
        let client = HubClient::new(
            reqwest::Client::new(),
            HubOptions {
                base_url: "http://127.0.0.1:9999/mirror".into(),
                ..HubOptions::default()
            },
        )
        .expect("valid");
        let url = client
            .same_origin(
                "https://hub.docker.com/v2/namespaces/acme/repositories?page=2&page_size=100",
            )
            .expect("valid");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9999/v2/namespaces/acme/repositories?page=2&page_size=100"
        );
        let repo = client
            .url("v2/namespaces/library/repositories/httpd")
            .expect("valid");
        assert_eq!(
            repo.as_str(),
            "http://127.0.0.1:9999/mirror/v2/namespaces/library/repositories/httpd"
        );
    }

    #[test]
    fn listed_names_are_checked_before_they_reach_a_url() {
        assert!(
            matches!(Found::listed("acme", "app".into()), Found::Repository(r) if r == Repository::new("acme", "app"))
        );
        for bad in ["../../v2/auth/token", "App", "a/b", "", "x?y", "app:tag"] {
            assert!(
                matches!(Found::listed("acme", bad.into()), Found::InvalidName(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_errors_show_the_start_of_the_body() {
        let body = b"<!DOCTYPE html>\n<html><body>Too Many Requests</body></html>";
        let error = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let text = describe_json_error(&error, body);
        assert!(text.contains("<!DOCTYPE html> <html>"), "{text}");
    }

    #[test]
    fn rate_limit_gate_keeps_the_latest_time() {
        let gate = RateLimitGate::default();
        assert_eq!(gate.wait(), None);
        gate.hold_until(Instant::now() + Duration::from_secs(5));
        gate.hold_until(Instant::now() + Duration::from_secs(1));
        assert!(gate.wait().is_some_and(|w| w > Duration::from_secs(4)));
    }
}
