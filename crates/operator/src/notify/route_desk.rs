//! Where routed access requests are answered: a Jira Service Management request per Opal
//! request, labelled with the request's token so that a retry or a restart finds it instead of
//! opening a second one, and decided by its JSM approval.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::channel::resolve_secret;
use super::config::{ChannelConfig, ChannelKind, NotifyConfig};
use super::error::NotifyError;
use super::jira::{ApprovalDecision, JiraClient, NewRequest};
use crate::secret::KubeSecretSource;

/// A JSM channel that takes routed requests.
#[derive(Clone, Debug)]
pub struct ServiceDeskRoute {
    client: JiraClient,
    service_desk_id: String,
    request_type_id: String,
    raise_on_behalf_of: Option<String>,
    resolve_transition: Option<String>,
}

/// The final answer of a routed request's approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskAnswer {
    pub approve: bool,
    /// The email JSM reports for the approver whose decision matches the final one.
    pub decider_email: Option<String>,
}

/// A route desk for every `jiraServiceManagement` channel, by channel name; the first
/// credential that cannot be read fails the whole set.
pub async fn route_desks(
    config: &NotifyConfig,
    kube: &dyn KubeSecretSource,
) -> Result<BTreeMap<String, ServiceDeskRoute>, NotifyError> {
    let http = super::http::build_client(&config.outbox)?;
    let mut desks = BTreeMap::new();
    for (name, channel) in &config.channels {
        if let ChannelConfig::JiraServiceManagement(jsm) = channel {
            let token = resolve_secret(name, &jsm.api_token, kube).await?;
            let client = JiraClient::new(
                http.clone(),
                name,
                ChannelKind::JiraServiceManagement,
                &jsm.url,
                &jsm.email,
                &token,
            )?;
            desks.insert(
                name.clone(),
                ServiceDeskRoute {
                    client,
                    service_desk_id: jsm.service_desk_id.clone(),
                    request_type_id: jsm.request_type_id.clone(),
                    raise_on_behalf_of: jsm.raise_on_behalf_of.clone(),
                    resolve_transition: jsm.resolve_transition.clone(),
                },
            );
        }
    }
    Ok(desks)
}

fn adf_paragraph(text: &str) -> Value {
    json!({
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    })
}

impl ServiceDeskRoute {
    /// The JSM request carrying `token`, opened now if none exists; returns its issue key.
    pub async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
    ) -> Result<String, NotifyError> {
        if let Some(found) = self.client.find_by_label(token).await? {
            return Ok(found.key);
        }
        let created = self
            .client
            .create_request(&NewRequest {
                service_desk_id: self.service_desk_id.clone(),
                request_type_id: self.request_type_id.clone(),
                summary: summary.to_owned(),
                description: description.to_owned(),
                labels: vec!["opal-operator".to_owned(), token.to_owned()],
                raise_on_behalf_of: self.raise_on_behalf_of.clone(),
            })
            .await?;
        Ok(created.key)
    }

    /// The first decided approval on the request, if any.
    pub async fn answer(&self, key: &str) -> Result<Option<DeskAnswer>, NotifyError> {
        let approvals = self.client.approvals(key).await?;
        Ok(approvals.iter().find_map(|approval| {
            let approve = match approval.final_decision {
                ApprovalDecision::Approved => true,
                ApprovalDecision::Declined => false,
                ApprovalDecision::Pending => return None,
            };
            let decider_email = approval
                .approvers
                .iter()
                .find(|approver| approver.decision == approval.final_decision)
                .and_then(|approver| approver.email.clone());
            Some(DeskAnswer {
                approve,
                decider_email,
            })
        }))
    }

    /// Comments `text` on the request unless a comment already contains `marker`; true when
    /// it commented now.
    pub async fn note_once(
        &self,
        key: &str,
        marker: &str,
        text: &str,
    ) -> Result<bool, NotifyError> {
        if self.client.has_comment_containing(key, marker).await? {
            return Ok(false);
        }
        self.client
            .add_comment(key, &adf_paragraph(&format!("{text} {marker}")))
            .await
            .map(|_| true)
    }

    /// Resolves the request with `text` as the resolution comment; one already done (closed
    /// before a restart could record it) is left as it is.
    pub async fn close(&self, key: &str, token: &str, text: &str) -> Result<(), NotifyError> {
        if self
            .client
            .find_by_label(token)
            .await?
            .is_some_and(|issue| issue.done)
        {
            return Ok(());
        }
        self.client
            .resolve(
                key,
                self.resolve_transition.as_deref(),
                Some(&adf_paragraph(text)),
            )
            .await
    }
}
