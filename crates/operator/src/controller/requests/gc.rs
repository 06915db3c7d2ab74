//! Removes ledger entries that have done their work. An entry keeps a pending request from
//! being decided twice, so it goes only when all of these hold: it was claimed longer ago
//! than `requests.ledgerRetention`; it was carried out or found decided elsewhere; no route
//! or approval window of it is still followed; and Opal, asked again now, no longer shows the
//! request pending (or no longer has it).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::ledger::{Entry, Index, Phase};
use super::{RequestContext, RequestError};
use crate::opal::model::RequestStatus;

/// Whether the entry's own record allows removing it at `now`; Opal is asked afterwards.
fn expired(entry: &Entry, retention: chrono::Duration, now: DateTime<Utc>) -> bool {
    matches!(entry.phase, Phase::Applied | Phase::DecidedElsewhere)
        && entry
            .claimed_at
            .checked_add_signed(retention)
            .is_some_and(|until| until <= now)
}

/// One collection pass; returns how many entries it removed.
pub(super) async fn collect(
    context: &RequestContext,
    retention: chrono::Duration,
) -> Result<u64, RequestError> {
    let ledger = &context.ledger;
    let followed: BTreeSet<String> = ledger
        .listed(Index::Routes)
        .await?
        .into_iter()
        .chain(ledger.listed(Index::Windows).await?)
        .collect();
    let now = Utc::now();
    let mut removed = 0;
    for request_id in ledger.listed(Index::Entries).await? {
        if followed.contains(&request_id) {
            continue;
        }
        match ledger.get(&request_id).await? {
            // Indexed by a claim that never happened, or removed before its index key.
            None => {}
            Some(entry) if !expired(&entry, retention, now) => continue,
            Some(_) => {
                let still_pending = match context.opal.request(&request_id).await {
                    Ok(request) => request.status == RequestStatus::Pending,
                    Err(error) if error.is_not_found() => false,
                    Err(error) => return Err(error.into()),
                };
                if still_pending {
                    continue;
                }
                if !context.leadership.is_leader() {
                    return Err(RequestError::NotLeader(request_id));
                }
                ledger.remove(&request_id).await?;
                removed += 1;
            }
        }
        ledger.index(Index::Entries, &request_id, false).await?;
    }
    context.metrics.request_ledger_removed(removed);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phase: Phase, claimed_at: DateTime<Utc>) -> Entry {
        Entry {
            request_id: "r1".to_owned(),
            phase,
            decided_by: "ops/jit".to_owned(),
            rule: "rule".to_owned(),
            action: "AutoApprove".to_owned(),
            comment: String::new(),
            claimed_at,
            outcome: String::new(),
            route: None,
            grant_at_most_seconds: None,
            window: None,
        }
    }

    #[test]
    fn only_carried_out_entries_past_their_retention_may_go() {
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        let old = now - chrono::Duration::days(2);
        assert!(expired(&entry(Phase::Applied, old), day, now));
        assert!(expired(&entry(Phase::DecidedElsewhere, old), day, now));
        assert!(!expired(&entry(Phase::Applied, now), day, now));
        assert!(!expired(&entry(Phase::Claimed, old), day, now));
        assert!(!expired(&entry(Phase::Routed, old), day, now));
        assert!(!expired(
            &entry(Phase::Applied, old),
            chrono::Duration::MAX,
            now
        ));
    }
}
