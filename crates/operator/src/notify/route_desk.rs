//! Where routed access requests are answered: one ticket per Opal request, marked with the
//! request's token (a Jira label, a ServiceNow `correlation_id`) so that a retry or a restart
//! finds it instead of opening a second one, and decided by the ticket system's own approvals
//! (JSM approvals, ServiceNow `sysapproval_approver` records). A Slack route is a message with
//! Approve / Deny buttons, tagged with the token in its metadata; its answers are the clicks
//! the interactivity hook recorded, since Slack keeps none.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::channel::resolve_secret;
use super::config::{ChannelConfig, ChannelKind, NotifyConfig};
use super::error::NotifyError;
use super::jira::{ApprovalDecision, JiraClient, NewIssue, NewRequest, decision_from};
use super::servicenow::{ApprovalState, ServiceNowClient};
use super::slack::{ButtonMessage, SlackApiClient};
use crate::secret::KubeSecretSource;

/// A channel that takes routed requests.
#[derive(Clone, Debug)]
pub enum RouteDesk {
    ServiceDesk(ServiceDeskRoute),
    JiraIssue(JiraIssueRoute),
    ServiceNow(ServiceNowRoute),
    Slack(SlackRoute),
}

/// A Slack Web API channel whose `channel` is a conversation ID: a message with buttons per
/// request, decided by the first eligible click.
#[derive(Clone, Debug)]
pub struct SlackRoute {
    client: SlackApiClient,
    channel: String,
}

/// A click on a routed request's Slack message, as the interactivity hook recorded it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedClick {
    /// The Slack member who clicked.
    pub user_id: String,
    pub approve: bool,
    /// When the hook received it; answers are judged in this order.
    pub at: DateTime<Utc>,
}

/// Longest thread marker kept, inside the 255 characters the Slack client accepts for one.
const SLACK_MARKER_CHARS: usize = 200;

/// How far before the claim the search for a posted message starts, for clocks that differ.
const SLACK_SEARCH_MARGIN_SECONDS: i64 = 600;

/// A conversation ID (`C…` public, `G…` private), which `conversations.history` needs; a
/// channel name would post but could never be found again, so a retry would post twice.
fn is_conversation_id(channel: &str) -> bool {
    channel.len() >= 3
        && channel.starts_with(['C', 'G'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A Jira channel with `decisions`: an issue per request, decided by its status.
#[derive(Clone, Debug)]
pub struct JiraIssueRoute {
    client: JiraClient,
    project_key: String,
    issue_type: String,
    labels: Vec<String>,
    resolve_transition: Option<String>,
    approve_status: String,
    deny_status: String,
}

/// A JSM channel that takes routed requests.
#[derive(Clone, Debug)]
pub struct ServiceDeskRoute {
    client: JiraClient,
    service_desk_id: String,
    request_type_id: String,
    raise_on_behalf_of: Option<String>,
    resolve_transition: Option<String>,
}

/// A ServiceNow channel whose table (a requested item, say) has approvals.
#[derive(Clone, Debug)]
pub struct ServiceNowRoute {
    client: ServiceNowClient,
    table: String,
    fields: BTreeMap<String, String>,
    close_fields: BTreeMap<String, String>,
}

/// A routed request's ticket: what the ticket system addresses it by, and what people call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTicket {
    /// Jira issue key or ServiceNow `sys_id`.
    pub id: String,
    /// Jira issue key or ServiceNow number.
    pub display: String,
}

/// A decided approval on a routed request's ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskAnswer {
    pub approve: bool,
    /// The email the ticket system reports for the person who decided.
    pub decider_email: Option<String>,
}

/// A route desk for every `jiraServiceManagement` and `serviceNow` channel, every `jira`
/// channel with `decisions` and, when `slack_clicks` (the interactivity hook is configured),
/// every `slack` channel whose `channel` is a conversation ID, by channel name; the first
/// credential that cannot be read fails the whole set.
pub async fn route_desks(
    config: &NotifyConfig,
    kube: &dyn KubeSecretSource,
    slack_clicks: bool,
) -> Result<BTreeMap<String, RouteDesk>, NotifyError> {
    let http = super::http::build_client(&config.outbox)?;
    let mut desks = BTreeMap::new();
    for (name, channel) in &config.channels {
        let desk = match channel {
            ChannelConfig::JiraServiceManagement(jsm) => {
                let token = resolve_secret(name, &jsm.api_token, kube).await?;
                let client = JiraClient::new(
                    http.clone(),
                    name,
                    ChannelKind::JiraServiceManagement,
                    &jsm.url,
                    &jsm.email,
                    &token,
                )?;
                RouteDesk::ServiceDesk(ServiceDeskRoute {
                    client,
                    service_desk_id: jsm.service_desk_id.clone(),
                    request_type_id: jsm.request_type_id.clone(),
                    raise_on_behalf_of: jsm.raise_on_behalf_of.clone(),
                    resolve_transition: jsm.resolve_transition.clone(),
                })
            }
            ChannelConfig::Jira(jira) => {
                let Some(decisions) = &jira.decisions else {
                    continue;
                };
                let token = resolve_secret(name, &jira.api_token, kube).await?;
                let client = JiraClient::new(
                    http.clone(),
                    name,
                    ChannelKind::Jira,
                    &jira.url,
                    &jira.email,
                    &token,
                )?;
                RouteDesk::JiraIssue(JiraIssueRoute {
                    client,
                    project_key: jira.project_key.clone(),
                    issue_type: jira.issue_type.clone(),
                    labels: jira.labels.clone(),
                    resolve_transition: jira.resolve_transition.clone(),
                    approve_status: decisions.approve_status.clone(),
                    deny_status: decisions.deny_status.clone(),
                })
            }
            ChannelConfig::ServiceNow(snow) => {
                let password = resolve_secret(name, &snow.password, kube).await?;
                let client = ServiceNowClient::new(
                    http.clone(),
                    name,
                    &snow.instance_url,
                    &snow.username,
                    &password,
                )?;
                RouteDesk::ServiceNow(ServiceNowRoute {
                    client,
                    table: snow.table.clone(),
                    fields: snow.fields.clone(),
                    close_fields: snow.close_fields.clone(),
                })
            }
            ChannelConfig::Slack(slack) => {
                let Some(channel) = slack
                    .channel
                    .as_ref()
                    .filter(|channel| slack_clicks && is_conversation_id(channel))
                else {
                    continue;
                };
                let token = resolve_secret(name, &slack.token, kube).await?;
                RouteDesk::Slack(SlackRoute {
                    client: SlackApiClient::new(http.clone(), name, &slack.api_url, &token)?,
                    channel: channel.clone(),
                })
            }
            _ => continue,
        };
        desks.insert(name.clone(), desk);
    }
    Ok(desks)
}

impl RouteDesk {
    /// The ticket system, for people: `Jira Service Management ITSD-4`.
    pub fn place(&self, ticket: &str) -> String {
        match self {
            RouteDesk::ServiceDesk(_) => format!("Jira Service Management {ticket}"),
            RouteDesk::JiraIssue(_) => format!("Jira {ticket}"),
            RouteDesk::ServiceNow(_) => format!("ServiceNow {ticket}"),
            RouteDesk::Slack(_) => format!("Slack message {ticket}"),
        }
    }

    /// The ticket carrying `token`, opened now if none exists; `claimed_at` bounds how far
    /// back Slack's history is searched for it.
    pub async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
        claimed_at: DateTime<Utc>,
    ) -> Result<RouteTicket, NotifyError> {
        match self {
            RouteDesk::ServiceDesk(desk) => desk.open(token, summary, description).await,
            RouteDesk::JiraIssue(desk) => desk.open(token, summary, description).await,
            RouteDesk::ServiceNow(desk) => desk.open(token, summary, description).await,
            RouteDesk::Slack(desk) => desk.open(token, summary, description, claimed_at).await,
        }
    }

    /// The decided approvals on the ticket, in the order they were decided. Slack keeps no
    /// record of clicks, so its answers are `clicks`, as the interactivity hook recorded
    /// them; the ticket systems are asked.
    pub async fn answers(
        &self,
        ticket: &str,
        clicks: &[RecordedClick],
    ) -> Result<Vec<DeskAnswer>, NotifyError> {
        match self {
            RouteDesk::ServiceDesk(desk) => desk.answers(ticket).await,
            RouteDesk::JiraIssue(desk) => desk.answers(ticket).await,
            RouteDesk::ServiceNow(desk) => desk.answers(ticket).await,
            RouteDesk::Slack(desk) => desk.answers(clicks).await,
        }
    }

    /// Notes `text` on the ticket unless a note already contains `marker`; true when it noted
    /// now.
    pub async fn note_once(
        &self,
        ticket: &str,
        marker: &str,
        text: &str,
    ) -> Result<bool, NotifyError> {
        match self {
            RouteDesk::ServiceDesk(ServiceDeskRoute { client, .. })
            | RouteDesk::JiraIssue(JiraIssueRoute { client, .. }) => {
                comment_once(client, ticket, marker, text).await
            }
            RouteDesk::ServiceNow(desk) => desk.note_once(ticket, marker, text).await,
            RouteDesk::Slack(desk) => {
                let (channel, ts) = slack_message(ticket)?;
                // Escaping would change mrkdwn's special characters, so the marker could never
                // be found again; they carry nothing a marker needs, nor does a long tail.
                let marker: String = marker
                    .replace(['&', '<', '>'], "_")
                    .chars()
                    .take(SLACK_MARKER_CHARS)
                    .collect();
                desk.client.reply_once(channel, ts, &marker, text).await
            }
        }
    }

    /// Closes the ticket with `text`; one already closed is left as it is.
    pub async fn close(&self, ticket: &str, token: &str, text: &str) -> Result<(), NotifyError> {
        match self {
            RouteDesk::ServiceDesk(ServiceDeskRoute {
                client,
                resolve_transition,
                ..
            })
            | RouteDesk::JiraIssue(JiraIssueRoute {
                client,
                resolve_transition,
                ..
            }) => resolve_once(client, ticket, token, resolve_transition.as_deref(), text).await,
            RouteDesk::ServiceNow(desk) => desk.close(ticket, token, text).await,
            // Replacing the message with the outcome removes its buttons; doing it twice
            // changes nothing.
            RouteDesk::Slack(desk) => {
                let (channel, ts) = slack_message(ticket)?;
                desk.client.update_message(channel, ts, text).await
            }
        }
    }
}

/// A Slack route's ticket id: `<conversation ID>/<message ts>`.
pub fn slack_ticket(channel: &str, ts: &str) -> String {
    format!("{channel}/{ts}")
}

fn slack_message(ticket: &str) -> Result<(&str, &str), NotifyError> {
    ticket.split_once('/').ok_or_else(|| {
        NotifyError::Config(format!(
            "{ticket:?} is not a Slack route ticket (<channel>/<ts>)"
        ))
    })
}

impl SlackRoute {
    /// The message tagged with `token`, posted now if the channel's history since shortly
    /// before the claim holds none. Both buttons carry the token, which is the ledger entry's
    /// name, so a click names the request it answers.
    async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
        claimed_at: DateTime<Utc>,
    ) -> Result<RouteTicket, NotifyError> {
        let oldest = format!(
            "{}.000000",
            (claimed_at.timestamp() - SLACK_SEARCH_MARGIN_SECONDS).max(0)
        );
        let posted = match self
            .client
            .find_by_token(&self.channel, token, Some(&oldest))
            .await?
        {
            Some(found) => found,
            None => {
                self.client
                    .post_buttons(&ButtonMessage {
                        channel: self.channel.clone(),
                        text: summary.to_owned(),
                        token: token.to_owned(),
                        approve_value: token.to_owned(),
                        deny_value: token.to_owned(),
                        details: description.lines().map(str::to_owned).collect(),
                    })
                    .await?
            }
        };
        Ok(RouteTicket {
            id: slack_ticket(&posted.channel, &posted.ts),
            display: format!("{} in {}", posted.ts, posted.channel),
        })
    }

    /// One answer per recorded click, oldest first, with the email Slack shows for the member.
    async fn answers(&self, clicks: &[RecordedClick]) -> Result<Vec<DeskAnswer>, NotifyError> {
        let mut ordered: Vec<&RecordedClick> = clicks.iter().collect();
        ordered.sort_by_key(|click| click.at);
        let mut answers = Vec::with_capacity(ordered.len());
        for click in ordered {
            answers.push(DeskAnswer {
                approve: click.approve,
                decider_email: self.client.user_email(&click.user_id).await?,
            });
        }
        Ok(answers)
    }
}

fn adf_paragraph(text: &str) -> Value {
    json!({
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    })
}

impl ServiceDeskRoute {
    /// The JSM request carrying `token`, opened now if none exists.
    async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
    ) -> Result<RouteTicket, NotifyError> {
        let ticket = |key: String| RouteTicket {
            id: key.clone(),
            display: key,
        };
        if let Some(found) = self.client.find_by_label(token).await? {
            return Ok(ticket(found.key));
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
        Ok(ticket(created.key))
    }

    /// The request's decided approvals, as JSM lists them.
    async fn answers(&self, key: &str) -> Result<Vec<DeskAnswer>, NotifyError> {
        let approvals = self.client.approvals(key).await?;
        Ok(approvals
            .iter()
            .filter_map(|approval| {
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
            })
            .collect())
    }
}

/// Comments `text` on a Jira issue unless a comment already contains `marker`; true when it
/// commented now.
async fn comment_once(
    client: &JiraClient,
    key: &str,
    marker: &str,
    text: &str,
) -> Result<bool, NotifyError> {
    if client.has_comment_containing(key, marker).await? {
        return Ok(false);
    }
    client
        .add_comment(key, &adf_paragraph(&format!("{text} {marker}")))
        .await
        .map(|_| true)
}

/// Resolves a Jira issue with `text` as the resolution comment; one already done (closed
/// before a restart could record it) is left as it is.
async fn resolve_once(
    client: &JiraClient,
    key: &str,
    token: &str,
    transition: Option<&str>,
    text: &str,
) -> Result<(), NotifyError> {
    if client
        .find_by_label(token)
        .await?
        .is_some_and(|issue| issue.done)
    {
        return Ok(());
    }
    client
        .resolve(key, transition, Some(&adf_paragraph(text)))
        .await
}

impl ServiceNowRoute {
    /// The record carrying `token` as its `correlation_id`, created now if none exists.
    async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
    ) -> Result<RouteTicket, NotifyError> {
        let record = match self
            .client
            .find_by_correlation_id(&self.table, token)
            .await?
        {
            Some(record) => record,
            None => {
                let mut fields = self.fields.clone();
                fields.insert("short_description".to_owned(), summary.to_owned());
                fields.insert("description".to_owned(), description.to_owned());
                fields.insert("correlation_id".to_owned(), token.to_owned());
                fields.insert("correlation_display".to_owned(), "opal-operator".to_owned());
                self.client.create(&self.table, &fields).await?
            }
        };
        Ok(RouteTicket {
            display: if record.number.is_empty() {
                record.sys_id.clone()
            } else {
                record.number
            },
            id: record.sys_id,
        })
    }

    /// The record's approved and rejected approvals, oldest decision first, each with its
    /// approver's email.
    async fn answers(&self, sys_id: &str) -> Result<Vec<DeskAnswer>, NotifyError> {
        let mut answers = Vec::new();
        for approval in self.client.approvals(sys_id).await? {
            let approve = match approval.state {
                ApprovalState::Approved => true,
                ApprovalState::Rejected => false,
                _ => continue,
            };
            let decider_email = match &approval.approver_sys_id {
                Some(approver) => self.client.user_email(approver).await?,
                None => None,
            };
            answers.push(DeskAnswer {
                approve,
                decider_email,
            });
        }
        Ok(answers)
    }

    async fn note_once(&self, sys_id: &str, marker: &str, text: &str) -> Result<bool, NotifyError> {
        if self
            .client
            .work_notes_contain(&self.table, sys_id, marker)
            .await?
        {
            return Ok(false);
        }
        let note = BTreeMap::from([("work_notes".to_owned(), format!("{text} {marker}"))]);
        self.client.update(&self.table, sys_id, &note).await?;
        Ok(true)
    }

    async fn close(&self, sys_id: &str, token: &str, text: &str) -> Result<(), NotifyError> {
        let closed = self
            .client
            .find_by_correlation_id(&self.table, token)
            .await?
            .is_some_and(|record| record.active == "false");
        if closed {
            return Ok(());
        }
        let mut fields = self.close_fields.clone();
        fields.insert("close_notes".to_owned(), text.to_owned());
        self.client.update(&self.table, sys_id, &fields).await?;
        Ok(())
    }
}

impl JiraIssueRoute {
    /// The issue labelled with `token`, created now if none exists.
    async fn open(
        &self,
        token: &str,
        summary: &str,
        description: &str,
    ) -> Result<RouteTicket, NotifyError> {
        let key = match self.client.find_by_label(token).await? {
            Some(found) => found.key,
            None => {
                let mut labels = vec!["opal-operator".to_owned(), token.to_owned()];
                labels.extend(self.labels.iter().cloned());
                self.client
                    .create_issue(&NewIssue {
                        project_key: self.project_key.clone(),
                        issue_type: self.issue_type.clone(),
                        summary: summary.to_owned(),
                        description: adf_paragraph(description),
                        labels,
                    })
                    .await?
                    .key
            }
        };
        Ok(RouteTicket {
            id: key.clone(),
            display: key,
        })
    }

    /// The decision the issue's status stands for, if any, with the email of whoever moved it
    /// there (asked of Jira by account when the changelog hides it).
    async fn answers(&self, key: &str) -> Result<Vec<DeskAnswer>, NotifyError> {
        let history = self.client.status_history(key).await?;
        let Some((approve, account, email)) =
            decision_from(&history, &self.approve_status, &self.deny_status)
        else {
            return Ok(Vec::new());
        };
        let decider_email = match (email, account) {
            (Some(email), _) => Some(email),
            (None, Some(account)) => self.client.user_email(&account).await?,
            (None, None) => None,
        };
        Ok(vec![DeskAnswer {
            approve,
            decider_email,
        }])
    }
}
