//! The `docker-pulls` binary: a Lambda function under the Lambda Runtime API,
//! or a one-shot local run when started anywhere else.

use docker_pulls::config::{Environment, SsmParameterStore, SsmSettings};
use docker_pulls::hub::{HubClient, HubOptions};
use docker_pulls::run::Job;
use docker_pulls::spool::{self, S3Spool};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && args.is_empty();
    if in_lambda {
        lambda_runtime::tracing::init_default_subscriber();
    } else {
        // stdout carries the documents in local mode.
        lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    }

    let env = match Environment::from_vars(|name| std::env::var(name).ok()) {
        Ok(env) => env,
        Err(error) => return fail(error),
    };
    let http = match docker_pulls::http_client() {
        Ok(http) => http,
        Err(error) => return fail(error),
    };
    if !in_lambda {
        return docker_pulls::local::main(args, env, http).await;
    }

    let hub_options = HubOptions {
        base_url: env.hub_url.clone(),
        concurrency: env.hub_concurrency,
        ..HubOptions::default()
    };
    let hub = match HubClient::new(http.clone(), hub_options) {
        Ok(hub) => hub,
        Err(error) => return fail(error),
    };
    // The same root certificates as `http`: the system store is not read.
    let aws = match docker_pulls::tls::aws_sdk_config().await {
        Ok(aws) => aws,
        Err(error) => return fail(error),
    };
    let parameters = SsmParameterStore::new(aws_sdk_ssm::Client::new(&aws));
    let mut job = Job::new(SsmSettings::new(parameters, env.ssm_prefix), hub, http)
        .with_max_event_age(env.max_event_age);
    if let Some(function_name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|name| !name.is_empty())
    {
        job = job.with_metrics(function_name);
    }
    if let Some(bucket) = &env.spool_bucket {
        job = job.with_spool(Arc::new(S3Spool::new(spool::s3_client(&aws), bucket)));
    }
    let job = &job;
    match lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        job.invoke(event)
    }))
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    tracing::error!(%error, "docker-pulls cannot start");
    ExitCode::FAILURE
}
