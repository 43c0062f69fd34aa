//! Docker Hub's request budget: `X-RateLimit-Limit/Remaining/Reset`, read
//! from every answer, decide whether one more request may be sent now.
//!
//! [`BudgetState`] holds the rules and is pure (time is passed in), so they
//! are unit-tested; [`Budget`] shares it between a run's requests and wakes
//! them when an answer changes what they may do. No request is sent that the
//! window's remaining budget cannot pay for, counting those still in flight;
//! until the first answer tells the budget, one request at a time. A 429
//! holds every request until the time the Hub names.

use super::pace::Pace;
use reqwest::header::HeaderMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// `X-RateLimit-Reset` is in whole seconds and the clocks differ: a window
/// is taken to end this long after the time the Hub names.
const RESET_SLACK: Duration = Duration::from_secs(1);

/// `X-RateLimit-*` of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RateHeaders {
    pub(super) limit: u64,
    pub(super) remaining: u64,
    /// Unix time at which the window ends.
    pub(super) reset: u64,
}

impl RateHeaders {
    pub(super) fn read(headers: &HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: number("x-ratelimit-limit")?,
            remaining: number("x-ratelimit-remaining")?,
            reset: number("x-ratelimit-reset")?,
        })
    }
}

/// One rate-limit window as far as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    /// The Hub's `X-RateLimit-Reset` for it.
    reset: u64,
    /// When it ends here; `None` once it has (the next one is unknown until
    /// an answer names it).
    ends: Option<Instant>,
    /// The most requests the Hub said were used in it.
    used: u64,
    /// Our requests that count in it.
    sent: u64,
}

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Go,
    /// The window is spent (or a 429 holds everything): not before this long.
    Wait(Duration),
    /// Until an answer says more (the first answer of a run, or the new
    /// window's).
    WaitForAnswer,
}

/// The budget's state: pure, so its rules are unit-tested.
#[derive(Debug, Default)]
pub(super) struct BudgetState {
    /// `X-RateLimit-Limit`, once an answer has said.
    pub(super) limit: Option<u64>,
    window: Option<Window>,
    /// Requests sent and not answered yet.
    in_flight: u64,
    /// Whether any answer came back: before that, one request at a time.
    answered: bool,
    /// A 429's `Retry-After`: nothing is sent before.
    hold_until: Option<Instant>,
}

impl BudgetState {
    /// Requests the current window can still pay for; `None` when unknown
    /// (no answer said, or the Hub sends no rate-limit headers).
    pub(super) fn remaining(&self) -> Option<u64> {
        let window = self.window.as_ref()?;
        Some(self.limit?.saturating_sub(window.used.max(window.sent)))
    }

    fn admission(&mut self, now: Instant) -> Admission {
        if let Some(until) = self.hold_until {
            if until > now {
                return Admission::Wait(until - now);
            }
            self.hold_until = None;
        }
        if !self.answered && self.in_flight > 0 {
            return Admission::WaitForAnswer;
        }
        let in_flight = self.in_flight;
        if let Some(window) = self.window.as_mut() {
            if window.ends.is_some_and(|ends| ends <= now) {
                // A new window: what is still in flight may count in it.
                window.ends = None;
                window.used = 0;
                window.sent = in_flight;
            }
        }
        match (self.remaining(), self.window.as_ref().and_then(|w| w.ends)) {
            (Some(0), Some(ends)) => Admission::Wait(ends.saturating_duration_since(now)),
            (Some(0), None) => Admission::WaitForAnswer,
            _ => Admission::Go,
        }
    }

    fn send(&mut self) {
        self.in_flight += 1;
        if let Some(window) = self.window.as_mut() {
            window.sent += 1;
        }
    }

    /// An answer (`answered`: an HTTP answer, not a transport error) and
    /// what it said about the budget.
    fn settle(
        &mut self,
        answered: bool,
        rate: Option<RateHeaders>,
        hold: Option<Duration>,
        now: Instant,
        now_unix: f64,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answered |= answered;
        if let Some(rate) = rate {
            self.limit = Some(rate.limit);
            let used = rate.limit.saturating_sub(rate.remaining);
            match self.window.as_mut() {
                // Counted in a window already over.
                Some(window) if rate.reset < window.reset => {}
                Some(window) if rate.reset == window.reset => {
                    if window.ends.is_some() {
                        window.used = window.used.max(used);
                    }
                }
                _ => {
                    // A new window: this request counts in it, and those
                    // still in flight may (or, when we saw the last one end,
                    // everything sent since).
                    let sent = match &self.window {
                        Some(window) if window.ends.is_none() => window.sent,
                        _ => self.in_flight + 1,
                    };
                    self.window = Some(Window {
                        reset: rate.reset,
                        ends: Some(
                            now + Duration::from_secs_f64((rate.reset as f64 - now_unix).max(0.0))
                                + RESET_SLACK,
                        ),
                        used,
                        sent,
                    });
                }
            }
        }
        if let Some(hold) = hold {
            let until = now + hold;
            if self.hold_until.is_none_or(|current| current < until) {
                self.hold_until = Some(until);
            }
        }
    }
}

/// The request budget of one run, shared by all its requests.
#[derive(Debug, Default)]
pub(super) struct Budget {
    state: Mutex<BudgetState>,
    changed: Notify,
}

/// Why a request was not admitted.
pub(super) enum Refused {
    /// The rate limit: the budget is spent (or held) past the time left.
    Budget,
    /// The time before the reserve is too short for a request.
    Time,
}

/// A request admitted by the budget; settled with its answer.
pub(super) struct Ticket<'a> {
    budget: &'a Budget,
    settled: bool,
}

impl Ticket<'_> {
    pub(super) fn settle(
        mut self,
        answered: bool,
        rate: Option<RateHeaders>,
        hold: Option<Duration>,
    ) {
        self.settled = true;
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.budget
            .lock()
            .settle(answered, rate, hold, Instant::now(), now_unix);
        self.budget.changed.notify_waiters();
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = self.budget.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            drop(state);
            self.budget.changed.notify_waiters();
        }
    }
}

impl Budget {
    pub(super) fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the budget can pay for one more request, or says why it
    /// cannot within the time `pace` leaves.
    pub(super) async fn admit(
        &self,
        pace: &Pace<'_>,
        expected: usize,
    ) -> Result<Ticket<'_>, Refused> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let room = pace.room(expected);
            let needed = pace.needed();
            let admission = {
                let mut state = self.lock();
                let admission = state.admission(Instant::now());
                if admission == Admission::Go {
                    if room < needed {
                        return Err(Refused::Time);
                    }
                    state.send();
                    return Ok(Ticket {
                        budget: self,
                        settled: false,
                    });
                }
                admission
            };
            match admission {
                Admission::Go => unreachable!("returned above"),
                Admission::Wait(wait) => {
                    if wait + needed >= room {
                        return Err(Refused::Budget);
                    }
                    tokio::time::sleep(wait).await;
                }
                Admission::WaitForAnswer => {
                    if room < needed {
                        return Err(Refused::Time);
                    }
                    let _ = tokio::time::timeout(room - needed, notified).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_764_268_500;
    const T0F: f64 = T0 as f64;

    fn rate(limit: u64, remaining: u64, reset: u64) -> Option<RateHeaders> {
        Some(RateHeaders {
            limit,
            remaining,
            reset,
        })
    }

    /// Sends as many requests as the state admits now.
    fn send_all(state: &mut BudgetState, now: Instant) -> u64 {
        let mut sent = 0;
        while state.admission(now) == Admission::Go {
            state.send();
            sent += 1;
            assert!(sent < 10_000, "the budget never says stop");
        }
        sent
    }

    #[test]
    fn one_request_until_the_first_answer_tells_the_budget() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        assert_eq!(state.admission(now), Admission::Go);
        state.send();
        assert_eq!(state.admission(now), Admission::WaitForAnswer);
        state.settle(true, rate(10, 9, T0 + 60), None, now, T0F);
        assert_eq!(state.remaining(), Some(9));
        assert_eq!(send_all(&mut state, now), 9);
        assert_eq!(state.in_flight, 9);
        // Answers in any order never give back what is spent.
        for remaining in [0, 5, 3, 8, 1, 2, 4, 6, 7] {
            state.settle(true, rate(10, remaining, T0 + 60), None, now, T0F);
            assert_eq!(state.remaining(), Some(0));
        }
        match state.admission(now) {
            Admission::Wait(wait) => {
                assert!(wait >= Duration::from_secs(60) && wait <= Duration::from_secs(61));
            }
            other => panic!("{other:?}"),
        }
        // Without any answer ever carrying headers, nothing is limited.
        let mut free = BudgetState::default();
        free.send();
        free.settle(true, None, None, now, T0F);
        for _ in 0..1_000 {
            assert_eq!(free.admission(now), Admission::Go);
            free.send();
        }
    }

    #[test]
    fn requests_in_flight_are_paid_for_before_they_are_counted() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, rate(180, 179, T0 + 60), None, now, T0F);
        assert_eq!(send_all(&mut state, now), 179);
        // The Hub had counted only 20 of them when it answered one.
        state.settle(true, rate(180, 159, T0 + 60), None, now, T0F);
        assert_eq!(state.remaining(), Some(0));
        assert_eq!(state.admission(now), {
            let ends = state.window.as_ref().and_then(|w| w.ends).expect("known");
            Admission::Wait(ends - now)
        });
        // Someone else spends the same budget: the Hub's word wins.
        let mut shared = BudgetState::default();
        shared.send();
        shared.settle(true, rate(180, 100, T0 + 60), None, now, T0F);
        assert_eq!(shared.remaining(), Some(100));
    }

    #[test]
    fn a_new_window_refills_the_budget() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, rate(10, 9, T0 + 2), None, now, T0F);
        assert_eq!(send_all(&mut state, now), 9);
        for _ in 0..9 {
            state.settle(true, rate(10, 0, T0 + 2), None, now, T0F);
        }
        assert!(matches!(state.admission(now), Admission::Wait(_)));
        // Past the reset (plus slack): a new window, known once answered.
        let later = now + Duration::from_secs(4);
        assert_eq!(state.admission(later), Admission::Go);
        state.send();
        state.settle(true, rate(10, 9, T0 + 62), None, later, T0F + 4.0);
        assert_eq!(state.remaining(), Some(9));
        // A late answer from the old window changes nothing.
        state.settle(true, rate(10, 0, T0 + 2), None, later, T0F + 4.0);
        assert_eq!(state.remaining(), Some(9));
    }

    #[test]
    fn a_429_holds_every_request_until_its_time() {
        let now = Instant::now();
        let mut state = BudgetState::default();
        state.send();
        state.settle(true, None, Some(Duration::from_secs(60)), now, T0F);
        match state.admission(now) {
            Admission::Wait(wait) => assert_eq!(wait, Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
        state.settle(true, None, Some(Duration::from_secs(5)), now, T0F);
        assert_eq!(
            state.admission(now + Duration::from_secs(30)),
            Admission::Wait(Duration::from_secs(30))
        );
        assert_eq!(
            state.admission(now + Duration::from_secs(61)),
            Admission::Go
        );
    }

    #[test]
    fn rate_headers_need_all_three() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", "180".parse().expect("valid"));
        headers.insert("x-ratelimit-remaining", "17".parse().expect("valid"));
        assert_eq!(RateHeaders::read(&headers), None);
        headers.insert("x-ratelimit-reset", "1764268560".parse().expect("valid"));
        assert_eq!(RateHeaders::read(&headers), rate(180, 17, 1_764_268_560));
    }
}
