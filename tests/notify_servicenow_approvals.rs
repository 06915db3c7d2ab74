//! ServiceNow approvals over loopback HTTP: `ServiceNowClient::approvals` and
//! `ServiceNowClient::user_email` against the ServiceNow simulator — the approval records a new
//! requested item gets, decisions made through the simulator's hook, paging through a capped
//! page size, lenient decoding, sys_ids refused before any request, and the approvals of other
//! tasks kept out.

use std::collections::BTreeMap;

use opal_operator::notify::{ApprovalState, NotifyError, ServiceNowClient, TaskApproval};
use opal_operator::secret::Secret;
use opal_operator::sim::notify::Fault;
use opal_operator::sim::notify::servicenow::{ServiceNowSim, ServiceNowSimConfig, SimSnUser};
use serde_json::{Value, json};

const PASSWORD: &str = "sn-password-Ap93Lk";
const APPROVALS: &str = "/api/now/table/sysapproval_approver";
const ANA: &str = "5137153cc611227c000bbd1bd8cd2005";
const BEN: &str = "46d44a23a9fe19810012d100cca80666";
const CAI: &str = "a8f98bb0eb32010045e1a5115206fe3a";
/// A user without an email.
const DEV: &str = "9ee1b13dc6112271007f9d0efdb69cd0";
const NOBODY: &str = "0123456789abcdef0123456789abcdef";

fn user(sys_id: &str, user_name: &str, email: &str) -> SimSnUser {
    SimSnUser {
        sys_id: sys_id.to_owned(),
        user_name: user_name.to_owned(),
        email: email.to_owned(),
        name: user_name.to_owned(),
    }
}

async fn sim_with(approvers: Vec<SimSnUser>) -> ServiceNowSim {
    ServiceNowSim::start(ServiceNowSimConfig {
        password: PASSWORD.to_owned(),
        approvers,
        approval_tables: vec!["sc_req_item".to_owned()],
        ..ServiceNowSimConfig::default()
    })
    .await
    .expect("servicenow sim")
}

/// Ana, Ben and Cai approve every requested item.
async fn sim() -> ServiceNowSim {
    sim_with(vec![
        user(ANA, "ana.lima", "ana.lima@example.com"),
        user(BEN, "ben.okafor", "ben.okafor@example.com"),
        user(CAI, "cai.wen", "cai.wen@example.com"),
    ])
    .await
}

fn client_with(sim: &ServiceNowSim, password: &str) -> ServiceNowClient {
    ServiceNowClient::new(
        reqwest::Client::new(),
        "snow",
        &sim.instance_url(),
        &ServiceNowSimConfig::default().username,
        &Secret::new(password).expect("secret"),
    )
    .expect("client")
}

fn client(sim: &ServiceNowSim) -> ServiceNowClient {
    client_with(sim, PASSWORD)
}

/// Opens a requested item; returns its sys_id.
async fn open_item(client: &ServiceNowClient) -> String {
    let fields = BTreeMap::from([
        (
            "short_description".to_owned(),
            "Access to payroll-admins for eve@example.com".to_owned(),
        ),
        ("correlation_id".to_owned(), "opal-request-r-1".to_owned()),
    ]);
    let record = client
        .create("sc_req_item", &fields)
        .await
        .expect("requested item created");
    assert!(record.number.starts_with("RITM"), "{record:?}");
    record.sys_id
}

fn approvers(approvals: &[TaskApproval]) -> Vec<&str> {
    approvals
        .iter()
        .map(|a| a.approver_sys_id.as_deref().expect("an approver"))
        .collect()
}

fn state_of<'a>(approvals: &'a [TaskApproval], approver: &str) -> &'a ApprovalState {
    &approvals
        .iter()
        .find(|a| a.approver_sys_id.as_deref() == Some(approver))
        .unwrap_or_else(|| panic!("no approval of {approver} in {approvals:?}"))
        .state
}

fn sorted(mut ids: Vec<&str>) -> Vec<&str> {
    ids.sort_unstable();
    ids
}

/// Query parameters of every approval list request, in order.
fn approval_queries(sim: &ServiceNowSim) -> Vec<BTreeMap<String, String>> {
    sim.requests_to(&format!("GET {APPROVALS}"))
        .iter()
        .map(|request| {
            url::form_urlencoded::parse(request.query.as_deref().unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

/// The task's own `approval` field, read over the Table API.
async fn task_approval_field(sim: &ServiceNowSim, sys_id: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/now/table/sc_req_item/{sys_id}",
            sim.instance_url()
        ))
        .basic_auth(ServiceNowSimConfig::default().username, Some(PASSWORD))
        .header("accept", "application/json")
        .query(&[("sysparm_fields", "approval")])
        .send()
        .await
        .expect("task read")
        .json()
        .await
        .expect("task json");
    answer["result"]["approval"]
        .as_str()
        .expect("approval field")
        .to_owned()
}

/// A `200` list answer for the next approvals query, as a real instance could send it.
fn inject_page(sim: &ServiceNowSim, result: Value) {
    sim.inject(
        Fault::status(200)
            .on("GET", APPROVALS)
            .with_body("application/json", json!({ "result": result }).to_string()),
    );
}

#[tokio::test]
async fn a_new_requested_item_has_one_requested_approval_per_approver() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;

    let approvals = client.approvals(&item).await.expect("approvals");
    assert_eq!(sorted(approvers(&approvals)), sorted(vec![ANA, BEN, CAI]));
    assert!(
        approvals
            .iter()
            .all(|a| a.state == ApprovalState::Requested),
        "{approvals:?}"
    );
    let stored = sim.approvals(&item);
    let mut stored_ids: Vec<&str> = stored.iter().map(|r| r.sys_id.as_str()).collect();
    let mut read_ids: Vec<&str> = approvals.iter().map(|a| a.sys_id.as_str()).collect();
    stored_ids.sort_unstable();
    read_ids.sort_unstable();
    assert_eq!(read_ids, stored_ids);
    for approval in &approvals {
        let record = stored
            .iter()
            .find(|r| r.sys_id == approval.sys_id)
            .expect("stored approval");
        assert_eq!(approval.updated_on, record.field("sys_updated_on"));
        assert!(
            chrono::NaiveDateTime::parse_from_str(&approval.updated_on, "%Y-%m-%d %H:%M:%S")
                .is_ok(),
            "{approval:?}"
        );
    }
    assert_eq!(task_approval_field(&sim, &item).await, "requested");

    let queries = approval_queries(&sim);
    assert_eq!(queries.len(), 1, "{queries:?}");
    let query = &queries[0];
    assert!(
        query["sysparm_query"].starts_with(&format!("sysapproval={item}^ORDERBY")),
        "{query:?}"
    );
    assert_eq!(query["sysparm_exclude_reference_link"], "true");
    assert_eq!(query["sysparm_offset"], "0");
    let fields: Vec<&str> = query["sysparm_fields"].split(',').collect();
    for field in ["sys_id", "state", "approver", "sys_updated_on"] {
        assert!(fields.contains(&field), "{fields:?}");
    }
}

#[tokio::test]
async fn an_approval_reads_approved_for_that_approver_and_requested_for_the_others() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;

    assert!(sim.decide_approval(&item, BEN, true));
    let approvals = client.approvals(&item).await.expect("approvals");
    assert_eq!(approvals.len(), 3);
    assert_eq!(state_of(&approvals, BEN), &ApprovalState::Approved);
    assert_eq!(state_of(&approvals, ANA), &ApprovalState::Requested);
    assert_eq!(state_of(&approvals, CAI), &ApprovalState::Requested);
    // Oldest update first: the decision is the newest change.
    assert_eq!(approvals[2].approver_sys_id.as_deref(), Some(BEN));
    assert!(approvals[2].updated_on > approvals[1].updated_on);
    assert_eq!(task_approval_field(&sim, &item).await, "approved");
}

#[tokio::test]
async fn a_rejection_reads_rejected() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;

    assert!(sim.decide_approval(&item, CAI, false));
    let approvals = client.approvals(&item).await.expect("approvals");
    assert_eq!(state_of(&approvals, CAI), &ApprovalState::Rejected);
    assert_eq!(state_of(&approvals, ANA), &ApprovalState::Requested);
    assert_eq!(task_approval_field(&sim, &item).await, "rejected");
    assert!(!sim.decide_approval(&item, NOBODY, false));
}

#[tokio::test]
async fn approvals_page_through_a_capped_page_size_in_update_order() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;
    // Decided in the order Cai, Ana, Ben: each decision is one second newer.
    assert!(sim.decide_approval(&item, CAI, true));
    assert!(sim.decide_approval(&item, ANA, false));
    assert!(sim.decide_approval(&item, BEN, true));
    sim.set_page_limit(Some(1));

    let approvals = client.approvals(&item).await.expect("approvals");
    assert_eq!(approvers(&approvals), [CAI, ANA, BEN]);
    assert_eq!(
        approvals
            .iter()
            .map(|a| a.state.clone())
            .collect::<Vec<_>>(),
        [
            ApprovalState::Approved,
            ApprovalState::Rejected,
            ApprovalState::Approved
        ]
    );
    assert!(
        approvals
            .windows(2)
            .all(|w| w[0].updated_on < w[1].updated_on)
    );
    let queries = approval_queries(&sim);
    let pages: Vec<(&str, &str)> = queries
        .iter()
        .map(|q| (q["sysparm_offset"].as_str(), q["sysparm_limit"].as_str()))
        .collect();
    assert_eq!(pages, [("0", "100"), ("1", "100"), ("2", "100")]);
}

#[tokio::test]
async fn user_email_reads_the_configured_email_and_none_otherwise() {
    let sim = sim_with(vec![
        user(ANA, "ana.lima", "ana.lima@example.com"),
        user(DEV, "dev.null", ""),
    ])
    .await;
    let client = client(&sim);

    assert_eq!(
        client.user_email(ANA).await.expect("ana"),
        Some("ana.lima@example.com".to_owned())
    );
    assert_eq!(client.user_email(DEV).await.expect("dev"), None);
    assert_eq!(client.user_email(NOBODY).await.expect("unknown"), None);
    let asked: Vec<String> = sim
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.route(), r.status))
        .collect();
    assert_eq!(
        asked,
        [
            format!("GET /api/now/table/sys_user/{ANA} 200"),
            format!("GET /api/now/table/sys_user/{DEV} 200"),
            format!("GET /api/now/table/sys_user/{NOBODY} 404"),
        ]
    );
}

#[tokio::test]
async fn an_unknown_state_reads_as_other() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;
    let added = sim.add_approval(&item, ANA, "awaiting_review");

    let approvals = client.approvals(&item).await.expect("approvals");
    assert_eq!(approvals.len(), 4);
    let last = approvals.last().expect("the added approval");
    assert_eq!(last.sys_id, added);
    assert_eq!(last.state, ApprovalState::Other("awaiting_review".into()));
    assert_eq!(last.state.as_str(), "awaiting_review");
    for (text, state) in [
        ("requested", ApprovalState::Requested),
        ("approved", ApprovalState::Approved),
        ("rejected", ApprovalState::Rejected),
        ("cancelled", ApprovalState::Cancelled),
        ("not_required", ApprovalState::NotRequired),
        ("", ApprovalState::Other(String::new())),
        ("Approved", ApprovalState::Other("Approved".into())),
    ] {
        assert_eq!(ApprovalState::from(text), state);
        assert_eq!(state.as_str(), text);
    }
}

#[tokio::test]
async fn an_injected_sys_id_is_refused_before_any_request() {
    let sim = sim().await;
    let client = client(&sim);
    let item = open_item(&client).await;
    let before = sim.requests().len();

    for tampered in [
        "abc^ORsysapproval!=x",
        format!("{item}^ORsysapproval!=x").as_str(),
        format!("{}^", &item[..31]).as_str(),
        format!("{}=", &item[..31]).as_str(),
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        &item[..31],
        format!("{item}0").as_str(),
        "",
    ] {
        let err = client
            .approvals(tampered)
            .await
            .expect_err("a tampered task sys_id");
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains("is not a ServiceNow sys_id"),
            "{err}"
        );
    }
    for tampered in [
        "../sc_req_item",
        "abc^ORsysapproval!=x",
        format!("{ANA}?x=1").as_str(),
    ] {
        let err = client
            .user_email(tampered)
            .await
            .expect_err("a tampered user sys_id");
        assert!(matches!(err, NotifyError::Config(_)), "{err:?}");
    }
    assert!(approval_queries(&sim).is_empty());
    assert_eq!(sim.requests().len(), before, "{:?}", sim.requests());
}

#[tokio::test]
async fn the_approvals_of_another_task_are_never_returned() {
    let sim = sim().await;
    let client = client(&sim);
    let first = open_item(&client).await;
    let second = open_item(&client).await;
    assert!(sim.decide_approval(&second, ANA, true));
    sim.add_approval(&second, BEN, "cancelled");
    sim.add_approval(NOBODY, CAI, "approved");

    let approvals = client.approvals(&first).await.expect("approvals");
    let mine: Vec<String> = sim
        .approvals(&first)
        .into_iter()
        .map(|r| r.sys_id)
        .collect();
    assert_eq!(approvals.len(), 3);
    assert!(
        approvals.iter().all(|a| mine.contains(&a.sys_id)),
        "{approvals:?}"
    );
    assert!(
        approvals
            .iter()
            .all(|a| a.state == ApprovalState::Requested)
    );
    assert_eq!(client.approvals(&second).await.expect("second").len(), 4);

    // An instance that ignored the query and answered with another task's record.
    inject_page(
        &sim,
        json!([{"sys_id": NOBODY, "state": "approved", "approver": CAI,
                "sysapproval": second, "sys_updated_on": "2026-01-01 00:00:09"}]),
    );
    let err = client
        .approvals(&first)
        .await
        .expect_err("a foreign record");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains(&second), "{err}");
}

#[tokio::test]
async fn references_decode_as_plain_sys_ids_or_link_objects() {
    let sim = sim().await;
    let client = client(&sim);
    let task = NOBODY;
    let link = |table: &str, id: &str| json!({"link": format!("https://acme.service-now.com/api/now/table/{table}/{id}"), "value": id});
    // Newest first on the wire: the client sorts by update time. No X-Total-Count: a short
    // page is the last.
    inject_page(
        &sim,
        json!([
            {"sys_id": "c3", "state": "approved", "approver": link("sys_user", BEN),
             "sysapproval": link("task", task), "sys_updated_on": "2026-02-01 10:00:03"},
            {"sys_id": "c2", "state": "requested", "approver": "",
             "sysapproval": task, "sys_updated_on": "2026-02-01 10:00:02"},
            {"sys_id": "c1", "state": "not_required", "approver": ANA,
             "sysapproval": {"display_value": "RITM0010001", "value": task},
             "sys_updated_on": "2026-02-01 10:00:01", "extra": "ignored"},
        ]),
    );
    let approvals = client.approvals(task).await.expect("approvals");
    assert_eq!(
        approvals,
        [
            TaskApproval {
                sys_id: "c1".into(),
                state: ApprovalState::NotRequired,
                approver_sys_id: Some(ANA.into()),
                updated_on: "2026-02-01 10:00:01".into(),
            },
            TaskApproval {
                sys_id: "c2".into(),
                state: ApprovalState::Requested,
                approver_sys_id: None,
                updated_on: "2026-02-01 10:00:02".into(),
            },
            TaskApproval {
                sys_id: "c3".into(),
                state: ApprovalState::Approved,
                approver_sys_id: Some(BEN.into()),
                updated_on: "2026-02-01 10:00:03".into(),
            },
        ]
    );
    assert_eq!(approval_queries(&sim).len(), 1);
}

#[tokio::test]
async fn no_approvals_is_an_empty_list_and_failures_are_errors() {
    let sim = sim().await;
    let client = client(&sim);
    let incident = client
        .create("incident", &BTreeMap::new())
        .await
        .expect("incident")
        .sys_id;
    assert!(sim.approvals(&incident).is_empty());
    assert!(client.approvals(&incident).await.expect("none").is_empty());

    // Table API v1 answers an empty result with 404.
    sim.inject(Fault::status(404).on("GET", APPROVALS).with_body(
        "application/json",
        json!({"error": {"message": "No Record found", "detail": "Records matching query not found"}, "status": "failure"}).to_string(),
    ));
    assert!(
        client
            .approvals(&incident)
            .await
            .expect("v1 none")
            .is_empty()
    );

    // A 404 that is not ServiceNow's (a proxy, a wrong instance path) is no answer at all.
    sim.inject(
        Fault::status(404)
            .on("GET", APPROVALS)
            .with_body("text/html", "<html><body>Not Found</body></html>"),
    );
    let err = client.approvals(&incident).await.expect_err("foreign 404");
    assert_eq!(err.status(), Some(404));
    sim.inject(Fault::status(404).on("GET", "/api/now/table/sys_user/"));
    let err = client.user_email(ANA).await.expect_err("foreign 404");
    assert_eq!(err.status(), Some(404));

    sim.inject(Fault::status(503).on("GET", APPROVALS));
    let err = client.approvals(&incident).await.expect_err("503");
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retryable());

    inject_page(&sim, json!({"not": "a list"}));
    let err = client.approvals(&incident).await.expect_err("not a list");
    assert!(matches!(err, NotifyError::Decode { .. }), "{err:?}");

    let wrong = client_with(&sim, "not-the-password");
    let err = wrong.approvals(&incident).await.expect_err("401");
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("User Not Authenticated"), "{err}");
    let err = wrong.user_email(ANA).await.expect_err("401");
    assert_eq!(err.status(), Some(401));
}
