//! One CloudWatch Embedded Metric Format (EMF) record per run.
//!
//! EMF is a JSON log line that CloudWatch Logs turns into metrics: no SDK
//! call, no `cloudwatch:PutMetricData` permission, nothing to flush on a
//! deadline. The template's alarms and dashboard read these metrics by name
//! (namespace [`NAMESPACE`], dimension `FunctionName`), so the names here and
//! in template.yaml must agree; tests/template.rs checks them against
//! [`METRIC_NAMES`].
//!
//! The record is built by hand rather than through a `metrics`-facade EMF
//! crate: one record of a run's counters ([`crate::counts`]) needs no global
//! recorder, and a pure function is easy to check against the specification.
//!
//! CloudWatch extracts metrics only from a log event that is exactly one JSON
//! object, so [`emf_line`] must reach stdout as its own line (`println!`),
//! not as the message of a tracing event.

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric in the record.
pub const NAMESPACE: &str = "DockerPulls";

/// The one dimension: the Lambda function's name (the stack name).
pub const DIMENSION: &str = "FunctionName";

pub use crate::counts::METRIC_NAMES;
use crate::counts::RunCounts;

/// The EMF record of one run of `function_name`, stamped `timestamp_ms`
/// (milliseconds since the Unix epoch): `_aws` metadata naming every metric
/// once, the `FunctionName` dimension and each value as a top-level integer.
pub fn emf_record(function_name: &str, timestamp_ms: u64, counts: &RunCounts) -> Value {
    let values = counts.metric_values();
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();

    let mut record = Map::new();
    record.insert(
        "_aws".to_string(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    record.insert(DIMENSION.to_string(), json!(function_name));
    // An unknown value is left out: CloudWatch then records no point for
    // it, instead of a zero that would be a lie.
    for (name, _, value) in values {
        if let Some(value) = value {
            record.insert(name.to_string(), json!(value));
        }
    }
    Value::Object(record)
}

/// [`emf_record`] as one line of JSON, without a trailing newline.
pub fn emf_line(function_name: &str, timestamp_ms: u64, counts: &RunCounts) -> String {
    emf_record(function_name, timestamp_ms, counts).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values, so a metric wired to the wrong field shows.
    fn sample() -> RunCounts {
        RunCounts {
            requested: 1000,
            indexed: 990,
            already_indexed: 3,
            failed: 2,
            deferred: 5,
            spooled: 7,
            drained: 11,
            spool_backlog: Some(13),
            rejected: 17,
            duration_ms: 48_213,
            hub_requests: 1012,
            hub_rate_limited: 19,
            drained_already_indexed: 23,
            archived: 29,
            archive_failed: 31,
            pull_alerts: 37,
            ..RunCounts::default()
        }
    }

    fn expected_values() -> [(&'static str, &'static str, u64); 16] {
        [
            ("Requested", "Count", 1000),
            ("Indexed", "Count", 990),
            ("AlreadyIndexed", "Count", 3),
            ("Failed", "Count", 2),
            ("Deferred", "Count", 5),
            ("Spooled", "Count", 7),
            ("Drained", "Count", 11),
            ("SpoolBacklog", "Count", 13),
            ("Rejected", "Count", 17),
            ("Duration", "Milliseconds", 48_213),
            ("HubRequests", "Count", 1012),
            ("HubRateLimited", "Count", 19),
            ("DrainedAlreadyIndexed", "Count", 23),
            ("Archived", "Count", 29),
            ("ArchiveFailed", "Count", 31),
            ("PullAlerts", "Count", 37),
        ]
    }

    #[test]
    fn line_is_one_json_object_with_the_emf_metadata() {
        let line = emf_line("docker-pulls", 1_764_268_500_000, &sample());
        assert!(!line.contains('\n'), "one line: {line}");
        let record: Value = serde_json::from_str(&line).expect("the line is JSON");
        assert_eq!(
            record,
            emf_record("docker-pulls", 1_764_268_500_000, &sample())
        );

        let aws = &record["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_764_268_500_000_u64));
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert_eq!(directives.len(), 1, "one metric directive");
        assert_eq!(directives[0]["Namespace"], "DockerPulls");
        assert_eq!(directives[0]["Dimensions"], json!([["FunctionName"]]));
        // The dimension's target member: a string at the top level.
        assert_eq!(record["FunctionName"], "docker-pulls");
    }

    #[test]
    fn names_every_metric_once_with_its_unit_and_integer_value() {
        let record = emf_record("docker-pulls", 0, &sample());
        let definitions = record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("Metrics is an array");
        let names: Vec<&str> = definitions
            .iter()
            .map(|d| d["Name"].as_str().expect("Name is a string"))
            .collect();
        assert_eq!(names, METRIC_NAMES, "every metric once, in order");

        for (name, unit, value) in expected_values() {
            let definition = definitions
                .iter()
                .find(|d| d["Name"] == name)
                .unwrap_or_else(|| panic!("{name} not defined"));
            assert_eq!(definition["Unit"], unit, "{name}'s unit");
            let member = &record[name];
            assert!(member.is_u64(), "{name} is not an integer: {member}");
            assert_eq!(member.as_u64(), Some(value), "{name}'s value");
        }

        // Nothing else at the top level: the metadata, the dimension, the values.
        let mut keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = METRIC_NAMES.to_vec();
        expected.extend(["_aws", "FunctionName"]);
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn a_quiet_run_still_reports_every_metric_as_zero() {
        // The "nothing indexed" alarm adds Indexed, Drained and AlreadyIndexed
        // point by point: every record must carry all of them, zeros too.
        let quiet = RunCounts {
            spool_backlog: Some(0),
            ..RunCounts::default()
        };
        let record = emf_record("docker-pulls", 0, &quiet);
        for name in METRIC_NAMES {
            assert_eq!(record[name], json!(0), "{name}");
        }
    }

    #[test]
    fn function_name_is_carried_as_given() {
        let record = emf_record("my-stack-2", 5, &RunCounts::default());
        assert_eq!(record["FunctionName"], "my-stack-2");
        assert_eq!(record["_aws"]["Timestamp"], json!(5));
    }

    #[test]
    fn an_unknown_backlog_is_left_out_not_reported_as_zero() {
        let record = emf_record("docker-pulls", 0, &RunCounts::default());
        assert!(record.get("SpoolBacklog").is_none(), "{record}");
        // Still defined, so a later record with a value lands in the same metric.
        let names = record["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("SpoolBacklog"), "{names}");
        assert_eq!(record["Indexed"], json!(0));
    }
}
