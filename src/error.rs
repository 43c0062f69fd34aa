//! Errors that fail an invocation. Each names what failed and the parameter
//! or image concerned, and none ever carries a secret's value.
//!
//! Per-image problems (a 404, a bad body) are not errors of the run: they are
//! reported in the response's `failed` list (see [`crate::run::Failure`]).

use lambda_runtime::Diagnostic;

#[derive(thiserror::Error)]
pub enum Error {
    #[error("missing SSM parameter {name} ({hint})")]
    MissingParameter { name: String, hint: &'static str },

    #[error("invalid SSM parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },

    #[error("invalid environment variable {name}: {reason}")]
    InvalidEnvironment { name: &'static str, reason: String },

    #[error("could not read SSM parameters under {prefix}: {message}")]
    Ssm { prefix: String, message: String },

    #[error("invalid event: {0}")]
    InvalidEvent(String),

    #[error(
        "unknown action {0:?}: the actions are \"setup\" and \"replay\" (omit `action` for a normal run)"
    )]
    UnknownAction(String),

    #[error("could not exchange the Docker Hub token of dockerhub/username {username:?}: {reason}")]
    HubAuth { username: String, reason: String },

    #[error("Elasticsearch at {url} rejected the credentials ({status}): {reason}")]
    EsAuth {
        url: String,
        status: u16,
        reason: String,
    },

    #[error("Elasticsearch request to {url} failed: {reason}")]
    Elasticsearch { url: String, reason: String },

    #[error(
        "{count} of {total} documents were not indexed into {index} after retries; first: {first}"
    )]
    NotIndexed {
        index: String,
        count: usize,
        total: usize,
        first: String,
    },

    #[error(
        "{count} documents Elasticsearch did not take ({cause}) could not be kept in the spool either: {reason}"
    )]
    SpoolWrite {
        count: usize,
        cause: String,
        reason: String,
    },

    #[error("not a single image could be fetched ({count} failed); first: {first}")]
    NothingFetched { count: usize, first: String },

    #[error("setup failed: {0}")]
    Setup(String),

    #[error(
        "cannot sign requests to {url} with SigV4 (elasticsearch/aws_auth = {service}): {reason}"
    )]
    AwsSigning {
        url: String,
        service: &'static str,
        reason: String,
    },

    #[error(
        "OpenSearch Serverless at {url} refused the document _id ({reason:?}): the collection is a time series or vector search collection, where a retry cannot be told from a new document. Use a collection of type search for docker-pulls."
    )]
    UnsupportedTarget { url: String, reason: String },
    #[error("archive: {0}")]
    Archive(String),
}

impl Error {
    /// A stable name for the Lambda error type (`errorType` in the response,
    /// visible in the dead-letter queue and metrics filters).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MissingParameter { .. } => "MissingParameter",
            Error::InvalidParameter { .. } => "InvalidParameter",
            Error::InvalidEnvironment { .. } => "InvalidEnvironment",
            Error::Ssm { .. } => "SsmError",
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::UnknownAction(_) => "UnknownAction",
            Error::HubAuth { .. } => "DockerHubAuthError",
            Error::EsAuth { .. } => "ElasticsearchAuthError",
            Error::Elasticsearch { .. } => "ElasticsearchError",
            Error::NotIndexed { .. } => "DocumentsNotIndexed",
            Error::SpoolWrite { .. } => "SpoolWriteFailed",
            Error::NothingFetched { .. } => "NothingFetched",
            Error::Setup(_) => "SetupError",
            Error::AwsSigning { .. } => "AwsSigningError",
            Error::UnsupportedTarget { .. } => "UnsupportedTarget",
            Error::Archive(_) => "ArchiveError",
        }
    }

    /// A halt (see [`crate::es::bulk::IndexReport::halted`]) that is the
    /// configuration's fault, not the cluster's mood: the documents are
    /// spooled, and then the invocation fails with this error anyway, so the
    /// misconfiguration shows up in the dead-letter queue and the alarms
    /// instead of a spool that only grows.
    pub fn fails_invocation_after_spooling(&self) -> bool {
        matches!(self, Error::UnsupportedTarget { .. })
    }
}

/// The runtime logs a failed invocation with `{:?}`: make that the readable
/// message rather than the enum's fields.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl Error {
    /// The message, cleaned of credentials once more
    /// ([`crate::secrets::clean`]): every text a server sent was cleaned
    /// where it was read, and this is the edge it leaves by.
    pub fn message(&self) -> String {
        crate::secrets::clean(&self.to_string())
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Diagnostic {
        Diagnostic {
            error_type: format!("DockerPulls.{}", error.kind()),
            error_message: error.message(),
        }
    }
}
