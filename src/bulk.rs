//! Indexing: one `_bulk` request per run, and what to do with its answer.
//!
//! Every document is sent with `create` and an `_id` made of repository and
//! timestamp, so anything may be re-sent safely: a 409 means "already there".
//! Items that fail transiently (429, 5xx) are retried alone; items the ingest
//! pipeline fails are re-sent without it (documents arrive trimmed, so the
//! pipeline is only a fallback); 401/403 stop at once.

use crate::config::EsSettings;
use crate::document::Document;
use crate::error::Error;
use crate::http::{ReadError, error_chain, read_capped};
use crate::retry::{self, Deadline};
use reqwest::{StatusCode, header};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Just enough of the response to match items to documents by position and
/// `_id`, and to explain failures. Successful items keep their `status`, so
/// positions are never lost (unlike `filter_path=items.*.error`).
pub const FILTER_PATH: &str =
    "errors,items.*._id,items.*.status,items.*.error.type,items.*.error.reason";

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

/// Appends one `create` action and its document, each line ending in `\n`.
pub fn encode_create(out: &mut Vec<u8>, index: &str, document: &Document) {
    #[derive(serde::Serialize)]
    struct Action<'a> {
        create: Meta<'a>,
    }
    #[derive(serde::Serialize)]
    struct Meta<'a> {
        #[serde(rename = "_index")]
        index: &'a str,
        #[serde(rename = "_id")]
        id: &'a str,
    }
    let id = document.id();
    // Serialising these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(
        &mut *out,
        &Action {
            create: Meta { index, id: &id },
        },
    );
    out.push(b'\n');
    let _ = serde_json::to_writer(&mut *out, document);
    out.push(b'\n');
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
    /// Refused on its own merits (mapping conflict, …): final.
    Rejected(String),
}

fn describe(status: u16, error: Option<&ItemError>) -> String {
    match error {
        Some(e) => format!("{status} {}: {}", e.error_type, e.reason),
        None => format!("{status}"),
    }
}

/// Classifies one item of a response.
pub fn classify(item: &BulkItem, used_pipeline: bool) -> ItemOutcome {
    let reason = || describe(item.status, item.error.as_ref());
    match item.status {
        200 | 201 => ItemOutcome::Created,
        409 => ItemOutcome::AlreadyIndexed,
        429 | 500..=599 => ItemOutcome::Retry(reason()),
        _ if used_pipeline => ItemOutcome::WithoutPipeline(reason()),
        _ => ItemOutcome::Rejected(reason()),
    }
}

/// Matches a response to the `ids` sent, in order. Items are matched by
/// position when the counts agree and ids do not contradict it, otherwise
/// by `_id`; a document the response does not account for is retried
/// (`create` makes that safe), never counted as indexed.
pub fn read_response(
    body: &[u8],
    ids: &[String],
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
        && items
            .iter()
            .zip(ids)
            .all(|(item, id)| item.id.as_ref().is_none_or(|item_id| item_id == id));
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
        .map(|id| match by_id.get(id.as_str()) {
            Some(item) => classify(item, used_pipeline),
            None => ItemOutcome::Retry(missing.clone()),
        })
        .collect())
}

/// The result of indexing one run's documents.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexReport {
    pub created: usize,
    pub already_indexed: usize,
    /// `(document _id, last reason)` for documents still not indexed.
    pub failed: Vec<(String, String)>,
    /// `_bulk` requests sent.
    pub requests: usize,
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
}

impl BulkSink {
    pub fn new(http: reqwest::Client, settings: EsSettings, options: BulkOptions) -> Self {
        Self {
            http,
            settings,
            options,
        }
    }

    /// Indexes `documents` into `index`, retrying within the deadline.
    /// Errors only for what no retry can fix (credentials); documents that
    /// could not be indexed are listed in the report.
    pub async fn index(
        &self,
        index: &str,
        documents: &[Document],
        deadline: Deadline,
    ) -> Result<IndexReport, Error> {
        let ids: Vec<String> = documents.iter().map(Document::id).collect();
        let mut report = IndexReport::default();
        let mut pending: Vec<Pending> = (0..documents.len())
            .map(|position| Pending {
                position,
                use_pipeline: self.settings.pipeline.is_some(),
                reason: String::new(),
            })
            .collect();
        let mut max_body = self.options.max_body_bytes;
        let mut round = 0;
        while !pending.is_empty() && round < self.options.max_rounds {
            round += 1;
            let mut next = Vec::new();
            let mut transient = false;
            let (mut refused, mut first_refusal) = (0, String::new());
            for use_pipeline in [true, false] {
                let (group, rest): (Vec<Pending>, Vec<Pending>) = pending
                    .into_iter()
                    .partition(|p| p.use_pipeline == use_pipeline);
                pending = rest;
                for (chunk, body) in requests(&group, documents, index, max_body) {
                    let chunk_ids: Vec<String> = chunk
                        .iter()
                        .map(|&i| ids[group[i].position].clone())
                        .collect();
                    let body_len = body.len();
                    report.requests += 1;
                    let outcome = self.send(body, &chunk_ids, use_pipeline, deadline).await?;
                    let outcomes = match outcome {
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
                                refused += 1;
                                if refused == 1 {
                                    first_refusal = format!("{}: {reason}", ids[position]);
                                }
                                next.push(Pending {
                                    position,
                                    use_pipeline: false,
                                    reason,
                                });
                            }
                            ItemOutcome::Rejected(reason) => {
                                report.failed.push((ids[position].clone(), reason))
                            }
                        }
                    }
                }
            }
            if refused > 0 {
                tracing::info!(
                    documents = refused,
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
        for p in pending {
            report.failed.push((ids[p.position].clone(), p.reason));
        }
        Ok(report)
    }

    async fn send(
        &self,
        body: Vec<u8>,
        ids: &[String],
        use_pipeline: bool,
        deadline: Deadline,
    ) -> Result<RequestOutcome, Error> {
        let pipeline = self.settings.pipeline.as_deref().filter(|_| use_pipeline);
        let mut url =
            reqwest::Url::parse(&format!("{}/_bulk", self.settings.url)).map_err(|e| {
                Error::InvalidParameter {
                    name: "elasticsearch/url".into(),
                    reason: e.to_string(),
                }
            })?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("filter_path", FILTER_PATH);
            if let Some(pipeline) = pipeline {
                query.append_pair("pipeline", pipeline);
            }
        }
        let timeout = deadline.timeout(self.options.request_timeout);
        if timeout < Duration::from_millis(100) {
            return Ok(RequestOutcome::All(ItemOutcome::Retry(
                "no time left before the invocation deadline".into(),
            )));
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
                let reason = if error.is_timeout() {
                    "request timed out".to_owned()
                } else {
                    format!("connection error: {}", error_chain(&error))
                };
                return Ok(RequestOutcome::All(ItemOutcome::Retry(reason)));
            }
        };
        let status = response.status();
        let body = match read_capped(response, self.options.max_response_bytes).await {
            Ok(body) => body,
            Err(ReadError::TooLarge) => {
                return Ok(RequestOutcome::All(ItemOutcome::Retry(
                    "bulk response too large to read".into(),
                )));
            }
            Err(ReadError::Transport(error)) => {
                return Ok(RequestOutcome::All(ItemOutcome::Retry(format!(
                    "connection error while reading the response: {}",
                    error_chain(&error)
                ))));
            }
        };
        match status {
            StatusCode::OK => Ok(match read_response(&body, ids, use_pipeline) {
                Ok(items) => RequestOutcome::Items(items),
                Err(reason) => RequestOutcome::All(ItemOutcome::Retry(reason)),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::EsAuth {
                url: self.settings.url.clone(),
                status: status.as_u16(),
                reason: error_reason(&body),
            }),
            StatusCode::PAYLOAD_TOO_LARGE => Ok(RequestOutcome::TooLarge),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Ok(RequestOutcome::All(ItemOutcome::Retry(format!(
                "{} {}",
                status.as_u16(),
                error_reason(&body)
            )))),
            _ => {
                let reason = format!("{} {}", status.as_u16(), error_reason(&body));
                // A whole-request refusal while naming a pipeline may be the
                // pipeline's doing (older clusters answer a missing pipeline
                // this way): try once more without it before giving up.
                Ok(RequestOutcome::All(if use_pipeline {
                    ItemOutcome::WithoutPipeline(reason)
                } else {
                    ItemOutcome::Rejected(reason)
                }))
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
    documents: &[Document],
    index: &str,
    max_body: usize,
) -> Vec<(Vec<usize>, Vec<u8>)> {
    let mut requests = Vec::new();
    let mut members = Vec::new();
    let mut body = Vec::new();
    let mut entry = Vec::new();
    for (i, pending) in group.iter().enumerate() {
        entry.clear();
        encode_create(&mut entry, index, &documents[pending.position]);
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
            "docker-pulls-2026",
            &document("library", "httpd", 2244658322),
        );
        encode_create(
            &mut body,
            "docker-pulls-2026",
            &document("radoondas", "netatmobeat", 159),
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
        assert!(read_response(b"<html>proxy error</html>", &["a".into()], false).is_err());
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
        let documents: Vec<Document> = (0..10)
            .map(|i| document("acme", &format!("app{i}"), i))
            .collect();
        let group: Vec<Pending> = (0..10)
            .map(|position| Pending {
                position,
                use_pipeline: false,
                reason: String::new(),
            })
            .collect();
        let mut one = Vec::new();
        encode_create(&mut one, "i", &documents[0]);
        let split = requests(&group, &documents, "i", one.len() * 3);
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
        assert_eq!(requests(&group, &documents, "i", 1).len(), 10);
        assert_eq!(requests(&group, &documents, "i", MAX_BODY_BYTES).len(), 1);
    }
}
