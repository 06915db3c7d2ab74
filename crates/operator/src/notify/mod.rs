//! Outbound notifications and tickets: Slack (incoming webhook and Web API), email (SMTP), Jira
//! Cloud, Jira Service Management, ServiceNow, PagerDuty Events v2, Splunk HEC and signed generic
//! webhooks.
//!
//! * [`NotifyConfig`] names channels in the operator config; credentials are [`SecretRef`]s (an
//!   environment variable, a file, or a Kubernetes Secret read through [`KubeSecretSource`]).
//!   Custom resources reference channels by name; [`validate_channel_refs`] turns an unknown
//!   name into a clear error.
//! * [`Notification`] is the typed message model ([`Event`]), rendered per channel by
//!   [`render`]: Slack blocks, Atlassian Document Format, plain and HTML email, plain text for
//!   ServiceNow/JSM, HEC and webhook JSON — each with who, what, which rule and links.
//! * [`ChannelRegistry`] builds one client per channel; [`Outbox`] delivers asynchronously.
//!
//! # Delivery guarantees
//!
//! The outbox keeps one bounded queue and one worker per channel. `enqueue` never waits: a full
//! queue is refused at once and shows in [`Outbox::health`], so a failing channel never blocks
//! an access change. Workers retry 408/429/5xx, transport failures and transient SMTP replies
//! with jittered exponential backoff, honouring `Retry-After` as a floor, within a per-message
//! budget; permanent refusals fail at once with the service's reason. Outcomes go to
//! [`NotifyMetrics`], to the health snapshot (for the `NotificationsDegraded` condition) and to
//! [`Outbox::subscribe`].
//!
//! Each message has a stable idempotency key (derived from its content and time, or set by the
//! caller). Chat, email, webhook and HEC deliveries are at-least-once and carry the key for
//! receivers to drop duplicates: the email `Message-ID` and `X-Opal-Operator-Key`, the webhook
//! `Idempotency-Key` header, the HEC event `id` and indexed field. PagerDuty uses the thread's
//! token as `dedup_key`, which PagerDuty itself de-duplicates.
//!
//! # Ticket de-duplication
//!
//! Tickets must be opened exactly once per thread (a lockdown, a review, a held plan), across
//! retries and across operator restarts. The mechanism is a lookup on the ticketing system
//! before every create, keyed by the thread's token ([`Thread::token`]):
//!
//! * Jira and JSM: the token is a label on the issue (`requestFieldValues.labels` for JSM, so
//!   the request type must expose Labels); the lookup is a JQL search `labels = "<token>"`.
//! * ServiceNow: the token is the record's `correlation_id` (the field ServiceNow provides for
//!   external correlation); the lookup is a Table API query `correlation_id=<token>`.
//!
//! Why a lookup rather than a durable outbox journal: a journal can record that a create was
//! *attempted* but not whether it *happened* when the answer was lost (timeout, reset, a 5xx
//! after commit); only the ticketing system knows. The lookup also survives restarts without
//! storage (the operator runs with a read-only root filesystem and no volume), and it finds
//! tickets opened by an earlier operator replica. Tickets already opened in this process are
//! remembered, skipping the lookup; updates and closures are idempotent too (comments and work
//! notes carry the message's reference marker and are not added twice; a closed ticket is not
//! closed again). Limitation: Jira's search index may lag a create by a few seconds, so a retry
//! within that window after a *lost* create answer could still miss it; ServiceNow queries are
//! consistent. Messages still queued when the process dies are not persisted: the controller
//! re-derives notifications from object state, and the lookup keeps the re-sent ones from
//! duplicating tickets.

mod channel;
mod config;
mod desk;
mod email;
mod error;
mod http;
mod jira;
mod message;
mod metrics;
mod outbox;
mod pagerduty;
mod pagerduty_rest;
pub mod render;
mod route_desk;
mod servicenow;
mod slack;
mod splunk;
mod webhook;

pub use channel::{Channel, ChannelRegistry, DeliveryProgress, Receipt};
pub use config::{
    ChannelConfig, ChannelKind, EmailConfig, JiraConfig, JiraDecisionStatuses, JsmConfig,
    NotifyConfig, OutboxConfig, PagerDutyConfig, PagerDutyRestConfig, ServiceNowConfig,
    SlackApiConfig, SlackWebhookConfig, SmtpSecurity, SplunkHecConfig, WebhookConfig,
    validate_channel_refs,
};
pub use email::{EmailClient, KEY_HEADER};
pub use error::{EnqueueError, NotifyError};
pub use jira::{
    APPROVAL_MAX_PAGES, APPROVAL_PAGE_LIMIT, Approval, ApprovalDecision, Approver,
    CHANGELOG_MAX_PAGES, CHANGELOG_PAGE_LIMIT, IssueDecisionState, IssueRef, JiraClient, NewIssue,
    NewRequest, StatusChange, Transition, decision_from,
};
pub use message::{
    AccessChange, AccessTarget, AttributeChange, ChangeOp, Event, Link, Notification, ObjectRef,
    Person, PlannedChange, Severity, TargetKind, Thread, TicketAction,
};
pub use metrics::{NoopMetrics, NotifyMetrics, PrometheusMetrics};
pub use outbox::{
    ChannelHealth, ChannelState, DeliveryOutcome, DeliveryReport, HealthReport, Outbox,
};
pub use pagerduty::{AlertEvent, AlertPayload, EventAction, PagerDutyClient, PagerDutySeverity};
pub use pagerduty_rest::{
    OnCallEntry, OnCallQuery, PAGERDUTY_REST_ACCEPT, PagerDutyRest, rest_clients,
};
pub use route_desk::{
    DeskAnswer, JiraIssueRoute, RecordedClick, RouteDesk, RouteTicket, ServiceDeskRoute,
    ServiceNowRoute, SlackRoute, route_desks, slack_ticket,
};
pub use servicenow::{ApprovalState, Record, ServiceNowClient, TaskApproval};
pub use slack::{
    BlockAction, ButtonMessage, PostedMessage, SLACK_APPROVE_ACTION, SLACK_BLOCK_ACTION_MAX_BYTES,
    SLACK_DENY_ACTION, SLACK_HISTORY_MAX_PAGES, SLACK_HISTORY_PAGE_LIMIT, SLACK_ROUTE_EVENT_TYPE,
    SlackApiClient, SlackUser, SlackWebhookClient, parse_block_action,
};
pub use splunk::{HecAck, HecClient, HecError};
pub use webhook::{
    EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookClient, sign,
    verify_signature,
};
