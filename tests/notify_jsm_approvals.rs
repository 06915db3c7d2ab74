//! Jira Service Management approvals over loopback HTTP: `JiraClient::approvals` and
//! `JiraClient::answer_approval` against the Jira simulator — the approval a new request gets,
//! decisions made by an approver (through the simulator's hook and as the calling user), paging,
//! lenient decoding, and refusals (403 for a non-approver, 400 once decided, 401, 404).

use opal_operator::notify::{
    APPROVAL_MAX_PAGES, APPROVAL_PAGE_LIMIT, Approval, ApprovalDecision, Approver, ChannelKind,
    JiraClient, NewRequest, NotifyError,
};
use opal_operator::secret::Secret;
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::jira::{
    JiraSim, JiraSimConfig, ServiceDeskSpec, SimApprover, SimDecision,
};
use serde_json::json;

const TOKEN: &str = "jsm-api-token-Ap42Vx";
const APPROVALS: &str = "/rest/servicedeskapi/request/ITSD-1/approval";
const OLIVIA: &str = "olivia.chen@example.com";
const MARCUS: &str = "marcus.webb@example.com";

async fn sim_as(email: &str) -> JiraSim {
    JiraSim::start(JiraSimConfig {
        email: email.to_owned(),
        api_token: TOKEN.to_owned(),
        ..JiraSimConfig::default()
    })
    .await
    .expect("jira sim")
}

async fn sim() -> JiraSim {
    sim_as(&JiraSimConfig::default().email).await
}

fn client_as(sim: &JiraSim, email: &str, token: &str) -> JiraClient {
    JiraClient::new(
        reqwest::Client::new(),
        "it-desk",
        ChannelKind::JiraServiceManagement,
        &sim.site_url(),
        email,
        &Secret::new(token).expect("secret"),
    )
    .expect("client")
}

fn client(sim: &JiraSim) -> JiraClient {
    client_as(sim, &JiraSimConfig::default().email, TOKEN)
}

/// Opens a request on the default desk ("1", request type "10"); returns its key.
async fn open_request(client: &JiraClient) -> String {
    client
        .create_request(&NewRequest {
            service_desk_id: "1".into(),
            request_type_id: "10".into(),
            summary: "Access to payroll-admins for eve@example.com".into(),
            description: "Requested by the access policy payroll.".into(),
            labels: vec!["opal-request".into()],
            raise_on_behalf_of: None,
        })
        .await
        .expect("request created")
        .key
}

fn approver(account_id: &str, email: &str, decision: ApprovalDecision) -> Approver {
    Approver {
        account_id: account_id.into(),
        email: Some(email.into()),
        decision,
    }
}

fn only(approvals: Vec<Approval>) -> Approval {
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    approvals.into_iter().next().expect("one approval")
}

fn http_status(err: &NotifyError) -> u16 {
    match err {
        NotifyError::Http { status, .. } => *status,
        other => panic!("expected an HTTP failure, got {other:?}"),
    }
}

/// `(start, limit)` of every approvals list request.
fn pages_asked(sim: &JiraSim) -> Vec<(String, String)> {
    sim.requests_to(&format!("GET {APPROVALS}"))
        .iter()
        .map(|request| {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(
                request.query.as_deref().unwrap_or_default().as_bytes(),
            )
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("start"), get("limit"))
        })
        .collect()
}

#[tokio::test]
async fn a_new_request_has_one_pending_approval_naming_both_approvers() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_request(&client).await;
    assert_eq!(key, "ITSD-1");

    let approval = only(client.approvals(&key).await.expect("approvals"));
    assert_eq!(
        approval,
        Approval {
            id: approval.id.clone(),
            name: "Access approval".into(),
            final_decision: ApprovalDecision::Pending,
            approvers: vec![
                approver("acc-olivia", OLIVIA, ApprovalDecision::Pending),
                approver("acc-marcus", MARCUS, ApprovalDecision::Pending),
            ],
            completed_at: None,
        }
    );
    assert!(!approval.id.is_empty());
    // The issue id names the request as well as its key.
    let by_id = sim.issues()[0].id.clone();
    assert_eq!(
        only(client.approvals(&by_id).await.expect("by id")),
        approval
    );
    // The wire shape the client read.
    let page = sim.requests_to(&format!("GET {APPROVALS}"));
    assert_eq!(page[0].status, 200);
    assert_eq!(
        pages_asked(&sim)[0],
        ("0".to_owned(), APPROVAL_PAGE_LIMIT.to_string())
    );
    let stored = sim.approvals(&key);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].final_decision, SimDecision::Pending);
}

#[tokio::test]
async fn an_approver_approving_decides_the_approval() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_request(&client).await;

    assert!(sim.decide_approval(&key, "acc-olivia", true));
    let approval = only(client.approvals(&key).await.expect("approvals"));
    assert_eq!(approval.final_decision, ApprovalDecision::Approved);
    assert_eq!(
        approval.approvers,
        vec![
            approver("acc-olivia", OLIVIA, ApprovalDecision::Approved),
            approver("acc-marcus", MARCUS, ApprovalDecision::Pending),
        ]
    );
    let completed = approval.completed_at.expect("a completed date");
    assert!(completed.starts_with("20"), "{completed}");
    // Decided: no approver can decide it again.
    assert!(!sim.decide_approval(&key, "acc-marcus", false));
    assert_eq!(
        only(client.approvals(&key).await.expect("approvals")).final_decision,
        ApprovalDecision::Approved
    );
}

#[tokio::test]
async fn an_approver_declining_decides_the_approval() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_request(&client).await;

    assert!(sim.decide_approval(&key, "acc-marcus", false));
    let approval = only(client.approvals(&key).await.expect("approvals"));
    assert_eq!(approval.final_decision, ApprovalDecision::Declined);
    assert_eq!(
        approval.approvers,
        vec![
            approver("acc-olivia", OLIVIA, ApprovalDecision::Pending),
            approver("acc-marcus", MARCUS, ApprovalDecision::Declined),
        ]
    );
    assert!(approval.completed_at.is_some());
}

#[tokio::test]
async fn the_decision_hook_refuses_unknown_issues_and_approvers() {
    let sim = sim().await;
    let key = open_request(&client(&sim)).await;
    assert!(!sim.decide_approval("ITSD-99", "acc-olivia", true));
    assert!(!sim.decide_approval(&key, "acc-nobody", true));
    assert!(sim.approvals("ITSD-99").is_empty());
    assert_eq!(sim.approvals(&key)[0].final_decision, SimDecision::Pending);
}

#[tokio::test]
async fn approvals_are_followed_across_pages_until_the_last() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_request(&client).await;
    let second = sim.add_approval(&key, "Manager approval").expect("second");
    let third = sim.add_approval(&key, "Owner approval").expect("third");
    assert!(sim.decide_approval(&key, "acc-olivia", true));
    // The site honours at most one approval per page, whatever the client asks for.
    sim.set_approval_page_limit(1);

    let approvals = client.approvals(&key).await.expect("approvals");
    let names: Vec<&str> = approvals.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["Access approval", "Manager approval", "Owner approval"]
    );
    assert_eq!(approvals[1].id, second);
    assert_eq!(approvals[2].id, third);
    assert_eq!(approvals[0].final_decision, ApprovalDecision::Approved);
    assert_eq!(approvals[2].final_decision, ApprovalDecision::Pending);
    assert_eq!(approvals[2].approvers.len(), 2);
    // Three pages, each starting after what the previous one returned; none after the last.
    let limit = APPROVAL_PAGE_LIMIT.to_string();
    assert_eq!(
        pages_asked(&sim),
        [
            ("0".to_owned(), limit.clone()),
            ("1".to_owned(), limit.clone()),
            ("2".to_owned(), limit),
        ]
    );
}

#[tokio::test]
async fn a_site_that_never_reaches_the_last_page_is_an_error_not_a_partial_list() {
    let sim = sim().await;
    let client = client(&sim);
    for n in 0..=APPROVAL_MAX_PAGES {
        let page = json!({
            "size": 1, "start": n, "limit": 1, "isLastPage": false,
            "values": [{"id": n.to_string(), "name": "Loop", "finalDecision": "pending", "approvers": []}],
        });
        sim.inject(
            Fault::status(200)
                .on("GET", APPROVALS)
                .with_body("application/json", page.to_string()),
        );
    }
    let err = client.approvals("ITSD-1").await.expect_err("bounded");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 20 pages"), "{err}");
    assert_eq!(pages_asked(&sim).len(), APPROVAL_MAX_PAGES);
    assert_eq!(sim.pending_faults(), 1);
}

#[tokio::test]
async fn an_unknown_decision_from_the_site_reads_as_pending() {
    let sim = sim().await;
    let client = client(&sim);
    let page = json!({
        "size": 1, "start": 0, "limit": 50, "isLastPage": true,
        "values": [{
            "id": "5", "name": "Access approval", "finalDecision": "escalated",
            "canAnswerApproval": false,
            "approvers": [{
                "approver": {"accountId": "acc-olivia", "emailAddress": OLIVIA, "displayName": "Olivia Chen"},
                "approverDecision": "delegated",
            }],
            "createdDate": {"iso8601": "2026-01-01T00:00:00+0000"},
        }],
    });
    sim.inject(
        Fault::status(200)
            .on("GET", APPROVALS)
            .with_body("application/json", page.to_string()),
    );
    let approval = only(client.approvals("ITSD-1").await.expect("decodes"));
    assert_eq!(approval.id, "5");
    assert_eq!(approval.final_decision, ApprovalDecision::Pending);
    assert_eq!(
        approval.approvers,
        vec![approver("acc-olivia", OLIVIA, ApprovalDecision::Pending)]
    );
}

#[tokio::test]
async fn a_site_user_who_is_not_an_approver_is_refused_with_403() {
    let sim = sim().await;
    let client = client(&sim);
    let key = open_request(&client).await;
    let id = sim.approvals(&key)[0].id.clone();

    let err = client
        .answer_approval(&key, &id, true)
        .await
        .expect_err("not an approver");
    assert_eq!(http_status(&err), 403);
    assert!(err.to_string().contains("not an approver"), "{err}");
    let approval = only(client.approvals(&key).await.expect("approvals"));
    assert_eq!(approval.final_decision, ApprovalDecision::Pending);
    assert!(
        approval
            .approvers
            .iter()
            .all(|a| a.decision == ApprovalDecision::Pending)
    );
    let answered = sim.requests_to(&format!("POST {APPROVALS}/{id}"));
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].json(), Some(json!({"decision": "approve"})));
}

#[tokio::test]
async fn an_approver_answers_as_the_calling_user_once() {
    let sim = sim_as(OLIVIA).await;
    let client = client_as(&sim, OLIVIA, TOKEN);
    let key = open_request(&client).await;
    let id = sim.approvals(&key)[0].id.clone();

    let approval = client
        .answer_approval(&key, &id, true)
        .await
        .expect("approved");
    assert_eq!(approval.id, id);
    assert_eq!(approval.final_decision, ApprovalDecision::Approved);
    assert_eq!(
        approval.approvers,
        vec![
            approver("acc-olivia", OLIVIA, ApprovalDecision::Approved),
            approver("acc-marcus", MARCUS, ApprovalDecision::Pending),
        ]
    );
    assert!(approval.completed_at.is_some());
    assert_eq!(only(client.approvals(&key).await.expect("list")), approval);

    // Already decided: 400 with JSM's message, and the decision stands.
    let err = client
        .answer_approval(&key, &id, false)
        .await
        .expect_err("already decided");
    assert_eq!(http_status(&err), 400);
    assert!(err.to_string().contains("already been decided"), "{err}");
    assert_eq!(sim.approvals(&key)[0].final_decision, SimDecision::Approved);
}

#[tokio::test]
async fn an_approver_declines_as_the_calling_user() {
    let sim = sim_as(MARCUS).await;
    let client = client_as(&sim, MARCUS, TOKEN);
    let key = open_request(&client).await;
    let id = sim.approvals(&key)[0].id.clone();

    let approval = client
        .answer_approval(&key, &id, false)
        .await
        .expect("declined");
    assert_eq!(approval.final_decision, ApprovalDecision::Declined);
    assert_eq!(
        approval.approvers[1],
        approver("acc-marcus", MARCUS, ApprovalDecision::Declined)
    );
    assert_eq!(
        sim.requests_to(&format!("POST {APPROVALS}/{id}"))[0].json(),
        Some(json!({"decision": "decline"}))
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_401() {
    let sim = sim().await;
    let key = open_request(&client(&sim)).await;
    let id = sim.approvals(&key)[0].id.clone();
    let intruder = client_as(&sim, &JiraSimConfig::default().email, "wrong-token");

    let err = intruder.approvals(&key).await.expect_err("unauthenticated");
    assert_eq!(http_status(&err), 401);
    assert!(!err.to_string().contains("wrong-token"), "{err}");
    let err = intruder
        .answer_approval(&key, &id, true)
        .await
        .expect_err("unauthenticated");
    assert_eq!(http_status(&err), 401);
    assert_eq!(sim.approvals(&key)[0].final_decision, SimDecision::Pending);
}

#[tokio::test]
async fn unknown_requests_and_approvals_are_404() {
    let sim = sim_as(OLIVIA).await;
    let client = client_as(&sim, OLIVIA, TOKEN);
    let key = open_request(&client).await;

    let err = client.approvals("ITSD-404").await.expect_err("no request");
    assert_eq!(http_status(&err), 404);
    let err = client
        .answer_approval(&key, "999", true)
        .await
        .expect_err("no approval");
    assert_eq!(http_status(&err), 404);
}

#[tokio::test]
async fn a_desk_without_approvers_opens_requests_without_approvals() {
    let sim = JiraSim::start(JiraSimConfig {
        api_token: TOKEN.to_owned(),
        service_desks: vec![ServiceDeskSpec {
            id: "1".into(),
            project_key: "ITSD".into(),
            request_type_ids: vec!["10".into()],
            approvers: Vec::new(),
        }],
        ..JiraSimConfig::default()
    })
    .await
    .expect("jira sim");
    let client = client(&sim);
    let key = open_request(&client).await;
    assert!(client.approvals(&key).await.expect("approvals").is_empty());
    assert!(sim.approvals(&key).is_empty());
    assert!(!sim.decide_approval(&key, "acc-olivia", true));
    // The default desk's approvers, for reference.
    assert_eq!(
        JiraSimConfig::default().service_desks[0].approvers[0],
        SimApprover::new("acc-olivia", OLIVIA, "Olivia Chen")
    );
}
