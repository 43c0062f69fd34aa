//! The handler that ties one run together: event → settings → Docker Hub →
//! documents → `_bulk` → summary.
//!
//! It is the same code in Lambda and in local mode; only the settings source
//! and what is done with the summary differ.

use crate::bulk::{BulkOptions, BulkSink};
use crate::config::{DEFAULT_INDEX_PREFIX, Needs, Settings, SettingsSource};
use crate::document::{Document, RunTime, index_name};
use crate::error::Error;
use crate::hub::HubClient;
use crate::image_ref;
use crate::retry::Deadline;
use crate::setup;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

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
        Ok(Request {
            action,
            time,
            images,
            dry_run,
        })
    }
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
    /// Repositories and references attempted: indexed (or, on a dry run,
    /// fetched) + already indexed + failed.
    pub requested: usize,
    pub indexed: usize,
    pub already_indexed: usize,
    pub failed: Vec<Failure>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<Document>>,
}

/// Long-lived parts of the function, built once per container.
pub struct Job<S> {
    settings: S,
    hub: HubClient,
    http: reqwest::Client,
    bulk_options: BulkOptions,
}

impl<S: SettingsSource> Job<S> {
    pub fn new(settings: S, hub: HubClient, http: reqwest::Client) -> Self {
        Self {
            settings,
            hub,
            http,
            bulk_options: BulkOptions::default(),
        }
    }

    pub fn with_bulk_options(mut self, options: BulkOptions) -> Self {
        self.bulk_options = options;
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
                setup::install(&self.http, &es, deadline).await?
            }
            Action::Run => serde_json::to_value(self.run(&request, deadline).await?)
                .map_err(|e| Error::InvalidEvent(format!("cannot encode the response: {e}")))?,
        };
        Ok(response)
    }

    /// One run; the summary on success, an error when the contract says the
    /// invocation fails (so EventBridge retries it).
    pub async fn run(&self, request: &Request, deadline: Deadline) -> Result<Summary, Error> {
        let started = Instant::now();
        let settings: Settings = self
            .settings
            .load(Needs {
                images: request.images.is_none(),
                elasticsearch: !request.dry_run,
            })
            .await?;
        let timestamp = request.time.unwrap_or_else(RunTime::now);
        let prefix = settings
            .elasticsearch
            .as_ref()
            .map_or(DEFAULT_INDEX_PREFIX, |es| es.index_prefix.as_str());
        let index = index_name(prefix, &timestamp);

        let references = request.images.as_ref().unwrap_or(&settings.images);
        let mut failed = Vec::new();
        let mut specs = Vec::with_capacity(references.len());
        for reference in references {
            match image_ref::parse(reference) {
                Ok(spec) => specs.push((reference.clone(), spec)),
                Err(error) => {
                    tracing::warn!(image = %reference, %error, "invalid image reference");
                    failed.push(Failure {
                        image: reference.clone(),
                        reason: format!("invalid reference: {error}"),
                    });
                }
            }
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
        let outcome = hub
            .fetch_all(&specs, &crate::hub::FetchPlan::default(), deadline)
            .await;
        failed.extend(outcome.failed.into_iter().map(|(image, error)| Failure {
            image,
            reason: error.to_string(),
        }));
        let fetched = outcome.fetched.len();
        if outcome.fetched.is_empty() {
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
            requested: fetched + failed.len(),
            indexed: 0,
            already_indexed: 0,
            failed,
            dry_run: request.dry_run,
            documents: None,
        };

        let es = match (&settings.elasticsearch, request.dry_run) {
            (Some(es), false) => es,
            _ => {
                log_summary(&summary, fetched, 0, started);
                summary.documents = Some(documents);
                return Ok(summary);
            }
        };

        let sink = BulkSink::new(self.http.clone(), es.clone(), self.bulk_options.clone());
        let report = sink.index(&summary.index, &documents, deadline).await?;
        summary.indexed = report.created;
        summary.already_indexed = report.already_indexed;
        log_summary(&summary, fetched, report.requests, started);
        if let Some((id, reason)) = report.failed.first() {
            tracing::warn!(
                documents = report.failed.len(),
                first = %format_args!("{id}: {reason}"),
                "documents not indexed"
            );
            return Err(Error::NotIndexed {
                index: summary.index,
                count: report.failed.len(),
                total: documents.len(),
                first: format!("{id}: {reason}"),
            });
        }
        Ok(summary)
    }
}

/// The one line per run that says what happened.
fn log_summary(summary: &Summary, fetched: usize, bulk_requests: usize, started: Instant) {
    tracing::info!(
        index = %summary.index,
        timestamp = %summary.timestamp,
        requested = summary.requested,
        fetched,
        indexed = summary.indexed,
        already_indexed = summary.already_indexed,
        failed = summary.failed.len(),
        bulk_requests,
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
