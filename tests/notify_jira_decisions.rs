//! Decisions carried by a plain Jira issue's status, over loopback HTTP against the Jira
//! simulator: `JiraClient::status_history` (the current status and every status change from
//! the changelog, paged when the embedded one is truncated), `JiraClient::user_email`, and
//! `decision_from` (the latest change into the approve or deny status names the decider).
//! Keys that are not Jira issue keys are refused before any request.

use opal_operator::notify::{
    CHANGELOG_MAX_PAGES, CHANGELOG_PAGE_LIMIT, ChannelKind, IssueDecisionState, JiraClient,
    NewIssue, NotifyError, StatusChange, decision_from,
};
use opal_operator::secret::Secret;
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::jira::{JiraSim, JiraSimConfig, SimStatus, SimUser};
use serde_json::json;

const TOKEN: &str = "jira-api-token-Dc91Qz";
const APPROVE: &str = "Approved";
const DENY: &str = "Declined";
const ANN: &str = "acc-ann";
const ANN_EMAIL: &str = "ann.lee@example.com";
const BOB: &str = "acc-bob";
const BOB_EMAIL: &str = "bob.ray@example.com";
/// A user whose privacy settings hide their email.
const HAL: &str = "acc-hal";
/// An account id with characters that must be encoded in a query.
const ODD: &str = "557058:f5&x=1 #";

fn config() -> JiraSimConfig {
    JiraSimConfig {
        api_token: TOKEN.to_owned(),
        users: vec![
            SimUser::new(ANN, ANN_EMAIL, "Ann Lee"),
            SimUser::new(BOB, BOB_EMAIL, "Bob Ray"),
            SimUser::new(HAL, "hal.moss@example.com", "Hal Moss").hiding_email(),
            SimUser::new(ODD, "odd@example.com", "Odd Id"),
        ],
        extra_statuses: vec![
            SimStatus::new("10100", APPROVE, "done", "41"),
            SimStatus::new("10101", DENY, "done", "51"),
        ],
        ..JiraSimConfig::default()
    }
}

async fn sim() -> JiraSim {
    JiraSim::start(config()).await.expect("jira sim")
}

fn client_with(sim: &JiraSim, token: &str) -> JiraClient {
    JiraClient::new(
        reqwest::Client::new(),
        "access-requests",
        ChannelKind::Jira,
        &sim.site_url(),
        &JiraSimConfig::default().email,
        &Secret::new(token).expect("secret"),
    )
    .expect("client")
}

fn client(sim: &JiraSim) -> JiraClient {
    client_with(sim, TOKEN)
}

/// Opens the issue of one Opal request; returns its key.
async fn open_issue(client: &JiraClient) -> String {
    client
        .create_issue(&NewIssue {
            project_key: "SEC".into(),
            issue_type: "Task".into(),
            summary: "Access to payroll-admins for eve@example.com".into(),
            description: json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Requested by eve."}]},
            ]}),
            labels: vec!["opal-request-r1".into()],
        })
        .await
        .expect("issue created")
        .key
}

/// `(author account id, author email, to status)` of each change.
fn authors(state: &IssueDecisionState) -> Vec<(Option<&str>, Option<&str>, &str)> {
    state
        .changes
        .iter()
        .map(|change| {
            (
                change.author_account_id.as_deref(),
                change.author_email.as_deref(),
                change.to_status.as_str(),
            )
        })
        .collect()
}

fn decision(state: &IssueDecisionState) -> Option<(bool, Option<String>, Option<String>)> {
    decision_from(state, APPROVE, DENY)
}

fn decided(
    approve: bool,
    account_id: &str,
    email: Option<&str>,
) -> Option<(bool, Option<String>, Option<String>)> {
    Some((approve, Some(account_id.into()), email.map(str::to_owned)))
}

fn query_of(sim: &JiraSim, route: &str) -> Vec<Vec<(String, String)>> {
    sim.requests_to(route)
        .iter()
        .map(|request| {
            url::form_urlencoded::parse(request.query.as_deref().unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn http_status(err: &NotifyError) -> u16 {
    match err {
        NotifyError::Http { status, .. } => *status,
        other => panic!("expected an HTTP failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_issue_moved_to_approved_reads_as_approved_by_that_user() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, ANN, APPROVE));

    let state = client.status_history(&key).await.expect("history");
    let recorded = sim.issues()[0].history[0].created.clone();
    assert_eq!(
        state,
        IssueDecisionState {
            status: APPROVE.into(),
            changes: vec![StatusChange {
                to_status: APPROVE.into(),
                from_status: "To Do".into(),
                author_account_id: Some(ANN.into()),
                author_email: Some(ANN_EMAIL.into()),
                at: recorded,
            }],
        }
    );
    assert_eq!(decision(&state), decided(true, ANN, Some(ANN_EMAIL)));
    // One read of the issue with its changelog; not truncated, so no paging.
    assert_eq!(
        query_of(&sim, &format!("GET /rest/api/3/issue/{key}")),
        [vec![pair("fields", "status"), pair("expand", "changelog")]]
    );
    assert!(
        sim.requests_to(&format!("GET /rest/api/3/issue/{key}/changelog"))
            .is_empty()
    );
}

#[tokio::test]
async fn an_issue_moved_to_declined_reads_as_denied() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, BOB, "In Progress"));
    assert!(sim.transition_as(&key, BOB, DENY));

    let state = client.status_history(&key).await.expect("history");
    assert_eq!(state.status, DENY);
    assert_eq!(
        authors(&state),
        [
            (Some(BOB), Some(BOB_EMAIL), "In Progress"),
            (Some(BOB), Some(BOB_EMAIL), DENY),
        ]
    );
    assert_eq!(decision(&state), decided(false, BOB, Some(BOB_EMAIL)));
}

#[tokio::test]
async fn approved_then_reopened_is_undecided_until_declined_by_someone_else() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, ANN, APPROVE));
    assert!(sim.transition_as(&key, ANN, "To Do"));

    let reopened = client.status_history(&key).await.expect("history");
    assert_eq!(reopened.status, "To Do");
    assert_eq!(decision(&reopened), None);

    assert!(sim.transition_as(&key, BOB, DENY));
    let state = client.status_history(&key).await.expect("history");
    assert_eq!(
        authors(&state),
        [
            (Some(ANN), Some(ANN_EMAIL), APPROVE),
            (Some(ANN), Some(ANN_EMAIL), "To Do"),
            (Some(BOB), Some(BOB_EMAIL), DENY),
        ]
    );
    assert_eq!(decision(&state), decided(false, BOB, Some(BOB_EMAIL)));
    // The resolution items the sim logs into and out of done statuses are not status changes.
    assert_eq!(state.changes.len(), 3);
}

#[tokio::test]
async fn a_transition_made_through_the_api_is_authored_by_the_caller() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    client
        .resolve(&key, Some(APPROVE), None)
        .await
        .expect("moved to Approved");

    let state = client.status_history(&key).await.expect("history");
    let caller = JiraSimConfig::default();
    assert_eq!(
        decision(&state),
        decided(true, &caller.account_id, Some(&caller.email))
    );
}

#[tokio::test]
async fn a_truncated_embedded_changelog_is_read_in_full_through_paging() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, ANN, APPROVE));
    assert!(sim.transition_as(&key, HAL, "To Do"));
    assert!(sim.transition_as(&key, BOB, DENY));
    let untruncated = client.status_history(&key).await.expect("history");

    sim.set_embedded_changelog_limit(1);
    sim.set_changelog_page_limit(2);
    let state = client.status_history(&key).await.expect("paged history");
    assert_eq!(state, untruncated);
    assert_eq!(
        authors(&state),
        [
            (Some(ANN), Some(ANN_EMAIL), APPROVE),
            (Some(HAL), None, "To Do"),
            (Some(BOB), Some(BOB_EMAIL), DENY),
        ]
    );
    assert_eq!(decision(&state), decided(false, BOB, Some(BOB_EMAIL)));
    // Two pages (the site caps them at 2), the second starting after the first.
    let limit = CHANGELOG_PAGE_LIMIT.to_string();
    assert_eq!(
        query_of(&sim, &format!("GET /rest/api/3/issue/{key}/changelog")),
        [
            vec![pair("startAt", "0"), pair("maxResults", &limit)],
            vec![pair("startAt", "2"), pair("maxResults", &limit)],
        ]
    );
}

#[tokio::test]
async fn a_changelog_longer_than_the_page_bound_is_an_error_not_a_partial_list() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    sim.set_embedded_changelog_limit(0);
    sim.set_changelog_page_limit(1);
    let toggle = |n: usize| {
        if n.is_multiple_of(2) {
            APPROVE
        } else {
            "To Do"
        }
    };
    for n in 0..CHANGELOG_MAX_PAGES {
        assert!(sim.transition_as(&key, ANN, toggle(n)));
    }
    // Exactly the bound: read in full.
    let state = client.status_history(&key).await.expect("at the bound");
    assert_eq!(state.changes.len(), CHANGELOG_MAX_PAGES);

    assert!(sim.transition_as(&key, BOB, toggle(CHANGELOG_MAX_PAGES)));
    let changelog = format!("GET /rest/api/3/issue/{key}/changelog");
    let before = sim.requests_to(&changelog).len();
    let err = client.status_history(&key).await.expect_err("bounded");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 20 pages"), "{err}");
    assert_eq!(
        sim.requests_to(&changelog).len() - before,
        CHANGELOG_MAX_PAGES
    );
}

#[tokio::test]
async fn a_failing_changelog_page_fails_the_whole_read() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, ANN, APPROVE));
    assert!(sim.transition_as(&key, BOB, DENY));
    sim.set_embedded_changelog_limit(1);
    sim.set_changelog_page_limit(1);
    // The second page fails: no partial history comes back.
    sim.inject(
        Fault::status(200)
            .on("GET", &format!("/rest/api/3/issue/{key}/changelog"))
            .with_body(
                "application/json",
                json!({"startAt": 0, "maxResults": 1, "total": 2, "isLast": false, "values": [
                    {"id": "1", "created": "2026-12-07T10:00:00.000+0000",
                     "author": {"accountId": ANN},
                     "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                                "fromString": "To Do", "toString": APPROVE}]},
                ]})
                .to_string(),
            ),
    );
    sim.inject(Fault::status(503).on("GET", &format!("/rest/api/3/issue/{key}/changelog")));
    let err = client.status_history(&key).await.expect_err("page failed");
    assert_eq!(http_status(&err), 503);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_hidden_email_reads_as_none_and_visible_ones_are_looked_up() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    assert!(sim.transition_as(&key, HAL, APPROVE));

    let state = client.status_history(&key).await.expect("history");
    assert_eq!(authors(&state), [(Some(HAL), None, APPROVE)]);
    assert_eq!(decision(&state), decided(true, HAL, None));
    assert_eq!(client.user_email(HAL).await.expect("hal"), None);
    assert_eq!(
        client.user_email(ANN).await.expect("ann").as_deref(),
        Some(ANN_EMAIL)
    );
    assert_eq!(
        client.user_email("acc-nobody").await.expect("unknown"),
        None
    );
    // The account id goes through the query builder: characters of its own are encoded.
    assert_eq!(
        client.user_email(ODD).await.expect("odd").as_deref(),
        Some("odd@example.com")
    );
    let asked = query_of(&sim, "GET /rest/api/3/user");
    assert_eq!(asked.len(), 4);
    assert_eq!(asked[3], [pair("accountId", ODD)]);
    let raw = sim.requests_to("GET /rest/api/3/user")[3].query.clone();
    assert_eq!(raw.as_deref(), Some("accountId=557058%3Af5%26x%3D1+%23"));
}

#[tokio::test]
async fn a_404_that_is_not_jiras_is_a_failure_not_an_unknown_user() {
    let sim = sim().await;
    let client = client(&sim);
    sim.inject(
        Fault::status(404)
            .on("GET", "/rest/api/3/user")
            .with_body("text/html", "<html>Not Found</html>"),
    );
    let err = client.user_email(ANN).await.expect_err("proxy 404");
    assert_eq!(http_status(&err), 404);
}

#[tokio::test]
async fn tampered_keys_are_refused_before_any_request() {
    let sim = sim().await;
    let client = client(&sim);
    for key in [
        "ABC-1/../../user",
        "abc-1",
        "ABC-1?x=1",
        "ABC-1#x",
        "ABC-1 ",
        "ABC-",
        "",
        "10001",
    ] {
        let err = client.status_history(key).await.expect_err(key);
        match &err {
            NotifyError::Config(message) => {
                assert!(message.contains("not a Jira issue key"), "{key}: {message}");
                assert!(message.contains("access-requests"), "{key}: {message}");
            }
            other => panic!("{key}: expected a refusal, got {other:?}"),
        }
    }
    for account_id in ["", "a\nb"] {
        let err = client.user_email(account_id).await.expect_err(account_id);
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
    }
    let requests = sim.requests();
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn an_issue_still_in_to_do_carries_no_decision() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;

    let state = client.status_history(&key).await.expect("history");
    assert_eq!(
        state,
        IssueDecisionState {
            status: "To Do".into(),
            changes: Vec::new(),
        }
    );
    assert_eq!(decision(&state), None);
    assert!(sim.transition_as(&key, ANN, "In Progress"));
    let state = client.status_history(&key).await.expect("history");
    assert_eq!(decision(&state), None);
    assert_eq!(
        authors(&state),
        [(Some(ANN), Some(ANN_EMAIL), "In Progress")]
    );
}

#[tokio::test]
async fn an_issue_created_in_the_decision_status_has_no_decider() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    let body = json!({
        "id": "10001", "key": key,
        "fields": {"status": {"name": APPROVE, "id": "10100", "statusCategory": {"key": "done"}}},
        "changelog": {"startAt": 0, "maxResults": 0, "total": 0, "histories": []},
    });
    sim.inject(
        Fault::status(200)
            .on("GET", &format!("/rest/api/3/issue/{key}"))
            .with_body("application/json", body.to_string()),
    );
    let state = client.status_history(&key).await.expect("history");
    assert_eq!(decision(&state), Some((true, None, None)));
}

#[tokio::test]
async fn a_custom_field_called_status_cannot_forge_a_decision() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_issue(&client).await;
    let body = json!({
        "id": "10001", "key": key,
        "fields": {"status": {"name": APPROVE, "id": "10100", "statusCategory": {"key": "done"}}},
        "changelog": {"startAt": 0, "maxResults": 2, "total": 2, "histories": [
            {"id": "1", "created": "2026-12-07T10:00:00.000+0000",
             "author": {"accountId": ANN, "emailAddress": ANN_EMAIL},
             "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                        "fromString": "To Do", "toString": APPROVE}]},
            {"id": "2", "created": "2026-12-07T10:01:00.000+0000",
             "author": {"accountId": "acc-mallory"},
             "items": [{"field": "status", "fieldtype": "custom",
                        "fieldId": "customfield_10042", "toString": APPROVE}]},
        ]},
    });
    sim.inject(
        Fault::status(200)
            .on("GET", &format!("/rest/api/3/issue/{key}"))
            .with_body("application/json", body.to_string()),
    );
    let state = client.status_history(&key).await.expect("history");
    assert_eq!(authors(&state), [(Some(ANN), Some(ANN_EMAIL), APPROVE)]);
    assert_eq!(decision(&state), decided(true, ANN, Some(ANN_EMAIL)));
}

#[tokio::test]
async fn unknown_issues_and_wrong_credentials_are_failures() {
    let sim = sim().await;
    let key = open_issue(&client(&sim)).await;

    let err = client(&sim)
        .status_history("SEC-404")
        .await
        .expect_err("no issue");
    assert_eq!(http_status(&err), 404);
    assert!(err.to_string().contains("does not exist"), "{err}");

    let intruder = client_with(&sim, "wrong-token");
    let err = intruder.status_history(&key).await.expect_err("401");
    assert_eq!(http_status(&err), 401);
    assert!(!err.to_string().contains("wrong-token"), "{err}");
    let err = intruder.user_email(ANN).await.expect_err("401");
    assert_eq!(http_status(&err), 401);
}
