//! The Docker Hub client: repository statistics and namespace listings,
//! fetched concurrently but within Docker Hub's rate limit and the run's time.
//!
//! A run first reads the namespace listings it needs, then fetches
//! repositories in an order that rotates from run to run. Every request
//! passes three gates:
//!
//! - at most `concurrency` requests in flight (`HUB_CONCURRENCY`);
//! - the **request budget**: Docker Hub's `X-RateLimit-Limit/Remaining/Reset`
//!   (about 180 a minute), read from every answer. No request is sent that
//!   the window's remaining budget cannot pay for, counting those still in
//!   flight; until the first answer tells the budget, one request at a time.
//!   A 429 holds every request until the time the Hub names (`Retry-After`
//!   in seconds or as a Unix time, or `X-RateLimit-Reset`);
//! - the **time**: no request starts once the deadline, minus the reserve the
//!   caller keeps for indexing, leaves less than a round trip, and none runs
//!   past that point.
//!
//! What the budget or the time cannot pay for is *deferred*, not failed: a
//! later run fetches it, and since each run starts at another place in the
//! list (`FetchPlan::rotation`), every repository gets its data points.
//!
//! 5xx, timeouts and broken connections are retried with backoff; a 404 is
//! final. Bodies are read with a size cap and decoded into just the fields we
//! keep. With `dockerhub/namespace_counts = listing`, counts come from the
//! listing pages (100 repositories a request) wherever that is cheaper.

mod auth;
mod budget;
mod listing;
mod pace;
mod plan;
mod request;

use self::auth::Auth;
use self::budget::Budget;
use self::listing::ListingResult;
use self::pace::Pace;
use self::plan::Targets;
use self::request::Call;
use crate::config::HubCredentials;
use crate::document::RepositoryStats;
use crate::image_ref::{ImageSpec, Repository};
use crate::retry::Deadline;
use futures_util::{StreamExt, stream};
use reqwest::{Method, Url};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

pub use crate::config::NamespaceCounts;
pub use crate::config::{DEFAULT_HUB_CONCURRENCY as DEFAULT_CONCURRENCY, DEFAULT_HUB_URL};

/// Repositories per listing page: the Hub's maximum.
const PAGE_SIZE: usize = 100;

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
    /// The requests a rate-limit window admits, until an answer of this
    /// process has said (`X-RateLimit-Limit`; Docker Hub: 180). Only the
    /// rotation uses it: the budget itself is always the Hub's word.
    pub expected_rate_limit: u64,
    /// How long a rate-limit window lasts (Docker Hub: a minute).
    pub rate_limit_window: Duration,
    /// A bearer token is renewed this long after it was issued (Docker Hub's
    /// last 10 minutes), so long runs never send an expired one.
    pub token_renew_after: Duration,
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
            expected_rate_limit: 180,
            rate_limit_window: Duration::from_secs(60),
            token_renew_after: Duration::from_secs(8 * 60),
        }
    }
}

/// Why one image could not be fetched. Reported per image; never fatal alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Docker Hub answers a private repository it will not show with 404:
    /// without a token, `anonymous` adds the hint.
    #[error(
        "404 not found{}",
        if *anonymous { " (private repository? set dockerhub/username and dockerhub/token)" } else { "" }
    )]
    NotFound { anonymous: bool },
    #[error("{0} {reason}", reason = if *.0 == 403 { "forbidden" } else { "unauthorized" })]
    Unauthorized(u16),
    /// A namespace listing with no repository at all: the Hub answers an
    /// unknown namespace (or one with only private repositories, without a
    /// token) this way, not with 404.
    #[error(
        "{}",
        if *anonymous {
            "no public repositories: check the name, or set a token"
        } else {
            "no repositories visible with the token: check the name"
        }
    )]
    EmptyNamespace { anonymous: bool },
    #[error(
        "DOCKER_HUB_URL {0} is plain http://, which would send dockerhub/token unencrypted; use https:// (plain http:// is allowed only to this machine: 127.0.0.1, ::1, localhost)"
    )]
    InsecureTransport(String),
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

/// How one run spends its Docker Hub requests and its time.
#[derive(Clone, Copy)]
pub struct FetchPlan<'a> {
    /// Successive runs start at a different place in the list (derived from
    /// the run's time, so the function stays stateless): consecutive values
    /// move the start by the number of repositories a run is expected to
    /// fetch.
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
    /// Sorted; a `namespace/*` whose listing could not be read (or finished)
    /// is named so.
    pub deferred: Vec<String>,
    /// Docker Hub requests made (token exchange, listing pages,
    /// repositories; every attempt counts).
    pub requests: usize,
    /// 429 answers seen.
    pub rate_limited: usize,
}

/// What this process learned of the Hub in earlier runs: where the next
/// run's rotation should start depends on it before the run's first answer.
#[derive(Debug, Default)]
struct Learned {
    limit: AtomicU64,
    rtt_micros: AtomicU64,
}

/// Counters of one run.
#[derive(Debug, Default)]
struct RunCounters {
    requests: AtomicUsize,
    rate_limited: AtomicUsize,
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

/// The Docker Hub client of a process: the HTTP client, the base URL, the
/// options and what earlier runs learned. It sends nothing itself: each run
/// gets a [`HubRun`] from [`HubClient::for_run`].
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base_url: Url,
    options: Arc<HubOptions>,
    /// Shared by every run of this process.
    learned: Arc<Learned>,
}

/// One run's use of Docker Hub: its concurrency permits, request budget,
/// bearer token and counters, all fresh for the run. Lives as long as the
/// run; never shared between runs.
#[derive(Debug)]
pub struct HubRun {
    client: HubClient,
    /// `concurrency` permits, one held by each request in flight (listing
    /// pages, repositories and the token exchange alike).
    permits: Semaphore,
    budget: Budget,
    auth: Option<Auth>,
    counters: RunCounters,
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
            learned: Arc::default(),
        })
    }

    /// A run: a fresh request budget and counters and, with credentials, a
    /// bearer token from `POST /v2/auth/token` (its exchange counts as a
    /// request of the run).
    pub async fn for_run(
        &self,
        credentials: Option<&HubCredentials>,
        deadline: Deadline,
    ) -> Result<HubRun, FetchError> {
        let run = HubRun {
            client: self.clone(),
            permits: Semaphore::new(self.options.concurrency),
            budget: Budget::default(),
            auth: credentials.cloned().map(Auth::new),
            counters: RunCounters::default(),
        };
        if run.auth.is_some() && !crate::http::may_carry_credentials(&self.base_url) {
            return Err(FetchError::InsecureTransport(
                self.base_url.origin().ascii_serialization(),
            ));
        }
        if run.auth.is_some() {
            let pace = Pace::new(deadline, &no_reserve);
            run.token(&pace).await.map_err(|stop| match stop {
                Stop::Failed(error) => error,
                Stop::Deferred => FetchError::OutOfTime(
                    "no time (or rate-limit budget) left for the token exchange".into(),
                ),
            })?;
        }
        Ok(run)
    }

    fn url(&self, path: &str) -> Result<Url, FetchError> {
        self.base_url
            .join(path)
            .map_err(|e| FetchError::InvalidBody(format!("cannot build URL for {path}: {e}")))
    }

    /// `next` (absolute, or relative to the page `current`) with its path
    /// and query on our base URL.
    fn same_origin(&self, current: &Url, next: &str) -> Result<Url, FetchError> {
        let parsed = current
            .join(next)
            .map_err(|e| FetchError::InvalidBody(format!("listing `next` {next:?}: {e}")))?;
        let mut url = self.base_url.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        Ok(url)
    }
}

impl HubRun {
    /// Expands namespaces, drops duplicates and fetches every repository the
    /// budget and the time can pay for; the rest is deferred.
    ///
    /// Listings come first (in listing mode they bring the counts
    /// themselves), then the repositories, in name order rotated by
    /// `plan.rotation`. A listing that fails part-way is reported as failed,
    /// and the repositories its earlier pages named are still fetched and
    /// kept: a data point for them beats a hole.
    pub async fn fetch_all(
        &self,
        specs: &[(String, ImageSpec)],
        plan: &FetchPlan<'_>,
        deadline: Deadline,
    ) -> FetchOutcome {
        let pace = Pace::new(deadline, plan.reserve);
        let pace = &pace;
        let concurrency = self.client.options.concurrency;
        let listing_mode = plan.counts == NamespaceCounts::Listing;
        let targets = Targets::new(specs, listing_mode);

        let mut listings: Vec<(usize, ListingResult)> =
            stream::iter(targets.listings.iter().enumerate())
                .map(|(index, job)| async move {
                    let result = if listing_mode {
                        self.list_counts(job, pace).await
                    } else {
                        self.list_names(job, pace).await
                    };
                    (index, result)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        listings.sort_by_key(|(index, _)| *index);

        let mut outcome = FetchOutcome::default();
        let mut to_fetch: BTreeSet<Repository> = targets
            .explicit
            .iter()
            .flat_map(|(namespace, names)| {
                names
                    .iter()
                    .map(|name| Repository::new(namespace.clone(), name.clone()))
            })
            .collect();
        for (index, listing) in listings {
            outcome.absorb_listing(&targets.listings[index], listing, &mut to_fetch);
        }

        let mut order: Vec<Repository> = to_fetch.into_iter().collect();
        let offset = self.rotation_offset(plan.rotation, order.len(), pace);
        order.rotate_left(offset);
        tracing::debug!(
            repositories = order.len(),
            offset,
            rotation = plan.rotation,
            "fetching repositories"
        );
        let results: Vec<(Repository, Result<RepositoryStats, Stop>)> = stream::iter(order)
            .map(|repository| async move {
                let result = self.fetch_repository(&repository, pace).await;
                (repository, result)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
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

        outcome.requests = self.counters.requests.load(Ordering::SeqCst);
        outcome.rate_limited = self.counters.rate_limited.load(Ordering::SeqCst);
        outcome.finish();
        outcome
    }

    /// `GET /v2/namespaces/{ns}/repositories/{name}`.
    async fn fetch_repository(
        &self,
        repository: &Repository,
        pace: &Pace<'_>,
    ) -> Result<RepositoryStats, Stop> {
        let call = Call {
            method: Method::GET,
            url: self.client.url(&format!(
                "v2/namespaces/{}/repositories/{}",
                repository.namespace, repository.name
            ))?,
            body: None,
            max_body: self.client.options.max_repository_body,
            expected: 1,
        };
        let mut stats: RepositoryStats = self.request_json(&call, pace).await?;
        // A repository answer without the field: zero, as the Hub shows it.
        stats.collaborator_count.get_or_insert(0);
        pace.add_fetched(1);
        tracing::debug!(image = %repository, pulls = stats.pull_count, "fetched");
        Ok(stats)
    }
}

impl FetchOutcome {
    /// Takes in what a listing brought: counts (listing mode), repositories
    /// to fetch (removed from `to_fetch` when the listing already counted
    /// them), names that are not repository names, and why it stopped.
    fn absorb_listing(
        &mut self,
        job: &plan::ListingJob,
        listing: ListingResult,
        to_fetch: &mut BTreeSet<Repository>,
    ) {
        for stats in listing.stats {
            to_fetch.remove(&Repository::new(
                stats.namespace.clone(),
                stats.name.clone(),
            ));
            self.fetched.push(stats);
        }
        to_fetch.extend(listing.repositories);
        for reference in listing.invalid {
            let error =
                FetchError::InvalidBody("the namespace listing named an invalid repository".into());
            tracing::warn!(image = %reference, %error, "image not fetched");
            self.failed.push((reference, error));
        }
        match (listing.stop, &job.reference) {
            (None, _) => {}
            (Some(Stop::Failed(error)), Some(reference)) => {
                tracing::warn!(image = %reference, %error, "namespace listing failed");
                self.failed.push((reference.clone(), error));
            }
            (Some(Stop::Deferred), Some(reference)) => {
                self.deferred.push(reference.clone());
            }
            // A listing made only to save requests: the named
            // repositories it did not bring are fetched one by one.
            (Some(Stop::Failed(error)), None) => {
                tracing::debug!(namespace = %job.namespace, %error, "listing for counts failed; fetching one by one");
            }
            (Some(Stop::Deferred), None) => {}
        }
    }

    /// Sorts every list, and says once what was left for a later run.
    fn finish(&mut self) {
        self.fetched
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.failed.sort_by(|a, b| a.0.cmp(&b.0));
        self.deferred.sort();
        if let Some(first) = self.deferred.first() {
            tracing::info!(
                deferred = self.deferred.len(),
                first = %first,
                fetched = self.fetched.len(),
                requests = self.requests,
                rate_limited = self.rate_limited,
                "repositories deferred to a later run (Docker Hub's rate limit or the time)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base_url: &str) -> HubClient {
        HubClient::new(
            reqwest::Client::new(),
            HubOptions {
                base_url: base_url.into(),
                ..HubOptions::default()
            },
        )
        .expect("valid")
    }

    #[test]
    fn next_links_stay_on_the_configured_host() {
        let client = client("http://127.0.0.1:9999/mirror");
        let first = client
            .url("v2/namespaces/acme/repositories?page_size=100&ordering=name")
            .expect("valid");
        let url = client
            .same_origin(
                &first,
                "https://hub.docker.com/v2/namespaces/acme/repositories?page=2&page_size=100",
            )
            .expect("valid");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9999/v2/namespaces/acme/repositories?page=2&page_size=100"
        );
        assert_eq!(
            first.as_str(),
            "http://127.0.0.1:9999/mirror/v2/namespaces/acme/repositories?page_size=100&ordering=name"
        );
    }

    #[test]
    fn relative_next_links_resolve_against_the_page() {
        let client = client("http://127.0.0.1:9999");
        let first = client
            .url("v2/namespaces/acme/repositories?page_size=100&ordering=name")
            .expect("valid");
        for (next, expected) in [
            (
                "/v2/namespaces/acme/repositories?page=2&page_size=100&ordering=name",
                "http://127.0.0.1:9999/v2/namespaces/acme/repositories?page=2&page_size=100&ordering=name",
            ),
            (
                "?page=3&page_size=100&ordering=name",
                "http://127.0.0.1:9999/v2/namespaces/acme/repositories?page=3&page_size=100&ordering=name",
            ),
            (
                "repositories?page=4",
                "http://127.0.0.1:9999/v2/namespaces/acme/repositories?page=4",
            ),
        ] {
            assert_eq!(
                client.same_origin(&first, next).expect("valid").as_str(),
                expected,
                "{next}"
            );
        }
    }

    #[test]
    fn the_404_hint_is_given_only_without_a_token() {
        assert_eq!(
            FetchError::NotFound { anonymous: true }.to_string(),
            "404 not found (private repository? set dockerhub/username and dockerhub/token)"
        );
        assert_eq!(
            FetchError::NotFound { anonymous: false }.to_string(),
            "404 not found"
        );
        assert_eq!(
            FetchError::Unauthorized(401).to_string(),
            "401 unauthorized"
        );
        assert_eq!(FetchError::Unauthorized(403).to_string(), "403 forbidden");
        assert_eq!(
            FetchError::EmptyNamespace { anonymous: true }.to_string(),
            "no public repositories: check the name, or set a token"
        );
    }
}
