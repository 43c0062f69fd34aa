//! The local commands never print a secret, even when the server echoes it
//! back as Amazon OpenSearch Service does (`Authorization=Basic <base64>`)
//! or Docker Hub's token exchange is refused with the token in its answer.
//! Each command runs at TRACE, and stdout and stderr are searched for every
//! secret, its base64 (and `base64(user:password)`) and its URL encoding.
//! (The Lambda side: tests/e2e/secrets_e2e.py.)

mod support;

use base64::Engine as _;
use support::fake_es::FakeEs;
use support::fake_hub::FakeHub;

const USER: &str = "writer";
const PASSWORD: &str = "cli-Pa55word/Secret+e2e";
const API_KEY: &str = "Q0xJOmNsaS1hcGkta2V5LXNlY3JldC0xMjM0NQ==";
const HUB_TOKEN: &str = "dckr_pat_CliHubSecret77";

fn forbidden() -> Vec<(String, String)> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let url = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let mut out = Vec::new();
    for (name, secret) in [
        ("password", PASSWORD),
        ("api key", API_KEY),
        ("hub token", HUB_TOKEN),
    ] {
        out.push((name.to_owned(), secret.to_owned()));
        out.push((format!("{name} (base64)"), b64(secret)));
        out.push((format!("{name} (url-encoded)"), url(secret)));
    }
    out.push((
        "base64(user:password)".to_owned(),
        b64(&format!("{USER}:{PASSWORD}")),
    ));
    out
}

/// Variables a case sets.
type Env = [(&'static str, &'static str)];

async fn run(args: &[&str], env: &[(&str, &str)], hub: &FakeHub) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"));
    command
        .args(args)
        .env("DOCKER_HUB_URL", hub.url())
        .env("RUST_LOG", "trace")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("ES_API_KEY")
        .env_remove("ES_USERNAME")
        .env_remove("ES_PASSWORD")
        .env_remove("DOCKERHUB_USERNAME")
        .env_remove("DOCKERHUB_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("the binary runs");
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn no_local_command_prints_a_secret_a_server_echoed() {
    let hub = FakeHub::start().await;
    hub.add_fixture_repos();
    hub.require_token("nobody", "no-token-is-accepted");
    hub.echo_secret_on_401();
    let es = FakeEs::start().await;
    es.echo_like_aws();
    let dir = std::env::temp_dir().join(format!("docker-pulls-secrets-{}", std::process::id()));
    let archive = dir.join("archive-root");
    let archive = archive.to_str().expect("UTF-8 path");
    let es_url = es.url();
    let basic = [("ES_USERNAME", USER), ("ES_PASSWORD", PASSWORD)];
    let api_key = [("ES_API_KEY", API_KEY)];
    let hub_token = [
        ("DOCKERHUB_USERNAME", "acme"),
        ("DOCKERHUB_TOKEN", HUB_TOKEN),
    ];
    let time = "--time=2026-11-27T18:35:00Z";
    let cases: Vec<(&str, Vec<&str>, &Env)> = vec![
        (
            "run with Basic",
            vec!["--images", "httpd", "--es-url", &es_url, time],
            &basic,
        ),
        (
            "setup with Basic",
            vec!["--es-url", &es_url, "--setup"],
            &basic,
        ),
        (
            "run with an API key",
            vec!["--images", "httpd", "--es-url", &es_url, time],
            &api_key,
        ),
        (
            "setup with an API key",
            vec!["--es-url", &es_url, "--setup"],
            &api_key,
        ),
        (
            "replay with Basic",
            vec![
                "replay",
                "--from",
                "2026-01-01",
                "--to",
                "2027-01-01",
                "--archive",
                archive,
                "--es-url",
                &es_url,
            ],
            &basic,
        ),
        (
            "export-index with an API key",
            vec![
                "export-index",
                "--index",
                "docker-pulls-*",
                "--archive",
                archive,
                "--es-url",
                &es_url,
            ],
            &api_key,
        ),
        (
            "run whose Hub token is refused",
            vec!["--images", "httpd", "--dry-run", time],
            &hub_token,
        ),
    ];
    let forbidden = forbidden();
    let mut leaks = Vec::new();
    for (name, args, env) in &cases {
        let output = run(args, env, &hub).await;
        let found: Vec<_> = forbidden
            .iter()
            .filter(|(_, text)| output.contains(text.as_str()))
            .map(|(what, _)| what.clone())
            .collect();
        if !found.is_empty() {
            leaks.push(format!("{name}: {found:?}\n{output}"));
        }
        // Each case reached the server that echoes: the refusal is reported.
        assert!(
            output.contains("403") || output.contains("401") || output.contains("rejected"),
            "{name} did not meet the refusal:\n{output}"
        );
    }
    // The echo really carried the credentials: the fake recorded them.
    assert!(
        es.requests().iter().any(|r| r
            .header("authorization")
            .is_some_and(|h| h.starts_with("Basic "))),
        "no Basic request reached the fake"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(leaks.is_empty(), "secrets printed:\n{}", leaks.join("\n\n"));
}
