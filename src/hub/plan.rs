//! What a run asks of Docker Hub, and in what order: the namespace listings
//! it needs, the repositories named one by one, and where in the
//! name-ordered list this run starts (the rotation), so that runs which
//! cannot fetch everything still give every repository its data points.

use super::HubRun;
use super::pace::{MIN_ATTEMPT, Pace};
use crate::image_ref::ImageSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// In listing mode, a namespace none of whose repositories is asked for with
/// `namespace/*` is listed when at least this many of them are named: one
/// page then usually replaces several repository requests.
const LISTING_MIN_NAMED: usize = 3;

/// A namespace listing the run makes.
pub(super) struct ListingJob {
    pub(super) namespace: String,
    /// The `namespace/*` reference that asked for it; `None` for a listing
    /// made only to count repositories named one by one (listing mode).
    pub(super) reference: Option<String>,
    /// The names asked for explicitly in this namespace (listing mode).
    pub(super) named: BTreeSet<String>,
}

/// The references of a run, sorted into what to list and what to fetch.
pub(super) struct Targets {
    /// Repositories named one by one: namespace → names.
    pub(super) explicit: BTreeMap<String, BTreeSet<String>>,
    /// Listings to read first, `namespace/*` ones before listing-mode ones.
    pub(super) listings: Vec<ListingJob>,
}

impl Targets {
    /// Drops duplicate references; in listing mode (`listing_mode`) adds a
    /// listing for each namespace with enough repositories named one by one.
    pub(super) fn new(specs: &[(String, ImageSpec)], listing_mode: bool) -> Self {
        let mut explicit: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut wildcards: BTreeMap<&str, &str> = BTreeMap::new();
        for (reference, spec) in specs {
            match spec {
                ImageSpec::Repository(repository) => {
                    explicit
                        .entry(repository.namespace.clone())
                        .or_default()
                        .insert(repository.name.clone());
                }
                ImageSpec::Namespace(namespace) => {
                    wildcards
                        .entry(namespace.as_str())
                        .or_insert(reference.as_str());
                }
            }
        }

        let mut listings: Vec<ListingJob> = wildcards
            .iter()
            .map(|(namespace, reference)| ListingJob {
                namespace: (*namespace).to_owned(),
                reference: Some((*reference).to_owned()),
                named: if listing_mode {
                    explicit.get(*namespace).cloned().unwrap_or_default()
                } else {
                    BTreeSet::new()
                },
            })
            .collect();
        if listing_mode {
            listings.extend(
                explicit
                    .iter()
                    .filter(|(namespace, names)| {
                        !wildcards.contains_key(namespace.as_str())
                            && names.len() >= LISTING_MIN_NAMED
                    })
                    .map(|(namespace, names)| ListingJob {
                        namespace: namespace.clone(),
                        reference: None,
                        named: names.clone(),
                    }),
            );
        }
        Self { explicit, listings }
    }
}

impl HubRun {
    /// Where this run starts in the name-ordered list of `n` repositories:
    /// `rotation × capacity` (mod `n`), where `capacity` is what a run is
    /// expected to fetch, so consecutive runs (consecutive `rotation`s) that
    /// each fetch about that many cover the list one slice after another.
    pub(super) fn rotation_offset(&self, rotation: u64, n: usize, pace: &Pace<'_>) -> usize {
        if n <= 1 {
            return 0;
        }
        let capacity = self.expected_capacity(n, pace).clamp(1, n as u64);
        ((u128::from(rotation) * u128::from(capacity)) % n as u128) as usize
    }

    /// Repositories this run can expect to fetch: what the rate-limit
    /// budget pays for until the deadline (the window's rest, then a full
    /// window per window length), and what round trips at `concurrency`
    /// fit in the time.
    fn expected_capacity(&self, n: usize, pace: &Pace<'_>) -> u64 {
        let options = &self.client.options;
        let learned = &self.client.learned;
        let room = pace.room(n);
        let (limit, remaining) = {
            let state = self.budget.lock();
            let learned_limit = learned.limit.load(Ordering::SeqCst);
            let limit = state
                .limit
                .or((learned_limit > 0).then_some(learned_limit))
                .unwrap_or(options.expected_rate_limit);
            (limit, state.remaining().unwrap_or(limit))
        };
        let window = options.rate_limit_window.max(Duration::from_secs(1));
        let windows = (room.as_secs_f64() / window.as_secs_f64()).floor() as u64;
        let by_budget = remaining.saturating_add(limit.saturating_mul(windows));
        let learned_rtt = learned.rtt_micros.load(Ordering::SeqCst);
        let rtt = pace
            .rtt()
            .or((learned_rtt > 0).then(|| Duration::from_micros(learned_rtt)));
        let by_time = rtt.map_or(u64::MAX, |rtt| {
            let rounds = room.as_secs_f64() / rtt.max(MIN_ATTEMPT).as_secs_f64();
            (rounds as u64).saturating_mul(options.concurrency as u64)
        });
        by_budget.min(by_time)
    }
}
