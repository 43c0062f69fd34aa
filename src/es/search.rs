//! Reading documents back out of the cluster, for `export-index`: which
//! indices a pattern names and how they are mapped (`GET /<pattern>/_mapping`),
//! and one page of a sorted search (`POST /<index>/_search` with
//! `search_after`). What to ask for and what to do with the hits is decided
//! in [`crate::export`]; this file only sends and reads.
//!
//! Reads are retried on the one transient rule ([`crate::retry::is_transient`])
//! and on transport failures, a few times with backoff. A page that some
//! shards failed to answer is an error, never a short page: a missing shard
//! would silently leave documents out of the export.

use super::{EsClient, EsRequest, GaveUp, error_reason};
use crate::retry::Deadline;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const ATTEMPTS: u32 = 4;
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A page of 1,000 Metricbeat-era documents is a few megabytes.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// A read that failed: what was asked, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{request}: {reason}")]
pub struct SearchError {
    /// `GET /docker-pulls-*/_mapping`, `POST /docker-pulls-2021/_search`.
    pub request: String,
    pub reason: String,
}

/// One hit of a search page.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_source")]
    pub source: Option<Value>,
    /// The hit's sort values: the next page's `search_after`.
    #[serde(default)]
    pub sort: Vec<Value>,
}

/// One page of hits, and how many match in all (when the cluster said).
#[derive(Debug, Clone)]
pub struct Page {
    pub total: Option<u64>,
    pub hits: Vec<Hit>,
}

/// The mappings of every index `pattern` names, by index name (sorted).
pub async fn mappings(
    client: &EsClient,
    pattern: &str,
    deadline: Deadline,
) -> Result<BTreeMap<String, Value>, SearchError> {
    let what = format!("GET /{pattern}/_mapping");
    let body = send(
        client,
        Method::GET,
        &[pattern, "_mapping"],
        None,
        &what,
        deadline,
    )
    .await?;
    let indices: BTreeMap<String, MappingEntry> = serde_json::from_slice(&body)
        .map_err(|e| failed(&what, format!("unexpected answer: {e}")))?;
    Ok(indices
        .into_iter()
        .map(|(index, entry)| (index, entry.mappings))
        .collect())
}

#[derive(Deserialize)]
struct MappingEntry {
    #[serde(default)]
    mappings: Value,
}

/// One page of `POST /<index>/_search` with `body`.
pub async fn page(
    client: &EsClient,
    index: &str,
    body: &Value,
    deadline: Deadline,
) -> Result<Page, SearchError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        timed_out: bool,
        #[serde(rename = "_shards")]
        shards: Option<Shards>,
        hits: Hits,
    }
    #[derive(Deserialize)]
    struct Shards {
        #[serde(default)]
        failed: u64,
        #[serde(default)]
        failures: Vec<Value>,
    }
    #[derive(Deserialize)]
    struct Hits {
        total: Option<Total>,
        hits: Vec<Hit>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Total {
        /// Elasticsearch 7+ and OpenSearch: `{"value": N, "relation": "eq"}`.
        Object {
            value: u64,
        },
        Number(u64),
    }
    let what = format!("POST /{index}/_search");
    let bytes = serde_json::to_vec(body).map_err(|e| failed(&what, e.to_string()))?;
    let answer = send(
        client,
        Method::POST,
        &[index, "_search"],
        Some(bytes),
        &what,
        deadline,
    )
    .await?;
    let answer: Answer = serde_json::from_slice(&answer)
        .map_err(|e| failed(&what, format!("unexpected answer: {e}")))?;
    if let Some(shards) = answer.shards.filter(|s| s.failed > 0) {
        let first = shards
            .failures
            .first()
            .map(|f| {
                let reason = &f["reason"];
                format!(
                    "{}: {}",
                    reason["type"].as_str().unwrap_or("error"),
                    reason["reason"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        return Err(failed(
            &what,
            format!(
                "{} shard(s) failed, so the page may miss documents; first: {first}",
                shards.failed
            ),
        ));
    }
    if answer.timed_out {
        return Err(failed(
            &what,
            "the search timed out, so the page may miss documents".into(),
        ));
    }
    Ok(Page {
        total: answer.hits.total.map(|t| match t {
            Total::Object { value } | Total::Number(value) => value,
        }),
        hits: answer.hits.hits,
    })
}

fn failed(what: &str, reason: String) -> SearchError {
    SearchError {
        request: what.to_owned(),
        reason,
    }
}

/// Sends one read, retrying transient answers; the body of a 2xx answer.
async fn send(
    client: &EsClient,
    method: Method,
    path: &[&str],
    body: Option<Vec<u8>>,
    what: &str,
    deadline: Deadline,
) -> Result<Vec<u8>, SearchError> {
    let request = || EsRequest {
        method: method.clone(),
        path,
        query: &[],
        body: body.clone().map(|b| ("application/json", b)),
        timeout: deadline.timeout(READ_TIMEOUT),
        max_response: MAX_RESPONSE,
    };
    match client
        .send_retrying(request, ATTEMPTS, Duration::from_secs(8), deadline)
        .await
    {
        Ok(answer) if answer.status.is_success() => Ok(answer.body),
        Ok(answer) => {
            let hint = match answer.status {
                StatusCode::UNAUTHORIZED => " (check the credentials)",
                StatusCode::FORBIDDEN => {
                    " (the credentials need the `read` and `view_index_metadata` privileges on the indices)"
                }
                _ => "",
            };
            let reason = format!("{} {}", answer.status.as_u16(), error_reason(&answer.body));
            Err(failed(what, format!("{reason}{hint}")))
        }
        Err(GaveUp::Failure(failure)) => Err(failed(what, failure.to_string())),
        Err(GaveUp::Retries { reason, attempts }) => Err(failed(
            what,
            format!("{reason} (after {attempts} attempts)"),
        )),
    }
}
