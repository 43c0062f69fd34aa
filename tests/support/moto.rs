//! A local SSM Parameter Store: moto's server mode, run as a child process.
//!
//! The Lambda reads its configuration from SSM with the real AWS SDK, so the
//! tests point that SDK at moto instead of mocking it: paging, decryption of
//! SecureStrings and parameter types then behave as the SDK sees them.
//!
//! The SDK of the code under test finds moto through the standard variables
//! (see [`Moto::env`]): `AWS_ENDPOINT_URL_SSM=<endpoint_url>`,
//! `AWS_ACCESS_KEY_ID=test`, `AWS_SECRET_ACCESS_KEY=test`,
//! `AWS_REGION=us-east-1`.
//!
//! The interpreter is `$MOTO_PYTHON`, else `.venv/bin/python3` of the
//! package if present and able to run moto, else `python3`; it needs `moto[server]`
//! (`pip install 'moto[server]'`). Throttling cannot be simulated with moto.
//!
//! The server dies with its [`Moto`] (`kill_on_drop`), and also when the
//! test process dies without dropping it (a `static`, a `SIGKILL`): it
//! watches its stdin, a pipe only this process holds, and exits at EOF.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use aws_config::BehaviorVersion;
use aws_sdk_ssm::{
    Client,
    config::{Credentials, Region},
    types::ParameterType,
};
use tokio::process::{Child, ChildStdin, Command};

/// Runs moto's server with a watchdog on stdin; the arguments follow `-c`.
const LAUNCHER: &str = "\
import os, sys, threading
def watch_stdin():
    while os.read(0, 4096):
        pass
    os._exit(0)
threading.Thread(target=watch_stdin, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
";

/// How long a cold moto may take to answer (imports dominate: ~0.5 s warm).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server.
pub struct Moto {
    endpoint: String,
    log: PathBuf,
    _child: Child,
    /// Closing it (on drop) is the watchdog's signal to exit.
    _stdin: ChildStdin,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Moto {
    /// Starts moto on a free port of 127.0.0.1 and waits until it answers.
    ///
    /// # Panics
    /// When moto cannot be started, with its output and the install hint.
    pub async fn start() -> Self {
        let mut errors = Vec::new();
        for python in pythons() {
            // The free port is found by binding and releasing it, so another
            // process may take it first: try a few.
            for _ in 0..3 {
                match Self::try_start(&python).await {
                    Ok(moto) => return moto,
                    Err(err) => {
                        let missing_moto = err.contains("No module named");
                        errors.push(format!("{}: {err}", python.display()));
                        if missing_moto {
                            break;
                        }
                    }
                }
            }
        }
        panic!(
            "could not start moto:\n{}\n\
             (install it with `pip install 'moto[server]'`, or set MOTO_PYTHON)",
            errors.join("\n")
        );
    }

    async fn try_start(python: &Path) -> Result<Self, String> {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "docker-pulls-moto-{}-{port}.log",
            std::process::id()
        ));
        let stdout = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stderr = stdout.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(python)
            .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let endpoint = format!("http://127.0.0.1:{port}");

        let http = reqwest::Client::new();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let probe = http
                .get(format!("{endpoint}/moto-api/"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok() {
                return Ok(Moto {
                    endpoint,
                    log,
                    _child: child,
                    _stdin: stdin,
                });
            }
            let exited = !matches!(child.try_wait(), Ok(None));
            if exited || Instant::now() > deadline {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                let lines: Vec<&str> = output.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                let what = if exited { "exited" } else { "did not answer" };
                // `child` is dropped here, which kills it if it still runs.
                return Err(format!("moto {what}; its output:\n{tail}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The environment a process (the Lambda binary, `cargo lambda`) needs
    /// for its AWS SDK to use this server for SSM.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_SSM", self.endpoint.clone()),
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ENDPOINT_URL_SNS", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// An SSM client for this server, built the way the Lambda builds its
    /// own (`aws_config::defaults`), with test credentials and us-east-1.
    ///
    /// A fresh client per call: SDK clients keep connections tied to the
    /// Tokio runtime that opened them, and each `#[tokio::test]` has its own.
    pub async fn ssm_client(&self) -> Client {
        Client::new(&self.sdk_config().await)
    }

    /// The SDK configuration of every client for this server: test
    /// credentials, us-east-1, this endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// An S3 client for this server, as the function builds its own
    /// (`docker_pulls::spool::s3_client`: path-style with a custom endpoint).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let s3 = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(s3)
    }

    /// Creates a bucket (the spool's, in tests).
    ///
    /// # Panics
    /// When moto rejects it.
    pub async fn create_bucket(&self, name: &str) {
        self.s3_client()
            .await
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    }

    /// Every key in `bucket` (rejected objects included), sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let listed = self
            .s3_client()
            .await
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list {bucket}: {e:?}"));
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }

    /// Creates or overwrites a parameter.
    ///
    /// # Panics
    /// When moto rejects it.
    pub async fn put(&self, name: &str, value: &str, kind: ParameterType) {
        self.ssm_client()
            .await
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put parameter {name}: {e:?}"));
    }

    /// Forgets every parameter, so tests can share one server.
    pub async fn reset(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .expect("reach moto");
        assert!(
            response.status().is_success(),
            "moto reset: {}",
            response.status()
        );
    }
}

/// The interpreters to try, in order: `$MOTO_PYTHON` alone when set, else
/// the package's `.venv` (when present; it may lack moto) and then `python3`.
fn pythons() -> Vec<PathBuf> {
    if let Some(python) = std::env::var_os("MOTO_PYTHON") {
        return vec![python.into()];
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    let mut pythons = Vec::new();
    if venv.exists() {
        pythons.push(venv);
    }
    pythons.push("python3".into());
    pythons
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
