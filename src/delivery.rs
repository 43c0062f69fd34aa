//! What happens to a run's documents after they are fetched: index them,
//! keep in the spool whatever Elasticsearch did not account for, then send
//! the spool's backlog, oldest first, within the time that is left.
//!
//! The order is the spool's promise: write, then index, then delete on a full
//! account of an object; never delete on hope.

use crate::counts::RunCounts;
use crate::error::Error;
use crate::es::bulk::{BulkSink, IndexReport};
use crate::ndjson::{BulkEntry, decode_creates};
use crate::retry::Deadline;
use crate::spool::{self, SpoolStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the counters do not say about a delivery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Why this run's documents went to the spool, when they did.
    pub elasticsearch_error: Option<String>,
    /// Elasticsearch said the named ingest pipeline does not exist.
    pub pipeline_missing: bool,
}

/// What indexing has cost in this container, to keep time back for it: the
/// Hub phase stops early enough that what it fetched can still be indexed,
/// and the indexing stops early enough that what it could not index can
/// still be spooled. Starts from defaults that are generous for the first
/// run, then follows what Elasticsearch actually took.
#[derive(Debug)]
pub struct IndexTiming {
    round_trip_ms: AtomicU64,
    per_document_us: AtomicU64,
}

/// Never keep less than this for one `_bulk` round trip.
const MIN_ROUND_TRIP: Duration = Duration::from_millis(500);
/// Never assume a document costs less than this to index.
const MIN_PER_DOCUMENT: Duration = Duration::from_micros(100);
/// Kept for indexing on top of the estimate: one retry's backoff.
const INDEX_SLACK: Duration = Duration::from_millis(500);
/// An S3 write of a run's documents: one request, plus the bytes at a
/// pessimistic 5 MB/s (a document is ~250 bytes of NDJSON).
const SPOOL_WRITE: Duration = Duration::from_secs(2);
const SPOOL_PER_DOCUMENT: Duration = Duration::from_micros(50);

impl Default for IndexTiming {
    fn default() -> Self {
        Self {
            round_trip_ms: AtomicU64::new(MIN_ROUND_TRIP.as_millis() as u64),
            per_document_us: AtomicU64::new(MIN_PER_DOCUMENT.as_micros() as u64),
        }
    }
}

impl IndexTiming {
    /// Learns from a finished indexing (slowest of the defaults and what was
    /// seen, doubled: a busy cluster is slower the next time too).
    pub fn record(&self, report: &IndexReport, documents: usize) {
        if report.requests == 0 || documents == 0 {
            return;
        }
        let per_request = report.elapsed / report.requests as u32;
        let per_document = report.elapsed / documents as u32;
        self.round_trip_ms.store(
            (per_request * 2).max(MIN_ROUND_TRIP).as_millis() as u64,
            Ordering::Relaxed,
        );
        self.per_document_us.store(
            (per_document * 2).max(MIN_PER_DOCUMENT).as_micros() as u64,
            Ordering::Relaxed,
        );
    }

    /// Time to keep for indexing `documents`.
    pub fn index_reserve(&self, documents: usize) -> Duration {
        let round_trip = Duration::from_millis(self.round_trip_ms.load(Ordering::Relaxed));
        let per_document = Duration::from_micros(self.per_document_us.load(Ordering::Relaxed));
        INDEX_SLACK + round_trip + per_document * documents as u32
    }

    /// Time to keep for writing `documents` to the spool.
    pub fn spool_reserve(&self, documents: usize) -> Duration {
        SPOOL_WRITE + SPOOL_PER_DOCUMENT * documents as u32
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

/// Indexes, spools and drains for one run.
pub struct Deliverer<'a> {
    pub sink: &'a BulkSink,
    pub spool: Option<&'a dyn SpoolStore>,
    pub timing: &'a IndexTiming,
}

impl Deliverer<'_> {
    /// Delivers this run's `entries` (all stamped with the run's time), then
    /// drains the backlog when Elasticsearch took them. Fails only when
    /// documents could be lost: not accounted for, and no spool could keep
    /// them.
    pub async fn deliver(
        &self,
        entries: Vec<BulkEntry>,
        key_time: &crate::document::RunTime,
        deadline: Deadline,
        counts: &mut RunCounts,
    ) -> Result<Delivery, Error> {
        let mut delivery = Delivery::default();
        let keep_for_spool = match self.spool {
            Some(_) => self.timing.spool_reserve(entries.len()),
            None => Duration::ZERO,
        };
        let report = self
            .sink
            .index(&entries, deadline.less(keep_for_spool))
            .await;
        self.timing.record(&report, entries.len());
        counts.indexed = report.created;
        counts.already_indexed = report.already_indexed;
        counts.bulk_requests = report.requests;
        delivery.pipeline_missing = report.pipeline_missing;
        // Elasticsearch took every document (created, already there, or
        // refused for good and set aside below): the spool may be drained.
        let taken = report.unaccounted.is_empty() && report.halted.is_none();

        let Some(spool) = self.spool else {
            return match unaccounted_error(report, &entries) {
                Some(error) => Err(error),
                None => Ok(delivery),
            };
        };

        let IndexReport {
            rejected,
            unaccounted,
            halted,
            ..
        } = report;
        let own_key = spool::object_key(key_time);
        if !rejected.is_empty() {
            set_aside(spool, &own_key, &entries, &rejected)
                .await
                .map_err(|error| Error::SpoolWrite {
                    count: rejected.len(),
                    cause: rejected[0].1.clone(),
                    reason: error.to_string(),
                })?;
            counts.rejected += rejected.len();
        }
        let mut written = false;
        if !unaccounted.is_empty() {
            let reason = halted
                .as_ref()
                .map_or_else(|| unaccounted[0].1.clone(), ToString::to_string);
            let body = spool::encode_object(unaccounted.iter().map(|(i, _)| &entries[*i]));
            spool
                .put(&own_key, body)
                .await
                .map_err(|error| Error::SpoolWrite {
                    count: unaccounted.len(),
                    cause: reason.clone(),
                    reason: error.to_string(),
                })?;
            written = true;
            counts.spooled = unaccounted.len();
            tracing::error!(
                documents = unaccounted.len(),
                spool = %format_args!("{}{own_key}", spool.location()),
                reason = %reason,
                "Elasticsearch did not take these documents; they are kept in the spool and sent by a later run"
            );
            delivery.elasticsearch_error = Some(reason);
        }

        if taken {
            self.drain(spool, deadline, counts, &mut delivery).await;
        } else {
            counts.spool_backlog = match spool.list().await {
                Ok(keys) => keys.len(),
                Err(error) => {
                    tracing::error!(%error, "could not list the spool to count its backlog");
                    usize::from(written)
                }
            };
        }
        // Kept, and still a failed invocation: no retry mends this target.
        if let Some(error) = halted.filter(Error::fails_invocation_after_spooling) {
            return Err(error);
        }
        Ok(delivery)
    }

    /// Sends spooled objects oldest first while time allows; stops at the
    /// first sign of trouble (Elasticsearch did not take everything, or the
    /// spool failed), leaving the rest for the next run.
    async fn drain(
        &self,
        spool: &dyn SpoolStore,
        deadline: Deadline,
        counts: &mut RunCounts,
        delivery: &mut Delivery,
    ) {
        let keys = match spool.list().await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::error!(%error, "could not list the spool; not draining it this run");
                return;
            }
        };
        let mut backlog = keys.len();
        // The size of the objects seen so far guides how much time to keep.
        let mut expected_documents = 1;
        for key in &keys {
            let needed = self.timing.reserve(expected_documents, true);
            if !deadline.allows(needed, Duration::ZERO) {
                tracing::info!(backlog, "not enough time left to drain more of the spool");
                break;
            }
            match self
                .drain_object(spool, key, deadline, counts, delivery)
                .await
            {
                Ok(Drained {
                    documents,
                    complete,
                }) => {
                    expected_documents = expected_documents.max(documents);
                    backlog -= 1;
                    if !complete {
                        // What is left went back into a new object.
                        backlog += 1;
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, key = %key, "stopped draining the spool");
                    break;
                }
            }
        }
        counts.spool_backlog = backlog;
    }

    /// Indexes one object and deletes it once every document in it is
    /// accounted for: created, already there, set aside as rejected, or
    /// written into a new object that keeps the original time.
    async fn drain_object(
        &self,
        spool: &dyn SpoolStore,
        key: &str,
        deadline: Deadline,
        counts: &mut RunCounts,
        delivery: &mut Delivery,
    ) -> Result<Drained, spool::SpoolError> {
        let Some(body) = spool.get(key).await? else {
            // Another run drained it meanwhile.
            return Ok(Drained {
                documents: 0,
                complete: true,
            });
        };
        let entries = match decode_creates(&body) {
            Ok(entries) => entries,
            Err(reason) => {
                // Not ours to guess at: move it aside whole, for a person.
                let aside = format!("{}.unreadable", spool::rejected_key(key));
                tracing::error!(key = %key, %reason, moved_to = %aside, "unreadable spool object set aside");
                spool.put(&aside, body).await?;
                spool.delete(key).await?;
                return Ok(Drained {
                    documents: 0,
                    complete: true,
                });
            }
        };
        let report = self
            .sink
            .index(
                &entries,
                deadline.less(self.timing.spool_reserve(entries.len())),
            )
            .await;
        self.timing.record(&report, entries.len());
        counts.bulk_requests += report.requests;
        delivery.pipeline_missing |= report.pipeline_missing;
        counts.drained += report.created + report.already_indexed;
        if !report.rejected.is_empty() {
            set_aside(spool, key, &entries, &report.rejected).await?;
            counts.rejected += report.rejected.len();
        }
        let complete = report.unaccounted.is_empty();
        if !complete {
            let rest = spool::encode_object(report.unaccounted.iter().map(|(i, _)| &entries[*i]));
            spool.put(&spool::remainder_key(key), rest).await?;
            tracing::warn!(
                key = %key,
                documents = report.unaccounted.len(),
                first = %report.unaccounted[0].1,
                "Elasticsearch did not take all of a spooled object; the rest stays in the spool"
            );
        }
        spool.delete(key).await?;
        Ok(Drained {
            documents: entries.len(),
            complete,
        })
    }
}

struct Drained {
    documents: usize,
    complete: bool,
}

/// Writes refused documents under `spool/rejected/` with their reasons.
async fn set_aside(
    spool: &dyn SpoolStore,
    time_of: &str,
    entries: &[BulkEntry],
    rejected: &[(usize, String)],
) -> Result<(), spool::SpoolError> {
    let key = spool::rejected_key(time_of);
    let body = spool::encode_rejected(
        rejected
            .iter()
            .map(|(i, reason)| (&entries[*i], reason.as_str())),
    );
    spool.put(&key, body).await?;
    tracing::error!(
        documents = rejected.len(),
        first = %format_args!("{}: {}", entries[rejected[0].0].id, rejected[0].1),
        kept_in = %format_args!("{}{key}", spool.location()),
        "Elasticsearch refused documents for good; set aside, not retried"
    );
    Ok(())
}

/// Without a spool: what fails the run when Elasticsearch did not take
/// everything (nothing else can keep the documents).
fn unaccounted_error(report: IndexReport, entries: &[BulkEntry]) -> Option<Error> {
    if let Some(halted) = report.halted {
        return Some(halted);
    }
    let failed: Vec<&(usize, String)> = report
        .rejected
        .iter()
        .chain(report.unaccounted.iter())
        .collect();
    let (position, reason) = failed.first()?;
    let entry = &entries[*position];
    tracing::warn!(
        documents = failed.len(),
        first = %format_args!("{}: {reason}", entry.id),
        "documents not indexed"
    );
    Some(Error::NotIndexed {
        index: entry.index.clone(),
        count: failed.len(),
        total: entries.len(),
        first: format!("{}: {reason}", entry.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_grow_with_the_work_and_follow_what_was_seen() {
        let timing = IndexTiming::default();
        let small = timing.index_reserve(10);
        let large = timing.index_reserve(5_000);
        assert!(small >= MIN_ROUND_TRIP + INDEX_SLACK, "{small:?}");
        assert!(large >= small + MIN_PER_DOCUMENT * 4_990, "{large:?}");
        assert!(timing.spool_reserve(5_000) > timing.spool_reserve(10));

        // A slow cluster: 5,000 documents took 6 s in 2 requests.
        let report = IndexReport {
            requests: 2,
            elapsed: Duration::from_secs(6),
            ..IndexReport::default()
        };
        timing.record(&report, 5_000);
        assert!(
            timing.index_reserve(5_000) >= Duration::from_secs(12),
            "{:?}",
            timing.index_reserve(5_000)
        );
        // A fast one never lowers the reserve below the floor.
        let report = IndexReport {
            requests: 1,
            elapsed: Duration::from_millis(3),
            ..IndexReport::default()
        };
        timing.record(&report, 100);
        assert!(timing.index_reserve(0) >= MIN_ROUND_TRIP + INDEX_SLACK);
    }
}
