//! Writing measurements to the archive, each once.
//!
//! Lambda delivers a scheduled event at least once and retries one that
//! failed; a run whose archive write timed out may have written it after
//! all. So an object is named by what it holds (the run time, then an
//! FNV-1a hash of its documents' sorted `_id`s), every write is conditional
//! (`If-None-Match: *`: an existing key is success), and before writing a
//! run reads the few objects already archived under its own run time and
//! writes only documents none of them holds. A second delivery of an event
//! then writes nothing, and a partly overlapping one only what is new.
//!
//! An object written for a day that is already over (a late run, a drained
//! pending copy, an import) also leaves the empty marker
//! `parquet-due/YYYY-MM-DD`, so compaction knows to do that day again. It
//! is written before the object and again after it; compaction deletes a
//! day's marker first and lists the day after, so no late object can slip
//! between a compaction's listing and its deleting the marker.

use super::{ArchiveError, ArchiveStore, PUT_TIMEOUT, SUFFIX, decode, encode, partition};
use crate::document::{Document, RunTime};
use crate::retry::Deadline;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// Markers of days to compact again live under this prefix.
pub const DUE_PREFIX: &str = "parquet-due/";
/// An object written this long after its day ended marks the day due
/// again: the daily compaction runs after it.
pub const LATE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Attempts of one write within a run (each bounded by [`PUT_TIMEOUT`]).
pub const ATTEMPTS: u32 = 3;

/// FNV-1a, 64 bits: small, stable everywhere, and plenty to tell apart the
/// few objects of one run time. Not a defence against anyone.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// `archive/year=…/month=…/day=…/<compact time>-`: every object of one run
/// time starts so.
pub fn run_prefix(time: &RunTime) -> String {
    format!("{}{}-", partition(time), time.compact())
}

/// The key of an object holding `documents` (stamped `time`): the run
/// prefix, then 16 lowercase hex digits of FNV-1a-64 over the documents'
/// `_id`s, sorted, joined by `\n`. The same documents, the same key.
pub fn content_key<'a>(
    time: &RunTime,
    documents: impl IntoIterator<Item = &'a Document>,
) -> String {
    let mut ids: Vec<String> = documents.into_iter().map(Document::id).collect();
    ids.sort_unstable();
    ids.dedup();
    format!(
        "{}{:016x}{SUFFIX}",
        run_prefix(time),
        fnv1a64(ids.join("\n").as_bytes())
    )
}

/// The UTC day of `time`.
fn day_of(time: &RunTime) -> Date {
    OffsetDateTime::from_unix_timestamp(time.unix_seconds()).map_or(Date::MIN, OffsetDateTime::date)
}

/// `parquet-due/YYYY-MM-DD` when an object of `time`'s day written at
/// `now` is late: its day is before the UTC date of `now` − [`LATE_AFTER`].
pub fn due_marker(time: &RunTime, now: OffsetDateTime) -> Option<String> {
    let day = day_of(time);
    let today = (now - LATE_AFTER).to_offset(time::UtcOffset::UTC).date();
    (day < today).then(|| format!("{DUE_PREFIX}{day}"))
}

/// What archiving one set of documents did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Documents written now.
    pub written: usize,
    /// Documents found already archived under their run time.
    pub already: usize,
    /// The objects written (none when everything was there).
    pub keys: Vec<String>,
}

/// `future`, bounded by [`PUT_TIMEOUT`] and the deadline.
async fn bounded<T>(
    deadline: Deadline,
    operation: &'static str,
    location: impl FnOnce() -> String,
    future: impl Future<Output = Result<T, ArchiveError>>,
) -> Result<T, ArchiveError> {
    let limit = deadline.timeout(PUT_TIMEOUT);
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_) => Err(ArchiveError {
            operation,
            location: location(),
            message: format!("no answer within {} ms", limit.as_millis()),
        }),
    }
}

/// Archives `documents`, each once, in one attempt: per run time, lists the
/// objects already there, reads them, and writes one object of the
/// documents none of them holds (after the day's `parquet-due/` marker
/// when the day is over). Any failed step fails the attempt; repeating it
/// is always safe.
pub async fn write_once(
    store: &dyn ArchiveStore,
    documents: &[Document],
    now: OffsetDateTime,
    deadline: Deadline,
) -> Result<Written, ArchiveError> {
    let mut by_time: BTreeMap<String, (RunTime, Vec<&Document>)> = BTreeMap::new();
    for document in documents {
        by_time
            .entry(document.timestamp.compact())
            .or_insert_with(|| (document.timestamp, Vec::new()))
            .1
            .push(document);
    }
    let mut outcome = Written::default();
    for (time, documents) in by_time.values() {
        let prefix = run_prefix(time);
        let at = |key: &str| format!("{}{key}", store.location());
        let keys = bounded(
            deadline,
            "listing",
            || at(&prefix),
            store.list(&prefix, None),
        )
        .await?;
        let mut archived: HashSet<String> = HashSet::new();
        for key in &keys {
            let body = bounded(deadline, "reading", || at(key), store.get(key)).await?;
            match decode(&body) {
                Ok(decoded) => archived.extend(decoded.documents.iter().map(Document::id)),
                // Its documents count as not archived: written again, which
                // readers, counting each `_id` once, take in their stride.
                Err(reason) => {
                    tracing::warn!(key = %key, %reason, "an archive object cannot be read")
                }
            }
        }
        let mut new: Vec<&Document> = Vec::new();
        for document in documents {
            if archived.insert(document.id()) {
                new.push(document);
            }
        }
        outcome.already += documents.len() - new.len();
        if new.is_empty() {
            continue;
        }
        let key = content_key(time, new.iter().copied());
        let body = encode(new.iter().copied()).map_err(|e| ArchiveError {
            operation: "encoding",
            location: at(&key),
            message: e.to_string(),
        })?;
        // The marker before the object (a crash between them costs one
        // needless compaction, never a stale Parquet day) and again after
        // it: compaction deletes the marker before it lists the day, so a
        // compaction that listed the day without this object has deleted
        // the first marker, and the second one brings it back.
        let marker = due_marker(time, now);
        if let Some(marker) = &marker {
            bounded(
                deadline,
                "writing",
                || at(marker),
                store.put(marker, Vec::new()),
            )
            .await?;
        }
        bounded(deadline, "writing", || at(&key), store.put(&key, body)).await?;
        if let Some(marker) = &marker {
            bounded(
                deadline,
                "writing",
                || at(marker),
                store.put(marker, Vec::new()),
            )
            .await?;
        }
        outcome.written += new.len();
        outcome.keys.push(key);
    }
    Ok(outcome)
}

/// [`write_once`], tried again with backoff after a failure, up to
/// [`ATTEMPTS`] times and within `deadline`; the last error when none
/// succeeded.
pub async fn write_retrying(
    store: &dyn ArchiveStore,
    documents: &[Document],
    deadline: Deadline,
) -> Result<Written, ArchiveError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match write_once(store, documents, OffsetDateTime::now_utc(), deadline).await {
            Ok(written) => return Ok(written),
            Err(error) => error,
        };
        let wait =
            crate::retry::backoff(attempt, Duration::from_millis(500), Duration::from_secs(4));
        if attempt >= ATTEMPTS || !deadline.allows(wait, PUT_TIMEOUT) {
            return Err(error);
        }
        tracing::warn!(attempt, %error, wait_ms = wait.as_millis() as u64, "archive write failed; trying again");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::RepositoryStats;

    fn time(text: &str) -> RunTime {
        RunTime::parse(text).expect("valid time")
    }

    fn document(at: &str, name: &str) -> Document {
        Document {
            timestamp: time(at),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: name.into(),
                pull_count: 1,
                star_count: 2,
                collaborator_count: Some(0),
            },
        }
    }

    fn instant(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("valid")
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (fnv-1a, 64 bits).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_key_names_the_run_time_and_the_sorted_ids() {
        let at = "2026-12-03T10:35:00Z";
        let (httpd, redis) = (document(at, "httpd"), document(at, "redis"));
        let key = content_key(&time(at), [&redis, &httpd]);
        let ids = "library/httpd@2026-12-03T10:35:00Z\nlibrary/redis@2026-12-03T10:35:00Z";
        assert_eq!(
            key,
            format!(
                "archive/year=2026/month=12/day=03/20261203T103500.000Z-{:016x}.ndjson.gz",
                fnv1a64(ids.as_bytes())
            )
        );
        // Order does not matter; content does; a repeated id counts once.
        assert_eq!(content_key(&time(at), [&httpd, &redis, &httpd]), key);
        assert_ne!(content_key(&time(at), [&httpd]), key);
        let hex = key
            .strip_suffix(SUFFIX)
            .and_then(|k| k.rsplit_once('-'))
            .map(|(_, hex)| hex.to_owned())
            .expect("hex");
        assert_eq!(hex.len(), 16);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert!(key.starts_with(&run_prefix(&time(at))));
    }

    #[test]
    fn only_a_day_over_for_fifteen_minutes_is_marked_due() {
        let at = time("2026-12-06T23:59:59Z");
        assert_eq!(due_marker(&at, instant("2026-12-07T00:14:59Z")), None);
        assert_eq!(due_marker(&at, instant("2026-12-06T23:59:59Z")), None);
        assert_eq!(
            due_marker(&at, instant("2026-12-07T00:15:00Z")).as_deref(),
            Some("parquet-due/2026-12-06")
        );
        assert_eq!(
            due_marker(
                &time("2021-01-15T10:07:40Z"),
                instant("2026-12-07T12:00:00Z")
            )
            .as_deref(),
            Some("parquet-due/2021-01-15")
        );
    }
}
