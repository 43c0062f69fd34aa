//! The document we index: the five fields the seed's ingest pipeline kept,
//! under the `http.docker_hub` path Metricbeat used, so old and new data
//! share one mapping and one dashboard.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The run's timestamp: the event's `time`, shared by every document of a run
/// and part of each document's `_id`, so a retried event indexes nothing new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunTime(OffsetDateTime);

/// An event `time` that is not RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("event time {0:?} is not an RFC 3339 timestamp (like 2026-11-27T18:35:00Z)")]
pub struct InvalidTime(pub String);

impl RunTime {
    /// Parses an RFC 3339 time and normalises it to UTC.
    pub fn parse(text: &str) -> Result<Self, InvalidTime> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Self(t.to_offset(time::UtcOffset::UTC)))
            .map_err(|_| InvalidTime(text.to_owned()))
    }

    /// Now, to the whole second (manual invocations without a `time`).
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self(now.replace_nanosecond(0).unwrap_or(now))
    }

    pub fn year(&self) -> i32 {
        self.0.year()
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Microseconds since the Unix epoch, when the time has no finer part
    /// (the Parquet files' `TIMESTAMP(MICROS)`); `None` otherwise.
    pub fn unix_micros(&self) -> Option<i64> {
        let nanos = self.0.unix_timestamp_nanos();
        (nanos % 1_000 == 0)
            .then(|| i64::try_from(nanos / 1_000).ok())
            .flatten()
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// The time `micros` microseconds after the Unix epoch, in UTC.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Self)
    }

    /// The UTC day.
    pub fn date(&self) -> time::Date {
        self.0.date()
    }

    /// How long before `now` this time was (zero when it is not in the past).
    pub fn age_at(&self, now: &RunTime) -> std::time::Duration {
        let age = now.0 - self.0;
        std::time::Duration::try_from(age).unwrap_or_default()
    }

    /// `20261127T183500.000Z`: fixed width, so it sorts as the time does,
    /// and safe in S3 keys and file names.
    pub fn compact(&self) -> String {
        let t = self.0;
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl fmt::Display for RunTime {
    /// `2026-11-27T18:35:00Z`; fractional seconds only when the event had them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// The yearly index a run writes to: `<prefix>-<yyyy>` (UTC).
pub fn index_name(prefix: &str, time: &RunTime) -> String {
    format!("{prefix}-{:04}", time.year())
}

/// The counts Docker Hub reports for one repository: all we keep of its answer.
///
/// Deserialising into this skips every other field (`full_description` can be
/// tens of kilobytes) without allocating it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepositoryStats {
    pub namespace: String,
    pub name: String,
    #[serde(deserialize_with = "count")]
    pub pull_count: u64,
    #[serde(deserialize_with = "count")]
    pub star_count: u64,
    /// `None` when the answer has none: namespace listings never carry it,
    /// and a document built from one leaves the field out. (A repository
    /// answer without it is taken as zero by the client, which is what the
    /// Hub shows then.)
    #[serde(default, deserialize_with = "optional_count")]
    pub collaborator_count: Option<u64>,
}

/// A count as a non-negative integer. An integral float (`2.244658322e+09`,
/// as Metricbeat re-encoded it) is accepted and stored as an integer; anything
/// else is an error rather than a silently wrong number.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(u64),
        Float(f64),
    }
    match Number::deserialize(deserializer)? {
        Number::Integer(n) => Ok(n),
        // 2^53: beyond it a float no longer holds every integer exactly.
        Number::Float(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0 => {
            Ok(f as u64)
        }
        Number::Float(f) => Err(serde::de::Error::custom(format_args!(
            "count {f} is not a non-negative integer"
        ))),
    }
}

fn optional_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    count(deserializer).map(Some)
}

/// One document, serialised exactly as the contract shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub timestamp: RunTime,
    pub stats: RepositoryStats,
}

impl Document {
    /// `namespace/name@timestamp`: stable across retries of the same event,
    /// distinct for every repository and run. At most 255 + 1 + 35 bytes, well
    /// under Elasticsearch's 512-byte `_id` limit.
    pub fn id(&self) -> String {
        format!(
            "{}/{}@{}",
            self.stats.namespace, self.stats.name, self.timestamp
        )
    }
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "@timestamp")]
            timestamp: String,
            http: Http<'a>,
        }
        #[derive(Serialize)]
        struct Http<'a> {
            docker_hub: DockerHub<'a>,
        }
        #[derive(Serialize)]
        struct DockerHub<'a> {
            namespace: &'a str,
            name: &'a str,
            pull_count: u64,
            star_count: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            collaborator_count: Option<u64>,
        }
        let stats = &self.stats;
        Wire {
            timestamp: self.timestamp.to_string(),
            http: Http {
                docker_hub: DockerHub {
                    namespace: &stats.namespace,
                    name: &stats.name,
                    pull_count: stats.pull_count,
                    star_count: stats.star_count,
                    collaborator_count: stats.collaborator_count,
                },
            },
        }
        .serialize(serializer)
    }
}

/// A document for other modules' unit tests: `namespace/name` with `pulls`
/// pulls at 2026-11-27T18:35:00Z, 3 stars, no collaborators.
#[cfg(test)]
pub(crate) fn sample(namespace: &str, name: &str, pulls: u64) -> Document {
    Document {
        timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
        stats: RepositoryStats {
            namespace: namespace.into(),
            name: name.into(),
            pull_count: pulls,
            star_count: 3,
            collaborator_count: Some(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/dockerhub/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn trim(body: &str, time: &str) -> Value {
        let stats: RepositoryStats = serde_json::from_str(body).expect("fixture decodes");
        let document = Document {
            timestamp: RunTime::parse(time).expect("valid time"),
            stats,
        };
        serde_json::to_value(&document).expect("serialises")
    }

    #[test]
    fn trims_the_2021_response_to_the_contract_document() {
        let document = trim(&fixture("library-httpd-2021.json"), "2026-11-27T18:35:00Z");
        assert_eq!(
            document,
            json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{
                "namespace":"library","name":"httpd",
                "pull_count":2242267726u64,"star_count":3318,"collaborator_count":0}}})
        );
    }

    #[test]
    fn trims_the_current_response_and_drops_new_fields() {
        let document = trim(
            &fixture("library-httpd-current-fields.json"),
            "2026-11-27T18:35:00Z",
        );
        assert_eq!(
            document,
            json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{
                "namespace":"library","name":"httpd",
                "pull_count":4871203345u64,"star_count":4812,"collaborator_count":0}}})
        );
    }

    #[test]
    fn counts_serialise_as_integers_even_from_floats() {
        let body = r#"{"namespace":"library","name":"httpd","pull_count":2.244658322e+09,"star_count":3321,"collaborator_count":0}"#;
        let text = serde_json::to_string(&trim(body, "2021-01-15T10:07:40Z")).expect("json");
        assert!(text.contains(r#""pull_count":2244658322,"#), "{text}");
    }

    #[test]
    fn missing_or_wrong_counts_are_errors() {
        for body in [
            r#"{"namespace":"a","name":"b","star_count":1}"#,
            r#"{"namespace":"a","name":"b","pull_count":-1,"star_count":1}"#,
            r#"{"namespace":"a","name":"b","pull_count":1.5,"star_count":1}"#,
            r#"{"namespace":"a","name":"b","pull_count":"12","star_count":1}"#,
            "<html>rate limited</html>",
        ] {
            assert!(
                serde_json::from_str::<RepositoryStats>(body).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn a_document_without_collaborator_count_leaves_the_field_out() {
        // A namespace listing's entry: counts, no collaborator_count.
        let body =
            r#"{"name":"b","namespace":"a","pull_count":7,"star_count":1,"is_private":false}"#;
        let stats: RepositoryStats = serde_json::from_str(body).expect("decodes");
        assert_eq!(stats.collaborator_count, None);
        let text = serde_json::to_string(&Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats,
        })
        .expect("serialises");
        assert_eq!(
            text,
            r#"{"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":7,"star_count":1}}}"#
        );
        let null = r#"{"namespace":"a","name":"b","pull_count":7,"star_count":1,"collaborator_count":null}"#;
        assert!(serde_json::from_str::<RepositoryStats>(null).is_err());
    }

    #[test]
    fn the_details_document_is_the_contract_byte_for_byte() {
        let document = Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: "httpd".into(),
                pull_count: 2244658322,
                star_count: 3321,
                collaborator_count: Some(0),
            },
        };
        assert_eq!(
            serde_json::to_string(&document).expect("serialises"),
            r#"{"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"library","name":"httpd","pull_count":2244658322,"star_count":3321,"collaborator_count":0}}}"#
        );
    }

    #[test]
    fn times_normalise_to_utc_and_pick_the_index_year() {
        let time = RunTime::parse("2027-01-01T00:30:00+01:00").expect("valid");
        assert_eq!(time.to_string(), "2026-12-31T23:30:00Z");
        assert_eq!(index_name("docker-pulls", &time), "docker-pulls-2026");
        let fractional = RunTime::parse("2026-11-27T18:35:00.250Z").expect("valid");
        assert_eq!(fractional.to_string(), "2026-11-27T18:35:00.25Z");
        assert!(RunTime::parse("yesterday").is_err());
        assert!(RunTime::now().to_string().ends_with('Z'));
    }

    #[test]
    fn compact_times_sort_as_the_times_do() {
        let times = [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.250Z",
            "2026-11-27T18:35:00Z",
            "2027-01-01T00:00:00Z",
        ];
        let compact: Vec<String> = times
            .iter()
            .map(|t| RunTime::parse(t).expect("valid").compact())
            .collect();
        assert_eq!(compact[0], "20260102T030405.000Z");
        assert_eq!(compact[1], "20260102T030405.250Z");
        let mut sorted = compact.clone();
        sorted.sort();
        assert_eq!(sorted, compact);
    }

    #[test]
    fn age_is_how_long_ago() {
        let now = RunTime::parse("2026-11-28T08:00:00Z").expect("valid");
        let earlier = RunTime::parse("2026-11-26T08:00:00Z").expect("valid");
        assert_eq!(
            earlier.age_at(&now),
            std::time::Duration::from_secs(2 * 86_400)
        );
        assert_eq!(now.age_at(&earlier), std::time::Duration::ZERO);
        assert_eq!(now.unix_seconds() - earlier.unix_seconds(), 2 * 86_400);
    }

    #[test]
    fn id_is_namespace_name_and_timestamp() {
        let document = Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: "httpd".into(),
                pull_count: 1,
                star_count: 2,
                collaborator_count: Some(0),
            },
        };
        assert_eq!(document.id(), "library/httpd@2026-11-27T18:35:00Z");
    }
}
