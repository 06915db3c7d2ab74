//! Slack Approve / Deny buttons over loopback HTTP against the Slack simulator:
//! `SlackApiClient::post_buttons` (blocks, buttons and the token metadata), `find_by_token`
//! (paging `conversations.history`, never a partial answer), `update_message` (the buttons
//! replaced by the outcome), `reply_once` (one reply per marker in the message's thread, read
//! whole through `conversations.replies`), `user_email` (`users.info`), and the simulator's signed
//! `block_actions` clicks, verified the way Slack documents by a small endpoint in the test and
//! read with `parse_block_action`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use opal_operator::notify::{
    BlockAction, ButtonMessage, ChannelKind, NotifyError, PostedMessage, SLACK_APPROVE_ACTION,
    SLACK_DENY_ACTION, SLACK_HISTORY_MAX_PAGES, SLACK_ROUTE_EVENT_TYPE, SlackApiClient,
    parse_block_action, render::SlackMessage,
};
use opal_operator::secret::Secret;
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::slack::{
    Click, ClickError, SimMessage, SlackSim, SlackSimConfig, SlackVia,
};
use serde_json::json;
use sha2::Sha256;

const TOKEN: &str = "xoxb-2222-buttons-Qm81";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99slack0sign";
const CHANNEL: &str = "C0SECOPS";
const ALICE: &str = "U0ALICE";
const ALICE_EMAIL: &str = "alice@example.com";
/// A member whose email `users.info` does not show.
const HAL: &str = "U0HAL";
const BOB: &str = "W0BOB";
const BOB_EMAIL: &str = "bob@example.com";
/// Slack's replay window: requests older than five minutes are refused.
const REPLAY_WINDOW_SECS: u64 = 300;

async fn sim() -> SlackSim {
    SlackSim::start(SlackSimConfig {
        bot_token: TOKEN.to_owned(),
        channels: vec![CHANNEL.to_owned(), "C0OTHER".to_owned()],
        users: BTreeMap::from([
            (ALICE_EMAIL.to_owned(), ALICE.to_owned()),
            ("hal@example.com".to_owned(), HAL.to_owned()),
            (BOB_EMAIL.to_owned(), BOB.to_owned()),
        ]),
        hidden_emails: BTreeSet::from([HAL.to_owned()]),
        ..SlackSimConfig::default()
    })
    .await
    .expect("slack sim")
}

fn client(sim: &SlackSim) -> SlackApiClient {
    SlackApiClient::new(
        reqwest::Client::new(),
        "access-requests",
        &sim.api_url(),
        &Secret::new(TOKEN).expect("secret"),
    )
    .expect("client")
}

fn request(token: &str) -> ButtonMessage {
    ButtonMessage {
        channel: CHANNEL.to_owned(),
        text: "Eve Adams asks for admin on prod-db & billing <2h>".to_owned(),
        token: token.to_owned(),
        approve_value: format!("{token}:approve"),
        deny_value: format!("{token}:deny"),
        details: vec![
            "Requester: Eve Adams <eve@example.com>".to_owned(),
            "Reason: INC-4711".to_owned(),
        ],
    }
}

fn plain(text: &str) -> SlackMessage {
    SlackMessage {
        text: text.to_owned(),
        blocks: Vec::new(),
    }
}

fn history_calls(sim: &SlackSim) -> usize {
    sim.requests_to("GET /api/conversations.history").len()
}

fn replies_calls(sim: &SlackSim) -> usize {
    sim.requests_to("GET /api/conversations.replies").len()
}

fn post_calls(sim: &SlackSim) -> usize {
    sim.requests_to("POST /api/chat.postMessage").len()
}

fn only_message(sim: &SlackSim, ts: &str) -> SimMessage {
    sim.message(ts).expect("the posted message")
}

#[tokio::test]
async fn posting_buttons_stores_one_message_with_both_buttons_and_the_token() {
    let sim = sim().await;
    let slack = client(&sim);
    let posted = slack
        .post_buttons(&request("route-7f3a"))
        .await
        .expect("posted");
    assert_eq!(posted.channel, CHANNEL);

    let messages = sim.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.ts, posted.ts);
    assert_eq!(message.channel, CHANNEL);
    assert_eq!(
        message.text.as_deref(),
        Some("Eve Adams asks for admin on prod-db &amp; billing &lt;2h&gt;"),
        "the fallback text is mrkdwn, escaped"
    );
    assert_eq!(
        message.section_texts(),
        [
            "Eve Adams asks for admin on prod-db &amp; billing &lt;2h&gt;",
            "Requester: Eve Adams &lt;eve@example.com&gt;\nReason: INC-4711",
        ]
    );
    let buttons = message.buttons();
    assert_eq!(buttons.len(), 2, "{buttons:?}");
    assert_eq!(buttons[0].action_id, SLACK_APPROVE_ACTION);
    assert_eq!(buttons[0].text.as_deref(), Some("Approve"));
    assert_eq!(buttons[0].style.as_deref(), Some("primary"));
    assert_eq!(buttons[0].value.as_deref(), Some("route-7f3a:approve"));
    assert_eq!(buttons[1].action_id, SLACK_DENY_ACTION);
    assert_eq!(buttons[1].text.as_deref(), Some("Deny"));
    assert_eq!(buttons[1].style.as_deref(), Some("danger"));
    assert_eq!(buttons[1].value.as_deref(), Some("route-7f3a:deny"));
    assert!(buttons[0].block_id.is_some());
    assert_eq!(buttons[0].block_id, buttons[1].block_id);
    assert_eq!(message.event_type(), Some(SLACK_ROUTE_EVENT_TYPE));
    assert_eq!(
        message.event_payload(),
        Some(&json!({"token": "route-7f3a"}))
    );

    let posts = sim.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].via, SlackVia::WebApi);
    let calls = sim.requests_to("POST /api/chat.postMessage");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        calls[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );

    // Refused before any request: values Slack would reject, an empty token or text.
    let long_value = ButtonMessage {
        approve_value: "v".repeat(2001),
        ..request("route-long")
    };
    let empty_deny = ButtonMessage {
        deny_value: String::new(),
        ..request("route-empty")
    };
    let no_token = request("");
    let no_text = ButtonMessage {
        text: "  ".to_owned(),
        ..request("route-no-text")
    };
    for refused in [long_value, empty_deny, no_token, no_text] {
        let err = slack
            .post_buttons(&refused)
            .await
            .expect_err("refused message");
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
    }
    assert_eq!(sim.requests_to("POST /api/chat.postMessage").len(), 1);

    // Slack's refusal in an HTTP 200 is an error.
    let elsewhere = ButtonMessage {
        channel: "C0UNKNOWN".to_owned(),
        ..request("route-elsewhere")
    };
    let err = slack.post_buttons(&elsewhere).await.expect_err("refused");
    assert!(
        matches!(&err, NotifyError::Rejected { code, .. } if code == "channel_not_found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn find_by_token_pages_through_history_and_misses_other_tokens() {
    let sim = sim().await;
    let slack = client(&sim);
    slack
        .post_message(CHANNEL, &plain("before"))
        .await
        .expect("noise");
    let target = slack
        .post_buttons(&request("route-target"))
        .await
        .expect("target");
    // The same token in another channel is not this channel's message.
    slack
        .post_buttons(&ButtonMessage {
            channel: "C0OTHER".to_owned(),
            ..request("route-target")
        })
        .await
        .expect("other channel");
    slack
        .post_buttons(&request("route-other"))
        .await
        .expect("other token");
    slack
        .post_message(CHANNEL, &plain("after"))
        .await
        .expect("noise");

    let expected = Some(PostedMessage {
        channel: CHANNEL.to_owned(),
        ts: target.ts.clone(),
    });
    let found = slack
        .find_by_token(CHANNEL, "route-target", None)
        .await
        .expect("lookup");
    assert_eq!(found, expected);
    assert_eq!(history_calls(&sim), 1, "one page holds the whole history");
    let call = &sim.requests_to("GET /api/conversations.history")[0];
    let query = call.query.clone().unwrap_or_default();
    assert!(query.contains("channel=C0SECOPS"), "{query}");
    assert!(query.contains("include_all_metadata=true"), "{query}");
    assert!(query.contains("limit=200"), "{query}");
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // One message per page: newest first, the target is the third.
    sim.set_history_page_limit(Some(1));
    let found = slack
        .find_by_token(CHANNEL, "route-target", None)
        .await
        .expect("paged lookup");
    assert_eq!(found, expected);
    let paged = sim.requests_to("GET /api/conversations.history");
    assert_eq!(paged.len(), 1 + 3, "{paged:?}");
    assert!(
        !paged[1]
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("cursor="),
        "the first page has no cursor"
    );
    for later in &paged[2..] {
        assert!(
            later
                .query
                .as_deref()
                .is_some_and(|query| query.contains("cursor=")),
            "{later:?}"
        );
    }

    // Another token: every page is read (four messages), then None.
    let before = history_calls(&sim);
    let missing = slack
        .find_by_token(CHANNEL, "route-never-posted", None)
        .await
        .expect("lookup");
    assert_eq!(missing, None);
    assert_eq!(history_calls(&sim) - before, 4);

    // `oldest` is inclusive; a later one leaves the target out.
    let from_target = slack
        .find_by_token(CHANNEL, "route-target", Some(&target.ts))
        .await
        .expect("lookup");
    assert_eq!(from_target, expected);
    let newest = sim.messages().last().map(|m| m.ts.clone()).expect("ts");
    let after_target = slack
        .find_by_token(CHANNEL, "route-target", Some(&newest))
        .await
        .expect("lookup");
    assert_eq!(after_target, None);

    // Without include_all_metadata Slack shows no metadata, so the lookup must ask for it.
    let bare = reqwest::Client::new()
        .get(format!("{}/conversations.history", sim.api_url()))
        .query(&[("channel", CHANNEL)])
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("history")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(bare["ok"], true);
    assert!(
        bare["messages"]
            .as_array()
            .is_some_and(|messages| messages.iter().all(|m| m.get("metadata").is_none())),
        "{bare}"
    );

    // Malformed arguments are refused before any request.
    let calls = history_calls(&sim);
    for (channel, token, oldest) in [
        ("", "route-target", None),
        (CHANNEL, "", None),
        (CHANNEL, "route-target", Some("yesterday")),
    ] {
        let err = slack
            .find_by_token(channel, token, oldest)
            .await
            .expect_err("refused");
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
    }
    assert_eq!(history_calls(&sim), calls);
}

#[tokio::test]
async fn find_by_token_never_answers_from_a_partial_history() {
    let sim = sim().await;
    let slack = client(&sim);
    slack
        .post_buttons(&request("route-buried"))
        .await
        .expect("target");
    for n in 0..SLACK_HISTORY_MAX_PAGES {
        slack
            .post_message(CHANNEL, &plain(&format!("chatter {n}")))
            .await
            .expect("noise");
    }
    sim.set_history_page_limit(Some(1));
    let err = slack
        .find_by_token(CHANNEL, "route-buried", None)
        .await
        .expect_err("more pages than the bound");
    assert!(
        matches!(
            err,
            NotifyError::Decode {
                service: ChannelKind::Slack,
                operation: "conversations.history",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(history_calls(&sim), SLACK_HISTORY_MAX_PAGES);
    // The bound is on pages, not messages: with Slack's page size it is found.
    sim.set_history_page_limit(None);
    assert!(
        slack
            .find_by_token(CHANNEL, "route-buried", None)
            .await
            .expect("lookup")
            .is_some()
    );

    // A page that claims more but gives no cursor is an error, not "not found".
    sim.inject(
        Fault::status(200)
            .on("GET", "/api/conversations.history")
            .with_body(
                "application/json",
                r#"{"ok":true,"messages":[],"has_more":true}"#,
            ),
    );
    let err = slack
        .find_by_token(CHANNEL, "route-buried", None)
        .await
        .expect_err("inconsistent page");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("next_cursor"), "{err}");

    // An unknown conversation is Slack's refusal.
    let err = slack
        .find_by_token("C0NOWHERE", "route-buried", None)
        .await
        .expect_err("unknown channel");
    assert!(
        matches!(&err, NotifyError::Rejected { code, .. } if code == "channel_not_found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn update_message_replaces_the_buttons_with_the_outcome() {
    let sim = sim().await;
    let slack = client(&sim);
    let posted = slack
        .post_buttons(&request("route-upd"))
        .await
        .expect("posted");
    assert!(only_message(&sim, &posted.ts).has_buttons());

    slack
        .update_message(
            &posted.channel,
            &posted.ts,
            "Approved by <@U0ALICE> & granted",
        )
        .await
        .expect("updated");
    let message = only_message(&sim, &posted.ts);
    assert!(!message.has_buttons(), "{message:?}");
    assert_eq!(
        message.text.as_deref(),
        Some("Approved by &lt;@U0ALICE&gt; &amp; granted")
    );
    assert_eq!(
        message.section_texts(),
        ["Approved by &lt;@U0ALICE&gt; &amp; granted"]
    );
    assert_eq!(message.edits, 1);
    assert_eq!(sim.messages().len(), 1, "updated in place, not reposted");
    let call = &sim.requests_to("POST /api/chat.update")[0];
    let body = call.json().expect("json body");
    assert_eq!(body["channel"], CHANNEL);
    assert_eq!(body["ts"], posted.ts.as_str());
    assert_eq!(body["blocks"].as_array().map(Vec::len), Some(1));
    // The metadata stays, so a restart still finds the (now decided) message.
    assert_eq!(
        slack
            .find_by_token(CHANNEL, "route-upd", None)
            .await
            .expect("lookup"),
        Some(posted.clone())
    );

    let err = slack
        .update_message(CHANNEL, "1700000000.999999", "Denied")
        .await
        .expect_err("unknown message");
    assert!(
        matches!(&err, NotifyError::Rejected { code, .. } if code == "message_not_found"),
        "{err:?}"
    );
    let calls = sim.requests_to("POST /api/chat.update").len();
    for (ts, text) in [("not-a-ts", "Denied"), (posted.ts.as_str(), " ")] {
        let err = slack
            .update_message(CHANNEL, ts, text)
            .await
            .expect_err("refused");
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
    }
    assert_eq!(sim.requests_to("POST /api/chat.update").len(), calls);
}

#[tokio::test]
async fn reply_once_posts_one_reply_per_marker_into_the_thread() {
    let sim = sim().await;
    let slack = client(&sim);
    let parent = slack
        .post_buttons(&request("route-thread"))
        .await
        .expect("posted");

    let posted = slack
        .reply_once(
            CHANNEL,
            &parent.ts,
            "[opal:granted]",
            "Granted by <@U0ALICE> & logged",
        )
        .await
        .expect("first reply");
    assert!(posted);
    let replies = sim.replies(CHANNEL, &parent.ts);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0].text.as_deref(),
        Some("Granted by &lt;@U0ALICE&gt; &amp; logged [opal:granted]")
    );
    assert_eq!(replies[0].thread_ts.as_deref(), Some(parent.ts.as_str()));
    assert_eq!(
        sim.posts().last().and_then(|post| post.thread_ts.clone()),
        Some(parent.ts.clone())
    );
    let call = &sim.requests_to("POST /api/chat.postMessage")[1];
    let body = call.json().expect("json body");
    assert_eq!(body["channel"], CHANNEL);
    assert_eq!(body["thread_ts"], parent.ts.as_str());
    assert_eq!(body["unfurl_links"], false);
    let read = &sim.requests_to("GET /api/conversations.replies")[0];
    let query = read.query.clone().unwrap_or_default();
    assert!(query.contains("channel=C0SECOPS"), "{query}");
    assert!(query.contains(&format!("ts={}", parent.ts)), "{query}");
    assert!(query.contains("limit=200"), "{query}");
    assert_eq!(
        read.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // The same marker again: the thread is read, nothing is posted, whatever the text.
    let posts = post_calls(&sim);
    let again = slack
        .reply_once(CHANNEL, &parent.ts, "[opal:granted]", "Granted again")
        .await
        .expect("second call");
    assert!(!again);
    assert_eq!(post_calls(&sim), posts);
    let marked: Vec<SimMessage> = sim
        .replies(CHANNEL, &parent.ts)
        .into_iter()
        .filter(|reply| {
            reply
                .text
                .as_deref()
                .is_some_and(|text| text.contains("[opal:granted]"))
        })
        .collect();
    assert_eq!(marked.len(), 1, "{marked:?}");

    // Another marker is another note.
    assert!(
        slack
            .reply_once(CHANNEL, &parent.ts, "[opal:expired]", "Access expired")
            .await
            .expect("other marker")
    );
    // A long text is cut, the marker is not.
    let long = "x".repeat(5000);
    assert!(
        slack
            .reply_once(CHANNEL, &parent.ts, "[opal:long]", &long)
            .await
            .expect("long reply")
    );
    let replies = sim.replies(CHANNEL, &parent.ts);
    assert_eq!(replies.len(), 3, "{replies:?}");
    let cut = replies[2].text.clone().unwrap_or_default();
    assert!(cut.chars().count() <= 3000, "{}", cut.chars().count());
    assert!(cut.ends_with("… [opal:long]"), "{cut}");
    assert!(
        !slack
            .reply_once(CHANNEL, &parent.ts, "[opal:long]", &long)
            .await
            .expect("long again")
    );

    // Replies live in the thread only: the history shows the parent alone, with its summary.
    assert_eq!(sim.messages().len(), 4);
    assert_eq!(
        slack
            .find_by_token(CHANNEL, "route-thread", None)
            .await
            .expect("lookup"),
        Some(parent.clone())
    );
    let history = reqwest::Client::new()
        .get(format!("{}/conversations.history", sim.api_url()))
        .query(&[("channel", CHANNEL)])
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("history")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let listed = history["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{history}");
    assert_eq!(listed[0]["ts"], parent.ts.as_str());
    assert_eq!(listed[0]["reply_count"], 3);
}

#[tokio::test]
async fn reply_once_never_posts_on_an_unknown_thread_or_a_partial_read() {
    let sim = sim().await;
    let slack = client(&sim);
    let parent = slack
        .post_buttons(&request("route-guard"))
        .await
        .expect("posted");
    let elsewhere = slack
        .post_buttons(&ButtonMessage {
            channel: "C0OTHER".to_owned(),
            ..request("route-elsewhere")
        })
        .await
        .expect("other channel");
    let posts = post_calls(&sim);

    // No such message in this conversation, or no such conversation: Slack's refusal.
    for (channel, ts, code) in [
        (CHANNEL, "1700000000.999999", "thread_not_found"),
        (CHANNEL, elsewhere.ts.as_str(), "thread_not_found"),
        ("C0NOWHERE", parent.ts.as_str(), "channel_not_found"),
    ] {
        let err = slack
            .reply_once(channel, ts, "[opal:x]", "note")
            .await
            .expect_err("unknown thread");
        assert!(
            matches!(&err, NotifyError::Rejected { code: got, .. } if got == code),
            "{channel} {ts}: {err:?}"
        );
    }
    assert_eq!(post_calls(&sim), posts, "nothing posted");
    // The simulator itself refuses a reply to a message of another conversation.
    let answer = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", sim.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": CHANNEL, "thread_ts": elsewhere.ts, "text": "stray"}))
        .send()
        .await
        .expect("post")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(answer, json!({"ok": false, "error": "thread_not_found"}));
    assert!(sim.replies("C0OTHER", &elsewhere.ts).is_empty());

    // A reply's ts is not a thread to note things under.
    assert!(
        slack
            .reply_once(CHANNEL, &parent.ts, "[opal:m0]", "note 0")
            .await
            .expect("reply")
    );
    let reply = sim.replies(CHANNEL, &parent.ts)[0].ts.clone();
    let posts = post_calls(&sim);
    let err = slack
        .reply_once(CHANNEL, &reply, "[opal:nested]", "nested")
        .await
        .expect_err("a reply's ts");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");
    assert_eq!(post_calls(&sim), posts);

    // One message per page: the marker on the last page is still found.
    for n in 1..4 {
        assert!(
            slack
                .reply_once(CHANNEL, &parent.ts, &format!("[opal:m{n}]"), "note")
                .await
                .expect("reply")
        );
    }
    sim.set_history_page_limit(Some(1));
    let (posts, reads) = (post_calls(&sim), replies_calls(&sim));
    assert!(
        !slack
            .reply_once(CHANNEL, &parent.ts, "[opal:m3]", "again")
            .await
            .expect("paged lookup")
    );
    assert_eq!(post_calls(&sim), posts, "no duplicate");
    let paged = sim.requests_to("GET /api/conversations.replies");
    assert_eq!(paged.len() - reads, 5, "the parent and four replies");
    for later in &paged[reads + 1..] {
        assert!(
            later
                .query
                .as_deref()
                .is_some_and(|query| query.contains("cursor=")),
            "{later:?}"
        );
    }
    assert_eq!(sim.replies(CHANNEL, &parent.ts).len(), 4);

    // A thread longer than the page bound is never answered from its first pages.
    for n in 4..SLACK_HISTORY_MAX_PAGES {
        assert!(
            slack
                .reply_once(CHANNEL, &parent.ts, &format!("[opal:m{n}]"), "note")
                .await
                .expect("reply")
        );
    }
    let (posts, reads) = (post_calls(&sim), replies_calls(&sim));
    let err = slack
        .reply_once(CHANNEL, &parent.ts, "[opal:new]", "note")
        .await
        .expect_err("more pages than the bound");
    assert!(
        matches!(
            err,
            NotifyError::Decode {
                service: ChannelKind::Slack,
                operation: "conversations.replies",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(replies_calls(&sim) - reads, SLACK_HISTORY_MAX_PAGES);
    assert_eq!(post_calls(&sim), posts);
    sim.set_history_page_limit(None);

    // Inconsistent pages are errors, not "not found".
    let page = |more: &str| {
        format!(
            r#"{{"ok":true,"messages":[{{"ts":"{}","text":"x"}}],"has_more":true{more}}}"#,
            parent.ts
        )
    };
    sim.inject(
        Fault::status(200)
            .on("GET", "/api/conversations.replies")
            .with_body("application/json", page("")),
    );
    let err = slack
        .reply_once(CHANNEL, &parent.ts, "[opal:new]", "note")
        .await
        .expect_err("more without a cursor");
    assert!(err.to_string().contains("next_cursor"), "{err}");
    for _ in 0..2 {
        sim.inject(
            Fault::status(200)
                .on("GET", "/api/conversations.replies")
                .with_body(
                    "application/json",
                    page(r#","response_metadata":{"next_cursor":"bmV4dF90czox"}"#),
                ),
        );
    }
    let err = slack
        .reply_once(CHANNEL, &parent.ts, "[opal:new]", "note")
        .await
        .expect_err("the same cursor twice");
    assert!(err.to_string().contains("same cursor"), "{err}");
    assert_eq!(post_calls(&sim), posts);
}

#[tokio::test]
async fn reply_once_refuses_bad_arguments_before_any_request() {
    let sim = sim().await;
    let slack = client(&sim);
    let ts = "1700000000.000101";
    let long_marker = "m".repeat(256);
    for (channel, thread_ts, marker, text) in [
        (CHANNEL, ts, "", "note"),
        (CHANNEL, ts, "[opal:\n]\n", "note"),
        (CHANNEL, ts, "<opal>", "note"),
        (CHANNEL, ts, "a&b", "note"),
        (CHANNEL, ts, long_marker.as_str(), "note"),
        (CHANNEL, "not-a-ts", "[opal:x]", "note"),
        (CHANNEL, "", "[opal:x]", "note"),
        ("", ts, "[opal:x]", "note"),
        (CHANNEL, ts, "[opal:x]", " \n "),
    ] {
        let err = slack
            .reply_once(channel, thread_ts, marker, text)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, NotifyError::Config(_)),
            "{channel:?} {thread_ts:?} {marker:?} {text:?}: {err:?}"
        );
    }
    assert_eq!(sim.requests(), [], "nothing reached Slack");
    assert!(sim.posts().is_empty());
}

#[tokio::test]
async fn user_email_for_visible_hidden_and_unknown_members() {
    let sim = sim().await;
    let slack = client(&sim);
    assert_eq!(
        slack.user_email(ALICE).await.expect("alice"),
        Some(ALICE_EMAIL.to_owned())
    );
    assert_eq!(
        slack.user_email(BOB).await.expect("bob"),
        Some(BOB_EMAIL.to_owned())
    );
    assert_eq!(slack.user_email(HAL).await.expect("hal"), None);
    assert_eq!(slack.user_email("U0NOBODY").await.expect("unknown"), None);
    let calls = sim.requests_to("GET /api/users.info");
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0].query.as_deref(), Some("user=U0ALICE"));
    assert_eq!(
        calls[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    for invalid in [
        "",
        "alice",
        "U1",
        "u0alice",
        "B0BOT",
        "U0AL&user=U0HAL",
        "U0 X",
    ] {
        let err = slack.user_email(invalid).await.expect_err("invalid id");
        assert!(
            matches!(err, NotifyError::Config(_)),
            "{invalid:?}: {err:?}"
        );
    }
    assert_eq!(
        sim.requests_to("GET /api/users.info").len(),
        4,
        "invalid ids never reach Slack"
    );

    // Other refusals stay errors.
    sim.inject(Fault::status(200).on("GET", "/api/users.info").with_body(
        "application/json",
        r#"{"ok":false,"error":"missing_scope"}"#,
    ));
    let err = slack.user_email(ALICE).await.expect_err("missing scope");
    assert!(
        matches!(&err, NotifyError::Rejected { code, .. } if code == "missing_scope"),
        "{err:?}"
    );
}

/// What the test endpoint made of each request.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Action(BlockAction),
    Refused(&'static str),
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|now| now.as_secs())
        .unwrap_or_default()
}

/// Slack's documented check: a timestamp within five minutes, then `v0=` and the hex
/// HMAC-SHA256 of `v0:<timestamp>:<raw body>`, compared in constant time.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let timestamp = header("x-slack-request-timestamp").ok_or("no timestamp")?;
    let signature = header("x-slack-signature").ok_or("no signature")?;
    let seconds: u64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    if unix_now().abs_diff(seconds) > REPLAY_WINDOW_SECS {
        return Err("replay");
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|hex_part| hex::decode(hex_part).ok())
        .ok_or("bad signature")?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_SECRET.as_bytes()).map_err(|_| "key")?;
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| "signature mismatch")
}

async fn interactivity(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let seen = match verify(&headers, &body) {
        Err(why) => Seen::Refused(why),
        Ok(()) => match parse_block_action(&body) {
            Ok(action) => Seen::Action(action),
            Err(_) => Seen::Refused("unparsable"),
        },
    };
    let status = match &seen {
        Seen::Action(_) => StatusCode::OK,
        Seen::Refused("unparsable") => StatusCode::BAD_REQUEST,
        Seen::Refused(_) => StatusCode::UNAUTHORIZED,
    };
    if let Ok(mut log) = log.lock() {
        log.push(seen);
    }
    status
}

/// The endpoint on a free loopback port: its URL and what it saw.
async fn endpoint() -> (String, Log, tokio::task::JoinHandle<()>) {
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/slack/interactivity", post(interactivity))
        .with_state(Arc::clone(&log));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}/slack/interactivity"), log, task)
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().map(|log| log.clone()).unwrap_or_default()
}

#[tokio::test]
async fn click_delivers_a_signed_block_action_the_endpoint_can_parse() {
    let sim = sim().await;
    let slack = client(&sim);
    let (url, log, task) = endpoint().await;
    let posted = slack
        .post_buttons(&request("route-click"))
        .await
        .expect("posted");

    let status = sim
        .click(
            &url,
            SIGNING_SECRET,
            &posted.ts,
            ALICE,
            SLACK_APPROVE_ACTION,
        )
        .await
        .expect("click");
    assert_eq!(status, 200, "{:?}", seen(&log));
    let status = sim
        .click(&url, SIGNING_SECRET, &posted.ts, BOB, SLACK_DENY_ACTION)
        .await
        .expect("click");
    assert_eq!(status, 200, "{:?}", seen(&log));
    assert_eq!(
        seen(&log),
        [
            Seen::Action(BlockAction {
                user_id: ALICE.to_owned(),
                team_id: Some("T0SIM".to_owned()),
                channel_id: Some(CHANNEL.to_owned()),
                message_ts: Some(posted.ts.clone()),
                action_id: SLACK_APPROVE_ACTION.to_owned(),
                value: "route-click:approve".to_owned(),
            }),
            Seen::Action(BlockAction {
                user_id: BOB.to_owned(),
                team_id: Some("T0SIM".to_owned()),
                channel_id: Some(CHANNEL.to_owned()),
                message_ts: Some(posted.ts.clone()),
                action_id: SLACK_DENY_ACTION.to_owned(),
                value: "route-click:deny".to_owned(),
            }),
        ]
    );

    // What was sent is the real shape: one form field `payload` with block_actions JSON.
    let sent = sim
        .click_with(Click::new(
            &url,
            SIGNING_SECRET,
            &posted.ts,
            ALICE,
            SLACK_APPROVE_ACTION,
        ))
        .await
        .expect("click");
    assert_eq!(sent.status, 200);
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&sent.sent)
        .into_owned()
        .collect();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0, "payload");
    let payload: serde_json::Value = serde_json::from_str(&fields[0].1).expect("json");
    assert_eq!(payload["type"], "block_actions");
    assert_eq!(payload["user"]["username"], "alice");
    assert_eq!(payload["message"]["ts"], posted.ts.as_str());
    assert_eq!(payload["actions"][0]["type"], "button");
    assert!(
        payload["response_url"]
            .as_str()
            .is_some_and(|url| url.starts_with(&sim.base_url())),
        "{payload}"
    );
    assert!(sent.signature.starts_with("v0="));

    // No such message, or no such button once the buttons are gone.
    let err = sim
        .click(
            &url,
            SIGNING_SECRET,
            "1.000001",
            ALICE,
            SLACK_APPROVE_ACTION,
        )
        .await
        .expect_err("no message");
    assert!(matches!(err, ClickError::NoMessage(_)), "{err:?}");
    slack
        .update_message(CHANNEL, &posted.ts, "Approved by Alice")
        .await
        .expect("updated");
    let err = sim
        .click(
            &url,
            SIGNING_SECRET,
            &posted.ts,
            ALICE,
            SLACK_APPROVE_ACTION,
        )
        .await
        .expect_err("no button");
    assert!(matches!(err, ClickError::NoButton { .. }), "{err:?}");
    assert_eq!(seen(&log).len(), 3, "failed clicks send nothing");
    task.abort();
}

#[tokio::test]
async fn a_tampered_or_wrongly_signed_click_fails_verification() {
    let sim = sim().await;
    let slack = client(&sim);
    let (url, log, task) = endpoint().await;
    let posted = slack
        .post_buttons(&request("route-tamper"))
        .await
        .expect("posted");

    // Turn the Approve click into a Deny after signing.
    let tampered = sim
        .click_with(
            Click::new(
                &url,
                SIGNING_SECRET,
                &posted.ts,
                ALICE,
                SLACK_APPROVE_ACTION,
            )
            .tamper(|body| {
                let text = String::from_utf8_lossy(body).replace("approve", "deny");
                *body = text.into_bytes();
            }),
        )
        .await
        .expect("click");
    assert_eq!(tampered.status, 401);
    assert!(
        String::from_utf8_lossy(&tampered.sent).contains("route-tamper%3Adeny"),
        "the tampered body was sent"
    );

    let wrong_secret = sim
        .click(
            &url,
            "not-the-secret",
            &posted.ts,
            ALICE,
            SLACK_APPROVE_ACTION,
        )
        .await
        .expect("click");
    assert_eq!(wrong_secret, 401);
    let forged = sim
        .click_with(
            Click::new(
                &url,
                SIGNING_SECRET,
                &posted.ts,
                ALICE,
                SLACK_APPROVE_ACTION,
            )
            .with_signature(format!("v0={}", "0".repeat(64))),
        )
        .await
        .expect("click");
    assert_eq!(forged.status, 401);
    assert_eq!(
        seen(&log),
        [
            Seen::Refused("signature mismatch"),
            Seen::Refused("signature mismatch"),
            Seen::Refused("signature mismatch"),
        ]
    );
    task.abort();
}

#[tokio::test]
async fn an_old_click_is_correctly_signed_and_rejected_as_a_replay() {
    let sim = sim().await;
    let slack = client(&sim);
    let (url, log, task) = endpoint().await;
    let posted = slack
        .post_buttons(&request("route-replay"))
        .await
        .expect("posted");

    let old = unix_now() - 2 * REPLAY_WINDOW_SECS;
    let replayed = sim
        .click_with(
            Click::new(&url, SIGNING_SECRET, &posted.ts, ALICE, SLACK_DENY_ACTION)
                .at_timestamp(old),
        )
        .await
        .expect("click");
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.timestamp, old.to_string());
    assert_eq!(seen(&log), [Seen::Refused("replay")]);

    // The old request is a genuine one, only late: its signature is valid for its timestamp.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("key");
    mac.update(format!("v0:{old}:").as_bytes());
    mac.update(&replayed.sent);
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(replayed.signature, expected);
    let parsed = parse_block_action(&replayed.sent).expect("parsable");
    assert_eq!(parsed.value, "route-replay:deny");
    assert_eq!(parsed.message_ts.as_deref(), Some(posted.ts.as_str()));
    task.abort();
}
