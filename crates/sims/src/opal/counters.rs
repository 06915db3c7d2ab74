//! Per-call counters tests read to assert what a client did (how many calls, which routes,
//! which answers) without timing anything.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A copy of the counters at one moment. Routes are written like `POST /groups/{group_id}/users/{user_id}`
/// (the spec's path template without the `/v1` prefix); requests no route matched count under
/// `<METHOD> <unmatched>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Every request received (answered or dropped).
    pub total: u64,
    /// Requests per route.
    pub by_route: BTreeMap<String, u64>,
    /// Answers per status code (dropped connections have none).
    pub by_status: BTreeMap<u16, u64>,
    /// Answers per route and status code.
    pub by_route_status: BTreeMap<(String, u16), u64>,
    /// 429 answers of any origin (rate limiter or injected).
    pub too_many_requests: u64,
    /// 429 answers the rate limiter gave.
    pub rate_limited: u64,
    /// Faults injected (random or scripted), of every kind.
    pub injected_faults: u64,
    /// Connections closed without an answer.
    pub dropped_connections: u64,
    /// Requests acted on whose answer was then withheld (the connection was dropped instead).
    pub lost_answers: u64,
    /// Writes the handlers acted on, per `METHOD /v1/concrete/path?query`: a count above one is
    /// the same change asked for again.
    pub handled_writes: BTreeMap<String, u64>,
    /// Lost answers per write, keyed like `handled_writes`.
    pub lost_write_answers: BTreeMap<String, u64>,
}

impl CounterSnapshot {
    /// Requests to one route, e.g. `"GET /groups"`.
    pub fn calls(&self, route: &str) -> u64 {
        self.by_route.get(route).copied().unwrap_or(0)
    }

    /// Answers with one status code.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Answers to one route with one status code.
    pub fn calls_with_status(&self, route: &str, status: u16) -> u64 {
        self.by_route_status
            .get(&(route.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Requests with method POST, PUT or DELETE.
    pub fn writes(&self) -> u64 {
        self.by_route
            .iter()
            .filter(|(route, _)| is_write_method(route.split(' ').next().unwrap_or_default()))
            .map(|(_, count)| count)
            .sum()
    }

    /// Writes acted on more than once where a lost answer does not account for each repeat: a
    /// client that hears every answer has no reason to ask for the same change twice.
    pub fn unexplained_repeats(&self) -> Vec<UnexplainedRepeat> {
        self.handled_writes
            .iter()
            .filter_map(|(write, &handled)| {
                let lost = self.lost_write_answers.get(write).copied().unwrap_or(0);
                (handled > lost + 1).then(|| UnexplainedRepeat {
                    write: write.clone(),
                    handled,
                    lost,
                })
            })
            .collect()
    }

    /// Writes acted on, counting repeats.
    pub fn handled_write_count(&self) -> u64 {
        self.handled_writes.values().sum()
    }
}

/// A write the handlers acted on more often than lost answers can explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnexplainedRepeat {
    /// `METHOD /v1/concrete/path?query`.
    pub write: String,
    /// Times the change was acted on.
    pub handled: u64,
    /// Times its answer was lost.
    pub lost: u64,
}

pub(crate) fn is_write_method(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "DELETE" | "PATCH")
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    inner: Mutex<CounterSnapshot>,
}

impl Counters {
    fn lock(&self) -> MutexGuard<'_, CounterSnapshot> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn request(&self, route: &str) {
        let mut counters = self.lock();
        counters.total += 1;
        *counters.by_route.entry(route.to_owned()).or_default() += 1;
    }

    pub(crate) fn answered(&self, route: &str, status: u16) {
        let mut counters = self.lock();
        *counters.by_status.entry(status).or_default() += 1;
        *counters
            .by_route_status
            .entry((route.to_owned(), status))
            .or_default() += 1;
        if status == 429 {
            counters.too_many_requests += 1;
        }
    }

    pub(crate) fn rate_limited(&self) {
        self.lock().rate_limited += 1;
    }

    pub(crate) fn injected_fault(&self) {
        self.lock().injected_faults += 1;
    }

    pub(crate) fn handled_write(&self, write: &str) {
        *self
            .lock()
            .handled_writes
            .entry(write.to_owned())
            .or_default() += 1;
    }

    /// `write` is `None` when the lost answer was a read's.
    pub(crate) fn lost_answer(&self, write: Option<&str>) {
        let mut counters = self.lock();
        counters.lost_answers += 1;
        if let Some(write) = write {
            *counters
                .lost_write_answers
                .entry(write.to_owned())
                .or_default() += 1;
        }
    }

    pub(crate) fn dropped(&self) {
        self.lock().dropped_connections += 1;
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        self.lock().clone()
    }

    pub(crate) fn reset(&self) {
        *self.lock() = CounterSnapshot::default();
    }
}
