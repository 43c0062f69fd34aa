//! The spool: where documents wait when Elasticsearch did not take them.
//!
//! Like Metricbeat's disk queue, but durable across invocations: a run writes
//! what Elasticsearch did not account for to `spool/` (S3 in Lambda, a
//! directory locally) and a later run sends it again, deleting an object only
//! once every document in it was created or found already indexed. Objects
//! are bulk-ready NDJSON (`create` action with `_index` and `_id`, then the
//! document with its original `@timestamp`), one object per run, keyed by the
//! documents' time so a listing returns them oldest first. Re-sending is
//! always safe: `create` with a deterministic `_id` answers 409 for anything
//! already there, so a crash between indexing and deleting, overlapping runs
//! or a document spooled twice never make a duplicate.
//!
//! Documents Elasticsearch refuses for good (a mapping conflict) go under
//! `spool/rejected/` with their reason, for a person to look at; they are
//! never retried automatically.

use crate::document::RunTime;
use crate::ndjson::BulkEntry;
use futures_util::future::BoxFuture;
use std::path::{Path, PathBuf};
#[cfg(any(test, feature = "test-util"))]
use std::{
    collections::BTreeMap,
    sync::Mutex,
    sync::atomic::{AtomicBool, Ordering},
};

/// Objects waiting to be indexed live directly under this prefix.
pub const PREFIX: &str = "spool/";
/// Documents refused for good, with their reason.
pub const REJECTED_PREFIX: &str = "spool/rejected/";
const SUFFIX: &str = ".ndjson";

/// A spool operation that failed; names the object and the store.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} {location} failed: {message}")]
pub struct SpoolError {
    pub operation: &'static str,
    pub location: String,
    pub message: String,
}

/// Where spooled objects are kept: S3, a directory, or memory in tests.
/// Keys are relative to the store (`spool/…`).
pub trait SpoolStore: Send + Sync {
    /// `s3://bucket/` or a directory, for messages.
    fn location(&self) -> String;
    /// Writes a whole object; afterwards it is durable.
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>>;
    /// The object, or `None` when it is gone (another run drained it).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>>;
    /// Deletes an object; deleting one that is gone is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>>;
    /// Keys of the objects waiting directly under [`PREFIX`] (not
    /// [`REJECTED_PREFIX`]), oldest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>>;
    /// The object as lines read a few at a time, so an object of any size
    /// costs little memory; `None` when it is gone. The default reads it
    /// whole with [`SpoolStore::get`]; S3 and directories stream it.
    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<SpoolReader>, SpoolError>> {
        Box::pin(async move {
            Ok(self.get(key).await?.map(|body| {
                let size = body.len() as u64;
                SpoolReader::new(key, Some(size), std::io::Cursor::new(body))
            }))
        })
    }
}

/// The longest line a spool object may have: a document is a few hundred
/// bytes; anything longer is damage, set aside without holding it all.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// One line of a spool object.
#[derive(Debug)]
pub struct Line {
    /// 1-based.
    pub number: usize,
    /// Without its `\n`; at most [`MAX_LINE_BYTES`] (then `truncated`).
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// A spool object being read, line by line.
pub struct SpoolReader {
    location: String,
    /// The object's size in bytes, when the store says.
    pub size: Option<u64>,
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>,
    lines: usize,
    bytes: u64,
}

impl SpoolReader {
    pub fn new(
        location: impl Into<String>,
        size: Option<u64>,
        reader: impl tokio::io::AsyncBufRead + Send + 'static,
    ) -> Self {
        Self {
            location: location.into(),
            size,
            reader: Box::pin(reader),
            lines: 0,
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next line, or `None` at the end. A line longer than
    /// [`MAX_LINE_BYTES`] comes back cut there, marked `truncated`; the rest
    /// of it is skipped without being kept.
    pub async fn next_line(&mut self) -> Result<Option<Line>, SpoolError> {
        use tokio::io::AsyncBufReadExt;
        let mut bytes = Vec::new();
        let mut truncated = false;
        let mut seen_any = false;
        loop {
            let chunk = self.reader.fill_buf().await.map_err(|e| SpoolError {
                operation: "reading",
                location: self.location.clone(),
                message: e.to_string(),
            })?;
            if chunk.is_empty() {
                break;
            }
            seen_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            let content = &chunk[..if done { take - 1 } else { take }];
            let room = MAX_LINE_BYTES.saturating_sub(bytes.len());
            if content.len() > room {
                truncated = true;
            }
            bytes.extend_from_slice(&content[..content.len().min(room)]);
            self.reader.as_mut().consume(take);
            self.bytes += take as u64;
            if done {
                break;
            }
        }
        if !seen_any {
            return Ok(None);
        }
        self.lines += 1;
        Ok(Some(Line {
            number: self.lines,
            bytes,
            truncated,
        }))
    }
}

fn unique_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// `spool/<time>-<random>.ndjson` for documents stamped `time`.
pub fn object_key(time: &RunTime) -> String {
    format!("{PREFIX}{}-{}{SUFFIX}", time.compact(), unique_suffix())
}

/// The time part of a key made by [`object_key`] (the whole name otherwise).
fn time_part(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    let name = name.strip_suffix(SUFFIX).unwrap_or(name);
    name.split_once('-').map_or(name, |(time, _)| time)
}

/// A new key that sorts with `original`: for what is left of it after a
/// partial drain, so the oldest documents still go first.
pub fn remainder_key(original: &str) -> String {
    format!(
        "{PREFIX}{}-{}{SUFFIX}",
        time_part(original),
        unique_suffix()
    )
}

/// `spool/rejected/<time>-<random>.ndjson` beside the documents' time.
pub fn rejected_key(time_of: &str) -> String {
    format!(
        "{REJECTED_PREFIX}{}-{}{SUFFIX}",
        time_part(time_of),
        unique_suffix()
    )
}

/// `spool/rejected/<time>-<random>.unreadable.ndjson`: lines of a spool
/// object that could not be read, beside the object's time.
pub fn unreadable_key(time_of: &str) -> String {
    format!(
        "{REJECTED_PREFIX}{}-{}.unreadable{SUFFIX}",
        time_part(time_of),
        unique_suffix()
    )
}

/// One line per unreadable piece of the object `key`:
/// `{"object","line","reason","text"}`, readable with `jq`.
pub fn encode_unreadable(key: &str, lines: &[crate::ndjson::Unreadable]) -> Vec<u8> {
    let mut body = Vec::new();
    for line in lines {
        let record = serde_json::json!({
            "object": key,
            "line": line.line,
            "reason": line.reason,
            "text": line.text,
        });
        body.extend_from_slice(record.to_string().as_bytes());
        body.push(b'\n');
    }
    body
}

/// Bulk-ready NDJSON for `entries`.
pub fn encode_object<'a>(entries: impl IntoIterator<Item = &'a BulkEntry>) -> Vec<u8> {
    let mut body = Vec::new();
    for entry in entries {
        crate::ndjson::encode_create(&mut body, entry);
    }
    body
}

/// One line per refused document: `{"_index","_id","reason","document"}`,
/// readable with `jq`, and turned back into a bulk body with
/// `jq -c '{create:{_index,_id}}, .document'`.
pub fn encode_rejected<'a>(entries: impl IntoIterator<Item = (&'a BulkEntry, &'a str)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (entry, reason) in entries {
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
        body.extend_from_slice(
            format!(
                "{{\"_index\":{},\"_id\":{},\"reason\":{},\"document\":{}}}\n",
                quote(&entry.index),
                quote(&entry.id),
                quote(reason),
                entry.source
            )
            .as_bytes(),
        );
    }
    body
}

/// An S3 client for the spool. With a custom endpoint (`AWS_ENDPOINT_URL_S3`
/// or `AWS_ENDPOINT_URL`: moto, MinIO) addressing is path-style, since
/// `bucket.127.0.0.1` does not resolve.
pub fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    // Bounded attempts: a silent S3 must not hold a run past its deadline
    // (the delivery also bounds every call by the time left).
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(15))
        .operation_timeout(std::time::Duration::from_secs(45))
        .build();
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(custom_endpoint)
        .timeout_config(timeouts)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The spool in an S3 bucket (`SPOOL_BUCKET`).
#[derive(Debug, Clone)]
pub struct S3Spool {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Spool {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// Whether a listing shows `key`.
    async fn exists(&self, key: &str) -> Result<bool, SpoolError> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(key)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.sdk_error("listing", "s3:ListBucket", key, &e))?;
        Ok(listed.contents().iter().any(|o| o.key() == Some(key)))
    }

    /// The object's response, body unread, or `None` when it is gone.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, SpoolError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output)),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            // Without ListBucket on the whole bucket (the role has it on
            // `spool/` only), S3 answers a missing key with 403: gone
            // when a listing no longer shows it (an overlapping run
            // drained it).
            Err(error)
                if aws_sdk_s3::error::ProvideErrorMetadata::code(&error)
                    == Some("AccessDenied")
                    && !self.exists(key).await? =>
            {
                Ok(None)
            }
            Err(error) => Err(self.sdk_error("reading", "s3:GetObject", key, &error)),
        }
    }

    fn location_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// An SDK error in one or two sentences that say what to do (see
    /// [`crate::aws_error`]); the full chain goes to the debug log.
    fn sdk_error<E, R>(
        &self,
        operation: &'static str,
        action: &'static str,
        key: &str,
        error: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> SpoolError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        SpoolError {
            operation,
            location: self.location_of(key),
            message: crate::aws_error::explain_s3(&self.client, action, &self.bucket, key, error),
        }
    }
}

impl SpoolStore for S3Spool {
    fn location(&self) -> String {
        format!("s3://{}/", self.bucket)
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/x-ndjson")
                .body(body.into())
                .send()
                .await
                .map_err(|e| self.sdk_error("writing", "s3:PutObject", key, &e))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>> {
        Box::pin(async move {
            let Some(output) = self.get_object(key).await? else {
                return Ok(None);
            };
            let bytes = output.body.collect().await.map_err(|e| SpoolError {
                operation: "reading",
                location: self.location_of(key),
                message: e.to_string(),
            })?;
            Ok(Some(bytes.to_vec()))
        })
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<SpoolReader>, SpoolError>> {
        Box::pin(async move {
            let Some(output) = self.get_object(key).await? else {
                return Ok(None);
            };
            let size = output.content_length().and_then(|n| u64::try_from(n).ok());
            let body =
                tokio::io::BufReader::with_capacity(64 * 1024, output.body.into_async_read());
            Ok(Some(SpoolReader::new(self.location_of(key), size, body)))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>> {
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

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        Box::pin(async move {
            // The delimiter keeps `spool/rejected/` out of the listing.
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(PREFIX)
                .delimiter("/")
                .into_paginator()
                .send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| self.sdk_error("listing", "s3:ListBucket", PREFIX, &e))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key())
                        .filter(|key| key.ends_with(SUFFIX))
                        .map(str::to_owned),
                );
            }
            keys.sort();
            Ok(keys)
        })
    }
}

/// The spool in a directory (`--spool DIR` in local mode): `DIR/spool/…`.
/// Objects are written to a temporary name and renamed, so a crash never
/// leaves half an object behind.
#[derive(Debug, Clone)]
pub struct DirSpool {
    root: PathBuf,
}

impl DirSpool {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn error(&self, operation: &'static str, path: &Path, error: std::io::Error) -> SpoolError {
        SpoolError {
            operation,
            location: path.display().to_string(),
            message: error.to_string(),
        }
    }

    fn write(&self, key: &str, body: &[u8]) -> Result<(), SpoolError> {
        use std::io::Write;
        let path = self.path(key);
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| self.error("creating", parent, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let temporary = parent.join(format!(".{name}.tmp"));
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(body)?;
            file.sync_all()
        });
        written.map_err(|e| self.error("writing", &temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| self.error("writing", &path, e))
    }
}

impl SpoolStore for DirSpool {
    fn location(&self) -> String {
        format!("{}/", self.root.display())
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<SpoolReader>, SpoolError>> {
        Box::pin(async move {
            let path = self.path(key);
            let file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.error("reading", &path, e)),
            };
            let size = file.metadata().await.ok().map(|m| m.len());
            let reader = tokio::io::BufReader::with_capacity(64 * 1024, file);
            Ok(Some(SpoolReader::new(
                path.display().to_string(),
                size,
                reader,
            )))
        })
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move { self.write(key, &body) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>> {
        Box::pin(async move {
            let path = self.path(key);
            match std::fs::read(&path) {
                Ok(body) => Ok(Some(body)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.error("reading", &path, e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move {
            let path = self.path(key);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.error("deleting", &path, e)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        Box::pin(async move {
            let dir = self.path(PREFIX);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(self.error("listing", &dir, e)),
            };
            let mut keys = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| self.error("listing", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if is_file && name.ends_with(SUFFIX) && !name.starts_with('.') {
                    keys.push(format!("{PREFIX}{name}"));
                }
            }
            keys.sort();
            Ok(keys)
        })
    }
}

/// The spool in memory, with switches to make writes or deletes fail: for
/// tests of what a run does when the spool itself is in trouble. A test
/// double: built only for tests (feature `test-util`), never in the function.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct MemorySpool {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub fail_puts: AtomicBool,
    pub fail_deletes: AtomicBool,
}

#[cfg(any(test, feature = "test-util"))]
impl MemorySpool {
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refused(operation: &'static str, key: &str) -> SpoolError {
        SpoolError {
            operation,
            location: format!("memory:{key}"),
            message: "refused (test switch)".into(),
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl SpoolStore for MemorySpool {
    fn location(&self) -> String {
        "memory:".into()
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move {
            if self.fail_puts.load(Ordering::SeqCst) {
                return Err(Self::refused("writing", key));
            }
            self.lock().insert(key.to_owned(), body);
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, SpoolError>> {
        Box::pin(async move { Ok(self.lock().get(key).cloned()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SpoolError>> {
        Box::pin(async move {
            if self.fail_deletes.load(Ordering::SeqCst) {
                return Err(Self::refused("deleting", key));
            }
            self.lock().remove(key);
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, SpoolError>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .keys()
                .filter(|key| {
                    key.strip_prefix(PREFIX)
                        .is_some_and(|name| !name.contains('/') && name.ends_with(SUFFIX))
                })
                .cloned()
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> RunTime {
        RunTime::parse(text).expect("valid time")
    }

    #[test]
    fn keys_sort_by_the_documents_time() {
        let keys: Vec<String> = [
            "2026-11-26T23:55:00Z",
            "2026-11-27T00:00:00Z",
            "2026-11-27T00:00:00.500Z",
            "2026-11-27T10:05:00Z",
        ]
        .iter()
        .map(|t| object_key(&time(t)))
        .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(
            keys[0].starts_with("spool/20261126T235500.000Z-"),
            "{}",
            keys[0]
        );
        assert!(keys.iter().all(|k| k.ends_with(".ndjson")));
        // Two runs with the same time never overwrite each other.
        assert_ne!(
            object_key(&time("2026-11-27T00:00:00Z")),
            object_key(&time("2026-11-27T00:00:00Z"))
        );
    }

    #[test]
    fn remainders_and_rejections_keep_the_original_time() {
        let key = object_key(&time("2026-11-27T10:05:00Z"));
        let rest = remainder_key(&key);
        assert_ne!(rest, key);
        assert!(rest.starts_with("spool/20261127T100500.000Z-"), "{rest}");
        let rejected = rejected_key(&key);
        assert!(
            rejected.starts_with("spool/rejected/20261127T100500.000Z-"),
            "{rejected}"
        );
    }

    fn entry(id: &str) -> BulkEntry {
        BulkEntry {
            index: "docker-pulls-2026".into(),
            id: id.into(),
            source: format!(r#"{{"@timestamp":"2026-11-27T10:05:00Z","id":"{id}"}}"#),
        }
    }

    #[test]
    fn rejected_records_carry_the_reason_and_the_document() {
        let a = entry("acme/app@2026-11-27T10:05:00Z");
        let body = encode_rejected([(&a, "400 mapper_parsing_exception: \"quoted\"")]);
        let text = String::from_utf8(body).expect("utf-8");
        let record: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json");
        assert_eq!(
            record,
            serde_json::json!({
                "_index": "docker-pulls-2026",
                "_id": "acme/app@2026-11-27T10:05:00Z",
                "reason": "400 mapper_parsing_exception: \"quoted\"",
                "document": {"@timestamp": "2026-11-27T10:05:00Z", "id": "acme/app@2026-11-27T10:05:00Z"}
            })
        );
    }

    #[tokio::test]
    async fn a_directory_spool_keeps_objects_and_lists_them_oldest_first() {
        let dir = std::env::temp_dir().join(format!("docker-pulls-spool-{}", unique_suffix()));
        let spool = DirSpool::new(&dir);
        assert_eq!(spool.list().await.expect("empty"), Vec::<String>::new());
        let late = object_key(&time("2026-11-27T10:05:00Z"));
        let early = object_key(&time("2026-11-27T10:00:00Z"));
        let objects = [(late.clone(), entry("b")), (early.clone(), entry("a"))];
        for (key, entry) in &objects {
            spool.put(key, encode_object([entry])).await.expect("put");
        }
        spool
            .put(
                &rejected_key(&early),
                encode_rejected([(&entry("c"), "bad")]),
            )
            .await
            .expect("put rejected");
        assert_eq!(
            spool.list().await.expect("list"),
            vec![early.clone(), late.clone()]
        );
        let body = spool.get(&early).await.expect("get").expect("present");
        assert_eq!(
            crate::ndjson::decode_creates(&body).expect("decodes"),
            vec![entry("a")]
        );
        spool.delete(&early).await.expect("delete");
        spool.delete(&early).await.expect("deleting twice is fine");
        assert_eq!(spool.get(&early).await.expect("get"), None);
        assert_eq!(spool.list().await.expect("list"), vec![late]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("spool"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_memory_spool_lists_like_s3_with_a_delimiter() {
        let spool = MemorySpool::default();
        let key = object_key(&time("2026-11-27T10:05:00Z"));
        spool
            .put(&key, encode_object([&entry("a")]))
            .await
            .expect("put");
        spool
            .put(&rejected_key(&key), Vec::new())
            .await
            .expect("put rejected");
        assert_eq!(spool.list().await.expect("list"), vec![key.clone()]);
        spool.fail_puts.store(true, Ordering::SeqCst);
        assert!(spool.put(&key, Vec::new()).await.is_err());
        spool.fail_deletes.store(true, Ordering::SeqCst);
        assert!(spool.delete(&key).await.is_err());
        assert_eq!(spool.objects().len(), 2);
    }
}
