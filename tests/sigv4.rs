//! SigV4 (`elasticsearch/aws_auth`) end to end: the function signs with the
//! Rust `aws-sigv4` crate, and an independent verifier checks every request
//! before the strict fake Elasticsearch sees it —
//! `tests/support/sigv4_proxy.py`, which recomputes each signature with
//! botocore (the AWS CLI's signer) and refuses a bad one with 403 and AWS's
//! words, as Amazon OpenSearch Service does. Its log says, per request,
//! whether it was accepted and with which access key.
//!
//! What is shown: documents arrive exactly and once (retries add nothing),
//! setup works signed (percent-encoded names included), Serverless gets the
//! payload hash, its pipeline-less setup and a refusal of time series
//! collections; a tampered body, a wrong region, a stale date, a wrong
//! secret and expired credentials are refused or never sent, and the
//! documents wait in the spool; rotating credentials are picked up by a
//! warm job. No secret or signature ever reaches the logs.
//!
//! The interpreter is `$CHECKERS_PYTHON`, else the package's
//! `.venv/bin/python3`, else `python3` (as in tests/checkers.rs); it needs
//! `botocore`.

mod support;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::sdk_config::TimeSource;
use docker_pulls::Error;
use docker_pulls::config::{AwsService, EsAuth, Settings};
use docker_pulls::run::{Job, Summary};
use docker_pulls::spool::MemorySpool;
use serde_json::{Value, json};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::checkers::python;
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;
use support::harness::{self, LogCapture};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TIME: &str = "2026-11-27T18:35:00Z";
const INDEX: &str = "docker-pulls-2026";
const IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];
const REGION: &str = "us-east-1";
const ACCESS_KEY: &str = "AKIDDOCKERPULLSTEST1";
const SECRET_KEY: &str = "sigv4/secret+NEVER-LOGGED/0123456789abcd";
const SESSION_TOKEN: &str = "session-token-NEVER-LOGGED-FwoGZXIvYXdzE";

// -- the verifier --------------------------------------------------------------

/// `tests/support/sigv4_proxy.py` in front of `upstream`, as a child process
/// stopped (by its id) when dropped.
struct Proxy {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Proxy {
    /// `keys`: `AKID:SECRET[:TOKEN]`; `extra`: more flags.
    fn start(upstream: &str, service: &str, keys: &[String], extra: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "docker-pulls-sigv4-{}-{:x}.jsonl",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut command = Command::new(python());
        command
            .arg("tests/support/sigv4_proxy.py")
            .args([
                "--upstream",
                upstream,
                "--region",
                REGION,
                "--service",
                service,
            ])
            .arg("--log")
            .arg(&log)
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for key in keys {
            command.args(["--key", key]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python().display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the proxy's first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("sigv4_proxy.py did not start (needs botocore): {line:?}")
            })
            .to_owned();
        Self { child, url, log }
    }

    /// One JSON object per request the proxy saw, in order.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }

    /// Every request was accepted, and there was at least one.
    fn assert_all_ok(&self) -> Vec<Value> {
        let records = self.records();
        assert!(!records.is_empty(), "the proxy saw no request");
        for record in &records {
            assert_eq!(record["verdict"], "ok", "{record}");
            assert!(
                record["status"].as_u64().is_some_and(|s| s < 500),
                "{record}"
            );
        }
        records
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn key(access_key: &str, secret: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{access_key}:{secret}:{token}"),
        None => format!("{access_key}:{secret}"),
    }
}

fn our_key() -> String {
    key(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN))
}

// -- the function's AWS side ---------------------------------------------------

/// A clock that tests move forward.
#[derive(Debug, Clone)]
struct TestClock {
    start: SystemTime,
    offset_secs: Arc<AtomicU64>,
}

impl TestClock {
    fn starting(start: SystemTime) -> Self {
        Self {
            start,
            offset_secs: Arc::new(AtomicU64::new(0)),
        }
    }

    fn set(&self, seconds_after_start: u64) {
        self.offset_secs
            .store(seconds_after_start, Ordering::SeqCst);
    }
}

impl TimeSource for TestClock {
    fn now(&self) -> SystemTime {
        self.start + Duration::from_secs(self.offset_secs.load(Ordering::SeqCst))
    }
}

fn sdk_config(
    provider: impl ProvideCredentials + 'static,
    region: Option<&str>,
    clock: Option<TestClock>,
) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .region(region.map(|r| Region::new(r.to_owned())))
        .behavior_version(aws_config::BehaviorVersion::latest());
    if let Some(clock) = clock {
        builder = builder.time_source(clock);
    }
    builder.build()
}

fn static_credentials() -> Credentials {
    Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some(SESSION_TOKEN.into()),
        None,
        "test",
    )
}

// -- the runs ------------------------------------------------------------------

struct World {
    hub: FakeHub,
    es: FakeEs,
}

async fn world() -> World {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    World {
        hub,
        es: FakeEs::start().await,
    }
}

fn signed_settings(url: &str, service: AwsService) -> Settings {
    let mut settings = harness::settings(&IMAGES, Some(url));
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.auth = EsAuth::Aws(service);
        if service == AwsService::Aoss {
            es.pipeline = None;
        }
    }
    settings
}

impl World {
    fn job(&self, settings: Settings, aws: &SdkConfig, spool: &Arc<MemorySpool>) -> Job<Settings> {
        harness::job(settings, harness::quick_hub_options(self.hub.url()))
            .with_aws(aws)
            .with_spool(spool.clone())
    }

    fn indexed(&self) -> Vec<(String, Value)> {
        let mut documents = self.es.documents(INDEX);
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        documents
    }
}

/// One run at `time`; its logs, summary or error are checked for the secret
/// key, the session token and any signature.
async fn run_at(job: &Job<Settings>, time: &str) -> Result<Summary, Error> {
    let (logs, _guard) = LogCapture::start();
    let result = job
        .run(
            &harness::request(json!({"time": time})),
            harness::deadline(),
        )
        .await;
    let said = match &result {
        Ok(summary) => serde_json::to_string(summary).expect("summary serialises"),
        Err(error) => format!("{error} {error:?}"),
    };
    logs.assert_no_secrets(
        &[SECRET_KEY, SESSION_TOKEN, "Signature=", "AWS4-HMAC-SHA256"],
        &[&said],
    );
    result
}

fn expected_documents() -> Vec<(String, Value)> {
    support::fake_hub::fixture_documents(TIME)
}

/// The documents waiting in the spool (bulk `create` pairs), by `_id`.
fn spooled_ids(spool: &MemorySpool) -> Vec<String> {
    let mut ids: Vec<String> = spool
        .objects()
        .iter()
        .filter(|(key, _)| !key.contains("rejected"))
        .flat_map(|(_, body)| {
            String::from_utf8_lossy(body)
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|line| line["create"]["_id"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids
}

fn expected_ids() -> Vec<String> {
    expected_documents().into_iter().map(|(id, _)| id).collect()
}

// -- tests ---------------------------------------------------------------------

#[tokio::test]
async fn signed_runs_index_every_document_exactly_and_a_retry_adds_nothing() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(&proxy.url, AwsService::Es), &aws, &spool);

    let first = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!((first.indexed, first.spooled), (3, 0), "{first:?}");
    assert_eq!(w.indexed(), expected_documents());

    // The same event again (EventBridge's retry): everything already there.
    let again = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!((again.indexed, again.already_indexed), (0, 3), "{again:?}");
    assert_eq!(w.indexed(), expected_documents());
    assert!(spool.objects().is_empty());

    let records = proxy.assert_all_ok();
    let bulk: Vec<&Value> = records.iter().filter(|r| r["path"] == "/_bulk").collect();
    // One bulk request a run: no pipeline is named under SigV4 (the settings
    // name the default one; AWS would ignore it), so none is refused.
    assert_eq!(bulk.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record["access_key"], ACCESS_KEY, "{record}");
        assert_eq!(record["session_token"], true, "{record}");
        let signed: Vec<&str> = record["signed_headers"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for header in ["host", "x-amz-date", "x-amz-security-token"] {
            assert!(signed.contains(&header), "{header} unsigned: {record}");
        }
        if record["method"] == "POST" {
            assert!(signed.contains(&"content-type"), "{record}");
        }
    }
    // Changed rule (issue 22): AWS ignores the query parameters of signed
    // POST requests, so a signed `_bulk` carries none, neither `pipeline`
    // nor `filter_path`, and its answer, unfiltered, is read in full.
    for record in &bulk {
        assert_eq!(record["query"], "", "{record}");
    }
    let sent: Vec<_> =
        w.es.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/_bulk"))
            .collect();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter().all(|r| r.path == "/_bulk"),
        "the fake answered in full: {:?}",
        sent.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

/// Changed rule (issue 22; this test named a percent-encoded pipeline and
/// expected it installed and named): under SigV4 setup installs the index
/// template and no pipeline, even when the settings name one, and the run
/// names none: AWS ignores a signed POST's query, so it could not apply.
#[tokio::test]
async fn setup_signed_installs_the_template_and_no_pipeline() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    let pipeline = "pulls-{é}";
    let mut settings = signed_settings(&proxy.url, AwsService::Es);
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = Some(pipeline.into());
    }
    let job = w.job(settings, &aws, &spool);

    let response = job
        .setup(harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(response["pipeline"]["result"], "skipped", "{response}");
    assert!(
        response["pipeline"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("query parameters of SigV4-signed POST")),
        "{response}"
    );
    assert_eq!(
        response["index_template"]["result"], "created",
        "{response}"
    );
    assert!(w.es.pipeline(pipeline).is_none());
    let template = w.es.index_template("docker-pulls").expect("template");
    assert!(
        template.to_string().contains("number_of_shards"),
        "{template}"
    );

    let summary = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!(summary.indexed, 3, "{summary:?}");
    assert_eq!(w.indexed(), expected_documents());

    let records = proxy.assert_all_ok();
    let methods: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("GET", "/_index_template/docker-pulls"),
            ("PUT", "/_index_template/docker-pulls"),
            ("POST", "/_bulk"),
        ]
    );
    assert_eq!(records[2]["query"], "", "{:?}", records[2]);
}

#[tokio::test]
async fn serverless_gets_the_payload_hash_no_pipeline_and_a_template_without_settings() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "aoss", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(&proxy.url, AwsService::Aoss), &aws, &spool);

    let response = job
        .setup(harness::deadline())
        .await
        .expect("setup succeeds");
    assert_eq!(response["pipeline"]["result"], "skipped", "{response}");
    assert_eq!(
        response["index_template"]["result"], "created",
        "{response}"
    );
    let template = w.es.index_template("docker-pulls").expect("template");
    assert!(
        !template.to_string().contains("number_of_shards"),
        "Serverless manages its own settings: {template}"
    );
    assert!(template.to_string().contains("pull_count"), "{template}");

    let summary = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!((summary.indexed, summary.spooled), (3, 0), "{summary:?}");
    assert_eq!(w.indexed(), expected_documents());

    let records = proxy.assert_all_ok();
    assert!(
        records
            .iter()
            .all(|r| r["path"] != "/_ingest/pipeline/docker-hub-pulls")
    );
    for record in &records {
        let hash = record["payload_hash_header"].as_str().unwrap_or_default();
        assert_eq!(
            hash.len(),
            64,
            "x-amz-content-sha256 on every aoss request: {record}"
        );
        assert!(
            record["signed_headers"]
                .as_array()
                .is_some_and(|h| h.contains(&json!("x-amz-content-sha256"))),
            "{record}"
        );
    }
    let bulk = records
        .iter()
        .find(|r| r["path"] == "/_bulk")
        .expect("bulk");
    assert!(
        !bulk["query"]
            .as_str()
            .unwrap_or_default()
            .contains("pipeline="),
        "{bulk}"
    );
}

#[tokio::test]
async fn a_collection_that_refuses_our_ids_keeps_the_documents_and_fails_the_run() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "aoss", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    // What a time series or vector search collection answers for each item.
    for id in expected_ids() {
        w.es.fail_item(
            &id,
            100,
            400,
            "illegal_argument_exception",
            "Document ID is not supported in create/index operation request",
        );
    }
    let job = w.job(signed_settings(&proxy.url, AwsService::Aoss), &aws, &spool);

    let error = run_at(&job, TIME).await.expect_err("the invocation fails");
    assert_eq!(error.kind(), "UnsupportedTarget", "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "OpenSearch Serverless at {} refused the document _id (\"Document ID is not supported in create/index operation request\"): the collection is a time series or vector search collection, where a retry cannot be told from a new document. Use a collection of type search for docker-pulls.",
            proxy.url
        )
    );
    // Nothing rejected for good, nothing sent without its _id: all kept.
    assert_eq!(spooled_ids(&spool), expected_ids());
    assert!(spool.objects().keys().all(|key| !key.contains("rejected")));
    assert!(w.indexed().is_empty());
    // One request: sending stopped at the first answer.
    let records = proxy.assert_all_ok();
    assert_eq!(records.iter().filter(|r| r["path"] == "/_bulk").count(), 1);
}

/// A run whose requests the verifier refuses: it succeeds, every document
/// waits in the spool, and the reason says what AWS said. Returns the
/// reason and the proxy's records.
async fn refused_run(
    w: &World,
    proxy_upstream: &Proxy,
    job_url: &str,
    aws: SdkConfig,
) -> (String, Vec<Value>) {
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(job_url, AwsService::Es), &aws, &spool);
    let summary = run_at(&job, TIME).await.expect("a spooled run succeeds");
    assert_eq!((summary.indexed, summary.spooled), (0, 3), "{summary:?}");
    assert_eq!(spooled_ids(&spool), expected_ids());
    assert!(w.indexed().is_empty());
    let records = proxy_upstream.records();
    assert!(!records.is_empty());
    for record in &records {
        assert_eq!(record["verdict"], "refused", "{record}");
        assert_eq!(record["status"], 403, "{record}");
    }
    // A whole-request 403 stops sending at once.
    assert_eq!(records.len(), 1, "{records:#?}");
    (
        summary.elasticsearch_error.clone().unwrap_or_default(),
        records,
    )
}

/// Relays TCP to `upstream`, changing `from` into `to` (same length) in
/// what the client sends: a body altered after it was signed.
async fn tampering_relay(
    upstream: std::net::SocketAddr,
    from: &'static [u8],
    to: &'static [u8],
) -> String {
    assert_eq!(from.len(), to.len());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            tokio::spawn(async move {
                let mut held: Vec<u8> = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    held.extend_from_slice(&chunk[..n]);
                    let mut i = 0;
                    while i + from.len() <= held.len() {
                        if &held[i..i + from.len()] == from {
                            held[i..i + from.len()].copy_from_slice(to);
                        }
                        i += 1;
                    }
                    // Keep back a tail that may be the start of `from`.
                    let keep = (1..from.len())
                        .rev()
                        .find(|&k| k <= held.len() && held.ends_with(&from[..k]))
                        .unwrap_or(0);
                    let send: Vec<u8> = held.drain(..held.len() - keep).collect();
                    if server_write.write_all(&send).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused_and_spooled() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let proxy_addr = proxy
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("proxy address");
    // The relay forwards the Host header the client signed (its own
    // address), so only the body differs from what was signed.
    let relay = tampering_relay(proxy_addr, b"netatmobeat", b"netatmoBEAT").await;
    // Sign for the relay's host as the proxy will check it: the proxy
    // verifies the Host header as received, which is the relay's.
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let (reason, records) = refused_run(&w, &proxy, &relay, aws).await;
    assert_eq!(records[0]["reason"], "signature mismatch", "{records:?}");
    assert!(
        reason.contains(
            "The request signature we calculated does not match the signature you provided"
        ) && reason.contains("refused the SigV4 signature"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_spooled() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let wrong = Credentials::new(
        ACCESS_KEY,
        "not/the/secret/the/proxy/knows/000000000",
        Some(SESSION_TOKEN.into()),
        None,
        "test",
    );
    let aws = sdk_config(wrong, Some(REGION), None);
    let (reason, records) = refused_run(&w, &proxy, &proxy.url, aws).await;
    assert_eq!(records[0]["reason"], "signature mismatch", "{records:?}");
    assert!(
        reason.contains("Check your AWS Secret Access Key"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_signature_for_another_region_is_refused_and_spooled() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some("eu-west-1"), None);
    let (reason, _) = refused_run(&w, &proxy, &proxy.url, aws).await;
    assert!(
        reason.contains("Credential should be scoped to a valid region, not 'eu-west-1'")
            && reason.contains("signed for region eu-west-1"),
        "{reason}"
    );
}

/// A domain in another region than the function's: signed for the region
/// `elasticsearch/aws_region` names (the endpoint's host names none here),
/// which botocore, verifying for that region only, accepts.
#[tokio::test]
async fn a_domain_in_another_region_is_signed_for_its_region() {
    let w = world().await;
    let other = "ap-southeast-4";
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &["--region", other]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let parameters: std::collections::BTreeMap<String, String> = [
        ("images", IMAGES.join(",")),
        ("elasticsearch/url", proxy.url.clone()),
        ("elasticsearch/aws_auth", "es".to_owned()),
        ("elasticsearch/aws_region", other.to_owned()),
        ("elasticsearch/pipeline", "none".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_parameters(
        "/docker-pulls",
        &parameters,
        docker_pulls::config::Needs::ALL,
    )
    .expect("valid settings");
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(settings, &aws, &spool);
    let summary = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!((summary.indexed, summary.spooled), (3, 0), "{summary:?}");
    assert_eq!(w.indexed(), expected_documents());
    proxy.assert_all_ok();

    // Without the parameter the function's own region is signed for, and
    // refused, as before.
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &["--region", other]);
    let (reason, _) = refused_run(&w, &proxy, &proxy.url, aws).await;
    assert!(
        reason.contains("Credential should be scoped to a valid region, not 'us-east-1'"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_stale_signature_date_is_refused_and_spooled() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    // A clock 20 minutes behind: the signature is older than the 5 minutes
    // AWS allows.
    let clock = TestClock::starting(SystemTime::now() - Duration::from_secs(20 * 60));
    let aws = sdk_config(static_credentials(), Some(REGION), Some(clock));
    let (reason, records) = refused_run(&w, &proxy, &proxy.url, aws).await;
    assert_eq!(records[0]["reason"], "expired", "{records:?}");
    assert!(reason.contains("Signature expired"), "{reason}");
}

#[tokio::test]
async fn a_refusal_of_the_role_names_the_iam_permissions() {
    let w = world().await;
    w.es.forbid();
    for (service, permission) in [
        (AwsService::Es, "es:ESHttpPost"),
        (AwsService::Aoss, "aoss:WriteDocument"),
    ] {
        let proxy = Proxy::start(&w.es.url(), service.signing_name(), &[our_key()], &[]);
        let aws = sdk_config(static_credentials(), Some(REGION), None);
        let spool = Arc::new(MemorySpool::default());
        let job = w.job(signed_settings(&proxy.url, service), &aws, &spool);
        let summary = run_at(&job, TIME).await.expect("a spooled run succeeds");
        assert_eq!(summary.spooled, 3, "{summary:?}");
        let reason = summary.elasticsearch_error.clone().unwrap_or_default();
        assert!(
            reason.contains("(403)") && reason.contains(permission),
            "{service:?}: {reason}"
        );
        assert_eq!(spooled_ids(&spool), expected_ids());
        let error = job
            .setup(harness::deadline())
            .await
            .expect_err("setup fails");
        assert!(error.to_string().contains(permission), "{error}");
        proxy.assert_all_ok();
    }
}

/// Hands out key A until `b_from`, then key B; A says it expires at
/// `a_expiry`, B an hour after the clock's start.
#[derive(Debug)]
struct Rotating {
    clock: TestClock,
    a_expiry: SystemTime,
    b_from: SystemTime,
    calls: Mutex<Vec<&'static str>>,
}

impl ProvideCredentials for Rotating {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let now = self.clock.now();
        let credentials = if now < self.b_from {
            self.calls.lock().expect("lock").push("A");
            Credentials::new(
                "AKIDKEYA",
                "secret-of-key-a",
                Some("token-a".into()),
                Some(self.a_expiry),
                "rotating",
            )
        } else {
            self.calls.lock().expect("lock").push("B");
            Credentials::new(
                "AKIDKEYB",
                "secret-of-key-b",
                Some("token-b".into()),
                Some(self.clock.start + Duration::from_secs(3600)),
                "rotating",
            )
        };
        future::ProvideCredentials::ready(Ok(credentials))
    }
}

#[tokio::test]
async fn a_warm_job_follows_rotating_credentials_and_never_signs_with_expired_ones() {
    let w = world().await;
    let keys = [
        key("AKIDKEYA", "secret-of-key-a", Some("token-a")),
        key("AKIDKEYB", "secret-of-key-b", Some("token-b")),
    ];
    let proxy = Proxy::start(&w.es.url(), "es", &keys, &[]);
    let clock = TestClock::starting(SystemTime::now());
    let provider = Arc::new(Rotating {
        clock: clock.clone(),
        a_expiry: clock.now() + Duration::from_secs(100),
        // The provider is slow to notice: it still hands out A for 30 s
        // after A expired.
        b_from: clock.now() + Duration::from_secs(130),
        calls: Mutex::new(Vec::new()),
    });
    #[derive(Debug)]
    struct Shared(Arc<Rotating>);
    impl ProvideCredentials for Shared {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.provide_credentials()
        }
    }
    let aws = sdk_config(Shared(provider.clone()), Some(REGION), Some(clock.clone()));
    let spool = Arc::new(MemorySpool::default());
    let mut settings = signed_settings(&proxy.url, AwsService::Es);
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.pipeline = None;
    }
    // One job for every run: a warm container.
    let job = w.job(settings, &aws, &spool);
    let keys_used = |from: usize| -> Vec<String> {
        proxy.records()[from..]
            .iter()
            .map(|r| r["access_key"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    // t = 0: A, loaded once and reused.
    let first = run_at(&job, "2026-11-27T18:35:00Z").await.expect("run");
    assert_eq!(first.indexed, 3, "{first:?}");
    assert_eq!(keys_used(0), ["AKIDKEYA"]);
    // t = 95 s: A expires within the 10 s buffer, so it is loaded again
    // (the provider still gives A, which is still valid).
    clock.set(95);
    let second = run_at(&job, "2026-11-27T18:40:00Z").await.expect("run");
    assert_eq!(second.indexed, 3, "{second:?}");
    assert_eq!(keys_used(1), ["AKIDKEYA"]);
    // t = 110 s: A has expired, and the provider still hands it out: nothing
    // is signed with it, nothing is sent, the documents wait in the spool.
    clock.set(110);
    let sent = proxy.records().len();
    let third = run_at(&job, "2026-11-27T18:45:00Z").await.expect("spooled");
    assert_eq!((third.indexed, third.spooled), (0, 3), "{third:?}");
    let reason = third.elasticsearch_error.clone().unwrap_or_default();
    assert!(
        reason.contains("the AWS credentials of access key AKIDKEYA expired at"),
        "{reason}"
    );
    assert_eq!(
        proxy.records().len(),
        sent,
        "a request was sent with expired credentials"
    );
    // t = 140 s: the provider has B; this run indexes its own documents and
    // drains the third run's from the spool, all signed with B.
    clock.set(140);
    let fourth = run_at(&job, "2026-11-27T18:50:00Z").await.expect("run");
    assert_eq!((fourth.indexed, fourth.drained), (3, 3), "{fourth:?}");
    assert!(spool.objects().is_empty());
    let after = keys_used(sent);
    assert!(
        !after.is_empty() && after.iter().all(|k| k == "AKIDKEYB"),
        "{after:?}"
    );

    proxy.assert_all_ok();
    let all = keys_used(0);
    let first_b = all.iter().position(|k| k == "AKIDKEYB").expect("B used");
    assert!(all[first_b..].iter().all(|k| k == "AKIDKEYB"), "{all:?}");
    assert_eq!(w.es.all_documents().len(), 12);
    // A was loaded at t=0, t=95 and t=110 (where it was refused), B once.
    let calls = provider.calls.lock().expect("lock").clone();
    assert_eq!(calls.iter().filter(|c| **c == "B").count(), 1, "{calls:?}");
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        )))
    }
}

#[tokio::test]
async fn without_credentials_nothing_is_sent_and_the_documents_are_spooled() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let aws = sdk_config(NoCredentials, Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(&proxy.url, AwsService::Es), &aws, &spool);
    let summary = run_at(&job, TIME).await.expect("a spooled run succeeds");
    assert_eq!((summary.indexed, summary.spooled), (0, 3), "{summary:?}");
    let reason = summary.elasticsearch_error.clone().unwrap_or_default();
    assert!(
        reason.contains("request not signed: could not load AWS credentials"),
        "{reason}"
    );
    assert_eq!(spooled_ids(&spool), expected_ids());
    assert!(proxy.records().is_empty(), "an unsigned request was sent");
}

#[tokio::test]
async fn without_a_region_the_run_fails_naming_aws_region() {
    let w = world().await;
    let aws = sdk_config(static_credentials(), None, None);
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(&w.es.url(), AwsService::Es), &aws, &spool);
    let error = run_at(&job, TIME).await.expect_err("fails");
    assert_eq!(error.kind(), "AwsSigningError", "{error}");
    assert!(
        error
            .to_string()
            .contains("(elasticsearch/aws_auth = es): no AWS region is configured: set AWS_REGION"),
        "{error}"
    );
    let error = job.setup(harness::deadline()).await.expect_err("fails");
    assert_eq!(error.kind(), "AwsSigningError", "{error}");
    // A job without any AWS configuration sends nothing unsigned either.
    let job = harness::job(
        signed_settings(&w.es.url(), AwsService::Es),
        harness::quick_hub_options(w.hub.url()),
    );
    let error = run_at(&job, TIME).await.expect_err("fails");
    assert!(
        error
            .to_string()
            .contains("started without an AWS configuration"),
        "{error}"
    );
    assert!(w.es.requests().is_empty());
}

/// The role's statements for a domain (template.yaml, with
/// `OpenSearchDomainArn` set), as (action, path pattern under the domain).
fn domain_grants() -> Vec<(String, String)> {
    fn walk(value: &serde_norway::Value, out: &mut Vec<(String, String)>) {
        use serde_norway::Value as Y;
        match value {
            Y::Mapping(map) => {
                let sid = map.get("Sid").and_then(Y::as_str).unwrap_or("");
                if sid.contains("OpenSearchDomain") {
                    let resource = match map.get("Resource") {
                        Some(Y::Tagged(tagged)) => tagged.value.as_str().unwrap_or("").to_owned(),
                        other => panic!("{sid}: a !Sub resource, not {other:?}"),
                    };
                    let path = resource
                        .strip_prefix("${OpenSearchDomainArn}")
                        .unwrap_or_else(|| panic!("{sid}: {resource} is not under the domain"))
                        .to_owned();
                    let actions: Vec<String> = match map.get("Action") {
                        Some(Y::String(action)) => vec![action.clone()],
                        Some(Y::Sequence(list)) => list
                            .iter()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect(),
                        other => panic!("{sid}: actions {other:?}"),
                    };
                    for action in actions {
                        out.push((action, path.clone()));
                    }
                }
                for (_, child) in map {
                    walk(child, out);
                }
            }
            Y::Sequence(items) => items.iter().for_each(|item| walk(item, out)),
            Y::Tagged(tagged) => walk(&tagged.value, out),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("template.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let mut grants = Vec::new();
    walk(&doc["Resources"], &mut grants);
    grants
}

/// IAM's `*` matches any run of characters, `/` included.
fn iam_match(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            path.starts_with(head)
                && (0..=path.len() - head.len())
                    .any(|skip| iam_match(tail, &path[head.len() + skip..]))
        }
    }
}

/// Least privilege, both ways: every request the function makes on a domain
/// (setup twice, a run; spool drains and replay send the same `_bulk`,
/// src/es/bulk.rs, and export-index runs locally only) is allowed
/// by the role's statements for it in template.yaml, and every statement
/// allows something the function does.
#[tokio::test]
async fn the_domain_policy_allows_exactly_the_requests_the_function_makes() {
    let w = world().await;
    let proxy = Proxy::start(&w.es.url(), "es", &[our_key()], &[]);
    let aws = sdk_config(static_credentials(), Some(REGION), None);
    let spool = Arc::new(MemorySpool::default());
    let job = w.job(signed_settings(&proxy.url, AwsService::Es), &aws, &spool);
    job.setup(harness::deadline())
        .await
        .expect("setup succeeds");
    job.setup(harness::deadline()).await.expect("setup again");
    let first = run_at(&job, TIME).await.expect("run succeeds");
    assert_eq!(first.indexed, 3, "{first:?}");
    let records = proxy.assert_all_ok();
    assert!(!records.is_empty());

    let grants = domain_grants();
    assert!(
        !grants.is_empty(),
        "no OpenSearchDomain statement in template.yaml"
    );
    let made: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let method = r["method"].as_str().unwrap_or("");
            let action = format!(
                "es:ESHttp{}{}",
                &method[..1],
                method[1..].to_ascii_lowercase()
            );
            (action, r["path"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    for (action, path) in &made {
        assert!(
            grants
                .iter()
                .any(|(a, pattern)| a == action && iam_match(pattern, path)),
            "{action} {path} is not allowed by {grants:?}"
        );
    }
    for (action, pattern) in &grants {
        assert!(
            made.iter()
                .any(|(a, path)| a == action && iam_match(pattern, path)),
            "{action} on {pattern} is granted but never used: {made:?}"
        );
    }
}
