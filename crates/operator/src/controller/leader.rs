//! Leader election on a `coordination.k8s.io` Lease: only the leader writes to Opal and to
//! status.
//!
//! The leader holds a *tenure* measured on its own monotonic clock from the moment it sent its
//! last successful renewal, and it stops leading when the tenure runs out even if the apiserver
//! never answers. The tenure is shorter than the lease by the grace, and a follower only takes
//! a lease whose record it has watched stay unchanged for a whole lease duration, so the old
//! leader has always stopped before a new one starts — however slow the apiserver is.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the lease lives and who competes for it.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid without renewal: the longest a dead leader blocks a takeover.
    pub duration: Duration,
    /// How long before the lease would expire the leader stops leading if it could not renew:
    /// the margin that covers clock-rate differences and a late renewal.
    pub grace: Duration,
}

impl LeaseSettings {
    /// How long a successful renewal lets the leader act.
    fn tenure(&self) -> Duration {
        self.duration
            .saturating_sub(self.grace)
            .max(Duration::from_millis(500))
    }

    /// How often the lease is renewed or checked: three tries within one tenure.
    fn retry_period(&self) -> Duration {
        (self.tenure() / 3).max(Duration::from_millis(100))
    }
}

/// Whether this process leads now, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tenure {
    Following,
    Until(Instant),
    Always,
}

impl Tenure {
    fn leads(self) -> bool {
        match self {
            Tenure::Following => false,
            Tenure::Until(end) => Instant::now() < end,
            Tenure::Always => true,
        }
    }

    fn end(self) -> Option<Instant> {
        match self {
            Tenure::Until(end) => Some(end),
            _ => None,
        }
    }
}

/// Whether this process currently leads, as a watchable flag that also turns false by itself
/// when the tenure runs out.
#[derive(Clone, Debug)]
pub struct Leadership {
    tenure: watch::Receiver<Tenure>,
    /// Held only by [`Leadership::sole`], so its tenure never closes.
    _fixed: Option<Arc<watch::Sender<Tenure>>>,
}

impl Leadership {
    /// Competes for the lease in the background for as long as the process runs.
    pub fn elect(client: Client, settings: &LeaseSettings) -> Self {
        let (sender, tenure) = watch::channel(Tenure::Following);
        let elector = Elector {
            leases: Api::namespaced(client, &settings.namespace),
            settings: settings.clone(),
            observed: None,
        };
        tokio::spawn(elector.run(sender));
        Self {
            tenure,
            _fixed: None,
        }
    }

    /// A process that always leads (a single replica without election).
    pub fn sole() -> Self {
        let (sender, tenure) = watch::channel(Tenure::Always);
        Self {
            tenure,
            _fixed: Some(Arc::new(sender)),
        }
    }

    /// Checked before every write: false as soon as the tenure has run out.
    pub fn is_leader(&self) -> bool {
        self.tenure.borrow().leads()
    }

    /// Waits until leadership changes; returns the new value. A renewal that only extends the
    /// tenure is not a change.
    pub async fn changed(&mut self) -> bool {
        let before = self.is_leader();
        loop {
            let end = self.tenure.borrow_and_update().end();
            let expiry = async {
                match end {
                    Some(end) => tokio::time::sleep_until(end).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = self.tenure.changed() => if result.is_err() {
                    // The elector is gone (the runtime is shutting down): what was granted
                    // runs out and nothing renews it.
                    if let Some(end) = end {
                        tokio::time::sleep_until(end).await;
                    }
                    if before {
                        return false;
                    }
                    std::future::pending::<()>().await;
                },
                _ = expiry => {}
            }
            let now = self.is_leader();
            if now != before {
                return now;
            }
        }
    }
}

/// The lease record a follower last saw and when it first saw it.
struct Observed {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    at: Instant,
}

struct Elector {
    leases: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

#[derive(Debug, thiserror::Error)]
enum ElectionError {
    #[error("reading Lease: {0}")]
    Read(#[source] kube::Error),
    #[error("writing Lease: {0}")]
    Write(#[source] kube::Error),
}

impl Elector {
    async fn run(mut self, sender: watch::Sender<Tenure>) {
        let mut reported = None;
        loop {
            let attempt = Instant::now();
            let current = *sender.borrow();
            let next = match self.try_acquire_or_renew().await {
                Ok(true) => Tenure::Until(attempt + self.settings.tenure()),
                Ok(false) => Tenure::Following,
                Err(error) => {
                    tracing::warn!(%error, "lease not renewed; leading only until the tenure ends");
                    current
                }
            };
            if next != current {
                sender.send_replace(next);
            }
            let leads = next.leads();
            if reported != Some(leads) {
                tracing::info!(identity = %self.settings.identity, leads, "leadership");
                reported = Some(leads);
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(self.settings.retry_period()).await;
        }
    }

    /// One round: takes a free or expired lease, renews our own, or leaves another's alone.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let Some(lease) = self
            .leases
            .get_opt(&self.settings.name)
            .await
            .map_err(ElectionError::Read)?
        else {
            return self.create().await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.settings.identity.as_str());
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|seen| seen.holder != holder || seen.renewed != spec.renew_time);
        if changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renewed: spec.renew_time.clone(),
                at: Instant::now(),
            });
        }
        if holder.is_some() && !ours {
            // Judged by how long the record has stood still on our clock, not by its
            // timestamps, so clock skew between nodes cannot shorten another's lease.
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.duration, Duration::from_secs);
            let stood_since = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if stood_since.elapsed() < duration {
                return Ok(false);
            }
        }
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let mut body = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": self.settings.identity,
                "leaseDurationSeconds": self.duration_seconds(),
                "renewTime": now,
            }
        });
        if !ours {
            body["spec"]["acquireTime"] = serde_json::json!(now);
            body["spec"]["leaseTransitions"] =
                serde_json::json!(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        // The resourceVersion makes the patch conditional: of two contenders, one gets 409.
        match self
            .leases
            .patch(
                &self.settings.name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(written) => {
                let spec = written.spec.unwrap_or_default();
                self.observed = Some(Observed {
                    holder: spec.holder_identity,
                    renewed: spec.renew_time,
                    at: Instant::now(),
                });
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(ElectionError::Write(error)),
        }
    }

    async fn create(&mut self) -> Result<bool, ElectionError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(ElectionError::Write(error)),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.settings.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::controller::mock_api::{self, MockApi};

    fn settings(duration: u64, grace: u64) -> LeaseSettings {
        LeaseSettings {
            namespace: "opal-system".into(),
            name: "opal-operator".into(),
            identity: "me".into(),
            duration: Duration::from_secs(duration),
            grace: Duration::from_secs(grace),
        }
    }

    fn lease(holder: &str, renewed: &str, version: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "opal-operator", "namespace": "opal-system", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 2, "renewTime": renewed,
                     "acquireTime": "2026-12-07T09:00:00.000000Z", "leaseTransitions": 3}
        })
    }

    /// An elector on a scripted apiserver, as `Leadership::elect` runs it.
    fn elect(settings: &LeaseSettings) -> (Leadership, MockApi, tokio::task::JoinHandle<()>) {
        let (client, api) = mock_api::client();
        let (sender, tenure) = watch::channel(Tenure::Following);
        let elector = Elector {
            leases: Api::namespaced(client, &settings.namespace),
            settings: settings.clone(),
            observed: None,
        };
        let task = tokio::spawn(elector.run(sender));
        (
            Leadership {
                tenure,
                _fixed: None,
            },
            api,
            task,
        )
    }

    #[test]
    fn the_tenure_ends_a_grace_before_the_lease_and_is_retried_three_times() {
        let s = settings(15, 5);
        assert_eq!(s.tenure(), Duration::from_secs(10));
        assert!(s.retry_period() * 3 <= s.tenure());
        assert!(s.tenure() < s.duration);
    }

    #[tokio::test]
    async fn a_leader_whose_renewal_hangs_stops_leading_when_its_tenure_ends() {
        let settings = settings(2, 1);
        let (mut leadership, mut api, task) = elect(&settings);
        let read = api
            .answer(404, mock_api::status_answer(404, "NotFound"))
            .await;
        assert_eq!(read.method, "GET");
        let created = api
            .answer(201, lease("me", "2026-12-07T10:00:00.000000Z", "1"))
            .await;
        assert_eq!(created.method, "POST");
        assert_eq!(created.body["spec"]["holderIdentity"], "me");
        assert!(leadership.changed().await);
        let granted = Instant::now();

        // The apiserver stops answering: the renewal's read is never answered.
        let (renewal, _unanswered) = api.hold().await;
        assert_eq!(renewal.method, "GET");
        assert!(leadership.is_leader());
        assert!(!leadership.changed().await);
        assert!(!leadership.is_leader());
        let held = granted.elapsed();
        // A follower may take over one lease duration after the last renewal at the earliest.
        assert!(
            held < settings.duration,
            "led {held:?} after the last renewal; the lease lasts {:?}",
            settings.duration
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_follower_takes_a_lease_only_after_its_record_stood_still_a_whole_duration() {
        let settings = settings(2, 1);
        let (leadership, mut api, task) = elect(&settings);
        // The other holder renews once more, then dies.
        let renewed_last = "2026-12-07T10:00:01.000000Z";
        for renewed in ["2026-12-07T10:00:00.000000Z", renewed_last] {
            let seen = api.answer(200, lease("other", renewed, "7")).await;
            assert_eq!(seen.method, "GET");
            assert!(!leadership.is_leader());
        }
        let last_change = Instant::now();
        let takeover = loop {
            let (seen, reply) = api.hold().await;
            if seen.method == "PATCH" {
                break (seen, reply);
            }
            assert_eq!(seen.method, "GET");
            reply.send_response(mock_api::answer(200, &lease("other", renewed_last, "7")));
        };
        let (patch, reply) = takeover;
        assert!(
            last_change.elapsed() >= settings.duration,
            "took the lease {:?} after its last renewal; it is valid for {:?}",
            last_change.elapsed(),
            settings.duration
        );
        assert_eq!(patch.body["metadata"]["resourceVersion"], "7");
        assert_eq!(patch.body["spec"]["holderIdentity"], "me");
        assert_eq!(patch.body["spec"]["leaseTransitions"], 4);
        assert!(patch.body["spec"]["acquireTime"].is_string());
        // Another contender won the same version: 409, and this one stays a follower.
        reply.send_response(mock_api::answer(
            409,
            &mock_api::status_answer(409, "Conflict"),
        ));
        let next = api
            .answer(200, lease("winner", "2026-12-07T10:00:05.000000Z", "8"))
            .await;
        assert_eq!(next.method, "GET");
        assert!(!leadership.is_leader());
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_ends_by_itself_when_the_tenure_runs_out() {
        let (sender, tenure) =
            watch::channel(Tenure::Until(Instant::now() + Duration::from_secs(3)));
        let mut leadership = Leadership {
            tenure,
            _fixed: None,
        };
        assert!(leadership.is_leader());
        let started = Instant::now();
        assert!(!leadership.changed().await);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(!leadership.is_leader());
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_extends_the_tenure_is_not_a_change() {
        let (sender, tenure) =
            watch::channel(Tenure::Until(Instant::now() + Duration::from_secs(3)));
        let mut leadership = Leadership {
            tenure,
            _fixed: None,
        };
        let renewals = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send_replace(Tenure::Until(Instant::now() + Duration::from_secs(3)));
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send_replace(Tenure::Following);
        };
        let started = Instant::now();
        let (lost, ()) = tokio::join!(leadership.changed(), renewals);
        assert!(!lost);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn a_sole_replica_always_leads() {
        assert!(Leadership::sole().is_leader());
    }
}
