//! The one reader of the archive: every measurement of a time range, each
//! once, in `(timestamp, namespace, name)` order.
//!
//! Replay and compaction read through it, so they agree on what the archive
//! holds. It is a k-way merge over the day's sources: each raw object (its
//! documents sorted), and the day's Parquet file when there is one (then
//! only the raw objects it does not cover are read beside it). Objects are
//! opened lazily, by the run time in their key: a key's time is never after
//! the earliest document in its object, so an object whose key time is
//! later than the smallest document waiting cannot hold anything that comes
//! before it, and stays unread. A day of 288 runs thus holds about one
//! object in memory at a time.
//!
//! A measurement found twice (an event delivered twice, both attempts
//! archived; a hand-made object) has the same `_id` twice, and the two sort
//! next to each other: the copy from the source whose key sorts first is
//! kept, the other dropped and counted.

use super::parquet;
use super::{ArchiveError, ArchiveStore};
use crate::document::{Document, RunTime};
use crate::retry::Deadline;
use serde::Serialize;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// Where the daily Parquet files live: `parquet/date=YYYY-MM-DD/…`.
pub const PARQUET_PREFIX: &str = "parquet/";
/// The longest one list or get may take (less near the deadline).
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// A measurement's position in the reader's order: `(timestamp, namespace,
/// name)`. As a replay cursor: `2026-01-05T10:00:00Z/library/httpd`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub timestamp: RunTime,
    pub namespace: String,
    pub name: String,
}

impl SortKey {
    pub fn of(document: &Document) -> Self {
        Self {
            timestamp: document.timestamp,
            namespace: document.stats.namespace.clone(),
            name: document.stats.name.clone(),
        }
    }

    /// `TIME/NAMESPACE/NAME`, as [`Display`](std::fmt::Display) writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.splitn(3, '/');
        let (Some(time), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "cursor {text:?} is not TIME/NAMESPACE/NAME (as a replay returned it)"
            ));
        };
        let timestamp = RunTime::parse(time).map_err(|e| format!("cursor {text:?}: {e}"))?;
        if namespace.is_empty() || name.is_empty() {
            return Err(format!("cursor {text:?} names no repository"));
        }
        Ok(Self {
            timestamp,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    fn cmp_document(&self, document: &Document) -> Ordering {
        self.timestamp
            .cmp(&document.timestamp)
            .then_with(|| self.namespace.as_str().cmp(&document.stats.namespace))
            .then_with(|| self.name.as_str().cmp(&document.stats.name))
    }
}

impl std::fmt::Display for SortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.timestamp, self.namespace, self.name)
    }
}

/// An archive object, one line of it, or a Parquet file that holds no
/// document it can give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub key: String,
    /// The line (from 1); none when the whole object is unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub reason: String,
}

/// What the reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Document(Document),
    /// Reported and passed over: reading it again would not help.
    Unreadable(Unreadable),
}

/// Why reading stopped; perhaps passing (S3 throttled, the network, the
/// deadline): the same read later goes on from the last position.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Store(#[from] ArchiveError),
    #[error("the invocation's deadline came before {operation} {key}")]
    Deadline {
        operation: &'static str,
        key: String,
    },
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// `from <= @timestamp < to`.
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Only measurements that sort after this one (a replay's cursor).
    pub after: Option<SortKey>,
    /// Read a day's Parquet file where there is one (compaction reads raw
    /// objects only).
    pub parquet: bool,
    /// Exactly these raw objects, no listing (compaction pins what it covers).
    pub keys: Option<Vec<String>>,
    /// Every list and get ends by then.
    pub deadline: Option<Deadline>,
}

impl Options {
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        Self {
            from,
            to,
            after: None,
            parquet: true,
            keys: None,
            deadline: None,
        }
    }
}

/// What the reader did, for summaries and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    /// Raw objects read.
    pub objects: usize,
    pub parquet_files: usize,
    /// Second copies of a measurement, dropped.
    pub duplicates: usize,
}

/// A source not opened yet; opened once the merge reaches `open_at`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Closed {
    /// Nanoseconds since the epoch: nothing in the source comes before.
    open_at: i128,
    /// The raw key (or the Parquet file's first covered key): the order
    /// in which duplicates are kept.
    rank: String,
    key: String,
    parquet: Option<ParquetSlot>,
}

/// An opened Parquet file waiting its turn (opened at listing, to learn
/// what it covers).
struct ParquetSlot(Box<parquet::File>);

impl std::fmt::Debug for ParquetSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParquetSlot")
    }
}
impl PartialEq for ParquetSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ParquetSlot {}
impl PartialOrd for ParquetSlot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ParquetSlot {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

/// An open source: what is left of it.
struct Open {
    rank: Arc<str>,
    key: String,
    rows: VecDeque<Document>,
    /// A Parquet file's row groups not read yet.
    parquet: Option<(Box<parquet::File>, usize)>,
}

/// The smallest document of an open source.
struct Head {
    document: Document,
    rank: Arc<str>,
    source: usize,
}

impl Head {
    fn order(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.document, &other.document);
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.stats.namespace.cmp(&b.stats.namespace))
            .then_with(|| a.stats.name.cmp(&b.stats.name))
            .then_with(|| self.rank.cmp(&other.rank))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order(other)
    }
}

/// The reader (see the module documentation).
pub struct Reader<'a> {
    store: &'a dyn ArchiveStore,
    options: Options,
    /// Days not listed yet, in order.
    days: VecDeque<Date>,
    closed: BinaryHeap<Reverse<Closed>>,
    open: Vec<Open>,
    /// Slots of `open` whose source is done, to reuse (a year is 105,000
    /// objects).
    free: Vec<usize>,
    heads: BinaryHeap<Reverse<Head>>,
    reports: VecDeque<Unreadable>,
    last: Option<SortKey>,
    counts: ReadCounts,
}

impl<'a> Reader<'a> {
    pub fn new(store: &'a dyn ArchiveStore, options: Options) -> Self {
        let mut days = VecDeque::new();
        let mut closed = BinaryHeap::new();
        if let Some(keys) = &options.keys {
            for key in keys {
                closed.push(Reverse(raw_source(key, None)));
            }
        } else if options.from < options.to {
            let mut start = options.from.to_offset(time::UtcOffset::UTC).date();
            if let Some(after) = &options.after {
                start = start.max(after.timestamp.date());
            }
            let last = (options.to.to_offset(time::UtcOffset::UTC)
                - time::Duration::nanoseconds(1))
            .date();
            let mut day = start;
            while day <= last {
                days.push_back(day);
                match day.next_day() {
                    Some(next) => day = next,
                    None => break,
                }
            }
        }
        Self {
            store,
            options,
            days,
            closed,
            open: Vec::new(),
            free: Vec::new(),
            heads: BinaryHeap::new(),
            reports: VecDeque::new(),
            last: None,
            counts: ReadCounts::default(),
        }
    }

    pub fn counts(&self) -> ReadCounts {
        self.counts
    }

    /// The next measurement or report; `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<Item>, ReadError> {
        loop {
            if let Some(report) = self.reports.pop_front() {
                return Ok(Some(Item::Unreadable(report)));
            }
            let head = self.heads.peek().map(|h| nanos(&h.0.document.timestamp));
            let closed = self.closed.peek().map(|c| c.0.open_at);
            let bound = match (head, closed) {
                (Some(h), Some(c)) => Some(h.min(c)),
                (h, c) => h.or(c),
            };
            if let Some(&day) = self.days.front()
                && bound.is_none_or(|bound| day_start(day) <= bound)
            {
                self.days.pop_front();
                self.list_day(day).await?;
                continue;
            }
            if let Some(c) = closed
                && head.is_none_or(|h| c <= h)
            {
                if let Some(Reverse(source)) = self.closed.pop() {
                    self.open_source(source).await?;
                }
                continue;
            }
            let Some(Reverse(head)) = self.heads.pop() else {
                return Ok(None);
            };
            self.advance(head.source)?;
            let document = head.document;
            if !self.wanted(&document) {
                continue;
            }
            if self
                .last
                .as_ref()
                .is_some_and(|last| last.cmp_document(&document) == Ordering::Equal)
            {
                self.counts.duplicates += 1;
                tracing::debug!(id = %document.id(), source = %self.open[head.source].key, "a second copy of a measurement; the first is kept");
                continue;
            }
            self.last = Some(SortKey::of(&document));
            return Ok(Some(Item::Document(document)));
        }
    }

    fn wanted(&self, document: &Document) -> bool {
        let at = nanos(&document.timestamp);
        let (from, to) = (
            self.options.from.unix_timestamp_nanos(),
            self.options.to.unix_timestamp_nanos(),
        );
        from <= at
            && at < to
            && self
                .options
                .after
                .as_ref()
                .is_none_or(|after| after.cmp_document(document) == Ordering::Less)
    }

    /// Bounds `call` by [`CALL_LIMIT`] and the deadline.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        key: &str,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T, ReadError> {
        let limit = match self.options.deadline {
            Some(deadline) => deadline.timeout(CALL_LIMIT),
            None => CALL_LIMIT,
        };
        let late = || ReadError::Deadline {
            operation,
            key: key.to_owned(),
        };
        if limit.is_zero() {
            return Err(late());
        }
        tokio::time::timeout(limit, call).await.map_err(|_| {
            if self
                .options
                .deadline
                .is_some_and(|d| d.remaining().is_zero())
            {
                late()
            } else {
                ReadError::Store(ArchiveError {
                    operation,
                    location: format!("{}{key}", self.store.location()),
                    message: format!("no answer within {} s", limit.as_secs()),
                })
            }
        })
    }

    /// Lists one day: its Parquet file (when asked for and present) and the
    /// raw objects it does not cover.
    async fn list_day(&mut self, day: Date) -> Result<(), ReadError> {
        let partition = raw_partition(day);
        let store = self.store;
        let raw = self
            .bounded("listing", &partition, store.list(&partition, None))
            .await??;
        let mut chosen: Option<(String, Box<parquet::File>)> = None;
        if self.options.parquet {
            let prefix = parquet_partition(day);
            let files = self
                .bounded("listing", &prefix, store.list_all(&prefix))
                .await??;
            for key in files.into_iter().filter(|k| k.ends_with(".parquet")) {
                let body = match self.bounded("reading", &key, store.read(&key)).await? {
                    Ok(body) => body,
                    Err(failure) if failure.permanent => {
                        self.report(&key, None, failure.error.to_string());
                        continue;
                    }
                    Err(failure) => return Err(failure.error.into()),
                };
                match parquet::File::open(body) {
                    // Two files only between a compaction's write and its
                    // clean-up: the one that covers more wins.
                    Ok(file) => {
                        let better = chosen
                            .as_ref()
                            .is_none_or(|(_, c)| file.covered().len() > c.covered().len());
                        if better {
                            chosen = Some((key, Box::new(file)));
                        }
                    }
                    Err(error) => self.report(&key, None, error.to_string()),
                }
            }
        }
        if let Some((key, file)) = chosen {
            let covered: std::collections::HashSet<&str> =
                file.covered().iter().map(String::as_str).collect();
            let extra: Vec<Closed> = raw
                .iter()
                .filter(|k| !covered.contains(k.as_str()))
                .map(|k| raw_source(k, Some(day)))
                .collect();
            let rank = file.covered().first().cloned().unwrap_or_default();
            self.closed.extend(extra.into_iter().map(Reverse));
            self.closed.push(Reverse(Closed {
                open_at: day_start(day),
                rank,
                key,
                parquet: Some(ParquetSlot(file)),
            }));
        } else {
            for key in &raw {
                self.closed.push(Reverse(raw_source(key, Some(day))));
            }
        }
        Ok(())
    }

    async fn open_source(&mut self, source: Closed) -> Result<(), ReadError> {
        let rank: Arc<str> = Arc::from(source.rank.as_str());
        if let Some(ParquetSlot(file)) = source.parquet {
            self.counts.parquet_files += 1;
            let index = self.place(Open {
                rank,
                key: source.key,
                rows: VecDeque::new(),
                parquet: Some((file, 0)),
            });
            return self.advance(index);
        }
        let store = self.store;
        let body = match self
            .bounded("reading", &source.key, store.read(&source.key))
            .await?
        {
            Ok(body) => body,
            Err(failure) if failure.permanent => {
                tracing::error!(key = %source.key, error = %failure.error, "an archive object cannot be read; reported and passed over");
                self.report(&source.key, None, failure.error.to_string());
                return Ok(());
            }
            Err(failure) => return Err(failure.error.into()),
        };
        self.counts.objects += 1;
        let decoded = match super::decode(&body) {
            Ok(decoded) => decoded,
            Err(reason) => {
                tracing::error!(key = %source.key, %reason, "unreadable archive object; reported and passed over");
                self.report(&source.key, None, reason);
                return Ok(());
            }
        };
        for (line, reason) in decoded.unreadable {
            tracing::error!(key = %source.key, line, %reason, "unreadable archive line; reported and passed over");
            self.report(&source.key, Some(line), reason);
        }
        let mut rows = decoded.documents;
        rows.sort_by(|a, b| {
            a.timestamp
                .cmp(&b.timestamp)
                .then_with(|| a.stats.namespace.cmp(&b.stats.namespace))
                .then_with(|| a.stats.name.cmp(&b.stats.name))
        });
        if let Some(first) = rows.first()
            && nanos(&first.timestamp) < source.open_at
        {
            // The key promised nothing earlier: the merge may already have
            // passed this time. Said, not hidden.
            tracing::warn!(key = %source.key, first = %first.timestamp, "an archive object holds a document earlier than its key's time");
        }
        let index = self.place(Open {
            rank,
            key: source.key,
            rows: rows.into(),
            parquet: None,
        });
        self.advance(index)
    }

    /// Puts an opened source in a free slot; its index.
    fn place(&mut self, open: Open) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.open[index] = open;
                index
            }
            None => {
                self.open.push(open);
                self.open.len() - 1
            }
        }
    }

    /// Puts source `index`'s next document in the merge (reading its next
    /// row group when its rows ran out); drops its rows once done.
    fn advance(&mut self, index: usize) -> Result<(), ReadError> {
        let open = &mut self.open[index];
        loop {
            if let Some(document) = open.rows.pop_front() {
                self.heads.push(Reverse(Head {
                    document,
                    rank: open.rank.clone(),
                    source: index,
                }));
                return Ok(());
            }
            let Some((file, next)) = &mut open.parquet else {
                // Done: give its memory back (a drained VecDeque keeps its
                // capacity, a whole object's worth) and its slot.
                open.rows = VecDeque::new();
                self.free.push(index);
                return Ok(());
            };
            if *next >= file.row_groups() {
                open.parquet = None;
                open.rows = VecDeque::new();
                self.free.push(index);
                return Ok(());
            }
            match file.row_group(*next) {
                Ok(rows) => {
                    *next += 1;
                    open.rows = rows.into();
                }
                Err(error) => {
                    let key = open.key.clone();
                    open.parquet = None;
                    self.report(&key, None, error.to_string());
                    return Ok(());
                }
            }
        }
    }

    fn report(&mut self, key: &str, line: Option<usize>, reason: String) {
        self.reports.push_back(Unreadable {
            key: key.to_owned(),
            line,
            reason,
        });
    }
}

/// `YYYY-MM-DD`, a valid day.
pub fn parse_day(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// `parquet/date=YYYY-MM-DD/`.
pub fn parquet_partition(day: Date) -> String {
    format!("{PARQUET_PREFIX}date={day}/")
}

/// `archive/year=YYYY/month=MM/day=DD/`.
pub fn raw_partition(day: Date) -> String {
    format!(
        "{}year={:04}/month={:02}/day={:02}/",
        super::PREFIX,
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

fn nanos(time: &RunTime) -> i128 {
    time.unix_nanos()
}

fn day_start(day: Date) -> i128 {
    day.midnight().assume_utc().unix_timestamp_nanos()
}

/// A raw object as a source: opened at its key's time (the start of `day`
/// when the name carries none).
fn raw_source(key: &str, day: Option<Date>) -> Closed {
    let open_at = key_time(key)
        .or_else(|| day.map(day_start))
        .unwrap_or(i128::MIN);
    Closed {
        open_at,
        rank: key.to_owned(),
        key: key.to_owned(),
        parquet: None,
    }
}

/// The run time a raw key starts with (`…/20261203T103500.000Z-…`), to the
/// millisecond it is written with: never after the object's documents.
pub fn key_time(key: &str) -> Option<i128> {
    let name = key.rsplit('/').next()?;
    let stamp = name.get(..20)?;
    let b = stamp.as_bytes();
    if b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(
        i32::try_from(number(0..4)?).ok()?,
        month,
        u8::try_from(number(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms_milli(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
        u16::try_from(number(16..19)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc().unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{DirArchive, compact, encode};
    use crate::document::RepositoryStats;

    fn document(at: &str, namespace: &str, name: &str, pulls: u64) -> Document {
        Document {
            timestamp: RunTime::parse(at).expect("time"),
            stats: RepositoryStats {
                namespace: namespace.into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 1,
                collaborator_count: Some(0),
            },
        }
    }

    fn instant(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("time")
    }

    async fn put(store: &DirArchive, key: &str, documents: &[Document]) {
        store
            .put(key, encode(documents).expect("encode"))
            .await
            .expect("put");
    }

    async fn read_all(reader: &mut Reader<'_>) -> (Vec<Document>, Vec<Unreadable>) {
        let (mut documents, mut unreadable) = (Vec::new(), Vec::new());
        while let Some(item) = reader.next().await.expect("reads") {
            match item {
                Item::Document(d) => documents.push(d),
                Item::Unreadable(u) => unreadable.push(u),
            }
        }
        (documents, unreadable)
    }

    fn tempdir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("docker-pulls-reader-{:x}", fastrand::u64(..)))
    }

    const K1: &str =
        "archive/year=2026/month=01/day=05/20260105T100000.000Z-0000000000000001.ndjson.gz";
    const K2: &str =
        "archive/year=2026/month=01/day=05/20260105T100000.000Z-0000000000000002.ndjson.gz";
    const K3: &str =
        "archive/year=2026/month=01/day=05/20260105T100500.000Z-0000000000000003.ndjson.gz";
    const K4: &str =
        "archive/year=2026/month=01/day=06/20260106T000000.000Z-0000000000000004.ndjson.gz";

    /// Four objects over two days, one a hand-made duplicate of a run with
    /// other counts.
    async fn archive() -> (std::path::PathBuf, DirArchive) {
        let dir = tempdir();
        let store = DirArchive::new(&dir);
        let at = "2026-01-05T10:00:00Z";
        put(
            &store,
            K1,
            &[
                document(at, "library", "redis", 1),
                document(at, "acme", "web", 2),
            ],
        )
        .await;
        put(
            &store,
            K2,
            &[
                document(at, "library", "redis", 100),
                document(at, "library", "httpd", 3),
            ],
        )
        .await;
        put(
            &store,
            K3,
            &[document("2026-01-05T10:05:00Z", "acme", "web", 4)],
        )
        .await;
        put(
            &store,
            K4,
            &[document("2026-01-06T00:00:00Z", "acme", "web", 5)],
        )
        .await;
        (dir, store)
    }

    fn expected() -> Vec<Document> {
        let at = "2026-01-05T10:00:00Z";
        vec![
            document(at, "acme", "web", 2),
            document(at, "library", "httpd", 3),
            document(at, "library", "redis", 1),
            document("2026-01-05T10:05:00Z", "acme", "web", 4),
            document("2026-01-06T00:00:00Z", "acme", "web", 5),
        ]
    }

    #[tokio::test]
    async fn measurements_come_in_order_each_once_the_first_keys_copy_kept() {
        let (dir, store) = archive().await;
        let options = Options::new(
            instant("2026-01-01T00:00:00Z"),
            instant("2026-02-01T00:00:00Z"),
        );
        let mut reader = Reader::new(&store, options.clone());
        let (documents, unreadable) = read_all(&mut reader).await;
        assert_eq!(documents, expected());
        assert!(unreadable.is_empty());
        assert_eq!(
            reader.counts(),
            ReadCounts {
                objects: 4,
                parquet_files: 0,
                duplicates: 1
            }
        );

        // Objects open lazily: the first measurement needs only the two
        // objects of 10:00, not the later ones.
        let mut lazy = Reader::new(&store, options.clone());
        assert!(matches!(lazy.next().await, Ok(Some(Item::Document(_)))));
        assert_eq!(lazy.counts().objects, 2);

        // After a cursor, and within the range only.
        let mut after = options.clone();
        after.after = Some(SortKey::parse("2026-01-05T10:00:00Z/library/httpd").expect("key"));
        after.to = instant("2026-01-06T00:00:00Z");
        let (documents, _) = read_all(&mut Reader::new(&store, after)).await;
        assert_eq!(documents, expected()[2..4]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_compacted_day_is_read_from_parquet_plus_the_objects_it_does_not_cover() {
        let (dir, store) = archive().await;
        let day = Date::from_calendar_date(2026, time::Month::January, 5).expect("day");
        let report = compact::compact_day(&store, day, &dir, None)
            .await
            .expect("compacts");
        assert_eq!(report.rows, 4);
        // A late object for the compacted day, not covered by its file.
        let late =
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0000000000000000.ndjson.gz";
        put(
            &store,
            late,
            &[document("2026-01-05T10:00:00Z", "zz", "late", 9)],
        )
        .await;
        let options = Options::new(
            instant("2026-01-05T00:00:00Z"),
            instant("2026-01-07T00:00:00Z"),
        );
        let mut reader = Reader::new(&store, options.clone());
        let (documents, _) = read_all(&mut reader).await;
        let mut want = expected();
        want.insert(3, document("2026-01-05T10:00:00Z", "zz", "late", 9));
        assert_eq!(documents, want);
        assert_eq!(
            (reader.counts().parquet_files, reader.counts().objects),
            (1, 2),
            "the Parquet file, the late object and the next day's object"
        );
        // The raw objects alone give the same measurements.
        let mut raw = options;
        raw.parquet = false;
        assert_eq!(read_all(&mut Reader::new(&store, raw)).await.0, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_object_gone_after_listing_or_not_gzip_is_reported_and_passed_over() {
        let (dir, store) = archive().await;
        // Stores are create-only: replace the object by deleting it first.
        store.delete(K3).await.expect("delete");
        store.put(K3, b"not gzip".to_vec()).await.expect("put");
        let mut options = Options::new(
            instant("2026-01-05T00:00:00Z"),
            instant("2026-01-07T00:00:00Z"),
        );
        let gone =
            "archive/year=2026/month=01/day=05/20260105T100100.000Z-00000000000000ff.ndjson.gz";
        options.keys = Some(vec![
            K1.into(),
            K2.into(),
            gone.into(),
            K3.into(),
            K4.into(),
        ]);
        let (documents, unreadable) = read_all(&mut Reader::new(&store, options)).await;
        assert_eq!(documents.len(), 4);
        let keys: Vec<&str> = unreadable.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, [gone, K3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_times_and_cursors_parse() {
        assert_eq!(
            key_time(K3),
            Some(instant("2026-01-05T10:05:00Z").unix_timestamp_nanos())
        );
        assert_eq!(key_time("archive/x.ndjson.gz"), None);
        let key = SortKey::parse("2026-01-05T10:00:00.5Z/library/httpd").expect("parses");
        assert_eq!(key.to_string(), "2026-01-05T10:00:00.5Z/library/httpd");
        assert!(SortKey::parse("2026-01-05T10:00:00Z/library").is_err());
        assert!(SortKey::parse("yesterday/a/b").is_err());
    }
}
