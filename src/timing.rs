//! How much time to keep back for indexing and spooling, learned from what
//! they cost in this warm container.
//!
//! The Hub phase stops early enough that what it fetched can still be
//! indexed, and indexing stops early enough that what it could not index
//! can still be spooled. The estimate of a `_bulk` is a fixed part (a round
//! trip: the median of the last few, so one slow answer does not set it)
//! plus a per-document part, learned only from batches large enough to tell
//! the two apart. Both are bounded above by what the largest possible
//! `_bulk` takes at a conservative throughput: one slow answer to a tiny
//! batch can never make a run defer most of its repositories.

use crate::es::bulk::IndexReport;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Never keep less than this for one `_bulk` round trip.
const MIN_ROUND_TRIP: Duration = Duration::from_millis(500);
/// The slowest round trip worth planning for: a full 10 MiB `_bulk`
/// (about 40,000 documents) at a conservative 2,000 documents a second.
const MAX_ROUND_TRIP: Duration = Duration::from_secs(20);
/// Never assume a document costs less than this to index.
const MIN_PER_DOCUMENT: Duration = Duration::from_micros(100);
/// Never assume more: 500 documents a second is slower than any cluster
/// that answers at all.
const MAX_PER_DOCUMENT: Duration = Duration::from_millis(2);
/// A batch this large tells the per-document cost from the round trip.
const LEARN_PER_DOCUMENT_FROM: usize = 500;
/// Round trips remembered for the median.
const ROUND_TRIPS_KEPT: usize = 5;
/// Kept for indexing on top of the estimate: one retry's backoff.
const INDEX_SLACK: Duration = Duration::from_millis(500);
/// An S3 write of a run's documents: one request, plus the bytes at a
/// pessimistic 5 MB/s (a document is ~250 bytes of NDJSON).
const SPOOL_WRITE: Duration = Duration::from_secs(2);
const SPOOL_PER_DOCUMENT: Duration = Duration::from_micros(50);
/// One spool operation (list, get, delete) before any was measured, and
/// the most any is assumed to take.
const SPOOL_OPERATION: Duration = Duration::from_secs(1);
const MAX_SPOOL_OPERATION: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Observed {
    /// Seconds per `_bulk` request, newest last.
    round_trips: VecDeque<Duration>,
    /// Per document, from the last large enough batch.
    per_document: Option<Duration>,
    /// Spool operations, newest last.
    spool_operations: VecDeque<Duration>,
}

/// What indexing and spooling have cost in this container.
#[derive(Debug, Default)]
pub struct IndexTiming {
    observed: Mutex<Observed>,
}

fn push_bounded(samples: &mut VecDeque<Duration>, sample: Duration) {
    if samples.len() == ROUND_TRIPS_KEPT {
        samples.pop_front();
    }
    samples.push_back(sample);
}

fn median(samples: &VecDeque<Duration>) -> Option<Duration> {
    let mut sorted: Vec<Duration> = samples.iter().copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

impl IndexTiming {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns from a finished indexing of `documents`.
    pub fn record(&self, report: &IndexReport, documents: usize) {
        if report.requests == 0 || documents == 0 {
            return;
        }
        let per_request = report.elapsed / report.requests as u32;
        let mut observed = self.observed();
        push_bounded(&mut observed.round_trips, per_request);
        if documents >= LEARN_PER_DOCUMENT_FROM {
            observed.per_document = Some(report.elapsed / documents as u32);
        }
    }

    /// Learns what one spool operation (S3 or a directory) took.
    pub fn record_spool_operation(&self, took: Duration) {
        push_bounded(&mut self.observed().spool_operations, took);
    }

    /// One `_bulk` round trip, doubled (a busy cluster is slower the next
    /// time too), within bounds.
    fn round_trip(&self) -> Duration {
        median(&self.observed().round_trips)
            .map_or(MIN_ROUND_TRIP, |rtt| rtt * 2)
            .clamp(MIN_ROUND_TRIP, MAX_ROUND_TRIP)
    }

    fn per_document(&self) -> Duration {
        self.observed()
            .per_document
            .map_or(MIN_PER_DOCUMENT, |cost| cost * 2)
            .clamp(MIN_PER_DOCUMENT, MAX_PER_DOCUMENT)
    }

    /// Time to keep for indexing `documents`.
    pub fn index_reserve(&self, documents: usize) -> Duration {
        INDEX_SLACK + self.round_trip() + self.per_document() * documents as u32
    }

    /// Time to keep for writing `documents` to the spool.
    pub fn spool_reserve(&self, documents: usize) -> Duration {
        SPOOL_WRITE.max(self.spool_operation()) + SPOOL_PER_DOCUMENT * documents as u32
    }

    /// One spool operation (a list, a get, a delete): the slowest of the
    /// last few, within bounds.
    pub fn spool_operation(&self) -> Duration {
        let observed = self.observed();
        observed
            .spool_operations
            .iter()
            .max()
            .map_or(SPOOL_OPERATION, |slowest| *slowest * 2)
            .min(MAX_SPOOL_OPERATION)
    }

    /// Time to keep for indexing `documents` and, when `spooling`, for
    /// writing them to the spool if Elasticsearch does not take them.
    pub fn reserve(&self, documents: usize, spooling: bool) -> Duration {
        let spool = if spooling {
            self.spool_reserve(documents)
        } else {
            Duration::ZERO
        };
        self.index_reserve(documents) + spool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: usize, elapsed: Duration) -> IndexReport {
        IndexReport {
            requests,
            elapsed,
            ..IndexReport::default()
        }
    }

    #[test]
    fn reserves_grow_with_the_work_and_follow_what_was_seen() {
        let timing = IndexTiming::default();
        let small = timing.index_reserve(10);
        let large = timing.index_reserve(5_000);
        assert!(small >= MIN_ROUND_TRIP + INDEX_SLACK, "{small:?}");
        assert!(large >= small + MIN_PER_DOCUMENT * 4_990, "{large:?}");
        assert!(timing.spool_reserve(5_000) > timing.spool_reserve(10));

        // A slow cluster: 5,000 documents took 6 s in 2 requests.
        timing.record(&report(2, Duration::from_secs(6)), 5_000);
        assert!(
            timing.index_reserve(5_000) >= Duration::from_secs(12),
            "{:?}",
            timing.index_reserve(5_000)
        );
        // A fast one never lowers the reserve below the floor.
        timing.record(&report(1, Duration::from_millis(3)), 100);
        assert!(timing.index_reserve(0) >= MIN_ROUND_TRIP + INDEX_SLACK);
    }

    #[test]
    fn one_slow_tiny_batch_does_not_make_documents_expensive() {
        let timing = IndexTiming::default();
        // One document, 1.5 s: a slow round trip, not a slow document.
        timing.record(&report(1, Duration::from_millis(1500)), 1);
        let reserve = timing.index_reserve(200);
        assert!(reserve >= Duration::from_secs(3), "{reserve:?}");
        assert!(reserve < Duration::from_secs(4), "{reserve:?}");
        // The median forgets one outlier among ordinary answers.
        for _ in 0..4 {
            timing.record(&report(1, Duration::from_millis(40)), 1);
        }
        assert!(timing.index_reserve(200) < Duration::from_millis(1100));
    }

    #[test]
    fn the_estimate_is_bounded_by_the_largest_bulk_at_a_conservative_rate() {
        let timing = IndexTiming::default();
        // A pathological answer: a minute for a large batch.
        for _ in 0..5 {
            timing.record(&report(1, Duration::from_secs(60)), 1_000);
        }
        let reserve = timing.index_reserve(200);
        assert!(
            reserve <= INDEX_SLACK + MAX_ROUND_TRIP + MAX_PER_DOCUMENT * 200,
            "{reserve:?}"
        );
    }

    #[test]
    fn spool_operations_are_learned_and_bounded() {
        let timing = IndexTiming::default();
        assert_eq!(timing.spool_operation(), SPOOL_OPERATION);
        timing.record_spool_operation(Duration::from_millis(100));
        assert_eq!(timing.spool_operation(), Duration::from_millis(200));
        timing.record_spool_operation(Duration::from_secs(30));
        assert_eq!(timing.spool_operation(), MAX_SPOOL_OPERATION);
    }
}
