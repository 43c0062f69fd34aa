//! The `docker-pulls` binary: a Lambda function under the Lambda Runtime API,
//! or a one-shot local run when started anywhere else.

use docker_pulls::config::Environment;
use docker_pulls::secrets::CleanWriter;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && args.is_empty();
    if in_lambda {
        // JSON lines with AWS_LAMBDA_LOG_FORMAT=JSON. The level: RUST_LOG's
        // directives when it has any (template.yaml's LogLevel), else
        // AWS_LAMBDA_LOG_LEVEL (Lambda's ApplicationLogLevel, which the
        // template keeps at TRACE so Lambda itself drops no line). The
        // metrics record bypasses the logger (run::Job::with_metrics), so
        // no level can silence it; tests/e2e checks both at WARN.
        // Every line is cleaned of secrets on its way out (secrets::clean).
        lambda_runtime::tracing::init_default_subscriber_with_writer(CleanWriter::new(
            std::io::stdout,
        ));
    } else {
        // stdout carries the documents in local mode.
        lambda_runtime::tracing::init_default_subscriber_with_writer(CleanWriter::new(
            std::io::stderr,
        ));
    }
    // The function's own AWS secrets, should a server echo them back.
    for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(value) = std::env::var(name) {
            docker_pulls::secrets::register_for_good(&value);
        }
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
        return docker_pulls::cli::main(args, env, http).await;
    }

    let mut job = match docker_pulls::wiring::ssm_job(&env, http).await {
        Ok(job) => job,
        Err(error) => return fail(error),
    };
    if let Some(function_name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|name| !name.is_empty())
    {
        job = job.with_metrics(function_name);
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
