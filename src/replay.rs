//! Replay: rebuilds any index from the archive ([`crate::archive`]).
//!
//! It lists the archive partitions that intersect `[from, to)`, reads their
//! objects in key order (the order of the measurements), keeps the documents
//! with `from <= @timestamp < to` and indexes them into `<prefix>-<yyyy>`
//! with the same `create` action and `_id` a run uses ([`BulkEntry::new`]),
//! through the one bulk sink. So replaying is always safe: what is already
//! indexed answers 409 and counts as `already_indexed`, and replaying twice
//! adds nothing.
//!
//! Nothing is dropped silently: documents the index refuses for good are
//! counted and listed with their reason, archive lines that are not a
//! document likewise, and when Elasticsearch does not take a batch (down,
//! 429/5xx to the end) or the deadline comes, replay stops and returns a
//! `cursor` — the object (and the documents of it already done) to continue
//! from. In Lambda the manual event `{"action":"replay",…,"cursor":…}`
//! passes it back; locally `--cursor` does.

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

/// Where a replay that stopped continues: an object's key, and how many of
/// its in-range documents were already done (`KEY` or `KEY#N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub done: usize,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, done) = match text.rsplit_once('#') {
            Some((key, done)) => (
                key,
                done.parse::<usize>()
                    .map_err(|_| format!("cursor {text:?}: {done:?} after # is not a count"))?,
            ),
            None => (text, 0),
        };
        if !key.starts_with(archive::PREFIX) || !key.ends_with(archive::SUFFIX) {
            return Err(format!(
                "cursor {text:?} is not an archive key (archive/…{}, as a replay returned it)",
                archive::SUFFIX
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            done,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.done {
            0 => f.write_str(&self.key),
            done => write!(f, "{}#{done}", self.key),
        }
    }
}

/// `2026-01-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_bound(field: &str, text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Some(date) = plain_date(text) {
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

/// `YYYY-MM-DD`, a valid day.
fn plain_date(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
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

/// An archive object, or one line of it, that holds no document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub key: String,
    /// The line (from 1); none when the whole object is unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub reason: String,
}

/// What a replay did. Every document in range it read is in exactly one of
/// `created`, `already_indexed`, `rejected` and `not_indexed`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub from: String,
    pub to: String,
    /// Archive objects read to the end.
    pub objects: usize,
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
    /// Archive lines (or whole objects) that are not a document.
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
        summary: ReplaySummary {
            from: format_time(request.from),
            to: format_time(request.to),
            ..ReplaySummary::default()
        },
    };
    let stop = run.all().await?;
    let mut summary = run.summary;
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
    summary: ReplaySummary,
}

/// Where to continue, and why it stopped.
type Stop = Option<(Cursor, String)>;

impl Replay<'_> {
    async fn all(&mut self) -> Result<Stop, Error> {
        let cursor = self.request.cursor.clone();
        let from_key = cursor.as_ref().map(|c| c.key.as_str());
        for prefix in archive::prefixes_between(self.request.from, self.request.to) {
            let keys = self
                .store
                .list(&prefix, from_key)
                .await
                .map_err(|e| Error::Archive(e.to_string()))?;
            for key in keys {
                let skip = cursor
                    .as_ref()
                    .filter(|c| c.key == key)
                    .map_or(0, |c| c.done);
                if let Some(stop) = self.object(&key, skip).await {
                    return Ok(Some(stop));
                }
            }
        }
        Ok(None)
    }

    /// Whether another batch fits before the deadline.
    fn time_for_a_batch(&self) -> bool {
        self.deadline.allows(
            Duration::ZERO,
            (self.slowest_batch * 3 / 2).max(MIN_BATCH_TIME),
        )
    }

    /// Replays one object, skipping its first `skip` documents in range;
    /// where to continue when it had to stop.
    async fn object(&mut self, key: &str, skip: usize) -> Stop {
        let stop = |done: usize, reason: String| {
            Some((
                Cursor {
                    key: key.to_owned(),
                    done,
                },
                reason,
            ))
        };
        if !self.time_for_a_batch() {
            return stop(skip, "the invocation's deadline".into());
        }
        let read_started = Instant::now();
        let body = match self.store.get(key).await {
            Ok(body) => body,
            // Perhaps passing (S3 throttling): stop here, so nothing after
            // it is read before it.
            Err(error) => return stop(skip, error.to_string()),
        };
        let decoded = match archive::decode(&body) {
            Ok(decoded) => decoded,
            Err(reason) => {
                tracing::error!(key = %key, %reason, "unreadable archive object; reported and skipped");
                self.unreadable(key, None, reason);
                self.summary.objects += 1;
                return None;
            }
        };
        for (line, reason) in decoded.unreadable {
            tracing::error!(key = %key, line, %reason, "unreadable archive line; reported and skipped");
            self.unreadable(key, Some(line), reason);
        }
        let documents: Vec<Document> = decoded
            .documents
            .into_iter()
            .filter(|d| self.request.contains(&d.timestamp))
            .skip(skip)
            .collect();
        let mut batch_started = read_started;
        let batches = documents.len().div_ceil(BATCH);
        for (number, batch) in documents.chunks(BATCH).enumerate() {
            let done = skip + number * BATCH;
            if number > 0 && !self.time_for_a_batch() {
                return stop(done, "the invocation's deadline".into());
            }
            if let Some(reason) = self.batch(batch).await {
                return stop(done, reason);
            }
            self.slowest_batch = self.slowest_batch.max(batch_started.elapsed());
            batch_started = Instant::now();
            if number + 1 < batches {
                self.show(batch.last().map(|d| d.timestamp));
            }
        }
        self.summary.objects += 1;
        self.show(documents.last().map(|d| d.timestamp));
        None
    }

    /// Indexes one batch; why replay must stop, when it must.
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
        if let Some(halted) = report.halted {
            summary.not_indexed += report.unaccounted.len();
            return Some(halted.to_string());
        }
        if let Some((_, reason)) = report.unaccounted.first() {
            summary.not_indexed += report.unaccounted.len();
            return Some(format!(
                "Elasticsearch did not take {} of {} documents: {reason}",
                report.unaccounted.len(),
                entries.len()
            ));
        }
        None
    }

    fn unreadable(&mut self, key: &str, line: Option<usize>, reason: String) {
        self.summary.unreadable += 1;
        if self.summary.unreadable_details.len() < LISTED {
            self.summary.unreadable_details.push(Unreadable {
                key: key.to_owned(),
                line,
                reason,
            });
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
                "{} objects, {} documents ({:.0}/s): {} created, {} already indexed, {} rejected; at {}",
                s.objects,
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
            "cursor": "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz#5000"}))
        .expect("valid");
        assert_eq!(
            request.cursor,
            Some(Cursor {
                key: "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz".into(),
                done: 5000
            })
        );
        assert_eq!(
            request.cursor.expect("cursor").to_string(),
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz#5000"
        );
        for (value, why) in [
            (json!({"to": "2026-02-01"}), "needs `from`"),
            (json!({"from": "2026-01-01"}), "needs `to`"),
            (
                json!({"from": 2026, "to": "2026-02-01"}),
                "`from` must be a string",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-02-01", "cursor": "spool/x.ndjson"}),
                "not an archive key",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-02-01", "cursor": "archive/a.ndjson.gz#x"}),
                "is not a count",
            ),
        ] {
            let error = event(value.clone()).unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
    }
}
