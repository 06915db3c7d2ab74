//! Ticket channels (Jira, Jira Service Management, ServiceNow): one ticket per dedup key,
//! opened, updated and closed, with the tickets already known remembered per channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use super::channel::{DeliveryProgress, Receipt};
use super::error::NotifyError;
use super::jira::{JiraClient, NewIssue, NewRequest};
use super::message::{Notification, TicketAction};
use super::render;
use super::servicenow::ServiceNowClient;

/// Tickets remembered per channel before the memory is dropped and lookups go to the service.
const KNOWN_TICKETS_CAP: usize = 10_000;

/// A ticket found or opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ticket {
    /// Jira issue key or ServiceNow `sys_id`.
    id: String,
    /// Jira issue key or ServiceNow number, for people.
    display: String,
    closed: bool,
}

#[derive(Debug)]
pub(super) enum TicketSystem {
    Jira {
        client: JiraClient,
        project_key: String,
        issue_type: String,
        labels: Vec<String>,
        resolve_transition: Option<String>,
    },
    ServiceDesk {
        client: JiraClient,
        service_desk_id: String,
        request_type_id: String,
        raise_on_behalf_of: Option<String>,
        resolve_transition: Option<String>,
    },
    ServiceNow {
        client: ServiceNowClient,
        table: String,
        fields: BTreeMap<String, String>,
        close_fields: BTreeMap<String, String>,
    },
}

/// Keeps one ticket per thread. Before opening, it looks the thread's token up on the service
/// itself (a Jira label found by JQL, a ServiceNow `correlation_id`), so neither a retry after a
/// lost answer nor a restart of the operator opens a second ticket; tickets it already knows in
/// this process skip the lookup.
#[derive(Debug)]
pub(super) struct TicketDesk {
    system: TicketSystem,
    known: Mutex<HashMap<String, Ticket>>,
}

impl TicketDesk {
    pub(super) fn new(system: TicketSystem) -> Self {
        Self {
            system,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, token: &str, ticket: &Ticket) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KNOWN_TICKETS_CAP {
            known.clear();
        }
        known.insert(token.to_owned(), ticket.clone());
    }

    fn recall(&self, token: &str) -> Option<Ticket> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    pub(super) async fn deliver(
        &self,
        notification: &Notification,
        progress: &mut DeliveryProgress,
    ) -> Result<Receipt, NotifyError> {
        let thread = notification.thread();
        let token = thread.token();
        let (mut ticket, created) = match (progress.get("ticket"), self.recall(&token)) {
            (Some(_), Some(ticket)) => (ticket, progress.get("created") == Some("true")),
            _ => {
                let (ticket, created) = match self.recall(&token) {
                    Some(ticket) => (ticket, false),
                    None => match self.find(&token).await? {
                        Some(ticket) => (ticket, false),
                        None => (self.open(notification, &token).await?, true),
                    },
                };
                self.remember(&token, &ticket);
                progress.record("ticket", ticket.id.clone());
                progress.record("created", created.to_string());
                (ticket, created)
            }
        };
        match thread.action {
            TicketAction::Open => {}
            TicketAction::Update => {
                let marker = render::reference_marker(notification);
                if progress.get("note").is_none() && !self.has_note(&ticket, &marker).await? {
                    self.add_note(&ticket, notification).await?;
                }
                progress.record("note", "done");
            }
            TicketAction::Resolve | TicketAction::Record => {
                if !ticket.closed {
                    self.close(&ticket, notification, thread.action).await?;
                    ticket.closed = true;
                    self.remember(&token, &ticket);
                }
            }
        }
        Ok(Receipt::Ticket {
            key: ticket.display,
            created,
            action: thread.action,
        })
    }

    async fn find(&self, token: &str) -> Result<Option<Ticket>, NotifyError> {
        match &self.system {
            TicketSystem::Jira { client, .. } | TicketSystem::ServiceDesk { client, .. } => {
                Ok(client.find_by_label(token).await?.map(|issue| Ticket {
                    id: issue.key.clone(),
                    display: issue.key,
                    closed: issue.done,
                }))
            }
            TicketSystem::ServiceNow {
                client,
                table,
                close_fields,
                ..
            } => Ok(client
                .find_by_correlation_id(table, token)
                .await?
                .map(|record| Ticket {
                    closed: is_closed(&record.state, &record.active, close_fields),
                    id: record.sys_id,
                    display: record.number,
                })),
        }
    }

    async fn open(&self, notification: &Notification, token: &str) -> Result<Ticket, NotifyError> {
        match &self.system {
            TicketSystem::Jira {
                client,
                project_key,
                issue_type,
                labels,
                ..
            } => {
                let mut all_labels = vec!["opal-operator".to_owned(), token.to_owned()];
                all_labels.extend(labels.iter().cloned());
                let issue = client
                    .create_issue(&NewIssue {
                        project_key: project_key.clone(),
                        issue_type: issue_type.clone(),
                        summary: render::ticket_summary(notification),
                        description: render::adf_document(notification),
                        labels: all_labels,
                    })
                    .await?;
                Ok(Ticket {
                    id: issue.key.clone(),
                    display: issue.key,
                    closed: false,
                })
            }
            TicketSystem::ServiceDesk {
                client,
                service_desk_id,
                request_type_id,
                raise_on_behalf_of,
                ..
            } => {
                let issue = client
                    .create_request(&NewRequest {
                        service_desk_id: service_desk_id.clone(),
                        request_type_id: request_type_id.clone(),
                        summary: render::ticket_summary(notification),
                        description: render::plain_text(notification),
                        labels: vec!["opal-operator".to_owned(), token.to_owned()],
                        raise_on_behalf_of: raise_on_behalf_of.clone(),
                    })
                    .await?;
                Ok(Ticket {
                    id: issue.key.clone(),
                    display: issue.key,
                    closed: false,
                })
            }
            TicketSystem::ServiceNow {
                client,
                table,
                fields,
                close_fields,
            } => {
                let mut record_fields = fields.clone();
                record_fields.insert(
                    "short_description".to_owned(),
                    render::ticket_summary(notification),
                );
                record_fields.insert("description".to_owned(), render::plain_text(notification));
                record_fields.insert("correlation_id".to_owned(), token.to_owned());
                record_fields.insert("correlation_display".to_owned(), "opal-operator".to_owned());
                let record = client.create(table, &record_fields).await?;
                Ok(Ticket {
                    closed: is_closed(&record.state, &record.active, close_fields),
                    id: record.sys_id,
                    display: record.number,
                })
            }
        }
    }

    async fn has_note(&self, ticket: &Ticket, marker: &str) -> Result<bool, NotifyError> {
        match &self.system {
            TicketSystem::Jira { client, .. } | TicketSystem::ServiceDesk { client, .. } => {
                client.has_comment_containing(&ticket.id, marker).await
            }
            TicketSystem::ServiceNow { client, table, .. } => {
                client.work_notes_contain(table, &ticket.id, marker).await
            }
        }
    }

    async fn add_note(
        &self,
        ticket: &Ticket,
        notification: &Notification,
    ) -> Result<(), NotifyError> {
        match &self.system {
            TicketSystem::Jira { client, .. } | TicketSystem::ServiceDesk { client, .. } => client
                .add_comment(&ticket.id, &render::adf_document(notification))
                .await
                .map(drop),
            TicketSystem::ServiceNow { client, table, .. } => {
                let fields =
                    BTreeMap::from([("work_notes".to_owned(), render::plain_text(notification))]);
                client.update(table, &ticket.id, &fields).await.map(drop)
            }
        }
    }

    async fn close(
        &self,
        ticket: &Ticket,
        notification: &Notification,
        action: TicketAction,
    ) -> Result<(), NotifyError> {
        match &self.system {
            TicketSystem::Jira {
                client,
                resolve_transition,
                ..
            }
            | TicketSystem::ServiceDesk {
                client,
                resolve_transition,
                ..
            } => {
                // A record's description already holds the evidence; a resolution adds its own.
                let comment =
                    (action == TicketAction::Resolve).then(|| render::adf_document(notification));
                client
                    .resolve(&ticket.id, resolve_transition.as_deref(), comment.as_ref())
                    .await
            }
            TicketSystem::ServiceNow {
                client,
                table,
                close_fields,
                ..
            } => {
                let mut fields = close_fields.clone();
                fields.insert("close_notes".to_owned(), render::plain_text(notification));
                client.update(table, &ticket.id, &fields).await.map(drop)
            }
        }
    }
}

fn is_closed(state: &str, active: &str, close_fields: &BTreeMap<String, String>) -> bool {
    active == "false"
        || close_fields
            .get("state")
            .is_some_and(|closed| closed == state)
}
