//! Pending requests that no rule matched. Judging one gathers its facts (the requester in
//! Opal and HR, each target, on-call lookups in PagerDuty), and a request left to Opal's own
//! reviewers can stay pending for days, so a pass judges it again only when the rules changed
//! or [`RECHECK`] has passed: the time of day and who is on call still get their say.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a request no rule matched is left alone while the rules stay the same.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Request ids no rule matched, with the rules' fingerprint and when.
#[derive(Default)]
pub struct UnmatchedMemo {
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

impl UnmatchedMemo {
    /// Whether `request_id` was found unmatched by these rules less than [`RECHECK`] ago.
    pub fn fresh(&self, request_id: &str, rules: u64, now: Instant) -> bool {
        self.lock().get(request_id).is_some_and(|(seen_rules, at)| {
            *seen_rules == rules && now.saturating_duration_since(*at) < RECHECK
        })
    }

    /// Records that no rule in `rules` matched `request_id` at `now`.
    pub fn remember(&self, request_id: &str, rules: u64, now: Instant) {
        self.lock().insert(request_id.to_owned(), (rules, now));
    }

    /// Forgets every request not in `pending`, so the memo never outgrows Opal's queue.
    pub fn keep_only<'a>(&self, pending: impl IntoIterator<Item = &'a str>) {
        let pending: std::collections::HashSet<&str> = pending.into_iter().collect();
        self.lock().retain(|id, _| pending.contains(id.as_str()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        // The map holds no invariant a panicking holder could break.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmatched_request_is_left_alone_until_the_rules_change_or_a_minute_passes() {
        let memo = UnmatchedMemo::default();
        let start = Instant::now();
        assert!(!memo.fresh("r1", 7, start));
        memo.remember("r1", 7, start);
        assert!(memo.fresh("r1", 7, start + Duration::from_secs(59)));
        assert!(!memo.fresh("r1", 7, start + RECHECK));
        assert!(!memo.fresh("r1", 8, start + Duration::from_secs(1)));
        assert!(!memo.fresh("r2", 7, start));
        memo.keep_only(["r2"]);
        assert!(!memo.fresh("r1", 7, start + Duration::from_secs(1)));
    }
}
