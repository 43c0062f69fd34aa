//! Pending copies: how an archive write that failed still lands.
//!
//! A measurement not archived when it was taken is gone from the history
//! (Docker Hub only shows today's count). So a run whose archive write
//! still fails after its retries keeps the documents as a pending copy,
//! `archive-pending/<archive key>` (same gzip NDJSON) in the pending store:
//! the spool's bucket in Lambda (`SPOOL_BUCKET`, else the archive's), the
//! archive's own store locally. Every later run drains pending copies,
//! oldest first, into the archive through [`super::write::write_once`]
//! (so a false failure, where the object landed after all, writes nothing
//! twice) and deletes each once it landed.

use super::write::{Written, content_key, write_once, write_retrying};
use super::{ArchiveError, ArchiveStore, PENDING_PREFIX, PUT_TIMEOUT, decode, encode};
use crate::counts::RunCounts;
use crate::document::{Document, RunTime};
use crate::retry::Deadline;
use time::OffsetDateTime;

/// The most documents a container holds in memory for the archive when
/// neither the archive nor the pending store took them (~10 MB).
pub const MAX_HELD_DOCUMENTS: usize = 50_000;

/// Runs' documents that neither the archive nor the pending store took
/// (S3 down for both), held by the container: its next run tries them
/// again. Not durable (a container ends), so they still count as
/// `archive_failed`; but a warm container, as every few minutes of
/// schedule keeps, closes the gap once S3 is back.
#[derive(Debug, Default)]
pub struct Held(std::sync::Mutex<Vec<Vec<Document>>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Document>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `documents` when there is room; whether it did.
    fn hold(&self, documents: &[Document]) -> bool {
        let mut held = self.lock();
        let count: usize = held.iter().map(Vec::len).sum();
        let room = count + documents.len() <= MAX_HELD_DOCUMENTS;
        if room {
            held.push(documents.to_vec());
        }
        room
    }

    fn take(&self) -> Vec<Vec<Document>> {
        std::mem::take(&mut *self.lock())
    }

    /// Documents held now.
    pub fn documents(&self) -> usize {
        self.lock().iter().map(Vec::len).sum()
    }
}

/// The pending copy of the archive object `key`.
pub fn pending_key(key: &str) -> String {
    format!("{PENDING_PREFIX}{key}")
}

/// What archiving a run did, its own documents and the drain.
#[derive(Debug, Default)]
pub struct RunArchive {
    /// This run's documents: `Ok` written or found there, else the error.
    pub own: Option<Result<Written, ArchiveError>>,
    /// Documents kept as a pending copy, and its key.
    pub pending: Option<Result<String, ArchiveError>>,
    /// The drain of earlier runs' pending copies.
    pub drained: Drained,
    /// This run's documents.
    pub documents: usize,
    /// Whether this run's documents, taken by neither store, are held in
    /// memory for the next run.
    pub held: bool,
    /// Documents held from earlier runs that reached the archive or a
    /// pending copy now.
    pub unheld: usize,
}

/// What draining pending copies did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Pending copies that landed and were deleted.
    pub objects: usize,
    /// Their documents written to the archive now.
    pub documents: usize,
    /// Their documents that were already archived (a false failure).
    pub already: usize,
    /// Pending copies left for a later run; `None` when not listed.
    pub waiting: Option<usize>,
    /// Why the drain stopped early.
    pub error: Option<ArchiveError>,
}

/// Archives a run's `documents` (retried within the deadline; on failure
/// kept in `pending`), then drains earlier pending copies.
pub async fn archive_run(
    archive: &dyn ArchiveStore,
    pending: &dyn ArchiveStore,
    held: &Held,
    documents: &[Document],
    time: &RunTime,
    deadline: Deadline,
) -> RunArchive {
    let mut outcome = RunArchive {
        documents: documents.len(),
        ..RunArchive::default()
    };
    if !documents.is_empty() {
        // The retries leave time to keep the pending copy.
        let own = write_retrying(archive, documents, deadline.less(PUT_TIMEOUT)).await;
        if let Err(error) = &own {
            tracing::warn!(%error, documents = documents.len(), "could not archive this run's documents; keeping a pending copy for a later run");
            let kept = keep(pending, documents, time, deadline).await;
            if kept.is_err() {
                outcome.held = held.hold(documents);
            }
            outcome.pending = Some(kept);
        }
        outcome.own = Some(own);
    }
    // Nothing drains into an archive that just failed.
    if !matches!(outcome.own, Some(Err(_))) {
        outcome.unheld = unhold(archive, pending, held, deadline).await;
        outcome.drained = drain(archive, pending, deadline).await;
    }
    outcome
}

/// Writes what earlier runs of this container held: into the archive, or
/// else as a pending copy; what neither takes is held again. The documents
/// written to the archive.
async fn unhold(
    archive: &dyn ArchiveStore,
    pending: &dyn ArchiveStore,
    held: &Held,
    deadline: Deadline,
) -> usize {
    let mut unheld = 0;
    for documents in held.take() {
        let Some(first) = documents.first() else {
            continue;
        };
        let time = first.timestamp;
        match write_once(archive, &documents, OffsetDateTime::now_utc(), deadline).await {
            Ok(written) => unheld += written.written,
            Err(error) => match keep(pending, &documents, &time, deadline).await {
                Ok(key) => {
                    tracing::info!(%error, pending = %key, "held archive documents kept as a pending copy")
                }
                Err(_) if held.hold(&documents) => {}
                Err(_) => tracing::error!(
                    documents = documents.len(),
                    "held archive documents dropped: no room"
                ),
            },
        }
    }
    unheld
}

/// Writes the pending copy of `documents` (all stamped `time`); its key.
pub async fn keep(
    pending: &dyn ArchiveStore,
    documents: &[Document],
    time: &RunTime,
    deadline: Deadline,
) -> Result<String, ArchiveError> {
    let key = pending_key(&content_key(time, documents));
    let location = format!("{}{key}", pending.location());
    let body = encode(documents).map_err(|e| ArchiveError {
        operation: "encoding",
        location: location.clone(),
        message: e.to_string(),
    })?;
    let limit = deadline.timeout(PUT_TIMEOUT);
    match tokio::time::timeout(limit, pending.put(&key, body)).await {
        Ok(Ok(())) => Ok(key),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ArchiveError {
            operation: "writing",
            location,
            message: format!("no answer within {} ms", limit.as_millis()),
        }),
    }
}

/// Writes pending copies into the archive, oldest first, each once, and
/// deletes each that landed; stops at the first failure (the archive is
/// failing: a later run goes on) or when the deadline leaves no room.
pub async fn drain(
    archive: &dyn ArchiveStore,
    pending: &dyn ArchiveStore,
    deadline: Deadline,
) -> Drained {
    let mut drained = Drained::default();
    let limit = deadline.timeout(PUT_TIMEOUT);
    let keys = match tokio::time::timeout(limit, pending.list(PENDING_PREFIX, None)).await {
        Ok(Ok(keys)) => keys,
        Ok(Err(error)) => {
            drained.error = Some(error);
            return drained;
        }
        Err(_) => {
            drained.error = Some(ArchiveError {
                operation: "listing",
                location: format!("{}{PENDING_PREFIX}", pending.location()),
                message: format!("no answer within {} ms", limit.as_millis()),
            });
            return drained;
        }
    };
    let mut left = keys.len();
    for key in &keys {
        // A list, a read or two and a write at most; then the delete.
        if deadline.remaining() < PUT_TIMEOUT * 2 {
            break;
        }
        match drain_one(archive, pending, key, deadline).await {
            Ok(written) => {
                drained.objects += 1;
                drained.documents += written.written;
                drained.already += written.already;
                left -= 1;
                tracing::info!(pending = %key, written = written.written, already = written.already, "pending archive copy landed");
            }
            Err(error) => {
                drained.error = Some(error);
                break;
            }
        }
    }
    drained.waiting = Some(left);
    drained
}

/// One pending copy into the archive, then deleted.
async fn drain_one(
    archive: &dyn ArchiveStore,
    pending: &dyn ArchiveStore,
    key: &str,
    deadline: Deadline,
) -> Result<Written, ArchiveError> {
    let location = || format!("{}{key}", pending.location());
    let limit = deadline.timeout(PUT_TIMEOUT);
    let body = tokio::time::timeout(limit, pending.get(key))
        .await
        .map_err(|_| ArchiveError {
            operation: "reading",
            location: location(),
            message: format!("no answer within {} ms", limit.as_millis()),
        })??;
    let decoded = decode(&body).map_err(|message| ArchiveError {
        operation: "reading",
        location: location(),
        message,
    })?;
    for (line, reason) in &decoded.unreadable {
        tracing::warn!(pending = %key, line, %reason, "a pending archive line is not a document; left out");
    }
    let written = write_once(
        archive,
        &decoded.documents,
        OffsetDateTime::now_utc(),
        deadline,
    )
    .await?;
    let limit = deadline.timeout(PUT_TIMEOUT);
    tokio::time::timeout(limit, pending.delete(key))
        .await
        .map_err(|_| ArchiveError {
            operation: "deleting",
            location: location(),
            message: format!("no answer within {} ms", limit.as_millis()),
        })??;
    Ok(written)
}

/// Counts and logs what archiving did. A run's documents neither archived
/// nor kept pending are `archive_failed` (the `ArchiveFailed` metric and
/// its alarm) and logged as an error; none of it fails the run.
pub fn account(outcome: &RunArchive, counts: &mut RunCounts) {
    match &outcome.own {
        None => {}
        Some(Ok(written)) => {
            counts.archived = written.written;
            counts.already_archived = written.already;
            tracing::debug!(
                written = written.written,
                already = written.already,
                keys = ?written.keys,
                "archived"
            );
        }
        Some(Err(error)) => match &outcome.pending {
            Some(Ok(key)) => {
                counts.archive_pending = outcome.documents;
                tracing::warn!(
                    documents = outcome.documents,
                    %error,
                    pending = %key,
                    "this run's documents wait as a pending archive copy; a later run writes them"
                );
            }
            Some(Err(pending_error)) => {
                counts.archive_failed = outcome.documents;
                let held = if outcome.held {
                    "; held in memory for this container's next run"
                } else {
                    ""
                };
                tracing::error!(
                    documents = outcome.documents,
                    %error,
                    %pending_error,
                    "could not archive this run's documents, nor keep a pending copy; Elasticsearch and the spool still have them, but the archive misses this run{held}"
                );
            }
            None => counts.archive_failed = outcome.documents,
        },
    }
    let drained = &outcome.drained;
    counts.archive_drained = drained.documents + outcome.unheld;
    counts.archive_pending_backlog = drained.waiting;
    if let Some(error) = &drained.error {
        tracing::warn!(%error, drained = drained.objects, "pending archive copies wait for a later run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_holds_at_most_its_share_of_documents() {
        let document = crate::document::sample("library", "httpd", 1);
        let held = Held::default();
        assert!(held.hold(&vec![document.clone(); MAX_HELD_DOCUMENTS - 1]));
        assert!(!held.hold(&[document.clone(), document.clone()]), "over");
        assert!(held.hold(std::slice::from_ref(&document)), "exactly full");
        assert_eq!(held.documents(), MAX_HELD_DOCUMENTS);
        assert_eq!(held.take().len(), 2);
        assert_eq!(held.documents(), 0);
    }

    #[test]
    fn a_pending_copy_is_named_after_its_archive_key() {
        assert_eq!(
            pending_key(
                "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz"
            ),
            "archive-pending/archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz"
        );
    }
}
