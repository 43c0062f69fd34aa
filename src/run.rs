//! The handler that ties one run together: event → settings → Docker Hub →
//! documents → `_bulk` (or the spool) → summary.
//!
//! It is the same code in Lambda and in local mode; only the settings source
//! and what is done with the summary differ.

use crate::bulk::{BulkEntry, BulkOptions, BulkSink};
use crate::config::{DEFAULT_INDEX_PREFIX, DEFAULT_MAX_EVENT_AGE, Needs, Settings, SettingsSource};
use crate::delivery::{Deliverer, IndexTiming};
use crate::document::{Document, RunTime, index_name};
use crate::error::Error;
use crate::hub::{FetchPlan, HubClient};
use crate::image_ref;
use crate::retry::Deadline;
use crate::setup;
use crate::spool::SpoolStore;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The schedule's period: the rotation of the repository list moves on by
/// one step per period.
const ROTATION_PERIOD_SECS: u64 = 300;

/// Time kept back from the Lambda deadline to log and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run,
    Setup,
}

/// A parsed event: the EventBridge `Scheduled Event`, or a manual object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: Action,
    pub time: Option<RunTime>,
    /// Replaces the SSM image list for this run.
    pub images: Option<Vec<String>>,
    pub dry_run: bool,
    /// An EventBridge scheduled event (`source: aws.events`): its `time` is
    /// when the schedule fired, not a time a person asserts.
    pub scheduled: bool,
}

impl Request {
    /// Reads the fields the contract defines and ignores the rest (a
    /// scheduled event carries `id`, `source`, `resources`, …).
    pub fn from_event(event: &Value) -> Result<Self, Error> {
        let Some(object) = event.as_object() else {
            return Err(Error::InvalidEvent(format!(
                "expected a JSON object, got {}",
                json_kind(event)
            )));
        };
        let action = match object.get("action") {
            None | Some(Value::Null) => Action::Run,
            Some(Value::String(action)) if action == "setup" => Action::Setup,
            Some(Value::String(action)) => return Err(Error::UnknownAction(action.clone())),
            Some(other) => return Err(Error::UnknownAction(other.to_string())),
        };
        let time = match object.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(RunTime::parse(text).map_err(|e| Error::InvalidEvent(e.to_string()))?)
            }
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`time` must be an RFC 3339 string, got {}",
                    json_kind(other)
                )));
            }
        };
        let images = match object.get("images") {
            None | Some(Value::Null) => None,
            Some(Value::Array(entries)) => {
                let mut images = Vec::with_capacity(entries.len());
                for entry in entries {
                    let Value::String(entry) = entry else {
                        return Err(Error::InvalidEvent(format!(
                            "`images` entries must be strings, got {}",
                            json_kind(entry)
                        )));
                    };
                    images.extend(image_ref::split_list(entry).map(str::to_owned));
                }
                if images.is_empty() {
                    return Err(Error::InvalidEvent("`images` is empty".into()));
                }
                Some(images)
            }
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`images` must be an array of image references, got {}",
                    json_kind(other)
                )));
            }
        };
        let dry_run = match object.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(dry_run)) => *dry_run,
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`dry_run` must be true or false, got {}",
                    json_kind(other)
                )));
            }
        };
        let scheduled = object.get("source").and_then(Value::as_str) == Some("aws.events");
        Ok(Request {
            action,
            time,
            images,
            dry_run,
            scheduled,
        })
    }

    /// The time this run's documents are stamped with: the event's `time`,
    /// except for a scheduled event more than `max_event_age` old (a late
    /// replay), whose counts are measured now and so get `now`.
    pub fn stamp(&self, now: RunTime, max_event_age: Duration) -> (RunTime, Option<LateEvent>) {
        match self.time {
            Some(time) if self.scheduled && time.age_at(&now) > max_event_age => (
                now,
                Some(LateEvent {
                    event_time: time.to_string(),
                    age_seconds: time.age_at(&now).as_secs(),
                }),
            ),
            Some(time) => (time, None),
            None => (now, None),
        }
    }
}

/// A scheduled event that arrived too late for its `time` to be honest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateEvent {
    /// The `time` the event carried; the documents got the fetch time.
    pub event_time: String,
    pub age_seconds: u64,
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One entry of the response's `failed` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub image: String,
    pub reason: String,
}

/// The response of a run (the contract's "Result").
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub index: String,
    pub timestamp: String,
    /// Repositories and references attempted: fetched + failed entries +
    /// deferred.
    pub requested: usize,
    pub indexed: usize,
    pub already_indexed: usize,
    pub failed: Vec<Failure>,
    pub dry_run: bool,
    /// This run's documents written to the spool (Elasticsearch did not
    /// take them; a later run will).
    pub spooled: usize,
    /// Documents of earlier runs sent from the spool and now indexed.
    pub drained: usize,
    /// Spool objects still waiting after this run.
    pub spool_backlog: usize,
    /// Documents Elasticsearch refused for good, set aside under
    /// `spool/rejected/`.
    pub rejected: usize,
    /// Repositories left for a later run: the Hub's rate limit or the time
    /// could not pay for them. Not failures.
    pub deferred: usize,
    pub hub_requests: usize,
    /// Docker Hub 429 answers seen.
    pub hub_rate_limited: usize,
    pub bulk_requests: usize,
    /// Set when a late scheduled event's time was replaced by the fetch time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_event: Option<LateEvent>,
    /// Why this run's documents went to the spool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elasticsearch_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<Document>>,
    /// A dry run's documents that did not fit in the response (Lambda's
    /// 6 MB limit); local mode prints them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents_left_out: Option<usize>,
}

/// Long-lived parts of the function, built once per container.
pub struct Job<S> {
    settings: S,
    hub: HubClient,
    http: reqwest::Client,
    bulk_options: BulkOptions,
    spool: Option<Arc<dyn SpoolStore>>,
    max_event_age: Duration,
    /// What indexing cost in earlier runs of this container.
    timing: IndexTiming,
    /// The Lambda function's name: one Embedded Metric Format record per
    /// run goes to stdout (CloudWatch Logs), none in local mode.
    metrics_for: Option<String>,
    /// Until when to send without the ingest pipeline, because Elasticsearch
    /// said it does not exist: one `_bulk` request per run instead of two
    /// (every document refused, then re-sent). Checked again after
    /// [`PIPELINE_RECHECK`], and at once after a setup action.
    pipeline_missing_until: std::sync::Mutex<Option<Instant>>,
}

/// How long a warm container trusts "the pipeline does not exist".
pub const PIPELINE_RECHECK: Duration = Duration::from_secs(3600);

impl<S: SettingsSource> Job<S> {
    pub fn new(settings: S, hub: HubClient, http: reqwest::Client) -> Self {
        Self {
            settings,
            hub,
            http,
            bulk_options: BulkOptions::default(),
            spool: None,
            max_event_age: DEFAULT_MAX_EVENT_AGE,
            timing: IndexTiming::default(),
            metrics_for: None,
            pipeline_missing_until: std::sync::Mutex::new(None),
        }
    }

    fn pipeline_known_missing(&self) -> bool {
        let until = self
            .pipeline_missing_until
            .lock()
            .map_or(None, |guard| *guard);
        until.is_some_and(|until| Instant::now() < until)
    }

    /// After a run that named the pipeline: remember for an hour whether
    /// Elasticsearch said it does not exist.
    fn remember_pipeline_missing(&self, missing: bool) {
        if let Ok(mut guard) = self.pipeline_missing_until.lock() {
            *guard = missing.then(|| Instant::now() + PIPELINE_RECHECK);
        }
    }

    /// Writes one CloudWatch Embedded Metric Format line per run for
    /// `function_name` (a log line: no SDK call, no permission).
    pub fn with_metrics(mut self, function_name: impl Into<String>) -> Self {
        self.metrics_for = Some(function_name.into());
        self
    }

    pub fn with_bulk_options(mut self, options: BulkOptions) -> Self {
        self.bulk_options = options;
        self
    }

    /// Keeps what Elasticsearch does not take in `spool` (S3 or a directory).
    pub fn with_spool(mut self, spool: Arc<dyn SpoolStore>) -> Self {
        self.spool = Some(spool);
        self
    }

    /// `MAX_EVENT_AGE`.
    pub fn with_max_event_age(mut self, max_event_age: Duration) -> Self {
        self.max_event_age = max_event_age;
        self
    }

    /// The Lambda entry point: the event's JSON in, the response's JSON out.
    pub async fn invoke(&self, event: lambda_runtime::LambdaEvent<Value>) -> Result<Value, Error> {
        let deadline = Deadline::from_epoch_millis(event.context.deadline, DEADLINE_MARGIN);
        tracing::debug!(
            request_id = %event.context.request_id,
            budget_ms = deadline.remaining().as_millis() as u64,
            "invocation"
        );
        self.handle(&event.payload, deadline).await
    }

    pub async fn handle(&self, event: &Value, deadline: Deadline) -> Result<Value, Error> {
        let request = Request::from_event(event)?;
        let response = match request.action {
            Action::Setup => {
                let settings = self
                    .settings
                    .load(Needs {
                        images: false,
                        elasticsearch: true,
                    })
                    .await?;
                let es = settings
                    .elasticsearch
                    .ok_or_else(|| Error::Setup("no Elasticsearch configured".into()))?;
                let installed = setup::install(&self.http, &es, deadline).await?;
                // The pipeline may exist now: use it again from the next run.
                self.remember_pipeline_missing(false);
                installed
            }
            Action::Run => {
                let mut summary = self.run(&request, deadline).await?;
                if let Some(documents) = summary.documents.as_mut() {
                    let left_out = keep_within(documents, MAX_DOCUMENTS_BYTES);
                    if left_out > 0 {
                        tracing::warn!(
                            left_out,
                            "the dry run's documents do not all fit in a Lambda response"
                        );
                        summary.documents_left_out = Some(left_out);
                    }
                }
                serde_json::to_value(summary)
                    .map_err(|e| Error::InvalidEvent(format!("cannot encode the response: {e}")))?
            }
        };
        Ok(response)
    }

    /// One run; the summary on success, an error when the contract says the
    /// invocation fails (so EventBridge retries it).
    pub async fn run(&self, request: &Request, deadline: Deadline) -> Result<Summary, Error> {
        let started = Instant::now();
        let started_ms = crate::retry::unix_now_millis();
        let summary = self.run_once(request, deadline, started).await?;
        if let Some(function_name) = &self.metrics_for {
            let metrics = run_metrics(&summary, started.elapsed());
            // Its own line on stdout: CloudWatch extracts metrics only from
            // a log event that is exactly one JSON object.
            println!(
                "{}",
                crate::metrics::emf_line(function_name, started_ms, &metrics)
            );
        }
        Ok(summary)
    }

    async fn run_once(
        &self,
        request: &Request,
        deadline: Deadline,
        started: Instant,
    ) -> Result<Summary, Error> {
        let settings: Settings = self
            .settings
            .load(Needs {
                images: request.images.is_none(),
                elasticsearch: !request.dry_run,
            })
            .await?;
        let (timestamp, late_event) = request.stamp(RunTime::now(), self.max_event_age);
        if let Some(late) = &late_event {
            tracing::warn!(
                event_time = %late.event_time,
                age_seconds = late.age_seconds,
                timestamp = %timestamp,
                "scheduled event arrived more than MAX_EVENT_AGE late; its counts are stamped with the fetch time"
            );
        }
        let prefix = settings
            .elasticsearch
            .as_ref()
            .map_or(DEFAULT_INDEX_PREFIX, |es| es.index_prefix.as_str());
        let index = index_name(prefix, &timestamp);

        let references = request.images.as_ref().unwrap_or(&settings.images);
        let parsed = settings.parse_images(references);
        let specs = parsed.specs;
        let mut failed = Vec::new();
        for (image, reason) in parsed.invalid {
            tracing::warn!(image = %image, %reason, "invalid image reference");
            failed.push(Failure { image, reason });
        }

        let hub = self
            .hub
            .for_run(settings.hub_credentials.as_ref(), deadline)
            .await
            .map_err(|error| Error::HubAuth {
                username: settings
                    .hub_credentials
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default(),
                reason: error.to_string(),
            })?;
        // The Hub phase leaves time to index (and, failing that, to spool)
        // what it fetched.
        let indexing = !request.dry_run && settings.elasticsearch.is_some();
        let spooling = indexing && self.spool.is_some();
        let reserve = |documents: usize| {
            let mut reserve = Duration::ZERO;
            if indexing {
                reserve += self.timing.index_reserve(documents);
            }
            if spooling {
                reserve += self.timing.spool_reserve(documents);
            }
            reserve
        };
        let plan = FetchPlan {
            // One step per schedule period: successive runs start the list
            // at a different place, so deferrals rotate.
            rotation: u64::try_from(timestamp.unix_seconds()).unwrap_or(0) / ROTATION_PERIOD_SECS,
            reserve: &reserve,
            counts: settings.namespace_counts,
        };
        let outcome = hub.fetch_all(&specs, &plan, deadline).await;
        failed.extend(outcome.failed.into_iter().map(|(image, error)| Failure {
            image,
            reason: error.to_string(),
        }));
        let fetched = outcome.fetched.len();
        let deferred = outcome.deferred.len();
        if deferred > 0 {
            tracing::info!(
                deferred,
                first = %outcome.deferred[0],
                "repositories left for a later run (Docker Hub's rate limit or the time)"
            );
        }
        // All deferred is not a failure: a later run fetches them, and this
        // one still drains the spool.
        if outcome.fetched.is_empty() && deferred == 0 {
            let first = failed.first().map_or_else(
                || "no repositories to fetch".to_owned(),
                |f| format!("{}: {}", f.image, f.reason),
            );
            return Err(Error::NothingFetched {
                count: failed.len(),
                first,
            });
        }
        let documents: Vec<Document> = outcome
            .fetched
            .into_iter()
            .map(|stats| Document { timestamp, stats })
            .collect();

        let mut summary = Summary {
            index,
            timestamp: timestamp.to_string(),
            requested: fetched + failed.len() + deferred,
            indexed: 0,
            already_indexed: 0,
            failed,
            dry_run: request.dry_run,
            spooled: 0,
            drained: 0,
            spool_backlog: 0,
            rejected: 0,
            deferred,
            hub_requests: outcome.requests,
            hub_rate_limited: outcome.rate_limited,
            bulk_requests: 0,
            late_event,
            elasticsearch_error: None,
            documents: None,
            documents_left_out: None,
        };

        let es = match (&settings.elasticsearch, request.dry_run) {
            (Some(es), false) => es,
            _ => {
                log_summary(&summary, fetched, started);
                summary.documents = Some(documents);
                return Ok(summary);
            }
        };

        let entries: Vec<BulkEntry> = documents
            .iter()
            .map(|document| BulkEntry::new(&summary.index, document))
            .collect();
        drop(documents);
        let mut es = es.clone();
        let pipeline = es.pipeline.clone();
        let skipping_pipeline = pipeline.is_some() && self.pipeline_known_missing();
        if skipping_pipeline {
            es.pipeline = None;
        }
        let sink = BulkSink::new(self.http.clone(), es, self.bulk_options.clone());
        let deliverer = Deliverer {
            sink: &sink,
            spool: self.spool.as_deref(),
            timing: &self.timing,
        };
        let delivery = deliverer.deliver(entries, &timestamp, deadline).await?;
        if !skipping_pipeline {
            if delivery.pipeline_missing {
                tracing::warn!(
                    pipeline = ?pipeline,
                    recheck_after_s = PIPELINE_RECHECK.as_secs(),
                    "the ingest pipeline does not exist: setup has not been run (invoke with {{\"action\":\"setup\"}}); documents arrive trimmed, so they are indexed without it, and this container stops naming it for an hour"
                );
            }
            self.remember_pipeline_missing(delivery.pipeline_missing);
        }
        summary.indexed = delivery.created;
        summary.already_indexed = delivery.already_indexed;
        summary.spooled = delivery.spooled;
        summary.drained = delivery.drained;
        summary.spool_backlog = delivery.spool_backlog;
        summary.rejected = delivery.rejected;
        summary.bulk_requests = delivery.bulk_requests;
        summary.elasticsearch_error = delivery.elasticsearch_error;
        log_summary(&summary, fetched, started);
        Ok(summary)
    }
}

/// A Lambda response is at most 6 MB; the rest of the summary (the `failed`
/// list included) gets what the documents leave.
const MAX_DOCUMENTS_BYTES: usize = 5 * 1024 * 1024;

/// Keeps the documents whose JSON fits in `budget` bytes, in order; returns
/// how many were left out.
fn keep_within(documents: &mut Vec<Document>, budget: usize) -> usize {
    let mut used = 0;
    let mut fitting = 0;
    for document in documents.iter() {
        // The document and the comma before the next one.
        let size = serde_json::to_vec(document).map_or(usize::MAX, |bytes| bytes.len() + 1);
        if used + size > budget {
            break;
        }
        used += size;
        fitting += 1;
    }
    let left_out = documents.len() - fitting;
    documents.truncate(fitting);
    left_out
}

/// The run's figures for the metrics record.
fn run_metrics(summary: &Summary, duration: Duration) -> crate::metrics::RunMetrics {
    crate::metrics::RunMetrics {
        requested: summary.requested,
        indexed: summary.indexed,
        already_indexed: summary.already_indexed,
        failed: summary.failed.len(),
        deferred: summary.deferred,
        spooled: summary.spooled,
        drained: summary.drained,
        spool_backlog: summary.spool_backlog,
        rejected: summary.rejected,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        hub_requests: summary.hub_requests,
        hub_rate_limited: summary.hub_rate_limited,
        // Wired by the archive and the drain accounting (issues 14, 17).
        drained_already_indexed: 0,
        archived: 0,
        archive_failed: 0,
    }
}

/// The one line per run that says what happened.
fn log_summary(summary: &Summary, fetched: usize, started: Instant) {
    tracing::info!(
        index = %summary.index,
        timestamp = %summary.timestamp,
        requested = summary.requested,
        fetched,
        indexed = summary.indexed,
        already_indexed = summary.already_indexed,
        failed = summary.failed.len(),
        deferred = summary.deferred,
        spooled = summary.spooled,
        drained = summary.drained,
        spool_backlog = summary.spool_backlog,
        rejected = summary.rejected,
        hub_requests = summary.hub_requests,
        hub_rate_limited = summary.hub_rate_limited,
        bulk_requests = summary.bulk_requests,
        late_event = summary.late_event.is_some(),
        dry_run = summary.dry_run,
        duration_ms = started.elapsed().as_millis() as u64,
        "run finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_file(name: &str) -> Value {
        let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_event_file_parses_into_a_request() {
        let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("events/ exists")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        assert!(names.len() >= 3, "{names:?}");
        for name in names {
            Request::from_event(&event_file(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn scheduled_event_uses_its_time() {
        let request = Request::from_event(&event_file("scheduled.json")).expect("valid");
        assert_eq!(request.action, Action::Run);
        assert!(!request.dry_run);
        assert_eq!(request.images, None);
        assert!(request.time.is_some());
        assert!(request.scheduled);
        assert!(
            !Request::from_event(&event_file("manual.json"))
                .expect("valid")
                .scheduled
        );
    }

    #[test]
    fn only_a_late_scheduled_event_gets_the_fetch_time() {
        let now = RunTime::parse("2026-11-28T08:00:00Z").expect("valid");
        let max_age = Duration::from_secs(900);
        let request = |time: &str, source: &str| {
            Request::from_event(&json!({"time": time, "source": source})).expect("valid")
        };
        // Lambda's own retries, a few minutes late: the event's time.
        let (time, late) = request("2026-11-28T07:50:00Z", "aws.events").stamp(now, max_age);
        assert_eq!(
            (time.to_string().as_str(), late),
            ("2026-11-28T07:50:00Z", None)
        );
        // A replay from the dead-letter queue two days later: now.
        let (time, late) = request("2026-11-26T08:00:00Z", "aws.events").stamp(now, max_age);
        assert_eq!(time, now);
        assert_eq!(
            late,
            Some(LateEvent {
                event_time: "2026-11-26T08:00:00Z".into(),
                age_seconds: 2 * 86_400
            })
        );
        // A person's explicit time is honoured, however old.
        let (time, late) = request("2026-11-26T08:00:00Z", "me").stamp(now, max_age);
        assert_eq!(
            (time.to_string().as_str(), late),
            ("2026-11-26T08:00:00Z", None)
        );
        // No time: now.
        let (time, _) = Request::from_event(&json!({}))
            .expect("valid")
            .stamp(now, max_age);
        assert_eq!(time, now);
    }

    #[test]
    fn manual_events() {
        let request = Request::from_event(&json!({
            "dry_run": true, "images": ["httpd", "radoondas/* acme/app"], "time": "2026-11-27T18:35:00Z"
        }))
        .expect("valid");
        assert!(request.dry_run);
        assert_eq!(
            request.images,
            Some(vec![
                "httpd".into(),
                "radoondas/*".into(),
                "acme/app".into()
            ])
        );
        assert_eq!(
            request.time.expect("time").to_string(),
            "2026-11-27T18:35:00Z"
        );
        assert_eq!(
            Request::from_event(&json!({"action": "setup"}))
                .expect("valid")
                .action,
            Action::Setup
        );
        assert_eq!(
            Request::from_event(&json!({})).expect("valid").action,
            Action::Run
        );
    }

    #[test]
    fn a_dry_run_keeps_what_fits_in_a_lambda_response() {
        let document = |i: u64| Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats: crate::document::RepositoryStats {
                namespace: "acme".into(),
                name: format!("app{i:05}"),
                pull_count: i,
                star_count: 0,
                collaborator_count: Some(0),
            },
        };
        let one = serde_json::to_vec(&document(0)).expect("json").len() + 1;
        let mut documents: Vec<Document> = (0..10).map(document).collect();
        assert_eq!(keep_within(&mut documents, one * 4 + 3), 6);
        assert_eq!(documents.len(), 4);
        assert_eq!(documents[3], document(3));
        let mut documents: Vec<Document> = (0..10).map(document).collect();
        assert_eq!(keep_within(&mut documents, MAX_DOCUMENTS_BYTES), 0);
        assert_eq!(documents.len(), 10);
        // 40,000 repositories' documents are over 6 MB: the response stays under.
        let mut documents: Vec<Document> = (0..40_000).map(document).collect();
        let left_out = keep_within(&mut documents, MAX_DOCUMENTS_BYTES);
        assert!(left_out > 0);
        assert!(serde_json::to_vec(&documents).expect("json").len() <= MAX_DOCUMENTS_BYTES);
    }

    #[test]
    fn bad_events_are_errors_that_say_why() {
        let cases = [
            (json!({"action": "delete"}), "unknown action \"delete\""),
            (json!([1]), "expected a JSON object"),
            (json!({"images": "httpd"}), "`images` must be an array"),
            (json!({"images": []}), "`images` is empty"),
            (json!({"images": [1]}), "entries must be strings"),
            (json!({"time": "noon"}), "not an RFC 3339 timestamp"),
            (json!({"dry_run": "yes"}), "`dry_run` must be true or false"),
        ];
        for (event, expected) in cases {
            let error = Request::from_event(&event).unwrap_err().to_string();
            assert!(error.contains(expected), "{event}: {error}");
        }
    }
}
