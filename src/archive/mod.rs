//! The archive: every measurement, for good, outside the cluster.
//!
//! Docker Hub only ever shows today's count, so a point that was not stored
//! when it was measured is gone. Elasticsearch clusters go away (a trial
//! ends, a disk is lost, an index is deleted, a migration), so every run also
//! writes the documents it fetched to cheap, durable storage (S3 in Lambda, a
//! directory locally), whether or not Elasticsearch took them: the archive
//! records measurements, the spool ([`crate::spool`]) records deliveries.
//! Replay ([`crate::replay`]) rebuilds any index from it, and the layout is
//! Hive-style so Athena or DuckDB read it in place with SQL:
//!
//! ```text
//! archive/year=2026/month=12/day=03/20261203T103500.000Z-<16 hex>.ndjson.gz
//! ```
//!
//! One object per run, gzip, one document a line, exactly the indexed
//! document. The partition is the documents' UTC day (every document of a
//! run shares the run's `@timestamp`), and the name starts with that time at
//! fixed width, so keys sort as the measurements do: replay lists the
//! partitions of its range and goes in order. The 16 hex digits name what
//! the object holds (see [`write`]): a retried event writes the same key,
//! and every write is conditional (`If-None-Match: *`), so each measurement
//! is archived once and nothing is ever overwritten. A write that fails is
//! kept as a pending copy and drained by later runs (see [`pending`]).

pub mod pending;
pub mod write;

pub mod compact;
pub mod parquet;
pub mod reader;

use crate::document::{Document, RepositoryStats, RunTime};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::{Date, Month, OffsetDateTime};

/// Every archive object lives under this prefix.
pub const PREFIX: &str = "archive/";
/// Pending copies of archive objects whose write failed (see [`pending`]):
/// `archive-pending/<archive key>`.
pub const PENDING_PREFIX: &str = "archive-pending/";
/// Every archive object's name ends so.
pub const SUFFIX: &str = ".ndjson.gz";
/// The most one archive write may take: it runs beside indexing and must
/// never eat the time the run needs to index or spool.
pub const PUT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes one object may decompress to (a run of 100,000
/// repositories is about 20 MB): a larger one is refused, not read.
const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// An archive operation that failed; names the object and the store.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} {location} failed: {message}")]
pub struct ArchiveError {
    pub operation: &'static str,
    pub location: String,
    pub message: String,
}

/// Where archive objects are kept: S3 or a directory. Keys are relative to
/// the store (`archive/…`).
pub trait ArchiveStore: Send + Sync {
    /// `s3://bucket/` or a directory, for messages.
    fn location(&self) -> String;
    /// Creates a whole object unless `key` exists; afterwards it is
    /// durable. An existing object is success and is left as it is (S3
    /// `If-None-Match: *`; a directory links, never renames over): keys
    /// name their content, so it holds the same documents, and two writers
    /// never overwrite each other.
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), ArchiveError>>;
    /// Reads a whole object; a missing one is an error.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ArchiveError>>;
    /// The keys of the archive objects under `prefix` (a partition such as
    /// `archive/year=2026/month=01/`) that sort at or after `from` when it is
    /// given, in order.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>>;

    /// [`ArchiveStore::get`], saying whether a failure is for good (the
    /// object is gone, or may not be read): readers report such an object
    /// and go on, rather than stopping at it forever.
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ReadFailure>> {
        Box::pin(async move {
            self.get(key).await.map_err(|error| ReadFailure {
                error,
                permanent: false,
            })
        })
    }

    /// Every key under `prefix`, whatever its name (the Parquet files and
    /// compaction markers beside the raw objects), sorted.
    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>>;

    /// Writes the file at `path` to `key` unless `key` exists (S3's
    /// `If-None-Match: *`); whether it was written. Never read into memory.
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<bool, ArchiveError>>;

    /// Deletes `key`; a missing one is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ArchiveError>>;
}

/// A read that failed; `permanent` when asking again cannot help
/// (NoSuchKey, AccessDenied, a KMS key that may not be used).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct ReadFailure {
    pub error: ArchiveError,
    pub permanent: bool,
}

/// `archive/year=YYYY/month=MM/day=DD/`: the partition of documents stamped
/// `time` (UTC).
pub fn partition(time: &RunTime) -> String {
    let compact = time.compact();
    format!(
        "{PREFIX}year={}/month={}/day={}/",
        &compact[0..4],
        &compact[4..6],
        &compact[6..8]
    )
}

/// A unique key for an object holding documents from `time` on (export's
/// batches; a run's own objects take [`write::content_key`]): the write
/// time in milliseconds (11 hex digits) and 20 random bits.
pub fn object_key(time: &RunTime) -> String {
    let written = crate::retry::unix_now_millis() & 0xfff_ffff_ffff;
    format!(
        "{}{}-{written:011x}{:05x}{SUFFIX}",
        partition(time),
        time.compact(),
        fastrand::u32(..0x10_0000)
    )
}

/// The fewest partition prefixes that cover every document with
/// `from <= @timestamp < to`, in key order: a whole year or month where the
/// range covers it, single days at its edges.
pub fn prefixes_between(from: OffsetDateTime, to: OffsetDateTime) -> Vec<String> {
    let mut prefixes = Vec::new();
    if from >= to {
        return prefixes;
    }
    let utc = time::UtcOffset::UTC;
    let first = from.to_offset(utc).date();
    let last = (to.to_offset(utc) - time::Duration::nanoseconds(1)).date();
    let mut day = first;
    while day <= last {
        let (year, month) = (day.year(), day.month());
        let end_of_month = month_end(year, month);
        if month == Month::January && day.day() == 1 && month_end(year, Month::December) <= last {
            prefixes.push(format!("{PREFIX}year={year:04}/"));
            match Date::from_calendar_date(year + 1, Month::January, 1) {
                Ok(next) => day = next,
                Err(_) => break,
            }
        } else if day.day() == 1 && end_of_month <= last {
            prefixes.push(format!("{PREFIX}year={year:04}/month={:02}/", month as u8));
            match end_of_month.next_day() {
                Some(next) => day = next,
                None => break,
            }
        } else {
            prefixes.push(format!(
                "{PREFIX}year={year:04}/month={:02}/day={:02}/",
                month as u8,
                day.day()
            ));
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
    }
    prefixes
}

/// The last day of `month` (the last representable day if out of range).
fn month_end(year: i32, month: Month) -> Date {
    Date::from_calendar_date(year, month, month.length(year)).unwrap_or(Date::MAX)
}

/// One object's body: each document as one line of JSON, gzip-compressed.
pub fn encode<'a>(documents: impl IntoIterator<Item = &'a Document>) -> std::io::Result<Vec<u8>> {
    // The whole text first, then one write: the compressor is several
    // times faster on one buffer than on a write per JSON token.
    let mut text = Vec::new();
    for document in documents {
        serde_json::to_writer(&mut text, document)?;
        text.push(b'\n');
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 6),
        flate2::Compression::default(),
    );
    encoder.write_all(&text)?;
    encoder.finish()
}

/// What an object holds: its documents, and the lines that are not one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub documents: Vec<Document>,
    /// `(line number from 1, why)`: lines that are not exactly a document.
    pub unreadable: Vec<(usize, String)>,
}

/// Reads an object written by [`encode`]. A body that is not gzip, or not
/// UTF-8 NDJSON, is an error; a single line that is not exactly a document
/// is listed in [`Decoded::unreadable`] and the other lines are read.
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("not a gzip object: {e}"))?;
    if text.len() as u64 > MAX_DECODED_BYTES {
        return Err(format!(
            "decompresses to more than {MAX_DECODED_BYTES} bytes"
        ));
    }
    let text = String::from_utf8(text).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut decoded = Decoded::default();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(document) => decoded.documents.push(document),
            Err(reason) => decoded.unreadable.push((number + 1, reason)),
        }
    }
    Ok(decoded)
}

/// One archive line: exactly a document, nothing more, nothing changed.
pub fn parse_line(line: &str) -> Result<Document, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let document = trim(&value)?;
    let canonical = serde_json::to_value(&document).map_err(|e| e.to_string())?;
    if canonical != value {
        return Err(
            "not exactly a docker-pulls document (other fields, or a timestamp not in UTC)".into(),
        );
    }
    Ok(document)
}

/// The five-field document in a stored `_source`, as the seed's ingest
/// pipeline (elasticsearch/pipeline.json) leaves it: `@timestamp` and
/// `http.docker_hub.{namespace,name,pull_count,star_count,collaborator_count}`,
/// every other field dropped, counts that Metricbeat re-encoded as floats
/// (`2.244658322e+09`) turned back into integers. A document that has no
/// such shape, or a count that is not a whole number, is refused with the
/// reason: never guessed at.
pub fn trim(source: &Value) -> Result<Document, String> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "@timestamp")]
        timestamp: Value,
        http: Http,
    }
    #[derive(Deserialize)]
    struct Http {
        docker_hub: RepositoryStats,
    }
    let wire =
        Wire::deserialize(source).map_err(|e| format!("not a docker-pulls document: {e}"))?;
    let Value::String(timestamp) = &wire.timestamp else {
        return Err(format!(
            "@timestamp {} is not an RFC 3339 string",
            wire.timestamp
        ));
    };
    let timestamp = RunTime::parse(timestamp).map_err(|e| e.to_string())?;
    Ok(Document {
        timestamp,
        stats: wire.http.docker_hub,
    })
}

/// The store `--archive` names: `s3://BUCKET` (the AWS SDK's usual
/// configuration), or a directory.
pub async fn open(spec: &str) -> Result<Arc<dyn ArchiveStore>, ArchiveError> {
    match spec.strip_prefix("s3://") {
        Some(bucket) => {
            let bucket = bucket.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                return Err(ArchiveError {
                    operation: "opening",
                    location: spec.to_owned(),
                    message: "expected s3://BUCKET (the archive is under archive/ in it)".into(),
                });
            }
            let aws = crate::tls::aws_sdk_config()
                .await
                .map_err(|e| ArchiveError {
                    operation: "opening",
                    location: spec.to_owned(),
                    message: e.to_string(),
                })?;
            Ok(Arc::new(S3Archive::new(
                crate::spool::s3_client(&aws),
                bucket,
            )))
        }
        None => Ok(Arc::new(DirArchive::new(spec))),
    }
}

/// The archive in an S3 bucket (`ARCHIVE_BUCKET`).
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    /// `client` as [`crate::spool::s3_client`] builds it (path-style with a
    /// custom endpoint).
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// An SDK error in words a person can act on (see [`crate::aws_error`]).
    fn sdk_error<E, R>(
        &self,
        operation: &'static str,
        action: &'static str,
        key: &str,
        error: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> ArchiveError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        ArchiveError {
            operation,
            location: format!("s3://{}/{key}", self.bucket),
            message: crate::aws_error::explain_s3(&self.client, action, &self.bucket, key, error),
        }
    }
}

impl S3Archive {
    /// Writes `key` unless it exists (`If-None-Match: *`): a retried event,
    /// a false failure (the object landed, the answer did not) and another
    /// stack sharing the bucket all find the object there. Whether it was
    /// written; an object already there is not an error.
    async fn create_only(
        &self,
        key: &str,
        body: aws_sdk_s3::primitives::ByteStream,
        content_type: Option<&str>,
    ) -> Result<bool, ArchiveError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .if_none_match("*")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(error) if already_exists(&error) => {
                tracing::debug!(key, "archive object already there");
                Ok(false)
            }
            Err(error) => Err(self.sdk_error("writing", "s3:PutObject", key, &error)),
        }
    }
}

impl ArchiveStore for S3Archive {
    fn location(&self) -> String {
        format!("s3://{}/", self.bucket)
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), ArchiveError>> {
        Box::pin(async move {
            // A gzip file, not a gzip-encoded transfer: no Content-Encoding,
            // so no client unzips it behind the reader's back and `.gz`
            // always holds gzip. Markers (empty) are plain.
            let content_type = if key.ends_with(SUFFIX) {
                "application/gzip"
            } else {
                "application/octet-stream"
            };
            self.create_only(key, body.into(), Some(content_type))
                .await
                .map(|_| ())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ArchiveError>> {
        Box::pin(async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.sdk_error("deleting", "s3:DeleteObject", key, &e))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ArchiveError>> {
        Box::pin(async move { self.read(key).await.map_err(|f| f.error) })
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ReadFailure>> {
        Box::pin(async move {
            let output = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    use aws_sdk_s3::error::ProvideErrorMetadata;
                    let code = e.code().unwrap_or_default();
                    let permanent = code == "NoSuchKey"
                        || code == "AccessDenied"
                        || code.starts_with("KMS")
                        || code == "InvalidObjectState";
                    ReadFailure {
                        error: self.sdk_error("reading", "s3:GetObject", key, &e),
                        permanent,
                    }
                })?;
            let bytes = output.body.collect().await.map_err(|e| ReadFailure {
                error: ArchiveError {
                    operation: "reading",
                    location: format!("s3://{}/{key}", self.bucket),
                    message: e.to_string(),
                },
                permanent: false,
            })?;
            Ok(bytes.to_vec())
        })
    }

    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        Box::pin(async move {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| self.sdk_error("listing", "s3:ListBucket", prefix, &e))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key())
                        .map(str::to_owned),
                );
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<bool, ArchiveError>> {
        Box::pin(async move {
            let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
                .await
                .map_err(|e| ArchiveError {
                    operation: "reading",
                    location: path.display().to_string(),
                    message: e.to_string(),
                })?;
            self.create_only(key, body, None).await
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        Box::pin(async move {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix);
            // S3 starts *after* a key (any key, inside the prefix or not);
            // one character less starts at `from` or just before it (the
            // filter below drops the rest).
            if let Some(from) = from.filter(|from| from.len() > 1) {
                let mut start = from.to_owned();
                start.pop();
                request = request.start_after(start);
            }
            let mut pages = request.into_paginator().send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| self.sdk_error("listing", "s3:ListBucket", prefix, &e))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key())
                        .filter(|key| is_object_key(key) && from.is_none_or(|from| *key >= from))
                        .map(str::to_owned),
                );
            }
            keys.sort();
            Ok(keys)
        })
    }
}

/// Whether a conditional PUT's error says the key exists: 412
/// `PreconditionFailed`, or 409 `ConditionalRequestConflict` (a concurrent
/// write of the same key won). Either way the object is there.
fn already_exists<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(error);
    let status = error.raw_response().map(|r| r.status().as_u16());
    matches!(
        code,
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    ) || status == Some(412)
}

/// Whether `key` names an archive object or a pending copy of one (not a
/// temporary or foreign file).
fn is_object_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    (key.starts_with(PREFIX) || key.starts_with(PENDING_PREFIX))
        && name.ends_with(SUFFIX)
        && !name.starts_with('.')
}

/// The archive in a directory (`--archive DIR`): `DIR/archive/…`, the same
/// layout as in S3, so `aws s3 sync` makes one from the other.
#[derive(Debug, Clone)]
pub struct DirArchive {
    root: PathBuf,
}

impl DirArchive {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn error(&self, operation: &'static str, path: &Path, error: std::io::Error) -> ArchiveError {
        ArchiveError {
            operation,
            location: path.display().to_string(),
            message: error.to_string(),
        }
    }

    /// Writes to a temporary name, then links it to `key`: a crash never
    /// leaves half an object, and like S3's `If-None-Match: *` an existing
    /// object is kept as it is (the link fails; that is success).
    fn write(&self, key: &str, body: &[u8]) -> Result<(), ArchiveError> {
        self.create_only(key, |file| file.write_all(body))
            .map(|_| ())
    }

    /// Creates `key` from what `fill` writes into a temporary file beside
    /// it, unless `key` exists: a hard link fails on an existing name (the
    /// directory's `If-None-Match: *`). Whether it was created.
    fn create_only(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<bool, ArchiveError> {
        let path = self.root.join(key);
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| self.error("creating", parent, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        // Unique per writer: two processes writing one key never share it.
        let temporary = parent.join(format!(
            ".{name}.{}-{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            fill(&mut file)?;
            file.sync_all()
        });
        let linked = written
            .map_err(|e| self.error("writing", &temporary, e))
            .and_then(|()| match std::fs::hard_link(&temporary, &path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(self.error("writing", &path, e)),
            });
        let _ = std::fs::remove_file(&temporary);
        linked
    }

    /// Every object key under `dir` (a directory of the layout), unsorted.
    fn walk(&self, dir: &Path, keys: &mut Vec<String>) -> Result<(), ArchiveError> {
        let mut all = Vec::new();
        self.walk_all(dir, &mut all)?;
        keys.extend(all.into_iter().filter(|key| is_object_key(key)));
        Ok(())
    }

    /// Every file's key under `dir` but temporary ones, unsorted.
    fn walk_all(&self, dir: &Path, keys: &mut Vec<String>) -> Result<(), ArchiveError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.error("listing", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.error("listing", dir, e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| self.error("listing", &path, e))?;
            if kind.is_dir() {
                self.walk_all(&path, keys)?;
            } else if kind.is_file()
                && let Ok(relative) = path.strip_prefix(&self.root)
            {
                let key = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if !key.rsplit('/').next().unwrap_or(&key).starts_with('.') {
                    keys.push(key);
                }
            }
        }
        Ok(())
    }
}

impl ArchiveStore for DirArchive {
    fn location(&self) -> String {
        format!("{}/", self.root.display())
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), ArchiveError>> {
        Box::pin(async move { self.write(key, &body) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ArchiveError>> {
        Box::pin(async move { self.read(key).await.map_err(|f| f.error) })
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ReadFailure>> {
        Box::pin(async move {
            let path = self.root.join(key);
            std::fs::read(&path).map_err(|e| ReadFailure {
                permanent: matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ),
                error: self.error("reading", &path, e),
            })
        })
    }

    fn list_all<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            self.walk_all(&self.root.join(prefix), &mut keys)?;
            keys.retain(|key| key.starts_with(prefix));
            keys.sort();
            Ok(keys)
        })
    }

    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<bool, ArchiveError>> {
        Box::pin(async move {
            let target = self.root.join(key);
            if target.exists() {
                return Ok(false);
            }
            self.create_only(key, |file| {
                std::io::copy(&mut std::fs::File::open(path)?, file).map(|_| ())
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ArchiveError>> {
        Box::pin(async move {
            let path = self.root.join(key);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.error("deleting", &path, e)),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ArchiveError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            self.walk(&self.root.join(prefix), &mut keys)?;
            keys.retain(|key| {
                key.starts_with(prefix) && from.is_none_or(|from| key.as_str() >= from)
            });
            keys.sort();
            Ok(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Deadline;
    use serde_json::json;

    fn time(text: &str) -> RunTime {
        RunTime::parse(text).expect("valid time")
    }

    fn document(at: &str, name: &str, pulls: u64, collaborators: Option<u64>) -> Document {
        Document {
            timestamp: time(at),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 3,
                collaborator_count: collaborators,
            },
        }
    }

    fn instant(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("valid")
    }

    #[test]
    fn keys_are_partitioned_by_utc_day_and_sort_by_time() {
        let key = object_key(&time("2026-12-03T10:35:00Z"));
        let (folder, name) = key.rsplit_once('/').expect("a folder");
        assert_eq!(folder, "archive/year=2026/month=12/day=03");
        let (stamp, unique) = name
            .strip_suffix(SUFFIX)
            .and_then(|n| n.split_once('-'))
            .expect("time-unique");
        assert_eq!(stamp, "20261203T103500.000Z");
        assert_eq!(unique.len(), 16, "{unique}");
        assert!(unique.chars().all(|c| c.is_ascii_hexdigit()), "{unique}");
        // The partition is the UTC day, whatever offset the time came with.
        assert!(
            object_key(&time("2027-01-01T00:30:00+01:00"))
                .starts_with("archive/year=2026/month=12/day=31/20261231T233000.000Z-")
        );
        let keys: Vec<String> = [
            "2026-01-31T23:55:00Z",
            "2026-02-01T00:00:00Z",
            "2026-02-01T00:00:00.500Z",
            "2026-10-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ]
        .iter()
        .map(|t| object_key(&time(t)))
        .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        // A retried run's second object sorts after its first.
        let at = time("2026-02-01T00:00:00Z");
        let first = object_key(&at);
        std::thread::sleep(Duration::from_millis(2));
        assert!(object_key(&at) > first);
    }

    #[test]
    fn prefixes_cover_the_range_with_whole_years_and_months_where_they_can() {
        let p = |from: &str, to: &str| prefixes_between(instant(from), instant(to));
        assert_eq!(
            p("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
            ["archive/year=2026/month=01/"]
        );
        assert_eq!(
            p("2026-01-30T12:00:00Z", "2026-03-02T00:00:01Z"),
            [
                "archive/year=2026/month=01/day=30/",
                "archive/year=2026/month=01/day=31/",
                "archive/year=2026/month=02/",
                "archive/year=2026/month=03/day=01/",
                "archive/year=2026/month=03/day=02/",
            ]
        );
        assert_eq!(
            p("2025-12-31T00:00:00Z", "2028-01-01T00:00:00Z"),
            [
                "archive/year=2025/month=12/day=31/",
                "archive/year=2026/",
                "archive/year=2027/",
            ]
        );
        // February of a leap year, whole.
        assert_eq!(
            p("2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"),
            ["archive/year=2028/month=02/"]
        );
        assert_eq!(
            p("2026-05-05T10:00:00Z", "2026-05-05T10:05:00Z"),
            ["archive/year=2026/month=05/day=05/"]
        );
        assert!(p("2026-05-05T10:00:00Z", "2026-05-05T10:00:00Z").is_empty());
        assert!(p("2026-05-06T00:00:00Z", "2026-05-05T00:00:00Z").is_empty());
        // Every day of a long range is covered exactly once, in key order.
        let prefixes = p("2025-11-17T08:00:00Z", "2027-03-03T00:00:00Z");
        let mut sorted = prefixes.clone();
        sorted.sort();
        assert_eq!(sorted, prefixes);
        let mut day = Date::from_calendar_date(2025, Month::November, 17).expect("date");
        let last = Date::from_calendar_date(2027, Month::March, 2).expect("date");
        while day <= last {
            let key = partition(&time(&format!("{day}T12:00:00Z")));
            let covering = prefixes
                .iter()
                .filter(|p| key.starts_with(p.as_str()))
                .count();
            assert_eq!(covering, 1, "{key}");
            day = day.next_day().expect("next");
        }
        let outside = partition(&time("2027-03-03T00:00:00Z"));
        assert!(!prefixes.iter().any(|p| outside.starts_with(p.as_str())));
    }

    #[test]
    fn encoded_objects_decode_to_the_same_documents_one_line_each() {
        let documents = vec![
            document("2026-12-03T10:35:00Z", "httpd", 2_244_658_322, Some(0)),
            document("2026-12-03T10:35:00Z", "redis", 7, None),
        ];
        let body = encode(&documents).expect("encodes");
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("gunzip");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"library","name":"httpd","pull_count":2_244_658_322u64,"star_count":3,"collaborator_count":0}}}),
                json!({"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"library","name":"redis","pull_count":7,"star_count":3}}}),
            ]
        );
        assert!(text.ends_with('\n'));
        let decoded = decode(&body).expect("decodes");
        assert_eq!(decoded.documents, documents);
        assert!(decoded.unreadable.is_empty());
    }

    #[test]
    fn lines_that_are_not_exactly_a_document_are_listed_and_the_rest_read() {
        let good = r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":1,"star_count":2,"collaborator_count":0}}}"#;
        let text = [
            good,
            "{not json",
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":1,"star_count":2}},"extra":1}"#,
            r#"{"@timestamp":"2026-12-03T11:35:00+01:00","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":1,"star_count":2}}}"#,
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":1.5,"star_count":2}}}"#,
            "",
            good,
        ]
        .join("\n");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).expect("write");
        let decoded = decode(&encoder.finish().expect("finish")).expect("gzip");
        assert_eq!(decoded.documents.len(), 2);
        let lines: Vec<usize> = decoded.unreadable.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{:?}", decoded.unreadable);
        assert!(decode(b"plain text").is_err());
    }

    #[test]
    fn metricbeat_era_sources_are_trimmed_as_the_seed_pipeline_would() {
        let source = json!({
            "@timestamp": "2021-01-15T10:07:40.660Z",
            "agent": {"type": "metricbeat", "version": "7.10.1"},
            "ecs": {"version": "1.6.0"},
            "event": {"dataset": "http.docker_hub", "module": "http"},
            "http": {"docker_hub": {
                "namespace": "library", "name": "httpd",
                "pull_count": 2.244658322e+09, "star_count": 3321, "collaborator_count": 0,
                "description": "The Apache HTTP Server Project", "is_private": false,
                "permissions": {"read": true}
            }}
        });
        let document = trim(&source).expect("trims");
        assert_eq!(
            serde_json::to_value(&document).expect("json"),
            json!({"@timestamp":"2021-01-15T10:07:40.66Z","http":{"docker_hub":{
                "namespace":"library","name":"httpd","pull_count":2_244_658_322u64,
                "star_count":3321,"collaborator_count":0}}})
        );
        for (bad, why) in [
            (
                json!({"@timestamp": 1610705260660u64, "http": {"docker_hub": {"namespace": "a", "name": "b", "pull_count": 1, "star_count": 1}}}),
                "RFC 3339",
            ),
            (
                json!({"@timestamp": "2021-01-15T10:07:40Z", "http": {"docker_hub": {"namespace": "a", "name": "b", "star_count": 1}}}),
                "pull_count",
            ),
            (
                json!({"@timestamp": "2021-01-15T10:07:40Z", "http": {"docker_hub": {"namespace": "a", "name": "b", "pull_count": 1.5, "star_count": 1}}}),
                "not a non-negative integer",
            ),
            (
                json!({"@timestamp": "2021-01-15T10:07:40Z", "system": {"cpu": 1}}),
                "http",
            ),
        ] {
            let error = trim(&bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn a_directory_archive_lists_by_partition_in_key_order() {
        let dir = std::env::temp_dir().join(format!(
            "docker-pulls-archive-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let store = DirArchive::new(&dir);
        assert!(store.list(PREFIX, None).await.expect("empty").is_empty());
        let mut keys = Vec::new();
        for at in [
            "2026-01-31T23:55:00Z",
            "2026-02-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        ] {
            let documents = [document(at, "httpd", 1, Some(0))];
            let written = write::write_once(
                &store,
                &documents,
                OffsetDateTime::now_utc(),
                Deadline::after(Duration::from_secs(5)),
            )
            .await
            .expect("writes");
            let key = written.keys[0].clone();
            let decoded = decode(&store.get(&key).await.expect("reads")).expect("decodes");
            assert_eq!(decoded.documents, documents);
            keys.push(key);
        }
        std::fs::write(dir.join("archive/year=2026/README"), "not an object").expect("write");
        keys.sort();
        assert_eq!(store.list(PREFIX, None).await.expect("list"), keys);
        assert_eq!(
            store
                .list("archive/year=2026/month=01/", None)
                .await
                .expect("list"),
            keys[..2]
        );
        assert_eq!(
            store.list(PREFIX, Some(&keys[1])).await.expect("list"),
            keys[1..]
        );
        assert!(store.get("archive/missing.ndjson.gz").await.is_err());
        let leftovers = store.list("archive/year=2026/month=01/day=31/", None).await;
        assert_eq!(leftovers.expect("list").len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Like S3's `If-None-Match: *`: a key once written keeps its first
    /// body, no temporary file is left, and pending copies list and delete.
    #[tokio::test]
    async fn a_directory_archive_never_overwrites_and_deletes_pending_copies() {
        let dir = std::env::temp_dir().join(format!(
            "docker-pulls-archive-once-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let store = DirArchive::new(&dir);
        let key =
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz";
        store.put(key, b"first".to_vec()).await.expect("created");
        store
            .put(key, b"second".to_vec())
            .await
            .expect("exists: success");
        assert_eq!(store.get(key).await.expect("read"), b"first");
        let folder = dir.join("archive/year=2026/month=01/day=05");
        let names: Vec<String> = std::fs::read_dir(&folder)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "no temporary left: {names:?}");
        let pending = format!("{PENDING_PREFIX}{key}");
        store
            .put(&pending, b"copy".to_vec())
            .await
            .expect("pending");
        assert_eq!(
            store.list(PENDING_PREFIX, None).await.expect("list"),
            std::slice::from_ref(&pending)
        );
        assert_eq!(store.list(PREFIX, None).await.expect("list"), [key]);
        store.delete(&pending).await.expect("deleted");
        store.delete(&pending).await.expect("gone is fine");
        assert!(
            store
                .list(PENDING_PREFIX, None)
                .await
                .expect("list")
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
