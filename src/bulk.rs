//! Indexing: one `_bulk` request per run, and what to do with its answer.
//!
//! Every document is sent with `create` and an `_id` made of repository and
//! timestamp, so anything may be re-sent safely: a 409 means "already there".
//! Items that fail transiently (429, 5xx) are retried alone; items the ingest
//! pipeline fails are re-sent without it (documents arrive trimmed, so the
//! pipeline is only a fallback), whatever status the failure came with;
//! per-item 401/403/404 are refusals (privileges, index creation) that no
//! retry fixes this run; a whole-request 401/403 stops sending at once.
//! What Elasticsearch did not account for is handed back to the caller, which
//! spools it (see [`crate::spool`]).

use crate::config::EsSettings;
use crate::document::Document;
use crate::error::Error;
use crate::http::{ReadError, error_chain, read_capped, transport_reason};
use crate::retry::{self, Deadline};
use reqwest::{StatusCode, header};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Just enough of the response to match items to documents by position and
/// `_id`, and to explain failures. Successful items keep their `status`, so
/// positions are never lost (unlike `filter_path=items.*.error`).
/// `error.caused_by` says why a script or mapping failed;
/// `error.header.processor_type` marks an ingest processor's failure.
pub const FILTER_PATH: &str = "errors,items.*._id,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.type,items.*.error.caused_by.reason,items.*.error.header.processor_type";

/// Elasticsearch's default `http.max_content_length` is 100 MiB; staying at
/// 10 MiB keeps requests fast and well inside any proxy's limits.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Tunables of the bulk sink.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub request_timeout: Duration,
    /// Rounds of sending, the first included.
    pub max_rounds: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub max_body_bytes: usize,
    pub max_response_bytes: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_rounds: 6,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            max_body_bytes: MAX_BODY_BYTES,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One document ready for `_bulk`: its index, its `_id` and its source as
/// one line of JSON. Fresh documents and spooled ones take the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    pub index: String,
    pub id: String,
    pub source: String,
}

impl BulkEntry {
    pub fn new(index: &str, document: &Document) -> Self {
        Self {
            index: index.to_owned(),
            id: document.id(),
            // Serialising the document (strings and integers) cannot fail.
            source: serde_json::to_string(document).unwrap_or_default(),
        }
    }
}

#[derive(serde::Serialize, Deserialize)]
struct CreateAction<'a> {
    #[serde(borrow)]
    create: ActionMeta<'a>,
}

#[derive(serde::Serialize, Deserialize)]
struct ActionMeta<'a> {
    #[serde(rename = "_index", borrow)]
    index: std::borrow::Cow<'a, str>,
    #[serde(rename = "_id", borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// Appends one `create` action and its document, each line ending in `\n`.
pub fn encode_create(out: &mut Vec<u8>, entry: &BulkEntry) {
    let action = CreateAction {
        create: ActionMeta {
            index: entry.index.as_str().into(),
            id: entry.id.as_str().into(),
        },
    };
    // Serialising two strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &action);
    out.push(b'\n');
    out.extend_from_slice(entry.source.as_bytes());
    out.push(b'\n');
}

/// Reads NDJSON written by [`encode_create`] back into entries: pairs of a
/// `create` action naming `_index` and `_id`, and a JSON object.
pub fn decode_creates(body: &[u8]) -> Result<Vec<BulkEntry>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let mut entries = Vec::new();
    while let Some((number, action)) = lines.next() {
        let action: CreateAction = serde_json::from_str(action)
            .map_err(|e| format!("line {}: not a create action: {e}", number + 1))?;
        let Some((number, source)) = lines.next() else {
            return Err(format!("line {}: action without a document", number + 1));
        };
        match serde_json::from_str::<serde_json::Value>(source) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(format!("line {}: not a JSON object", number + 1)),
        }
        entries.push(BulkEntry {
            index: action.create.index.into_owned(),
            id: action.create.id.into_owned(),
            source: source.to_owned(),
        });
    }
    Ok(entries)
}

/// The typed bulk response (after [`FILTER_PATH`]).
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    #[serde(default)]
    pub errors: bool,
    #[serde(default)]
    pub items: Vec<ActionItem>,
}

/// One entry of `items`, `{"<action>": {…}}`: the item under its (first)
/// action name, `None` for an empty object. Read without building a map per
/// item, which made the parsed response of a 5,000-document run weigh
/// about 2 MB more than the documents themselves.
#[derive(Debug, Clone)]
pub struct ActionItem(pub Option<BulkItem>);

impl<'de> Deserialize<'de> for ActionItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ActionItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with the action's result")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ActionItem, A::Error> {
                let mut item = None;
                while let Some(serde::de::IgnoredAny) = map.next_key()? {
                    if item.is_none() {
                        item = Some(map.next_value::<BulkItem>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ActionItem(item))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BulkItem {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemError {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub caused_by: Option<Cause>,
    /// Set by Elasticsearch on an ingest processor's failure.
    #[serde(default)]
    pub header: Option<ErrorHeader>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorHeader {
    #[serde(default)]
    pub processor_type: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cause {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub reason: String,
}

impl ItemError {
    /// An ingest processor or script failed, or the pipeline is missing.
    /// Elasticsearch answers these with 400 or 500 (`fail` processors,
    /// scripts, and every ingest failure on 7.0–7.4, wrapped as `exception`:
    /// elastic/elasticsearch#48803); the processor header or the types say
    /// which, not the status.
    fn is_pipeline_failure(&self) -> bool {
        let ingest = |t: &str| {
            t.contains("ingest")
                || t.contains("script")
                || t.contains("pipeline")
                || t.contains("processor")
                || t.starts_with("painless")
        };
        self.header
            .as_ref()
            .is_some_and(|h| h.processor_type.is_some())
            || ingest(&self.error_type)
            || self
                .caused_by
                .as_ref()
                .is_some_and(|c| ingest(&c.error_type))
            || self.reason.starts_with("pipeline with id [")
    }
}

/// What to do with one document after a bulk attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Created,
    /// 409 on `create`: an earlier attempt or run indexed it.
    AlreadyIndexed,
    /// 429, 5xx, or missing from the response: send again later.
    Retry(String),
    /// Refused while going through the pipeline: send again without it.
    WithoutPipeline(String),
    /// 401/403/404 for this item: a missing privilege or index creation
    /// turned off. No retry helps until someone changes the cluster, and
    /// nothing is wrong with the document: keep it (spool) and say why.
    Refused(String),
    /// Refused on its own merits (mapping conflict, …): final.
    Rejected(String),
}

fn describe(status: u16, error: Option<&ItemError>) -> String {
    match error {
        Some(e) => {
            let mut text = format!("{status} {}: {}", e.error_type, e.reason);
            if let Some(cause) = &e.caused_by {
                text.push_str(&format!(
                    " (caused by {}: {})",
                    cause.error_type, cause.reason
                ));
            }
            text
        }
        None => format!("{status}"),
    }
}

/// What to change in the cluster for a per-item 401/403/404.
fn refusal_hint(status: u16, error: Option<&ItemError>) -> &'static str {
    let text = error.map_or(String::new(), |e| format!("{} {}", e.error_type, e.reason));
    match status {
        401 => "the credentials were not accepted for this index",
        403 if text.contains("auto_create") || text.contains("create_index") => {
            "the credentials may not create the index: grant `auto_configure` (or `create_index`) on the index pattern, or create the index"
        }
        403 => {
            "the credentials may not write to the index: grant `create_doc` (and `auto_configure`) on the index pattern, e.g. `docker-pulls-*`"
        }
        _ if text.contains("auto_create_index") || text.contains("index_not_found") => {
            "the index does not exist and automatic index creation is disabled: allow the index pattern in `action.auto_create_index`, or create the index"
        }
        _ => "the index was not found",
    }
}

/// Classifies one item of a response.
pub fn classify(item: &BulkItem, used_pipeline: bool) -> ItemOutcome {
    let error = item.error.as_ref();
    let reason = || describe(item.status, error);
    match item.status {
        200 | 201 => ItemOutcome::Created,
        409 => ItemOutcome::AlreadyIndexed,
        _ if used_pipeline && error.is_some_and(ItemError::is_pipeline_failure) => {
            ItemOutcome::WithoutPipeline(reason())
        }
        401 | 403 | 404 => ItemOutcome::Refused(format!(
            "{}; {}",
            reason(),
            refusal_hint(item.status, error)
        )),
        429 | 500..=599 => ItemOutcome::Retry(reason()),
        _ if used_pipeline => ItemOutcome::WithoutPipeline(reason()),
        _ => ItemOutcome::Rejected(reason()),
    }
}

/// Matches a response to the `ids` sent, in order. Items are matched by
/// position when the counts agree and ids do not contradict it, otherwise
/// by `_id`; a document the response does not account for is retried
/// (`create` makes that safe), never counted as indexed.
pub fn read_response<S: AsRef<str>>(
    body: &[u8],
    ids: &[S],
    used_pipeline: bool,
) -> Result<Vec<ItemOutcome>, String> {
    let response: BulkResponse =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk response: {e}"))?;
    let items: Vec<BulkItem> = response
        .items
        .into_iter()
        .filter_map(|item| item.0)
        .collect();
    let positional = items.len() == ids.len()
        && items.iter().zip(ids).all(|(item, id)| {
            item.id
                .as_ref()
                .is_none_or(|item_id| item_id == id.as_ref())
        });
    if positional {
        return Ok(items
            .iter()
            .map(|item| classify(item, used_pipeline))
            .collect());
    }
    let mut by_id: HashMap<&str, &BulkItem> = HashMap::new();
    for item in &items {
        if let Some(id) = &item.id {
            by_id.insert(id.as_str(), item);
        }
    }
    let missing = format!(
        "bulk response accounted for {} of {} documents",
        items.len(),
        ids.len()
    );
    Ok(ids
        .iter()
        .map(|id| match by_id.get(id.as_ref()) {
            Some(item) => classify(item, used_pipeline),
            None => ItemOutcome::Retry(missing.clone()),
        })
        .collect())
}

/// What became of a batch of entries. Every entry ends in exactly one of:
/// created, already indexed, rejected or unaccounted.
#[derive(Debug, Default)]
pub struct IndexReport {
    pub created: usize,
    pub already_indexed: usize,
    /// `(position, reason)`: refused for good (a mapping conflict): sending
    /// it again can only fail the same way.
    pub rejected: Vec<(usize, String)>,
    /// `(position, last reason)`: Elasticsearch did not account for these
    /// (unreachable, 429/5xx to the end, refused, the deadline). They must
    /// be kept and sent again later.
    pub unaccounted: Vec<(usize, String)>,
    /// Why sending stopped for every document at once (401/403 on the whole
    /// request): the run reports it, and fails with it when nothing can keep
    /// the documents.
    pub halted: Option<Error>,
    /// `_bulk` requests sent.
    pub requests: usize,
    /// Time spent in `_bulk` requests.
    pub elapsed: Duration,
    /// Elasticsearch said the named ingest pipeline does not exist.
    pub pipeline_missing: bool,
}

/// A document still to be indexed, and how.
struct Pending {
    position: usize,
    use_pipeline: bool,
    reason: String,
}

/// Sends documents to Elasticsearch's `_bulk` API.
#[derive(Debug, Clone)]
pub struct BulkSink {
    http: reqwest::Client,
    settings: EsSettings,
    options: BulkOptions,
}

/// How a whole request ended, for the documents it carried.
enum RequestOutcome {
    Items(Vec<ItemOutcome>),
    /// The same outcome for every document of the request.
    All(ItemOutcome),
    /// 413: split and send again.
    TooLarge,
    /// 401/403: stop sending anything.
    Halt(Error),
}

impl BulkSink {
    pub fn new(http: reqwest::Client, settings: EsSettings, options: BulkOptions) -> Self {
        Self {
            http,
            settings,
            options,
        }
    }

    /// Indexes `entries`, retrying within the deadline, and accounts for
    /// every one of them in the report; never loses track of an entry.
    pub async fn index(&self, entries: &[BulkEntry], deadline: Deadline) -> IndexReport {
        let started = tokio::time::Instant::now();
        let mut report = IndexReport::default();
        let mut pending: Vec<Pending> = (0..entries.len())
            .map(|position| Pending {
                position,
                use_pipeline: self.settings.pipeline.is_some(),
                reason: String::new(),
            })
            .collect();
        let mut max_body = self.options.max_body_bytes;
        let mut round = 0;
        let (mut refused, mut first_refused) = (0, String::new());
        'rounds: while !pending.is_empty() && round < self.options.max_rounds {
            round += 1;
            let mut next: Vec<Pending> = Vec::new();
            let mut transient = false;
            let (mut without_pipeline, mut first_refusal) = (0, String::new());
            for use_pipeline in [true, false] {
                let (group, rest): (Vec<Pending>, Vec<Pending>) = pending
                    .into_iter()
                    .partition(|p| p.use_pipeline == use_pipeline);
                pending = rest;
                let mut chunks = requests(&group, entries, max_body).into_iter();
                while let Some((chunk, body)) = chunks.next() {
                    let chunk_ids: Vec<&str> = chunk
                        .iter()
                        .map(|&i| entries[group[i].position].id.as_str())
                        .collect();
                    let body_len = body.len();
                    report.requests += 1;
                    let outcomes = match self.send(body, &chunk_ids, use_pipeline, deadline).await {
                        RequestOutcome::Items(items) => items,
                        RequestOutcome::All(outcome) => vec![outcome; chunk.len()],
                        RequestOutcome::TooLarge if chunk.len() > 1 => {
                            max_body = (body_len / 2).max(1);
                            vec![
                                ItemOutcome::Retry("413 request entity too large; splitting".into());
                                chunk.len()
                            ]
                        }
                        RequestOutcome::TooLarge => {
                            vec![ItemOutcome::Rejected("413 request entity too large".into())]
                        }
                        RequestOutcome::Halt(error) => {
                            // Nothing else is sent: this chunk, the chunks
                            // not sent yet and the other group stay
                            // unaccounted, with the reason.
                            let reason = error.to_string();
                            let unsent = chunk
                                .iter()
                                .copied()
                                .chain(chunks.by_ref().flat_map(|(members, _)| members))
                                .map(|i| group[i].position)
                                .chain(pending.drain(..).map(|p| p.position))
                                .chain(next.drain(..).map(|p| p.position));
                            report
                                .unaccounted
                                .extend(unsent.map(|position| (position, reason.clone())));
                            report.halted = Some(error);
                            break 'rounds;
                        }
                    };
                    for (&i, outcome) in chunk.iter().zip(outcomes) {
                        let position = group[i].position;
                        match outcome {
                            ItemOutcome::Created => report.created += 1,
                            ItemOutcome::AlreadyIndexed => report.already_indexed += 1,
                            ItemOutcome::Retry(reason) => {
                                transient = true;
                                next.push(Pending {
                                    position,
                                    use_pipeline,
                                    reason,
                                });
                            }
                            ItemOutcome::WithoutPipeline(reason) => {
                                if reason.contains("pipeline with id [")
                                    && reason.contains("does not exist")
                                {
                                    report.pipeline_missing = true;
                                }
                                without_pipeline += 1;
                                if without_pipeline == 1 {
                                    first_refusal = format!("{}: {reason}", entries[position].id);
                                }
                                next.push(Pending {
                                    position,
                                    use_pipeline: false,
                                    reason,
                                });
                            }
                            ItemOutcome::Refused(reason) => {
                                refused += 1;
                                if refused == 1 {
                                    first_refused = format!("{}: {reason}", entries[position].id);
                                }
                                report.unaccounted.push((position, reason));
                            }
                            ItemOutcome::Rejected(reason) => {
                                report.rejected.push((position, reason))
                            }
                        }
                    }
                }
            }
            if without_pipeline > 0 {
                tracing::info!(
                    documents = without_pipeline,
                    first = %first_refusal,
                    "the ingest pipeline refused documents; re-sending them without it"
                );
            }
            pending = next;
            if pending.is_empty() || round >= self.options.max_rounds {
                break;
            }
            if transient {
                let wait =
                    retry::backoff(round, self.options.backoff_base, self.options.backoff_cap);
                if !deadline.allows(wait, Duration::from_secs(1)) {
                    tracing::warn!(
                        pending = pending.len(),
                        "stopping bulk retries before the invocation deadline"
                    );
                    for p in &mut pending {
                        p.reason =
                            format!("stopped before the invocation deadline; last: {}", p.reason);
                    }
                    break;
                }
                tracing::info!(
                    pending = pending.len(),
                    round,
                    wait_ms = wait.as_millis() as u64,
                    "retrying bulk items"
                );
                tokio::time::sleep(wait).await;
            }
        }
        if refused > 0 {
            tracing::error!(
                documents = refused,
                first = %first_refused,
                "Elasticsearch refused documents for lack of a privilege or an index"
            );
        }
        for p in pending {
            report.unaccounted.push((p.position, p.reason));
        }
        report.elapsed = started.elapsed();
        report
    }

    async fn send(
        &self,
        body: Vec<u8>,
        ids: &[&str],
        use_pipeline: bool,
        deadline: Deadline,
    ) -> RequestOutcome {
        let pipeline = self.settings.pipeline.as_deref().filter(|_| use_pipeline);
        let mut url = match reqwest::Url::parse(&format!("{}/_bulk", self.settings.url)) {
            Ok(url) => url,
            Err(e) => {
                return RequestOutcome::Halt(Error::InvalidParameter {
                    name: "elasticsearch/url".into(),
                    reason: e.to_string(),
                });
            }
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("filter_path", FILTER_PATH);
            if let Some(pipeline) = pipeline {
                query.append_pair("pipeline", pipeline);
            }
        }
        let timeout = deadline.timeout(self.options.request_timeout);
        if timeout < Duration::from_millis(100) {
            return RequestOutcome::All(ItemOutcome::Retry(
                "no time left before the invocation deadline".into(),
            ));
        }
        let mut request = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::ACCEPT, "application/json")
            .timeout(timeout)
            .body(body);
        if let Some(value) = self.settings.auth.header() {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return RequestOutcome::All(ItemOutcome::Retry(transport_reason(
                    "Elasticsearch",
                    &error,
                )));
            }
        };
        let status = response.status();
        let body = match read_capped(response, self.options.max_response_bytes).await {
            Ok(body) => body,
            Err(ReadError::TooLarge) => {
                return RequestOutcome::All(ItemOutcome::Retry(
                    "bulk response too large to read".into(),
                ));
            }
            Err(ReadError::Transport(error)) => {
                return RequestOutcome::All(ItemOutcome::Retry(format!(
                    "connection error while reading the response: {}",
                    error_chain(&error)
                )));
            }
        };
        match status {
            StatusCode::OK => match read_response(&body, ids, use_pipeline) {
                Ok(items) => RequestOutcome::Items(items),
                Err(reason) => RequestOutcome::All(ItemOutcome::Retry(reason)),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                RequestOutcome::Halt(Error::EsAuth {
                    url: self.settings.url.clone(),
                    status: status.as_u16(),
                    reason: error_reason(&body),
                })
            }
            StatusCode::PAYLOAD_TOO_LARGE => RequestOutcome::TooLarge,
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => RequestOutcome::All(ItemOutcome::Retry(format!(
                "{} {}",
                status.as_u16(),
                error_reason(&body)
            ))),
            _ => {
                let reason = format!("{} {}", status.as_u16(), error_reason(&body));
                // A whole-request refusal while naming a pipeline may be the
                // pipeline's doing (older clusters answer a missing pipeline
                // this way): try once more without it before giving up.
                RequestOutcome::All(if use_pipeline {
                    ItemOutcome::WithoutPipeline(reason)
                } else {
                    ItemOutcome::Rejected(reason)
                })
            }
        }
    }
}

/// Elasticsearch's `error.type: error.reason`, or the start of the body.
pub fn error_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorField,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object(ItemError),
        Text(String),
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            error: ErrorField::Object(e),
        }) => format!("{}: {}", e.error_type, e.reason),
        Ok(Envelope {
            error: ErrorField::Text(text),
        }) => text,
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    }
}

/// Builds the request bodies for `group`, each at most `max_body` bytes (a
/// single larger document still gets a request of its own), with the
/// positions in `group` each one carries.
fn requests(
    group: &[Pending],
    entries: &[BulkEntry],
    max_body: usize,
) -> Vec<(Vec<usize>, Vec<u8>)> {
    let mut requests = Vec::new();
    let mut members = Vec::new();
    let mut body = Vec::new();
    let mut entry = Vec::new();
    for (i, pending) in group.iter().enumerate() {
        entry.clear();
        encode_create(&mut entry, &entries[pending.position]);
        if !members.is_empty() && body.len() + entry.len() > max_body {
            requests.push((std::mem::take(&mut members), std::mem::take(&mut body)));
        }
        body.extend_from_slice(&entry);
        members.push(i);
    }
    if !members.is_empty() {
        requests.push((members, body));
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{RepositoryStats, RunTime};
    use serde_json::{Value, json};

    fn document(namespace: &str, name: &str, pulls: u64) -> Document {
        Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats: RepositoryStats {
                namespace: namespace.into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 3,
                collaborator_count: Some(0),
            },
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/elasticsearch/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn ndjson_has_an_action_and_a_document_per_line_and_a_final_newline() {
        let mut body = Vec::new();
        encode_create(
            &mut body,
            &BulkEntry::new(
                "docker-pulls-2026",
                &document("library", "httpd", 2244658322),
            ),
        );
        encode_create(
            &mut body,
            &BulkEntry::new(
                "docker-pulls-2026",
                &document("radoondas", "netatmobeat", 159),
            ),
        );
        assert_eq!(body.last(), Some(&b'\n'));
        let text = String::from_utf8(body).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(
            lines,
            vec![
                json!({"create":{"_index":"docker-pulls-2026","_id":"library/httpd@2026-11-27T18:35:00Z"}}),
                json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"library","name":"httpd","pull_count":2244658322u64,"star_count":3,"collaborator_count":0}}}),
                json!({"create":{"_index":"docker-pulls-2026","_id":"radoondas/netatmobeat@2026-11-27T18:35:00Z"}}),
                json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"radoondas","name":"netatmobeat","pull_count":159,"star_count":3,"collaborator_count":0}}}),
            ]
        );
    }

    #[test]
    fn all_created_fixture_reads_as_created() {
        let ids = vec!["library/httpd@2026-11-27T18:35:00Z".to_owned()];
        let outcomes =
            read_response(&fixture("bulk-all-created.json"), &ids, true).expect("readable");
        assert_eq!(outcomes, vec![ItemOutcome::Created]);
    }

    #[test]
    fn mixed_errors_fixture_is_classified_per_item() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let outcomes =
            read_response(&fixture("bulk-mixed-errors.json"), &ids, true).expect("readable");
        assert_eq!(outcomes[0], ItemOutcome::Created);
        assert_eq!(outcomes[1], ItemOutcome::AlreadyIndexed);
        assert!(
            matches!(&outcomes[2], ItemOutcome::Retry(r) if r.starts_with("429 es_rejected_execution_exception"))
        );
        assert!(
            matches!(&outcomes[3], ItemOutcome::WithoutPipeline(r) if r.contains("pipeline with id [docker-hub-pulls] does not exist"))
        );
        assert!(
            matches!(&outcomes[4], ItemOutcome::WithoutPipeline(r) if r.contains("field [ecs] not present"))
        );

        // Without a pipeline the same 400s are final.
        let outcomes =
            read_response(&fixture("bulk-mixed-errors.json"), &ids, false).expect("readable");
        assert!(matches!(&outcomes[3], ItemOutcome::Rejected(_)));
    }

    #[test]
    fn a_response_that_lost_positions_never_counts_as_success() {
        // `filter_path=items.*.error` dropped the successful items: only one
        // item for three documents, without ids.
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let outcomes = read_response(&fixture("bulk-filter-path-items-error.json"), &ids, true)
            .expect("readable");
        assert_eq!(outcomes.len(), 3);
        assert!(
            outcomes.iter().all(|o| matches!(o, ItemOutcome::Retry(_))),
            "{outcomes:?}"
        );
    }

    #[test]
    fn fewer_items_with_ids_are_matched_by_id() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let body = br#"{"errors":true,"items":[{"create":{"_id":"c","status":201}},{"create":{"_id":"a","status":409}}]}"#;
        let outcomes = read_response(body, &ids, false).expect("readable");
        assert_eq!(outcomes[0], ItemOutcome::AlreadyIndexed);
        assert!(matches!(&outcomes[1], ItemOutcome::Retry(r) if r.contains("2 of 3")));
        assert_eq!(outcomes[2], ItemOutcome::Created);
    }

    #[test]
    fn garbage_is_an_error_not_a_success() {
        assert!(read_response(b"<html>proxy error</html>", &["a"], false).is_err());
        let ids = vec!["a".to_owned()];
        let outcomes = read_response(br#"{"errors":false}"#, &ids, false).expect("readable");
        assert!(matches!(&outcomes[0], ItemOutcome::Retry(_)));
    }

    #[test]
    fn error_reasons_come_from_the_error_object() {
        assert_eq!(
            error_reason(&fixture("error-401.json")),
            "security_exception: unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        );
        assert_eq!(error_reason(b"Bad Gateway\n"), "Bad Gateway");
    }

    #[test]
    fn chunks_respect_the_body_limit() {
        let entries: Vec<BulkEntry> = (0..10)
            .map(|i| BulkEntry::new("i", &document("acme", &format!("app{i}"), i)))
            .collect();
        let group: Vec<Pending> = (0..10)
            .map(|position| Pending {
                position,
                use_pipeline: false,
                reason: String::new(),
            })
            .collect();
        let mut one = Vec::new();
        encode_create(&mut one, &entries[0]);
        let split = requests(&group, &entries, one.len() * 3);
        assert_eq!(
            split.iter().map(|(m, _)| m.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert!(
            split
                .iter()
                .all(|(_, body)| body.len() <= one.len() * 3 && body.ends_with(b"\n"))
        );
        assert_eq!(split[0].1[..one.len()], one[..]);
        assert_eq!(requests(&group, &entries, 1).len(), 10);
        assert_eq!(requests(&group, &entries, MAX_BODY_BYTES).len(), 1);
    }

    #[test]
    fn encoded_entries_decode_to_the_same_entries() {
        let entries: Vec<BulkEntry> = [("2025", "a", 1), ("2026", "b", 2)]
            .iter()
            .map(|(year, name, pulls)| {
                BulkEntry::new(
                    &format!("docker-pulls-{year}"),
                    &document("acme", name, *pulls),
                )
            })
            .collect();
        let mut body = Vec::new();
        for entry in &entries {
            encode_create(&mut body, entry);
        }
        assert_eq!(decode_creates(&body).expect("decodes"), entries);
        for bad in [
            &b"{\"index\":{\"_index\":\"i\",\"_id\":\"a\"}}\n{}\n"[..],
            b"{\"create\":{\"_index\":\"i\",\"_id\":\"a\"}}\n",
            b"{\"create\":{\"_index\":\"i\",\"_id\":\"a\"}}\n[1]\n",
            b"{\"create\":{\"_index\":\"i\"}}\n{}\n",
            b"\xff\xfe",
        ] {
            assert!(
                decode_creates(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn item(status: u16, error_type: &str, reason: &str, cause: Option<(&str, &str)>) -> BulkItem {
        BulkItem {
            id: None,
            status,
            error: Some(ItemError {
                error_type: error_type.into(),
                reason: reason.into(),
                caused_by: cause.map(|(t, r)| Cause {
                    error_type: t.into(),
                    reason: r.into(),
                }),
                header: None,
            }),
        }
    }

    #[test]
    fn privilege_and_index_refusals_are_not_pipeline_refusals() {
        let forbidden = item(
            403,
            "security_exception",
            "action [indices:data/write/bulk[s]] is unauthorized for API key id [x] of user [y] on indices [docker-pulls-2026], this action is granted by the index privileges [create_doc,create,index,write,all]",
            None,
        );
        for pipeline in [true, false] {
            match classify(&forbidden, pipeline) {
                ItemOutcome::Refused(reason) => {
                    assert!(reason.contains("`create_doc`"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        let auto_create = item(
            403,
            "security_exception",
            "action [indices:admin/auto_create] is unauthorized for user [y] on indices [docker-pulls-2026], this action is granted by the index privileges [auto_configure,create_index,manage,all]",
            None,
        );
        assert!(
            matches!(classify(&auto_create, true), ItemOutcome::Refused(r) if r.contains("`auto_configure`"))
        );
        let no_index = item(
            404,
            "index_not_found_exception",
            "no such index [docker-pulls-2026] and [action.auto_create_index] ([false]) doesn't match",
            None,
        );
        assert!(
            matches!(classify(&no_index, true), ItemOutcome::Refused(r) if r.contains("`action.auto_create_index`"))
        );
    }

    #[test]
    fn ingest_failures_are_pipeline_refusals_whatever_their_status() {
        let script_500 = item(
            500,
            "script_exception",
            "runtime error",
            Some(("illegal_argument_exception", "cannot round a string")),
        );
        assert!(matches!(
            classify(&script_500, true),
            ItemOutcome::WithoutPipeline(r) if r.contains("caused by illegal_argument_exception: cannot round a string")
        ));
        let processor_500 = item(
            500,
            "illegal_argument_exception",
            "field [ecs] not present",
            Some(("ingest_processor_exception", "field [ecs] not present")),
        );
        assert!(matches!(
            classify(&processor_500, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // Without a pipeline named, a 500 is just transient.
        assert!(matches!(
            classify(&script_500, false),
            ItemOutcome::Retry(_)
        ));
        let fail_processor = item(500, "fail_processor_exception", "no pulls", None);
        assert!(matches!(
            classify(&fail_processor, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // 7.0–7.4: every ingest failure a 500 `exception`, the processor in
        // the header.
        let wrapped: BulkItem = serde_json::from_value(serde_json::json!({
            "status": 500,
            "error": {"type": "exception",
                "reason": "java.lang.IllegalArgumentException: field [ecs] not present as part of path [ecs]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "field [ecs] not present as part of path [ecs]"},
                "header": {"processor_type": "remove"}}
        }))
        .expect("item");
        assert!(matches!(
            classify(&wrapped, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // A plain 500 through the pipeline is transient too.
        let plain = item(500, "node_not_connected_exception", "node left", None);
        assert!(matches!(classify(&plain, true), ItemOutcome::Retry(_)));
    }
}
