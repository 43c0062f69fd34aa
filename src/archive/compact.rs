//! Compaction: one day's raw objects become one Parquet file,
//! `parquet/date=YYYY-MM-DD/<16 hex>.parquet`, each measurement once.
//!
//! The name is a hash of the raw keys the file covers, so compacting the
//! same objects again finds its own file and does nothing, and a day that
//! received an object since (a late run, an import) gets a new name and is
//! compacted again. The new file is written with `If-None-Match: *` and the
//! day's older files are deleted only after it landed: a reader always
//! finds a whole file, never none. Raw objects stay: they remain the source
//! of truth.
//!
//! A late write marks its day due with an empty `parquet-due/YYYY-MM-DD`
//! ([`mark_due`]); the daily compaction takes yesterday and every marked
//! day, and removes a day's mark once the day is compacted.

use super::parquet::{self, ParquetError, Writer};
use super::reader::{self, Item, Options, ReadError, Reader, Unreadable};
use super::{ArchiveError, ArchiveStore};
use crate::retry::Deadline;
use serde::Serialize;
use std::path::{Path, PathBuf};
use time::Date;

/// Days whose raw objects changed after their compaction.
pub const DUE_PREFIX: &str = "parquet-due/";

/// A day that could not be compacted; names the day.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("compacting {day}: {error}")]
    Read { day: Date, error: ReadError },
    #[error("compacting {day}: {error}")]
    Store { day: Date, error: ArchiveError },
    #[error("compacting {day}: {error}")]
    Parquet { day: Date, error: ParquetError },
    #[error("compacting {day}: scratch file {path}: {error}")]
    Scratch {
        day: Date,
        path: String,
        error: std::io::Error,
    },
}

/// What compaction did with one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new Parquet file landed.
    Written,
    /// The day's file already covers every raw object: nothing to do.
    UpToDate,
    /// No raw object that day.
    Empty,
    /// A measurement Parquet cannot hold exactly: the day stays raw only.
    StaysRaw,
}

/// One day's compaction.
#[derive(Debug, Clone, Serialize)]
pub struct DayReport {
    pub date: String,
    pub outcome: Outcome,
    /// The day's Parquet file (new or existing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Raw objects the file covers.
    pub objects: usize,
    pub rows: usize,
    /// Second copies of a measurement, left out.
    pub duplicates: usize,
    /// Older Parquet files of the day, deleted after the new one landed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `parquet-due/YYYY-MM-DD`: marks `day` for the next daily compaction.
pub fn due_key(day: Date) -> String {
    format!("{DUE_PREFIX}{day}")
}

/// Marks `day` due: call after writing a raw object into a day that may
/// already be compacted (any day before today, UTC).
pub async fn mark_due(store: &dyn ArchiveStore, day: Date) -> Result<(), ArchiveError> {
    store.put(&due_key(day), Vec::new()).await
}

/// The days the daily compaction takes: `yesterday` and the two days
/// before it (an invocation missed is caught up; a day already compacted
/// costs two listings), and every marked day, in order, each once.
pub async fn due_days(
    store: &dyn ArchiveStore,
    yesterday: Date,
) -> Result<Vec<Date>, ArchiveError> {
    let mut days = vec![yesterday];
    let mut day = yesterday;
    for _ in 0..2 {
        if let Some(before) = day.previous_day() {
            days.push(before);
            day = before;
        }
    }
    for key in store.list_all(DUE_PREFIX).await? {
        let text = key.trim_start_matches(DUE_PREFIX);
        match reader::parse_day(text) {
            Some(day) => days.push(day),
            None => {
                tracing::warn!(key = %key, "not a compaction mark (parquet-due/YYYY-MM-DD); ignored")
            }
        }
    }
    days.sort();
    days.dedup();
    Ok(days)
}

/// `parquet/date=YYYY-MM-DD/<16 hex>.parquet`: the hex digits are the
/// 64-bit FNV-1a hash of the covered keys (sorted, one a line), stable
/// across versions and machines.
pub fn parquet_key(day: Date, covered: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for key in covered {
        for byte in key.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{}{hash:016x}.parquet", reader::parquet_partition(day))
}

/// Compacts `day` (see the module documentation), with the Parquet file
/// built in `scratch` (a directory: Lambda's /tmp) so it is never whole in
/// memory; removes the day's mark when done.
pub async fn compact_day(
    store: &dyn ArchiveStore,
    day: Date,
    scratch: &Path,
    deadline: Option<Deadline>,
) -> Result<DayReport, CompactError> {
    let on_store = |error| CompactError::Store { day, error };
    let raw_keys = store
        .list(&reader::raw_partition(day), None)
        .await
        .map_err(on_store)?;
    let existing: Vec<String> = store
        .list_all(&reader::parquet_partition(day))
        .await
        .map_err(on_store)?
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    let mut report = DayReport {
        date: day.to_string(),
        outcome: Outcome::Empty,
        key: None,
        objects: raw_keys.len(),
        rows: 0,
        duplicates: 0,
        deleted: Vec::new(),
        unreadable: Vec::new(),
        reason: None,
    };
    if raw_keys.is_empty() {
        store.delete(&due_key(day)).await.map_err(on_store)?;
        return Ok(report);
    }
    let key = parquet_key(day, &raw_keys);
    report.key = Some(key.clone());
    if existing.contains(&key) {
        report.outcome = Outcome::UpToDate;
    } else {
        let path = scratch.join(format!(
            ".docker-pulls-compact-{day}-{}-{:x}.parquet",
            std::process::id(),
            fastrand::u64(..)
        ));
        let built = build(store, day, &raw_keys, &path, deadline, &mut report).await;
        let landed = match built {
            Ok(true) => store
                .put_file_if_absent(&key, &path)
                .await
                .map_err(on_store),
            Ok(false) => Ok(false),
            Err(error) => Err(error),
        };
        let _ = std::fs::remove_file(&path);
        landed?;
        if report.outcome == Outcome::StaysRaw {
            store.delete(&due_key(day)).await.map_err(on_store)?;
            return Ok(report);
        }
        report.outcome = Outcome::Written;
    }
    // Only now that the day's file is there: the older ones go.
    for old in existing.into_iter().filter(|k| *k != key) {
        store.delete(&old).await.map_err(on_store)?;
        report.deleted.push(old);
    }
    store.delete(&due_key(day)).await.map_err(on_store)?;
    tracing::info!(
        date = %report.date,
        outcome = ?report.outcome,
        rows = report.rows,
        objects = report.objects,
        duplicates = report.duplicates,
        "compacted"
    );
    Ok(report)
}

/// Writes the Parquet file of `keys` to `path`; false when the day must
/// stay raw (the report says why).
async fn build(
    store: &dyn ArchiveStore,
    day: Date,
    keys: &[String],
    path: &PathBuf,
    deadline: Option<Deadline>,
    report: &mut DayReport,
) -> Result<bool, CompactError> {
    let scratch = |error| CompactError::Scratch {
        day,
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::create(path).map_err(scratch)?;
    let sink = std::io::BufWriter::new(file);
    let covered = keys.to_vec();
    let mut writer =
        Writer::new(sink, &covered).map_err(|error| CompactError::Parquet { day, error })?;
    // Every document of the covered objects, whatever its time: one that is
    // not of this day keeps the day raw rather than vanish from the file.
    let mut options = Options::new(
        time::PrimitiveDateTime::MIN.assume_utc(),
        time::PrimitiveDateTime::MAX.assume_utc(),
    );
    options.parquet = false;
    options.keys = Some(covered);
    options.deadline = deadline;
    let mut reader = Reader::new(store, options);
    loop {
        match reader.next().await {
            Ok(Some(Item::Document(document))) if document.timestamp.date() != day => {
                report.outcome = Outcome::StaysRaw;
                report.reason = Some(format!(
                    "{} is not of {day}, yet its object is in the day's partition",
                    document.id()
                ));
                tracing::warn!(date = %day, id = %document.id(), "a document outside its partition's day: the day stays raw");
                return Ok(false);
            }
            Ok(Some(Item::Document(document))) => match writer.push(&document) {
                Ok(()) => {}
                Err(ParquetError::NotRepresentable { id, why }) => {
                    report.outcome = Outcome::StaysRaw;
                    report.reason = Some(format!("{id}: {why}"));
                    tracing::warn!(date = %day, %id, why, "a day that Parquet cannot hold exactly stays raw");
                    return Ok(false);
                }
                Err(error) => return Err(CompactError::Parquet { day, error }),
            },
            Ok(Some(Item::Unreadable(unreadable))) => report.unreadable.push(unreadable),
            Ok(None) => break,
            Err(error) => return Err(CompactError::Read { day, error }),
        }
    }
    report.rows = writer.rows();
    report.duplicates = reader.counts().duplicates;
    let sink = writer
        .finish()
        .map_err(|error| CompactError::Parquet { day, error })?;
    let file = sink.into_inner().map_err(|e| scratch(e.into_error()))?;
    file.sync_all().map_err(scratch)?;
    Ok(true)
}

/// A compaction of several days: a report each.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactSummary {
    pub days: Vec<DayReport>,
    /// Days that failed, with why (they are tried again next time: their
    /// mark stays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Compacts every day of `days` in order; one that fails does not stop
/// the others.
pub async fn compact(
    store: &dyn ArchiveStore,
    days: &[Date],
    scratch: &Path,
    deadline: Option<Deadline>,
) -> CompactSummary {
    let mut summary = CompactSummary::default();
    for &day in days {
        if deadline.is_some_and(|d| d.remaining().is_zero()) {
            summary
                .failed
                .push(format!("{day}: the invocation's deadline came first"));
            continue;
        }
        match compact_day(store, day, scratch, deadline).await {
            Ok(report) => summary.days.push(report),
            Err(error) => {
                tracing::error!(%error, "a day could not be compacted; it stays raw and is tried again");
                summary.failed.push(error.to_string());
                // Tried again by the next daily compaction, even when it
                // was yesterday's.
                if let Err(error) = mark_due(store, day).await {
                    tracing::error!(%error, date = %day, "could not mark the day for the next compaction");
                }
            }
        }
    }
    summary
}

/// Reads a Parquet file of the archive whole (tests, tools).
pub async fn read_parquet(
    store: &dyn ArchiveStore,
    key: &str,
) -> Result<Vec<crate::document::Document>, String> {
    let body = store.get(key).await.map_err(|e| e.to_string())?;
    let file = parquet::File::open(body).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for group in 0..file.row_groups() {
        rows.extend(file.row_group(group).map_err(|e| e.to_string())?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::DirArchive;
    use crate::document::{Document, RepositoryStats, RunTime};

    #[test]
    fn the_file_name_depends_only_on_the_covered_keys() {
        let day = Date::from_calendar_date(2026, time::Month::January, 5).expect("date");
        let keys = vec!["archive/a".to_owned(), "archive/b".into()];
        let key = parquet_key(day, &keys);
        assert!(key.starts_with("parquet/date=2026-01-05/"), "{key}");
        assert_eq!(key.len(), "parquet/date=2026-01-05/".len() + 16 + 8);
        assert_eq!(key, parquet_key(day, &keys));
        assert_ne!(key, parquet_key(day, &keys[..1]));
    }

    fn document(at: &str, name: &str, pulls: u64) -> Document {
        Document {
            timestamp: RunTime::parse(at).expect("time"),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 1,
                collaborator_count: None,
            },
        }
    }

    #[tokio::test]
    async fn a_day_is_compacted_once_again_after_a_late_object_and_a_fine_time_stays_raw() {
        let dir =
            std::env::temp_dir().join(format!("docker-pulls-compact-{:x}", fastrand::u64(..)));
        let store = DirArchive::new(&dir);
        let day = Date::from_calendar_date(2026, time::Month::January, 5).expect("date");
        let put = |docs: Vec<Document>, key: &'static str| {
            let store = store.clone();
            async move {
                let body = crate::archive::encode(&docs).expect("encode");
                store.put(key, body).await.expect("put");
            }
        };
        put(
            vec![
                document("2026-01-05T10:00:00Z", "b", 2),
                document("2026-01-05T10:00:00Z", "a", 1),
            ],
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0000000000000001.ndjson.gz",
        )
        .await;
        // A duplicate of `a` with another count: the first key's copy wins.
        put(
            vec![document("2026-01-05T10:00:00Z", "a", 99)],
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0000000000000002.ndjson.gz",
        )
        .await;
        let first = compact_day(&store, day, &dir, None)
            .await
            .expect("compacts");
        assert_eq!(first.outcome, Outcome::Written);
        assert_eq!((first.rows, first.duplicates, first.objects), (2, 1, 2));
        let key = first.key.clone().expect("key");
        let rows = read_parquet(&store, &key).await.expect("rows");
        assert_eq!(
            rows,
            [
                document("2026-01-05T10:00:00Z", "a", 1),
                document("2026-01-05T10:00:00Z", "b", 2)
            ]
        );
        let again = compact_day(&store, day, &dir, None)
            .await
            .expect("compacts");
        assert_eq!(
            (again.outcome, again.key.as_ref()),
            (Outcome::UpToDate, Some(&key))
        );

        put(
            vec![document("2026-01-05T11:00:00Z", "a", 5)],
            "archive/year=2026/month=01/day=05/20260105T110000.000Z-0000000000000003.ndjson.gz",
        )
        .await;
        mark_due(&store, day).await.expect("mark");
        let later = Date::from_calendar_date(2026, time::Month::January, 9).expect("date");
        let recent = |d: Date| {
            let b = d.previous_day().expect("day");
            vec![b.previous_day().expect("day"), b, d]
        };
        let mut due = recent(later);
        due.insert(0, day);
        assert_eq!(due_days(&store, later).await.expect("due"), due);
        let summary = compact(&store, &[day], &dir, None).await;
        let third = &summary.days[0];
        assert_eq!((third.outcome.clone(), third.rows), (Outcome::Written, 3));
        assert_eq!(third.deleted, [key]);
        assert_eq!(
            store
                .list_all(&reader::parquet_partition(day))
                .await
                .expect("list"),
            [third.key.clone().expect("key")]
        );
        assert_eq!(
            due_days(&store, later).await.expect("due"),
            recent(later),
            "the mark is gone"
        );

        put(
            vec![document("2026-01-06T10:00:00.000000001Z", "a", 1)],
            "archive/year=2026/month=01/day=06/20260106T100000.000Z-0000000000000004.ndjson.gz",
        )
        .await;
        let next = day.next_day().expect("day");
        let fine = compact_day(&store, next, &dir, None)
            .await
            .expect("compacts");
        assert_eq!(fine.outcome, Outcome::StaysRaw);
        assert!(
            fine.reason
                .as_deref()
                .is_some_and(|r| r.contains("finer than a microsecond"))
        );
        assert!(
            store
                .list_all(&reader::parquet_partition(next))
                .await
                .expect("list")
                .is_empty()
        );
        // A document of another day in the day's partition keeps it raw.
        let third = next.next_day().expect("day");
        put(
            vec![document("2026-01-08T10:00:00Z", "a", 1)],
            "archive/year=2026/month=01/day=07/20260107T100000.000Z-0000000000000005.ndjson.gz",
        )
        .await;
        let outside = compact_day(&store, third, &dir, None)
            .await
            .expect("compacts");
        assert_eq!(outside.outcome, Outcome::StaysRaw);
        assert!(
            outside
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("is not of 2026-01-07")),
            "{outside:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
