//! The look-back measurements, read from the archive's raw objects.
//!
//! Every archive object holds one run's documents and its key starts with
//! the run's time (see [`crate::archive`]), so the measurement of a
//! repository nearest before a time T is in the newest object whose key time
//! is at or before T: [`latest_before`] lists the partition(s) of the window
//! before T and reads objects newest first until every repository asked for
//! is found. A run's look-backs cost a list and a get or two each, not a
//! request per repository; listings of past days, which rarely change, are
//! kept for [`LIST_TTL`] by a [`ListCache`] in warm containers.
//!
//! Raw objects are never deleted, so they are always there to read. The
//! daily Parquet files, once compaction writes them, would replace the
//! per-day reads of [`daily_series`] (one object a day instead of a listing
//! and a get): the place to plug them in is [`latest_before`]'s loop over
//! keys.

use super::gains::Measurement;
use crate::archive::{self, ArchiveError, ArchiveStore};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A repository: `(namespace, name)`.
pub type Repo = (String, String);

/// How long a warm container trusts its listing of a past day's partition.
pub const LIST_TTL: Duration = Duration::from_secs(3600);

/// Listings of past days' partitions, kept between runs of a container.
#[derive(Debug, Default)]
pub struct ListCache {
    entries: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

/// What a look-back found, and what it cost.
#[derive(Debug, Default)]
pub struct Found {
    pub measurements: BTreeMap<Repo, Measurement>,
    /// S3 requests made (lists and gets).
    pub requests: usize,
    /// Objects that could not be read or decoded (skipped, logged).
    pub unreadable: usize,
}

/// The Unix time, in whole seconds, of an archive key: the name's leading
/// `20261203T103500.000Z`, read by the archive's own reader.
pub fn key_time(key: &str) -> Option<i64> {
    crate::archive::reader::key_time(key)
        .and_then(|nanos| i64::try_from(nanos.div_euclid(1_000_000_000)).ok())
}

/// The keys of the objects with `from <= key time <= to`, newest first.
async fn keys_between(
    store: &dyn ArchiveStore,
    cache: Option<(&ListCache, i64)>,
    from: i64,
    to: i64,
    requests: &mut usize,
) -> Result<Vec<String>, ArchiveError> {
    let instant =
        |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut keys = Vec::new();
    for prefix in archive::prefixes_between(instant(from), instant(to + 1)) {
        // Today's partition receives objects all day; earlier days' rarely
        // (a late retry): their listings may be reused for a while.
        let cache = cache.and_then(|(cache, now)| {
            let today = archive::prefixes_between(instant(now), instant(now + 1));
            today
                .first()
                .is_some_and(|today| prefix < *today)
                .then_some(cache)
        });
        let cached = cache.and_then(|cache| {
            let entries = cache.entries.lock().ok()?;
            let (listed, keys) = entries.get(&prefix)?;
            (listed.elapsed() < LIST_TTL).then(|| keys.clone())
        });
        let listed = match cached {
            Some(keys) => keys,
            None => {
                *requests += 1;
                let listed = store.list(&prefix, None).await?;
                if let Some(cache) = cache
                    && let Ok(mut entries) = cache.entries.lock()
                {
                    entries.insert(prefix.clone(), (Instant::now(), listed.clone()));
                }
                listed
            }
        };
        keys.extend(
            listed
                .into_iter()
                .filter(|key| key_time(key).is_some_and(|t| (from..=to).contains(&t))),
        );
    }
    keys.sort();
    keys.reverse();
    Ok(keys)
}

/// For each repository of `repos` (`None`: every one found), its latest
/// measurement with `target - window <= time <= target`. Objects are read
/// newest first, and reading stops once every repository asked for is
/// found. An object that cannot be read is logged and skipped.
/// `cache` (with the run's time: listings of days before its day are
/// reused) spares warm containers the listings of past days.
pub async fn latest_before(
    store: &dyn ArchiveStore,
    cache: Option<(&ListCache, i64)>,
    target: i64,
    window: i64,
    repos: Option<&BTreeSet<Repo>>,
) -> Result<Found, ArchiveError> {
    let mut found = Found::default();
    let keys = keys_between(store, cache, target - window, target, &mut found.requests).await?;
    for key in keys {
        if repos.is_some_and(|repos| repos.len() == found.measurements.len()) {
            break;
        }
        found.requests += 1;
        let read = match store.get(&key).await {
            Ok(body) => read_object(
                &body,
                target - window..=target,
                repos,
                &mut found.measurements,
            ),
            Err(error) => Err(error.to_string()),
        };
        if let Err(reason) = read {
            found.unreadable += 1;
            tracing::warn!(key = %key, %reason, "insights skip an archive object they cannot read");
        }
    }
    Ok(found)
}

/// The three fields insights need of an archive line, borrowed: a run reads
/// ten objects of 1,000 lines, and the full check of
/// [`archive::decode`] (a JSON tree per line, compared with the document
/// it stands for) costs several times more than this.
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp", borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    http: LineHttp<'a>,
}

#[derive(serde::Deserialize)]
struct LineHttp<'a> {
    #[serde(borrow)]
    docker_hub: LineStats<'a>,
}

#[derive(serde::Deserialize)]
struct LineStats<'a> {
    #[serde(borrow)]
    namespace: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    pull_count: u64,
}

/// Adds each measurement of an object's body within `range` (and of
/// `repos`, if given) that `into` does not hold yet: objects are read
/// newest first, so the first seen is the latest (a duplicate in an older
/// object is the same measurement). A line that is not a document is
/// skipped; a body that is not gzip is the error.
fn read_object(
    body: &[u8],
    range: std::ops::RangeInclusive<i64>,
    repos: Option<&BTreeSet<Repo>>,
    into: &mut BTreeMap<Repo, Measurement>,
) -> Result<(), String> {
    use std::io::Read;
    let mut text = Vec::with_capacity(body.len() * 6);
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_OBJECT_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("not a gzip object: {e}"))?;
    if text.len() as u64 > MAX_OBJECT_BYTES {
        return Err(format!(
            "decompresses to more than {MAX_OBJECT_BYTES} bytes"
        ));
    }
    // Every line of a run shares its time: parse each distinct one once.
    let mut last_time: Option<(String, Option<i64>)> = None;
    for line in text.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(line) = serde_json::from_slice::<Line>(line) else {
            continue;
        };
        let at = match &last_time {
            Some((text, at)) if *text == line.timestamp => *at,
            _ => {
                let at = crate::document::RunTime::parse(&line.timestamp)
                    .ok()
                    .map(|t| t.unix_seconds());
                last_time = Some((line.timestamp.to_string(), at));
                at
            }
        };
        let Some(at) = at.filter(|at| range.contains(at)) else {
            continue;
        };
        let stats = line.http.docker_hub;
        let repo = (stats.namespace.into_owned(), stats.name.into_owned());
        if repos.is_some_and(|repos| !repos.contains(&repo)) {
            continue;
        }
        into.entry(repo).or_insert(Measurement {
            at,
            pulls: stats.pull_count,
        });
    }
    Ok(())
}

/// The most bytes one object may decompress to (as the archive's reader).
const MAX_OBJECT_BYTES: u64 = 512 * 1024 * 1024;

/// The daily series of the stats page: `series[repo][i]` is the
/// repository's last measurement in the last [`DAY_END_WINDOW`] of day `i`
/// of the `days` UTC days up to and including the one of `now` (oldest
/// first; `None` where the archive has none), and `starts[i]` that day's
/// start. With `repos` given, a day's reading stops once each is found.
pub async fn daily_series(
    store: &dyn ArchiveStore,
    now: i64,
    days: usize,
    repos: Option<&BTreeSet<Repo>>,
) -> Result<DailySeries, ArchiveError> {
    use futures_util::StreamExt;
    let today_start = now - now.rem_euclid(super::gains::DAY);
    let day_ends: Vec<i64> = (0..days)
        .map(|i| today_start - (days - 1 - i) as i64 * super::gains::DAY)
        .collect();
    // A few days at a time: 91 days one after the other would take seconds
    // of S3 round trips.
    let found: Vec<(usize, Result<Found, ArchiveError>)> =
        futures_util::stream::iter(day_ends.iter().enumerate())
            .map(|(i, start)| async move {
                let end = (start + super::gains::DAY - 1).min(now);
                (
                    i,
                    latest_before(store, None, end, DAY_END_WINDOW, repos).await,
                )
            })
            .buffer_unordered(DAILY_CONCURRENCY)
            .collect()
            .await;
    let mut series: BTreeMap<Repo, Vec<Option<Measurement>>> = BTreeMap::new();
    let mut requests = 0;
    for (i, found) in found {
        let found = found?;
        requests += found.requests;
        for (repo, measurement) in found.measurements {
            series.entry(repo).or_insert_with(|| vec![None; days])[i] = Some(measurement);
        }
    }
    Ok(DailySeries {
        starts: day_ends,
        series,
        requests,
    })
}

/// Days [`daily_series`] reads at once.
const DAILY_CONCURRENCY: usize = 8;

/// How much of the end of a day [`daily_series`] reads: enough for budget
/// rotation to have measured every repository, little enough to be a few
/// objects.
pub const DAY_END_WINDOW: i64 = 2 * super::gains::HOUR;

/// See [`daily_series`].
#[derive(Debug, Default)]
pub struct DailySeries {
    pub starts: Vec<i64>,
    pub series: BTreeMap<Repo, Vec<Option<Measurement>>>,
    pub requests: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_gives_each_repository_once_and_skips_what_is_not_a_document() {
        let documents = [
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":7,"star_count":1,"collaborator_count":0}}}"#,
            "{not json",
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"c","pull_count":1.5,"star_count":1}}}"#,
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"d","pull_count":9,"star_count":1}}}"#,
            r#"{"@timestamp":"2026-12-03T10:35:00Z","http":{"docker_hub":{"namespace":"a","name":"b","pull_count":8,"star_count":1}}}"#,
        ]
        .join("\n");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, text_bytes(&documents)).expect("write");
        let body = encoder.finish().expect("gzip");
        let at = 1_796_294_100;
        let mut found = BTreeMap::new();
        read_object(&body, at..=at, None, &mut found).expect("reads");
        let repo = |name: &str| ("a".to_owned(), name.to_owned());
        assert_eq!(
            found,
            BTreeMap::from([
                (repo("b"), Measurement { at, pulls: 7 }),
                (repo("d"), Measurement { at, pulls: 9 }),
            ])
        );
        // Outside the window, or not asked for: left out.
        let mut none = BTreeMap::new();
        read_object(&body, at + 1..=at + 10, None, &mut none).expect("reads");
        assert!(none.is_empty());
        let only_d = BTreeSet::from([repo("d")]);
        let mut some = BTreeMap::new();
        read_object(&body, at..=at, Some(&only_d), &mut some).expect("reads");
        assert_eq!(some.keys().collect::<Vec<_>>(), [&repo("d")]);
        assert!(read_object(b"plain", at..=at, None, &mut some).is_err());
    }

    fn text_bytes(text: &str) -> &[u8] {
        text.as_bytes()
    }

    #[test]
    fn key_times_are_read_from_the_name() {
        assert_eq!(
            key_time(
                "archive/year=2026/month=12/day=03/20261203T103500.000Z-0123456789abcdef.ndjson.gz"
            ),
            Some(1_796_294_100)
        );
        assert_eq!(key_time("archive/year=2026/README"), None);
        assert_eq!(key_time("archive/x/2026120XT103500.000Z-1.ndjson.gz"), None);
    }
}
