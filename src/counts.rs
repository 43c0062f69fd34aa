//! The run's counters, defined once. The response's fields
//! ([`crate::run::Summary`] flattens [`RunCounts`]), the CloudWatch metrics
//! ([`crate::metrics`] reads [`RunCounts::metric_values`] and
//! [`METRIC_NAMES`]) and the one log line per run ([`RunCounts::log`]) all
//! come from the table at the bottom of this file: a new counter is one new
//! line there.

/// A counter's value: a count, or `None` when it could not be known (the
/// spool could not be listed). Unknown values are left out of the metrics
/// record rather than reported as zero.
pub trait CounterValue {
    fn metric(&self) -> Option<u64>;
}

impl CounterValue for usize {
    fn metric(&self) -> Option<u64> {
        Some(u64::try_from(*self).unwrap_or(u64::MAX))
    }
}

impl CounterValue for u64 {
    fn metric(&self) -> Option<u64> {
        Some(*self)
    }
}

impl CounterValue for Option<usize> {
    fn metric(&self) -> Option<u64> {
        self.as_ref().and_then(CounterValue::metric)
    }
}

/// Declares [`RunCounts`], [`METRIC_NAMES`] and the log line from one table:
/// `field: type [=> "MetricName" Unit];`, attributes (docs, serde) first.
macro_rules! run_counts {
    ($(
        $(#[$attribute:meta])*
        $field:ident : $type:ty $(=> $metric:literal $unit:ident)?;
    )*) => {
        /// What one run did, as counts (documents unless noted).
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct RunCounts {
            $($(#[$attribute])* pub $field: $type,)*
        }

        /// Every metric the run's record names, in record order.
        pub const METRIC_NAMES: [&str; [$($($metric,)?)*].len()] = [$($($metric,)?)*];

        impl RunCounts {
            /// `(name, CloudWatch unit, value)` for each metric, in
            /// [`METRIC_NAMES`] order; `None` for a value not known.
            pub fn metric_values(&self) -> Vec<(&'static str, &'static str, Option<u64>)> {
                vec![$($(($metric, stringify!($unit), CounterValue::metric(&self.$field)),)?)*]
            }

            /// The one line per run that says what happened.
            pub fn log(&self, index: &str, timestamp: &str, late_event: bool, dry_run: bool) {
                tracing::info!(
                    index,
                    timestamp,
                    $($field = self.$field,)*
                    late_event,
                    dry_run,
                    "run finished"
                );
            }

            /// The one line of a run that failed: what it did before.
            pub fn log_failure(&self, error: &dyn std::fmt::Display) {
                tracing::error!(
                    %error,
                    $($field = self.$field,)*
                    "run failed"
                );
            }
        }
    };
}

run_counts! {
    /// Repositories and references attempted: fetched + failed + deferred.
    requested: usize => "Requested" Count;
    /// Repositories fetched from Docker Hub.
    fetched: usize;
    /// This run's documents Elasticsearch created.
    indexed: usize => "Indexed" Count;
    /// This run's documents Elasticsearch already had (409 on create).
    already_indexed: usize => "AlreadyIndexed" Count;
    /// Repositories that could not be fetched (the summary lists them).
    #[serde(skip)]
    failed: usize => "Failed" Count;
    /// Repositories left for a later run: the Hub's rate limit or the time
    /// could not pay for them. Not failures.
    deferred: usize => "Deferred" Count;
    /// This run's documents written to the spool (Elasticsearch did not
    /// take them; a later run will).
    spooled: usize => "Spooled" Count;
    /// Documents of earlier runs sent from the spool and created now: only
    /// what this run delivered (re-sent ones already there are
    /// `drained_already_indexed`).
    drained: usize => "Drained" Count;
    /// Spool objects still waiting after this run; `None` (JSON `null`, no
    /// metric point) when the spool could not be listed.
    spool_backlog: Option<usize> => "SpoolBacklog" Count;
    /// Documents Elasticsearch refused for good, set aside under
    /// `spool/rejected/`.
    rejected: usize => "Rejected" Count;
    /// The run's wall-clock time, in milliseconds.
    duration_ms: u64 => "Duration" Milliseconds;
    /// Docker Hub requests made (every attempt counts).
    hub_requests: usize => "HubRequests" Count;
    /// Docker Hub 429 answers seen.
    hub_rate_limited: usize => "HubRateLimited" Count;
    /// `_bulk` requests sent.
    bulk_requests: usize;
    /// Spooled documents re-sent and found already indexed (409).
    drained_already_indexed: usize => "DrainedAlreadyIndexed" Count;
    /// This run's documents written to the archive now.
    archived: usize => "Archived" Count;
    /// This run's documents the archive already held (an event delivered
    /// twice, a retried run): not written again.
    already_archived: usize;
    /// This run's documents whose archive write failed (after retries) and
    /// that wait as a pending copy under `archive-pending/` for a later run.
    archive_pending: usize => "ArchivePending" Count;
    /// Documents of earlier runs' pending copies written to the archive now.
    archive_drained: usize => "ArchiveDrained" Count;
    /// Pending archive copies still waiting after this run; `None` when
    /// they were not listed (no drain: the archive had just failed).
    archive_pending_backlog: Option<usize>;
    /// This run's documents neither archived nor kept as a pending copy:
    /// the archive misses them.
    archive_failed: usize => "ArchiveFailed" Count;
    /// Pull alerts raised (a spike, stall or regression episode started
    /// or ended; see [`crate::insights`]).
    pull_alerts: usize => "PullAlerts" Count;
    /// Badge objects written to `BADGE_BUCKET`.
    badges_written: usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_once_in_table_order() {
        let counts = RunCounts::default();
        let names: Vec<&str> = counts
            .metric_values()
            .iter()
            .map(|(name, _, _)| *name)
            .collect();
        assert_eq!(names, METRIC_NAMES);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        // Counters without a metric stay out of the record.
        assert!(!names.contains(&"BulkRequests") && !names.contains(&"Fetched"));
    }

    #[test]
    fn the_summary_fields_are_the_counters_and_failed_is_a_list_elsewhere() {
        let counts = RunCounts {
            requested: 3,
            failed: 1,
            ..RunCounts::default()
        };
        let json = serde_json::to_value(&counts).expect("serialises");
        assert_eq!(json["requested"], 3);
        assert!(json.get("failed").is_none(), "{json}");
        assert!(
            json["spool_backlog"].is_null(),
            "unknown until listed: {json}"
        );
    }
}
