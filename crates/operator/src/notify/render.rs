//! One notification rendered for each kind of channel: Slack blocks, Atlassian Document Format,
//! plain and HTML email, plain text for ServiceNow and JSM, Splunk HEC JSON and the signed
//! webhook body. Every rendering carries the title, the labelled facts, the itemised evidence
//! (bounded per medium, with the count left out), the links and the message's reference marker.

use serde_json::{Value, json};

use super::message::Notification;

/// Items a chat message lists before summarising the rest.
const CHAT_ITEMS: usize = 20;
/// Items a ticket, email or event lists before summarising the rest.
const RECORD_ITEMS: usize = 200;
/// Slack caps a section's text at 3000 characters and a header at 150.
const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_FIELD_CHARS: usize = 2000;

/// Version tag of the JSON sent to generic webhooks and Splunk.
pub const SCHEMA_VERSION: &str = "opal-operator.io/notification/v1";

/// The marker written into ticket comments and notes, so a retried update can tell it was
/// already made.
pub fn reference_marker(notification: &Notification) -> String {
    format!("opal-operator ref {}", notification.idempotency_key())
}

/// Evidence items up to `limit`, plus a line saying how many were left out.
fn bounded_items(notification: &Notification, limit: usize) -> Vec<String> {
    let items = notification.items();
    let total = items.len();
    let mut shown: Vec<String> = items.into_iter().take(limit).collect();
    if total > limit {
        shown.push(format!("… and {} more", total - limit));
    }
    shown
}

/// `text` cut to `max_chars` characters, the last one an ellipsis when it was cut.
pub(super) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A Slack message: fallback text plus Block Kit blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackMessage {
    pub text: String,
    pub blocks: Vec<Value>,
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Block Kit rendering: header, facts as fields, evidence list, links and reference as context.
pub fn slack_message(notification: &Notification) -> SlackMessage {
    let title = notification.title();
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&title, SLACK_HEADER_CHARS), "emoji": true}
    })];
    // A section holds at most 10 fields.
    for chunk in notification.facts().chunks(10) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(label, value)| {
                json!({
                    "type": "mrkdwn",
                    "text": truncate(&format!("*{label}*\n{}", slack_escape(value)), SLACK_FIELD_CHARS)
                })
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let items = bounded_items(notification, CHAT_ITEMS);
    if !items.is_empty() {
        let list = items
            .iter()
            .map(|item| format!("• {}", slack_escape(item)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&list, SLACK_SECTION_CHARS)}
        }));
    }
    let mut context: Vec<Value> = notification
        .links
        .iter()
        .map(|link| {
            json!({"type": "mrkdwn", "text": format!("<{}|{}>", link.url, slack_escape(&link.text))})
        })
        .collect();
    context.truncate(9);
    context.push(json!({
        "type": "mrkdwn",
        "text": format!("{} · {}", notification.severity().label(), reference_marker(notification))
    }));
    blocks.push(json!({"type": "context", "elements": context}));
    SlackMessage {
        // The fallback text is read as mrkdwn too: `<` would start a link.
        text: slack_escape(&title),
        blocks,
    }
}

fn adf_text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn adf_strong(text: &str) -> Value {
    json!({"type": "text", "text": text, "marks": [{"type": "strong"}]})
}

fn adf_list(items: Vec<Vec<Value>>) -> Value {
    let items: Vec<Value> = items
        .into_iter()
        .map(|content| {
            json!({"type": "listItem", "content": [{"type": "paragraph", "content": content}]})
        })
        .collect();
    json!({"type": "bulletList", "content": items})
}

fn adf_heading(text: &str) -> Value {
    json!({"type": "heading", "attrs": {"level": 3}, "content": [adf_text(text)]})
}

/// An Atlassian Document Format document for a Jira description or comment.
pub fn adf_document(notification: &Notification) -> Value {
    let mut content = vec![json!({
        "type": "paragraph",
        "content": [adf_strong(&notification.title())]
    })];
    content.push(adf_list(
        notification
            .facts()
            .iter()
            .map(|(label, value)| vec![adf_strong(&format!("{label}: ")), adf_text(value)])
            .collect(),
    ));
    let items = bounded_items(notification, RECORD_ITEMS);
    if !items.is_empty() {
        content.push(adf_heading("Evidence"));
        content.push(adf_list(
            items.iter().map(|item| vec![adf_text(item)]).collect(),
        ));
    }
    if !notification.links.is_empty() {
        content.push(adf_heading("Links"));
        content.push(adf_list(
            notification
                .links
                .iter()
                .map(|link| {
                    vec![json!({
                        "type": "text",
                        "text": link.text,
                        "marks": [{"type": "link", "attrs": {"href": link.url}}]
                    })]
                })
                .collect(),
        ));
    }
    content.push(json!({
        "type": "paragraph",
        "content": [{"type": "text", "text": reference_marker(notification), "marks": [{"type": "code"}]}]
    }));
    json!({"type": "doc", "version": 1, "content": content})
}

/// Plain text for ServiceNow fields and JSM descriptions.
pub fn plain_text(notification: &Notification) -> String {
    let mut out = format!("{}\n\n", notification.title());
    for (label, value) in notification.facts() {
        out.push_str(&format!("{label}: {value}\n"));
    }
    let items = bounded_items(notification, RECORD_ITEMS);
    if !items.is_empty() {
        out.push_str("\nEvidence:\n");
        for item in items {
            out.push_str(&format!("- {item}\n"));
        }
    }
    if !notification.links.is_empty() {
        out.push_str("\nLinks:\n");
        for link in &notification.links {
            out.push_str(&format!("- {}: {}\n", link.text, link.url));
        }
    }
    out.push_str(&format!("\n{}\n", reference_marker(notification)));
    out
}

/// Subject and both bodies of an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub plain: String,
    pub html: String,
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Email rendering: the plain body is [`plain_text`]; the HTML body shows the same content.
pub fn email(notification: &Notification) -> EmailContent {
    let title = notification.title();
    let subject = format!(
        "[opal-operator] [{}] {}",
        notification.severity().label(),
        title
    );
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<h2>{}</h2>\n<table>\n",
        html_escape(&title)
    );
    for (label, value) in notification.facts() {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            html_escape(label),
            html_escape(&value)
        ));
    }
    html.push_str("</table>\n");
    let items = bounded_items(notification, RECORD_ITEMS);
    if !items.is_empty() {
        html.push_str("<h3>Evidence</h3>\n<ul>\n");
        for item in items {
            html.push_str(&format!("<li>{}</li>\n", html_escape(&item)));
        }
        html.push_str("</ul>\n");
    }
    if !notification.links.is_empty() {
        html.push_str("<h3>Links</h3>\n<ul>\n");
        for link in &notification.links {
            html.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                html_escape(&link.url),
                html_escape(&link.text)
            ));
        }
        html.push_str("</ul>\n");
    }
    html.push_str(&format!(
        "<p><small>{}</small></p>\n</body></html>\n",
        html_escape(&reference_marker(notification))
    ));
    EmailContent {
        subject,
        plain: plain_text(notification),
        html,
    }
}

/// The JSON document sent to generic webhooks and, as the `event` of an envelope, to Splunk.
pub fn event_document(notification: &Notification) -> Value {
    let thread = notification.thread();
    json!({
        "schemaVersion": SCHEMA_VERSION,
        "id": notification.idempotency_key(),
        "kind": notification.kind(),
        "severity": notification.severity().label(),
        "title": notification.title(),
        "occurredAt": notification.occurred_at,
        "thread": {"token": thread.token(), "action": thread.action},
        "facts": notification.facts().into_iter().map(|(label, value)| json!({"label": label, "value": value})).collect::<Vec<_>>(),
        "event": notification.event,
        "links": notification.links,
        "recipients": notification.recipients,
    })
}

/// PagerDuty `custom_details`: the facts as an object and the bounded evidence.
pub fn pagerduty_details(notification: &Notification) -> Value {
    let mut details = serde_json::Map::new();
    for (label, value) in notification.facts() {
        details.insert(label.to_owned(), Value::String(value));
    }
    let items = bounded_items(notification, CHAT_ITEMS);
    if !items.is_empty() {
        details.insert("Evidence".to_owned(), json!(items));
    }
    details.insert(
        "Reference".to_owned(),
        json!(notification.idempotency_key()),
    );
    Value::Object(details)
}

/// Trims text to PagerDuty's 1024-character summary limit.
pub(crate) fn pagerduty_summary(notification: &Notification) -> String {
    truncate(&notification.title(), 1024)
}

/// Trims a ticket summary to Jira's and ServiceNow's usual 160/255 limits.
pub(crate) fn ticket_summary(notification: &Notification) -> String {
    truncate(&notification.title(), 160)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::notify::message::{AccessChange, AccessTarget, Event, ObjectRef, Person};

    fn offboarded(count: usize) -> Notification {
        let at = Utc
            .with_ymd_and_hms(2026, 2, 3, 4, 5, 6)
            .single()
            .expect("time");
        Notification::new(
            Event::AccessRevoked {
                rule: ObjectRef::new("AccessPolicy", "hr", "offboarding"),
                reason: "terminated <today> & gone".into(),
                revocations: (0..count)
                    .map(|i| {
                        AccessChange::new(
                            Person::new("bob@example.com"),
                            AccessTarget::group(format!("g{i}")),
                        )
                    })
                    .collect(),
            },
            at,
        )
        .with_link("Opal user", "https://app.opal.dev/users/u1")
    }

    #[test]
    fn slack_blocks_escape_and_bound_evidence() {
        let message = slack_message(&offboarded(45));
        assert_eq!(
            message.text,
            "45 grant(s) revoked by AccessPolicy hr/offboarding"
        );
        assert_eq!(message.blocks[0]["type"], "header");
        let fields = message.blocks[1]["fields"].as_array().expect("fields");
        assert!(fields.iter().any(|f| {
            f["text"]
                .as_str()
                .is_some_and(|t| t.contains("terminated &lt;today&gt; &amp; gone"))
        }));
        let list = message.blocks[2]["text"]["text"].as_str().expect("list");
        assert_eq!(list.lines().count(), CHAT_ITEMS + 1);
        assert!(list.ends_with("… and 25 more"));
        let context = message.blocks.last().expect("context");
        assert_eq!(
            context["elements"][0]["text"],
            "<https://app.opal.dev/users/u1|Opal user>"
        );
    }

    #[test]
    fn adf_is_a_valid_document_with_link_marks() {
        let doc = adf_document(&offboarded(2));
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let text = doc.to_string();
        assert!(
            text.contains(
                r#""marks":[{"attrs":{"href":"https://app.opal.dev/users/u1"},"type":"link"}]"#
            ),
            "{text}"
        );
        assert!(text.contains("bob@example.com → group \\\"g1\\\""));
    }

    #[test]
    fn html_email_escapes_and_plain_carries_marker() {
        let note = offboarded(1);
        let content = email(&note);
        assert!(content.subject.starts_with("[opal-operator] [warning] "));
        assert!(content.html.contains("terminated &lt;today&gt; &amp; gone"));
        assert!(!content.html.contains("<today>"));
        assert!(content.plain.contains(&reference_marker(&note)));
        assert!(
            content
                .plain
                .contains("- Opal user: https://app.opal.dev/users/u1")
        );
    }
}
