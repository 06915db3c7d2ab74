//! Slack clicks on routed requests' messages, recorded where the leader will read them: in the
//! request's own ledger entry, under a key derived from the click, so Slack's retries and a
//! second click on the same button are recorded once. Any replica may record; only the
//! leader judges, later, whether the clicker may decide.

use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::ledger::{Ledger, LedgerError, Phase};
use crate::notify::{BlockAction, RecordedClick, SLACK_APPROVE_ACTION, slack_ticket};
use crate::webhooks::{ClickRecorded, ClickSink};

/// Most clicks kept per request: enough for every plausible approver, and a bound on what a
/// workspace clicking at one message can write into a Secret.
pub const MAX_CLICKS_PER_REQUEST: usize = 50;

/// Records verified clicks in the ledger and rings the decider.
pub struct ClickRecorder {
    ledger: Ledger,
    doorbell: Arc<Notify>,
}

impl ClickRecorder {
    pub fn new(ledger: Ledger, doorbell: Arc<Notify>) -> Self {
        Self { ledger, doorbell }
    }

    async fn record_click(&self, click: BlockAction) -> Result<ClickRecorded, String> {
        let ignored = |reason: String| Ok(ClickRecorded::Ignored { reason });
        let (Some(channel), Some(ts)) = (click.channel_id.as_deref(), click.message_ts.as_deref())
        else {
            return ignored("the click names no channel and message".to_owned());
        };
        // The buttons carry the entry's name; anything else was not posted by this operator.
        let name = click.value.as_str();
        if !is_entry_name(name) {
            return ignored("the button does not name a routed request".to_owned());
        }
        let (entry, clicks) = match self.ledger.named_with_clicks(name).await {
            Ok(Some(found)) => found,
            Ok(None) | Err(LedgerError::Foreign(_)) => {
                return ignored(format!("{name} is not a routed request"));
            }
            Err(error) => return Err(error.to_string()),
        };
        if entry.phase != Phase::Routed {
            return ignored(format!(
                "request {} no longer waits for an answer ({})",
                entry.request_id,
                entry.phase.as_str()
            ));
        }
        let on_its_message = entry
            .route
            .as_ref()
            .and_then(|route| route.ticket.as_deref())
            == Some(slack_ticket(channel, ts).as_str());
        if !on_its_message {
            return ignored(format!(
                "the click is not on request {}'s message",
                entry.request_id
            ));
        }
        let key = click_key(name, channel, ts, &click.user_id, &click.action_id);
        if Ledger::click_key_held(&clicks, &key) {
            return Ok(ClickRecorded::AlreadyRecorded);
        }
        if clicks.len() >= MAX_CLICKS_PER_REQUEST {
            return ignored(format!(
                "request {} already holds {MAX_CLICKS_PER_REQUEST} answers",
                entry.request_id
            ));
        }
        let recorded = RecordedClick {
            user_id: click.user_id.clone(),
            approve: click.action_id == SLACK_APPROVE_ACTION,
            at: Utc::now(),
        };
        self.ledger
            .add_click(name, &key, &recorded)
            .await
            .map_err(|error| error.to_string())?;
        self.doorbell.notify_one();
        Ok(ClickRecorded::Recorded)
    }
}

impl ClickSink for ClickRecorder {
    fn record(&self, click: BlockAction) -> BoxFuture<'_, Result<ClickRecorded, String>> {
        Box::pin(self.record_click(click))
    }
}

fn is_entry_name(name: &str) -> bool {
    name.len() <= 63
        && name.strip_prefix("opal-request-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// The same member clicking the same button of the same message always gives the same key.
fn click_key(name: &str, channel: &str, ts: &str, user: &str, action: &str) -> String {
    let digest = Sha256::digest([name, channel, ts, user, action].join("\n").as_bytes());
    hex::encode(digest)[..24].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entry_names_are_accepted_as_button_values() {
        for name in ["opal-request-req-1", "opal-request-0a1b2c"] {
            assert!(is_entry_name(name), "{name}");
        }
        for name in [
            "",
            "opal-request-",
            "opal-request-Req",
            "opal-request-a/b",
            "opal-credentials",
            &format!("opal-request-{}", "a".repeat(51)),
        ] {
            assert!(!is_entry_name(name), "{name}");
        }
    }

    #[test]
    fn click_keys_differ_by_every_part_and_are_secret_data_keys() {
        let parts = ["opal-request-r1", "C1", "1.000001", "U1", "approve"];
        let key = |parts: [&str; 5]| click_key(parts[0], parts[1], parts[2], parts[3], parts[4]);
        let base = key(parts);
        assert_eq!(base, key(parts));
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()) && base.len() == 24);
        for index in 0..parts.len() {
            let mut changed = parts;
            changed[index] = "other";
            assert_ne!(key(changed), base, "part {index}");
        }
    }
}
