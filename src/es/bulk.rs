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
//! spools it (see [`crate::spool`]). What each answer means is decided in
//! [`super::response`].

use super::response::{FILTER_PATH, ItemOutcome, RequestOutcome, names_missing_pipeline};
use super::{EsClient, EsFailure, EsRequest};
use crate::error::Error;
use crate::ndjson::{BulkEntry, encode_create};
use crate::retry::{self, Deadline};
use reqwest::Method;
use std::time::Duration;

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
    /// Some of `unaccounted` were stopped by Elasticsearch or the way to it
    /// (a whole-request failure to the end, a halt, the deadline), not by
    /// their index's refusal: sending more now is pointless.
    pub interrupted: bool,
    /// Indices that refused documents (per-item 401/403/404), with the
    /// first reason: the documents are kept, and newer ones still go.
    pub refusals: std::collections::BTreeMap<String, String>,
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
    client: EsClient,
    options: BulkOptions,
}

impl BulkSink {
    pub fn new(client: EsClient, options: BulkOptions) -> Self {
        Self { client, options }
    }

    /// Indexes `entries`, retrying within the deadline, and accounts for
    /// every one of them in the report; never loses track of an entry.
    pub async fn index(&self, entries: &[BulkEntry], deadline: Deadline) -> IndexReport {
        let started = tokio::time::Instant::now();
        let mut report = IndexReport::default();
        let mut pending: Vec<Pending> = (0..entries.len())
            .map(|position| Pending {
                position,
                use_pipeline: self.client.settings.pipeline.is_some(),
                reason: String::new(),
            })
            .collect();
        let mut max_body = self.options.max_body_bytes;
        let mut round = 0;
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
                        // Not a verdict on the document either: keep it.
                        RequestOutcome::TooLarge => vec![ItemOutcome::Retry(
                            "413 request entity too large, for a single document".into(),
                        )],
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
                            report.interrupted = true;
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
                                if names_missing_pipeline(&reason) {
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
                                report
                                    .refusals
                                    .entry(entries[position].index.clone())
                                    .or_insert_with(|| reason.clone());
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
        // Still worth another try, but out of rounds or time: Elasticsearch
        // (or the way to it) is in trouble, not the documents.
        report.interrupted |= !pending.is_empty();
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
        let settings = &self.client.settings;
        let pipeline = settings.pipeline.as_deref().filter(|_| use_pipeline);
        let timeout = deadline.timeout(self.options.request_timeout);
        if timeout < Duration::from_millis(100) {
            return RequestOutcome::All(ItemOutcome::Retry(
                "no time left before the invocation deadline".into(),
            ));
        }
        // Signed with SigV4, AWS ignores a POST's query parameters: name
        // nothing there (the client never has a pipeline then, see
        // EsClient::new) and read the unfiltered answer.
        let mut query = Vec::new();
        if settings.aws_service().is_none() {
            query.push(("filter_path", FILTER_PATH));
            if let Some(pipeline) = pipeline {
                query.push(("pipeline", pipeline));
            }
        }
        let request = EsRequest {
            method: Method::POST,
            path: &["_bulk"],
            query: &query,
            body: Some(("application/x-ndjson", body)),
            timeout,
            max_response: self.options.max_response_bytes,
        };
        match self.client.send(request).await {
            Ok(answer) => self.client.classify_bulk(&answer, ids, use_pipeline),
            Err(EsFailure::Url(reason)) => RequestOutcome::Halt(Error::InvalidParameter {
                name: "elasticsearch/url".into(),
                reason,
            }),
            Err(failure) => RequestOutcome::All(ItemOutcome::Retry(failure.to_string())),
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
    use crate::document::sample as document;

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
}
