//! Shortcuts for integration tests: a job wired to local servers with quick
//! retries, and a capture of everything the code logs (to prove no secret is
//! ever printed).

use docker_pulls::config::{EsAuth, EsSettings, HubCredentials, Secret, Settings};
use docker_pulls::es::bulk::BulkOptions;
use docker_pulls::event::Request;
use docker_pulls::hub::{HubClient, HubOptions};
use docker_pulls::retry::Deadline;
use docker_pulls::run::Job;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Hub options for tests: the contract's behaviour, with short waits.
pub fn quick_hub_options(url: &str) -> HubOptions {
    HubOptions {
        base_url: url.to_owned(),
        concurrency: 8,
        request_timeout: Duration::from_millis(800),
        max_attempts: 4,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        ..HubOptions::default()
    }
}

/// Bulk options for tests: the contract's behaviour, with short waits.
pub fn quick_bulk_options() -> BulkOptions {
    BulkOptions {
        request_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        ..BulkOptions::default()
    }
}

pub fn hub_client(options: HubOptions) -> HubClient {
    HubClient::new(docker_pulls::http_client().expect("http client"), options).expect("hub client")
}

/// Settings as local mode or SSM would produce them.
pub fn settings(images: &[&str], es_url: Option<&str>) -> Settings {
    Settings {
        images: images.iter().map(|s| (*s).to_owned()).collect(),
        image_sources: Default::default(),
        elasticsearch: es_url.map(|url| EsSettings {
            url: url.to_owned(),
            auth: EsAuth::None,
            index_prefix: "docker-pulls".into(),
            pipeline: Some("docker-hub-pulls".into()),
            aws_region: None,
        }),
        hub_credentials: None,
        namespace_counts: Default::default(),
        insights: Default::default(),
    }
}

pub fn with_api_key(mut settings: Settings, key: &str) -> Settings {
    if let Some(es) = settings.elasticsearch.as_mut() {
        es.auth = EsAuth::ApiKey(Secret::new(key));
    }
    settings
}

pub fn with_hub_token(mut settings: Settings, user: &str, token: &str) -> Settings {
    settings.hub_credentials = Some(HubCredentials {
        username: user.into(),
        token: Secret::new(token),
    });
    settings
}

pub fn job(settings: Settings, hub: HubOptions) -> Job<Settings> {
    Job::new(
        settings,
        hub_client(hub),
        docker_pulls::http_client().expect("http client"),
    )
    .with_bulk_options(quick_bulk_options())
}

pub fn request(event: serde_json::Value) -> Request {
    Request::from_event(&event).expect("valid event")
}

/// events/scheduled.json as EventBridge would deliver it now, `age` after it
/// fired, and its `time`. (The file's own time is long past: by now it is a
/// late replay, stamped with the fetch time.)
pub fn scheduled_event(age: Duration) -> (serde_json::Value, String) {
    let path = format!("{}/events/scheduled.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("events/scheduled.json"))
            .expect("event JSON");
    let time = (time::OffsetDateTime::now_utc() - age)
        .replace_nanosecond(0)
        .expect("valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    event["time"] = serde_json::json!(time);
    (event, time)
}

pub fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

/// Everything logged while the guard lives (on this thread: run tests with
/// the default current-thread runtime).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// Fails if any of `secrets` appears in the logs or in `other`.
    pub fn assert_no_secrets(&self, secrets: &[&str], other: &[&str]) {
        let logs = self.text();
        for secret in secrets {
            assert!(
                !logs.contains(secret),
                "secret {secret:?} appears in the logs:\n{logs}"
            );
            for text in other {
                assert!(
                    !text.contains(secret),
                    "secret {secret:?} appears in {text:?}"
                );
            }
        }
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
