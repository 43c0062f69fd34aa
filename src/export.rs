//! `export-index`: copies documents already in an index into the archive, so
//! history from before the archive existed — years of it, for a user coming
//! from the 2021 Metricbeat recipe — is in S3 from day one.
//!
//! Each index the pattern names is read in order of `@timestamp`, a page at
//! a time with `search_after` (no scroll context to keep alive, no 10,000
//! hit window). The sort needs a tiebreaker that is unique with
//! `@timestamp`: `_id` sorting is disabled by default on recent
//! Elasticsearch and `_shard_doc` needs a point in time (not in OpenSearch
//! before 2.4), so the namespace and name are used, which with the time are
//! unique by the `_id` rule. They are keyword fields under the project's
//! template and the recipe's; under dynamic mapping they are text with a
//! `.keyword` sub-field, which is used instead (read from each index's
//! mapping).
//!
//! Every `_source` is trimmed to the five-field document the way the seed's
//! ingest pipeline trims it ([`crate::archive::trim`]); one that cannot be
//! (another metricset, a count that is not a whole number) is refused and
//! reported, never guessed at. Documents are grouped into objects by UTC day
//! (at most [`MAX_PER_OBJECT`] each), keyed by the first one's time, in the
//! layout runs write.

use crate::archive::{self, ArchiveStore};
use crate::document::{Document, RunTime};
use crate::es::EsClient;
use crate::es::search::{self, Hit};
use crate::progress::Progress;
use crate::retry::Deadline;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Hits asked for per page.
pub const PAGE_SIZE: usize = 1_000;
/// Documents per archive object at most (one day of 1,000 repositories
/// every 5 minutes is 288,000; an object of 100,000 is about 4 MB).
pub const MAX_PER_OBJECT: usize = 100_000;
/// Refusals listed one by one in the summary (all are counted).
const LISTED: usize = 100;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// An index name or pattern: `docker-pulls-*`, `metricbeat-*`.
    pub pattern: String,
    /// Only documents with `from <= @timestamp < to`, when given.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub page_size: usize,
    pub max_per_object: usize,
}

impl ExportRequest {
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            from: None,
            to: None,
            page_size: PAGE_SIZE,
            max_per_object: MAX_PER_OBJECT,
        }
    }
}

/// A document that could not be exported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub index: String,
    pub id: String,
    pub reason: String,
}

/// What an export did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub pattern: String,
    /// The indices read, in order.
    pub indices: Vec<String>,
    /// Documents read from the indices.
    pub read: usize,
    /// Documents written to the archive.
    pub archived: usize,
    /// Archive objects written.
    pub objects: usize,
    /// Documents that could not be trimmed to the document (not archived).
    pub refused: usize,
    /// The first refusals, with their reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
    /// The earliest and latest `@timestamp` archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    pub duration_ms: u64,
    #[serde(skip)]
    first_time: Option<RunTime>,
    #[serde(skip)]
    last_time: Option<RunTime>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading Elasticsearch failed: {0}")]
    Search(#[from] search::SearchError),
    #[error("index {index} cannot be read in order: {reason}")]
    Unsortable { index: String, reason: String },
    #[error(
        "writing the archive failed: {error}; everything of {index} before {resume_from} is archived (continue with --from {resume_from})"
    )]
    Archive {
        index: String,
        resume_from: String,
        error: archive::ArchiveError,
    },
}

/// Exports every document of the indices `request.pattern` names.
pub async fn export_index(
    client: &EsClient,
    store: &dyn ArchiveStore,
    request: &ExportRequest,
    deadline: Deadline,
    progress: &dyn Progress,
) -> Result<ExportSummary, ExportError> {
    let started = std::time::Instant::now();
    let mut summary = ExportSummary {
        pattern: request.pattern.clone(),
        ..ExportSummary::default()
    };
    let mappings = search::mappings(client, &request.pattern, deadline).await?;
    for (index, mapping) in &mappings {
        summary.indices.push(index.clone());
        let sort = sort_for(mapping).map_err(|reason| ExportError::Unsortable {
            index: index.clone(),
            reason,
        })?;
        export_one(
            client,
            store,
            request,
            index,
            &sort,
            deadline,
            progress,
            &mut summary,
        )
        .await?;
    }
    summary.first = summary.first_time.map(|t| t.to_string());
    summary.last = summary.last_time.map(|t| t.to_string());
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    progress.finish(&format!(
        "{} documents read, {} archived in {} objects, {} refused",
        summary.read, summary.archived, summary.objects, summary.refused
    ));
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn export_one(
    client: &EsClient,
    store: &dyn ArchiveStore,
    request: &ExportRequest,
    index: &str,
    sort: &Value,
    deadline: Deadline,
    progress: &dyn Progress,
    summary: &mut ExportSummary,
) -> Result<(), ExportError> {
    let mut range = serde_json::Map::new();
    if let Some(from) = request.from.and_then(|t| t.format(&Rfc3339).ok()) {
        range.insert("gte".into(), json!(from));
    }
    if let Some(to) = request.to.and_then(|t| t.format(&Rfc3339).ok()) {
        range.insert("lt".into(), json!(to));
    }
    // Only docker-pulls measurements: a `metricbeat-*` index also holds
    // every other metricset's documents, which are not history to keep.
    let mut filter = vec![json!({"exists": {"field": "http.docker_hub.pull_count"}})];
    if !range.is_empty() {
        filter.push(json!({"range": {"@timestamp": range}}));
    }
    let query = json!({"bool": {"filter": filter}});
    let mut pending: Vec<Document> = Vec::new();
    let mut search_after: Option<Vec<Value>> = None;
    let mut read_here = 0usize;
    let mut total = None;
    loop {
        let mut body = json!({
            "size": request.page_size,
            "sort": sort,
            "query": query,
            "track_total_hits": true,
        });
        if let Some(after) = &search_after {
            body["search_after"] = json!(after);
        }
        let page = search::page(client, index, &body, deadline).await?;
        total = total.or(page.total);
        let last = page.hits.len();
        for hit in page.hits {
            read_here += 1;
            summary.read += 1;
            let Hit {
                index: hit_index,
                id,
                source,
                sort,
            } = hit;
            search_after = Some(sort);
            let trimmed = match &source {
                Some(source) => archive::trim(source),
                None => Err("the hit has no _source (disabled in the mapping?)".into()),
            };
            let document = match trimmed {
                Ok(document) => document,
                Err(reason) => {
                    summary.refused += 1;
                    if summary.refusals.len() < LISTED {
                        summary.refusals.push(Refusal {
                            index: hit_index,
                            id,
                            reason,
                        });
                    }
                    continue;
                }
            };
            let new_day = pending.first().is_some_and(|first| {
                archive::partition(&first.timestamp) != archive::partition(&document.timestamp)
            });
            if new_day || pending.len() >= request.max_per_object {
                flush(store, index, &mut pending, summary).await?;
            }
            pending.push(document);
        }
        let fraction = total
            .filter(|t| *t > 0)
            .map(|t| read_here as f64 / t as f64);
        progress.update(
            fraction,
            &format!(
                "{index}: {read_here}/{} read, {} archived, {} refused",
                total.map_or_else(|| "?".into(), |t| t.to_string()),
                summary.archived,
                summary.refused
            ),
        );
        if last < request.page_size {
            break;
        }
        if search_after.as_ref().is_none_or(Vec::is_empty) {
            return Err(ExportError::Unsortable {
                index: index.to_owned(),
                reason: "the hits carry no sort values to page with".into(),
            });
        }
    }
    flush(store, index, &mut pending, summary).await
}

async fn flush(
    store: &dyn ArchiveStore,
    index: &str,
    pending: &mut Vec<Document>,
    summary: &mut ExportSummary,
) -> Result<(), ExportError> {
    let Some(first) = pending.first() else {
        return Ok(());
    };
    let time = first.timestamp;
    let failed = |error| ExportError::Archive {
        index: index.to_owned(),
        resume_from: time.to_string(),
        error,
    };
    let key = archive::object_key(&time);
    let body = archive::encode(pending.iter()).map_err(|e| {
        failed(archive::ArchiveError {
            operation: "encoding",
            location: key.clone(),
            message: e.to_string(),
        })
    })?;
    store.put(&key, body).await.map_err(failed)?;
    summary.objects += 1;
    summary.archived += pending.len();
    for document in pending.iter() {
        let t = document.timestamp;
        summary.first_time = Some(summary.first_time.map_or(t, |f| f.min(t)));
        summary.last_time = Some(summary.last_time.map_or(t, |l| l.max(t)));
    }
    pending.clear();
    Ok(())
}

/// The sort of one index: `@timestamp`, then the namespace and name fields
/// (keyword, or their keyword sub-field), all ascending.
fn sort_for(mapping: &Value) -> Result<Value, String> {
    let properties = |value: &Value, path: &[&str]| -> Option<Value> {
        let mut at = value;
        for name in path {
            at = at.get("properties")?.get(*name)?;
        }
        Some(at.clone())
    };
    let timestamp = match properties(mapping, &["@timestamp"]) {
        None => json!({"@timestamp": {"order": "asc", "unmapped_type": "date"}}),
        Some(field) => match field["type"].as_str() {
            Some("date" | "date_nanos") => json!({"@timestamp": {"order": "asc"}}),
            other => {
                return Err(format!(
                    "@timestamp is mapped as {}, not a date",
                    other.unwrap_or("an object")
                ));
            }
        },
    };
    let mut sort = vec![timestamp];
    for name in ["namespace", "name"] {
        let path = format!("http.docker_hub.{name}");
        let field = match properties(mapping, &["http", "docker_hub", name]) {
            None => path,
            Some(field) if field["type"] == "keyword" => path,
            Some(field) => {
                let keyword = field["fields"].as_object().and_then(|fields| {
                    fields
                        .iter()
                        .find(|(_, sub)| sub["type"] == "keyword")
                        .map(|(sub, _)| format!("{path}.{sub}"))
                });
                keyword.ok_or_else(|| {
                    format!(
                        "{path} is mapped as {} without a keyword sub-field, so it cannot break ties between documents of the same @timestamp",
                        field["type"].as_str().unwrap_or("an object")
                    )
                })?
            }
        };
        sort.push(json!({field: {"order": "asc", "unmapped_type": "keyword"}}));
    }
    Ok(Value::Array(sort))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiebreaker_follows_each_index_mapping() {
        let keyword = json!({"properties": {
            "@timestamp": {"type": "date"},
            "http": {"properties": {"docker_hub": {"properties": {
                "namespace": {"type": "keyword"}, "name": {"type": "keyword"}}}}}}});
        assert_eq!(
            sort_for(&keyword).expect("sortable"),
            json!([
                {"@timestamp": {"order": "asc"}},
                {"http.docker_hub.namespace": {"order": "asc", "unmapped_type": "keyword"}},
                {"http.docker_hub.name": {"order": "asc", "unmapped_type": "keyword"}},
            ])
        );
        // Dynamic mapping: text with a .keyword sub-field.
        let text = |sub: Value| {
            json!({"properties": {
                "@timestamp": {"type": "date"},
                "http": {"properties": {"docker_hub": {"properties": {
                    "namespace": {"type": "text", "fields": sub.clone()},
                    "name": {"type": "text", "fields": sub}}}}}}})
        };
        let dynamic = text(json!({"keyword": {"type": "keyword", "ignore_above": 256}}));
        assert_eq!(
            sort_for(&dynamic).expect("sortable")[1],
            json!({"http.docker_hub.namespace.keyword": {"order": "asc", "unmapped_type": "keyword"}})
        );
        let error = sort_for(&text(json!({}))).unwrap_err();
        assert!(error.contains("without a keyword sub-field"), "{error}");
        // An empty index (the fake's, or one never written): unmapped types.
        assert_eq!(
            sort_for(&json!({})).expect("sortable")[0],
            json!({"@timestamp": {"order": "asc", "unmapped_type": "date"}})
        );
        let error =
            sort_for(&json!({"properties": {"@timestamp": {"type": "keyword"}}})).unwrap_err();
        assert!(error.contains("not a date"), "{error}");
    }
}
