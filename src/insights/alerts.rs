//! When to tell a maintainer something: pulls that spike (abuse, a CI
//! loop, a mirror gone wrong), a counter that stalls, a count that goes
//! backwards. Each condition is an episode: one alert when it starts, one
//! when it ends, however many runs see it in between.
//!
//! Pure: the conditions come from a repository's measurements ([`Past`]),
//! the episodes from the state the previous run left ([`RepoState`]); where
//! that state is kept is [`super`]'s job, how alerts read and are sent
//! [`super::notify`]'s.

use super::gains::{DAY, Gain, Measurement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The thresholds (SSM `insights/*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// `insights/spike_factor`: a day's gain this many times the median
    /// daily gain of the 7 days before is a spike...
    pub spike_factor: f64,
    /// `insights/spike_min_pulls`: ...if it is at least this many pulls.
    pub spike_min_pulls: u64,
    /// `insights/stall_min_daily_pulls`: a day without a single pull is a
    /// stall when the 7 days before averaged at least this many a day.
    pub stall_min_daily_pulls: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            spike_factor: 5.0,
            spike_min_pulls: 1000,
            stall_min_daily_pulls: 100,
        }
    }
}

/// The factor is never NaN (the settings refuse one), so equality is total.
impl Eq for Thresholds {}

/// The look-back offsets (seconds before the run) a run reads from the
/// archive: just before it (the previous measurement), each of the 8 days
/// before (the day's gain and the 7 days before it), and 30 days.
pub const LOOK_BACKS: [i64; 10] = [
    1,
    DAY,
    2 * DAY,
    3 * DAY,
    4 * DAY,
    5 * DAY,
    6 * DAY,
    7 * DAY,
    8 * DAY,
    30 * DAY,
];

/// What the archive says about one repository before a measurement: the
/// measurement standing for each of [`LOOK_BACKS`] (`None`: none within the
/// tolerance).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Past(pub BTreeMap<i64, Measurement>);

impl Past {
    /// The measurement standing for `seconds` before the run.
    pub fn ago(&self, seconds: i64) -> Option<Measurement> {
        self.0.get(&seconds).copied()
    }
}

/// The three conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Spike,
    Stall,
    Regression,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Spike, Kind::Stall, Kind::Regression];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Stall => "stall",
            Kind::Regression => "regression",
        }
    }
}

/// Whether each condition holds now; `None` where the archive cannot tell
/// (too little history): the episode then stays as it was.
pub fn conditions(now: Measurement, past: &Past, t: &Thresholds) -> [(Kind, Option<bool>); 3] {
    let day = Gain::between(now.pulls, past.ago(DAY));
    // The gain of each of the 7 days before the last 24 hours.
    let daily: Vec<Option<u64>> = (1..=7)
        .map(|k| {
            let end = past.ago(k * DAY)?;
            Gain::between(end.pulls, past.ago((k + 1) * DAY)).known()
        })
        .collect();
    let known: Vec<u64> = daily.iter().flatten().copied().collect();

    let spike = match day {
        Gain::Unknown => None,
        Gain::Regressed { .. } => Some(false),
        Gain::Gained(gain) if gain < t.spike_min_pulls => Some(false),
        // At least 4 of the 7 days known: a median of fewer says little.
        Gain::Gained(gain) => {
            (known.len() >= 4).then(|| gain as f64 >= t.spike_factor * median(&known))
        }
    };

    let week_before = match (past.ago(DAY), past.ago(8 * DAY)) {
        (Some(end), Some(start)) => Gain::between(end.pulls, Some(start)).known(),
        _ => None,
    };
    let stall = match day {
        Gain::Unknown => None,
        Gain::Gained(0) => week_before.map(|n| n >= 7 * t.stall_min_daily_pulls),
        _ => Some(false),
    };

    // Lower than the measurement before, or than a day ago: the episode
    // lasts until the count is back above where it was a day earlier.
    let previous = past.ago(LOOK_BACKS[0]);
    let regression = match (previous, past.ago(DAY)) {
        (None, None) => None,
        (previous, day_ago) => Some(
            [previous, day_ago]
                .iter()
                .flatten()
                .any(|before| now.pulls < before.pulls),
        ),
    };
    [
        (Kind::Spike, spike),
        (Kind::Stall, stall),
        (Kind::Regression, regression),
    ]
}

fn median(values: &[u64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[middle - 1] as f64 + sorted[middle] as f64) / 2.0
    } else {
        sorted[middle] as f64
    }
}

/// The episodes of one repository, as the last run that looked left them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoState {
    /// The time of the latest measurement evaluated: an older or equal one
    /// (a retried event, a late run) changes nothing.
    pub as_of: i64,
    /// Each open episode and when it started.
    #[serde(default)]
    pub open: BTreeMap<Kind, i64>,
}

/// An episode starting or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    Started,
    Ended,
}

/// One alert's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: Kind,
    pub edge: Edge,
    /// When the episode started.
    pub since: i64,
}

/// Moves `state` to the conditions measured at `at`; the episodes that
/// started or ended. A measurement not newer than the state's changes
/// nothing, so a retried or overlapping run alerts nothing twice.
pub fn step(
    state: &mut RepoState,
    at: i64,
    conditions: &[(Kind, Option<bool>)],
) -> Vec<Transition> {
    if at <= state.as_of {
        return Vec::new();
    }
    state.as_of = at;
    let mut transitions = Vec::new();
    for &(kind, holds) in conditions {
        match (holds, state.open.get(&kind).copied()) {
            (Some(true), None) => {
                state.open.insert(kind, at);
                transitions.push(Transition {
                    kind,
                    edge: Edge::Started,
                    since: at,
                });
            }
            (Some(false), Some(since)) => {
                state.open.remove(&kind);
                transitions.push(Transition {
                    kind,
                    edge: Edge::Ended,
                    since,
                });
            }
            _ => {}
        }
    }
    transitions
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100 * DAY;

    fn m(at: i64, pulls: u64) -> Measurement {
        Measurement { at, pulls }
    }

    /// `counts[k]`: the count `k` days before NOW (k = 1..=8), 10 minutes
    /// earlier than the exact look-back time; `counts[0]` the previous run's.
    fn past(counts: [Option<u64>; 9]) -> Past {
        let mut past = Past::default();
        if let Some(pulls) = counts[0] {
            past.0.insert(1, m(NOW - 300, pulls));
        }
        for (k, count) in counts.iter().enumerate().skip(1) {
            if let Some(pulls) = count {
                past.0
                    .insert(k as i64 * DAY, m(NOW - k as i64 * DAY - 600, *pulls));
            }
        }
        past
    }

    /// A steady 1,000 a day for 8 days up to a day ago.
    fn steady(previous: u64) -> Past {
        let day_ago = 100_000u64;
        past([
            Some(previous),
            Some(day_ago),
            Some(day_ago - 1000),
            Some(day_ago - 2000),
            Some(day_ago - 3000),
            Some(day_ago - 4000),
            Some(day_ago - 5000),
            Some(day_ago - 6000),
            Some(day_ago - 7000),
        ])
    }

    fn holds(now: u64, past: &Past) -> [Option<bool>; 3] {
        conditions(m(NOW, now), past, &Thresholds::default()).map(|(_, holds)| holds)
    }

    #[test]
    fn a_day_five_times_the_median_and_over_a_thousand_is_a_spike() {
        // Median 1,000 a day: 5,000 is a spike, 4,999 is not.
        assert_eq!(
            holds(105_000, &steady(104_000)),
            [Some(true), Some(false), Some(false)]
        );
        assert_eq!(holds(104_999, &steady(104_000))[0], Some(false));
        // A quiet repository: 5× a median of 10 is not enough under 1,000.
        let quiet = past([
            Some(1),
            Some(80),
            Some(70),
            Some(60),
            Some(50),
            Some(40),
            Some(30),
            Some(20),
            Some(10),
        ]);
        assert_eq!(holds(80 + 999, &quiet)[0], Some(false));
        assert_eq!(holds(80 + 1000, &quiet)[0], Some(true));
        // Fewer than 4 known days before: cannot tell.
        let young = past([
            Some(1),
            Some(80),
            Some(70),
            Some(60),
            Some(50),
            None,
            None,
            None,
            None,
        ]);
        assert_eq!(holds(80 + 5000, &young)[0], None);
        assert_eq!(holds(80 + 5000, &Past::default()), [None, None, None]);
    }

    #[test]
    fn a_day_without_pulls_after_a_busy_week_is_a_stall() {
        assert_eq!(
            holds(100_000, &steady(100_000)),
            [Some(false), Some(true), Some(false)]
        );
        // One pull is not a stall.
        assert_eq!(holds(100_001, &steady(100_001))[1], Some(false));
        // 99 a day before: not busy enough to call it a stall.
        let slow = past([
            Some(693),
            Some(693),
            None,
            None,
            None,
            None,
            None,
            None,
            Some(0),
        ]);
        assert_eq!(holds(693, &slow)[1], Some(false));
        let busy = past([
            Some(700),
            Some(700),
            None,
            None,
            None,
            None,
            None,
            None,
            Some(0),
        ]);
        assert_eq!(holds(700, &busy)[1], Some(true));
        // No week before to compare with: cannot tell.
        let young = past([
            Some(700),
            Some(700),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ]);
        assert_eq!(holds(700, &young)[1], None);
    }

    #[test]
    fn a_count_lower_than_before_is_a_regression_until_it_is_back_above_a_day_ago() {
        assert_eq!(holds(100_500, &steady(100_600))[2], Some(true));
        assert_eq!(
            holds(99_999, &steady(99_999))[2],
            Some(true),
            "below a day ago"
        );
        assert_eq!(holds(100_000, &steady(100_000))[2], Some(false));
        let only_previous = past([Some(10), None, None, None, None, None, None, None, None]);
        assert_eq!(holds(9, &only_previous)[2], Some(true));
        assert_eq!(holds(10, &only_previous)[2], Some(false));
    }

    #[test]
    fn an_episode_alerts_once_when_it_starts_and_once_when_it_ends() {
        let mut state = RepoState::default();
        let spike = |holds| [(Kind::Spike, holds), (Kind::Stall, Some(false))];
        let started = step(&mut state, 10, &spike(Some(true)));
        assert_eq!(
            started,
            [Transition {
                kind: Kind::Spike,
                edge: Edge::Started,
                since: 10
            }]
        );
        // Later runs inside the episode, an unknown, a retried run: silence.
        assert!(step(&mut state, 20, &spike(Some(true))).is_empty());
        assert!(step(&mut state, 30, &spike(None)).is_empty());
        assert!(
            step(&mut state, 30, &spike(Some(false))).is_empty(),
            "not newer"
        );
        assert!(
            step(&mut state, 25, &spike(Some(false))).is_empty(),
            "older"
        );
        let ended = step(&mut state, 40, &spike(Some(false)));
        assert_eq!(
            ended,
            [Transition {
                kind: Kind::Spike,
                edge: Edge::Ended,
                since: 10
            }]
        );
        assert!(step(&mut state, 50, &spike(Some(false))).is_empty());
        // State survives a cold start as JSON.
        let json = serde_json::to_string(&state).expect("json");
        let back: RepoState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, state);
    }
}
