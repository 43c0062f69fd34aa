//! The long-lived parts of the function, built once from its environment:
//! the Docker Hub client, settings from SSM, the S3 spool and archive, the
//! AWS credentials that sign Elasticsearch requests
//! (`elasticsearch/aws_auth`). The Lambda entry point and local mode's
//! `--ssm` build them the same way, here.

use crate::archive::S3Archive;
use crate::config::{Environment, SsmParameterStore, SsmSettings};
use crate::error::Error;
use crate::hub::{HubClient, HubOptions};
use crate::insights::Insights;
use crate::insights::notify::SnsSink;
use crate::insights::store::S3Bucket;
use crate::run::Job;
use crate::spool::{self, S3Spool};
use std::sync::Arc;

/// Settings read from SSM Parameter Store on every run.
pub type SsmJob = Job<SsmSettings<SsmParameterStore>>;

/// The Docker Hub client for `DOCKER_HUB_URL` and `HUB_CONCURRENCY`.
pub fn hub_client(env: &Environment, http: &reqwest::Client) -> Result<HubClient, Error> {
    let options = HubOptions {
        base_url: env.hub_url.clone(),
        concurrency: env.hub_concurrency,
        ..HubOptions::default()
    };
    HubClient::new(http.clone(), options).map_err(|reason| Error::InvalidEnvironment {
        name: "DOCKER_HUB_URL",
        reason,
    })
}

/// The AWS SDK's configuration (credentials, region, endpoints) with the
/// root certificates of [`crate::tls`]; a bad `SSL_CERT_FILE` is the error.
pub(crate) async fn aws_sdk_config() -> Result<aws_config::SdkConfig, Error> {
    crate::tls::aws_sdk_config()
        .await
        .map_err(|error| Error::InvalidEnvironment {
            name: "SSL_CERT_FILE",
            reason: error.to_string(),
        })
}

/// Badges into `BADGE_BUCKET`, alerts to `ALERT_TOPIC_ARN`, with the alert
/// state in the badge bucket (else the archive bucket); off when neither is
/// set. `s3` is the job's one S3 client (there is one when a bucket is set).
pub fn insights(
    env: &Environment,
    aws: &aws_config::SdkConfig,
    s3: Option<&aws_sdk_s3::Client>,
) -> Insights {
    let mut insights = Insights::default();
    let state_bucket = env.badge_bucket.as_ref().or(env.archive_bucket.as_ref());
    if let (Some(bucket), Some(s3)) = (&env.badge_bucket, s3) {
        insights = insights.with_badges(Arc::new(S3Bucket::new(s3.clone(), bucket)));
    }
    if env.badge_bucket.is_some() || env.alert_topic_arn.is_some() {
        match state_bucket.zip(s3) {
            Some((bucket, s3)) => {
                insights = insights.with_alert_state(Arc::new(S3Bucket::new(s3.clone(), bucket)));
            }
            None => tracing::warn!(
                "ALERT_TOPIC_ARN is set but neither BADGE_BUCKET nor ARCHIVE_BUCKET: no alerts (they need the archive and a place for their state)"
            ),
        }
    }
    if let Some(topic) = &env.alert_topic_arn {
        insights =
            insights.with_alert_sink(Arc::new(SnsSink::new(aws_sdk_sns::Client::new(aws), topic)));
    }
    insights
}

/// A job that reads its settings from SSM under `SSM_PREFIX`, spools to
/// `SPOOL_BUCKET` and archives to `ARCHIVE_BUCKET` when they are set, and honours `MAX_EVENT_AGE`. The AWS SDK
/// trusts the same root certificates as `http` (see [`crate::tls`]).
pub async fn ssm_job(env: &Environment, http: reqwest::Client) -> Result<SsmJob, Error> {
    let hub = hub_client(env, &http)?;
    let aws = aws_sdk_config().await?;
    let parameters = SsmParameterStore::new(aws_sdk_ssm::Client::new(&aws));
    let mut job = Job::new(
        SsmSettings::new(parameters, env.ssm_prefix.clone()),
        hub,
        http,
    )
    .with_max_event_age(env.max_event_age)
    .with_aws(&aws);
    // One S3 client for the spool, the archive and the badges: each client
    // builds its own connector (the TLS roots turned into a store again, a
    // connection pool of its own). Four of them cost init ~1.5 ms of CPU
    // (docs/performance.md, "Init").
    let any_bucket = [&env.spool_bucket, &env.archive_bucket, &env.badge_bucket]
        .iter()
        .any(|bucket| bucket.is_some());
    let s3 = any_bucket.then(|| spool::s3_client(&aws));
    if let (Some(bucket), Some(s3)) = (&env.spool_bucket, &s3) {
        job = job.with_spool(Arc::new(S3Spool::new(s3.clone(), bucket)));
    }
    if let (Some(bucket), Some(s3)) = (&env.archive_bucket, &s3) {
        job = job.with_archive(Arc::new(S3Archive::new(s3.clone(), bucket)));
        // Pending archive copies beside the spool (see archive::pending).
        if let Some(spool_bucket) = &env.spool_bucket {
            job = job.with_archive_pending(Arc::new(S3Archive::new(s3.clone(), spool_bucket)));
        }
    }
    Ok(job.with_insights(insights(env, &aws, s3.as_ref())))
}
