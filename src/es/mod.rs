//! The one Elasticsearch (or OpenSearch) client: every request to the
//! cluster — `_bulk`, setup's reads and writes — is built here, with the
//! cluster's URL, its credentials (or a SigV4 signature, [`sigv4`]),
//! `Accept: application/json`, a timeout and a capped read of the answer.
//! What an answer *means* is decided in [`response`] (and [`serverless`] for
//! what only OpenSearch Serverless answers); the bulk sink ([`bulk`]) and
//! setup ([`setup`]) only say what to send.

pub mod bulk;
pub mod response;
pub mod search;
pub mod serverless;
pub mod setup;
pub mod sigv4;

use crate::config::EsSettings;
use crate::error::Error;
use crate::http::{ReadError, error_chain, read_capped, transport_reason};
use crate::retry::{self, Deadline};
use reqwest::{Method, StatusCode, Url, header};
use response::{ItemOutcome, RequestOutcome};
use serde::Deserialize;
use sigv4::{AwsSigning, Signer};
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
    /// The request could not be signed (no credentials, expired ones): not
    /// sent. Like a connection error, a later attempt may succeed.
    Signing(String),
}

impl std::fmt::Display for EsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EsFailure::Url(reason) | EsFailure::Transport(reason) => f.write_str(reason),
            EsFailure::Read(reason) => {
                write!(f, "connection error while reading the response: {reason}")
            }
            EsFailure::TooLarge => f.write_str("response too large to read"),
            EsFailure::Signing(reason) => write!(f, "request not signed: {reason}"),
        }
    }
}

/// Elasticsearch at one URL with one set of credentials, or signing with
/// the function's AWS credentials.
#[derive(Debug, Clone)]
pub struct EsClient {
    http: reqwest::Client,
    settings: EsSettings,
    /// Set when `settings.auth` is [`crate::config::EsAuth::Aws`].
    signer: Option<Signer>,
}

impl EsClient {
    /// Under SigV4 no ingest pipeline is named: AWS ignores the query
    /// parameters of signed POST requests ("The service ignores parameters
    /// passed in URLs for HTTP POST requests that are signed with Signature
    /// Version 4"), and documents arrive trimmed anyway.
    pub fn new(http: reqwest::Client, mut settings: EsSettings) -> Self {
        if settings.aws_service().is_some() {
            settings.pipeline = None;
        }
        Self {
            http,
            settings,
            signer: None,
        }
    }

    /// Signs every request with `aws` when the settings ask for SigV4
    /// (`elasticsearch/aws_auth`); otherwise `aws` is not used. Fails when
    /// they do and `aws` cannot sign (none given, no region, no credentials
    /// provider). A client the settings want signed but that has no signer
    /// sends nothing.
    pub fn with_aws(mut self, aws: Option<&AwsSigning>) -> Result<Self, Error> {
        let Some(service) = self.settings.aws_service() else {
            return Ok(self);
        };
        let signer = aws
            .ok_or_else(|| "this process was started without an AWS configuration".to_owned())
            .and_then(|aws| aws.signer(service, self.settings.aws_region.as_deref()))
            .map_err(|reason| Error::AwsSigning {
                url: self.settings.url.clone(),
                service: service.signing_name(),
                reason,
            })?;
        self.signer = Some(signer);
        Ok(self)
    }

    /// The same cluster and credentials, sending without the ingest
    /// pipeline (documents arrive trimmed: it is only a fallback).
    pub fn without_pipeline(&self) -> Self {
        let mut client = self.clone();
        client.settings.pipeline = None;
        client
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
            .request(request.method.clone(), url.clone())
            .header(header::ACCEPT, "application/json")
            .timeout(request.timeout);
        if let Some(value) = self.settings.auth.header() {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        match (&self.signer, self.settings.aws_service()) {
            (Some(signer), _) => {
                // Signed as sent: this Host header, this Content-Type, these
                // bytes; the signer's headers are the last ones added.
                let host = host_header(&url);
                let (content_type, body) = request
                    .body
                    .as_ref()
                    .map_or((None, &[][..]), |(t, b)| (Some(*t), b.as_slice()));
                let signed = signer
                    .sign(
                        request.method.as_str(),
                        url.as_str(),
                        &host,
                        content_type,
                        body,
                    )
                    .await
                    .map_err(EsFailure::Signing)?;
                builder = builder.header(header::HOST, host);
                for header in signed {
                    let mut value = header::HeaderValue::try_from(header.value).map_err(|_| {
                        EsFailure::Signing(format!("{} is not a header value", header.name))
                    })?;
                    value.set_sensitive(header.sensitive);
                    builder = builder.header(header.name, value);
                }
            }
            (None, Some(_)) => {
                return Err(EsFailure::Signing(
                    "elasticsearch/aws_auth is set, but this client was built without AWS credentials (EsClient::with_aws)".into(),
                ));
            }
            (None, None) => {}
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

impl EsClient {
    /// What a `_bulk` answer means for the documents it carried
    /// ([`response::classify_answer`]), with what this client knows besides:
    /// an OpenSearch Serverless collection that refuses our `_id`s stops
    /// sending ([`serverless`]), and refusals of a signed request name the
    /// IAM permissions instead of Elasticsearch privileges.
    pub(crate) fn classify_bulk(
        &self,
        answer: &EsAnswer,
        ids: &[&str],
        used_pipeline: bool,
    ) -> RequestOutcome {
        let url = &self.settings.url;
        if let Some(error) = serverless::refused_document_ids(answer.status, &answer.body, url) {
            return RequestOutcome::Halt(error);
        }
        let outcome =
            response::classify_answer(answer.status, &answer.body, ids, used_pipeline, url);
        if self.signer.is_none() {
            return outcome;
        }
        let hint = |reason: &str| self.aws_refusal_hint(reason).unwrap_or_default();
        match outcome {
            RequestOutcome::Halt(Error::EsAuth {
                url,
                status,
                reason,
            }) => {
                let reason = format!("{reason}; {}", hint(&reason));
                RequestOutcome::Halt(Error::EsAuth {
                    url,
                    status,
                    reason,
                })
            }
            RequestOutcome::Items(items) => RequestOutcome::Items(
                items
                    .into_iter()
                    .map(|item| match item {
                        ItemOutcome::Refused(reason) => {
                            let hint = hint(&reason);
                            ItemOutcome::Refused(format!("{reason}; {hint}"))
                        }
                        other => other,
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// For a signed request the cluster refused (401/403) with `reason`:
    /// what to change in AWS (IAM, the access policies, the region).
    pub(crate) fn aws_refusal_hint(&self, reason: &str) -> Option<String> {
        self.signer
            .as_ref()
            .map(|signer| signer.refusal_hint(reason, &self.settings.index_prefix))
    }
}

/// The `Host` header for `url`, as HTTP clients write it: the port only
/// when it is not the scheme's default (the URL drops a default one).
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Elasticsearch's `error.type: error.reason`, AWS's `message` (how Amazon
/// OpenSearch Service and Serverless refuse a signature or a role), or the
/// start of the body; cleaned of credentials ([`crate::secrets::clean`]),
/// since AWS echoes the `Authorization` header and the security token.
pub fn error_reason(body: &[u8]) -> String {
    crate::secrets::clean(&raw_error_reason(body))
}

fn raw_error_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorField,
    }
    #[derive(Deserialize)]
    struct AwsMessage {
        #[serde(alias = "Message")]
        message: String,
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
        Err(_) => match serde_json::from_slice::<AwsMessage>(body) {
            Ok(AwsMessage { message }) => message,
            Err(_) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        },
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

/// Why [`EsClient::send_retrying`] has no answer to give.
pub(crate) enum GaveUp {
    /// A failure another attempt cannot mend: the URL, an answer too large.
    Failure(EsFailure),
    /// Every attempt allowed met a transient answer or no answer; the last
    /// one's reason.
    Retries { reason: String, attempts: u32 },
}

impl EsClient {
    /// For requests that may simply be repeated (setup, reads): sends what
    /// `request` builds until an answer that is not transient
    /// ([`retry::is_transient`]) comes, and returns it whatever its status.
    /// Transient answers and failures without an answer (transport, read,
    /// signing) are retried with backoff up to `max_wait`, at most
    /// `attempts` times and while `deadline` leaves time for the wait.
    /// `_bulk` does not come here: its retries are per item.
    pub(crate) async fn send_retrying<'a>(
        &self,
        request: impl Fn() -> EsRequest<'a>,
        attempts: u32,
        max_wait: Duration,
        deadline: Deadline,
    ) -> Result<EsAnswer, GaveUp> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = request();
            let shown = format!("{} /{}", request.method, request.path.join("/"));
            let reason = match self.send(request).await {
                Ok(answer) if !retry::is_transient(answer.status) => return Ok(answer),
                Ok(answer) => format!("{} {}", answer.status.as_u16(), error_reason(&answer.body)),
                Err(
                    failure
                    @ (EsFailure::Transport(_) | EsFailure::Read(_) | EsFailure::Signing(_)),
                ) => failure.to_string(),
                Err(failure) => return Err(GaveUp::Failure(failure)),
            };
            let wait = retry::backoff(attempt, Duration::from_millis(500), max_wait);
            if attempt >= attempts || !deadline.allows(wait, Duration::from_secs(1)) {
                return Err(GaveUp::Retries {
                    reason,
                    attempts: attempt,
                });
            }
            tracing::info!(request = %shown, %reason, attempt, "retrying an Elasticsearch request");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `Error` for a request that could not be made or answered, for setup.
pub(crate) fn request_error(method: &Method, path: &str, failure: &EsFailure) -> Error {
    Error::Setup(format!("{method} {path}: {failure}"))
}

/// A recorded Elasticsearch answer (tests/fixtures/elasticsearch/), for
/// the unit tests of this module and its children.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/elasticsearch/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::es::fixture;

    #[test]
    fn error_reasons_come_from_the_error_object() {
        assert_eq!(
            error_reason(&fixture("error-401.json")),
            "security_exception: unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        );
        assert_eq!(error_reason(b"Bad Gateway\n"), "Bad Gateway");
        // Amazon OpenSearch Service refusing a signature, and a role.
        assert_eq!(
            error_reason(
                br#"{"message":"The security token included in the request is invalid."}"#
            ),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            error_reason(
                br#"{"Message":"User: anonymous is not authorized to perform: es:ESHttpPost"}"#
            ),
            "User: anonymous is not authorized to perform: es:ESHttpPost"
        );
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
                aws_region: None,
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
    fn the_signed_host_is_the_one_sent() {
        let host = |url: &str| host_header(&Url::parse(url).expect("a URL"));
        assert_eq!(host("http://127.0.0.1:9200/_bulk"), "127.0.0.1:9200");
        assert_eq!(
            host("https://search-d.eu-west-1.es.amazonaws.com:443/"),
            "search-d.eu-west-1.es.amazonaws.com"
        );
        assert_eq!(host("http://[::1]:8080/x"), "[::1]:8080");
    }

    #[tokio::test]
    async fn a_client_that_should_sign_but_cannot_sends_nothing() {
        let settings = EsSettings {
            url: "http://127.0.0.1:9".into(),
            auth: crate::config::EsAuth::Aws(crate::config::AwsService::Es),
            index_prefix: "docker-pulls".into(),
            pipeline: None,
            aws_region: None,
        };
        let client = EsClient::new(reqwest::Client::new(), settings.clone());
        let request = EsRequest {
            method: Method::GET,
            path: &["_index_template", "docker-pulls"],
            query: &[],
            body: None,
            timeout: Duration::from_secs(1),
            max_response: 1024,
        };
        assert!(matches!(
            client.send(request).await,
            Err(EsFailure::Signing(_))
        ));
        let error = EsClient::new(reqwest::Client::new(), settings)
            .with_aws(None)
            .expect_err("no AWS configuration");
        assert_eq!(
            error.to_string(),
            "cannot sign requests to http://127.0.0.1:9 with SigV4 (elasticsearch/aws_auth = es): this process was started without an AWS configuration"
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
