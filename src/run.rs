//! The handler that ties one run together: event → settings → Docker Hub →
//! documents → `_bulk` (or the spool) → summary.
//!
//! It is the same code in Lambda and in local mode; only the settings source
//! and what is done with the summary differ.

use crate::archive::ArchiveStore;
use crate::config::{DEFAULT_INDEX_PREFIX, DEFAULT_MAX_EVENT_AGE, Needs, Settings, SettingsSource};
use crate::counts::RunCounts;
use crate::delivery::Deliverer;
use crate::document::{Document, RunTime, index_name};
use crate::error::Error;
use crate::es::bulk::{BulkOptions, BulkSink};
use crate::es::sigv4::AwsSigning;
use crate::es::{EsClient, PipelineMemory, setup};
use crate::event::{Action, LateEvent, Request};
use crate::hub::{FetchPlan, HubClient};
use crate::insights::Insights;
use crate::ndjson::BulkEntry;
use crate::retry::Deadline;
use crate::spool::SpoolStore;
use crate::timing::IndexTiming;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use crate::es::PIPELINE_RECHECK;

/// The schedule's period: the rotation of the repository list moves on by
/// one step per period.
const ROTATION_PERIOD_SECS: u64 = 300;

/// Time kept back from the Lambda deadline to log and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// One entry of the response's `failed` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub image: String,
    pub reason: String,
}

/// The response of a run (the contract's "Result"): the run's counters
/// ([`RunCounts`], flattened into the same object, and reachable as
/// `summary.indexed` through `Deref`) and what they do not say.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub index: String,
    pub timestamp: String,
    #[serde(flatten)]
    pub counts: RunCounts,
    pub failed: Vec<Failure>,
    pub dry_run: bool,
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

impl std::ops::Deref for Summary {
    type Target = RunCounts;
    fn deref(&self) -> &RunCounts {
        &self.counts
    }
}

impl Summary {
    fn log(&self) {
        self.counts.log(
            &self.index,
            &self.timestamp,
            self.late_event.is_some(),
            self.dry_run,
        );
    }
}

/// Long-lived parts of the function, built once per container.
pub struct Job<S> {
    settings: S,
    hub: HubClient,
    http: reqwest::Client,
    bulk_options: BulkOptions,
    spool: Option<Arc<dyn SpoolStore>>,
    /// Where every run's documents are archived (see [`crate::archive`]).
    archive: Option<Arc<dyn ArchiveStore>>,
    /// Where a failed archive write's pending copy waits (see
    /// [`crate::archive::pending`]); `None`: the archive's own store.
    archive_pending: Option<Arc<dyn ArchiveStore>>,
    /// Archive documents neither store took, for this container's next run.
    archive_held: crate::archive::pending::Held,
    max_event_age: Duration,
    /// What indexing cost in earlier runs of this container.
    timing: IndexTiming,
    /// The Lambda function's name and where its one Embedded Metric Format
    /// record per run goes (stdout: CloudWatch Logs); none in local mode.
    metrics_for: Option<(String, MetricsWriter)>,
    pipeline_memory: PipelineMemory,
    /// Bytes of a spooled object drained at a time.
    drain_slice_bytes: u64,
    /// Signs Elasticsearch requests when `elasticsearch/aws_auth` is set.
    aws: Option<AwsSigning>,
    /// Badges and alerts from the archive (see [`crate::insights`]).
    insights: Arc<Insights>,
}

/// Where a run's metrics record line goes.
pub type MetricsWriter = Arc<dyn Fn(&str) + Send + Sync>;

impl<S: SettingsSource> Job<S> {
    pub fn new(settings: S, hub: HubClient, http: reqwest::Client) -> Self {
        Self {
            settings,
            hub,
            http,
            bulk_options: BulkOptions::default(),
            spool: None,
            archive: None,
            archive_pending: None,
            archive_held: Default::default(),
            max_event_age: DEFAULT_MAX_EVENT_AGE,
            timing: IndexTiming::default(),
            metrics_for: None,
            pipeline_memory: PipelineMemory::default(),
            drain_slice_bytes: crate::delivery::SLICE_BYTES,
            aws: None,
            insights: Arc::default(),
        }
    }

    /// Badges and alerts after each run, read from the archive.
    pub fn with_insights(mut self, insights: Insights) -> Self {
        self.insights = Arc::new(insights);
        self
    }

    /// Signs Elasticsearch requests with SigV4 when the settings say
    /// `elasticsearch/aws_auth`, with `aws`'s credentials provider, region
    /// and clock (see [`crate::es::sigv4`]).
    pub fn with_aws(mut self, aws: &aws_types::SdkConfig) -> Self {
        self.aws = Some(AwsSigning::from_sdk_config(aws));
        self
    }

    /// The client for `settings`, signing when they ask for it.
    pub fn es_client(&self, settings: crate::config::EsSettings) -> Result<EsClient, Error> {
        EsClient::new(self.http.clone(), settings).with_aws(self.aws.as_ref())
    }

    /// Writes one CloudWatch Embedded Metric Format line per run for
    /// `function_name` (a log line: no SDK call, no permission).
    pub fn with_metrics(self, function_name: impl Into<String>) -> Self {
        // Its own line on stdout: CloudWatch extracts metrics only from a
        // log event that is exactly one JSON object, and no log level can
        // filter a line that does not go through the logger.
        self.with_metrics_writer(function_name, Arc::new(|line: &str| println!("{line}")))
    }

    /// [`Job::with_metrics`], with the record going to `writer` (tests).
    pub fn with_metrics_writer(
        mut self,
        function_name: impl Into<String>,
        writer: MetricsWriter,
    ) -> Self {
        self.metrics_for = Some((function_name.into(), writer));
        self
    }

    /// Drains spooled objects `bytes` at a time (default
    /// [`crate::delivery::SLICE_BYTES`]); small values let tests reach the
    /// paths of objects larger than a slice with a few documents.
    pub fn with_drain_slice_bytes(mut self, bytes: u64) -> Self {
        self.drain_slice_bytes = bytes.max(1);
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

    /// Archives every run's documents in `archive` (S3 or a directory),
    /// with pending copies in the same store until
    /// [`Job::with_archive_pending`] says otherwise.
    pub fn with_archive(mut self, archive: Arc<dyn ArchiveStore>) -> Self {
        self.archive = Some(archive);
        self.archive_pending = None;
        self
    }

    /// Keeps pending copies of failed archive writes in `pending` (the
    /// spool's bucket) rather than in the archive's own store.
    pub fn with_archive_pending(mut self, pending: Arc<dyn ArchiveStore>) -> Self {
        self.archive_pending = Some(pending);
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
        match request.action {
            Action::Setup => self.setup(deadline).await,
            Action::Replay(replay) => {
                let summary = self
                    .replay(&replay, deadline, &crate::progress::Silent)
                    .await?;
                serde_json::to_value(summary)
                    .map_err(|e| Error::InvalidEvent(format!("cannot encode the response: {e}")))
            }
            Action::Compact(day) => {
                let summary = self.compact(day, Some(deadline)).await?;
                serde_json::to_value(summary)
                    .map_err(|e| Error::InvalidEvent(format!("cannot encode the response: {e}")))
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
                    .map_err(|e| Error::InvalidEvent(format!("cannot encode the response: {e}")))
            }
        }
    }

    /// The setup action: installs the ingest pipeline and the index template,
    /// and says what it did.
    pub async fn setup(&self, deadline: Deadline) -> Result<Value, Error> {
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
        let installed = setup::install(&self.es_client(es)?, deadline).await?;
        // The pipeline may exist now: use it again from the next run.
        self.pipeline_memory.remember(false);
        Ok(installed)
    }

    /// The replay action: archived documents indexed again, within the
    /// deadline (see [`crate::replay`]).
    pub async fn replay(
        &self,
        request: &crate::replay::ReplayRequest,
        deadline: Deadline,
        progress: &dyn crate::progress::Progress,
    ) -> Result<crate::replay::ReplaySummary, Error> {
        let (archive, es) = self.history().await?;
        let client = self.es_client(es)?;
        crate::replay::replay(
            &*archive,
            &client,
            &self.bulk_options,
            request,
            deadline,
            progress,
        )
        .await
    }

    /// The compact action: `day`, else yesterday (UTC) and every day
    /// marked due, into Parquet (see [`crate::archive::compact`]), built in
    /// the temporary directory (Lambda's /tmp).
    pub async fn compact(
        &self,
        day: Option<time::Date>,
        deadline: Option<Deadline>,
    ) -> Result<crate::archive::compact::CompactSummary, Error> {
        let archive = self.archive.clone().ok_or_else(|| {
            Error::Archive(
                "no archive configured: set ARCHIVE_BUCKET (locally: --archive DIR or s3://BUCKET)"
                    .into(),
            )
        })?;
        let days = match day {
            Some(day) => vec![day],
            None => {
                let yesterday = time::OffsetDateTime::now_utc().date().previous_day();
                let yesterday = yesterday.unwrap_or(time::Date::MIN);
                crate::archive::compact::due_days(&*archive, yesterday)
                    .await
                    .map_err(|e| Error::Archive(e.to_string()))?
            }
        };
        let scratch = std::env::temp_dir();
        let summary = crate::archive::compact::compact(&*archive, &days, &scratch, deadline).await;
        if summary.days.is_empty() && !summary.failed.is_empty() {
            return Err(Error::Archive(summary.failed.join("; ")));
        }
        Ok(summary)
    }

    /// The archive and the Elasticsearch settings, for replay and
    /// export-index: both must be configured.
    pub async fn history(
        &self,
    ) -> Result<(Arc<dyn ArchiveStore>, crate::config::EsSettings), Error> {
        let archive = self.archive.clone().ok_or_else(|| {
            Error::Archive(
                "no archive configured: set ARCHIVE_BUCKET (locally: --archive DIR or s3://BUCKET)"
                    .into(),
            )
        })?;
        let needs = Needs {
            images: false,
            elasticsearch: true,
        };
        let es = self
            .settings
            .load(needs)
            .await?
            .elasticsearch
            .ok_or_else(|| {
                Error::Archive("no Elasticsearch configured to replay into or export from".into())
            })?;
        Ok((archive, es))
    }

    /// The cluster a run, setup or replay of this job writes to, read as
    /// they read it: local mode names it before writing.
    pub async fn elasticsearch(&self) -> Result<crate::config::EsSettings, Error> {
        let needs = Needs {
            images: false,
            elasticsearch: true,
        };
        self.settings
            .load(needs)
            .await?
            .elasticsearch
            .ok_or_else(|| Error::Setup("no Elasticsearch configured".into()))
    }

    /// One run; the summary on success, an error when the contract says the
    /// invocation fails (so EventBridge retries it). Either way the run's
    /// one log line and its metrics record say what it did: the failures
    /// the alarms exist for are reported too.
    pub async fn run(&self, request: &Request, deadline: Deadline) -> Result<Summary, Error> {
        let started = Instant::now();
        let started_ms = crate::retry::unix_now_millis();
        let mut counts = RunCounts {
            // No spool, nothing waiting; with one, unknown until listed.
            spool_backlog: self.spool.is_none().then_some(0),
            ..RunCounts::default()
        };
        let result = self.run_once(request, deadline, &mut counts).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        counts.duration_ms = duration_ms;
        let result = result.map(|mut summary| {
            summary.counts.duration_ms = duration_ms;
            summary
        });
        match &result {
            Ok(summary) => summary.log(),
            Err(error) => counts.log_failure(error),
        }
        if let Some((function_name, writer)) = &self.metrics_for {
            let counts = result.as_ref().map_or(&counts, |summary| &summary.counts);
            writer(&crate::metrics::emf_line(function_name, started_ms, counts));
        }
        result
    }

    async fn run_once(
        &self,
        request: &Request,
        deadline: Deadline,
        counts: &mut RunCounts,
    ) -> Result<Summary, Error> {
        let settings: Settings = self
            .settings
            .load(Needs {
                images: request.images.is_none(),
                elasticsearch: !request.dry_run,
            })
            .await?;
        // The client that will index, built before anything is fetched: a
        // signing setup that cannot work (no region) fails the run now,
        // with nothing fetched to lose.
        let sink = match (&settings.elasticsearch, request.dry_run) {
            (Some(es), false) => {
                let mut es = es.clone();
                let pipeline = es.pipeline.clone();
                let skipping_pipeline = pipeline.is_some() && self.pipeline_memory.known_missing();
                if skipping_pipeline {
                    es.pipeline = None;
                }
                let sink = BulkSink::new(self.es_client(es)?, self.bulk_options.clone());
                Some((sink, pipeline, skipping_pipeline))
            }
            _ => None,
        };
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
            if indexing {
                self.timing.reserve(documents, spooling)
            } else {
                Duration::ZERO
            }
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
            reason: crate::secrets::clean(&error.to_string()),
        }));
        let fetched = outcome.fetched.len();
        let deferred = outcome.deferred.len();
        counts.requested = fetched + failed.len() + deferred;
        counts.fetched = fetched;
        counts.failed = failed.len();
        counts.deferred = deferred;
        counts.hub_requests = outcome.requests;
        counts.hub_rate_limited = outcome.rate_limited;
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
            counts: counts.clone(),
            failed,
            dry_run: request.dry_run,
            late_event,
            elasticsearch_error: None,
            documents: None,
            documents_left_out: None,
        };

        let Some((sink, pipeline, skipping_pipeline)) = sink else {
            summary.documents = Some(documents);
            return Ok(summary);
        };

        let entries: Vec<BulkEntry> = documents
            .iter()
            .map(|document| BulkEntry::new(&summary.index, document))
            .collect();
        let deliverer = Deliverer {
            sink: &sink,
            spool: self.spool.as_deref(),
            timing: &self.timing,
            slice_bytes: self.drain_slice_bytes,
        };
        // The archive records measurements, whatever Elasticsearch does with
        // them: written beside the delivery, and accounted for before a
        // failed delivery fails the run.
        let archiving = async {
            match self.archive.as_deref() {
                Some(store) => {
                    let pending = self.archive_pending.as_deref().unwrap_or(store);
                    Some(
                        crate::archive::pending::archive_run(
                            store,
                            pending,
                            &self.archive_held,
                            &documents,
                            &timestamp,
                            deadline,
                        )
                        .await,
                    )
                }
                None => None,
            }
        };
        let delivering = deliverer.deliver(entries, &timestamp, deadline, counts);
        let (archived, delivery) = tokio::join!(archiving, delivering);
        if let Some(archived) = &archived {
            crate::archive::pending::account(archived, counts);
        }
        if let Some(archive) = self.archive.as_deref()
            && self.insights.is_on()
        {
            let limit = deadline.timeout(crate::insights::TIMEOUT);
            let insights = self
                .insights
                .after_run(archive, &documents, &settings.insights, limit);
            crate::insights::account(insights, limit, counts).await;
        }
        drop(documents);
        let delivery = delivery?;
        summary.counts = counts.clone();
        if !skipping_pipeline {
            if delivery.pipeline_missing {
                tracing::warn!(
                    pipeline = ?pipeline,
                    recheck_after_s = PIPELINE_RECHECK.as_secs(),
                    "the ingest pipeline does not exist: setup has not been run (invoke with {{\"action\":\"setup\"}}); documents arrive trimmed, so they are indexed without it, and this container stops naming it for an hour"
                );
            }
            self.pipeline_memory.remember(delivery.pipeline_missing);
        }
        summary.elasticsearch_error = delivery
            .elasticsearch_error
            .map(|reason| crate::secrets::clean(&reason));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
