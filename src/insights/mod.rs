//! Insights: what the archive's history tells a maintainer that Docker
//! Hub's lifetime total does not: pulls per day, week and month (as
//! shields.io badges and a stats page), and alerts when pulls spike, stall
//! or go backwards.
//!
//! Read from the archive only, so it works whatever the cluster is doing.
//! The pure parts take data and return data: [`gains`], [`alerts`],
//! [`number`], [`badge`], [`page`], [`notify`]'s message. [`history`] reads
//! the look-back measurements from archive objects; [`store`] is the badge
//! bucket, [`notify`] the alert topic. This file ties them together for one
//! run ([`Insights::after_run`]) and for the local commands ([`table`],
//! [`report`]).
//!
//! Keys in the badge bucket (CONTRACT.md "Insights"):
//! `badges/<namespace>/<name>/{total,day,week,month}.json`,
//! `badges/index.json` (every repository's figures), `badges/index.html`
//! (the page, once a day) and `alerts/state.json` (the open episodes).

pub mod alerts;
pub mod badge;
pub mod gains;
pub mod history;
pub mod notify;
pub mod number;
pub mod page;
pub mod store;

use crate::archive::{ArchiveError, ArchiveStore};
use crate::document::Document;
use alerts::{Kind, LOOK_BACKS, Past, RepoState, Thresholds};
use futures_util::StreamExt;
use gains::{Gain, Gains, Measurement, TOLERANCE};
use history::{ListCache, Repo};
use notify::{Alert, AlertSink, NotifyError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use store::{Bucket, Condition, StoreError, Written};

pub const BADGE_PREFIX: &str = "badges/";
pub const INDEX_KEY: &str = "badges/index.json";
pub const PAGE_KEY: &str = "badges/index.html";
pub const STATE_KEY: &str = "alerts/state.json";
/// A repository's badges are rewritten at most this often (seconds), and
/// only the ones whose text changed: the S3 bill stays under $1 a month at
/// 1,000 repositories (see docs/insights.md), and shields caches them anyway.
pub const BADGE_REFRESH: i64 = 12 * gains::HOUR;
/// Badge writes in flight at once.
const CONCURRENCY: usize = 16;

/// What went wrong in a run's insights; never fails the run.
#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(
        "the alert state {0} kept changing under this run (other runs writing it); its alerts are left to the next run"
    )]
    Contended(String),
}

/// One repository's figures at its latest measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub repo: Repo,
    pub now: Measurement,
    pub gains: Gains,
    pub past: Past,
}

/// Each repository's [`Past`] before `now`: one look-back per
/// [`LOOK_BACKS`] offset, all at once.
pub async fn look_back(
    archive: &dyn ArchiveStore,
    cache: Option<&ListCache>,
    now: i64,
    repos: &BTreeSet<Repo>,
) -> Result<(BTreeMap<Repo, Past>, usize), ArchiveError> {
    let found = futures_util::future::join_all(LOOK_BACKS.iter().map(|offset| async move {
        let cache = cache.map(|cache| (cache, now));
        let found =
            history::latest_before(archive, cache, now - offset, TOLERANCE, Some(repos)).await;
        (*offset, found)
    }))
    .await;
    let mut pasts: BTreeMap<Repo, Past> = BTreeMap::new();
    let mut requests = 0;
    for (offset, found) in found {
        let found = found?;
        requests += found.requests;
        for (repo, measurement) in found.measurements {
            pasts.entry(repo).or_default().0.insert(offset, measurement);
        }
    }
    Ok((pasts, requests))
}

/// The figures of each measured repository.
pub fn figures(
    current: &BTreeMap<Repo, Measurement>,
    pasts: &BTreeMap<Repo, Past>,
) -> Vec<Figures> {
    current
        .iter()
        .map(|(repo, now)| {
            let past = pasts.get(repo).cloned().unwrap_or_default();
            Figures {
                repo: repo.clone(),
                now: *now,
                gains: Gains::of(*now, |window| past.ago(window)),
                past,
            }
        })
        .collect()
}

/// `badges/index.json`: every repository's latest figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub updated: String,
    /// The UTC day (`YYYY-MM-DD`) the page was last written.
    #[serde(default)]
    pub page_day: Option<String>,
    #[serde(default)]
    pub repositories: Vec<IndexEntry>,
}

/// One repository in [`Index`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub namespace: String,
    pub name: String,
    /// When it was last measured.
    pub measured: String,
    pub total: u64,
    /// Pulls over the last 24 hours, 7 and 30 days; `null`: unknown.
    pub day: Option<u64>,
    pub week: Option<u64>,
    pub month: Option<u64>,
    /// Windows over which the count went down (no gain then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regressed: Vec<String>,
    /// The badges' messages as last written, by kind.
    #[serde(default)]
    pub badges: BTreeMap<String, String>,
    /// When they were last written (Unix seconds).
    #[serde(default)]
    pub badges_written: Option<i64>,
}

impl IndexEntry {
    fn gains(&self) -> Gains {
        let gain = |window: &str, value: Option<u64>| match value {
            Some(n) => Gain::Gained(n),
            None if self.regressed.iter().any(|w| w == window) => Gain::Regressed { from: 0 },
            None => Gain::Unknown,
        };
        Gains {
            day: gain("day", self.day),
            week: gain("week", self.week),
            month: gain("month", self.month),
        }
    }
}

pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn utc_day(t: i64) -> String {
    rfc3339(t - t.rem_euclid(gains::DAY))[..10].to_owned()
}

/// The four badges of a repository, by kind.
pub fn badges(figures: &Figures) -> [(&'static str, badge::Badge); 4] {
    [
        ("total", badge::total(figures.now.pulls)),
        ("day", badge::gain("day", figures.gains.day)),
        ("week", badge::gain("week", figures.gains.week)),
        ("month", badge::gain("month", figures.gains.month)),
    ]
}

/// `badges/<namespace>/<name>/<kind>.json`.
pub fn badge_key(repo: &Repo, kind: &str) -> String {
    format!("{BADGE_PREFIX}{}/{}/{kind}.json", repo.0, repo.1)
}

/// A badge write a run decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct BadgeWrite {
    pub repo: Repo,
    pub kind: &'static str,
    pub badge: badge::Badge,
}

/// Which badges to write: those whose message differs from the one last
/// written, for repositories whose badges were never written or not in
/// the last [`BADGE_REFRESH`].
pub fn plan_badges(previous: &Index, figures: &[Figures], now: i64) -> Vec<BadgeWrite> {
    let last: BTreeMap<(&str, &str), &IndexEntry> = previous
        .repositories
        .iter()
        .map(|e| ((e.namespace.as_str(), e.name.as_str()), e))
        .collect();
    let mut writes = Vec::new();
    for f in figures {
        let entry = last.get(&(f.repo.0.as_str(), f.repo.1.as_str()));
        let due = entry
            .and_then(|e| e.badges_written)
            .is_none_or(|at| now - at >= BADGE_REFRESH);
        if !due {
            continue;
        }
        for (kind, badge) in badges(f) {
            let unchanged = entry.and_then(|e| e.badges.get(kind)) == Some(&badge.message);
            if !unchanged {
                writes.push(BadgeWrite {
                    repo: f.repo.clone(),
                    kind,
                    badge,
                });
            }
        }
    }
    writes
}

/// The next index: `previous` with the measured repositories' figures
/// replaced; `written` the repositories whose planned badges all landed
/// (their messages and time are recorded, the others keep the old ones so
/// the next due run tries again).
pub fn next_index(
    previous: &Index,
    figures: &[Figures],
    written: &BTreeSet<Repo>,
    now: i64,
) -> Index {
    let mut entries: BTreeMap<Repo, IndexEntry> = previous
        .repositories
        .iter()
        .map(|e| ((e.namespace.clone(), e.name.clone()), e.clone()))
        .collect();
    for f in figures {
        let old = entries.get(&f.repo);
        let (badges_now, written_at) = if written.contains(&f.repo) {
            (
                badges(f)
                    .into_iter()
                    .map(|(k, b)| (k.to_owned(), b.message))
                    .collect(),
                Some(now),
            )
        } else {
            (
                old.map(|e| e.badges.clone()).unwrap_or_default(),
                old.and_then(|e| e.badges_written),
            )
        };
        let regressed = f
            .gains
            .named()
            .iter()
            .filter(|(_, g)| matches!(g, Gain::Regressed { .. }))
            .map(|(w, _)| (*w).to_owned())
            .collect();
        entries.insert(
            f.repo.clone(),
            IndexEntry {
                namespace: f.repo.0.clone(),
                name: f.repo.1.clone(),
                measured: rfc3339(f.now.at),
                total: f.now.pulls,
                day: f.gains.day.known(),
                week: f.gains.week.known(),
                month: f.gains.month.known(),
                regressed,
                badges: badges_now,
                badges_written: written_at,
            },
        );
    }
    Index {
        updated: rfc3339(now),
        page_day: previous.page_day.clone(),
        repositories: entries.into_values().collect(),
    }
}

/// The open episodes of every repository (`alerts/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// By `namespace/name`.
    pub repositories: BTreeMap<String, RepoState>,
}

/// Moves `state` to the figures' conditions; the alerts that follow.
pub fn evaluate(
    state: &mut AlertState,
    figures: &[Figures],
    thresholds: &Thresholds,
) -> Vec<Alert> {
    let mut raised = Vec::new();
    for f in figures {
        let conditions = alerts::conditions(f.now, &f.past, thresholds);
        let key = format!("{}/{}", f.repo.0, f.repo.1);
        let repo_state = state.repositories.entry(key).or_default();
        for transition in alerts::step(repo_state, f.now.at, &conditions) {
            raised.push(Alert {
                namespace: f.repo.0.clone(),
                name: f.repo.1.clone(),
                transition,
                at: f.now.at,
                pulls: f.now.pulls,
                gains: f.gains,
            });
        }
    }
    raised
}

/// What a run's insights did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Alerts raised (episodes started or ended), published or only logged.
    pub alerts: usize,
    pub badges_written: usize,
    pub page_written: bool,
    /// Requests to the archive (lists, gets).
    pub archive_requests: usize,
}

/// The insights a run produces: badges into the badge bucket, alerts (with
/// their state in `state`) to the alert sink. Long-lived: it keeps the
/// archive listings a warm container may reuse.
#[derive(Default)]
pub struct Insights {
    badges: Option<Arc<dyn Bucket>>,
    state: Option<Arc<dyn Bucket>>,
    sink: Option<Arc<dyn AlertSink>>,
    cache: ListCache,
}

impl Insights {
    /// Badges, the index and the page in `bucket` (`BADGE_BUCKET`).
    pub fn with_badges(mut self, bucket: Arc<dyn Bucket>) -> Self {
        self.badges = Some(bucket);
        self
    }

    /// Alerts evaluated, with their episodes kept in `bucket`.
    pub fn with_alert_state(mut self, bucket: Arc<dyn Bucket>) -> Self {
        self.state = Some(bucket);
        self
    }

    /// Alerts published to `sink` (`ALERT_TOPIC_ARN`); without one they are
    /// logged and counted only.
    pub fn with_alert_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Whether there is anything to do.
    pub fn is_on(&self) -> bool {
        self.badges.is_some() || self.state.is_some()
    }

    /// A run's insights, after its documents were archived, in about
    /// `limit` (what [`account`] allows them): badge writes stop at
    /// [`BADGE_SHARE`] of it, so the index always records the badges that
    /// landed, and the next run writes only the rest.
    pub async fn after_run(
        &self,
        archive: &dyn ArchiveStore,
        documents: &[Document],
        thresholds: &Thresholds,
        limit: std::time::Duration,
    ) -> Result<Outcome, InsightsError> {
        let badges_until = tokio::time::Instant::now() + limit.mul_f64(BADGE_SHARE);
        let mut outcome = Outcome::default();
        let Some(now) = documents.iter().map(|d| d.timestamp.unix_seconds()).max() else {
            return Ok(outcome);
        };
        let current: BTreeMap<Repo, Measurement> = documents
            .iter()
            .map(|d| {
                let repo = (d.stats.namespace.clone(), d.stats.name.clone());
                let m = Measurement {
                    at: d.timestamp.unix_seconds(),
                    pulls: d.stats.pull_count,
                };
                (repo, m)
            })
            .collect();
        let repos: BTreeSet<Repo> = current.keys().cloned().collect();
        let (pasts, requests) = look_back(archive, Some(&self.cache), now, &repos).await?;
        outcome.archive_requests = requests;
        let figures = figures(&current, &pasts);
        let mut first_error = None;
        // Alerts first: the badges' daily page may take the rest of the time.
        if let Some(bucket) = &self.state {
            match self.raise_alerts(&**bucket, &figures, thresholds).await {
                Ok(alerts) => outcome.alerts = alerts,
                Err(error) => first_error = Some(error),
            }
        }
        if let Some(bucket) = &self.badges {
            match self
                .write_badges(&**bucket, archive, &figures, now, badges_until)
                .await
            {
                Ok((written, page, requests)) => {
                    outcome.badges_written = written;
                    outcome.page_written = page;
                    outcome.archive_requests += requests;
                }
                Err(error) => first_error = first_error.or(Some(error)),
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    /// The changed badges (those that land by `until`), the index, and the
    /// page when the day's is not written yet: `(badges written, page
    /// written, archive requests)`.
    async fn write_badges(
        &self,
        bucket: &dyn Bucket,
        archive: &dyn ArchiveStore,
        figures: &[Figures],
        now: i64,
        until: tokio::time::Instant,
    ) -> Result<(usize, bool, usize), InsightsError> {
        let previous = match bucket.get(INDEX_KEY).await? {
            None => Index::default(),
            Some(object) => serde_json::from_slice(&object.body).unwrap_or_else(|error| {
                tracing::warn!(key = INDEX_KEY, %error, "the badge index is not readable; every badge is written again");
                Index::default()
            }),
        };
        let plan = plan_badges(&previous, figures, now);
        let mut planned: BTreeMap<Repo, usize> = BTreeMap::new();
        for write in &plan {
            *planned.entry(write.repo.clone()).or_default() += 1;
        }
        // Writes not answered by `until` are left to the next run: cutting
        // here, rather than losing the whole call to the run's time limit,
        // lets the index below record what did land. Without it a list with
        // more badges than one run can write starts over every run.
        let results: Vec<(Repo, Result<Written, StoreError>)> = futures_util::stream::iter(plan)
            .map(|write| async move {
                let body = serde_json::to_vec(&write.badge).unwrap_or_default();
                let key = badge_key(&write.repo, write.kind);
                let result = bucket
                    .put(&key, body, "application/json", Condition::None)
                    .await;
                (write.repo, result)
            })
            .buffer_unordered(CONCURRENCY)
            .take_until(tokio::time::sleep_until(until))
            .collect()
            .await;
        let mut answered: BTreeMap<Repo, usize> = BTreeMap::new();
        let mut written = 0;
        for (repo, result) in results {
            match result {
                Ok(_) => {
                    written += 1;
                    *answered.entry(repo).or_default() += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, "a badge could not be written; the next run tries again");
                }
            }
        }
        // A repository's badges count as written once all of its planned
        // writes landed.
        let landed: BTreeSet<Repo> = planned
            .iter()
            .filter(|(repo, count)| answered.get(*repo) == Some(*count))
            .map(|(repo, _)| repo.clone())
            .collect();
        let planned_total: usize = planned.values().sum();
        if written < planned_total {
            tracing::info!(
                written,
                left = planned_total - written,
                "not every badge was written in this run's time; the next run goes on"
            );
        }
        let mut index = next_index(&previous, figures, &landed, now);
        let put_index = |index: &Index| {
            let body = serde_json::to_vec_pretty(index).unwrap_or_default();
            bucket.put(INDEX_KEY, body, "application/json", Condition::None)
        };
        // The index first: a page that does not finish in time never holds
        // the badges' record back.
        put_index(&index).await?;
        let today = utc_day(now);
        let mut requests = 0;
        let page_due = index.page_day.as_deref() != Some(today.as_str());
        if page_due {
            let (html, page_requests) = report(archive, &index, now).await?;
            requests += page_requests;
            bucket
                .put(
                    PAGE_KEY,
                    html.into_bytes(),
                    "text/html; charset=utf-8",
                    Condition::None,
                )
                .await?;
            index.page_day = Some(today);
            put_index(&index).await?;
        }
        Ok((written, page_due, requests))
    }

    /// Evaluates the episodes under the state object's conditional write:
    /// of two runs that read the same state, only one writes its alerts;
    /// the other reads again and finds them raised. The state is written
    /// before publishing, so an episode alerts at most once (a crash
    /// between the two loses that alert, and the log says which).
    async fn raise_alerts(
        &self,
        bucket: &dyn Bucket,
        figures: &[Figures],
        thresholds: &Thresholds,
    ) -> Result<usize, InsightsError> {
        for _attempt in 0..4 {
            let (mut state, condition) = match bucket.get(STATE_KEY).await? {
                None => (AlertState::default(), Condition::Absent),
                Some(object) => {
                    let state = serde_json::from_slice(&object.body).unwrap_or_else(|error| {
                        tracing::warn!(key = STATE_KEY, %error, "the alert state is not readable; starting afresh (open episodes may alert again)");
                        AlertState::default()
                    });
                    (state, Condition::Matches(object.etag))
                }
            };
            let raised = evaluate(&mut state, figures, thresholds);
            if raised.is_empty() {
                return Ok(0);
            }
            let body = serde_json::to_vec(&state).unwrap_or_default();
            match bucket
                .put(STATE_KEY, body, "application/json", condition)
                .await?
            {
                Written::Conflict => continue,
                Written::Yes => {}
            }
            for alert in &raised {
                let (subject, message) = alert.message();
                tracing::warn!(
                    repository = %alert.repository(),
                    alert = alert.transition.kind.name(),
                    state = ?alert.transition.edge,
                    "{}",
                    alert.sentence()
                );
                if let Some(sink) = &self.sink
                    && let Err(error) = sink.publish(&subject, &message).await
                {
                    tracing::error!(%error, repository = %alert.repository(), "this alert was not published");
                }
            }
            return Ok(raised.len());
        }
        Err(InsightsError::Contended(format!(
            "{}{STATE_KEY}",
            bucket.location()
        )))
    }
}

/// The most a run's insights may take: they come after delivery and must
/// never hold the run past its deadline.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Of the insights' time, the share badge writes may use; the rest is for
/// the index (which records what landed) and the daily page.
pub const BADGE_SHARE: f64 = 0.6;

/// Runs a run's insights (started with the same `limit`: [`TIMEOUT`] or
/// less near the deadline) within `limit` and counts what they did; a
/// failure is logged, never the run's.
pub async fn account(
    work: impl Future<Output = Result<Outcome, InsightsError>>,
    limit: std::time::Duration,
    counts: &mut crate::counts::RunCounts,
) {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(outcome)) => {
            counts.pull_alerts = outcome.alerts;
            counts.badges_written = outcome.badges_written;
            tracing::debug!(
                alerts = outcome.alerts,
                badges_written = outcome.badges_written,
                page_written = outcome.page_written,
                archive_requests = outcome.archive_requests,
                "insights"
            );
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "this run's insights (badges, alerts) failed; the next run tries again");
        }
        Err(_) => tracing::warn!(
            limit_ms = limit.as_millis() as u64,
            "this run's insights (badges, alerts) did not finish in time; the next run tries again"
        ),
    }
}

/// The most repositories the stats page shows, the most pulled first
/// (`badges/index.json` has them all). A page of all 10,000 repositories
/// of a large list was tens of MB of HTML, and the run that built it
/// peaked at 147.7 MiB: over a 128 MB function (docs/performance.md).
pub const PAGE_REPOSITORIES: usize = 500;

/// The stats page from the archive: the [`PAGE_REPOSITORIES`] most pulled
/// repositories of `index`, their daily pulls over [`page::DAYS`] days up
/// to `now`; and the archive requests it took.
pub async fn report(
    archive: &dyn ArchiveStore,
    index: &Index,
    now: i64,
) -> Result<(String, usize), ArchiveError> {
    let mut shown: Vec<&IndexEntry> = index.repositories.iter().collect();
    shown.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
    });
    shown.truncate(PAGE_REPOSITORIES);
    let repos: BTreeSet<Repo> = shown
        .iter()
        .map(|e| (e.namespace.clone(), e.name.clone()))
        .collect();
    let daily = history::daily_series(archive, now, page::DAYS + 1, Some(&repos)).await?;
    let page_repos: Vec<page::PageRepo> = shown
        .iter()
        .map(|e| {
            let ends: Vec<Option<u64>> = daily
                .series
                .get(&(e.namespace.clone(), e.name.clone()))
                .map(|s| s.iter().map(|m| m.map(|m| m.pulls)).collect())
                .unwrap_or_else(|| vec![None; page::DAYS + 1]);
            let gains = e.gains();
            page::PageRepo {
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                total: e.total,
                week: gains.week,
                month: gains.month,
                daily: page::daily_gains(&ends),
            }
        })
        .collect();
    let first_day = daily
        .starts
        .get(1)
        .map_or_else(String::new, |t| utc_day(*t));
    Ok((
        page::render(
            &page_repos,
            index.repositories.len(),
            &rfc3339(now),
            &first_day,
        ),
        daily.requests,
    ))
}

/// The figures of every repository in the archive at its latest
/// measurement: the local `insights` table and `report`. `now` is the
/// newest key's time (or `at`); repositories measured within
/// [`history::DAY_END_WINDOW`] of it count as current.
pub async fn latest(
    archive: &dyn ArchiveStore,
    at: Option<i64>,
) -> Result<(i64, Vec<Figures>), ArchiveError> {
    let now = match at {
        Some(at) => at,
        None => {
            let keys = archive.list(crate::archive::PREFIX, None).await?;
            match keys.iter().rev().find_map(|k| history::key_time(k)) {
                Some(t) => t,
                None => return Ok((0, Vec::new())),
            }
        }
    };
    let found = history::latest_before(archive, None, now, history::DAY_END_WINDOW, None).await?;
    let repos: BTreeSet<Repo> = found.measurements.keys().cloned().collect();
    let (pasts, _) = look_back(archive, None, now, &repos).await?;
    Ok((now, figures(&found.measurements, &pasts)))
}

/// The alerts open for `figures` as the archive alone tells them (no
/// stored state): the conditions that hold now.
pub fn open_alerts(figures: &Figures, thresholds: &Thresholds) -> Vec<Kind> {
    alerts::conditions(figures.now, &figures.past, thresholds)
        .iter()
        .filter(|(_, holds)| *holds == Some(true))
        .map(|(kind, _)| *kind)
        .collect()
}

/// The local `insights` table: repository, total, day, week, month, alerts.
pub fn table(figures: &[Figures], thresholds: &Thresholds) -> String {
    let cell = |gain: Gain| match gain {
        Gain::Gained(n) => n.to_string(),
        Gain::Unknown => "-".into(),
        Gain::Regressed { .. } => "down".into(),
    };
    let rows: Vec<[String; 6]> = figures
        .iter()
        .map(|f| {
            let alerts: Vec<&str> = open_alerts(f, thresholds)
                .iter()
                .map(|k| k.name())
                .collect();
            [
                format!("{}/{}", f.repo.0, f.repo.1),
                f.now.pulls.to_string(),
                cell(f.gains.day),
                cell(f.gains.week),
                cell(f.gains.month),
                alerts.join(","),
            ]
        })
        .collect();
    let header = ["repository", "total", "day", "week", "month", "alerts"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for i in 1..5 {
            line.push_str(&format!("  {:>w$}", row[i], w = widths[i]));
        }
        line.push_str(&format!("  {}", row[5]));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures_of(name: &str, at: i64, pulls: u64, day: Gain) -> Figures {
        Figures {
            repo: ("acme".into(), name.into()),
            now: Measurement { at, pulls },
            gains: Gains {
                day,
                week: Gain::Unknown,
                month: Gain::Unknown,
            },
            past: Past::default(),
        }
    }

    #[test]
    fn badges_are_written_when_their_text_changes_at_most_every_refresh() {
        let t0 = 1_796_294_100;
        let first = [figures_of("app", t0, 1_000, Gain::Gained(10))];
        let plan = plan_badges(&Index::default(), &first, t0);
        assert_eq!(plan.len(), 4, "all four, the first time");
        let written: BTreeSet<Repo> = plan.iter().map(|w| w.repo.clone()).collect();
        let index = next_index(&Index::default(), &first, &written, t0);
        assert_eq!(index.repositories[0].badges["total"], "1k");
        // Five minutes later the day's gain changed: not due yet.
        let later = [figures_of("app", t0 + 300, 1_020, Gain::Gained(30))];
        assert!(plan_badges(&index, &later, t0 + 300).is_empty());
        let index2 = next_index(&index, &later, &BTreeSet::new(), t0 + 300);
        assert_eq!(index2.repositories[0].total, 1_020);
        assert_eq!(index2.repositories[0].badges_written, Some(t0), "kept");
        // After the refresh interval, only the changed one.
        let due = [figures_of(
            "app",
            t0 + BADGE_REFRESH,
            1_040,
            Gain::Gained(30),
        )];
        let plan = plan_badges(&index2, &due, t0 + BADGE_REFRESH);
        let kinds: Vec<&str> = plan.iter().map(|w| w.kind).collect();
        assert_eq!(kinds, ["day"]);
        assert_eq!(plan[0].badge.message, "30/day");
        // Another repository keeps its entry when not measured.
        let other = [figures_of("other", t0, 5, Gain::Unknown)];
        let both = next_index(&index2, &other, &BTreeSet::new(), t0 + 600);
        let names: Vec<&str> = both.repositories.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["app", "other"]);
    }

    #[test]
    fn the_table_has_a_row_per_repository() {
        let text = table(
            &[
                figures_of("app", 0, 1_000, Gain::Gained(10)),
                figures_of("down", 0, 5, Gain::Regressed { from: 9 }),
            ],
            &Thresholds::default(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "repository  total   day  week  month  alerts");
        assert_eq!(lines[1], "acme/app     1000    10     -      -");
        assert_eq!(lines[2], "acme/down       5  down     -      -");
    }
}
