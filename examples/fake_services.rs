//! The test stand-ins as a process, for the end-to-end script and the
//! benchmark, which run the real `docker-pulls` binary against them.
//!
//! ```text
//! cargo run --example fake_services -- --hub-port 0 --es-port 0 \
//!     --repos 1000 --latency-ms 50 --namespace bench
//! ```
//!
//! It serves the fake Docker Hub with `--repos` synthetic repositories
//! `<namespace>/repo-00001`… plus the fixture repositories (`library/httpd`,
//! `library/mysql`, `radoondas/netatmobeat` and the six of `radoondas/*`), each
//! answer delayed by `--latency-ms`, and the fake Elasticsearch (open to
//! anyone, or requiring `Authorization: ApiKey <ENCODED>` with
//! `--es-api-key ENCODED`). Port 0 picks a free port. When both listen it prints one JSON line to stdout:
//!
//! ```text
//! {"hub":"http://127.0.0.1:P","es":"http://127.0.0.1:Q"}
//! ```
//!
//! and serves until it is killed, or until its stdin closes when stdin is a
//! pipe (so a parent that dies takes it along; a stdin of `/dev/null`, as a
//! shell gives `cmd &`, is ignored). `GET <hub>/_fake/stats` returns the
//! request counts and the peak concurrency; `POST <hub>/_fake/reset` zeroes
//! them between benchmark runs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::FileTypeExt as _,
    process::ExitCode,
    time::Duration,
};

use serde_json::json;
use support::{fake_es::FakeEs, fake_hub::FakeHub};

const USAGE: &str = "usage: fake_services [--hub-port P] [--es-port Q] [--repos N] \
                     [--latency-ms L] [--namespace NS] [--es-api-key ENCODED] [--echo-secrets]";

struct Args {
    hub_port: u16,
    es_port: u16,
    repos: usize,
    latency_ms: u64,
    namespace: String,
    es_api_key: Option<String>,
    echo_secrets: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;

    let mut args = Args {
        hub_port: 0,
        es_port: 0,
        repos: 0,
        latency_ms: 0,
        namespace: "bench".to_owned(),
        es_api_key: None,
        echo_secrets: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("hub-port") => args.hub_port = parser.value()?.parse()?,
            Long("es-port") => args.es_port = parser.value()?.parse()?,
            Long("repos") => args.repos = parser.value()?.parse()?,
            Long("latency-ms") => args.latency_ms = parser.value()?.parse()?,
            Long("namespace") => args.namespace = parser.value()?.string()?,
            Long("es-api-key") => args.es_api_key = Some(parser.value()?.string()?),
            Long("echo-secrets") => args.echo_secrets = true,
            Long("help") | Short('h') => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("fake_services: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let hub = match FakeHub::start_on(args.hub_port).await {
        Ok(hub) => hub,
        Err(err) => {
            eprintln!(
                "fake_services: fake Docker Hub on port {}: {err}",
                args.hub_port
            );
            return ExitCode::FAILURE;
        }
    };
    hub.add_fixture_repos();
    hub.add_synthetic_repos(&args.namespace, args.repos);
    hub.set_latency(Duration::from_millis(args.latency_ms));

    let es_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.es_port));
    let es = match FakeEs::start_on(es_addr).await {
        Ok(es) => es,
        Err(err) => {
            eprintln!(
                "fake_services: fake Elasticsearch on port {}: {err}",
                args.es_port
            );
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = &args.es_api_key {
        es.require_api_key(key);
    }
    if args.echo_secrets {
        // Every credential is refused with itself in the answer: the
        // Elasticsearch as an IAM-only OpenSearch domain, the Hub's token
        // exchange as a careless server (tests/e2e/secrets_e2e.py).
        es.echo_like_aws();
        hub.require_token("nobody", "no-token-is-accepted");
        hub.echo_secret_on_401();
    }

    // Written by hand to keep the documented key order (`hub` first).
    let ready = format!(r#"{{"hub":{},"es":{}}}"#, json!(hub.url()), json!(es.url()));
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{ready}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);

    stdin_closed().await;
    ExitCode::SUCCESS
}

/// Resolves when stdin reaches EOF, if stdin is a pipe or a socket; never
/// otherwise, so a backgrounded process with `/dev/null` as stdin keeps
/// serving until it is killed.
async fn stdin_closed() {
    let watched = std::fs::metadata("/proc/self/fd/0").is_ok_and(|meta| {
        let kind = meta.file_type();
        kind.is_fifo() || kind.is_socket()
    });
    if !watched {
        return std::future::pending().await;
    }
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: tokio's stdin needs a feature the crate does not enable,
    // and a blocking read is all this needs.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let _ = on_close.await;
}
