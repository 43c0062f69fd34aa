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

use crate::config::{HubCredentials, Secret};
use crate::document::RepositoryStats;
use crate::http::{ReadError, read_capped, transport_reason};
use crate::image_ref::{ImageSpec, Repository};
use crate::retry::{self, Deadline};
use futures_util::{StreamExt, stream};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

pub use crate::config::NamespaceCounts;
pub use crate::config::{DEFAULT_HUB_CONCURRENCY as DEFAULT_CONCURRENCY, DEFAULT_HUB_URL};

/// Repositories per listing page: the Hub's maximum.
const PAGE_SIZE: usize = 100;
/// In listing mode, a namespace none of whose repositories is asked for with
/// `namespace/*` is listed when at least this many of them are named: one
/// page then usually replaces several repository requests.
const LISTING_MIN_NAMED: usize = 3;
/// The shortest time worth starting a request in.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);
/// `X-RateLimit-Reset` is in whole seconds and the clocks differ: a window
/// is taken to end this long after the time the Hub names.
const RESET_SLACK: Duration = Duration::from_secs(1);

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

// ---- the request budget -------------------------------------------------

/// `X-RateLimit-*` of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateHeaders {
    limit: u64,
    remaining: u64,
    /// Unix time at which the window ends.
    reset: u64,
}

impl RateHeaders {
    fn read(headers: &HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: number("x-ratelimit-limit")?,
            remaining: number("x-ratelimit-remaining")?,
            reset: number("x-ratelimit-reset")?,
        })
    }
}

/// One rate-limit window as far as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    /// The Hub's `X-RateLimit-Reset` for it.
    reset: u64,
    /// When it ends here; `None` once it has (the next one is unknown until
    /// an answer names it).
    ends: Option<Instant>,
    /// The most requests the Hub said were used in it.
    used: u64,
    /// Our requests that count in it.
    sent: u64,
}

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Go,
    /// The window is spent (or a 429 holds everything): not before this long.
    Wait(Duration),
    /// Until an answer says more (the first answer of a run, or the new
    /// window's).
    WaitForAnswer,
}

/// The budget's state: pure, so its rules are unit-tested.
#[derive(Debug, Default)]
struct BudgetState {
    /// `X-RateLimit-Limit`, once an answer has said.
    limit: Option<u64>,
    window: Option<Window>,
    /// Requests sent and not answered yet.
    in_flight: u64,
    /// Whether any answer came back: before that, one request at a time.
    answered: bool,
    /// A 429's `Retry-After`: nothing is sent before.
    hold_until: Option<Instant>,
}

impl BudgetState {
    /// Requests the current window can still pay for; `None` when unknown
    /// (no answer said, or the Hub sends no rate-limit headers).
    fn remaining(&self) -> Option<u64> {
        let window = self.window.as_ref()?;
        Some(self.limit?.saturating_sub(window.used.max(window.sent)))
    }

    fn admission(&mut self, now: Instant) -> Admission {
        if let Some(until) = self.hold_until {
            if until > now {
                return Admission::Wait(until - now);
            }
            self.hold_until = None;
        }
        if !self.answered && self.in_flight > 0 {
            return Admission::WaitForAnswer;
        }
        let in_flight = self.in_flight;
        if let Some(window) = self.window.as_mut() {
            if window.ends.is_some_and(|ends| ends <= now) {
                // A new window: what is still in flight may count in it.
                window.ends = None;
                window.used = 0;
                window.sent = in_flight;
            }
        }
        match (self.remaining(), self.window.as_ref().and_then(|w| w.ends)) {
            (Some(0), Some(ends)) => Admission::Wait(ends.saturating_duration_since(now)),
            (Some(0), None) => Admission::WaitForAnswer,
            _ => Admission::Go,
        }
    }

    fn send(&mut self) {
        self.in_flight += 1;
        if let Some(window) = self.window.as_mut() {
            window.sent += 1;
        }
    }

    /// An answer (`answered`: an HTTP answer, not a transport error) and
    /// what it said about the budget.
    fn settle(
        &mut self,
        answered: bool,
        rate: Option<RateHeaders>,
        hold: Option<Duration>,
        now: Instant,
        now_unix: f64,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answered |= answered;
        if let Some(rate) = rate {
            self.limit = Some(rate.limit);
            let used = rate.limit.saturating_sub(rate.remaining);
            match self.window.as_mut() {
                // Counted in a window already over.
                Some(window) if rate.reset < window.reset => {}
                Some(window) if rate.reset == window.reset => {
                    if window.ends.is_some() {
                        window.used = window.used.max(used);
                    }
                }
                _ => {
                    // A new window: this request counts in it, and those
                    // still in flight may (or, when we saw the last one end,
                    // everything sent since).
                    let sent = match &self.window {
                        Some(window) if window.ends.is_none() => window.sent,
                        _ => self.in_flight + 1,
                    };
                    self.window = Some(Window {
                        reset: rate.reset,
                        ends: Some(
                            now + Duration::from_secs_f64((rate.reset as f64 - now_unix).max(0.0))
                                + RESET_SLACK,
                        ),
                        used,
                        sent,
                    });
                }
            }
        }
        if let Some(hold) = hold {
            let until = now + hold;
            if self.hold_until.is_none_or(|current| current < until) {
                self.hold_until = Some(until);
            }
        }
    }
}

/// The request budget of one run, shared by all its requests.
#[derive(Debug, Default)]
struct Budget {
    state: Mutex<BudgetState>,
    changed: Notify,
}

/// Why a request was not admitted.
enum Refused {
    /// The rate limit: the budget is spent (or held) past the time left.
    Budget,
    /// The time before the reserve is too short for a request.
    Time,
}

/// A request admitted by the budget; settled with its answer.
struct Ticket<'a> {
    budget: &'a Budget,
    settled: bool,
}

impl Ticket<'_> {
    fn settle(mut self, answered: bool, rate: Option<RateHeaders>, hold: Option<Duration>) {
        self.settled = true;
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.budget
            .lock()
            .settle(answered, rate, hold, Instant::now(), now_unix);
        self.budget.changed.notify_waiters();
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = self.budget.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            drop(state);
            self.budget.changed.notify_waiters();
        }
    }
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the budget can pay for one more request, or says why it
    /// cannot within the time `pace` leaves.
    async fn admit(&self, pace: &Pace<'_>, expected: usize) -> Result<Ticket<'_>, Refused> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let room = pace.room(expected);
            let needed = pace.needed();
            let admission = {
                let mut state = self.lock();
                let admission = state.admission(Instant::now());
                if admission == Admission::Go {
                    if room < needed {
                        return Err(Refused::Time);
                    }
                    state.send();
                    return Ok(Ticket {
                        budget: self,
                        settled: false,
                    });
                }
                admission
            };
            match admission {
                Admission::Go => unreachable!("returned above"),
                Admission::Wait(wait) => {
                    if wait + needed >= room {
                        return Err(Refused::Budget);
                    }
                    tokio::time::sleep(wait).await;
                }
                Admission::WaitForAnswer => {
                    if room < needed {
                        return Err(Refused::Time);
                    }
                    let _ = tokio::time::timeout(room - needed, notified).await;
                }
            }
        }
    }
}

/// When a run may still start a request: not once the deadline is within
/// the reserve kept for indexing what was (and is being) fetched, nor when
/// what is left is shorter than a round trip.
struct Pace<'a> {
    deadline: Deadline,
    reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync),
    /// Documents fetched so far.
    fetched: AtomicUsize,
    /// Documents the requests in flight may bring.
    pending: AtomicUsize,
    /// Round trips of answered requests, smoothed.
    rtt: Mutex<Option<Duration>>,
}

impl<'a> Pace<'a> {
    fn new(deadline: Deadline, reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync)) -> Self {
        Self {
            deadline,
            reserve,
            fetched: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            rtt: Mutex::new(None),
        }
    }

    /// Time left before the reserve, for a request that may bring `expected`
    /// more documents.
    fn room(&self, expected: usize) -> Duration {
        let documents =
            self.fetched.load(Ordering::SeqCst) + self.pending.load(Ordering::SeqCst) + expected;
        self.deadline
            .remaining()
            .saturating_sub((self.reserve)(documents))
    }

    fn rtt(&self) -> Option<Duration> {
        *self.rtt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a request needs to be worth starting.
    fn needed(&self) -> Duration {
        self.rtt().unwrap_or_default().max(MIN_ATTEMPT)
    }

    fn observe(&self, round_trip: Duration) {
        let mut rtt = self.rtt.lock().unwrap_or_else(|e| e.into_inner());
        *rtt = Some(match *rtt {
            None => round_trip,
            Some(previous) => previous.mul_f64(0.7) + round_trip.mul_f64(0.3),
        });
    }

    fn add_fetched(&self, documents: usize) {
        self.fetched.fetch_add(documents, Ordering::SeqCst);
    }
}

// ---- authentication -------------------------------------------------------

/// A bearer token and when it was issued.
#[derive(Clone)]
struct Token {
    secret: Arc<Secret>,
    issued: Instant,
    generation: u64,
}

/// The run's Docker Hub credentials and the bearer token exchanged for them.
struct Auth {
    credentials: HubCredentials,
    token: Mutex<Option<Token>>,
    /// One exchange at a time.
    exchanging: tokio::sync::Mutex<()>,
    /// A 401 renews the token once per run; a second one is final.
    renewed_after_401: AtomicBool,
}

impl Auth {
    fn current(&self) -> Option<Token> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.credentials.username)
            .finish_non_exhaustive()
    }
}

// ---- the client -----------------------------------------------------------

/// Counters of one run, shared by every clone of its client.
#[derive(Debug, Default)]
struct RunCounters {
    requests: AtomicUsize,
    rate_limited: AtomicUsize,
}

/// What this process learned of the Hub in earlier runs: where the next
/// run's rotation should start depends on it before the run's first answer.
#[derive(Debug, Default)]
struct Learned {
    limit: AtomicU64,
    rtt_micros: AtomicU64,
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
    /// `concurrency` permits, one held by each request in flight (listing
    /// pages, repositories and the token exchange alike).
    permits: Arc<Semaphore>,
    budget: Arc<Budget>,
    auth: Option<Arc<Auth>>,
    counters: Arc<RunCounters>,
    /// Shared by every run of this process.
    learned: Arc<Learned>,
}

/// A listing entry in details mode: only the name matters.
#[derive(Deserialize)]
struct ListedName {
    name: String,
}

/// What a listing entry must be to be used.
trait ListedEntry: DeserializeOwned {
    fn name(&self) -> &str;
    /// The namespace the entry says it is in, if it says.
    fn namespace(&self) -> Option<&str>;
}

impl ListedEntry for ListedName {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        None
    }
}

impl ListedEntry for RepositoryStats {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }
}

#[derive(Deserialize)]
struct ListingPage<T> {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    next: Option<String>,
    results: Vec<T>,
}

/// Where a listing stands after a page, for deciding whether to go on.
struct ListingProgress<'a> {
    /// The namespace's repositories, as the first page said.
    count: Option<u64>,
    /// Entries read so far.
    seen: usize,
    /// The last name read (pages are in name order).
    last_name: Option<&'a str>,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
}

/// A namespace listing the run makes.
struct ListingJob {
    namespace: String,
    /// The `namespace/*` reference that asked for it; `None` for a listing
    /// made only to count repositories named one by one (listing mode).
    reference: Option<String>,
    /// The names asked for explicitly in this namespace (listing mode).
    named: BTreeSet<String>,
}

/// What a listing brought.
#[derive(Default)]
struct ListingResult {
    /// Repositories it named (details mode: to fetch next).
    repositories: Vec<Repository>,
    /// Counts it carried (listing mode).
    stats: Vec<RepositoryStats>,
    /// Names that are not repository names: reported, never put in a URL.
    invalid: Vec<String>,
    stop: Option<Stop>,
}

/// A name from the listing of `namespace`, checked like a reference.
fn listed_repository(namespace: &str, name: &str) -> Result<Repository, String> {
    let reference = format!("{namespace}/{name}");
    match crate::image_ref::parse(&reference) {
        Ok(ImageSpec::Repository(repository))
            if repository.namespace == namespace && repository.name == name =>
        {
            Ok(repository)
        }
        _ => Err(reference),
    }
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
            permits: Arc::new(Semaphore::new(concurrency)),
            budget: Arc::default(),
            auth: None,
            counters: Arc::default(),
            learned: Arc::default(),
        })
    }

    /// A client for one run: a fresh request budget and counters and, with
    /// credentials, a bearer token from `POST /v2/auth/token` (its exchange
    /// counts as a request of the run).
    pub async fn for_run(
        &self,
        credentials: Option<&HubCredentials>,
        deadline: Deadline,
    ) -> Result<Self, FetchError> {
        let client = Self {
            permits: Arc::new(Semaphore::new(self.options.concurrency)),
            budget: Arc::default(),
            auth: credentials.map(|credentials| {
                Arc::new(Auth {
                    credentials: credentials.clone(),
                    token: Mutex::new(None),
                    exchanging: tokio::sync::Mutex::new(()),
                    renewed_after_401: AtomicBool::new(false),
                })
            }),
            counters: Arc::default(),
            ..self.clone()
        };
        if client.auth.is_some() {
            let pace = Pace::new(deadline, &no_reserve);
            client.token(&pace).await.map_err(|stop| match stop {
                Stop::Failed(error) => error,
                Stop::Deferred => FetchError::OutOfTime(
                    "no time (or rate-limit budget) left for the token exchange".into(),
                ),
            })?;
        }
        Ok(client)
    }

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
        let listing_mode = plan.counts == NamespaceCounts::Listing;

        let mut explicit: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut wildcards: BTreeMap<&str, &str> = BTreeMap::new();
        for (reference, spec) in specs {
            match spec {
                ImageSpec::Repository(repository) => {
                    explicit
                        .entry(repository.namespace.clone())
                        .or_default()
                        .insert(repository.name.clone());
                }
                ImageSpec::Namespace(namespace) => {
                    wildcards
                        .entry(namespace.as_str())
                        .or_insert(reference.as_str());
                }
            }
        }

        let mut jobs: Vec<ListingJob> = wildcards
            .iter()
            .map(|(namespace, reference)| ListingJob {
                namespace: (*namespace).to_owned(),
                reference: Some((*reference).to_owned()),
                named: if listing_mode {
                    explicit.get(*namespace).cloned().unwrap_or_default()
                } else {
                    BTreeSet::new()
                },
            })
            .collect();
        if listing_mode {
            jobs.extend(
                explicit
                    .iter()
                    .filter(|(namespace, names)| {
                        !wildcards.contains_key(namespace.as_str())
                            && names.len() >= LISTING_MIN_NAMED
                    })
                    .map(|(namespace, names)| ListingJob {
                        namespace: namespace.clone(),
                        reference: None,
                        named: names.clone(),
                    }),
            );
        }
        let mut listings: Vec<(usize, ListingResult)> = stream::iter(jobs.iter().enumerate())
            .map(|(index, job)| async move {
                let result = if listing_mode {
                    self.list_counts(job, pace).await
                } else {
                    self.list_names(job, pace).await
                };
                (index, result)
            })
            .buffer_unordered(self.options.concurrency)
            .collect()
            .await;

        let mut outcome = FetchOutcome::default();
        let mut to_fetch: BTreeSet<Repository> = explicit
            .iter()
            .flat_map(|(namespace, names)| {
                names
                    .iter()
                    .map(|name| Repository::new(namespace.clone(), name.clone()))
            })
            .collect();
        listings.sort_by_key(|(index, _)| *index);
        for (index, listing) in listings {
            let job = &jobs[index];
            for stats in listing.stats {
                to_fetch.remove(&Repository::new(
                    stats.namespace.clone(),
                    stats.name.clone(),
                ));
                outcome.fetched.push(stats);
            }
            to_fetch.extend(listing.repositories);
            for reference in listing.invalid {
                let error = FetchError::InvalidBody(
                    "the namespace listing named an invalid repository".into(),
                );
                tracing::warn!(image = %reference, %error, "image not fetched");
                outcome.failed.push((reference, error));
            }
            match (listing.stop, &job.reference) {
                (None, _) => {}
                (Some(Stop::Failed(error)), Some(reference)) => {
                    tracing::warn!(image = %reference, %error, "namespace listing failed");
                    outcome.failed.push((reference.clone(), error));
                }
                (Some(Stop::Deferred), Some(reference)) => {
                    outcome.deferred.push(reference.clone());
                }
                // A listing made only to save requests: the named
                // repositories it did not bring are fetched one by one.
                (Some(Stop::Failed(error)), None) => {
                    tracing::debug!(namespace = %job.namespace, %error, "listing for counts failed; fetching one by one");
                }
                (Some(Stop::Deferred), None) => {}
            }
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
            .buffer_unordered(self.options.concurrency)
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

        outcome
            .fetched
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        outcome.failed.sort_by(|a, b| a.0.cmp(&b.0));
        outcome.deferred.sort();
        outcome.requests = self.counters.requests.load(Ordering::SeqCst);
        outcome.rate_limited = self.counters.rate_limited.load(Ordering::SeqCst);
        if !outcome.deferred.is_empty() {
            tracing::info!(
                deferred = outcome.deferred.len(),
                fetched = outcome.fetched.len(),
                requests = outcome.requests,
                rate_limited = outcome.rate_limited,
                "repositories deferred to a later run (rate limit or time)"
            );
        }
        outcome
    }

    /// Where this run starts in the name-ordered list of `n` repositories:
    /// `rotation × capacity` (mod `n`), where `capacity` is what a run is
    /// expected to fetch, so consecutive runs (consecutive `rotation`s) that
    /// each fetch about that many cover the list one slice after another.
    fn rotation_offset(&self, rotation: u64, n: usize, pace: &Pace<'_>) -> usize {
        if n <= 1 {
            return 0;
        }
        let capacity = self.expected_capacity(n, pace).clamp(1, n as u64);
        ((u128::from(rotation) * u128::from(capacity)) % n as u128) as usize
    }

    /// Repositories this run can expect to fetch: what the rate-limit
    /// budget pays for until the deadline (the window's rest, then a full
    /// window per window length), and what round trips at `concurrency`
    /// fit in the time.
    fn expected_capacity(&self, n: usize, pace: &Pace<'_>) -> u64 {
        let room = pace.room(n);
        let (limit, remaining) = {
            let state = self.budget.lock();
            let learned = self.learned.limit.load(Ordering::SeqCst);
            let limit = state
                .limit
                .or((learned > 0).then_some(learned))
                .unwrap_or(self.options.expected_rate_limit);
            (limit, state.remaining().unwrap_or(limit))
        };
        let window = self.options.rate_limit_window.max(Duration::from_secs(1));
        let windows = (room.as_secs_f64() / window.as_secs_f64()).floor() as u64;
        let by_budget = remaining.saturating_add(limit.saturating_mul(windows));
        let learned_rtt = self.learned.rtt_micros.load(Ordering::SeqCst);
        let rtt = pace
            .rtt()
            .or((learned_rtt > 0).then(|| Duration::from_micros(learned_rtt)));
        let by_time = rtt.map_or(u64::MAX, |rtt| {
            let rounds = room.as_secs_f64() / rtt.max(MIN_ATTEMPT).as_secs_f64();
            (rounds as u64).saturating_mul(self.options.concurrency as u64)
        });
        by_budget.min(by_time)
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
        let mut stats: RepositoryStats = self
            .request_json(
                Method::GET,
                url,
                None,
                self.options.max_repository_body,
                pace,
                1,
            )
            .await?;
        // A repository answer without the field: zero, as the Hub shows it.
        stats.collaborator_count.get_or_insert(0);
        pace.add_fetched(1);
        tracing::debug!(image = %repository, pulls = stats.pull_count, "fetched");
        Ok(stats)
    }

    /// Details mode: the names of a `namespace/*`, to fetch one by one.
    async fn list_names(&self, job: &ListingJob, pace: &Pace<'_>) -> ListingResult {
        let mut result = ListingResult::default();
        let listed = self
            .list_namespace_pages(
                &job.namespace,
                pace,
                0,
                |_| true,
                |page: Vec<ListedName>| {
                    for entry in page {
                        match listed_repository(&job.namespace, &entry.name) {
                            Ok(repository) => result.repositories.push(repository),
                            Err(reference) => result.invalid.push(reference),
                        }
                    }
                },
            )
            .await;
        result.stop = listed.err();
        result
    }

    /// Listing mode: counts from the listing pages. For a `namespace/*`
    /// every page is read; for repositories named one by one, pages are read
    /// only while fewer pages remain than named repositories are missing
    /// (pages are in name order, so a page past the last missing name ends
    /// it): the rest are fetched one by one.
    async fn list_counts(&self, job: &ListingJob, pace: &Pace<'_>) -> ListingResult {
        let mut result = ListingResult::default();
        let wildcard = job.reference.is_some();
        // Shared by the two callbacks, one after the other.
        let missing = Mutex::new(job.named.clone());
        let lock = || missing.lock().unwrap_or_else(|e| e.into_inner());
        let listed = self
            .list_namespace_pages(
                &job.namespace,
                pace,
                PAGE_SIZE,
                |progress| {
                    if wildcard {
                        return true;
                    }
                    let missing = lock();
                    let Some(last_missing) = missing.last() else {
                        return false;
                    };
                    if progress
                        .last_name
                        .is_some_and(|last| last >= last_missing.as_str())
                    {
                        return false;
                    }
                    let Some(count) = progress.count else {
                        return false;
                    };
                    let left = (count as usize).saturating_sub(progress.seen);
                    left.div_ceil(PAGE_SIZE) < missing.len()
                },
                |page: Vec<RepositoryStats>| {
                    let mut missing = lock();
                    let mut kept = 0;
                    for mut stats in page {
                        if stats.namespace != job.namespace {
                            result
                                .invalid
                                .push(format!("{}/{}", stats.namespace, stats.name));
                            continue;
                        }
                        match listed_repository(&job.namespace, &stats.name) {
                            Ok(_) => {
                                let named = missing.remove(&stats.name);
                                if wildcard || named {
                                    // Listings carry no collaborator_count.
                                    stats.collaborator_count = None;
                                    result.stats.push(stats);
                                    kept += 1;
                                }
                            }
                            Err(reference) => result.invalid.push(reference),
                        }
                    }
                    pace.add_fetched(kept);
                },
            )
            .await;
        result.stop = listed.err();
        result
    }

    /// Reads a namespace's listing page by page, in name order: `on_page`
    /// gets each page's entries as soon as it is read, and `go_on` decides
    /// after each page whether the next is worth a request. `next` links
    /// are resolved against the page's URL and put on our base URL, so a
    /// listing can never send us (or our token) to another host.
    async fn list_namespace_pages<T: ListedEntry>(
        &self,
        namespace: &str,
        pace: &Pace<'_>,
        expected_per_page: usize,
        mut go_on: impl FnMut(&ListingProgress<'_>) -> bool,
        mut on_page: impl FnMut(Vec<T>),
    ) -> Result<(), Stop> {
        let mut url = self.url(&format!(
            "v2/namespaces/{namespace}/repositories?page_size={PAGE_SIZE}&ordering=name"
        ))?;
        let mut seen_urls = HashSet::new();
        let mut count = None;
        let mut seen = 0;
        loop {
            if !seen_urls.insert(url.as_str().to_owned()) {
                return Err(Stop::Failed(FetchError::ListingLoop {
                    namespace: namespace.to_owned(),
                }));
            }
            if seen_urls.len() > self.options.max_listing_pages {
                return Err(Stop::Failed(FetchError::ListingTooLong {
                    namespace: namespace.to_owned(),
                    pages: self.options.max_listing_pages,
                }));
            }
            let page: ListingPage<T> = self
                .request_json(
                    Method::GET,
                    url.clone(),
                    None,
                    self.options.max_listing_body,
                    pace,
                    expected_per_page,
                )
                .await?;
            if seen_urls.len() == 1 {
                if page.results.is_empty() {
                    return Err(Stop::Failed(FetchError::EmptyNamespace {
                        anonymous: self.auth.is_none(),
                    }));
                }
                count = page.count;
            }
            seen += page.results.len();
            let last_name = page.results.last().map(|entry| entry.name().to_owned());
            if let Some(entry) = page
                .results
                .iter()
                .find(|entry| entry.namespace().is_some_and(|ns| ns != namespace))
            {
                tracing::warn!(namespace, other = ?entry.namespace(), "listing names another namespace");
            }
            on_page(page.results);
            let Some(next) = page.next.filter(|next| !next.is_empty()) else {
                return Ok(());
            };
            let progress = ListingProgress {
                count,
                seen,
                last_name: last_name.as_deref(),
            };
            if !go_on(&progress) {
                return Ok(());
            }
            url = self.same_origin(&url, &next)?;
        }
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

    /// The bearer token to send, exchanged (again) when there is none yet or
    /// it is old enough to expire soon.
    async fn token(&self, pace: &Pace<'_>) -> Result<Option<Token>, Stop> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let fresh = |token: &Token| token.issued.elapsed() < self.options.token_renew_after;
        if let Some(token) = auth.current().filter(fresh) {
            return Ok(Some(token));
        }
        let _exchanging = auth.exchanging.lock().await;
        if let Some(token) = auth.current().filter(fresh) {
            return Ok(Some(token));
        }
        self.exchange(auth, pace).await.map(Some)
    }

    /// After a 401 with the token of `generation`: a new token, once per run
    /// (`None` when that was used up: the 401 is final).
    async fn renew_after_401(
        &self,
        generation: u64,
        pace: &Pace<'_>,
    ) -> Result<Option<Token>, Stop> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let _exchanging = auth.exchanging.lock().await;
        if let Some(token) = auth.current().filter(|t| t.generation > generation) {
            return Ok(Some(token));
        }
        if auth.renewed_after_401.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        tracing::info!("Docker Hub refused the bearer token (401): exchanging it again");
        self.exchange(auth, pace).await.map(Some)
    }

    /// `POST /v2/auth/token`.
    async fn exchange(&self, auth: &Auth, pace: &Pace<'_>) -> Result<Token, Stop> {
        let url = self.url("v2/auth/token")?;
        let body = serde_json::json!({
            "identifier": auth.credentials.username,
            "secret": auth.credentials.token.expose(),
        });
        let bytes = self
            .request_bytes(Method::POST, url, Some(&body), 64 * 1024, pace, 0, None)
            .await?;
        let token: AccessToken = decode(&bytes)?;
        let generation = auth.current().map_or(1, |t| t.generation + 1);
        let token = Token {
            secret: Arc::new(Secret::new(token.access_token)),
            issued: Instant::now(),
            generation,
        };
        *auth.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// One request with retries and the bearer token, decoded as `T`. A 401
    /// with a token renews it once and tries again.
    async fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        max_body: usize,
        pace: &Pace<'_>,
        expected: usize,
    ) -> Result<T, Stop> {
        let mut token = self.token(pace).await?;
        loop {
            let result = self
                .request_bytes(
                    method.clone(),
                    url.clone(),
                    body,
                    max_body,
                    pace,
                    expected,
                    token.as_ref(),
                )
                .await;
            match (result, &token) {
                (Err(Stop::Failed(FetchError::Unauthorized(401))), Some(used)) => {
                    match self.renew_after_401(used.generation, pace).await? {
                        Some(renewed) => token = Some(renewed),
                        None => return Err(Stop::Failed(FetchError::Unauthorized(401))),
                    }
                }
                (result, _) => return decode(&result?),
            }
        }
    }

    /// One request with retries, through the concurrency bound, the budget
    /// and the pace; the body of a success.
    ///
    /// No attempt starts once the time before the pace's reserve is gone,
    /// and an attempt's timeout ends there: what cannot be asked in time is
    /// deferred (so is a request still rate limited at that point), while
    /// one whose retries ran out of time after real failures (5xx, timeouts)
    /// failed.
    #[allow(clippy::too_many_arguments)]
    async fn request_bytes(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        max_body: usize,
        pace: &Pace<'_>,
        expected: usize,
        token: Option<&Token>,
    ) -> Result<Vec<u8>, Stop> {
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
            let ticket = match self.budget.admit(pace, expected).await {
                Ok(ticket) => ticket,
                Err(Refused::Budget) => return Err(Stop::Deferred),
                Err(Refused::Time) => return Err(out_of_time(last)),
            };
            let room = pace.room(expected);
            let timeout = options.request_timeout.min(room);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(header::ACCEPT, "application/json")
                .timeout(timeout);
            if let Some(token) = token {
                let mut value =
                    header::HeaderValue::try_from(format!("Bearer {}", token.secret.expose()))
                        .map_err(|_| {
                            FetchError::InvalidBody("access token is not a header value".into())
                        })?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            pace.pending.fetch_add(expected, Ordering::SeqCst);
            self.counters.requests.fetch_add(1, Ordering::SeqCst);
            let sent = Instant::now();
            let result = match request.send().await {
                Ok(response) => {
                    let (rate, hold) = self.rate_limit_of(&response);
                    let answer = self.answer(response, max_body, attempt).await;
                    pace.observe(sent.elapsed());
                    ticket.settle(true, rate, hold);
                    if let Some(rate) = rate {
                        self.learned.limit.store(rate.limit, Ordering::SeqCst);
                    }
                    answer
                }
                Err(error) => {
                    ticket.settle(false, None, None);
                    transport_error(&error, attempt)
                }
            };
            pace.pending.fetch_sub(expected, Ordering::SeqCst);
            if let Some(rtt) = pace.rtt() {
                self.learned
                    .rtt_micros
                    .store(rtt.as_micros() as u64, Ordering::SeqCst);
            }
            // The connection goes back to the pool in a task of its own once
            // the body is read; let it run before the next request takes this
            // permit, or that request opens another connection (another TLS
            // handshake) instead of reusing this one.
            tokio::task::yield_now().await;
            drop(permit);
            let (error, wait) = match result {
                Attempt::Done(bytes) => return Ok(bytes),
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
            if wait + pace.needed() >= pace.room(expected) {
                return Err(out_of_time(Some(error)));
            }
            last = Some(error);
            tokio::time::sleep(wait).await;
        }
    }

    /// The budget's view of an answer: its `X-RateLimit-*`, and how long a
    /// 429 holds every request (`Retry-After` in seconds or as a Unix time,
    /// else `X-RateLimit-Reset`).
    fn rate_limit_of(&self, response: &Response) -> (Option<RateHeaders>, Option<Duration>) {
        let headers = response.headers();
        let rate = RateHeaders::read(headers);
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return (rate, None);
        }
        self.counters.rate_limited.fetch_add(1, Ordering::SeqCst);
        let now = retry::unix_now();
        let hold = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, now))
            .or_else(|| rate.map(|rate| Duration::from_secs(rate.reset.saturating_sub(now))));
        tracing::warn!(
            hold_s = hold.map(|h| h.as_secs()),
            limit = rate.map(|r| r.limit),
            "Docker Hub rate limit reached (429)"
        );
        (rate, hold)
    }

    /// Classifies a response and reads its body (capped) when it is a success.
    async fn answer(&self, response: Response, max_body: usize, attempts: u32) -> Attempt<Vec<u8>> {
        let status = response.status();
        match status {
            StatusCode::OK | StatusCode::CREATED => match read_capped(response, max_body).await {
                Ok(bytes) => Attempt::Done(bytes),
                Err(ReadError::TooLarge) => {
                    Attempt::Fatal(FetchError::BodyTooLarge { limit: max_body })
                }
                Err(ReadError::Transport(error)) => transport_error(&error, attempts),
            },
            StatusCode::NOT_FOUND => Attempt::Fatal(FetchError::NotFound {
                anonymous: self.auth.is_none(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fatal(FetchError::Unauthorized(status.as_u16()))
            }
            // The budget holds every request as long as the answer said;
            // without a time, back off.
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                error: FetchError::RateLimited { attempts },
                wait: None,
            },
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

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Stop> {
    serde_json::from_slice(bytes)
        .map_err(|e| Stop::Failed(FetchError::InvalidBody(describe_json_error(&e, bytes))))
}

fn transport_error<T>(error: &reqwest::Error, attempts: u32) -> Attempt<T> {
    let error = if error.is_timeout() {
        FetchError::Timeout { attempts }
    } else {
        FetchError::Connection {
            message: transport_reason("Docker Hub", error),
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
    fn listed_names_are_checked_before_they_reach_a_url() {
        assert_eq!(
            listed_repository("acme", "app"),
            Ok(Repository::new("acme", "app"))
        );
        for bad in ["../../v2/auth/token", "App", "a/b", "", "x?y", "app:tag"] {
            assert!(listed_repository("acme", bad).is_err(), "{bad}");
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

    const T0: u64 = 1_764_268_500;
    const T0F: f64 = T0 as f64;

    fn rate(limit: u64, remaining: u64, reset: u64) -> Option<RateHeaders> {
        Some(RateHeaders {
            limit,
            remaining,
            reset,
        })
    }

    /// Sends as many requests as the state admits now.
    fn send_all(state: &mut BudgetState, now: Instant) -> u64 {
        let mut sent = 0;
        while state.admission(now) == Admission::Go {
            state.send();
            sent += 1;
            assert!(sent < 10_000, "the budget never says stop");
        }
        sent
    }

    #[test]
    fn one_request_until_the_first_answer_tells_the_budget() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        assert_eq!(state.admission(now), Admission::Go);
        state.send();
        assert_eq!(state.admission(now), Admission::WaitForAnswer);
        state.settle(true, rate(10, 9, T0 + 60), None, now, T0F);
        assert_eq!(state.remaining(), Some(9));
        assert_eq!(send_all(&mut state, now), 9);
        assert_eq!(state.in_flight, 9);
        // Answers in any order never give back what is spent.
        for remaining in [0, 5, 3, 8, 1, 2, 4, 6, 7] {
            state.settle(true, rate(10, remaining, T0 + 60), None, now, T0F);
            assert_eq!(state.remaining(), Some(0));
        }
        match state.admission(now) {
            Admission::Wait(wait) => {
                assert!(wait >= Duration::from_secs(60) && wait <= Duration::from_secs(61));
            }
            other => panic!("{other:?}"),
        }
        // Without any answer ever carrying headers, nothing is limited.
        let mut free = BudgetState::default();
        free.send();
        free.settle(true, None, None, now, T0F);
        for _ in 0..1_000 {
            assert_eq!(free.admission(now), Admission::Go);
            free.send();
        }
    }

    #[test]
    fn requests_in_flight_are_paid_for_before_they_are_counted() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, rate(180, 179, T0 + 60), None, now, T0F);
        assert_eq!(send_all(&mut state, now), 179);
        // The Hub had counted only 20 of them when it answered one.
        state.settle(true, rate(180, 159, T0 + 60), None, now, T0F);
        assert_eq!(state.remaining(), Some(0));
        assert_eq!(state.admission(now), {
            let ends = state.window.as_ref().and_then(|w| w.ends).expect("known");
            Admission::Wait(ends - now)
        });
        // Someone else spends the same budget: the Hub's word wins.
        let mut shared = BudgetState::default();
        shared.send();
        shared.settle(true, rate(180, 100, T0 + 60), None, now, T0F);
        assert_eq!(shared.remaining(), Some(100));
    }

    #[test]
    fn a_new_window_refills_the_budget() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, rate(10, 9, T0 + 2), None, now, T0F);
        assert_eq!(send_all(&mut state, now), 9);
        for _ in 0..9 {
            state.settle(true, rate(10, 0, T0 + 2), None, now, T0F);
        }
        assert!(matches!(state.admission(now), Admission::Wait(_)));
        // Past the reset (plus slack): a new window, known once answered.
        let later = now + Duration::from_secs(4);
        assert_eq!(state.admission(later), Admission::Go);
        state.send();
        state.settle(true, rate(10, 9, T0 + 62), None, later, T0F + 4.0);
        assert_eq!(state.remaining(), Some(9));
        // A late answer from the old window changes nothing.
        state.settle(true, rate(10, 0, T0 + 2), None, later, T0F + 4.0);
        assert_eq!(state.remaining(), Some(9));
    }

    #[test]
    fn a_429_holds_every_request_until_its_time() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, None, Some(Duration::from_secs(60)), now, T0F);
        match state.admission(now) {
            Admission::Wait(wait) => assert_eq!(wait, Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
        state.settle(true, None, Some(Duration::from_secs(5)), now, T0F);
        assert_eq!(
            state.admission(now + Duration::from_secs(30)),
            Admission::Wait(Duration::from_secs(30))
        );
        assert_eq!(
            state.admission(now + Duration::from_secs(61)),
            Admission::Go
        );
    }

    #[test]
    fn rate_headers_need_all_three() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", "180".parse().expect("valid"));
        headers.insert("x-ratelimit-remaining", "17".parse().expect("valid"));
        assert_eq!(RateHeaders::read(&headers), None);
        headers.insert("x-ratelimit-reset", "1764268560".parse().expect("valid"));
        assert_eq!(RateHeaders::read(&headers), rate(180, 17, 1_764_268_560));
    }
}
