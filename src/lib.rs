//! docker-pulls: records Docker Hub pull statistics in Elasticsearch.
//!
//! A run reads its settings (SSM Parameter Store in Lambda, flags locally),
//! fetches every repository from Docker Hub concurrently, trims each answer to
//! the five fields we chart, and indexes them with one `_bulk` request into
//! `<prefix>-<yyyy>`. Each module does one of those jobs:
//!
//! - [`config`]: settings from SSM (behind [`config::ParameterStore`]) or flags
//! - [`image_ref`]: parsing and validating image references (pure)
//! - [`event`]: what an event asks for (pure)
//! - [`hub`]: the Docker Hub client (base URL, concurrency, budget, retries)
//! - [`document`]: the trimmed document and its `_id` (pure)
//! - [`ndjson`]: the `_bulk` body's lines, written and read back (pure)
//! - [`es`]: the one Elasticsearch client; [`es::bulk`] indexes,
//!   [`es::response`] decides what an answer means, [`es::setup`] installs
//!   the pipeline and index template
//! - [`spool`]: where documents Elasticsearch did not take wait (S3, a directory)
//! - [`delivery`]: index, spool what was not taken, drain the backlog
//! - [`timing`]: how much time indexing and spooling need, learned
//! - [`archive`]: every run's documents, kept for good (S3, a directory),
//!   queryable with SQL; [`replay`] rebuilds an index from it and
//!   [`export`] copies an index's history into it
//! - [`counts`]: the run's counters, defined once (summary, metrics, log)
//! - [`run`]: the handler that ties them together
//! - [`wiring`]: the long-lived clients built from the environment
//! - [`cli`]: the one-shot command line, a file per subcommand
//! - [`progress`]: the long local commands' progress line
//! - [`http`]: capped body reads and error chains shared by the HTTP clients
//! - [`retry`]: deadlines and backoff shared by the clients
//! - [`tls`]: the root certificates every HTTPS client trusts, loaded once
//! - [`secrets`]: every server message cleaned of credentials before it is
//!   logged or returned (pure)
//! - [`aws_error`]: AWS SDK errors (SSM, S3) in words a person can act on
//! - [`error`]: what fails an invocation
//! - [`metrics`]: the run's CloudWatch Embedded Metric Format record (pure)

pub mod archive;
pub mod aws_error;
pub mod cli;
pub mod config;
pub mod counts;
pub mod delivery;
pub mod document;
pub mod error;
pub mod es;
pub mod event;
pub mod export;
pub mod http;
pub mod hub;
pub mod image_ref;
pub mod insights;
pub mod metrics;
pub mod ndjson;
pub mod progress;
pub mod replay;
pub mod retry;
pub mod run;
pub mod secrets;
pub mod spool;
pub mod timing;
pub mod tls;
pub mod wiring;

pub use error::Error;

/// `docker-pulls/<version>`: sent to Docker Hub and Elasticsearch.
pub const USER_AGENT: &str = concat!("docker-pulls/", env!("CARGO_PKG_VERSION"));

/// The HTTP client shared by Docker Hub and Elasticsearch calls for the life
/// of the process, so connections are kept alive between requests and runs.
/// It trusts the process's [`tls::TrustedRoots`], the same set the AWS SDK's
/// client gets, so no system certificate store is read.
pub fn http_client() -> Result<reqwest::Client, tls::TlsError> {
    tls::TrustedRoots::shared()?
        .reqwest_builder()?
        .user_agent(USER_AGENT)
        .connect_timeout(std::time::Duration::from_secs(5))
        .pool_idle_timeout(std::time::Duration::from_secs(50))
        .redirect(http::same_origin_redirects())
        .build()
        .map_err(tls::TlsError::Client)
}
