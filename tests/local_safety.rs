//! Local safety: the binary writes to a cluster only when its command line
//! asks for it, and a writing command's first stderr line names the cluster.
//! SSM is moto's, Docker Hub and Elasticsearch are the fakes, the binary is
//! the real one.

mod support;

use aws_sdk_ssm::types::ParameterType;
use serde_json::Value;
use std::process::Output;
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;
use support::moto::Moto;

const TIME: &str = "2026-11-27T18:35:00Z";

/// `docker-pulls ARGS` with SSM on `moto` under `/docker-pulls`, the fake
/// Docker Hub, no Lambda runtime and no spool or archive bucket. Without
/// `SSL_CERT_FILE`: with it, the process logs the extra roots it trusts
/// once at startup, before any command runs (src/tls.rs).
async fn docker_pulls(moto: &Moto, hub: &FakeHub, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
        .args(args)
        .envs(moto.env())
        .env("DOCKER_HUB_URL", hub.url())
        .env("SSM_PREFIX", "/docker-pulls")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_PROFILE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SPOOL_BUCKET")
        .env_remove("ARCHIVE_BUCKET")
        .env_remove("ES_API_KEY")
        .env_remove("ES_USERNAME")
        .env_remove("ES_PASSWORD")
        .output()
        .await
        .expect("the binary runs")
}

fn first_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn ssm_writes_only_with_write_and_every_writing_command_names_its_cluster() {
    let (moto, hub, production, local) = tokio::join!(
        Moto::start(),
        FakeHub::start(),
        FakeEs::start(),
        FakeEs::start()
    );
    hub.add_fixture_repos();
    let ssm = moto.ssm_client().await;
    for (name, value) in [
        ("images", "httpd".to_owned()),
        ("elasticsearch/url", production.url()),
        ("elasticsearch/pipeline", "none".to_owned()),
    ] {
        ssm.put_parameter()
            .name(format!("/docker-pulls/{name}"))
            .value(value)
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("put parameter");
    }
    let production_url = production.url().trim_end_matches('/').to_owned();

    // --ssm alone: a dry run that says so first, and the documents on stdout.
    let output = docker_pulls(&moto, &hub, &["--ssm", "--time", TIME]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        first_stderr_line(&output),
        docker_pulls::cli::SSM_DRY_RUN_LINE,
        "{}",
        describe(&output)
    );
    let documents: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("NDJSON"))
        .collect();
    assert_eq!(documents.len(), 1, "{}", describe(&output));
    assert_eq!(
        documents[0]["http"]["docker_hub"]["name"], "httpd",
        "{documents:?}"
    );
    assert!(
        production.all_documents().is_empty() && production.bulk_request_count() == 0,
        "--ssm without --write indexed into the cluster SSM names: {:?}",
        production.all_documents()
    );

    // --setup with --ssm but without --write: refused before any request.
    let output = docker_pulls(&moto, &hub, &["--ssm", "--setup"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        first_stderr_line(&output).contains("add --write"),
        "{}",
        describe(&output)
    );
    assert!(
        production.requests().is_empty(),
        "{:?}",
        production.requests()
    );

    // replay with --ssm but without --write: refused the same way.
    let replay = [
        "replay",
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-01",
        "--ssm",
    ];
    let output = docker_pulls(&moto, &hub, &replay).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        first_stderr_line(&output).contains("add --write"),
        "{}",
        describe(&output)
    );
    assert!(
        production.requests().is_empty(),
        "{:?}",
        production.requests()
    );

    // --ssm --write --setup: names the cluster first, then installs there.
    let output = docker_pulls(&moto, &hub, &["--ssm", "--write", "--setup"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        first_stderr_line(&output),
        format!(
            "docker-pulls: writing to {} (index docker-pulls-<yyyy>)",
            production.url().trim_end_matches('/')
        ),
        "{}",
        describe(&output)
    );
    assert!(
        production
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.starts_with("/_index_template/")),
        "{:?}",
        production.requests()
    );
    production.clear_requests();

    // --ssm --write: the first line names the cluster, then it indexes.
    let output = docker_pulls(&moto, &hub, &["--ssm", "--write", "--time", TIME]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        first_stderr_line(&output),
        format!("docker-pulls: writing to {production_url} (index docker-pulls-<yyyy>)"),
        "{}",
        describe(&output)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary on stdout");
    assert_eq!(summary["indexed"], 1, "{summary}");
    let indexed = production.documents("docker-pulls-2026");
    assert_eq!(indexed.len(), 1, "{indexed:?}");

    // --es-url names the cluster itself: it writes there, and says so first.
    let local_url = local.url().trim_end_matches('/').to_owned();
    let output = docker_pulls(
        &moto,
        &hub,
        &[
            "--es-url",
            &local_url,
            "--index",
            "pulls",
            "--pipeline",
            "none",
            "--images",
            "httpd",
            "--time",
            TIME,
        ],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        first_stderr_line(&output),
        format!("docker-pulls: writing to {local_url} (index pulls-<yyyy>)"),
        "{}",
        describe(&output)
    );
    assert_eq!(
        local.documents("pulls-2026").len(),
        1,
        "{:?}",
        local.all_documents()
    );
    assert_eq!(production.documents("docker-pulls-2026").len(), 1);

    // A replay into the cluster --es-url names says where, first.
    let archive =
        std::env::temp_dir().join(format!("docker-pulls-local-safety-{}", std::process::id()));
    std::fs::create_dir_all(&archive).expect("archive dir");
    let archive_arg = archive.to_string_lossy().into_owned();
    let output = docker_pulls(
        &moto,
        &hub,
        &[
            "replay",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
            "--archive",
            &archive_arg,
            "--es-url",
            &local_url,
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&archive);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        first_stderr_line(&output),
        format!("docker-pulls: writing to {local_url} (index docker-pulls-<yyyy>)"),
        "{}",
        describe(&output)
    );
}
