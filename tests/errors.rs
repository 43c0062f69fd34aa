//! What a person reads when AWS or Elasticsearch cannot be used: one or two
//! sentences saying what failed and what to do, never the SDK's `Debug`
//! dump, never a secret. The SDK's full error chain stays in the debug log.

mod support;

use docker_pulls::Error;
use docker_pulls::config::{Needs, Settings, SettingsSource, SsmParameterStore, SsmSettings};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness::{self, LogCapture};

/// The AWS SDK reads the process environment (credentials, region,
/// endpoints); tests that set or depend on it take this lock for their whole
/// run, so none sees another's changes.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Every variable through which the default chains could find credentials,
/// a region or an endpoint.
const AWS_VARIABLES: [&str; 13] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
];

/// A clean AWS environment: no credentials, no region, no endpoint, no
/// config files, no instance metadata. Restored on drop.
struct AwsEnv {
    saved: Vec<(&'static str, Option<OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl AwsEnv {
    fn clean() -> Self {
        let lock = ENV_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut env = Self {
            saved: Vec::new(),
            _lock: lock,
        };
        for name in AWS_VARIABLES {
            env.remove(name);
        }
        env.set("AWS_CONFIG_FILE", "/nonexistent/docker-pulls-test/config");
        env.set(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/docker-pulls-test/credentials",
        );
        env.set("AWS_EC2_METADATA_DISABLED", "true");
        env
    }

    fn save(&mut self, name: &'static str) {
        if !self.saved.iter().any(|(saved, _)| *saved == name) {
            self.saved.push((name, std::env::var_os(name)));
        }
    }

    fn set(&mut self, name: &'static str, value: &str) {
        self.save(name);
        // SAFETY: every test of this binary that reads or writes the
        // environment holds ENV_LOCK, so no other thread touches it now.
        unsafe { std::env::set_var(name, value) };
    }

    fn remove(&mut self, name: &'static str) {
        self.save(name);
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var(name) };
    }
}

impl Drop for AwsEnv {
    fn drop(&mut self) {
        for (name, value) in self.saved.drain(..).rev() {
            // SAFETY: the lock is still held; it is released after this.
            unsafe {
                match value {
                    Some(value) => std::env::set_var(name, value),
                    None => std::env::remove_var(name),
                }
            }
        }
    }
}

fn ssm_settings(config: &aws_config::SdkConfig) -> SsmSettings<SsmParameterStore> {
    SsmSettings::new(
        SsmParameterStore::new(aws_sdk_ssm::Client::new(config)),
        "/docker-pulls",
    )
}

fn test_credentials() -> aws_sdk_ssm::config::Credentials {
    aws_sdk_ssm::config::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG",
        None,
        None,
        "test",
    )
}

/// One or two readable sentences: one line, no SDK `Debug` output.
fn assert_readable(message: &str) {
    assert!(!message.contains('\n'), "more than one line: {message}");
    for dump in [
        "DispatchFailure(",
        "ConnectorError {",
        "ConnectorError(",
        "CredentialsNotLoaded(",
        "ProviderChainError",
        "Custom {",
        "Os {",
    ] {
        assert!(!message.contains(dump), "a Debug dump ({dump}): {message}");
    }
    assert!(message.len() < 700, "too long to read: {message}");
}

/// The error's message as Lambda returns it (`errorMessage`) and as the
/// runtime logs it (`Debug`).
fn assert_invocation_error(error: &Error, message: &str) {
    let diagnostic = lambda_runtime::Diagnostic::from(clone_message(error));
    assert_eq!(diagnostic.error_type, "DockerPulls.SsmError");
    assert_eq!(diagnostic.error_message, message);
    assert_eq!(format!("{error:?}"), format!("SsmError: {message}"));
}

fn clone_message(error: &Error) -> Error {
    match error {
        Error::Ssm { prefix, message } => Error::Ssm {
            prefix: prefix.clone(),
            message: message.clone(),
        },
        other => panic!("expected an SSM error, got {other}"),
    }
}

#[tokio::test]
async fn missing_credentials_say_how_to_provide_them() {
    let _env = AwsEnv::clean();
    let (logs, _guard) = LogCapture::start();
    // A fresh SdkConfig as main.rs builds it, with a region (tested below)
    // and an endpoint nobody listens on, should credentials turn up after all.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(unused_local_url())
        .load()
        .await;

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "could not read SSM parameters under /docker-pulls: no AWS credentials found for SSM \
         (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or see README: local runs without AWS)"
    );
    assert_readable(&message);
    assert_invocation_error(&error, &message);
    // The whole chain is still there for whoever turns on debug logging.
    let debug = logs.text();
    assert!(
        debug.contains("no credentials found in chain") && debug.contains("Ec2InstanceMetadata"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_missing_region_says_to_set_aws_region() {
    let _env = AwsEnv::clean();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(test_credentials())
        .load()
        .await;
    assert_eq!(config.region(), None, "the clean environment has no region");

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "could not read SSM parameters under /docker-pulls: no AWS region set for SSM \
         (set AWS_REGION, e.g. AWS_REGION=us-east-1, or `region` in your AWS profile)"
    );
    assert_readable(&message);
}

#[tokio::test]
async fn an_unknown_region_is_named_with_what_to_check() {
    let mut env = AwsEnv::clean();
    // As a user sets it: from the environment.
    env.set("AWS_REGION", "xx-nowhere-9");
    env.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    env.set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    // ssm.xx-nowhere-9.amazonaws.com does not resolve, online or not.
    assert_eq!(
        message,
        "could not read SSM parameters under /docker-pulls: could not resolve SSM's endpoint \
         for region xx-nowhere-9: check that AWS_REGION=xx-nowhere-9 is a real AWS region and \
         that this machine can reach the internet"
    );
    assert_readable(&message);
    assert!(!message.contains("wJalrXUtnFEMI"), "{message}");
}

/// An SSM endpoint that answers every request as the awsJson 1.1 protocol
/// answers an IAM denial (HTTP 400, `__type` AccessDeniedException).
async fn denying_ssm(calls: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    const DENIAL: &str = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/docker-pulls-role/docker-pulls is not authorized to perform: ssm:GetParametersByPath on resource: arn:aws:ssm:us-east-1:123456789012:parameter/docker-pulls because no identity-based policy allows the ssm:GetParametersByPath action"}"#;
    let app = axum::Router::new().fallback(move || {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.1")],
                DENIAL,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

#[tokio::test]
async fn access_denied_names_the_action_the_prefix_and_the_permission() {
    let _env = AwsEnv::clean();
    let calls = Arc::new(AtomicUsize::new(0));
    let (url, server) = denying_ssm(calls.clone()).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(test_credentials())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .load()
        .await;

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "could not read SSM parameters under /docker-pulls: access denied: this AWS identity may \
         not call ssm:GetParametersByPath on /docker-pulls. Grant it ssm:GetParametersByPath on \
         arn:aws:ssm:us-east-1:<account>:parameter/docker-pulls and parameter/docker-pulls/*; \
         AWS said: User: \
         arn:aws:sts::123456789012:assumed-role/docker-pulls-role/docker-pulls is not authorized \
         to perform: ssm:GetParametersByPath on resource: \
         arn:aws:ssm:us-east-1:123456789012:parameter/docker-pulls because no identity-based \
         policy allows the ssm:GetParametersByPath action"
    );
    assert_readable(&message);
    assert!(!message.contains("wJalrXUtnFEMI"), "{message}");
    // A denial is final: the SDK does not retry it.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.abort();
}

#[tokio::test]
async fn an_unreachable_ssm_names_the_endpoint_and_its_variable() {
    let mut env = AwsEnv::clean();
    let endpoint = unused_local_url();
    // How a local setup points the function at moto: the standard variables.
    env.set("AWS_ENDPOINT_URL_SSM", &endpoint);
    env.set("AWS_REGION", "us-east-1");
    env.set("AWS_ACCESS_KEY_ID", "test");
    env.set("AWS_SECRET_ACCESS_KEY", "test");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "could not read SSM parameters under /docker-pulls: could not connect to SSM at \
             {endpoint} (AWS_ENDPOINT_URL_SSM): connection refused; is that server running?"
        )
    );
    assert_readable(&message);
    assert_invocation_error(&error, &message);
}

#[tokio::test]
async fn a_silent_ssm_times_out_with_what_to_check() {
    let _env = AwsEnv::clean();
    // Connections are accepted (by the kernel's backlog) and never answered,
    // as behind a firewall that drops the traffic of a function in a VPC.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(test_credentials())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(std::time::Duration::from_millis(300))
                .build(),
        )
        .load()
        .await;

    let error = ssm_settings(&config).load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "could not read SSM parameters under /docker-pulls: SSM in us-east-1 did not answer in \
         time; check that this machine can reach AWS (a Lambda function in a VPC needs a NAT \
         gateway or a VPC endpoint for SSM)"
    );
    assert_readable(&message);
    drop(listener);
}

#[tokio::test]
async fn an_elasticsearch_url_with_a_bad_scheme_names_the_parameter() {
    let parameters: BTreeMap<String, String> = [
        ("images", "httpd"),
        ("elasticsearch/url", "ftp://es.example.com:9243"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let error = Settings::from_parameters("/docker-pulls", &parameters, Needs::ALL).unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "invalid SSM parameter /docker-pulls/elasticsearch/url: scheme \"ftp\" is not http or https"
    );
    assert_readable(&message);
}

#[tokio::test]
async fn an_unreachable_elasticsearch_fails_the_run_with_a_one_line_reason() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    let es_url = unused_local_url();
    let job = harness::job(
        harness::with_api_key(
            harness::settings(&["httpd", "library/mysql"], Some(&es_url)),
            "ZXM6c2VjcmV0LWtleQ==",
        ),
        harness::quick_hub_options(hub.url()),
    );
    let error = job
        .handle(
            &json!({"time": "2026-11-27T18:35:00Z"}),
            harness::deadline(),
        )
        .await
        .expect_err("nothing can be indexed");
    let message = error.to_string();
    // The count, the index, the first document, and the reason naming the
    // service and where it was looked for.
    assert!(
        message.starts_with(
            "2 of 2 documents were not indexed into docker-pulls-2026 after retries; first: "
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!("could not connect to Elasticsearch at {es_url}: "))
            && message.contains("Connection refused"),
        "{message}"
    );
    assert!(!message.contains("error sending request"), "{message}");
    assert_readable(&message);
    assert!(!message.contains("ZXM6c2VjcmV0LWtleQ=="), "{message}");
}
