//! The one Elasticsearch (or OpenSearch) client: every request to the
//! cluster — `_bulk`, setup's reads and writes — is built here, with the
//! cluster's URL, its credentials, `Accept: application/json`, a timeout and
//! a capped read of the answer. What an answer *means* is decided in
//! [`response`]; the bulk sink ([`bulk`]) and setup ([`setup`]) only say
//! what to send.

pub mod bulk;
pub mod response;
pub mod search;
pub mod setup;

use crate::config::EsSettings;
use crate::error::Error;
use crate::http::{ReadError, error_chain, read_capped, transport_reason};
use reqwest::{Method, StatusCode, Url, header};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A request to the cluster.
pub(crate) struct EsRequest<'a> {
    pub(crate) method: Method,
    /// Path segments under the cluster's URL, each percent-encoded (a name
    /// never changes the path's shape).
    pub(crate) path: &'a [&'a str],
    pub(crate) query: &'a [(&'a str, &'a str)],
    /// The body and its `Content-Type`.
    pub(crate) body: Option<(&'static str, Vec<u8>)>,
    pub(crate) timeout: Duration,
    /// The most bytes of the answer to read.
    pub(crate) max_response: usize,
}

/// The cluster's answer: any status, with its body.
pub(crate) struct EsAnswer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// Why there is no answer to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EsFailure {
    /// The configured URL cannot take the path (checked when settings are
    /// read, so only a bug reaches this).
    Url(String),
    /// No HTTP answer: connection refused, DNS, TLS, timeout.
    Transport(String),
    /// The answer began but could not be read to the end.
    Read(String),
    /// The answer is larger than the request allowed.
    TooLarge,
}

impl std::fmt::Display for EsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EsFailure::Url(reason) | EsFailure::Transport(reason) => f.write_str(reason),
            EsFailure::Read(reason) => {
                write!(f, "connection error while reading the response: {reason}")
            }
            EsFailure::TooLarge => f.write_str("response too large to read"),
        }
    }
}

/// Elasticsearch at one URL with one set of credentials.
#[derive(Debug, Clone)]
pub struct EsClient {
    http: reqwest::Client,
    settings: EsSettings,
}

impl EsClient {
    pub fn new(http: reqwest::Client, settings: EsSettings) -> Self {
        Self { http, settings }
    }

    pub fn settings(&self) -> &EsSettings {
        &self.settings
    }

    /// The URL of `path` (segments, each percent-encoded) under the
    /// cluster's URL, with `query`.
    pub(crate) fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Url, EsFailure> {
        let base = &self.settings.url;
        let mut url = Url::parse(base)
            .map_err(|e| EsFailure::Url(format!("Elasticsearch URL {base}: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| EsFailure::Url(format!("Elasticsearch URL {base} cannot have a path")))?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one request and reads the answer, whatever its status.
    pub(crate) async fn send(&self, request: EsRequest<'_>) -> Result<EsAnswer, EsFailure> {
        let url = self.url(request.path, request.query)?;
        let mut builder = self
            .http
            .request(request.method, url)
            .header(header::ACCEPT, "application/json")
            .timeout(request.timeout);
        if let Some(value) = self.settings.auth.header() {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if let Some((content_type, body)) = request.body {
            builder = builder
                .header(header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|error| EsFailure::Transport(transport_reason("Elasticsearch", &error)))?;
        let status = response.status();
        match read_capped(response, request.max_response).await {
            Ok(body) => Ok(EsAnswer { status, body }),
            Err(ReadError::TooLarge) => Err(EsFailure::TooLarge),
            Err(ReadError::Transport(error)) => Err(EsFailure::Read(error_chain(&error))),
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
        Object(response::ItemError),
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

/// How long a warm container trusts "the pipeline does not exist".
pub const PIPELINE_RECHECK: Duration = Duration::from_secs(3600);

/// A warm container's memory of Elasticsearch saying the named ingest
/// pipeline does not exist: until it expires ([`PIPELINE_RECHECK`]) or a
/// setup action runs, documents are sent without it — one `_bulk` request
/// per run instead of two (every document refused, then re-sent).
#[derive(Debug, Default)]
pub struct PipelineMemory {
    missing_until: Mutex<Option<Instant>>,
}

impl PipelineMemory {
    /// Whether to leave the pipeline out now.
    pub fn known_missing(&self) -> bool {
        let until = self.missing_until.lock().map_or(None, |guard| *guard);
        until.is_some_and(|until| Instant::now() < until)
    }

    /// After a run that named the pipeline (`missing`: Elasticsearch said it
    /// does not exist), or after setup (`false`: it may exist now).
    pub fn remember(&self, missing: bool) {
        if let Ok(mut guard) = self.missing_until.lock() {
            *guard = missing.then(|| Instant::now() + PIPELINE_RECHECK);
        }
    }
}

/// The `Error` for a request that could not be made or answered, for setup.
pub(crate) fn request_error(method: &Method, path: &str, failure: &EsFailure) -> Error {
    Error::Setup(format!("{method} {path}: {failure}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/elasticsearch/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
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
    fn names_are_percent_encoded_into_one_path_segment() {
        let client = EsClient::new(
            reqwest::Client::new(),
            EsSettings {
                url: "https://es.example.com:9243/proxy/".into(),
                auth: crate::config::EsAuth::None,
                index_prefix: "docker-pulls".into(),
                pipeline: None,
            },
        );
        let url = client
            .url(&["_ingest", "pipeline", "a/b?c#d e"], &[])
            .expect("a URL");
        assert_eq!(
            url.as_str(),
            "https://es.example.com:9243/proxy/_ingest/pipeline/a%2Fb%3Fc%23d%20e"
        );
        let url = client
            .url(&["_bulk"], &[("filter_path", "errors,items.*._id")])
            .expect("a URL");
        assert_eq!(
            url.as_str(),
            "https://es.example.com:9243/proxy/_bulk?filter_path=errors%2Citems.*._id"
        );
    }

    #[test]
    fn the_pipeline_memory_forgets_after_setup() {
        let memory = PipelineMemory::default();
        assert!(!memory.known_missing());
        memory.remember(true);
        assert!(memory.known_missing());
        memory.remember(false);
        assert!(!memory.known_missing());
    }
}
