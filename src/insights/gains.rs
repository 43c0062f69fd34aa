//! Pulls gained over a day, a week and a month, from the archive's
//! measurements: what Docker Hub's lifetime total does not show.
//!
//! A gain is this measurement's count minus the count of the archived
//! measurement nearest before the look-back time, if one lies within
//! [`TOLERANCE`] of it (budget rotation leaves a repository out of some
//! runs, so the exact time is rarely there). Without one the gain is
//! unknown, never 0; and a count lower than the earlier one is a
//! regression (Docker Hub's counter went backwards), never a negative gain.

use serde::Serialize;

pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;
/// How far before a look-back time a measurement may lie and still stand
/// for it.
pub const TOLERANCE: i64 = HOUR;

/// One measurement of one repository: when (Unix seconds) and its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Measurement {
    pub at: i64,
    pub pulls: u64,
}

/// The change of a count over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gain {
    /// No measurement near the look-back time.
    Unknown,
    Gained(u64),
    /// The count went down from `from`.
    Regressed {
        from: u64,
    },
}

impl Gain {
    /// `now` against the measurement `before` (if any) standing for the
    /// look-back time.
    pub fn between(now: u64, before: Option<Measurement>) -> Self {
        match before {
            None => Gain::Unknown,
            Some(before) if now >= before.pulls => Gain::Gained(now - before.pulls),
            Some(before) => Gain::Regressed { from: before.pulls },
        }
    }

    /// The gain when it is one (not unknown, not a regression).
    pub fn known(self) -> Option<u64> {
        match self {
            Gain::Gained(n) => Some(n),
            _ => None,
        }
    }
}

/// The windows a run reports, with their badge and table names.
pub const WINDOWS: [(&str, i64); 3] = [("day", DAY), ("week", 7 * DAY), ("month", 30 * DAY)];

/// The measurement standing for `target` in `series` (sorted by time): the
/// latest at or before it, if it is within [`TOLERANCE`].
pub fn nearest_before(series: &[Measurement], target: i64) -> Option<Measurement> {
    let after = series.partition_point(|m| m.at <= target);
    let candidate = *series.get(after.checked_sub(1)?)?;
    (candidate.at >= target - TOLERANCE).then_some(candidate)
}

/// The day's, week's and month's gains of one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gains {
    pub day: Gain,
    pub week: Gain,
    pub month: Gain,
}

impl Gains {
    /// `now` against `lookup(window)`, the measurement standing for
    /// `window` seconds before it, for each window.
    pub fn of(now: Measurement, lookup: impl Fn(i64) -> Option<Measurement>) -> Self {
        let [day, week, month] =
            WINDOWS.map(|(_, window)| Gain::between(now.pulls, lookup(window)));
        Self { day, week, month }
    }

    /// `(name, gain)` in [`WINDOWS`] order.
    pub fn named(&self) -> [(&'static str, Gain); 3] {
        [
            (WINDOWS[0].0, self.day),
            (WINDOWS[1].0, self.week),
            (WINDOWS[2].0, self.month),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(at: i64, pulls: u64) -> Measurement {
        Measurement { at, pulls }
    }

    #[test]
    fn the_nearest_measurement_before_a_time_counts_only_within_an_hour() {
        let series = [m(100, 1), m(1000, 2), m(5000, 3)];
        assert_eq!(nearest_before(&series, 1000), Some(m(1000, 2)));
        assert_eq!(nearest_before(&series, 4000), Some(m(1000, 2)));
        // Never one after the time, however close.
        assert_eq!(nearest_before(&series, 99), None);
        assert_eq!(nearest_before(&series, 1000 + TOLERANCE + 1), None);
        assert_eq!(nearest_before(&series, 1000 + TOLERANCE), Some(m(1000, 2)));
        assert_eq!(nearest_before(&[], 1000), None);
    }

    #[test]
    fn gains_are_unknown_without_history_and_a_drop_is_a_regression() {
        let now = m(40 * DAY, 10_000);
        // A day ago (20 minutes earlier than the look-back time: rotation),
        // a week ago, nothing near a month ago.
        let series = [
            m(9 * DAY, 1),
            m(33 * DAY - 100, 9_000),
            m(39 * DAY - 1200, 9_900),
        ];
        let gains = Gains::of(now, |w| nearest_before(&series, now.at - w));
        assert_eq!(gains.day, Gain::Gained(100));
        assert_eq!(gains.week, Gain::Gained(1_000));
        assert_eq!(gains.month, Gain::Unknown);
        assert_eq!(gains.month.known(), None, "unknown is not 0");
        let flat = Gains::of(m(40 * DAY, 9_900), |w| nearest_before(&series, now.at - w));
        assert_eq!(flat.day, Gain::Gained(0));
        let down = Gains::of(m(40 * DAY, 9_899), |w| nearest_before(&series, now.at - w));
        assert_eq!(down.day, Gain::Regressed { from: 9_900 });
        assert_eq!(down.day.known(), None);
        assert_eq!(down.week, Gain::Gained(899));
    }
}
