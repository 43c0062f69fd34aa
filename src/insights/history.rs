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

/// The Unix time of an archive key: the name's leading
/// `20261203T103500.000Z`.
pub fn key_time(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    let stamp = name.get(..20)?;
    let b = stamp.as_bytes();
    if b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(0..4)?).ok()?,
        month,
        number(6..8)? as u8,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc().unix_timestamp())
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
        let decoded = match store.get(&key).await {
            Ok(body) => archive::decode(&body).map_err(|reason| (key.clone(), reason)),
            Err(error) => Err((key.clone(), error.to_string())),
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err((key, reason)) => {
                found.unreadable += 1;
                tracing::warn!(key = %key, %reason, "insights skip an archive object they cannot read");
                continue;
            }
        };
        for document in decoded.documents {
            let at = document.timestamp.unix_seconds();
            if !(target - window..=target).contains(&at) {
                continue;
            }
            let repo = (document.stats.namespace, document.stats.name);
            if repos.is_some_and(|repos| !repos.contains(&repo)) {
                continue;
            }
            // Newest object first: the first one seen is the latest (a
            // duplicate in an older object is the same measurement).
            found.measurements.entry(repo).or_insert(Measurement {
                at,
                pulls: document.stats.pull_count,
            });
        }
    }
    Ok(found)
}

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
