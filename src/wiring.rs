//! The long-lived parts of the function, built once from its environment:
//! the Docker Hub client, settings from SSM, the S3 spool and archive, the
//! AWS credentials that sign Elasticsearch requests
//! (`elasticsearch/aws_auth`). The Lambda entry point and local mode's
//! `--ssm` build them the same way, here.

use crate::archive::S3Archive;
use crate::config::{Environment, SsmParameterStore, SsmSettings};
use crate::error::Error;
use crate::hub::{HubClient, HubOptions};
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
    if let Some(bucket) = &env.spool_bucket {
        job = job.with_spool(Arc::new(S3Spool::new(spool::s3_client(&aws), bucket)));
    }
    if let Some(bucket) = &env.archive_bucket {
        job = job.with_archive(Arc::new(S3Archive::new(spool::s3_client(&aws), bucket)));
        // Pending archive copies beside the spool (see archive::pending).
        if let Some(spool_bucket) = &env.spool_bucket {
            job = job.with_archive_pending(Arc::new(S3Archive::new(
                spool::s3_client(&aws),
                spool_bucket,
            )));
        }
    }
    Ok(job)
}
