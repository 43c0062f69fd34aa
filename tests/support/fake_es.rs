//! An in-process fake Elasticsearch 8 for the integration tests.
//!
//! It is deliberately strict: where real Elasticsearch rejects a request, so
//! does the fake, with the same status, error `type` and `reason`, so a test
//! that passes here says something about production. What it implements:
//!
//! - `GET /` (cluster info, `version.number` 8.15.0 unless changed);
//! - `POST|PUT /_bulk` and `/{index}/_bulk`: NDJSON parsing with
//!   Elasticsearch's request-level errors (missing final newline, malformed
//!   action lines, unknown actions or parameters, validation), the `create`,
//!   `index` and `delete` actions, per-item ingest pipelines (request,
//!   action-line and index `default_pipeline`/`final_pipeline`), 409 on a
//!   duplicate `create`, index-name validation, mapping checks from index
//!   templates (numeric and date types, `coerce`, `dynamic: strict`), and the
//!   `filter_path`, `refresh` and `pipeline` parameters;
//! - ingest pipelines (`PUT`/`GET`/`DELETE /_ingest/pipeline/{id}`), executed
//!   by [`super::ingest`] and validated when stored;
//! - composable index templates (`PUT`/`GET`/`DELETE /_index_template/{name}`),
//!   applied when an index is first written;
//! - `GET|POST /{index}/_search`: `size`/`from` (query or body), a body's
//!   `query` (`match_all`, `range`), `sort` on fields of `_source` (dates
//!   as epoch millis, `.keyword` sub-fields, missing values last),
//!   `search_after` and `track_total_hits`, with Elasticsearch's errors for
//!   unknown keys, a `search_after` that does not fit the sort and a result
//!   window over 10,000; `_count`, `GET /{index}/_mapping`,
//!   `GET /{index}/_doc/{id}`, `HEAD|GET|PUT|DELETE /{index}`, `_refresh`;
//! - API key and Basic authentication (401 with `WWW-Authenticate`), a
//!   forbidden mode (403 on every route), and index-level privileges: writes
//!   denied on index patterns and index creation denied, refused per bulk
//!   item with 403 `security_exception` as Elasticsearch 8's
//!   `AuthorizationService` words it;
//! - `action.auto_create_index` (`false` or patterns) and a template's
//!   `allow_auto_create`, refused per item with 404 `index_not_found_exception`
//!   worded as `AutoCreateIndex` does;
//! - ingest failures per item with the status Elasticsearch 7.5+ gives the
//!   processor's exception (400, or 500 for `fail`), or, on request, the
//!   500 and double wrapping of 7.0–7.4 (elastic/elasticsearch#48803);
//!   `caused_by` where Elasticsearch has one (script errors, number parsing);
//! - fault injection for whole bulk requests, single items, dropped
//!   connections, truncated answers and slow answers.
//!
//! Every request is recorded for inspection. State lives behind one
//! `Mutex` that is never held across an `.await`. `Content-Encoding: gzip`
//! is refused (no decompressor in the dependency tree); the Lambda does not
//! compress.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::ingest;

/// The Elasticsearch version the fake reports by default.
pub const DEFAULT_VERSION: &str = "8.15.0";

/// Elasticsearch's default `http.max_content_length`.
const DEFAULT_MAX_CONTENT_LENGTH: usize = 100 * 1024 * 1024;

/// One HTTP request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string, as sent (not percent-decoded).
    pub path: String,
    /// The raw query string without `?` (empty when there was none).
    pub query: String,
    /// Header names lowercased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body's NDJSON lines, parsed. Panics (this is a test helper) on a
    /// line that is not JSON, naming it.
    pub fn ndjson(&self) -> Vec<Value> {
        self.body_text()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bulk line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Whether this was a `_bulk` request (any method, any index).
    pub fn is_bulk(&self) -> bool {
        self.path.trim_end_matches('/').ends_with("/_bulk")
    }
}

/// A running fake. Cloning shares the same server and state; the server stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct FakeEs {
    shared: Shared,
    addr: SocketAddr,
    _server: Arc<ServerTask>,
}

type Shared = Arc<Mutex<EsState>>;

struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeEs {
    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the fake Elasticsearch")
    }

    /// Binds the given address (for long-running uses such as a local
    /// end-to-end script that needs a fixed port).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(EsState::default()));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let server = axum::serve(
            KillableListener(listener),
            app.into_make_service_with_connect_info::<ConnectionHandle>(),
        );
        let task = tokio::spawn(async move {
            // `serve` only returns on an accept-loop error; there is nobody
            // to report it to, and the next request would show it anyway.
            let _ = server.await;
        });
        Ok(Self {
            shared,
            addr,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, EsState> {
        lock(&self.shared)
    }

    // --- configuration -----------------------------------------------------

    /// Requires `Authorization: ApiKey <encoded>` (the base64 `id:key` form
    /// Elasticsearch returns as `encoded`). May be combined with
    /// [`Self::require_basic`]: any configured credential is accepted.
    pub fn require_api_key(&self, encoded: &str) {
        self.state()
            .config
            .credentials
            .push(Credential::ApiKey(encoded.to_owned()));
    }

    /// Refuses every request as a domain that expects SigV4 refuses Basic
    /// or ApiKey: 403 and `{"message": "... Authorization=<the header>"}`,
    /// the credential included, exactly as AWS echoes it.
    pub fn echo_like_aws(&self) {
        self.state().config.echo_like_aws = true;
    }

    /// Requires HTTP Basic with these credentials.
    pub fn require_basic(&self, user: &str, password: &str) {
        self.state().config.credentials.push(Credential::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }

    /// Authenticated requests are refused with 403 `security_exception`
    /// ("action [...] is unauthorized for ..."), as for a key without the
    /// needed privileges.
    pub fn forbid(&self) {
        self.state().config.forbidden = true;
    }

    /// The credentials lose every write privilege on indices matching
    /// `pattern` (`*` wildcards; calls add up): each bulk item for such an
    /// index fails alone with 403 `security_exception`, "action
    /// [indices:data/write/bulk[s]] is unauthorized for ... on indices
    /// [<index>], this action is granted by the index privileges
    /// [create_doc,create,index,write,all]", in a 200 answer with
    /// `errors: true`. Nothing is stored for those items.
    pub fn deny_index_writes(&self, pattern: &str) {
        self.state().config.write_denied.push(pattern.to_owned());
    }

    /// Gives back every write privilege [`Self::deny_index_writes`] took.
    pub fn allow_index_writes(&self) {
        self.state().config.write_denied.clear();
    }

    /// The credentials may not create indices: a bulk item for an index that
    /// does not exist yet fails with 403 `security_exception` naming
    /// `indices:admin/auto_create` and the index privileges
    /// [auto_configure,create_index,manage,all], and `PUT /{index}` is
    /// refused with 403 naming `indices:admin/create`. Indices that exist
    /// still take documents. As in Elasticsearch 8, this is checked before
    /// `action.auto_create_index` (the auto-create action is authorized
    /// before it runs).
    pub fn deny_index_creation(&self) {
        self.state().config.creation_denied = true;
    }

    /// Undoes [`Self::deny_index_creation`].
    pub fn allow_index_creation(&self) {
        self.state().config.creation_denied = false;
    }

    /// `action.auto_create_index: false`: a bulk item for an index that does
    /// not exist fails with 404 `index_not_found_exception`, "no such index
    /// [<index>] and [action.auto_create_index] is [false]". Existing
    /// indices (created with `PUT /{index}` or [`Self::create_index`]) still
    /// take documents, and a matching index template's `allow_auto_create`
    /// overrides the setting, as in `AutoCreateIndex.shouldAutoCreate`.
    pub fn disable_auto_create_index(&self) {
        self.set_auto_create_index("false");
    }

    /// Sets `action.auto_create_index` as Elasticsearch takes it: `true`,
    /// `false`, or comma-separated patterns with optional `+`/`-` prefixes,
    /// the first matching pattern deciding.
    /// Panics on a value Elasticsearch would refuse.
    pub fn set_auto_create_index(&self, value: &str) {
        if !matches!(value, "true" | "false") {
            for pattern in value.split(',') {
                let pattern = pattern.trim();
                assert!(
                    !pattern.is_empty() && pattern != "-" && pattern != "+",
                    "Elasticsearch refuses action.auto_create_index [{value}]"
                );
            }
        }
        self.state().config.auto_create_index = value.to_owned();
    }

    /// Reports ingest failures the way Elasticsearch 7.0 to 7.4 did
    /// (elastic/elasticsearch#48803, fixed in 7.5 by #48810): every item a
    /// pipeline processor fails gets status 500 and the processor's
    /// exception wrapped twice, `{"type":"exception","reason":
    /// "java.lang.IllegalArgumentException: <cause>","caused_by":{"type":
    /// "illegal_argument_exception","reason":"<cause>","caused_by":<the
    /// processor's error>},"header":{"processor_type":..,"processor_tag":..}}`.
    /// Without it (Elasticsearch 7.5+), the item carries the processor's own
    /// error and its status: 400 for a missing field or a script error, 500
    /// for the `fail` processor.
    pub fn ingest_failures_as_500(&self) {
        self.state().config.ingest_errors = IngestErrors::Wrapped500;
    }

    /// Sets the version `GET /` reports (e.g. "7.10.2").
    pub fn set_version(&self, number: &str) {
        self.state().config.version = number.to_owned();
    }

    /// Behaves as if every index had `index.mapping.coerce: false`, so a
    /// fractional number or a numeric string sent to a `long` field is
    /// rejected instead of being coerced (Elasticsearch's default is to
    /// coerce). A field's own `coerce` mapping parameter still wins.
    pub fn disable_coercion(&self) {
        self.state().config.coerce = false;
    }

    /// Elasticsearch's `http.max_content_length`: larger bodies get 413.
    pub fn set_max_content_length(&self, bytes: usize) {
        self.state().config.max_content_length = bytes;
    }

    /// Delays every response (after the request has been fully processed and
    /// its documents stored) by `delay`; `Duration::ZERO` turns it off.
    pub fn delay_responses(&self, delay: Duration) {
        self.state().config.delay = (!delay.is_zero()).then_some(delay);
    }

    // --- test setup and inspection -------------------------------------------

    /// Stores an ingest pipeline as `PUT _ingest/pipeline/{id}` would.
    /// Panics if Elasticsearch would have refused the definition.
    pub fn put_pipeline(&self, id: &str, definition: Value) {
        if let Err(failure) = ingest::validate_pipeline(id, &definition) {
            panic!("pipeline [{id}] would be rejected by Elasticsearch: {failure}");
        }
        self.state().pipelines.insert(id.to_owned(), definition);
    }

    pub fn pipeline(&self, id: &str) -> Option<Value> {
        self.state().pipelines.get(id).cloned()
    }

    pub fn delete_pipeline(&self, id: &str) -> bool {
        self.state().pipelines.remove(id).is_some()
    }

    /// Stores a composable index template as `PUT _index_template/{name}`
    /// would. Panics if Elasticsearch would have refused it.
    pub fn put_index_template(&self, name: &str, body: Value) {
        let normalized = validate_index_template(name, &body)
            .unwrap_or_else(|reply| panic!("index template [{name}] would be rejected: {reply:?}"));
        self.state().templates.insert(name.to_owned(), normalized);
    }

    pub fn index_template(&self, name: &str) -> Option<Value> {
        self.state().templates.get(name).cloned()
    }

    /// Creates an index as an administrator would (`PUT /{index}` with no
    /// body): mappings and settings from the matching template, whatever
    /// the test's credentials may do. Panics if the name is invalid or the
    /// index exists.
    pub fn create_index(&self, index: &str) {
        if let Some(reason) = invalid_index_name(index) {
            panic!("index [{index}] would be rejected by Elasticsearch: {reason}");
        }
        let mut state = self.state();
        assert!(
            !state.indices.contains_key(index),
            "index [{index}] already exists"
        );
        state.ensure_index(index);
    }

    /// The documents of one index as `(_id, _source)`, in insertion order.
    pub fn documents(&self, index: &str) -> Vec<(String, Value)> {
        let state = self.state();
        let Some(index) = state.indices.get(index) else {
            return Vec::new();
        };
        index
            .order
            .iter()
            .map(|id| (id.clone(), index.docs[id].source.clone()))
            .collect()
    }

    pub fn document(&self, index: &str, id: &str) -> Option<Value> {
        let state = self.state();
        Some(state.indices.get(index)?.docs.get(id)?.source.clone())
    }

    /// Every document as `(_index, _id, _source)`: indices in creation order,
    /// documents in insertion order.
    pub fn all_documents(&self) -> Vec<(String, String, Value)> {
        let state = self.state();
        state
            .index_order
            .iter()
            .flat_map(|name| {
                let index = &state.indices[name];
                index
                    .order
                    .iter()
                    .map(move |id| (name.clone(), id.clone(), index.docs[id].source.clone()))
            })
            .collect()
    }

    /// Index names in creation order.
    pub fn indices(&self) -> Vec<String> {
        self.state().index_order.clone()
    }

    /// Every request received, in order (including refused ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The `_bulk` requests received, in order.
    pub fn bulk_requests(&self) -> Vec<RecordedRequest> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.is_bulk())
            .cloned()
            .collect()
    }

    /// How many `_bulk` requests arrived, whatever happened to them
    /// (scripted failures, 401s and dropped connections included).
    pub fn bulk_request_count(&self) -> usize {
        self.state().requests.iter().filter(|r| r.is_bulk()).count()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    // --- fault injection -----------------------------------------------------

    /// Answers the next `_bulk` request with `status` and this JSON body
    /// instead of handling it (nothing is stored). Calls queue up and are
    /// consumed in order, one per bulk request, before authentication, like
    /// a proxy or an overloaded node in front of the cluster.
    pub fn fail_next_bulk(&self, status: u16, body: Value) {
        self.state()
            .faults
            .scripted
            .push_back(Reply::json(status, &body));
    }

    /// Like [`Self::fail_next_bulk`] with a non-JSON body (e.g. a proxy's
    /// HTML 502 page).
    pub fn fail_next_bulk_raw(&self, status: u16, content_type: &str, body: &str) {
        let mut reply = Reply::json(status, &Value::Null);
        reply.content_type = Some(content_type.to_owned());
        reply.body = body.as_bytes().to_vec();
        self.state().faults.scripted.push_back(reply);
    }

    /// The next `times` bulk items with this `_id` (in any index) fail with
    /// `status` and an `error` of this type and reason instead of being
    /// processed (e.g. 429 `es_rejected_execution_exception`).
    pub fn fail_item(&self, id: &str, times: usize, status: u16, error_type: &str, reason: &str) {
        self.state().faults.items.insert(
            id.to_owned(),
            ItemFault {
                remaining: times,
                status,
                error_type: error_type.to_owned(),
                reason: reason.to_owned(),
            },
        );
    }

    /// The next `n` `_bulk` requests are processed fully (documents are
    /// stored) but the connection is then closed without an answer, as when
    /// a load balancer times out: the client sees a transport error.
    pub fn drop_connection_after_bulk_next(&self, n: usize) {
        self.state().faults.drop_after_bulk += n;
    }

    /// The next `_bulk` request only processes (and answers for) the first
    /// half of its items, rounded down, and reports `errors: true`: the
    /// documents of the missing items are not stored.
    pub fn truncate_items_next(&self) {
        self.state().faults.truncate_next = true;
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, EsState> {
    // A panicking test thread must not take every later request down with it.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Connection-level control
// ---------------------------------------------------------------------------

/// A listener whose connections can be killed from a request handler, so a
/// request can be processed and then left without any answer.
struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let stream = KillableStream {
                        inner: stream,
                        killed: Arc::new(AtomicBool::new(false)),
                    };
                    return (stream, addr);
                }
                // Too many open files and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection dropped by fault injection",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Failing the first write of the response makes hyper drop the
        // connection, which closes the socket with nothing sent.
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Handed to each request (as axum connect info) to kill its connection.
#[derive(Clone)]
struct ConnectionHandle(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, KillableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        Self(Arc::clone(&stream.io().killed))
    }
}

impl ConnectionHandle {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn handle(
    State(shared): State<Shared>,
    ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let limit = lock(&shared).config.max_content_length;
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match declared {
        Some(length) if length > limit => None,
        _ => axum::body::to_bytes(body, limit).await.ok(),
    };
    let mut recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: BTreeMap::new(),
        body: body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
    };
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        recorded
            .headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }

    let (reply, delay) = {
        let mut state = lock(&shared);
        state.requests.push(recorded.clone());
        let reply = if body.is_none() {
            // What Elasticsearch's HTTP layer answers: no body at all.
            Reply::empty(413)
        } else {
            state.dispatch(&recorded, started)
        };
        (reply, state.config.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if reply.drop_connection {
        connection.kill();
    }
    reply.into_response()
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

struct Config {
    credentials: Vec<Credential>,
    /// Answers as an IAM-only Amazon OpenSearch Service domain does: every
    /// request is refused with 403 and a `message` echoing the whole
    /// `Authorization` header ([`FakeEs::echo_like_aws`]).
    echo_like_aws: bool,
    forbidden: bool,
    /// Index patterns the credentials may not write to (no `create_doc`,
    /// `create`, `index`, `write` or `all` on them).
    write_denied: Vec<String>,
    /// The credentials may not create indices (no `auto_configure`,
    /// `create_index`, `manage` or `all`).
    creation_denied: bool,
    /// The `action.auto_create_index` cluster setting, as given.
    auto_create_index: String,
    ingest_errors: IngestErrors,
    version: String,
    coerce: bool,
    max_content_length: usize,
    delay: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            echo_like_aws: false,
            forbidden: false,
            write_denied: Vec::new(),
            creation_denied: false,
            auto_create_index: "true".to_owned(),
            ingest_errors: IngestErrors::Unwrapped,
            version: DEFAULT_VERSION.to_owned(),
            coerce: true,
            max_content_length: DEFAULT_MAX_CONTENT_LENGTH,
            delay: None,
        }
    }
}

/// How a bulk item the ingest pipeline failed is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IngestErrors {
    /// Elasticsearch 7.5 and later: the processor's exception itself, with
    /// the status it maps to (elastic/elasticsearch#48810).
    Unwrapped,
    /// Elasticsearch 7.0–7.4: wrapped twice, always 500
    /// (elastic/elasticsearch#48803).
    Wrapped500,
}

enum Credential {
    ApiKey(String),
    Basic { user: String, password: String },
}

#[derive(Default)]
struct Faults {
    scripted: VecDeque<Reply>,
    items: HashMap<String, ItemFault>,
    drop_after_bulk: usize,
    truncate_next: bool,
}

struct ItemFault {
    remaining: usize,
    status: u16,
    error_type: String,
    reason: String,
}

#[derive(Default)]
struct EsState {
    config: Config,
    indices: HashMap<String, Index>,
    index_order: Vec<String>,
    pipelines: BTreeMap<String, Value>,
    templates: BTreeMap<String, Value>,
    requests: Vec<RecordedRequest>,
    faults: Faults,
}

struct Index {
    uuid: String,
    order: Vec<String>,
    docs: HashMap<String, StoredDoc>,
    next_seq_no: u64,
    /// The `mappings` and `settings` of the template that matched when the
    /// index was created; later template changes do not apply, as in ES.
    mappings: Value,
    settings: Value,
}

struct StoredDoc {
    source: Value,
    version: u64,
    seq_no: u64,
}

/// An HTTP answer before it becomes an axum response.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    drop_connection: bool,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: Some("application/json".to_owned()),
            headers: Vec::new(),
            body: serde_json::to_vec(value).expect("JSON values serialize"),
            drop_connection: false,
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
            drop_connection: false,
        }
    }

    fn ok(value: &Value) -> Self {
        Self::json(200, value)
    }

    fn acknowledged() -> Self {
        Self::ok(&json!({ "acknowledged": true }))
    }

    /// The standard error body: `{"error":{"root_cause":[..],"type","reason"},"status"}`.
    fn error(status: u16, error_type: &str, reason: &str) -> Self {
        Self::error_with(status, error_type, reason, Map::new())
    }

    fn error_with(status: u16, error_type: &str, reason: &str, extra: Map<String, Value>) -> Self {
        let mut cause = Map::new();
        cause.insert("type".into(), error_type.into());
        cause.insert("reason".into(), reason.into());
        cause.extend(extra);
        // Elasticsearch repeats the cause's fields at the top level; the
        // `root_cause` entries are rendered without their own `caused_by`.
        let mut root = cause.clone();
        root.remove("caused_by");
        let mut top = Map::new();
        top.insert("root_cause".into(), json!([root]));
        top.extend(cause);
        Self::json(status, &json!({ "error": top, "status": status }))
    }

    /// The short form the REST layer uses (`{"error":"...","status":N}`).
    fn plain_error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message, "status": status }))
    }

    fn bad_request(error_type: &str, reason: &str) -> Self {
        Self::error(400, error_type, reason)
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(self.status)
            .header("X-elastic-product", "Elasticsearch");
        if let Some(content_type) = &self.content_type {
            builder = builder.header(axum::http::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(axum::body::Body::from(self.body))
            .unwrap_or_else(|_| (axum::http::StatusCode::INTERNAL_SERVER_ERROR).into_response())
    }
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

enum Route {
    Root,
    Bulk(Option<String>),
    Pipelines,
    Pipeline(String),
    Templates,
    Template(String),
    Search(String),
    Count(String),
    Mapping(String),
    Refresh(String),
    Doc(String, String),
    Index(String),
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|segment| percent_decode(segment, false))
            .collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        Some(match s.as_slice() {
            [] => Route::Root,
            ["_bulk"] => Route::Bulk(None),
            ["_ingest", "pipeline"] => Route::Pipelines,
            ["_ingest", "pipeline", id] => Route::Pipeline((*id).to_owned()),
            ["_index_template"] => Route::Templates,
            ["_index_template", name] => Route::Template((*name).to_owned()),
            [index, "_bulk"] => Route::Bulk(Some((*index).to_owned())),
            [index, "_search"] => Route::Search((*index).to_owned()),
            [index, "_count"] => Route::Count((*index).to_owned()),
            [index, "_mapping"] => Route::Mapping((*index).to_owned()),
            [index, "_refresh"] => Route::Refresh((*index).to_owned()),
            [index, "_doc", id] => Route::Doc((*index).to_owned(), (*id).to_owned()),
            [index] if !index.starts_with('_') => Route::Index((*index).to_owned()),
            _ => return None,
        })
    }

    fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Root | Route::Doc(..) | Route::Mapping(_) => &["GET", "HEAD"],
            Route::Bulk(_) => &["POST", "PUT"],
            Route::Pipelines => &["GET"],
            Route::Pipeline(_) => &["GET", "HEAD", "PUT", "DELETE"],
            Route::Templates => &["GET"],
            Route::Template(_) => &["GET", "HEAD", "PUT", "POST", "DELETE"],
            Route::Search(_) | Route::Count(_) | Route::Refresh(_) => &["GET", "POST"],
            Route::Index(_) => &["GET", "HEAD", "PUT", "DELETE"],
        }
    }

    /// The action name Elasticsearch authorizes, for 403 messages.
    fn action(&self, method: &str) -> &'static str {
        match (self, method) {
            (Route::Root, _) => "cluster:monitor/main",
            (Route::Bulk(_), _) => "indices:data/write/bulk",
            (Route::Pipelines | Route::Pipeline(_), "PUT") => "cluster:admin/ingest/pipeline/put",
            (Route::Pipeline(_), "DELETE") => "cluster:admin/ingest/pipeline/delete",
            (Route::Pipelines | Route::Pipeline(_), _) => "cluster:admin/ingest/pipeline/get",
            (Route::Template(_), "PUT" | "POST") => "indices:admin/index_template/put",
            (Route::Template(_), "DELETE") => "indices:admin/index_template/delete",
            (Route::Templates | Route::Template(_), _) => "indices:admin/index_template/get",
            (Route::Search(_), _) => "indices:data/read/search",
            (Route::Count(_), _) => "indices:data/read/search",
            (Route::Mapping(_), _) => "indices:admin/mappings/get",
            (Route::Refresh(_), _) => "indices:admin/refresh",
            (Route::Doc(..), _) => "indices:data/read/get",
            (Route::Index(_), "PUT") => "indices:admin/create",
            (Route::Index(_), "DELETE") => "indices:admin/delete",
            (Route::Index(_), _) => "indices:admin/get",
        }
    }
}

impl EsState {
    fn dispatch(&mut self, request: &RecordedRequest, started: Instant) -> Reply {
        let method = request.method.as_str();
        let uri = if request.query.is_empty() {
            request.path.clone()
        } else {
            format!("{}?{}", request.path, request.query)
        };
        let Some(route) = Route::parse(&request.path) else {
            return Reply::plain_error(
                400,
                &format!("no handler found for uri [{uri}] and method [{method}]"),
            );
        };
        if !route.methods().contains(&method) {
            let allowed = route.methods().join(", ");
            let mut reply = Reply::plain_error(
                405,
                &format!(
                    "Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{allowed}]"
                ),
            );
            reply.headers.push(("Allow".to_owned(), allowed));
            return reply;
        }
        if matches!(route, Route::Bulk(_))
            && let Some(scripted) = self.faults.scripted.pop_front()
        {
            return scripted;
        }
        if self.config.echo_like_aws {
            let header = request.header("authorization").unwrap_or_default();
            let message = format!(
                "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={header}"
            );
            let mut reply = Reply::json(403, &json!({ "message": message }));
            reply.headers.push((
                "x-amzn-ErrorType".to_owned(),
                "IncompleteSignatureException".to_owned(),
            ));
            return reply;
        }
        let principal = match self.authenticate(request, &uri) {
            Ok(principal) => principal,
            Err(reply) => return reply,
        };
        if self.config.forbidden {
            return forbidden(route.action(method), &principal);
        }

        let mut reply = match route {
            Route::Root => self.cluster_info(),
            Route::Bulk(index) => self.bulk(request, index.as_deref(), &principal, started),
            Route::Pipelines => self.get_pipelines("*"),
            Route::Pipeline(id) => match method {
                "PUT" => self.put_pipeline_request(request, &id),
                "DELETE" => match self.pipelines.remove(&id) {
                    Some(_) => Reply::acknowledged(),
                    None => Reply::error(
                        404,
                        "resource_not_found_exception",
                        &format!("pipeline [{id}] is missing"),
                    ),
                },
                _ => self.get_pipelines(&id),
            },
            Route::Templates => self.get_templates("*", false),
            Route::Template(name) => match method {
                "PUT" | "POST" => self.put_template_request(request, &name),
                "DELETE" => match self.templates.remove(&name) {
                    Some(_) => Reply::acknowledged(),
                    None => template_not_found(&name),
                },
                _ => self.get_templates(&name, true),
            },
            Route::Search(target) => self.search(request, &target, false),
            Route::Count(target) => self.search(request, &target, true),
            Route::Mapping(target) => match self.resolve_indices(&target) {
                Ok(names) => Reply::ok(&Value::Object(
                    names
                        .into_iter()
                        .map(|name| {
                            let mappings = self.indices[&name].mappings.clone();
                            (name, json!({ "mappings": mappings }))
                        })
                        .collect(),
                )),
                Err(reply) => reply,
            },
            Route::Refresh(target) => match self.resolve_indices(&target) {
                Ok(_) => Reply::ok(&json!({"_shards": {"total": 2, "successful": 1, "failed": 0}})),
                Err(reply) => reply,
            },
            Route::Doc(index, id) => self.get_doc(&index, &id),
            Route::Index(index) if method == "PUT" => {
                if self.config.creation_denied {
                    let reason = index_denial(
                        CREATE_INDEX_ACTION,
                        &principal,
                        &index,
                        CREATE_INDEX_PRIVILEGES,
                    );
                    Reply::error(403, "security_exception", &reason)
                } else {
                    self.create_index_request(request, &index)
                }
            }
            Route::Index(index) if method == "DELETE" => match self.indices.remove(&index) {
                Some(_) => {
                    self.index_order.retain(|name| *name != index);
                    Reply::acknowledged()
                }
                None => index_not_found(&index),
            },
            Route::Index(index) => match self.indices.get(&index) {
                Some(found) => Reply::ok(&json!({
                    index.clone(): {
                        "aliases": {},
                        "mappings": found.mappings,
                        "settings": {"index": {"uuid": found.uuid, "provided_name": index}},
                    }
                })),
                None => index_not_found(&index),
            },
        };

        if reply.status < 300
            && reply.content_type.as_deref() == Some("application/json")
            && let Some(filter) = request.query_param("filter_path")
            && let Ok(value) = serde_json::from_slice::<Value>(&reply.body)
        {
            reply.body = serde_json::to_vec(&apply_filter_path(&value, &filter))
                .expect("JSON values serialize");
        }
        if reply.content_type.as_deref() == Some("application/json")
            && let Some(version) = compatible_with(request)
        {
            reply.content_type = Some(format!(
                "application/vnd.elasticsearch+json;compatible-with={version}"
            ));
        }
        reply
    }

    fn cluster_info(&self) -> Reply {
        Reply::ok(&json!({
            "name": "fake-es-node",
            "cluster_name": "fake-es",
            "cluster_uuid": "fAkEcLuStErUuId0000000",
            "version": {
                "number": self.config.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2024-08-05T10:05:34.233336849Z",
                "build_snapshot": false,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }))
    }
}

/// The `compatible-with` version a request asked for, if any.
fn compatible_with(request: &RecordedRequest) -> Option<String> {
    ["accept", "content-type"]
        .iter()
        .filter_map(|h| request.header(h))
        .find_map(|value| {
            let (_, params) = parse_media_type(value);
            params
                .into_iter()
                .find(|(k, _)| k == "compatible-with")
                .map(|(_, v)| v)
        })
}

fn index_not_found(index: &str) -> Reply {
    let mut extra = Map::new();
    extra.insert("resource.type".into(), "index_or_alias".into());
    extra.insert("resource.id".into(), index.into());
    extra.insert("index_uuid".into(), "_na_".into());
    extra.insert("index".into(), index.into());
    Reply::error_with(
        404,
        "index_not_found_exception",
        &format!("no such index [{index}]"),
        extra,
    )
}

fn template_not_found(name: &str) -> Reply {
    Reply::error(
        404,
        "resource_not_found_exception",
        &format!("index template matching [{name}] not found"),
    )
}

// ---------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------

enum Principal {
    Anonymous,
    ApiKey { id: String },
    User(String),
}

const AUTHENTICATE_HEADERS: [&str; 2] = ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"];

impl EsState {
    fn authenticate(&self, request: &RecordedRequest, uri: &str) -> Result<Principal, Reply> {
        if self.config.credentials.is_empty() {
            return Ok(Principal::Anonymous);
        }
        let header = request.header("authorization").unwrap_or_default().trim();
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("ApiKey") && !token.is_empty() {
            if self
                .config
                .credentials
                .iter()
                .any(|c| matches!(c, Credential::ApiKey(k) if k == token))
            {
                return Ok(Principal::ApiKey {
                    id: api_key_id(token).unwrap_or_default(),
                });
            }
            let detail = match api_key_id(token) {
                None => "invalid ApiKey value".to_owned(),
                Some(id) => {
                    let known = self.config.credentials.iter().any(
                        |c| matches!(c, Credential::ApiKey(k) if api_key_id(k).as_deref() == Some(&id)),
                    );
                    if known {
                        format!("invalid credentials for API key [{id}]")
                    } else {
                        format!("unable to find apikey with id [{id}]")
                    }
                }
            };
            return Err(unauthorized(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                Some(&format!("API key: {detail}")),
            ));
        }
        if scheme.eq_ignore_ascii_case("Basic") && !token.is_empty() {
            let decoded = BASE64
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(unauthorized(
                    "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                    None,
                ));
            };
            let accepted = self.config.credentials.iter().any(|c| {
                matches!(c, Credential::Basic { user: u, password: p } if u == user && p == password)
            });
            if accepted {
                return Ok(Principal::User(user.to_owned()));
            }
            return Err(unauthorized(
                &format!("unable to authenticate user [{user}] for REST request [{uri}]"),
                None,
            ));
        }
        if scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty() {
            return Err(unauthorized(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                Some("bearer token: invalid token"),
            ));
        }
        Err(unauthorized(
            &format!("missing authentication credentials for REST request [{uri}]"),
            None,
        ))
    }
}

/// The `id` of an encoded API key (`base64(id:key)`), if it has that shape.
fn api_key_id(encoded: &str) -> Option<String> {
    let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
    let (id, key) = decoded.split_once(':')?;
    (!id.is_empty() && !key.is_empty()).then(|| id.to_owned())
}

/// 401 in the shape of `fixtures/elasticsearch/error-401.json`.
fn unauthorized(reason: &str, additional: Option<&str>) -> Reply {
    let mut cause = Map::new();
    cause.insert("type".into(), "security_exception".into());
    cause.insert("reason".into(), reason.into());
    if let Some(additional) = additional {
        cause.insert(
            "additional_unsuccessful_credentials".into(),
            additional.into(),
        );
    }
    cause.insert(
        "header".into(),
        json!({ "WWW-Authenticate": AUTHENTICATE_HEADERS }),
    );
    let body = json!({
        "error": {
            "root_cause": [Value::Object(cause)],
            "type": "security_exception",
            "reason": reason,
        },
        "status": 401,
    });
    let mut reply = Reply::json(401, &body);
    for value in AUTHENTICATE_HEADERS {
        reply
            .headers
            .push(("WWW-Authenticate".to_owned(), value.to_owned()));
    }
    reply
}

/// Who the request ran as, the way `AuthorizationDenialMessages` describes
/// it (API keys have no roles to list).
fn principal_description(principal: &Principal) -> String {
    match principal {
        Principal::ApiKey { id } => format!("API key id [{id}] of user [fake-es-user]"),
        Principal::User(user) => format!("user [{user}] with effective roles [fake_es_role]"),
        Principal::Anonymous => "user [_anonymous] with effective roles []".to_owned(),
    }
}

fn forbidden(action: &str, principal: &Principal) -> Reply {
    let reason = format!(
        "action [{action}] is unauthorized for {}",
        principal_description(principal)
    );
    Reply::error(403, "security_exception", &reason)
}

/// The message of an index-level denial (`actionDenied` with the failure
/// context "on indices [..]" and the index privileges that would grant it).
fn index_denial(action: &str, principal: &Principal, index: &str, privileges: &str) -> String {
    format!(
        "action [{action}] is unauthorized for {} on indices [{index}], this action is granted by the index privileges [{privileges}]",
        principal_description(principal)
    )
}

/// The shard-level bulk action's denial on an index the credentials may not
/// write to: every item of that shard fails with it.
const BULK_SHARD_ACTION: &str = "indices:data/write/bulk[s]";
const WRITE_PRIVILEGES: &str = "create_doc,create,index,write,all";
/// The action a bulk request uses to create a missing index (8.x), and what
/// grants it.
const AUTO_CREATE_ACTION: &str = "indices:admin/auto_create";
const AUTO_CREATE_PRIVILEGES: &str = "auto_configure,create_index,manage,all";
const CREATE_INDEX_ACTION: &str = "indices:admin/create";
const CREATE_INDEX_PRIVILEGES: &str = "create_index,manage,all";

// ---------------------------------------------------------------------------
// Content types and query strings
// ---------------------------------------------------------------------------

/// `type/subtype` lowercased, and its parameters (names lowercased).
fn parse_media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    (media, params)
}

/// Accepts the media types Elasticsearch accepts for a JSON body, refusing
/// others the way its REST layer does (406, or 400 for a bad compatible
/// version).
fn check_content_type(request: &RecordedRequest) -> Result<(), Reply> {
    let Some(header) = request.header("content-type") else {
        return Err(Reply::plain_error(406, "Content-Type header is missing"));
    };
    let (media, params) = parse_media_type(header);
    match media.as_str() {
        "application/json" | "application/x-ndjson" => Ok(()),
        "application/vnd.elasticsearch+json" | "application/vnd.elasticsearch+x-ndjson" => {
            let version = params
                .iter()
                .find(|(k, _)| k == "compatible-with")
                .map(|(_, v)| v.as_str());
            match version {
                Some("7" | "8") => Ok(()),
                other => {
                    let cause = match other {
                        None => format!("Content-Type has no compatible-with version: {header}"),
                        Some(v) => format!(
                            "Content-Type version must be either version 8 or 7, but found {v}. Content-Type={header}"
                        ),
                    };
                    let mut extra = Map::new();
                    extra.insert(
                        "caused_by".into(),
                        json!({"type": "status_exception", "reason": cause}),
                    );
                    Err(Reply::error_with(
                        400,
                        "media_type_header_exception",
                        "Invalid media-type value on headers [Content-Type]",
                        extra,
                    ))
                }
            }
        }
        _ => Err(Reply::plain_error(
            406,
            &format!("Content-Type header [{header}] is not supported"),
        )),
    }
}

fn check_content_encoding(request: &RecordedRequest) -> Result<(), Reply> {
    match request.header("content-encoding") {
        None => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(()),
        Some(e) => Err(Reply::bad_request(
            "illegal_argument_exception",
            &format!("the fake Elasticsearch cannot decode Content-Encoding [{e}]"),
        )),
    }
}

/// Decodes `%XX`; `+` means a space only in query strings.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Parses a JSON request body, answering like Elasticsearch when it is not.
fn json_body(request: &RecordedRequest) -> Result<Value, Reply> {
    check_content_type(request)?;
    check_content_encoding(request)?;
    if request.body.is_empty() {
        return Err(Reply::bad_request(
            "parse_exception",
            "request body is required",
        ));
    }
    serde_json::from_slice(&request.body).map_err(|e| {
        Reply::bad_request(
            "x_content_parse_exception",
            &format!("[{}:{}] {e}", e.line(), e.column()),
        )
    })
}

// ---------------------------------------------------------------------------
// Pipelines and templates
// ---------------------------------------------------------------------------

impl EsState {
    fn put_pipeline_request(&mut self, request: &RecordedRequest, id: &str) -> Reply {
        let definition = match json_body(request) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        if let Err(failure) = ingest::validate_pipeline(id, &definition) {
            let mut extra = Map::new();
            if let Some(cause) = &failure.caused_by {
                extra.insert("caused_by".into(), cause.to_json());
            }
            return Reply::error_with(400, &failure.error_type, &failure.reason, extra);
        }
        self.pipelines.insert(id.to_owned(), definition);
        Reply::acknowledged()
    }

    fn get_pipelines(&self, pattern: &str) -> Reply {
        let found: Map<String, Value> = self
            .pipelines
            .iter()
            .filter(|(id, _)| pattern.split(',').any(|p| simple_match(p.trim(), id)))
            .map(|(id, def)| (id.clone(), def.clone()))
            .collect();
        let status = if found.is_empty() { 404 } else { 200 };
        Reply::json(status, &Value::Object(found))
    }

    fn put_template_request(&mut self, request: &RecordedRequest, name: &str) -> Reply {
        let body = match json_body(request) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        if request.query_param("create").as_deref() == Some("true")
            && self.templates.contains_key(name)
        {
            return Reply::bad_request(
                "illegal_argument_exception",
                &format!("index template [{name}] already exists"),
            );
        }
        match validate_index_template(name, &body) {
            Ok(normalized) => {
                self.templates.insert(name.to_owned(), normalized);
                Reply::acknowledged()
            }
            Err(reply) => reply,
        }
    }

    fn get_templates(&self, pattern: &str, not_found_is_error: bool) -> Reply {
        let found: Vec<Value> = self
            .templates
            .iter()
            .filter(|(name, _)| pattern.split(',').any(|p| simple_match(p.trim(), name)))
            .map(|(name, t)| json!({"name": name, "index_template": t}))
            .collect();
        if found.is_empty() && not_found_is_error && !pattern.contains('*') {
            return template_not_found(pattern);
        }
        Reply::ok(&json!({ "index_templates": found }))
    }

    /// The composable template with the highest priority matching `index`.
    fn matching_template(&self, index: &str) -> Option<&Value> {
        self.templates
            .values()
            .filter(|t| {
                t["index_patterns"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| simple_match(p.as_str().unwrap_or(""), index))
                })
            })
            .max_by_key(|t| t["priority"].as_i64().unwrap_or(0))
    }
}

/// What `PUT _index_template` checks, returning the stored form.
fn validate_index_template(name: &str, body: &Value) -> Result<Value, Reply> {
    const KNOWN: &[&str] = &[
        "index_patterns",
        "composed_of",
        "template",
        "priority",
        "version",
        "_meta",
        "data_stream",
        "allow_auto_create",
        "ignore_missing_component_templates",
        "deprecated",
    ];
    let Some(object) = body.as_object() else {
        return Err(Reply::bad_request(
            "x_content_parse_exception",
            "[1:1] [index_template] expected START_OBJECT",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Reply::bad_request(
            "x_content_parse_exception",
            &format!("[1:2] [index_template] unknown field [{unknown}]"),
        ));
    }
    let patterns: Vec<Value> = match &object.get("index_patterns") {
        Some(Value::String(p)) => vec![Value::String(p.clone())],
        Some(Value::Array(ps)) if !ps.is_empty() && ps.iter().all(Value::is_string) => ps.clone(),
        _ => {
            return Err(Reply::bad_request(
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
            ));
        }
    };
    if let Some(Value::Array(components)) = object.get("composed_of")
        && !components.is_empty()
    {
        let names: Vec<String> = components
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_owned())
            .collect();
        return Err(Reply::bad_request(
            "invalid_index_template_exception",
            &format!(
                "index_template [{name}] invalid, cause [index template [{name}] specifies component templates {} that do not exist]",
                java_string_list(&names)
            ),
        ));
    }
    if let Some(template) = object.get("template")
        && !template.is_object()
    {
        return Err(Reply::bad_request(
            "x_content_parse_exception",
            "[1:2] [index_template] failed to parse field [template]",
        ));
    }
    let mut normalized = object.clone();
    normalized.insert("index_patterns".into(), Value::Array(patterns));
    Ok(Value::Object(normalized))
}

fn java_string_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// Elasticsearch's `Regex.simpleMatch`: `*` matches any run of characters.
fn simple_match(pattern: &str, text: &str) -> bool {
    let Some(star) = pattern.find('*') else {
        return pattern == text;
    };
    let (prefix, rest) = (&pattern[..star], &pattern[star + 1..]);
    if !text.starts_with(prefix) {
        return false;
    }
    let text = &text[prefix.len()..];
    if rest.is_empty() {
        return true;
    }
    (0..=text.len())
        .filter(|i| text.is_char_boundary(*i))
        .any(|i| simple_match(rest, &text[i..]))
}

// ---------------------------------------------------------------------------
// Reading documents
// ---------------------------------------------------------------------------

impl EsState {
    /// Resolves `a,b*,_all` to existing indices, 404 for a missing concrete one.
    fn resolve_indices(&self, target: &str) -> Result<Vec<String>, Reply> {
        let mut names = Vec::new();
        for part in target.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "_all" || part.contains('*') {
                let pattern = if part == "_all" { "*" } else { part };
                names.extend(
                    self.index_order
                        .iter()
                        .filter(|n| simple_match(pattern, n) && !n.starts_with('.'))
                        .cloned(),
                );
            } else if self.indices.contains_key(part) {
                names.push(part.to_owned());
            } else {
                return Err(index_not_found(part));
            }
        }
        names.dedup();
        Ok(names)
    }

    fn search(&self, request: &RecordedRequest, target: &str, count_only: bool) -> Reply {
        let names = match self.resolve_indices(target) {
            Ok(names) => names,
            Err(reply) => return reply,
        };
        let body = match SearchBody::parse(request, count_only) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let mut hits: Vec<(Vec<Value>, Value)> = Vec::new();
        for name in &names {
            let index = &self.indices[name];
            for id in &index.order {
                let source = &index.docs[id].source;
                if !body.matches(source) {
                    continue;
                }
                let sort: Vec<Value> = body
                    .sort
                    .iter()
                    .map(|key| sort_value(&index.mappings, source, &key.field))
                    .collect();
                let mut hit = json!({"_index": name, "_id": id, "_score": null});
                if body.source {
                    hit["_source"] = source.clone();
                }
                if !body.sort.is_empty() {
                    hit["sort"] = json!(sort);
                } else {
                    hit["_score"] = json!(1.0);
                }
                hits.push((sort, hit));
            }
        }
        let shards =
            json!({"total": names.len(), "successful": names.len(), "skipped": 0, "failed": 0});
        if count_only {
            return Reply::ok(&json!({"count": hits.len(), "_shards": shards}));
        }
        let total = hits.len();
        if !body.sort.is_empty() {
            hits.sort_by(|(a, _), (b, _)| compare_sort(&body.sort, a, b));
        }
        if let Some(after) = &body.search_after {
            hits.retain(|(values, _)| {
                compare_sort(&body.sort, values, after) == std::cmp::Ordering::Greater
            });
        }
        let page: Vec<Value> = hits
            .into_iter()
            .skip(body.from)
            .take(body.size)
            .map(|(_, hit)| hit)
            .collect();
        let max_score = if page.is_empty() || !body.sort.is_empty() {
            Value::Null
        } else {
            json!(1.0)
        };
        Reply::ok(&json!({
            "took": 1,
            "timed_out": false,
            "_shards": shards,
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": max_score,
                "hits": page,
            },
        }))
    }

    fn get_doc(&self, index: &str, id: &str) -> Reply {
        let Some(found) = self.indices.get(index) else {
            return index_not_found(index);
        };
        match found.docs.get(id) {
            Some(doc) => Reply::ok(&json!({
                "_index": index,
                "_id": id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": true,
                "_source": doc.source,
            })),
            None => Reply::json(404, &json!({"_index": index, "_id": id, "found": false})),
        }
    }
}

/// One `sort` key of a search body.
struct SortKey {
    field: String,
    descending: bool,
}

/// What a `_search` body (or the query string) asks for.
struct SearchBody {
    size: usize,
    from: usize,
    sort: Vec<SortKey>,
    search_after: Option<Vec<Value>>,
    /// `range` on one field; `None`: match all.
    range: Option<Range>,
    /// `exists` filters (in a `bool` query's `filter`): fields a hit has.
    exists: Vec<String>,
    source: bool,
}

impl SearchBody {
    fn parse(request: &RecordedRequest, count_only: bool) -> Result<Self, Reply> {
        let number = |name: &str, default: usize| {
            request
                .query_param(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let mut body = SearchBody {
            size: number("size", 10),
            from: number("from", 0),
            sort: Vec::new(),
            search_after: None,
            range: None,
            exists: Vec::new(),
            source: true,
        };
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(body);
        }
        let parsing = |reason: String| Reply::bad_request("parsing_exception", &reason);
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&request.body) else {
            return Err(parsing(
                "request body is required to be a JSON object".into(),
            ));
        };
        for (key, value) in &object {
            match (key.as_str(), count_only) {
                ("query", _) => {
                    (body.range, body.exists) = parse_search_query(value).map_err(parsing)?
                }
                ("size", false) => body.size = as_count(value, "size").map_err(parsing)?,
                ("from", false) => body.from = as_count(value, "from").map_err(parsing)?,
                ("track_total_hits", false) => {}
                ("_source", false) => body.source = value.as_bool().unwrap_or(true),
                ("sort", false) => body.sort = parse_sort(value).map_err(parsing)?,
                ("search_after", false) => match value {
                    Value::Array(values) => body.search_after = Some(values.clone()),
                    _ => return Err(parsing("[search_after] must be an array".into())),
                },
                _ => {
                    return Err(parsing(format!(
                        "Unknown key for a {} in [{key}].",
                        if value.is_object() {
                            "START_OBJECT"
                        } else {
                            "VALUE"
                        }
                    )));
                }
            }
        }
        if let Some(after) = &body.search_after {
            let illegal =
                |reason: String| Reply::bad_request("illegal_argument_exception", &reason);
            if after.len() != body.sort.len() {
                return Err(illegal(format!(
                    "search_after has {} value(s) but sort has {}.",
                    after.len(),
                    body.sort.len()
                )));
            }
            if body.from > 0 {
                return Err(illegal(
                    "`from` parameter must be set to 0 when `search_after` is used.".into(),
                ));
            }
        }
        if body.from + body.size > 10_000 {
            return Err(Reply::bad_request(
                "illegal_argument_exception",
                &format!(
                    "Result window is too large, from + size must be less than or equal to: [10000] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
                    body.from + body.size
                ),
            ));
        }
        Ok(body)
    }

    fn matches(&self, source: &Value) -> bool {
        if self
            .exists
            .iter()
            .any(|field| field_value(source, field).is_none_or(Value::is_null))
        {
            return false;
        }
        let Some((field, bounds)) = &self.range else {
            return true;
        };
        let Some(value) = field_value(source, field).and_then(date_or_number) else {
            return false;
        };
        bounds.iter().all(|(op, bound)| {
            let Some(bound) = date_or_number(bound) else {
                return false;
            };
            match op.as_str() {
                "gte" => value >= bound,
                "gt" => value > bound,
                "lte" => value <= bound,
                _ => value < bound,
            }
        })
    }
}

fn as_count(value: &Value, key: &str) -> Result<usize, String> {
    value
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("[{key}] must be a non-negative number"))
}

/// `{"match_all":{}}` or `{"range":{"field":{"gte":…,"lt":…}}}`.
/// A `range` query: the field, and `(gte|gt|lte|lt, bound)` pairs.
type Range = (String, Vec<(String, Value)>);

/// A query: `match_all`, `range`, `exists`, or a `bool` whose `filter`
/// holds those (the subset export-index sends).
fn parse_search_query(query: &Value) -> Result<(Option<Range>, Vec<String>), String> {
    if let Some(inner) = query
        .get("bool")
        .filter(|_| query.as_object().is_some_and(|o| o.len() == 1))
    {
        let Some(object) = inner.as_object() else {
            return Err("[bool] query malformed".into());
        };
        let (mut range, mut exists) = (None, Vec::new());
        for (clause, value) in object {
            if clause != "filter" {
                return Err(format!(
                    "[bool] query clause [{clause}] is not supported by the fake"
                ));
            }
            let filters = match value {
                Value::Array(filters) => filters.clone(),
                other => vec![other.clone()],
            };
            for filter in filters {
                let (r, e) = parse_search_query(&filter)?;
                if r.is_some() {
                    range = r;
                }
                exists.extend(e);
            }
        }
        return Ok((range, exists));
    }
    if let Some(inner) = query
        .get("exists")
        .filter(|_| query.as_object().is_some_and(|o| o.len() == 1))
    {
        let Some(field) = inner.get("field").and_then(Value::as_str) else {
            return Err("[exists] must be provided with a [field]".into());
        };
        return Ok((None, vec![field.to_owned()]));
    }
    parse_range(query).map(|range| (range, Vec::new()))
}

fn parse_range(query: &Value) -> Result<Option<Range>, String> {
    let Some(object) = query.as_object().filter(|o| o.len() == 1) else {
        return Err("query malformed, must be an object with one query".into());
    };
    let (kind, inner) = object.iter().next().expect("one entry");
    match kind.as_str() {
        "match_all" => Ok(None),
        "range" => {
            let Some((field, bounds)) = inner
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.iter().next())
            else {
                return Err("[range] query malformed".into());
            };
            let mut parsed = Vec::new();
            for (op, bound) in bounds.as_object().into_iter().flatten() {
                if !["gte", "gt", "lte", "lt"].contains(&op.as_str()) {
                    return Err(format!("[range] query does not support [{op}]"));
                }
                parsed.push((op.clone(), bound.clone()));
            }
            Ok(Some((field.clone(), parsed)))
        }
        other => Err(format!("unknown query [{other}]")),
    }
}

/// `["f", {"f": "asc"}, {"f": {"order": "desc", "unmapped_type": "keyword"}}]`.
fn parse_sort(sort: &Value) -> Result<Vec<SortKey>, String> {
    let entries = match sort {
        Value::Array(entries) => entries.clone(),
        other => vec![other.clone()],
    };
    let mut keys = Vec::new();
    for entry in entries {
        let (field, order) = match &entry {
            Value::String(field) => (field.clone(), "asc".to_owned()),
            Value::Object(object) if object.len() == 1 => {
                let (field, spec) = object.iter().next().expect("one entry");
                let order = match spec {
                    Value::String(order) => order.clone(),
                    Value::Object(options) => {
                        for option in options.keys() {
                            if !["order", "unmapped_type", "missing", "format"]
                                .contains(&option.as_str())
                            {
                                return Err(format!("[field_sort] unknown field [{option}]"));
                            }
                        }
                        options
                            .get("order")
                            .and_then(Value::as_str)
                            .unwrap_or("asc")
                            .to_owned()
                    }
                    _ => return Err(format!("malformed sort for [{field}]")),
                };
                (field.clone(), order)
            }
            _ => return Err("malformed sort format".into()),
        };
        if field == "_id" {
            return Err("Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled".into());
        }
        if order != "asc" && order != "desc" {
            return Err(format!("Unknown SortOrder [{order}]"));
        }
        keys.push(SortKey {
            field,
            descending: order == "desc",
        });
    }
    Ok(keys)
}

/// A dotted field of a source (`http.docker_hub.name`); `x.keyword` reads
/// `x`, as dynamic mapping's keyword sub-field holds the same value.
fn field_value<'a>(source: &'a Value, field: &str) -> Option<&'a Value> {
    let lookup = |path: &str| {
        let mut at = source;
        for part in path.split('.') {
            at = at.get(part)?;
        }
        Some(at)
    };
    lookup(field).or_else(|| field.strip_suffix(".keyword").and_then(lookup))
}

/// A range bound or field as a comparable number: epoch millis for a date.
fn date_or_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as f64)
        }
        _ => None,
    }
}

/// The sort value Elasticsearch returns: epoch millis for a date field
/// (`@timestamp`, or mapped `date`), the value itself otherwise, `null`
/// when missing.
fn sort_value(mappings: &Value, source: &Value, field: &str) -> Value {
    let Some(value) = field_value(source, field) else {
        return Value::Null;
    };
    let mut mapping = mappings;
    for part in field.split('.') {
        mapping = &mapping["properties"][part];
    }
    let is_date = field == "@timestamp" || mapping["type"] == "date";
    match (is_date, value) {
        (true, Value::String(_)) => date_or_number(value)
            .map(|millis| json!(millis as i64))
            .unwrap_or(Value::Null),
        _ => value.clone(),
    }
}

/// Compares two hits' sort values; missing (`null`) values last.
fn compare_sort(keys: &[SortKey], a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (i, key) in keys.iter().enumerate() {
        let (x, y) = (&a[i], &b[i]);
        let ordering = match (x, y) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => return Ordering::Greater,
            (_, Value::Null) => return Ordering::Less,
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (x, y) => x.to_string().cmp(&y.to_string()),
        };
        let ordering = if key.descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Index,
    Create,
    Delete,
    Update,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Update => "update",
        }
    }
}

struct BulkItem<'a> {
    op: Op,
    index: Option<String>,
    id: Option<String>,
    pipeline: Option<String>,
    source: Option<&'a str>,
}

/// Parameters `_bulk` accepts; anything else is refused like Elasticsearch.
const BULK_PARAMS: &[&str] = &[
    "pipeline",
    "filter_path",
    "refresh",
    "routing",
    "timeout",
    "wait_for_active_shards",
    "require_alias",
    "require_data_stream",
    "list_executed_pipelines",
    "include_source_on_error",
    "_source",
    "_source_includes",
    "_source_excludes",
    "pretty",
    "human",
    "error_trace",
];

/// Action-line parameters `BulkRequestParser` knows.
const ACTION_PARAMS: &[&str] = &[
    "_index",
    "_id",
    "routing",
    "op_type",
    "version",
    "version_type",
    "if_seq_no",
    "if_primary_term",
    "retry_on_conflict",
    "pipeline",
    "_source",
    "require_alias",
    "require_data_stream",
    "dynamic_templates",
    "list_executed_pipelines",
];

fn token_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Splits the NDJSON body into items, failing the whole request the way
/// `BulkRequestParser` does.
fn parse_bulk<'a>(body: &'a str, url_index: Option<&str>) -> Result<Vec<BulkItem<'a>>, Reply> {
    let malformed = |reason: String| Reply::bad_request("illegal_argument_exception", &reason);
    // The caller checked the final newline; the text after it is empty.
    let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() {
            continue;
        }
        let action: Value = serde_json::from_str(line).map_err(|e| {
            Reply::bad_request(
                "x_content_parse_exception",
                &format!("[1:{}] {e}", e.column()),
            )
        })?;
        let Value::Object(action) = action else {
            return Err(malformed(format!(
                "Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{}]",
                token_name(&action)
            )));
        };
        let Some((name, params)) = action.iter().next() else {
            return Err(malformed(format!(
                "Malformed action/metadata line [{line_no}], expected FIELD_NAME but found [END_OBJECT]"
            )));
        };
        let mut op = match name.as_str() {
            "index" => Op::Index,
            "create" => Op::Create,
            "delete" => Op::Delete,
            "update" => Op::Update,
            other => {
                return Err(malformed(format!(
                    "Malformed action/metadata line [{line_no}], expected one of [create, delete, index, update] but found [{other}]"
                )));
            }
        };
        if action.len() > 1 {
            return Err(malformed(format!(
                "Malformed action/metadata line [{line_no}], expected END_OBJECT but found [FIELD_NAME]"
            )));
        }
        let Value::Object(params) = params else {
            return Err(malformed(format!(
                "Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{}]",
                token_name(params)
            )));
        };
        let mut item = BulkItem {
            op,
            index: url_index.map(str::to_owned),
            id: None,
            pipeline: None,
            source: None,
        };
        for (key, value) in params {
            if !ACTION_PARAMS.contains(&key.as_str()) {
                return Err(malformed(format!(
                    "Action/metadata line [{line_no}] contains an unknown parameter [{key}]"
                )));
            }
            let complex_allowed = matches!(key.as_str(), "dynamic_templates" | "_source");
            if (value.is_object() || value.is_array()) && !complex_allowed {
                return Err(malformed(format!(
                    "Malformed action/metadata line [{line_no}], expected a simple value for field [{key}] but found [{}]",
                    token_name(value)
                )));
            }
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            match key.as_str() {
                "_index" => item.index = text,
                "_id" => item.id = text,
                "pipeline" => item.pipeline = text,
                "op_type" if op == Op::Index => match text.as_deref() {
                    Some("create") => op = Op::Create,
                    Some("index") | None => {}
                    Some(other) => {
                        return Err(malformed(format!(
                            "opType must be 'create' or 'index', found: [{other}]"
                        )));
                    }
                },
                _ => {}
            }
        }
        item.op = op;
        if op != Op::Delete {
            // `BulkRequestParser` stops at an action whose source line is missing.
            let Some(source) = lines.get(i) else {
                break;
            };
            item.source = Some(source);
            i += 1;
        }
        items.push(item);
    }
    Ok(items)
}

/// `ActionRequestValidationException` for the whole request.
fn validate_items(items: &[BulkItem<'_>]) -> Result<(), Reply> {
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push("no requests added".to_owned());
    }
    for item in items {
        if item.index.is_none() {
            errors.push("index is missing".to_owned());
        }
        match (&item.id, item.op) {
            (None, Op::Delete | Op::Update) => errors.push("id is missing".to_owned()),
            (Some(id), _) if id.is_empty() => {
                errors.push("if _id is specified it must not be empty".to_owned());
            }
            (Some(id), _) if id.len() > 512 => errors.push(format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            )),
            _ => {}
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let listed: String = errors
        .iter()
        .enumerate()
        .map(|(n, e)| format!("{}: {e};", n + 1))
        .collect();
    Err(Reply::bad_request(
        "action_request_validation_exception",
        &format!("Validation Failed: {listed}"),
    ))
}

/// Why an index name is invalid (`MetadataCreateIndexService`), if it is.
fn invalid_index_name(name: &str) -> Option<String> {
    const INVALID: [char; 10] = ['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ','];
    let problem = if name.contains(INVALID) {
        "must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]".to_owned()
    } else if name.contains('#') {
        "must not contain '#'".to_owned()
    } else if name.contains(':') {
        "must not contain ':'".to_owned()
    } else if name.starts_with(['_', '-', '+']) {
        "must not start with '_', '-', or '+'".to_owned()
    } else if name.len() > 255 {
        format!("index name is too long, ({} > 255)", name.len())
    } else if name == "." || name == ".." {
        "must not be '.' or '..'".to_owned()
    } else if name.to_lowercase() != name {
        "must be lowercase".to_owned()
    } else {
        return None;
    };
    Some(format!("Invalid index name [{name}], {problem}"))
}

/// A setting from template/index settings, in any of the forms Elasticsearch
/// accepts (`{"index":{"a":{"b":..}}}`, `{"index.a.b":..}`, `{"a.b":..}`).
fn setting<'a>(settings: &'a Value, key: &str) -> Option<&'a Value> {
    fn lookup<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
        let object = value.as_object()?;
        if let Some(found) = object.get(dotted) {
            return Some(found);
        }
        dotted
            .match_indices('.')
            .find_map(|(at, _)| lookup(object.get(&dotted[..at])?, &dotted[at + 1..]))
    }
    lookup(settings, &format!("index.{key}")).or_else(|| lookup(settings, key))
}

fn setting_bool(settings: &Value, key: &str) -> Option<bool> {
    match setting(settings, key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// The outcome of one bulk item: its status and either success fields or an
/// `error` object.
struct ItemOutcome {
    status: u16,
    fields: Map<String, Value>,
}

impl ItemOutcome {
    fn error(status: u16, error: Value) -> Self {
        let mut fields = Map::new();
        fields.insert("error".into(), error);
        Self { status, fields }
    }

    /// An error raised before any shard was involved (ingest, rejection).
    fn coordinating(status: u16, error_type: &str, reason: &str) -> Self {
        Self::error(status, json!({"type": error_type, "reason": reason}))
    }
}

impl EsState {
    fn bulk(
        &mut self,
        request: &RecordedRequest,
        url_index: Option<&str>,
        principal: &Principal,
        started: Instant,
    ) -> Reply {
        let params = parse_query(&request.query);
        let unknown: Vec<String> = params
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !BULK_PARAMS.contains(&k.as_str()))
            .map(|k| format!("[{k}]"))
            .collect();
        if !unknown.is_empty() {
            let noun = if unknown.len() == 1 {
                "parameter"
            } else {
                "parameters"
            };
            return Reply::bad_request(
                "illegal_argument_exception",
                &format!(
                    "request [{}] contains unrecognized {noun}: {}",
                    request.path,
                    unknown.join(", ")
                ),
            );
        }
        if let Some(refresh) = request.query_param("refresh")
            && !matches!(refresh.as_str(), "" | "true" | "false" | "wait_for")
        {
            return Reply::bad_request(
                "illegal_argument_exception",
                &format!("Unknown value for refresh: [{refresh}]."),
            );
        }
        if let Err(reply) =
            check_content_type(request).and_then(|()| check_content_encoding(request))
        {
            return reply;
        }
        if request.body.is_empty() {
            return Reply::bad_request("parse_exception", "request body is required");
        }
        if request.body.last() != Some(&b'\n') {
            return Reply::bad_request(
                "illegal_argument_exception",
                r"The bulk request must be terminated by a newline [\n]",
            );
        }
        let Ok(body) = std::str::from_utf8(&request.body) else {
            return Reply::bad_request(
                "x_content_parse_exception",
                "[1:1] Invalid UTF-8 in the bulk request body",
            );
        };
        let items = match parse_bulk(body, url_index) {
            Ok(items) => items,
            Err(reply) => return reply,
        };
        if let Err(reply) = validate_items(&items) {
            return reply;
        }

        let url_pipeline = request.query_param("pipeline");
        let truncate = std::mem::take(&mut self.faults.truncate_next);
        let processed = if truncate {
            items.len() / 2
        } else {
            items.len()
        };
        let mut used_ingest = false;
        let mut errors = truncate;
        let mut results = Vec::with_capacity(processed);
        for item in &items[..processed] {
            let index = item.index.clone().unwrap_or_default();
            let outcome = self.bulk_item(
                item,
                &index,
                url_pipeline.as_deref(),
                principal,
                &mut used_ingest,
            );
            errors |= outcome.status >= 300 && !(item.op == Op::Delete && outcome.status == 404);
            let mut entry = Map::new();
            entry.insert("_index".into(), Value::String(index));
            let id = outcome
                .fields
                .get("_id")
                .cloned()
                .unwrap_or_else(|| item.id.clone().map_or(Value::Null, Value::String));
            entry.insert("_id".into(), id);
            entry.extend(outcome.fields);
            entry.insert("status".into(), outcome.status.into());
            results.push(json!({ item.op.name(): entry }));
        }

        let mut response = Map::new();
        response.insert("took".into(), (started.elapsed().as_millis() as u64).into());
        if used_ingest {
            response.insert("ingest_took".into(), 0.into());
        }
        response.insert("errors".into(), errors.into());
        response.insert("items".into(), Value::Array(results));
        let mut reply = Reply::ok(&Value::Object(response));
        if self.faults.drop_after_bulk > 0 {
            self.faults.drop_after_bulk -= 1;
            reply.drop_connection = true;
        }
        reply
    }

    fn bulk_item(
        &mut self,
        item: &BulkItem<'_>,
        index: &str,
        url_pipeline: Option<&str>,
        principal: &Principal,
        used_ingest: &mut bool,
    ) -> ItemOutcome {
        if let Some(id) = &item.id
            && let Some(fault) = self.faults.items.get_mut(id)
            && fault.remaining > 0
        {
            fault.remaining -= 1;
            return ItemOutcome::coordinating(fault.status, &fault.error_type, &fault.reason);
        }
        if let Some(reason) = invalid_index_name(index) {
            return ItemOutcome::error(
                400,
                json!({
                    "type": "invalid_index_name_exception",
                    "reason": reason,
                    "index_uuid": "_na_",
                    "index": index,
                }),
            );
        }
        match item.op {
            Op::Update => {
                return ItemOutcome::coordinating(
                    400,
                    "illegal_argument_exception",
                    "the fake Elasticsearch does not implement the bulk [update] action",
                );
            }
            Op::Delete => {
                if let Some(denied) = self.write_denial(index, principal) {
                    return denied;
                }
                return self.delete_item(index, item.id.as_deref().unwrap_or_default());
            }
            Op::Index | Op::Create => {}
        }

        let raw = item.source.unwrap_or_default();
        let mut source: Value = match serde_json::from_str(raw) {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(other) => {
                return ItemOutcome::coordinating(
                    400,
                    "document_parsing_exception",
                    &format!(
                        "[1:1] failed to parse: expected START_OBJECT but found [{}]",
                        token_name(&other)
                    ),
                );
            }
            Err(_) if raw.trim().is_empty() => {
                return ItemOutcome::coordinating(
                    400,
                    "document_parsing_exception",
                    "failed to parse, document is empty",
                );
            }
            Err(e) => {
                return ItemOutcome::coordinating(
                    400,
                    "document_parsing_exception",
                    &format!("[1:{}] failed to parse: {e}", e.column()),
                );
            }
        };

        // Pipelines: the request's (action line, then URL), else the index
        // default; `_none` disables; the final pipeline always runs.
        let settings = self.effective_settings(index);
        let requested = item.pipeline.as_deref().or(url_pipeline);
        let default = setting(&settings, "default_pipeline").and_then(Value::as_str);
        let first = match requested.or(default) {
            Some("_none") | None => None,
            Some(name) => Some(name.to_owned()),
        };
        let last = setting(&settings, "final_pipeline")
            .and_then(Value::as_str)
            .filter(|p| *p != "_none")
            .map(str::to_owned);
        for name in first.into_iter().chain(last) {
            *used_ingest = true;
            let Some(definition) = self.pipelines.get(&name) else {
                return ItemOutcome::coordinating(
                    400,
                    "illegal_argument_exception",
                    &format!("pipeline with id [{name}] does not exist"),
                );
            };
            if let Err(failed) = ingest::run_pipeline_traced(definition, &mut source) {
                return self.ingest_failure(failed);
            }
        }

        // Then, as `TransportBulkAction` does after ingest: create the index
        // if it is missing (authorized first, then `action.auto_create_index`),
        // and only then the shard-level write, authorized per index.
        if !self.indices.contains_key(index) {
            if self.config.creation_denied {
                return ItemOutcome::coordinating(
                    403,
                    "security_exception",
                    &index_denial(AUTO_CREATE_ACTION, principal, index, AUTO_CREATE_PRIVILEGES),
                );
            }
            if let Some((reason, resource)) = self.auto_create_refusal(index) {
                return ItemOutcome::error(
                    404,
                    json!({
                        "type": "index_not_found_exception",
                        "reason": reason,
                        "index_uuid": "_na_",
                        "index": resource,
                    }),
                );
            }
        }
        self.ensure_index(index);
        if let Some(denied) = self.write_denial(index, principal) {
            return denied;
        }
        let coerce_default = self.config.coerce;
        let state = self.indices.get_mut(index).expect("index just ensured");
        let shard_error = |error_type: &str, reason: &str| {
            json!({
                "type": error_type,
                "reason": reason,
                "index_uuid": state.uuid,
                "shard": "0",
                "index": index,
            })
        };
        let id = item.id.clone().unwrap_or_else(|| random_id(20));
        let coerce = setting_bool(&state.settings, "mapping.coerce").unwrap_or(coerce_default);
        if let Err(failure) = check_mapping(&state.mappings, &source, &id, coerce) {
            let mut error = shard_error(&failure.error_type, &failure.reason);
            if let Some(cause) = failure.caused_by {
                error["caused_by"] = cause;
            }
            return ItemOutcome::error(400, error);
        }
        let existing = state.docs.get(&id).map(|d| d.version);
        if item.op == Op::Create
            && let Some(version) = existing
        {
            return ItemOutcome::error(
                409,
                shard_error(
                    "version_conflict_engine_exception",
                    &format!(
                        "[{id}]: version conflict, document already exists (current version [{version}])"
                    ),
                ),
            );
        }
        let version = existing.map_or(1, |v| v + 1);
        let seq_no = state.next_seq_no;
        state.next_seq_no += 1;
        if existing.is_none() {
            state.order.push(id.clone());
        }
        state.docs.insert(
            id.clone(),
            StoredDoc {
                source,
                version,
                seq_no,
            },
        );
        let (result, status) = if existing.is_some() {
            ("updated", 200)
        } else {
            ("created", 201)
        };
        let mut fields = Map::new();
        fields.insert("_id".into(), Value::String(id));
        fields.insert("_version".into(), version.into());
        fields.insert("result".into(), result.into());
        fields.insert(
            "_shards".into(),
            json!({"total": 2, "successful": 1, "failed": 0}),
        );
        fields.insert("_seq_no".into(), seq_no.into());
        fields.insert("_primary_term".into(), 1.into());
        ItemOutcome { status, fields }
    }

    /// The 403 of an item whose index the credentials may not write to.
    fn write_denial(&self, index: &str, principal: &Principal) -> Option<ItemOutcome> {
        self.config
            .write_denied
            .iter()
            .any(|pattern| simple_match(pattern, index))
            .then(|| {
                ItemOutcome::coordinating(
                    403,
                    "security_exception",
                    &index_denial(BULK_SHARD_ACTION, principal, index, WRITE_PRIVILEGES),
                )
            })
    }

    /// `AutoCreateIndex.shouldAutoCreate` for an index that does not exist:
    /// `None` when it may be created, else the `IndexNotFoundException`'s
    /// reason and the index it names. A matching composable template's
    /// `allow_auto_create` wins over `action.auto_create_index`.
    fn auto_create_refusal(&self, index: &str) -> Option<(String, String)> {
        if let Some(template) = self.matching_template(index)
            && let Some(allowed) = template["allow_auto_create"].as_bool()
        {
            if allowed {
                return None;
            }
            let patterns: Vec<String> = template["index_patterns"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            // `new IndexNotFoundException(String)` takes the whole text as
            // the index name, so it lands in both the reason and `index`.
            let resource = format!(
                "composable template {} forbids index auto creation",
                java_string_list(&patterns)
            );
            return Some((format!("no such index [{resource}]"), resource));
        }
        let setting = self.config.auto_create_index.as_str();
        let refusal = |detail: String| {
            Some((
                format!("no such index [{index}] and {detail}"),
                index.to_owned(),
            ))
        };
        match setting {
            "true" => None,
            "false" => refusal("[action.auto_create_index] is [false]".to_owned()),
            patterns => {
                for pattern in patterns.split(',').map(str::trim) {
                    let (include, pattern) = match pattern.as_bytes().first() {
                        Some(b'-') => (false, &pattern[1..]),
                        Some(b'+') => (true, &pattern[1..]),
                        _ => (true, pattern),
                    };
                    if simple_match(pattern, index) {
                        return if include {
                            None
                        } else {
                            refusal(format!(
                                "[action.auto_create_index] contains [-{pattern}] which forbids automatic creation of the index"
                            ))
                        };
                    }
                }
                refusal(format!(
                    "[action.auto_create_index] ([{setting}]) doesn't match"
                ))
            }
        }
    }

    /// A bulk item the ingest pipeline failed, reported the configured way.
    fn ingest_failure(&self, failed: ingest::PipelineFailure) -> ItemOutcome {
        let own = || ItemOutcome::error(failed.failure.status(), failed.failure.to_json());
        match (self.config.ingest_errors, &failed.processor_type) {
            (IngestErrors::Unwrapped, _) | (IngestErrors::Wrapped500, None) => own(),
            (IngestErrors::Wrapped500, Some(processor_type)) => {
                // `new ElasticsearchException(new IllegalArgumentException(e))`:
                // each wrapper's message is its cause's `toString()`.
                let inner = failed.failure.java_to_string();
                let mut header = Map::new();
                header.insert("processor_type".into(), processor_type.clone().into());
                if let Some(tag) = &failed.processor_tag {
                    header.insert("processor_tag".into(), tag.clone().into());
                }
                ItemOutcome::error(
                    500,
                    json!({
                        "type": "exception",
                        "reason": format!("java.lang.IllegalArgumentException: {inner}"),
                        "caused_by": {
                            "type": "illegal_argument_exception",
                            "reason": inner,
                            "caused_by": failed.failure.to_json(),
                        },
                        "header": header,
                    }),
                )
            }
        }
    }

    fn delete_item(&mut self, index: &str, id: &str) -> ItemOutcome {
        let Some(state) = self.indices.get_mut(index) else {
            return ItemOutcome::error(
                404,
                json!({
                    "type": "index_not_found_exception",
                    "reason": format!("no such index [{index}]"),
                    "resource.type": "index_expression",
                    "resource.id": index,
                    "index_uuid": "_na_",
                    "index": index,
                }),
            );
        };
        let seq_no = state.next_seq_no;
        state.next_seq_no += 1;
        let (version, result, status) = match state.docs.remove(id) {
            Some(doc) => {
                state.order.retain(|d| d != id);
                (doc.version + 1, "deleted", 200)
            }
            None => (1, "not_found", 404),
        };
        let mut fields = Map::new();
        fields.insert("_version".into(), version.into());
        fields.insert("result".into(), result.into());
        fields.insert(
            "_shards".into(),
            json!({"total": 2, "successful": 1, "failed": 0}),
        );
        fields.insert("_seq_no".into(), seq_no.into());
        fields.insert("_primary_term".into(), 1.into());
        ItemOutcome { status, fields }
    }

    /// The settings an index has, or would get from its template.
    fn effective_settings(&self, index: &str) -> Value {
        match self.indices.get(index) {
            Some(existing) => existing.settings.clone(),
            None => self
                .matching_template(index)
                .and_then(|t| t["template"].get("settings"))
                .cloned()
                .unwrap_or_else(|| json!({})),
        }
    }

    /// `PUT /{index}`: explicit creation, the body's `mappings` and
    /// `settings` taking precedence over the matching template's.
    fn create_index_request(&mut self, request: &RecordedRequest, index: &str) -> Reply {
        let body = if request.body.is_empty() {
            json!({})
        } else {
            match json_body(request) {
                Ok(body) => body,
                Err(reply) => return reply,
            }
        };
        if let Some(reason) = invalid_index_name(index) {
            let mut extra = Map::new();
            extra.insert("index_uuid".into(), "_na_".into());
            extra.insert("index".into(), index.into());
            return Reply::error_with(400, "invalid_index_name_exception", &reason, extra);
        }
        if let Some(existing) = self.indices.get(index) {
            let mut extra = Map::new();
            extra.insert("index_uuid".into(), existing.uuid.clone().into());
            extra.insert("index".into(), index.into());
            return Reply::error_with(
                400,
                "resource_already_exists_exception",
                &format!("index [{index}/{}] already exists", existing.uuid),
                extra,
            );
        }
        self.ensure_index(index);
        let created = self.indices.get_mut(index).expect("index just created");
        for (key, slot) in [
            ("mappings", &mut created.mappings),
            ("settings", &mut created.settings),
        ] {
            if let Some(value) = body.get(key) {
                *slot = value.clone();
            }
        }
        Reply::ok(&json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
    }

    /// Auto-creates an index, taking mappings and settings from the matching
    /// template at that moment.
    fn ensure_index(&mut self, index: &str) {
        if self.indices.contains_key(index) {
            return;
        }
        let template = self.matching_template(index).map(|t| &t["template"]);
        let pick = |key: &str| {
            template
                .and_then(|t| t.get(key))
                .cloned()
                .unwrap_or_else(|| json!({}))
        };
        let (mappings, settings) = (pick("mappings"), pick("settings"));
        self.indices.insert(
            index.to_owned(),
            Index {
                uuid: random_id(22),
                order: Vec::new(),
                docs: HashMap::new(),
                next_seq_no: 0,
                mappings,
                settings,
            },
        );
        self.index_order.push(index.to_owned());
    }
}

// ---------------------------------------------------------------------------
// Mapping checks
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dynamic {
    On,
    Strict,
}

fn dynamic_of(mapping: &Value, inherited: Dynamic) -> Dynamic {
    match &mapping["dynamic"] {
        Value::String(s) if s == "strict" => Dynamic::Strict,
        Value::Null => inherited,
        _ => Dynamic::On,
    }
}

fn is_object_mapping(mapping: &Value) -> bool {
    match mapping["type"].as_str() {
        None => true,
        Some(t) => t == "object" || t == "nested",
    }
}

/// Why the shard refused a document: the `error` object's `type` and
/// `reason`, and its `caused_by` where Elasticsearch has one.
struct MappingFailure {
    error_type: String,
    reason: String,
    caused_by: Option<Value>,
}

impl MappingFailure {
    fn new(error_type: &str, reason: String) -> Self {
        Self {
            error_type: error_type.to_owned(),
            reason,
            caused_by: None,
        }
    }
}

/// Checks a document against explicit mappings: strict dynamic mapping,
/// objects versus concrete values, and the value types of numeric, date and
/// boolean fields, failing like the shard would.
fn check_mapping(
    mappings: &Value,
    doc: &Value,
    id: &str,
    coerce: bool,
) -> Result<(), MappingFailure> {
    let Value::Object(fields) = doc else {
        return Ok(());
    };
    let dynamic = dynamic_of(mappings, Dynamic::On);
    check_object(fields, mappings, dynamic, "", id, coerce)
}

fn check_object(
    fields: &Map<String, Value>,
    mapping: &Value,
    dynamic: Dynamic,
    prefix: &str,
    id: &str,
    coerce: bool,
) -> Result<(), MappingFailure> {
    for (key, value) in fields {
        // A dotted key is the same as nested objects.
        let segments: Vec<&str> = key.split('.').collect();
        check_field(&segments, value, mapping, dynamic, prefix, id, coerce)?;
    }
    Ok(())
}

fn check_field(
    segments: &[&str],
    value: &Value,
    parent: &Value,
    dynamic: Dynamic,
    prefix: &str,
    id: &str,
    coerce: bool,
) -> Result<(), MappingFailure> {
    let name = segments[0];
    let full = if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    };
    let Some(child) = parent["properties"].get(name) else {
        if dynamic == Dynamic::Strict {
            let within = if prefix.is_empty() { "_doc" } else { prefix };
            return Err(MappingFailure::new(
                "strict_dynamic_mapping_exception",
                format!(
                    "mapping set to strict, dynamic introduction of [{name}] within [{within}] is not allowed"
                ),
            ));
        }
        return Ok(());
    };
    let child_dynamic = dynamic_of(child, dynamic);
    if segments.len() > 1 {
        if !is_object_mapping(child) {
            return Err(MappingFailure::new(
                "document_parsing_exception",
                format!(
                    "Could not dynamically add mapping for field [{}]. Existing mapping for [{full}] must be of type object but found [{}].",
                    segments.join("."),
                    child["type"].as_str().unwrap_or_default()
                ),
            ));
        }
        return check_field(
            &segments[1..],
            value,
            child,
            child_dynamic,
            &full,
            id,
            coerce,
        );
    }
    let values: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    for value in values {
        match value {
            Value::Null => {}
            Value::Object(inner) if is_object_mapping(child) => {
                check_object(inner, child, child_dynamic, &full, id, coerce)?;
            }
            Value::Array(_) if is_object_mapping(child) => {}
            _ if is_object_mapping(child) => {
                return Err(MappingFailure::new(
                    "document_parsing_exception",
                    format!(
                        "object mapping for [{full}] tried to parse field [{name}] as object, but found a concrete value"
                    ),
                ));
            }
            leaf => {
                let field_type = child["type"].as_str().unwrap_or_default();
                let coerce = child["coerce"].as_bool().unwrap_or(coerce);
                if !leaf_accepts(field_type, leaf, coerce) {
                    let preview = match leaf {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    return Err(MappingFailure {
                        error_type: "document_parsing_exception".to_owned(),
                        reason: format!(
                            "failed to parse field [{full}] of type [{field_type}] in document with id '{id}'. Preview of field's value: '{preview}'"
                        ),
                        caused_by: number_parse_cause(field_type, leaf, coerce),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The `caused_by` of a refused numeric value, for the cases whose message
/// is known from the source: a string that is not a number (the XContent
/// parser's `toLong` for `long`, `Double.parseDouble` for the others) and a
/// numeric string out of a type's range. `None` when the fake does not know
/// the exact cause; the error then has no `caused_by`.
fn number_parse_cause(field_type: &str, value: &Value, coerce: bool) -> Option<Value> {
    let Value::String(text) = value else {
        return None;
    };
    if !coerce || text.trim().is_empty() {
        return None;
    }
    let number = text.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    let cause =
        |error_type: &str, reason: String| Some(json!({"type": error_type, "reason": reason}));
    match (field_type, number) {
        ("long", None) => cause(
            "illegal_argument_exception",
            format!("For input string: \"{text}\""),
        ),
        ("long", Some(_)) => cause(
            "illegal_argument_exception",
            format!("Value [{text}] is out of range for a long"),
        ),
        ("integer", Some(_)) => cause(
            "illegal_argument_exception",
            format!("Value [{text}] is out of range for an integer"),
        ),
        ("short", Some(_)) => cause(
            "illegal_argument_exception",
            format!("Value [{text}] is out of range for a short"),
        ),
        ("integer" | "short" | "byte" | "double" | "float" | "half_float", None) => cause(
            "number_format_exception",
            format!("For input string: \"{text}\""),
        ),
        _ => None,
    }
}

/// Whether a field of `field_type` accepts this (non-null) value.
fn leaf_accepts(field_type: &str, value: &Value, coerce: bool) -> bool {
    let integer_range = |min: i64, max: i64| -> bool {
        match value {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => (min..=max).contains(&i),
                (None, Some(_)) if n.is_u64() => false,
                (None, Some(f)) => {
                    (coerce || f.fract() == 0.0)
                        && f.trunc() >= min as f64
                        && f.trunc() <= max as f64
                }
                _ => false,
            },
            Value::String(s) if coerce => {
                let s = s.trim();
                s.parse::<i64>().is_ok_and(|i| (min..=max).contains(&i))
                    || s.parse::<f64>().is_ok_and(|f| {
                        f.is_finite() && f.trunc() >= min as f64 && f.trunc() <= max as f64
                    })
            }
            _ => false,
        }
    };
    match field_type {
        "long" => integer_range(i64::MIN, i64::MAX),
        "integer" => integer_range(i32::MIN.into(), i32::MAX.into()),
        "short" => integer_range(i16::MIN.into(), i16::MAX.into()),
        "byte" => integer_range(i8::MIN.into(), i8::MAX.into()),
        "unsigned_long" => match value {
            Value::Number(n) => n.is_u64() || (coerce && n.as_f64().is_some_and(|f| f >= 0.0)),
            Value::String(s) if coerce => s.trim().parse::<u64>().is_ok(),
            _ => false,
        },
        "double" | "float" | "half_float" | "scaled_float" => match value {
            Value::Number(_) => true,
            Value::String(s) if coerce => s.trim().parse::<f64>().is_ok(),
            _ => false,
        },
        "boolean" => {
            matches!(value, Value::Bool(_))
                || matches!(value, Value::String(s) if matches!(s.as_str(), "true" | "false" | ""))
        }
        "date" | "date_nanos" => match value {
            Value::Number(n) => n.is_i64() || n.is_u64(),
            Value::String(s) => is_default_date(s),
            _ => false,
        },
        "keyword" | "text" | "wildcard" | "match_only_text" | "constant_keyword" => {
            !value.is_object()
        }
        _ => true,
    }
}

/// `strict_date_optional_time||epoch_millis`, the default date format:
/// `yyyy-MM-dd['T'HH[:mm[:ss[.fraction]]]][Z|±HH[:]mm]` or epoch millis.
fn is_default_date(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return false;
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return false;
    }
    let Ok(month) = time::Month::try_from(month as u8) else {
        return false;
    };
    if time::Date::from_calendar_date(year as i32, month, day as u8).is_err() {
        return false;
    }
    let mut i = 10;
    if i == b.len() {
        return true;
    }
    if b[i] != b'T' {
        return false;
    }
    i += 1;
    for (n, limit) in [24, 60, 60].into_iter().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b':') {
                break;
            }
            i += 1;
        }
        match num(i, 2) {
            Some(v) if v < limit => i += 2,
            _ => return false,
        }
    }
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let rest = &s[i + 1..];
            let rest = rest.replacen(':', "", 1);
            rest.len() == 4 && rest.bytes().all(|c| c.is_ascii_digit())
        }
        Some(_) => false,
    }
}

// ---------------------------------------------------------------------------
// filter_path
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Segment {
    /// `**`: any number of levels, zero included.
    AnyDepth,
    /// A field name, possibly with `*` wildcards.
    Name(String),
}

impl Segment {
    fn matches(&self, name: &str) -> bool {
        match self {
            Segment::AnyDepth => true,
            Segment::Name(pattern) => simple_match(pattern, name),
        }
    }
}

/// Where the filter stands for a field name: fully matched, still matching
/// deeper (the states to continue from), or not matching at all.
enum Step {
    Matched,
    Partial(Vec<(usize, usize)>),
    NoMatch,
}

fn step(paths: &[Vec<Segment>], states: &[(usize, usize)], name: &str) -> Step {
    let mut next = Vec::new();
    for &(p, i) in states {
        let segments = &paths[p];
        match &segments[i] {
            Segment::AnyDepth => {
                if i + 1 == segments.len() {
                    return Step::Matched;
                }
                // `**` swallows this name and stays...
                next.push((p, i));
                // ...or matches nothing and the next segment takes the name.
                if segments[i + 1].matches(name) {
                    if i + 2 == segments.len() {
                        return Step::Matched;
                    }
                    next.push((p, i + 2));
                }
            }
            segment => {
                if segment.matches(name) {
                    if i + 1 == segments.len() {
                        return Step::Matched;
                    }
                    next.push((p, i + 1));
                }
            }
        }
    }
    next.sort_unstable();
    next.dedup();
    if next.is_empty() {
        Step::NoMatch
    } else {
        Step::Partial(next)
    }
}

/// Filters a value that a path is still partially matching. Objects and
/// arrays left empty by the filter vanish (`None`), as with the Jackson
/// filtering generator Elasticsearch uses; arrays are transparent (they do
/// not consume a path segment).
fn filter_node(
    value: &Value,
    paths: &[Vec<Segment>],
    states: &[(usize, usize)],
    inclusive: bool,
) -> Option<Value> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                match step(paths, states, key) {
                    Step::Matched => {
                        if inclusive {
                            out.insert(key.clone(), child.clone());
                        }
                    }
                    Step::NoMatch => {
                        if !inclusive {
                            out.insert(key.clone(), child.clone());
                        }
                    }
                    Step::Partial(next) => {
                        if let Some(filtered) = filter_node(child, paths, &next, inclusive) {
                            out.insert(key.clone(), filtered);
                        }
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items
                .iter()
                .filter_map(|item| filter_node(item, paths, states, inclusive))
                .collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        scalar => (!inclusive).then(|| scalar.clone()),
    }
}

fn filter_root(value: &Value, paths: &[Vec<Segment>], inclusive: bool) -> Value {
    let start: Vec<(usize, usize)> = (0..paths.len()).map(|p| (p, 0)).collect();
    filter_node(value, paths, &start, inclusive).unwrap_or_else(|| Value::Object(Map::new()))
}

/// Applies an Elasticsearch `filter_path` (`a.b,c.*.d,**.e,-f`) to a
/// response body: comma-separated paths, `*` within a field name, `**` for
/// any depth, a leading `-` to exclude. Includes are applied first, then
/// excludes. Whatever a filter empties disappears, including array elements,
/// which is why `filter_path=items.*.error` loses item positions; nothing
/// matching at all gives `{}`.
pub fn apply_filter_path(value: &Value, filter: &str) -> Value {
    let mut includes = Vec::new();
    let mut excludes = Vec::new();
    for expression in filter.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (target, expression) = match expression.strip_prefix('-') {
            Some(rest) => (&mut excludes, rest),
            None => (&mut includes, expression),
        };
        let segments: Vec<Segment> = expression
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "**" => Segment::AnyDepth,
                name => Segment::Name(name.to_owned()),
            })
            .collect();
        if !segments.is_empty() {
            target.push(segments);
        }
    }
    let mut result = value.clone();
    if !includes.is_empty() {
        result = filter_root(&result, &includes, true);
    }
    if !excludes.is_empty() {
        result = filter_root(&result, &excludes, false);
    }
    result
}
