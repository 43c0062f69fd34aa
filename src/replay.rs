//! Replay: rebuilds any index from the archive ([`crate::archive`]).
//!
//! It reads the measurements with `from <= @timestamp < to` through the
//! archive's one reader ([`archive::reader`]: each once, in `(timestamp,
//! namespace, name)` order, from a day's Parquet file where there is one)
//! and indexes them into `<prefix>-<yyyy>` with the same `create` action
//! and `_id` a run uses ([`BulkEntry::new`]), through the one bulk sink, up
//! to [`BATCH`] documents a `_bulk` whatever objects they came from. So replaying is always safe: what is already
//! indexed answers 409 and counts as `already_indexed`, and replaying twice
//! adds nothing.
//!
//! Nothing is dropped silently: documents the index refuses for good are
//! counted and listed with their reason, archive lines that are not a
//! document likewise, and when Elasticsearch does not take a batch (down,
//! 429/5xx to the end) or the deadline comes, replay stops and returns a
//! `cursor`: the last measurement Elasticsearch acknowledged
//! (`TIME/NAMESPACE/NAME`), so the next call goes on right after it. An
//! object that cannot be read for good (deleted after listing, access
//! denied, a KMS key) is reported by key and passed over, never stopped at
//! forever. In Lambda the manual event `{"action":"replay",…,"cursor":…}`
//! passes the cursor back; locally `--cursor` does.

use crate::archive::reader::{Item, Options, Reader, SortKey, Unreadable};
use crate::archive::{self, ArchiveStore};
use crate::document::{Document, RunTime, index_name};
use crate::error::Error;
use crate::es::EsClient;
use crate::es::bulk::{BulkOptions, BulkSink};
use crate::ndjson::BulkEntry;
use crate::progress::Progress;
use crate::retry::Deadline;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Documents per `_bulk` call (about 1 MB of NDJSON).
pub const BATCH: usize = 5_000;
/// Refusals and unreadable lines listed one by one (all are counted).
const LISTED: usize = 100;
/// Never start a batch with less time than this left.
const MIN_BATCH_TIME: Duration = Duration::from_secs(1);

/// What to replay: `from <= @timestamp < to`, from `cursor` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    from: OffsetDateTime,
    to: OffsetDateTime,
    cursor: Option<Cursor>,
}

/// Where a replay that stopped continues: right after the last measurement
/// Elasticsearch acknowledged (`TIME/NAMESPACE/NAME`), or from a time on
/// (`TIME`, when nothing was acknowledged yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub SortKey);

impl Cursor {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // A cursor of an earlier version: an object's key (`KEY#N`). Going
        // on from its time re-sends a few documents, which answer 409.
        if text.starts_with(archive::PREFIX) {
            let key = text.rsplit_once('#').map_or(text, |(key, _)| key);
            let at = archive::reader::key_time(key)
                .and_then(|nanos| i64::try_from(nanos / 1_000).ok())
                .and_then(RunTime::from_unix_micros)
                .ok_or_else(|| format!("cursor {text:?} is not an archive key"))?;
            return Ok(Self::start(at));
        }
        if !text.contains('/') {
            let at = RunTime::parse(text).map_err(|_| {
                format!(
                    "cursor {text:?} is not TIME/NAMESPACE/NAME or TIME (as a replay returned it)"
                )
            })?;
            return Ok(Self::start(at));
        }
        SortKey::parse(text).map(Self)
    }

    /// Everything stamped `at` or later.
    fn start(at: RunTime) -> Self {
        Self(SortKey {
            timestamp: at,
            namespace: String::new(),
            name: String::new(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.namespace.is_empty() {
            write!(f, "{}", self.0.timestamp)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `2026-01-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_bound(field: &str, text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Some(date) = archive::reader::parse_day(text) {
        return Ok(date.midnight().assume_utc());
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| {
            format!(
                "`{field}` must be a date (2026-01-01) or an RFC 3339 time (2026-01-01T00:00:00Z), got {text:?}"
            )
        })
}

impl ReplayRequest {
    /// Checks the bounds (`from` before `to`) and the cursor.
    pub fn new(from: &str, to: &str, cursor: Option<&str>) -> Result<Self, String> {
        let from_time = parse_bound("from", from)?;
        let to_time = parse_bound("to", to)?;
        if from_time >= to_time {
            return Err(format!(
                "`from` ({from}) must be before `to` ({to}): the range is from <= @timestamp < to"
            ));
        }
        let cursor = cursor.map(Cursor::parse).transpose()?;
        Ok(Self {
            from: from_time,
            to: to_time,
            cursor,
        })
    }

    /// The manual event's fields: `from`, `to` (required) and `cursor`.
    pub fn from_event(object: &Map<String, Value>) -> Result<Self, Error> {
        let text = |field: &str, required: bool| -> Result<Option<&str>, Error> {
            match object.get(field) {
                None | Some(Value::Null) if required => Err(Error::InvalidEvent(format!(
                    "a replay needs `{field}` (a date like 2026-01-01, or an RFC 3339 time)"
                ))),
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text)),
                Some(_) => Err(Error::InvalidEvent(format!("`{field}` must be a string"))),
            }
        };
        let (from, to) = (text("from", true)?, text("to", true)?);
        let cursor = text("cursor", false)?;
        Self::new(from.unwrap_or_default(), to.unwrap_or_default(), cursor)
            .map_err(Error::InvalidEvent)
    }

    pub fn from(&self) -> OffsetDateTime {
        self.from
    }

    pub fn to(&self) -> OffsetDateTime {
        self.to
    }

    #[cfg(test)]
    fn contains(&self, time: &RunTime) -> bool {
        let seconds = |t: OffsetDateTime| t.unix_timestamp_nanos();
        let at = time_of(time);
        seconds(self.from) <= seconds(at) && seconds(at) < seconds(self.to)
    }
}

/// A document's time as an `OffsetDateTime`.
fn time_of(time: &RunTime) -> OffsetDateTime {
    OffsetDateTime::parse(&time.to_string(), &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A document Elasticsearch refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub index: String,
    pub id: String,
    pub reason: String,
}

/// What a replay did. Every document in range it read is in exactly one of
/// `created`, `already_indexed`, `rejected` and `not_indexed`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub from: String,
    pub to: String,
    /// Raw archive objects read.
    pub objects: usize,
    /// Daily Parquet files read (instead of their days' raw objects).
    pub parquet_files: usize,
    /// Second copies of a measurement in the archive, not sent again.
    pub duplicates: usize,
    /// Documents in range sent to Elasticsearch.
    pub documents: usize,
    pub created: usize,
    pub already_indexed: usize,
    /// Refused for good by their index (a mapping conflict, say): counted,
    /// and the first ones listed with their reason.
    pub rejected: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Refusal>,
    /// Elasticsearch did not account for these when replay stopped: they are
    /// sent again from `cursor`.
    pub not_indexed: usize,
    /// Archive lines, or whole objects (named by key), that hold no
    /// document or cannot be read for good: reported and passed over.
    pub unreadable: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_details: Vec<Unreadable>,
    pub bulk_requests: usize,
    /// Every object of the range was read and every document accounted for.
    pub complete: bool,
    /// Where to continue (pass it back as `cursor`) when not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Why replay stopped before the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub duration_ms: u64,
}

impl ReplaySummary {
    /// Whether every document in range ended up indexed (now or before).
    pub fn all_indexed(&self) -> bool {
        self.complete && self.rejected == 0 && self.unreadable == 0 && self.not_indexed == 0
    }
}

/// Replays `request` from `store` into the cluster `client` reaches (with
/// its credentials, signing included).
pub async fn replay(
    store: &dyn ArchiveStore,
    client: &EsClient,
    bulk: &BulkOptions,
    request: &ReplayRequest,
    deadline: Deadline,
    progress: &dyn Progress,
) -> Result<ReplaySummary, Error> {
    let started = Instant::now();
    let mut run = Replay {
        store,
        client: client.clone(),
        bulk,
        sink: BulkSink::new(client.clone(), bulk.clone()),
        request,
        deadline,
        progress,
        started,
        slowest_batch: Duration::ZERO,
        acknowledged: request.cursor.clone().unwrap_or_else(|| {
            Cursor::start(
                RunTime::from_unix_micros(
                    i64::try_from(request.from.unix_timestamp_nanos() / 1_000).unwrap_or_default(),
                )
                .unwrap_or_else(RunTime::now),
            )
        }),
        counts: archive::reader::ReadCounts::default(),
        summary: ReplaySummary {
            from: format_time(request.from),
            to: format_time(request.to),
            ..ReplaySummary::default()
        },
    };
    let stop = run.all().await;
    let counts = run.counts;
    let mut summary = run.summary;
    summary.objects = counts.objects;
    summary.parquet_files = counts.parquet_files;
    summary.duplicates = counts.duplicates;
    match stop {
        None => summary.complete = true,
        Some((cursor, reason)) => {
            tracing::warn!(cursor = %cursor, %reason, "replay stopped before the end of its range");
            summary.cursor = Some(cursor.to_string());
            summary.stopped = Some(reason);
        }
    }
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        from = %summary.from,
        to = %summary.to,
        objects = summary.objects,
        documents = summary.documents,
        created = summary.created,
        already_indexed = summary.already_indexed,
        rejected = summary.rejected,
        unreadable = summary.unreadable,
        not_indexed = summary.not_indexed,
        complete = summary.complete,
        "replay finished"
    );
    progress.finish(&format!(
        "{} objects, {} documents: {} created, {} already indexed, {} rejected, {} unreadable{}",
        summary.objects,
        summary.documents,
        summary.created,
        summary.already_indexed,
        summary.rejected,
        summary.unreadable,
        summary
            .cursor
            .as_ref()
            .map(|c| format!("; stopped, continue with --cursor {c}"))
            .unwrap_or_default()
    ));
    Ok(summary)
}

fn format_time(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

struct Replay<'a> {
    store: &'a dyn ArchiveStore,
    client: EsClient,
    bulk: &'a BulkOptions,
    sink: BulkSink,
    request: &'a ReplayRequest,
    deadline: Deadline,
    progress: &'a dyn Progress,
    started: Instant,
    /// The longest a batch (reading included) took: the time to keep
    /// before starting another.
    slowest_batch: Duration,
    /// The last measurement Elasticsearch accounted for: where to go on.
    acknowledged: Cursor,
    counts: archive::reader::ReadCounts,
    summary: ReplaySummary,
}

/// Where to continue, and why it stopped.
type Stop = Option<(Cursor, String)>;

impl Replay<'_> {
    async fn all(&mut self) -> Stop {
        let mut options = Options::new(self.request.from, self.request.to);
        options.after = self.request.cursor.clone().map(|c| c.0);
        // Reading stops in time to send what was read.
        options.deadline = Some(self.deadline.less(MIN_BATCH_TIME));
        let mut reader = Reader::new(self.store, options);
        let mut batch: Vec<Document> = Vec::with_capacity(BATCH);
        let mut batch_started = Instant::now();
        loop {
            if batch.is_empty() {
                if !self.time_for_a_batch() {
                    self.counts = reader.counts();
                    return self.stop("the invocation's deadline".into());
                }
                batch_started = Instant::now();
            }
            let item = reader.next().await;
            self.counts = reader.counts();
            let end = match item {
                Ok(Some(Item::Document(document))) => {
                    batch.push(document);
                    false
                }
                Ok(Some(Item::Unreadable(unreadable))) => {
                    self.unreadable(unreadable);
                    continue;
                }
                Ok(None) => true,
                // S3 throttled, the network, the deadline: what was read
                // but not sent is sent by the next call, from the cursor.
                Err(error) => return self.stop(error.to_string()),
            };
            if batch.len() >= BATCH || (end && !batch.is_empty()) {
                if let Some(reason) = self.batch(&batch).await {
                    return self.stop(reason);
                }
                self.slowest_batch = self.slowest_batch.max(batch_started.elapsed());
                self.show(batch.last().map(|d| d.timestamp));
                batch.clear();
            }
            if end {
                return None;
            }
        }
    }

    fn stop(&self, reason: String) -> Stop {
        Some((self.acknowledged.clone(), reason))
    }

    /// Whether another batch fits before the deadline.
    fn time_for_a_batch(&self) -> bool {
        self.deadline.allows(
            Duration::ZERO,
            (self.slowest_batch * 3 / 2).max(MIN_BATCH_TIME),
        )
    }

    /// Indexes one batch (in reader order) and moves the cursor past what
    /// Elasticsearch accounted for; why replay must stop, when it must.
    async fn batch(&mut self, documents: &[Document]) -> Option<String> {
        let prefix = self.client.settings().index_prefix.clone();
        let entries: Vec<BulkEntry> = documents
            .iter()
            .map(|d| BulkEntry::new(&index_name(&prefix, &d.timestamp), d))
            .collect();
        let report = self.sink.index(&entries, self.deadline).await;
        let summary = &mut self.summary;
        summary.documents += entries.len();
        summary.created += report.created;
        summary.already_indexed += report.already_indexed;
        summary.bulk_requests += report.requests;
        if !report.rejected.is_empty() {
            let (first, reason) = &report.rejected[0];
            tracing::error!(
                documents = report.rejected.len(),
                first = %format_args!("{}: {reason}", entries[*first].id),
                "Elasticsearch refused archived documents for good; they are reported, not indexed"
            );
        }
        for (position, reason) in &report.rejected {
            summary.rejected += 1;
            if summary.rejections.len() < LISTED {
                let entry = &entries[*position];
                summary.rejections.push(Refusal {
                    index: entry.index.clone(),
                    id: entry.id.clone(),
                    reason: reason.clone(),
                });
            }
        }
        if report.pipeline_missing && self.client.settings().pipeline.is_some() {
            // Documents arrive trimmed: the pipeline is only a fallback. Do
            // not have every batch refused and re-sent.
            tracing::warn!(pipeline = ?self.client.settings().pipeline, "the ingest pipeline does not exist; replaying without it");
            self.client = self.client.without_pipeline();
            self.sink = BulkSink::new(self.client.clone(), self.bulk.clone());
        }
        // Acknowledged: every document before the first one Elasticsearch
        // did not account for (later ones it took answer 409 next time).
        let first_open = report
            .unaccounted
            .iter()
            .map(|(position, _)| *position)
            .min()
            .unwrap_or(documents.len());
        if let Some(last) = first_open.checked_sub(1).and_then(|i| documents.get(i)) {
            self.acknowledged = Cursor(SortKey::of(last));
        }
        if let Some(halted) = report.halted {
            self.summary.not_indexed += report.unaccounted.len();
            return Some(halted.to_string());
        }
        if let Some((_, reason)) = report.unaccounted.first() {
            self.summary.not_indexed += report.unaccounted.len();
            return Some(format!(
                "Elasticsearch did not take {} of {} documents: {reason}",
                report.unaccounted.len(),
                entries.len()
            ));
        }
        None
    }

    fn unreadable(&mut self, unreadable: Unreadable) {
        self.summary.unreadable += 1;
        if self.summary.unreadable_details.len() < LISTED {
            self.summary.unreadable_details.push(unreadable);
        }
    }

    fn show(&self, at: Option<RunTime>) {
        let (from, to) = (self.request.from, self.request.to);
        let fraction = at.map(|at| {
            let span = (to - from).as_seconds_f64();
            (time_of(&at) - from).as_seconds_f64() / span
        });
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let s = &self.summary;
        self.progress.update(
            fraction,
            &format!(
                "{} objects, {} Parquet days, {} documents ({:.0}/s): {} created, {} already indexed, {} rejected; at {}",
                self.counts.objects,
                self.counts.parquet_files,
                s.documents,
                s.documents as f64 / seconds,
                s.created,
                s.already_indexed,
                s.rejected,
                at.map(|t| t.to_string()).unwrap_or_default()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_are_dates_or_rfc3339_times_and_from_comes_first() {
        let request =
            ReplayRequest::new("2026-01-01", "2026-02-01T00:00:00+01:00", None).expect("valid");
        assert_eq!(format_time(request.from()), "2026-01-01T00:00:00Z");
        assert_eq!(format_time(request.to()), "2026-01-31T23:00:00Z");
        let at = |t: &str| RunTime::parse(t).expect("valid");
        assert!(request.contains(&at("2026-01-01T00:00:00Z")));
        assert!(request.contains(&at("2026-01-31T22:59:59.999Z")));
        assert!(!request.contains(&at("2026-01-31T23:00:00Z")));
        assert!(!request.contains(&at("2025-12-31T23:59:59.999Z")));
        for (from, to, why) in [
            ("2026-02-01", "2026-01-01", "must be before `to`"),
            ("2026-01-01", "2026-01-01", "must be before `to`"),
            ("yesterday", "2026-01-01", "`from` must be a date"),
            ("2026-01-01", "2026-13-01", "`to` must be a date"),
        ] {
            let error = ReplayRequest::new(from, to, None).unwrap_err();
            assert!(error.contains(why), "{from} {to}: {error}");
        }
    }

    #[test]
    fn the_event_names_the_field_that_is_wrong() {
        let event = |value: Value| {
            ReplayRequest::from_event(value.as_object().expect("object")).map_err(|e| e.to_string())
        };
        let request = event(json!({"from": "2026-01-01", "to": "2026-02-01",
            "cursor": "2026-01-05T10:00:00Z/library/httpd"}))
        .expect("valid");
        let cursor = request.cursor.expect("cursor");
        assert_eq!(cursor.0.name, "httpd");
        assert_eq!(cursor.to_string(), "2026-01-05T10:00:00Z/library/httpd");
        // Nothing acknowledged yet: a time; an earlier version's object key
        // goes on from its time.
        for (given, shown) in [
            ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            (
                "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz#5000",
                "2026-01-05T10:00:00Z",
            ),
        ] {
            let cursor = Cursor::parse(given).expect("valid");
            assert_eq!(cursor.to_string(), shown);
            assert!(cursor.0.namespace.is_empty());
        }
        for (value, why) in [
            (json!({"to": "2026-02-01"}), "needs `from`"),
            (json!({"from": "2026-01-01"}), "needs `to`"),
            (
                json!({"from": 2026, "to": "2026-02-01"}),
                "`from` must be a string",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-02-01", "cursor": "spool/x.ndjson"}),
                "is not TIME/NAMESPACE/NAME",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-02-01", "cursor": "archive/a.ndjson.gz#x"}),
                "is not an archive key",
            ),
        ] {
            let error = event(value.clone()).unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
    }
}
