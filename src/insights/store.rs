//! Where badges, the index, the page and the alert state are kept: the
//! badge bucket (`BADGE_BUCKET`) or, locally, a directory. One small trait,
//! with the conditional writes the alert state needs so that two runs
//! cannot both think they opened the same episode.

use futures_util::future::BoxFuture;
use std::path::PathBuf;

/// A bucket operation that failed; names the object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} {location} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub location: String,
    pub message: String,
}

/// A write's precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// Only if no object has the key (S3 `If-None-Match: *`).
    Absent,
    /// Only if the object is still the one read with this ETag (S3 `If-Match`).
    Matches(String),
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The precondition failed: someone else wrote the object first.
    Conflict,
}

/// An object as read: its body and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub body: Vec<u8>,
    pub etag: String,
}

pub trait Bucket: Send + Sync {
    /// `s3://bucket/` or a directory, for messages.
    fn location(&self) -> String;
    /// The object at `key`; `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>, StoreError>>;
    /// Writes `body` at `key` with its media type, if `condition` holds.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'static str,
        condition: Condition,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
}

/// How long browsers and shields may keep a badge or the page: badges
/// change at most a few times a day, and shields caches endpoint badges
/// for at least 300 seconds anyway.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The badge bucket in S3.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Bucket {
    /// `client` as [`crate::spool::s3_client`] builds it.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    fn error<E, R>(
        &self,
        operation: &'static str,
        action: &'static str,
        key: &str,
        error: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> StoreError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        StoreError {
            operation,
            location: format!("s3://{}/{key}", self.bucket),
            message: crate::aws_error::explain_s3(&self.client, action, &self.bucket, key, error),
        }
    }
}

impl Bucket for S3Bucket {
    fn location(&self) -> String {
        format!("s3://{}/", self.bucket)
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>, StoreError>> {
        Box::pin(async move {
            let output = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(output) => output,
                Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(error) => return Err(self.error("reading", "s3:GetObject", key, &error)),
            };
            let etag = output.e_tag().unwrap_or_default().to_owned();
            let body = output.body.collect().await.map_err(|e| StoreError {
                operation: "reading",
                location: format!("s3://{}/{key}", self.bucket),
                message: e.to_string(),
            })?;
            Ok(Some(Object {
                body: body.to_vec(),
                etag,
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'static str,
        condition: Condition,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .cache_control(CACHE_CONTROL)
                .body(body.into());
            request = match condition {
                Condition::None => request,
                Condition::Absent => request.if_none_match("*"),
                Condition::Matches(etag) => request.if_match(etag),
            };
            match request.send().await {
                Ok(_) => Ok(Written::Yes),
                // 412: the precondition failed; 409: a concurrent
                // conditional write to the same key won.
                Err(error)
                    if error
                        .raw_response()
                        .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
                {
                    Ok(Written::Conflict)
                }
                Err(error) => Err(self.error("writing", "s3:PutObject", key, &error)),
            }
        })
    }
}

/// The badge bucket as a directory (local mode, tests): the same keys as
/// files. Conditions are checked against a hash of the file's content; not
/// safe between processes writing at the same moment (S3 is).
#[derive(Debug, Clone)]
pub struct DirBucket {
    root: PathBuf,
}

impl DirBucket {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let path = self.root.join(key);
        match std::fs::read(&path) {
            Ok(body) => Ok(Some(Object {
                etag: etag(&body),
                body,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError {
                operation: "reading",
                location: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// A stand-in ETag: FNV-1a of the content.
fn etag(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

impl Bucket for DirBucket {
    fn location(&self) -> String {
        format!("{}/", self.root.display())
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>, StoreError>> {
        Box::pin(async move { self.read(key) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        _content_type: &'static str,
        condition: Condition,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let current = self.read(key)?;
            let holds = match (&condition, &current) {
                (Condition::None, _) | (Condition::Absent, None) => true,
                (Condition::Matches(tag), Some(object)) => *tag == object.etag,
                _ => false,
            };
            if !holds {
                return Ok(Written::Conflict);
            }
            let path = self.root.join(key);
            let failed = |e: std::io::Error| StoreError {
                operation: "writing",
                location: path.display().to_string(),
                message: e.to_string(),
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, &body).map_err(failed)?;
            std::fs::rename(&temporary, &path).map_err(failed)?;
            Ok(Written::Yes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_bucket_honours_the_write_conditions() {
        let dir = std::env::temp_dir().join(format!("docker-pulls-bucket-{:x}", fastrand::u64(..)));
        let bucket = DirBucket::new(&dir);
        let key = "alerts/state.json";
        assert_eq!(bucket.get(key).await.expect("reads"), None);
        let put = |body: &str, condition| {
            bucket.put(key, body.as_bytes().to_vec(), "application/json", condition)
        };
        assert_eq!(
            put("1", Condition::Absent).await.expect("put"),
            Written::Yes
        );
        assert_eq!(
            put("2", Condition::Absent).await.expect("put"),
            Written::Conflict
        );
        let first = bucket.get(key).await.expect("reads").expect("there");
        assert_eq!(first.body, b"1");
        assert_eq!(
            put("3", Condition::Matches(first.etag.clone()))
                .await
                .expect("put"),
            Written::Yes
        );
        assert_eq!(
            put("4", Condition::Matches(first.etag)).await.expect("put"),
            Written::Conflict
        );
        assert_eq!(
            bucket.get(key).await.expect("reads").expect("there").body,
            b"3"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
