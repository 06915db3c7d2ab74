//! Leader election on a `coordination.k8s.io` Lease: only the leader writes to Opal and to
//! status. A follower takes the lease once the leader stops renewing it.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

/// Whether this process currently leads, as a watchable flag.
#[derive(Clone, Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Held only by [`Leadership::sole`], so its flag never closes.
    _fixed: Option<std::sync::Arc<watch::Sender<bool>>>,
}

/// Where the lease lives and who competes for it.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid without renewal: the longest a dead leader blocks a takeover.
    pub duration: Duration,
    /// Renew this long before the lease would expire.
    pub grace: Duration,
}

impl Leadership {
    /// Competes for the lease in the background for as long as the process runs.
    pub async fn elect(
        client: Client,
        settings: &LeaseSettings,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, settings.name.clone())
            .with_namespace(settings.namespace.clone())
            .with_identity(settings.identity.clone())
            .with_duration(settings.duration.as_secs().max(2))
            .with_grace(settings.grace.as_secs().max(1))
            .with_field_manager("opal-operator")
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        tokio::spawn(async move {
            if let Ok(Err(error)) = task.await {
                tracing::error!(%error, "lease manager stopped");
            }
        });
        Ok(Self {
            leading,
            _fixed: None,
        })
    }

    /// A process that always leads (a single replica without election).
    pub fn sole() -> Self {
        let (sender, leading) = watch::channel(true);
        Self {
            leading,
            _fixed: Some(std::sync::Arc::new(sender)),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until leadership changes; returns the new value.
    pub async fn changed(&mut self) -> bool {
        if self.leading.changed().await.is_err() {
            // The lease task is gone: nobody renews, so this process no longer leads.
            return false;
        }
        *self.leading.borrow_and_update()
    }
}
