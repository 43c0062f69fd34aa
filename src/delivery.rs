//! What happens to a run's documents after they are fetched: index them,
//! keep in the spool whatever Elasticsearch did not account for, then send
//! the spool's backlog, oldest first, within the time that is left.
//!
//! The order is the spool's promise: write, then index, then delete on a full
//! account of an object; never delete on hope. Within that:
//!
//! - what can still be delivered is written before what was refused for good;
//! - only a whole-request failure (Elasticsearch, or the way to it, in
//!   trouble) or the deadline ends a drain: an object whose documents their
//!   index refuses (a write block, a missing privilege) is kept and skipped,
//!   and newer objects still go;
//! - an object is read a slice at a time, so its size does not matter, and a
//!   damaged line is set aside alone;
//! - every spool call is bounded by the time left, so a slow S3 cannot carry
//!   a run past its deadline.

use crate::counts::RunCounts;
use crate::error::Error;
use crate::es::bulk::{BulkSink, IndexReport};
use crate::ndjson::{BulkEntry, Decoder, Unreadable};
use crate::retry::Deadline;
use crate::spool::{self, SpoolError, SpoolReader, SpoolStore};
use crate::timing::IndexTiming;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A spooled object is read and indexed this many bytes at a time (about
/// 8,000 documents): memory stays small whatever the object's size.
pub const SLICE_BYTES: u64 = 2 * 1024 * 1024;
/// Copying the unread rest of an object into a remainder, at a pessimistic
/// rate (bytes a second).
const COPY_RATE: f64 = 5_000_000.0;
/// A spool call gives up this long before the deadline, so the run still
/// logs and answers in time.
const SPOOL_MARGIN: Duration = Duration::from_millis(250);

/// What the counters do not say about a delivery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Why this run's documents went to the spool, when they did.
    pub elasticsearch_error: Option<String>,
    /// Elasticsearch said the named ingest pipeline does not exist.
    pub pipeline_missing: bool,
}

/// Indexes, spools and drains for one run.
pub struct Deliverer<'a> {
    pub sink: &'a BulkSink,
    pub spool: Option<&'a dyn SpoolStore>,
    pub timing: &'a IndexTiming,
    /// Bytes of a spooled object read and indexed at a time
    /// ([`SLICE_BYTES`]).
    pub slice_bytes: u64,
}

/// Indices that refused documents this run, with the first reason: logged
/// once at the end of the run.
type Refusals = BTreeMap<String, String>;

/// What became of one spooled object.
#[derive(Debug, Default)]
struct Drained {
    /// Documents read from it.
    documents: usize,
    /// It no longer waits under its key (delivered, moved, or gone).
    removed: bool,
    /// New objects written for what is left of it.
    added: usize,
    /// Elasticsearch (or the way to it) failed, or the time ran out: stop.
    interrupted: bool,
}

impl Deliverer<'_> {
    /// Delivers this run's `entries` (all stamped with the run's time), then
    /// drains the backlog unless Elasticsearch failed as a whole. Fails only
    /// when documents could be lost: not accounted for, and no spool could
    /// keep them.
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
        let mut refusals = report.refusals.clone();

        let Some(spool) = self.spool else {
            log_refusals(&refusals);
            return match unaccounted_error(report, &entries) {
                Some(error) => Err(error),
                None => Ok(delivery),
            };
        };

        let IndexReport {
            rejected,
            unaccounted,
            halted,
            interrupted,
            ..
        } = report;
        let own_key = spool::object_key(key_time);
        // What can still be delivered first: if the spool fails after it,
        // the documents refused for good are the only ones at stake.
        let mut not_kept: Vec<(usize, String, String)> = Vec::new();
        if !unaccounted.is_empty() {
            let reason = halted
                .as_ref()
                .map_or_else(|| unaccounted[0].1.clone(), ToString::to_string);
            let body = spool::encode_object(unaccounted.iter().map(|(i, _)| &entries[*i]));
            match self
                .bounded(
                    spool,
                    deadline,
                    true,
                    "writing",
                    &own_key,
                    spool.put(&own_key, body),
                )
                .await
            {
                Ok(()) => {
                    counts.spooled = unaccounted.len();
                    tracing::error!(
                        documents = unaccounted.len(),
                        spool = %format_args!("{}{own_key}", spool.location()),
                        reason = %reason,
                        "Elasticsearch did not take these documents; they are kept in the spool and sent by a later run"
                    );
                    delivery.elasticsearch_error = Some(reason);
                }
                Err(error) => not_kept.push((unaccounted.len(), reason, error.to_string())),
            }
        }
        if !rejected.is_empty() {
            let refused: Vec<(&BulkEntry, &str)> = rejected
                .iter()
                .map(|(i, reason)| (&entries[*i], reason.as_str()))
                .collect();
            match self
                .bounded(
                    spool,
                    deadline,
                    true,
                    "writing",
                    &own_key,
                    set_aside(spool, &own_key, &refused),
                )
                .await
            {
                Ok(()) => counts.rejected += rejected.len(),
                Err(error) => {
                    not_kept.push((rejected.len(), rejected[0].1.clone(), error.to_string()))
                }
            }
        }
        if let Some((_, cause, reason)) = not_kept.first() {
            return Err(Error::SpoolWrite {
                count: not_kept.iter().map(|(count, _, _)| count).sum(),
                cause: cause.clone(),
                reason: reason.clone(),
            });
        }

        if interrupted {
            counts.spool_backlog = self.backlog(spool, deadline).await;
        } else {
            // Not this run's own object, if it just wrote one: its documents
            // were refused by their index a moment ago.
            let own = (counts.spooled > 0).then_some(own_key.as_str());
            self.drain(spool, deadline, own, counts, &mut delivery, &mut refusals)
                .await;
        }
        log_refusals(&refusals);
        // Kept, and still a failed invocation: no retry mends this target.
        if let Some(error) = halted.filter(Error::fails_invocation_after_spooling) {
            return Err(error);
        }
        Ok(delivery)
    }

    /// A spool call, bounded by the time left (`deadline`): a silent S3
    /// ends in an error before the invocation's deadline. `learn`: the
    /// call's time teaches the spool-operation estimate.
    async fn bounded<T>(
        &self,
        spool: &dyn SpoolStore,
        deadline: Deadline,
        learn: bool,
        operation: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, SpoolError>>,
    ) -> Result<T, SpoolError> {
        let started = Instant::now();
        match tokio::time::timeout(deadline.less(SPOOL_MARGIN).remaining(), call).await {
            Ok(result) => {
                if learn {
                    self.timing.record_spool_operation(started.elapsed());
                }
                result
            }
            Err(_) => Err(SpoolError {
                operation,
                location: format!("{}{key}", spool.location()),
                message: "no answer before the invocation's deadline".into(),
            }),
        }
    }

    /// The spool's listing, within the deadline.
    async fn list(
        &self,
        spool: &dyn SpoolStore,
        deadline: Deadline,
    ) -> Result<Vec<String>, SpoolError> {
        self.bounded(
            spool,
            deadline,
            true,
            "listing",
            spool::PREFIX,
            spool.list(),
        )
        .await
    }

    /// Objects waiting, or `None` when the spool cannot be listed in time.
    async fn backlog(&self, spool: &dyn SpoolStore, deadline: Deadline) -> Option<usize> {
        match self.list(spool, deadline).await {
            Ok(keys) => Some(keys.len()),
            Err(error) => {
                tracing::error!(%error, "could not list the spool to count its backlog");
                None
            }
        }
    }

    /// Documents in a slice, about (a spooled document is ~250 bytes).
    fn slice_documents(&self) -> usize {
        usize::try_from(self.slice_bytes / 250)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Time to keep before starting on an object of `documents`: its get,
    /// its `_bulk`, a remainder's write and its delete.
    fn object_reserve(&self, documents: usize) -> Duration {
        self.timing.spool_operation() * 2 + self.timing.reserve(documents, true)
    }

    /// Sends spooled objects oldest first while time allows. Objects their
    /// index refuses are kept and skipped; a whole-request failure, a spool
    /// failure or the deadline stop the drain, leaving the rest for the next
    /// run.
    async fn drain(
        &self,
        spool: &dyn SpoolStore,
        deadline: Deadline,
        own: Option<&str>,
        counts: &mut RunCounts,
        delivery: &mut Delivery,
        refusals: &mut Refusals,
    ) {
        let keys = match self.list(spool, deadline).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::error!(%error, "could not list the spool; not draining it this run");
                counts.spool_backlog = None;
                return;
            }
        };
        let mut backlog = keys.len();
        // The size of the objects seen so far guides how much time to keep.
        let mut expected_documents = 1;
        for key in keys.iter().filter(|key| Some(key.as_str()) != own) {
            if !deadline.allows(self.object_reserve(expected_documents), Duration::ZERO) {
                tracing::info!(backlog, "not enough time left to drain more of the spool");
                break;
            }
            match self
                .drain_object(spool, key, deadline, counts, delivery, refusals)
                .await
            {
                Ok(drained) => {
                    // A large object is indexed a slice at a time: what
                    // the next object needs first is one slice.
                    expected_documents =
                        expected_documents.max(drained.documents.min(self.slice_documents()));
                    backlog = backlog + drained.added - usize::from(drained.removed);
                    if drained.interrupted {
                        tracing::info!(
                            backlog,
                            key = %key,
                            "stopped draining the spool: Elasticsearch did not take everything, or the time ran out"
                        );
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, key = %key, "stopped draining the spool");
                    // Part of an object may have been rewritten: count
                    // again rather than guess.
                    counts.spool_backlog = self.backlog(spool, deadline).await;
                    return;
                }
            }
        }
        counts.spool_backlog = Some(backlog);
    }

    /// Indexes one object a slice at a time and deletes it once every
    /// document in it is accounted for: created, already there, set aside
    /// (refused for good, or unreadable), or written into a new object that
    /// keeps the original time. An object nothing could be done with (its
    /// index refuses it, or Elasticsearch failed before any progress) is
    /// left as it is.
    async fn drain_object(
        &self,
        spool: &dyn SpoolStore,
        key: &str,
        deadline: Deadline,
        counts: &mut RunCounts,
        delivery: &mut Delivery,
        refusals: &mut Refusals,
    ) -> Result<Drained, SpoolError> {
        let Some(mut reader) = self
            .bounded(spool, deadline, true, "reading", key, spool.open(key))
            .await?
        else {
            // Another run drained it meanwhile.
            return Ok(Drained {
                removed: true,
                ..Drained::default()
            });
        };
        let mut decoder = Some(Decoder::default());
        let mut drained = Drained::default();
        let mut unreadable: Vec<Unreadable> = Vec::new();
        let mut rejected: Vec<(BulkEntry, String)> = Vec::new();
        // Refused or not sent: what goes back into the spool.
        let mut kept: Vec<BulkEntry> = Vec::new();
        let mut delivered = 0;
        let mut rest_unread = false;
        let mut skipped = false;
        loop {
            let slice = self
                .bounded(
                    spool,
                    deadline,
                    false,
                    "reading",
                    key,
                    read_slice(&mut reader, &mut decoder, &mut unreadable, self.slice_bytes),
                )
                .await?;
            drained.documents += slice.len();
            if !slice.is_empty() {
                let after = self.timing.spool_reserve(slice.len())
                    + self.timing.spool_operation()
                    + copy_time(&reader);
                let report = self.sink.index(&slice, deadline.less(after)).await;
                self.timing.record(&report, slice.len());
                counts.bulk_requests += report.requests;
                delivery.pipeline_missing |= report.pipeline_missing;
                counts.drained += report.created;
                counts.drained_already_indexed += report.already_indexed;
                delivered += report.created + report.already_indexed;
                for (index, reason) in &report.refusals {
                    refusals
                        .entry(index.clone())
                        .or_insert_with(|| reason.clone());
                }
                drained.interrupted = report.interrupted;
                rejected.extend(
                    report
                        .rejected
                        .iter()
                        .map(|(i, reason)| (slice[*i].clone(), reason.clone())),
                );
                kept.extend(report.unaccounted.iter().map(|(i, _)| slice[*i].clone()));
                if delivered == 0 && rejected.is_empty() && !drained.interrupted {
                    // Every document so far refused by its index: keep the
                    // object as it is and go on with newer ones.
                    skipped = true;
                    break;
                }
                if delivered > 0 && encoded_size(&kept) >= self.slice_bytes {
                    // Refused documents pile up: keep them, in their own
                    // object, before reading further.
                    self.write_remainder(spool, key, deadline, &kept).await?;
                    drained.added += 1;
                    kept.clear();
                }
            }
            if decoder.is_none() {
                break;
            }
            let next = self.timing.reserve(slice.len().max(1), true)
                + self.timing.spool_operation()
                + copy_time(&reader);
            if drained.interrupted || !deadline.allows(next, Duration::ZERO) {
                drained.interrupted = true;
                rest_unread = true;
                break;
            }
        }
        if skipped || (drained.interrupted && delivered == 0 && rejected.is_empty()) {
            // Nothing done that needs recording: the object stays whole.
            return Ok(drained);
        }
        if rest_unread {
            drained.added += self.copy_rest(spool, key, deadline, &mut reader).await?;
        }
        if !kept.is_empty() {
            self.write_remainder(spool, key, deadline, &kept).await?;
            drained.added += 1;
            tracing::warn!(
                key = %key,
                documents = kept.len(),
                "Elasticsearch did not take all of a spooled object; the rest stays in the spool"
            );
        }
        if !rejected.is_empty() {
            let refused: Vec<(&BulkEntry, &str)> = rejected
                .iter()
                .map(|(entry, reason)| (entry, reason.as_str()))
                .collect();
            self.bounded(
                spool,
                deadline,
                true,
                "writing",
                key,
                set_aside(spool, key, &refused),
            )
            .await?;
            counts.rejected += rejected.len();
        }
        if !unreadable.is_empty() {
            let aside = spool::unreadable_key(key);
            let body = spool::encode_unreadable(key, &unreadable);
            self.bounded(
                spool,
                deadline,
                true,
                "writing",
                &aside,
                spool.put(&aside, body),
            )
            .await?;
            tracing::error!(
                key = %key,
                lines = %unreadable.iter().map(|u| u.line.to_string()).collect::<Vec<_>>().join(","),
                first = %unreadable[0].reason,
                moved_to = %format_args!("{}{aside}", spool.location()),
                "unreadable lines of a spool object set aside; the rest of it was delivered"
            );
        }
        self.bounded(spool, deadline, true, "deleting", key, spool.delete(key))
            .await?;
        drained.removed = true;
        Ok(drained)
    }

    /// Writes `entries` as a new object that sorts with `key`.
    async fn write_remainder(
        &self,
        spool: &dyn SpoolStore,
        key: &str,
        deadline: Deadline,
        entries: &[BulkEntry],
    ) -> Result<(), SpoolError> {
        let rest = spool::remainder_key(key);
        let body = spool::encode_object(entries);
        self.bounded(
            spool,
            deadline,
            true,
            "writing",
            &rest,
            spool.put(&rest, body),
        )
        .await
    }

    /// Copies the lines of `reader` not read yet into new objects that sort
    /// with `key`, a slice each; how many were written.
    async fn copy_rest(
        &self,
        spool: &dyn SpoolStore,
        key: &str,
        deadline: Deadline,
        reader: &mut SpoolReader,
    ) -> Result<usize, SpoolError> {
        let mut written = 0;
        loop {
            let chunk = self
                .bounded(
                    spool,
                    deadline,
                    false,
                    "reading",
                    key,
                    read_raw(reader, self.slice_bytes),
                )
                .await?;
            if chunk.is_empty() {
                return Ok(written);
            }
            let rest = spool::remainder_key(key);
            self.bounded(
                spool,
                deadline,
                true,
                "writing",
                &rest,
                spool.put(&rest, chunk),
            )
            .await?;
            written += 1;
        }
    }
}

/// Reads lines until a slice's worth of documents or the end (then the
/// decoder is taken, and what it still held is unreadable).
async fn read_slice(
    reader: &mut SpoolReader,
    decoder: &mut Option<Decoder>,
    unreadable: &mut Vec<Unreadable>,
    slice_bytes: u64,
) -> Result<Vec<BulkEntry>, SpoolError> {
    let mut slice = Vec::new();
    let Some(state) = decoder.as_mut() else {
        return Ok(slice);
    };
    let start = reader.bytes_read();
    while reader.bytes_read() - start < slice_bytes {
        let Some(line) = reader.next_line().await? else {
            unreadable.extend(decoder.take().and_then(Decoder::finish));
            return Ok(slice);
        };
        for decoded in state.push(line.number, &line.bytes) {
            match decoded {
                Ok(entry) => slice.push(entry),
                Err(bad) => unreadable.push(bad),
            }
        }
    }
    Ok(slice)
}

/// Up to a slice of raw lines, each ending in `\n`.
async fn read_raw(reader: &mut SpoolReader, slice_bytes: u64) -> Result<Vec<u8>, SpoolError> {
    let mut chunk = Vec::new();
    while (chunk.len() as u64) < slice_bytes {
        let Some(line) = reader.next_line().await? else {
            break;
        };
        chunk.extend_from_slice(&line.bytes);
        chunk.push(b'\n');
    }
    Ok(chunk)
}

/// Time to copy what is left of an object of known size.
fn copy_time(reader: &SpoolReader) -> Duration {
    let left = reader
        .size
        .map_or(0, |size| size.saturating_sub(reader.bytes_read()));
    Duration::from_secs_f64(left as f64 / COPY_RATE)
}

fn encoded_size(entries: &[BulkEntry]) -> u64 {
    entries
        .iter()
        .map(|e| (e.index.len() + e.id.len() + e.source.len() + 40) as u64)
        .sum()
}

/// Writes refused documents under `spool/rejected/` with their reasons.
async fn set_aside(
    spool: &dyn SpoolStore,
    time_of: &str,
    rejected: &[(&BulkEntry, &str)],
) -> Result<(), SpoolError> {
    let key = spool::rejected_key(time_of);
    let body = spool::encode_rejected(rejected.iter().copied());
    spool.put(&key, body).await?;
    tracing::error!(
        documents = rejected.len(),
        first = %format_args!("{}: {}", rejected[0].0.id, rejected[0].1),
        kept_in = %format_args!("{}{key}", spool.location()),
        "Elasticsearch refused documents for good; set aside, not retried"
    );
    Ok(())
}

/// Once per run: which indices refused documents, and why.
fn log_refusals(refusals: &Refusals) {
    for (index, reason) in refusals {
        tracing::error!(
            index = %index,
            reason = %reason,
            "Elasticsearch refuses documents for this index; they are kept in the spool, and documents for other indices are still sent"
        );
    }
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
