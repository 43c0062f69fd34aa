//! The time gate of a run's Docker Hub requests: no request starts once the
//! deadline, minus the reserve the caller keeps for indexing what was (and
//! is being) fetched, leaves less than a round trip.

use crate::retry::Deadline;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The shortest time worth starting a request in.
pub(super) const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// When a run may still start a request: not once the deadline is within
/// the reserve kept for indexing what was (and is being) fetched, nor when
/// what is left is shorter than a round trip.
pub(super) struct Pace<'a> {
    deadline: Deadline,
    reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync),
    /// Documents fetched so far.
    fetched: AtomicUsize,
    /// Documents the requests in flight may bring.
    pub(super) pending: AtomicUsize,
    /// Round trips of answered requests, smoothed.
    rtt: Mutex<Option<Duration>>,
}

impl<'a> Pace<'a> {
    pub(super) fn new(
        deadline: Deadline,
        reserve: &'a (dyn Fn(usize) -> Duration + Send + Sync),
    ) -> Self {
        Self {
            deadline,
            reserve,
            fetched: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            rtt: Mutex::new(None),
        }
    }

    /// Time left before the reserve, for a request that may bring `expected`
    /// more documents.
    pub(super) fn room(&self, expected: usize) -> Duration {
        let documents =
            self.fetched.load(Ordering::SeqCst) + self.pending.load(Ordering::SeqCst) + expected;
        self.deadline
            .remaining()
            .saturating_sub((self.reserve)(documents))
    }

    pub(super) fn rtt(&self) -> Option<Duration> {
        *self.rtt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a request needs to be worth starting.
    pub(super) fn needed(&self) -> Duration {
        self.rtt().unwrap_or_default().max(MIN_ATTEMPT)
    }

    pub(super) fn observe(&self, round_trip: Duration) {
        let mut rtt = self.rtt.lock().unwrap_or_else(|e| e.into_inner());
        *rtt = Some(match *rtt {
            None => round_trip,
            Some(previous) => previous.mul_f64(0.7) + round_trip.mul_f64(0.3),
        });
    }

    pub(super) fn add_fetched(&self, documents: usize) {
        self.fetched.fetch_add(documents, Ordering::SeqCst);
    }
}
