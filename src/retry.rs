//! Time budget, backoff and the one rule of which HTTP answers are worth
//! another try, shared by the Docker Hub client, the bulk sink and setup.
//!
//! Every retry loop is bounded twice: by an attempt count, and by the
//! invocation's deadline minus a safety margin, so a run reports what it could
//! not do instead of being killed by the Lambda timeout. The loops themselves
//! differ (budgeted Hub attempts, per-item bulk rounds, fixed setup
//! attempts); only the backoff and [`is_transient`] are shared.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The point in time by which the run must have answered.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn at(at: Instant) -> Self {
        Self { at }
    }

    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    /// From the Lambda context's deadline (milliseconds since the epoch),
    /// keeping `margin` to build and send the response.
    ///
    /// A value before 2001 cannot be an epoch time: `cargo lambda watch`
    /// sends the function timeout itself (600000), so such a value is taken
    /// as the budget in milliseconds.
    pub fn from_epoch_millis(deadline_ms: u64, margin: Duration) -> Self {
        const EPOCH_2001_MS: u64 = 978_307_200_000;
        let budget = if deadline_ms < EPOCH_2001_MS {
            Duration::from_millis(deadline_ms)
        } else {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        };
        Self::after(budget.saturating_sub(margin))
    }

    /// The same deadline, `reserve` earlier: for a phase that must leave
    /// time for the ones after it.
    pub fn less(&self, reserve: Duration) -> Self {
        let at = self.at.checked_sub(reserve).unwrap_or_else(Instant::now);
        Self {
            at: at.min(self.at),
        }
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether `wait` can be spent and still leave `reserve` for the attempt.
    pub fn allows(&self, wait: Duration, reserve: Duration) -> bool {
        self.remaining() > wait + reserve
    }

    /// The per-request timeout: `limit`, shortened to what is left.
    pub fn timeout(&self, limit: Duration) -> Duration {
        limit.min(self.remaining())
    }
}

/// An answer that may well be different if asked again: 408 (request
/// timeout), 429 (too many requests) and every 5xx. Other statuses say
/// something about the request itself. The one list: the Docker Hub client,
/// the bulk sink (per item) and setup all ask here.
pub fn is_transient(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Exponential backoff with jitter: attempt 1 waits about `base`, doubling
/// up to `cap`, each wait drawn from the upper half so clients spread out.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let full = exp.min(cap);
    let half = full / 2;
    half + full.mul_f64(fastrand::f64() * 0.5)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `Retry-After` as Docker Hub sends it: either delta-seconds or, despite
/// RFC 9110, a Unix time. Values past 10^9 can only be the latter.
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let number: u64 = value.trim().parse().ok()?;
    if number >= 1_000_000_000 {
        Some(Duration::from_secs(number.saturating_sub(now_unix)))
    } else {
        Some(Duration::from_secs(number))
    }
}

/// `X-RateLimit-Reset`: the Unix time at which the quota refills.
pub fn parse_rate_limit_reset(value: &str, now_unix: u64) -> Option<Duration> {
    let reset: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(reset.saturating_sub(now_unix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_unix_time() {
        let now = 1_764_268_500;
        assert_eq!(parse_retry_after("60", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1764268560", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("1764268000", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            parse_rate_limit_reset("1764268560", now),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn transient_statuses_are_408_429_and_5xx() {
        let transient: Vec<u16> = (100..600)
            .filter(|&code| reqwest::StatusCode::from_u16(code).is_ok_and(is_transient))
            .collect();
        let mut expected = vec![408, 429];
        expected.extend(500..600);
        assert_eq!(transient, expected);
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let base = Duration::from_millis(200);
        let cap = Duration::from_secs(2);
        for attempt in 1..40 {
            let wait = backoff(attempt, base, cap);
            let full = base.saturating_mul(1 << (attempt - 1).min(16)).min(cap);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn deadline_counts_down_and_bounds_timeouts() {
        let deadline = Deadline::after(Duration::from_secs(10));
        assert!(deadline.remaining() <= Duration::from_secs(10));
        assert!(deadline.remaining() > Duration::from_secs(9));
        assert_eq!(
            deadline.timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(deadline.timeout(Duration::from_secs(60)) <= Duration::from_secs(10));
        assert!(deadline.allows(Duration::from_secs(5), Duration::from_secs(1)));
        assert!(!deadline.allows(Duration::from_secs(9), Duration::from_secs(2)));
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let past = Deadline::from_epoch_millis(now_ms - 5_000, Duration::from_secs(1));
        assert_eq!(past.remaining(), Duration::ZERO);
        let lambda = Deadline::from_epoch_millis(now_ms + 30_000, Duration::from_secs(2));
        assert!(
            lambda.remaining() > Duration::from_secs(27)
                && lambda.remaining() <= Duration::from_secs(28)
        );
        let phase = deadline.less(Duration::from_secs(4));
        assert!(
            phase.remaining() <= Duration::from_secs(6)
                && phase.remaining() > Duration::from_secs(5)
        );
        assert_eq!(
            deadline.less(Duration::from_secs(60)).remaining(),
            Duration::ZERO
        );
        // cargo lambda watch: the timeout itself.
        let emulator = Deadline::from_epoch_millis(600_000, Duration::from_secs(2));
        assert!(
            emulator.remaining() > Duration::from_secs(597)
                && emulator.remaining() <= Duration::from_secs(598)
        );
    }
}
