//! Insights from a synthetic month of history written with the real
//! archive writer: gains against hand-computed values, badges against
//! shields' endpoint schema, alerts to SNS (moto, read back through an SQS
//! subscription) exactly once per episode, the local table and page.
//!
//! The history: one run an hour for 31 days (hour 0 to 720), then 25 more
//! hours in the alert test. Five repositories:
//! - `acme/steady`: 100,000 + 50 an hour throughout;
//! - `acme/spiky`: 10,000 + 50 an hour, then from hour 697 to 720 1,000 an
//!   hour (a spike), then 50 an hour again;
//! - `acme/stalled`: 5,000 + 50 an hour up to hour 696, frozen until 720,
//!   then 50 an hour again;
//! - `acme/backwards`: 1,000 + 50 an hour, 5,000 lower from hour 720 on;
//! - `acme/young`: first measured at hour 648, 7 + 10 an hour.

mod support;

use docker_pulls::archive::{self, DirArchive};
use docker_pulls::document::{Document, RepositoryStats, RunTime};
use docker_pulls::insights::alerts::Thresholds;
use docker_pulls::insights::gains::Gain;
use docker_pulls::insights::notify::SnsSink;
use docker_pulls::insights::store::{Bucket, DirBucket, S3Bucket};
use docker_pulls::insights::{self, Insights};
use docker_pulls::retry::Deadline;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::moto::Moto;

/// Hour 0: 2026-11-01T00:10:00Z.
const START: i64 = 1_793_491_800;
const HOUR: i64 = 3600;

fn pulls(name: &str, h: i64) -> Option<u64> {
    let h = h as u64;
    Some(match name {
        "steady" => 100_000 + 50 * h,
        "spiky" if h <= 696 => 10_000 + 50 * h,
        "spiky" if h <= 720 => 10_000 + 50 * 696 + 1_000 * (h - 696),
        "spiky" => 10_000 + 50 * 696 + 1_000 * 24 + 50 * (h - 720),
        "stalled" if h <= 696 => 5_000 + 50 * h,
        "stalled" if h <= 720 => 5_000 + 50 * 696,
        "stalled" => 5_000 + 50 * 696 + 50 * (h - 720),
        "backwards" if h < 720 => 1_000 + 50 * h,
        "backwards" => 1_000 + 50 * h - 5_000,
        "young" if h >= 648 => 7 + 10 * (h - 648),
        _ => return None,
    })
}

const NAMES: [&str; 5] = ["steady", "spiky", "stalled", "backwards", "young"];

fn run_time(h: i64) -> RunTime {
    let t = time::OffsetDateTime::from_unix_timestamp(START + h * HOUR).expect("time");
    RunTime::parse(
        &t.format(&time::format_description::well_known::Rfc3339)
            .expect("format"),
    )
    .expect("valid")
}

fn documents(h: i64) -> Vec<Document> {
    NAMES
        .iter()
        .filter_map(|name| {
            Some(Document {
                timestamp: run_time(h),
                stats: RepositoryStats {
                    namespace: "acme".into(),
                    name: (*name).into(),
                    pull_count: pulls(name, h)?,
                    star_count: 1,
                    collaborator_count: Some(0),
                },
            })
        })
        .collect()
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "docker-pulls-insights-{what}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

async fn write_run(store: &DirArchive, h: i64) {
    // The run's own archive write: each measurement once, as a run writes it.
    archive::write::write_once(
        store,
        &documents(h),
        time::OffsetDateTime::now_utc(),
        Deadline::after(Duration::from_secs(10)),
    )
    .await
    .expect("archived");
}

/// An archive with the runs of hours `0..=last`.
async fn history(last: i64) -> (PathBuf, DirArchive) {
    let dir = temp_dir("archive");
    let store = DirArchive::new(&dir);
    for h in 0..=last {
        write_run(&store, h).await;
    }
    (dir, store)
}

#[tokio::test]
async fn gains_from_a_month_of_history_match_the_hand_computed_values() {
    let (dir, store) = history(720).await;
    let (now, figures) = insights::latest(&store, None).await.expect("reads");
    assert_eq!(now, START + 720 * HOUR);
    let by_name: BTreeMap<&str, &insights::Figures> =
        figures.iter().map(|f| (f.repo.1.as_str(), f)).collect();
    let gains = |name: &str| {
        let f = by_name[name];
        (f.now.pulls, f.gains.day, f.gains.week, f.gains.month)
    };
    use Gain::*;
    // 50 an hour: 1,200 a day, 8,400 a week, 36,000 in 30 days.
    assert_eq!(
        gains("steady"),
        (136_000, Gained(1_200), Gained(8_400), Gained(36_000))
    );
    // 24 hours at 1,000: 24,000; the week: 24,000 + 6 days at 1,200.
    assert_eq!(
        gains("spiky"),
        (68_800, Gained(24_000), Gained(31_200), Gained(58_800))
    );
    assert_eq!(
        gains("stalled"),
        (39_800, Gained(0), Gained(7_200), Gained(34_800))
    );
    // Lower than a day ago: a regression, not -3,800; longer windows gained.
    assert_eq!(
        gains("backwards"),
        (
            32_000,
            Regressed { from: 35_800 },
            Gained(3_400),
            Gained(31_000)
        )
    );
    // Three days old: no week or month to compare with, unknown, not 0.
    assert_eq!(gains("young"), (727, Gained(240), Unknown, Unknown));
    let open: BTreeMap<&str, Vec<&str>> = figures
        .iter()
        .map(|f| {
            let kinds = insights::open_alerts(f, &Thresholds::default());
            (f.repo.1.as_str(), kinds.iter().map(|k| k.name()).collect())
        })
        .collect();
    assert_eq!(open["spiky"], ["spike"]);
    assert_eq!(open["stalled"], ["stall"]);
    assert_eq!(open["backwards"], ["regression"]);
    assert!(open["steady"].is_empty() && open["young"].is_empty());

    // The same through the command line.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
        .args(["insights", "--archive"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["repository", "total", "day", "week", "month", "alerts"]
    );
    assert!(
        rows.contains(&vec![
            "acme/spiky",
            "68800",
            "24000",
            "31200",
            "58800",
            "spike"
        ]),
        "{table}"
    );
    assert!(
        rows.contains(&vec![
            "acme/backwards",
            "32000",
            "down",
            "3400",
            "31000",
            "regression"
        ]),
        "{table}"
    );
    assert!(
        rows.contains(&vec!["acme/young", "727", "240", "-", "-"]),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// shields' endpoint schema (services/endpoint/endpoint.service.js): exactly
/// these keys, `schemaVersion` 1, `label` a string, `message` a non-empty
/// string, `color` a string; any other key is refused.
fn assert_endpoint_schema(badge: &Value) {
    let object = badge.as_object().expect("an object");
    for key in object.keys() {
        assert!(
            ["schemaVersion", "label", "message", "color"].contains(&key.as_str()),
            "shields refuses unknown key {key}: {badge}"
        );
    }
    assert_eq!(badge["schemaVersion"], json!(1));
    assert!(badge["label"].is_string(), "{badge}");
    assert!(
        badge["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{badge}"
    );
    assert!(badge["color"].is_string(), "{badge}");
}

#[tokio::test]
async fn badges_the_index_and_the_page_land_in_the_badge_bucket() {
    let (dir, store) = history(720).await;
    let bucket_dir = temp_dir("badges");
    let bucket: Arc<dyn Bucket> = Arc::new(DirBucket::new(&bucket_dir));
    let insights = Insights::default().with_badges(bucket.clone());
    let outcome = insights
        .after_run(
            &store,
            &documents(720),
            &Thresholds::default(),
            insights::TIMEOUT,
        )
        .await
        .expect("insights");
    assert_eq!(outcome.badges_written, 5 * 4);
    assert!(outcome.page_written);
    let read = |key: &str| -> Value {
        serde_json::from_slice(&std::fs::read(bucket_dir.join(key)).expect(key)).expect("JSON")
    };
    let expected = [
        ("spiky", "total", "docker pulls", "69k", "blue"),
        ("spiky", "day", "pulls", "24k/day", "brightgreen"),
        ("spiky", "week", "pulls", "31k/week", "brightgreen"),
        ("spiky", "month", "pulls", "59k/month", "brightgreen"),
        ("stalled", "day", "pulls", "0/day", "red"),
        ("backwards", "day", "pulls", "unknown", "lightgrey"),
        ("young", "day", "pulls", "240/day", "green"),
        ("young", "week", "pulls", "unknown", "lightgrey"),
    ];
    for (name, kind, label, message, color) in expected {
        let badge = read(&format!("badges/acme/{name}/{kind}.json"));
        assert_endpoint_schema(&badge);
        assert_eq!(
            badge,
            json!({"schemaVersion": 1, "label": label, "message": message, "color": color}),
            "{name} {kind}"
        );
    }
    let index = read("badges/index.json");
    let spiky = index["repositories"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["name"] == "spiky")
        .expect("spiky");
    assert_eq!(
        (
            spiky["total"].clone(),
            spiky["day"].clone(),
            spiky["week"].clone(),
            spiky["month"].clone()
        ),
        (json!(68_800), json!(24_000), json!(31_200), json!(58_800))
    );
    let page = std::fs::read_to_string(bucket_dir.join("badges/index.html")).expect("the page");
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 5);

    // The next run, an hour later: nothing changed enough to write a badge
    // (and none is due), the page is the day's already.
    write_run(&store, 721).await;
    let next = insights
        .after_run(
            &store,
            &documents(721),
            &Thresholds::default(),
            insights::TIMEOUT,
        )
        .await
        .expect("insights");
    assert_eq!((next.badges_written, next.page_written), (0, false));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bucket_dir);
}

#[tokio::test]
async fn the_page_of_a_long_list_shows_the_most_pulled_and_stays_small() {
    let dir = temp_dir("page-cap");
    let store = DirArchive::new(&dir);
    let count = insights::PAGE_REPOSITORIES + 100;
    let index: insights::Index = serde_json::from_value(json!({
        "updated": "2026-12-07T12:00:00Z",
        "repositories": (0..count).map(|i| json!({
            "namespace": "acme", "name": format!("r{i:05}"),
            "measured": "2026-12-07T12:00:00Z", "total": i as u64 * 1000,
            "day": null, "week": null, "month": null,
        })).collect::<Vec<_>>()
    }))
    .expect("an index");
    let (html, _) = insights::report(&store, &index, START + 720 * HOUR)
        .await
        .expect("the page");
    assert_eq!(
        html.matches("<svg class=\"chart\"").count(),
        insights::PAGE_REPOSITORIES
    );
    assert!(html.contains(&format!(
        "the {} most pulled of {count} repositories",
        insights::PAGE_REPOSITORIES
    )));
    // The most pulled are shown, the least pulled are not.
    assert!(html.contains(&format!("<h2>acme/r{:05}</h2>", count - 1)));
    assert!(!html.contains("<h2>acme/r00000</h2>"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A badge bucket whose badge PUTs after the first `answered` never
/// answer: S3 slower than a run's time allows.
struct StallingBucket {
    inner: DirBucket,
    answered: usize,
    badge_puts: std::sync::atomic::AtomicUsize,
}

impl Bucket for StallingBucket {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<Option<insights::store::Object>, insights::store::StoreError>,
    > {
        self.inner.get(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'static str,
        condition: insights::store::Condition,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<insights::store::Written, insights::store::StoreError>,
    > {
        let badge =
            key.starts_with("badges/") && key != insights::INDEX_KEY && key != insights::PAGE_KEY;
        if badge
            && self
                .badge_puts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                >= self.answered
        {
            return Box::pin(std::future::pending());
        }
        self.inner.put(key, body, content_type, condition)
    }
}

#[tokio::test]
async fn badges_a_run_cannot_write_in_its_time_are_written_by_the_next_run_each_once() {
    let (dir, store) = history(720).await;
    let bucket_dir = temp_dir("badges-stalling");
    // Two repositories' badges (8 PUTs) land; the rest never answer.
    let stalling = Arc::new(StallingBucket {
        inner: DirBucket::new(&bucket_dir),
        answered: 8,
        badge_puts: Default::default(),
    });
    let first = Insights::default().with_badges(stalling.clone());
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        first.after_run(
            &store,
            &documents(720),
            &Thresholds::default(),
            Duration::from_millis(500),
        ),
    )
    .await
    .expect("the run's insights end in their time even when S3 does not answer")
    .expect("insights");
    assert_eq!(outcome.badges_written, 8);
    let index: Value = serde_json::from_slice(
        &std::fs::read(bucket_dir.join(insights::INDEX_KEY)).expect("the index is written"),
    )
    .expect("JSON");
    let written: Vec<&str> = index["repositories"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["badges_written"].is_i64())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        written.len(),
        2,
        "the index records the two that landed: {index}"
    );

    // The next run (an hour later, S3 answering again) writes the other
    // three repositories' badges, not the two already written.
    write_run(&store, 721).await;
    let second = Insights::default().with_badges(Arc::new(DirBucket::new(&bucket_dir)));
    let next = second
        .after_run(
            &store,
            &documents(721),
            &Thresholds::default(),
            insights::TIMEOUT,
        )
        .await
        .expect("insights");
    assert_eq!(next.badges_written, 3 * 4);
    let index: Value = serde_json::from_slice(
        &std::fs::read(bucket_dir.join(insights::INDEX_KEY)).expect("the index"),
    )
    .expect("JSON");
    assert!(
        index["repositories"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|r| r["badges_written"].is_i64()),
        "every repository's badges are written after two runs: {index}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bucket_dir);
}

/// SQS through moto's JSON protocol (no SQS crate needed for a test).
async fn sqs(moto: &Moto, target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/", moto.endpoint_url()))
        .header("X-Amz-Target", format!("AmazonSQS.{target}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        // moto routes by the credential scope's service.
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .expect("SQS answers");
    assert!(response.status().is_success(), "{target}: {response:?}");
    response.json().await.expect("JSON")
}

/// Every message published to the topic so far: `(subject, message)`.
async fn drain(moto: &Moto, queue: &str) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    loop {
        let answer = sqs(
            moto,
            "ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10}),
        )
        .await;
        let Some(batch) = answer["Messages"].as_array().filter(|b| !b.is_empty()) else {
            return messages;
        };
        for message in batch {
            let envelope: Value =
                serde_json::from_str(message["Body"].as_str().expect("a body")).expect("SNS JSON");
            messages.push((
                envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                envelope["Message"].as_str().unwrap_or_default().to_owned(),
            ));
            sqs(
                moto,
                "DeleteMessage",
                json!({"QueueUrl": queue, "ReceiptHandle": message["ReceiptHandle"]}),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn each_episode_alerts_once_when_it_starts_and_once_when_it_ends() {
    let moto = Moto::start().await;
    let aws = moto.sdk_config().await;
    moto.create_bucket("pull-badges").await;
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic = sns
        .create_topic()
        .name("pull-alerts")
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("an ARN")
        .to_owned();
    let queue = sqs(&moto, "CreateQueue", json!({"QueueName": "alerts"})).await["QueueUrl"]
        .as_str()
        .expect("a URL")
        .to_owned();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:alerts")
        .attributes("RawMessageDelivery", "false")
        .send()
        .await
        .expect("subscribed");

    let (dir, store) = history(699).await;
    let s3 = moto.s3_client().await;
    // A fresh Insights per run: every run is a cold start, the state lives
    // only in the bucket.
    let insights = || {
        Insights::default()
            .with_alert_state(Arc::new(S3Bucket::new(s3.clone(), "pull-badges")))
            .with_alert_sink(Arc::new(SnsSink::new(
                aws_sdk_sns::Client::new(&aws),
                &topic,
            )))
    };
    let mut raised = 0;
    let mut by_hour = BTreeMap::new();
    for h in 700..=745 {
        write_run(&store, h).await;
        let outcome = insights()
            .after_run(
                &store,
                &documents(h),
                &Thresholds::default(),
                insights::TIMEOUT,
            )
            .await
            .expect("insights");
        raised += outcome.alerts;
        for (subject, _) in drain(&moto, &queue).await {
            by_hour.entry(h).or_insert_with(Vec::new).push(subject);
        }
        if h == 720 {
            // The same event retried, and two overlapping runs: nothing new.
            let (first, second) = (insights(), insights());
            let (docs, thresholds) = (documents(h), Thresholds::default());
            let (a, b) = tokio::join!(
                first.after_run(&store, &docs, &thresholds, insights::TIMEOUT),
                second.after_run(&store, &docs, &thresholds, insights::TIMEOUT),
            );
            assert_eq!((a.expect("a").alerts, b.expect("b").alerts), (0, 0));
            assert!(drain(&moto, &queue).await.is_empty());
        }
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let expected: BTreeMap<i64, Vec<String>> = [
        // 24 h gain: 6,900 at hour 702, over 5 × 1,200.
        (702, vec!["docker-pulls: spike started for acme/spiky"]),
        (
            720,
            vec![
                "docker-pulls: regression started for acme/backwards",
                "docker-pulls: stall started for acme/stalled",
            ],
        ),
        (721, vec!["docker-pulls: stall ended for acme/stalled"]),
        // 24,000 - 950 k falls under 6,000 at k = 19.
        (739, vec!["docker-pulls: spike ended for acme/spiky"]),
        // A day after the drop, the count is above a day ago again.
        (
            744,
            vec!["docker-pulls: regression ended for acme/backwards"],
        ),
    ]
    .into_iter()
    .map(|(h, subjects)| (h, sorted(subjects.into_iter().map(str::to_owned).collect())))
    .collect();
    let by_hour: BTreeMap<i64, Vec<String>> =
        by_hour.into_iter().map(|(h, v)| (h, sorted(v))).collect();
    assert_eq!(by_hour, expected);
    assert_eq!(raised, 6, "PullAlerts counts each");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_alert_reads_as_a_sentence_then_json() {
    let moto = Moto::start().await;
    let aws = moto.sdk_config().await;
    moto.create_bucket("pull-state").await;
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic = sns.create_topic().name("t").send().await.expect("topic");
    let topic = topic.topic_arn().expect("ARN").to_owned();
    let queue = sqs(&moto, "CreateQueue", json!({"QueueName": "q"})).await["QueueUrl"]
        .as_str()
        .expect("URL")
        .to_owned();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:q")
        .send()
        .await
        .expect("subscribed");
    let (dir, store) = history(720).await;
    let insights = Insights::default()
        .with_alert_state(Arc::new(S3Bucket::new(
            moto.s3_client().await,
            "pull-state",
        )))
        .with_alert_sink(Arc::new(SnsSink::new(sns.clone(), &topic)));
    let outcome = insights
        .after_run(
            &store,
            &documents(720),
            &Thresholds::default(),
            insights::TIMEOUT,
        )
        .await
        .expect("insights");
    assert_eq!(outcome.alerts, 3);
    let messages = drain(&moto, &queue).await;
    let (_, spike) = messages
        .iter()
        .find(|(subject, _)| subject.contains("spike"))
        .expect("the spike");
    let (sentence, body) = spike
        .split_once("\n\n")
        .expect("sentence, blank line, JSON");
    assert_eq!(
        sentence,
        "Pulls of acme/spiky spiked: 24k in the last 24 hours, far above its usual daily pulls (now 68800 in total)."
    );
    let body: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        body,
        json!({"alert": "spike", "state": "started", "namespace": "acme", "name": "spiky",
               "timestamp": "2026-12-01T00:10:00Z", "since": "2026-12-01T00:10:00Z",
               "pull_count": 68_800, "gains": {"day": 24_000, "week": 31_200, "month": 58_800}})
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's `chromium` (scripts/setup installs it), or `$CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|dir| dir.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!("no chromium on PATH: run scripts/setup (apt-get install chromium), or set CHROMIUM");
}

#[tokio::test]
async fn the_page_renders_in_headless_chromium_with_a_chart_per_repository() {
    let (dir, _store) = history(720).await;
    let page = dir.join("report.html");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_docker-pulls"))
        .args(["report", "--archive"])
        .arg(&dir)
        .arg("--out")
        .arg(&page)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let url = format!("file://{}", page.display());
    let headless = |extra: &[&str]| {
        std::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1200,1600",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs")
    };
    // The DOM after the page's script ran, and what the console said.
    let dom = headless(&["--dump-dom"]);
    assert!(dom.status.success(), "{dom:?}");
    let rendered = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        rendered.matches("<svg class=\"chart\"").count(),
        5,
        "{rendered}"
    );
    assert_eq!(rendered.matches("<section class=\"repo\"").count(), 5);
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    // Sorted by the week's growth: spiky (31,200) first, young (unknown) last.
    let order: Vec<usize> = ["spiky", "steady", "stalled", "backwards", "young"]
        .iter()
        .map(|name| rendered.find(&format!("<h2>acme/{name}</h2>")).expect(name))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    let screenshot = dir.join("page.png");
    let shot = headless(&[&format!("--screenshot={}", screenshot.display())]);
    assert!(shot.status.success(), "{shot:?}");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "a blank page is smaller: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("INSIGHTS_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).expect("copied");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
