//! Settings from SSM Parameter Store, served by moto's server: decryption,
//! paging, and what a user sees when a parameter is missing or wrong.

mod support;

use aws_sdk_ssm::types::ParameterType;
use docker_pulls::Error;
use docker_pulls::config::{
    EsAuth, Needs, ParameterStore, SettingsSource, SsmParameterStore, SsmSettings,
};
use docker_pulls::run::Job;
use serde_json::json;
use support::fake_hub::{FakeHub, unused_local_url};
use support::harness;
use support::moto::Moto;

/// Settings read from an SSM endpoint other than moto's.
async fn settings_at(endpoint: &str) -> SsmSettings<SsmParameterStore> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await;
    SsmSettings::new(
        SsmParameterStore::new(aws_sdk_ssm::Client::new(&config)),
        "/docker-pulls",
    )
}

async fn store(moto: &Moto) -> SsmParameterStore {
    SsmParameterStore::new(moto.ssm_client().await)
}

#[tokio::test]
async fn secure_strings_are_decrypted_and_every_page_is_read() {
    let moto = Moto::start().await;
    // 15 parameters first, so the ones that matter are past the first page
    // (GetParametersByPath returns at most 10).
    for i in 0..15 {
        moto.put(
            &format!("/docker-pulls/notes/n{i:02}"),
            "x",
            ParameterType::String,
        )
        .await;
    }
    moto.put(
        "/docker-pulls/images",
        "httpd,library/mysql",
        ParameterType::StringList,
    )
    .await;
    moto.put(
        "/docker-pulls/elasticsearch/url",
        "https://es.example.com:9243",
        ParameterType::String,
    )
    .await;
    moto.put(
        "/docker-pulls/elasticsearch/api_key",
        "c2VjcmV0LWlkOnNlY3JldC1rZXk=",
        ParameterType::SecureString,
    )
    .await;
    moto.put(
        "/docker-pulls/dockerhub/username",
        "acme",
        ParameterType::String,
    )
    .await;
    moto.put(
        "/docker-pulls/dockerhub/token",
        "dckr_pat_moto",
        ParameterType::SecureString,
    )
    .await;
    // Another prefix is not read.
    moto.put("/other/images", "nginx", ParameterType::String)
        .await;

    let parameters = store(&moto)
        .await
        .parameters_by_path("/docker-pulls")
        .await
        .expect("readable");
    assert_eq!(parameters.len(), 20);
    assert_eq!(
        parameters["elasticsearch/api_key"],
        "c2VjcmV0LWlkOnNlY3JldC1rZXk="
    );

    let settings = SsmSettings::new(store(&moto).await, "/docker-pulls")
        .load(Needs::ALL)
        .await
        .expect("valid");
    assert_eq!(settings.images, ["httpd", "library/mysql"]);
    let es = settings.elasticsearch.expect("es");
    assert_eq!(es.url, "https://es.example.com:9243");
    assert_eq!(
        es.auth.header_value().as_deref(),
        Some("ApiKey c2VjcmV0LWlkOnNlY3JldC1rZXk=")
    );
    assert!(matches!(es.auth, EsAuth::ApiKey(_)));
    assert_eq!(
        settings.hub_credentials.expect("hub").token.expose(),
        "dckr_pat_moto"
    );
}

#[tokio::test]
async fn missing_and_empty_parameters_are_named_in_full() {
    let moto = Moto::start().await;
    let source = SsmSettings::new(store(&moto).await, "/team/pulls");

    let error = source.load(Needs::ALL).await.unwrap_err();
    assert!(matches!(error, Error::MissingParameter { .. }));
    assert!(error.to_string().contains("/team/pulls/images"), "{error}");

    moto.put("/team/pulls/images", " , ", ParameterType::StringList)
        .await;
    let error = source.load(Needs::ALL).await.unwrap_err();
    assert!(error.to_string().contains("/team/pulls/images"), "{error}");

    moto.put("/team/pulls/images", "httpd", ParameterType::String)
        .await;
    let error = source.load(Needs::ALL).await.unwrap_err();
    assert!(
        error.to_string().contains("/team/pulls/elasticsearch/url"),
        "{error}"
    );

    moto.put(
        "/team/pulls/elasticsearch/url",
        "not a url",
        ParameterType::String,
    )
    .await;
    let error = source.load(Needs::ALL).await.unwrap_err();
    assert!(matches!(error, Error::InvalidParameter { .. }));
    assert!(
        error.to_string().contains("/team/pulls/elasticsearch/url"),
        "{error}"
    );
}

#[tokio::test]
async fn a_string_list_with_blank_entries_runs_the_real_entries() {
    let moto = Moto::start().await;
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    moto.put(
        "/docker-pulls/images",
        "httpd,,library/mysql, ,radoondas/netatmobeat",
        ParameterType::StringList,
    )
    .await;
    let job = Job::new(
        SsmSettings::new(store(&moto).await, "/docker-pulls"),
        harness::hub_client(harness::quick_hub_options(hub.url())),
        docker_pulls::http_client().expect("http"),
    );
    let summary = job
        .run(
            &harness::request(json!({"dry_run": true})),
            harness::deadline(),
        )
        .await
        .expect("a dry run needs no Elasticsearch");
    assert_eq!(summary.requested, 3);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.documents.map(|d| d.len()), Some(3));
}

#[tokio::test]
async fn an_unreachable_ssm_is_a_clear_error() {
    let source = settings_at(&unused_local_url()).await;
    let error = source.load(Needs::ALL).await.unwrap_err();
    assert!(matches!(error, Error::Ssm { .. }));
    let message = error.to_string();
    assert!(
        message.starts_with("could not read SSM parameters under /docker-pulls: "),
        "{message}"
    );
}

#[tokio::test]
async fn ssm_throttling_is_retried_by_the_sdk_then_a_clear_error() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // An SSM endpoint that always throttles, as the awsJson 1.1 protocol says.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.1")],
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let source = settings_at(&url).await;
    let error = source.load(Needs::ALL).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Ssm { .. }), "{message}");
    assert!(
        message.contains("ThrottlingException") && message.contains("Rate exceeded"),
        "{message}"
    );
    // The SDK's standard retry strategy: three attempts.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.abort();
}

#[tokio::test]
async fn two_thousand_references_over_several_parameters_are_merged_in_order() {
    // One SSM value holds at most 4 KB: 2,000 references (about 34 KB) go
    // into `images` and nine parameters under `images/`, each repeating a
    // few of the previous one's references, and one with a typo.
    let moto = Moto::start().await;
    let references: Vec<String> = (0..2000)
        .map(|i| format!("org-{:02}/app-{i:04}", i % 37))
        .collect();
    let mut expected = Vec::new();
    let mut previous: &[String] = &[];
    for (index, chunk) in references.chunks(200).enumerate() {
        let name = match index {
            0 => "/docker-pulls/images".to_owned(),
            n => format!("/docker-pulls/images/team-{:02}", n - 1),
        };
        let mut entries: Vec<&str> = chunk.iter().map(String::as_str).collect();
        entries.extend(previous.iter().take(5).map(String::as_str));
        expected.extend(chunk.iter().cloned());
        if index == 5 {
            entries.push("Org-07/App");
            expected.push("Org-07/App".to_owned());
        }
        let value = entries.join(",");
        assert!(value.len() <= 4096, "{name}: {} bytes", value.len());
        moto.put(&name, &value, ParameterType::StringList).await;
        previous = chunk;
    }

    let settings = SsmSettings::new(store(&moto).await, "/docker-pulls")
        .load(Needs {
            images: true,
            elasticsearch: false,
        })
        .await
        .expect("valid");
    assert_eq!(settings.images.len(), 2001);
    assert_eq!(settings.images, expected);
    let parsed = settings.parse_images(&settings.images);
    assert_eq!(parsed.specs.len(), 2000);
    assert_eq!(
        parsed.invalid,
        [(
            "Org-07/App".to_owned(),
            "invalid reference (in /docker-pulls/images/team-04): repository names must be lowercase"
                .to_owned()
        )]
    );
}
