//! Just-in-time requests on the real apiserver: an AccessPolicy's `requests` rules approve and
//! deny pending Opal requests once each, with the rule in the comment, through a ledger of
//! Secrets; a request no rule matches is left alone; a ledger entry claimed before a restart
//! is carried out as recorded, not decided again.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use libtest_mimic::Failed;
use opal_operator::controller::requests::{
    ClickRecorder, Entry, Index, LEDGER_TYPE, Ledger, Phase, ROUTE_INDEX, WINDOW_INDEX,
    WindowRecord, entry_name,
};
use opal_operator::crd::{AccessPolicy, RequestsStatus};
use opal_operator::notify::{
    BlockAction, ChannelConfig, JiraConfig, JiraDecisionStatuses, JsmConfig, NotifyConfig,
    PagerDutyConfig, PagerDutyRestConfig, SLACK_APPROVE_ACTION, ServiceNowConfig, SlackApiConfig,
};
use opal_operator::opal::model::ApprovalLevel;
use opal_operator::secret::{SecretKeySelector, SecretRef};
use opal_operator::sim::hris::FaultRates;
use opal_operator::sim::notify::jira::{JiraSim, JiraSimConfig, SimApprover, SimStatus, SimUser};
use opal_operator::sim::notify::pagerduty::{IncidentStatus, PagerDutySim, PagerDutySimConfig};
use opal_operator::sim::notify::servicenow::{ServiceNowSim, ServiceNowSimConfig, SimSnUser};
use opal_operator::sim::notify::slack::{Click, ClickOutcome, SlackSim, SlackSimConfig};
use opal_operator::sim::opal::{GrantTarget, NewRequest};
use opal_operator::standalone::Sources;
use opal_operator::webhooks::{ClickRecorded, ClickSink};
use serde_json::{Value, json};

use super::harness::{
    InProcessOperator, OperatorOptions, Org, api, events_for, eventually, opal_user_id,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(rules_approve_and_deny_pending_requests_once_and_resume_claimed_entries),
        e2e_trial!(only_a_first_level_on_call_requester_is_approved_at_once),
        e2e_trial!(routed_requests_are_decided_once_by_an_eligible_jsm_approver),
        e2e_trial!(approved_grants_are_cut_to_their_rule_and_removed_once_they_outlive_it),
        e2e_trial!(requests_routed_to_servicenow_are_decided_by_an_eligible_approval_record),
        e2e_trial!(requests_routed_to_a_jira_issue_are_decided_by_its_status_transition),
        e2e_trial!(old_ledger_entries_go_once_decided_but_never_while_opal_shows_them_pending),
        e2e_trial!(requests_routed_to_slack_are_decided_by_an_eligible_click),
    ]
}

const DECISION: Duration = Duration::from_secs(60);
const BREAK_GLASS: &str = "Production Break-Glass";
const CONTRACTORS: &str = "Contractors";
/// Engineering in the sample HR data.
const ENGINEER: &str = "yara.reyes@acme.example";
/// Sales in the sample HR data.
const SALES: &str = "zara.singh@acme.example";
const RESUMED_COMMENT: &str = "denied by a decision claimed before the restart";

fn jit_policy(namespace: &str) -> Result<AccessPolicy, Failed> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": {"name": "jit", "namespace": namespace},
        "spec": {"requests": [
            {"name": "deny-open-ended", "match": {"durationAbove": "168h"}, "action": "Deny"},
            {"name": "engineers-break-glass", "action": "AutoApprove", "match": {
                "requester": {"matchLabels": {"department": "Engineering"}},
                "targets": [{"group": {"name": BREAK_GLASS}}],
                "targetTags": {"sensitivity": "high"},
                "durationAtMost": "4h"}},
        ]},
    }))?)
}

fn group(org: &Org, name: &str) -> Result<GrantTarget, Failed> {
    org.opal
        .state()
        .group_id(name)
        .map(GrantTarget::Group)
        .ok_or_else(|| format!("group {name:?} is not in the sample org").into())
}

fn pending(
    org: &Org,
    requester: &str,
    target: GrantTarget,
    minutes: i64,
) -> Result<String, Failed> {
    Ok(org.opal.state().add_pending_request(NewRequest {
        requester_id: requester.to_owned(),
        target_user_id: None,
        reason: "handover".to_owned(),
        duration_minutes: minutes,
        items: vec![(target, String::new())],
    })?)
}

fn status(org: &Org, request_id: &str) -> String {
    org.opal
        .state()
        .request(request_id)
        .map(|request| request.status)
        .unwrap_or_default()
}

/// A ledger entry as the operator would have claimed it just before being killed.
fn claimed_entry(namespace: &str, request_id: &str) -> Secret {
    let data = [
        ("requestId", request_id),
        ("phase", "Claimed"),
        ("decidedBy", "opal-system/earlier"),
        ("rule", "earlier-rule"),
        ("action", "Deny"),
        ("comment", RESUMED_COMMENT),
        ("claimedAt", "2026-12-01T00:00:00+00:00"),
        ("outcome", ""),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(entry_name(request_id)),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        type_: Some(LEDGER_TYPE.to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A channel's credentials Secret in the operator namespace.
async fn credentials(ctx: &TestContext, name: &str, string_data: Value) -> Result<(), Failed> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ctx.namespace},
        "stringData": string_data,
    }))?;
    api::<Secret>(&ctx.client, &ctx.namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

async fn ledger_phase(ctx: &TestContext, request_id: &str) -> Result<Option<String>, Failed> {
    let secret = api::<Secret>(&ctx.client, &ctx.namespace)
        .get_opt(&entry_name(request_id))
        .await?;
    Ok(secret.and_then(|secret| {
        secret
            .data?
            .get("phase")
            .map(|phase| String::from_utf8_lossy(&phase.0).into_owned())
    }))
}

async fn rules_approve_and_deny_pending_requests_once_and_resume_claimed_entries(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "10m").await?;
    org.manifests
        .access_policies
        .push(jit_policy(&ctx.namespace)?);
    org.apply_manifests(&ctx.client).await?;
    let engineer = opal_user_id(&org, ENGINEER)?;
    let seller = opal_user_id(&org, SALES)?;
    let approve = pending(&org, &engineer, group(&org, BREAK_GLASS)?, 60)?;
    let deny = pending(&org, &engineer, group(&org, CONTRACTORS)?, -1)?;
    let untouched = pending(&org, &seller, group(&org, BREAK_GLASS)?, 60)?;
    // Claimed before a restart with a decision today's rules would not make.
    let resumed = pending(&org, &seller, group(&org, CONTRACTORS)?, 30)?;
    api::<Secret>(&ctx.client, &ctx.namespace)
        .create(
            &PostParams::default(),
            &claimed_entry(&ctx.namespace, &resumed),
        )
        .await?;

    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-requests".into(),
        },
    )
    .await?;
    eventually(
        "the rules decide both requests and the claim is resumed",
        DECISION,
        || async {
            let statuses = [
                status(&org, &approve),
                status(&org, &deny),
                status(&org, &resumed),
            ];
            Ok((statuses == ["APPROVED", "DENIED", "DENIED"]).then_some(()))
        },
    )
    .await?;
    let held = org.opal.state().user_grants(&engineer);
    if !held
        .iter()
        .any(|grant| Some(&grant.target) == group(&org, BREAK_GLASS).ok().as_ref())
    {
        return Err(format!("the approved request granted nothing: {held:?}").into());
    }

    let opal = Sources::from_config(&org.config()?)?.opal;
    let comments = |id: String| {
        let opal = opal.clone();
        async move {
            Ok::<Vec<String>, Failed>(
                opal.request_comments(&id)
                    .await?
                    .into_iter()
                    .map(|c| c.comment)
                    .collect(),
            )
        }
    };
    let approved_comments = comments(approve.clone()).await?;
    if !approved_comments
        .iter()
        .any(|c| c.contains("AccessPolicy") && c.contains("\"engineers-break-glass\""))
    {
        return Err(format!("the approval names no rule: {approved_comments:?}").into());
    }
    let denied_comments = comments(deny.clone()).await?;
    if !denied_comments
        .iter()
        .any(|c| c.contains("\"deny-open-ended\""))
    {
        return Err(format!("the denial names no rule: {denied_comments:?}").into());
    }
    if comments(resumed.clone()).await? != [RESUMED_COMMENT] {
        return Err("the resumed claim was decided again instead of carried out".into());
    }
    for id in [&approve, &deny, &resumed] {
        let phase = ledger_phase(&ctx, id).await?;
        if phase.as_deref() != Some("Applied") {
            return Err(format!("ledger entry of {id} is {phase:?}, not Applied").into());
        }
    }

    // Several more passes go by: nothing is decided twice, and the unmatched request stays
    // with Opal's reviewers without a ledger entry, judged again only when something it
    // depends on changed (here at most the HR view, after the syncs the decisions trigger),
    // not on every pass.
    let requester_reads = || org.opal.counters().calls("GET /user");
    let read_before = requester_reads();
    passes(&org, 4, "four more passes over pending requests").await?;
    if status(&org, &untouched) != "PENDING" || ledger_phase(&ctx, &untouched).await?.is_some() {
        return Err("a request no rule matches was acted on".into());
    }
    let judged_again = requester_reads() - read_before;
    if judged_again > 2 {
        return Err(format!(
            "the unmatched request was judged again {judged_again} times in four passes"
        )
        .into());
    }
    let counters = org.opal.counters();
    let decisions =
        counters.calls("POST /requests/{id}/approve") + counters.calls("POST /requests/{id}/deny");
    if decisions != 3 {
        return Err(format!("expected 3 decisions sent to Opal, saw {decisions}").into());
    }
    operator.stop().await
}

const ESCALATION_POLICY: &str = "PSREPRD";
/// Both in the sample org; the first answers pages, the second is only the backup.
const FIRST_RESPONDER: &str = "andrei.wong@acme.example";
const BACKUP: &str = "lucas.vasquez@acme.example";

fn pagerduty_secret_ref(key: &str) -> SecretRef {
    SecretRef::SecretKeyRef(SecretKeySelector {
        name: "pagerduty-credentials".into(),
        key: key.into(),
    })
}

/// The on-call rule asks PagerDuty's REST API through a channel of the operator config; a
/// level-1 responder's break-glass request is approved, the level-2 backup's is not.
async fn only_a_first_level_on_call_requester_is_approved_at_once(
    ctx: TestContext,
) -> Result<(), Failed> {
    let pagerduty = PagerDutySim::start(PagerDutySimConfig::default()).await?;
    let first = pagerduty.add_user(FIRST_RESPONDER, "First Responder");
    let backup = pagerduty.add_user(BACKUP, "Backup");
    pagerduty.put_on_call(&first, ESCALATION_POLICY, None, 1);
    pagerduty.put_on_call(&backup, ESCALATION_POLICY, None, 2);
    credentials(
        &ctx,
        "pagerduty-credentials",
        json!({
            "routing-key": PagerDutySimConfig::default().routing_keys[0],
            "api-key": pagerduty.api_key(),
        }),
    )
    .await?;
    let notify = NotifyConfig {
        channels: [(
            "pagerduty".to_owned(),
            ChannelConfig::PagerDuty(PagerDutyConfig {
                events_url: pagerduty.events_url(),
                routing_key: pagerduty_secret_ref("routing-key"),
                source: "opal-operator".into(),
                component: None,
                group: None,
                rest: Some(PagerDutyRestConfig {
                    api_url: pagerduty.rest_url(),
                    api_key: pagerduty_secret_ref("api-key"),
                    from_email: None,
                    service_id: None,
                }),
            }),
        )]
        .into(),
        outbox: Default::default(),
    };
    let mut org =
        Org::start_with(&ctx.namespace, "10m", Some(serde_json::to_value(&notify)?)).await?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "on-call", "namespace": ctx.namespace},
            "spec": {"requests": [{
                "name": "first-responders-break-glass",
                "action": "AutoApprove",
                "match": {
                    "targets": [{"group": {"name": BREAK_GLASS}}],
                    "durationAtMost": "2h",
                    "requesterOnCall": {
                        "channel": "pagerduty",
                        "escalationPolicyIds": [ESCALATION_POLICY],
                        "maxEscalationLevel": 1,
                    },
                },
            }]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let responder_request = pending(
        &org,
        &opal_user_id(&org, FIRST_RESPONDER)?,
        group(&org, BREAK_GLASS)?,
        60,
    )?;
    let backup_request = pending(
        &org,
        &opal_user_id(&org, BACKUP)?,
        group(&org, BREAK_GLASS)?,
        60,
    )?;

    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-requests-on-call".into(),
        },
    )
    .await?;
    eventually(
        "the first responder's request is approved",
        DECISION,
        || async { Ok((status(&org, &responder_request) == "APPROVED").then_some(())) },
    )
    .await?;
    // The backup's request was looked at in the same pass (both were pending) and left alone.
    if status(&org, &backup_request) != "PENDING"
        || ledger_phase(&ctx, &backup_request).await?.is_some()
    {
        return Err("a level-2 responder was approved by a level-1 rule".into());
    }
    operator.stop().await
}

/// Yara's manager in the sample HR data.
const YARAS_MANAGER: &str = "amara.kaur@acme.example";
/// An Engineering approver named in the route.
const LISTED_APPROVER: &str = "laila.singh@acme.example";
/// Marketing in the sample HR data.
const MARKETING: &str = "zara.hansen@acme.example";
/// Engineering, and no approver at all.
const OTHER_ENGINEER: &str = "ayesha.lee@acme.example";

fn account(email: &str) -> String {
    format!("acc-{}", email.split('@').next().unwrap_or_default())
}

/// `Route` opens one JSM request per Opal request and carries out the first eligible answer:
/// the requester's HR manager approves Yara's request; Laila's own answer on hers is refused
/// and noted; Zara's (Sales) waits past `waitAtMost` and is denied; Ayesha's is approved by an
/// Opal admin meanwhile and recorded as decided elsewhere. Every ticket ends resolved with what
/// happened, and nothing is sent to Opal or JSM twice.
async fn routed_requests_are_decided_once_by_an_eligible_jsm_approver(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut jira_config = JiraSimConfig::default();
    jira_config.service_desks[0].approvers = [YARAS_MANAGER, LISTED_APPROVER, OTHER_ENGINEER]
        .into_iter()
        .map(|email| SimApprover {
            account_id: account(email),
            email: email.to_owned(),
            display_name: email.to_owned(),
        })
        .collect();
    let jira = JiraSim::start(jira_config.clone()).await?;
    credentials(
        &ctx,
        "jsm-credentials",
        json!({"api-token": jira_config.api_token}),
    )
    .await?;
    let desk = &jira_config.service_desks[0];
    let notify = NotifyConfig {
        channels: [(
            "jsm".to_owned(),
            ChannelConfig::JiraServiceManagement(JsmConfig {
                url: jira.site_url(),
                email: jira_config.email.clone(),
                api_token: SecretRef::SecretKeyRef(SecretKeySelector {
                    name: "jsm-credentials".into(),
                    key: "api-token".into(),
                }),
                service_desk_id: desk.id.clone(),
                request_type_id: desk.request_type_ids[0].clone(),
                raise_on_behalf_of: None,
                resolve_transition: None,
            }),
        )]
        .into(),
        outbox: Default::default(),
    };
    let mut org =
        Org::start_with(&ctx.namespace, "10m", Some(serde_json::to_value(&notify)?)).await?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "routed", "namespace": ctx.namespace},
            "spec": {"requests": [
                // Misconfigured: no such channel. Its request waits and blocks nothing else.
                {"name": "marketing-break-glass", "action": "Route",
                 "match": {"requester": {"matchLabels": {"department": "Marketing"}}},
                 "route": {"channel": "no-such-desk"}},
                {"name": "sales-break-glass", "action": "Route",
                 "match": {"requester": {"matchLabels": {"department": "Sales"}},
                           "targets": [{"group": {"name": BREAK_GLASS}}]},
                 "route": {"channel": "jsm", "approvers": [LISTED_APPROVER], "waitAtMost": "3s"}},
                {"name": "engineers-break-glass", "action": "Route",
                 "match": {"requester": {"matchLabels": {"department": "Engineering"}},
                           "targets": [{"group": {"name": BREAK_GLASS}}]},
                 "route": {"channel": "jsm", "approvers": [LISTED_APPROVER], "requesterManager": true}},
            ]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let break_glass = group(&org, BREAK_GLASS)?;
    // Asked first, so a pass that stopped at its failure would decide nothing else.
    let misrouted = pending(
        &org,
        &opal_user_id(&org, MARKETING)?,
        break_glass.clone(),
        60,
    )?;
    let yara = pending(
        &org,
        &opal_user_id(&org, ENGINEER)?,
        break_glass.clone(),
        60,
    )?;
    let laila = pending(
        &org,
        &opal_user_id(&org, LISTED_APPROVER)?,
        break_glass.clone(),
        60,
    )?;
    let zara = pending(&org, &opal_user_id(&org, SALES)?, break_glass.clone(), 60)?;
    let ayesha = pending(
        &org,
        &opal_user_id(&org, OTHER_ENGINEER)?,
        break_glass.clone(),
        60,
    )?;

    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-routes".into(),
        },
    )
    .await?;
    let ticket_of = |request_id: &str| {
        let label = entry_name(request_id);
        jira.issues()
            .into_iter()
            .find(|issue| issue.labels.contains(&label))
    };
    let tickets = eventually("a JSM request per routed request", DECISION, || async {
        let found: Vec<_> = [&yara, &laila, &zara, &ayesha]
            .iter()
            .map(|id| ticket_of(id))
            .collect();
        Ok(found
            .iter()
            .all(Option::is_some)
            .then(|| found.into_iter().flatten().collect::<Vec<_>>()))
    })
    .await?;
    let [yara_ticket, laila_ticket, zara_ticket, ayesha_ticket] =
        [0, 1, 2, 3].map(|i| tickets[i].key.clone());

    if !jira.decide_approval(&yara_ticket, &account(YARAS_MANAGER), true)
        || !jira.decide_approval(&laila_ticket, &account(LISTED_APPROVER), true)
    {
        return Err("the JSM approvals to answer are missing".into());
    }
    let opal = Sources::from_config(&org.config()?)?.opal;
    opal.approve_request(
        &ayesha,
        &ApprovalLevel::Admin,
        Some("approved by an Opal admin"),
    )
    .await?;
    eventually(
        "the manager's approval, the deadline and the admin's approval are settled",
        DECISION,
        || async {
            let statuses = [
                status(&org, &yara),
                status(&org, &zara),
                status(&org, &ayesha),
            ];
            let phases = [
                ledger_phase(&ctx, &yara).await?,
                ledger_phase(&ctx, &zara).await?,
                ledger_phase(&ctx, &ayesha).await?,
            ];
            let done = statuses == ["APPROVED", "DENIED", "APPROVED"]
                && phases
                    == [
                        Some("Applied".to_owned()),
                        Some("Applied".to_owned()),
                        Some("DecidedElsewhere".to_owned()),
                    ];
            Ok(done.then_some(()))
        },
    )
    .await
    .map_err(|error| {
        format!(
            "{}; now {:?} in Opal, tickets {:?}",
            error.message().unwrap_or_default(),
            [
                status(&org, &yara),
                status(&org, &zara),
                status(&org, &ayesha)
            ],
            jira.issues()
                .iter()
                .map(|issue| (
                    issue.key.clone(),
                    issue.status.clone(),
                    issue.comments.len()
                ))
                .collect::<Vec<_>>()
        )
    })?;
    let comments = |id: String| {
        let opal = opal.clone();
        async move {
            Ok::<Vec<String>, Failed>(
                opal.request_comments(&id)
                    .await?
                    .into_iter()
                    .map(|c| c.comment)
                    .collect(),
            )
        }
    };
    let yara_comments = comments(yara.clone()).await?;
    if !yara_comments.iter().any(|c| {
        c.contains(YARAS_MANAGER) && c.contains(&yara_ticket) && c.contains("engineers-break-glass")
    }) {
        return Err(format!(
            "the approval names neither the manager nor the ticket: {yara_comments:?}"
        )
        .into());
    }
    let zara_comments = comments(zara.clone()).await?;
    if !zara_comments
        .iter()
        .any(|c| c.contains("no eligible answer"))
    {
        return Err(
            format!("the expired request's denial does not say why: {zara_comments:?}").into(),
        );
    }
    // Laila approved her own request: refused, said on the ticket, and still waiting.
    eventually(
        "the refusal is noted on Laila's ticket",
        DECISION,
        || async {
            Ok(ticket_of(&laila)
                .is_some_and(|issue| {
                    issue
                        .comments
                        .iter()
                        .any(|c| c.to_string().contains("made this request"))
                })
                .then_some(()))
        },
    )
    .await?;
    if status(&org, &misrouted) != "PENDING" || ticket_of(&misrouted).is_some() {
        return Err("the request routed to a missing channel was acted on".into());
    }
    if status(&org, &laila) != "PENDING"
        || ledger_phase(&ctx, &laila).await?.as_deref() != Some("Routed")
    {
        return Err("the requester's own approval was carried out".into());
    }
    for (ticket, request) in [
        (&yara_ticket, &yara),
        (&zara_ticket, &zara),
        (&ayesha_ticket, &ayesha),
    ] {
        let issue = ticket_of(request).ok_or("ticket gone")?;
        if issue.status != "Done" {
            return Err(format!("{ticket} is {:?}, not resolved", issue.status).into());
        }
    }
    if ticket_of(&laila).map(|i| i.status) == Some("Done".to_owned()) {
        return Err(format!("{laila_ticket} was resolved while its request still waits").into());
    }

    // More passes: no second ticket, no second decision, no second refusal note.
    passes(&org, 2, "two more passes").await?;
    let counters = org.opal.counters();
    let decisions =
        counters.calls("POST /requests/{id}/approve") + counters.calls("POST /requests/{id}/deny");
    // Two by the operator (Yara approved, Zara denied) and the admin's one.
    if decisions != 3 {
        return Err(format!("expected 3 decisions sent to Opal, saw {decisions}").into());
    }
    if jira.issues().len() != 4 {
        return Err(format!("expected 4 JSM requests, saw {}", jira.issues().len()).into());
    }
    let notes = ticket_of(&laila)
        .map(|issue| {
            issue
                .comments
                .iter()
                .filter(|c| c.to_string().contains("made this request"))
                .count()
        })
        .unwrap_or_default();
    if notes != 1 {
        return Err(format!("the refusal was noted {notes} times").into());
    }
    // Every step is an Event on the policy. The recorder folds Events of one reason on one
    // object into a series, so the note is the latest request's.
    let policy = api::<AccessPolicy>(&ctx.client, &ctx.namespace)
        .get("routed")
        .await?;
    let expected = [
        ("RequestRouted", None),
        ("RequestApproved", Some(&yara)),
        ("RequestDenied", Some(&zara)),
        ("RequestDecidedElsewhere", Some(&ayesha)),
        ("RouteAnswerRefused", Some(&laila)),
    ];
    let outcome = eventually("an Event per step on the policy", DECISION, || async {
        let events = events_for(&ctx.client, &policy).await?;
        let found = expected.iter().all(|(reason, request)| {
            events
                .iter()
                .any(|(r, note)| r == reason && request.is_none_or(|id| note.contains(id.as_str())))
        });
        Ok(found.then_some(()))
    })
    .await;
    if let Err(error) = outcome {
        let events = events_for(&ctx.client, &policy).await?;
        return Err(format!("{}: {events:?}", error.message().unwrap_or_default()).into());
    }
    // The policy's status says what was decided, what waits where, and which rule cannot route.
    let policies = api::<AccessPolicy>(&ctx.client, &ctx.namespace);
    let counted = |requests: &RequestsStatus, rule: &str, outcome: &str| {
        requests
            .decisions
            .iter()
            .find(|c| c.rule == rule && c.action == "Route" && c.outcome == outcome)
            .map(|c| c.count)
    };
    let shown = eventually("the policy's requests status", DECISION, || async {
        let requests = policies
            .get("routed")
            .await?
            .status
            .and_then(|status| status.requests);
        Ok(requests.filter(|requests| {
            counted(requests, "engineers-break-glass", "Approved") == Some(1)
                && counted(requests, "sales-break-glass", "Denied") == Some(1)
                && requests.waiting.iter().any(|w| w.request_id == laila)
        }))
    })
    .await;
    let requests = match shown {
        Ok(requests) => requests,
        Err(error) => {
            let status = policies.get("routed").await?.status;
            return Err(format!("{}: {status:?}", error.message().unwrap_or_default()).into());
        }
    };
    let waiting: Vec<(&str, &str)> = requests
        .waiting
        .iter()
        .map(|w| (w.request_id.as_str(), w.ticket.as_str()))
        .collect();
    if waiting != [(laila.as_str(), laila_ticket.as_str())] || requests.waiting_count != 1 {
        return Err(format!("only Laila's request waits, on {laila_ticket}: {waiting:?}").into());
    }
    if counted(&requests, "engineers-break-glass", "DecidedElsewhere") != Some(1)
        || counted(&requests, "engineers-break-glass", "AnswerRefused") != Some(1)
        || requests.last_decision.is_none()
    {
        return Err(format!("decisions miscounted: {:?}", requests.decisions).into());
    }
    if !(requests.unroutable.len() == 1
        && requests.unroutable[0].contains("marketing-break-glass")
        && requests.unroutable[0].contains("no-such-desk"))
    {
        return Err(format!(
            "the misrouted rule is not reported: {:?}",
            requests.unroutable
        )
        .into());
    }
    operator.stop().await
}

/// The window recorded in a request's ledger entry.
async fn ledger_window(
    ctx: &TestContext,
    request_id: &str,
) -> Result<Option<WindowRecord>, Failed> {
    let secret = api::<Secret>(&ctx.client, &ctx.namespace)
        .get_opt(&entry_name(request_id))
        .await?;
    let Some(window) = secret
        .and_then(|secret| secret.data)
        .and_then(|data| data.get("window").cloned())
        .filter(|window| !window.0.is_empty())
    else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_slice(&window.0)?))
}

/// `grantAtMost` cuts an indefinite approval to the rule's limit in Opal, and a grant whose
/// expiry Opal failed to carry out is removed once its window and the grace are over,
/// reported on the policy; a grant that ended on time needs nothing.
async fn approved_grants_are_cut_to_their_rule_and_removed_once_they_outlive_it(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "10m").await?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "windows", "namespace": ctx.namespace},
            "spec": {"requests": [
                {"name": "break-glass-one-minute", "action": "AutoApprove", "grantAtMost": "1m",
                 "match": {"requester": {"matchLabels": {"department": "Engineering"}},
                           "targets": [{"group": {"name": BREAK_GLASS}}]}},
                {"name": "contractors-short", "action": "AutoApprove",
                 "match": {"requester": {"matchLabels": {"department": "Engineering"}},
                           "targets": [{"group": {"name": CONTRACTORS}}],
                           "durationAtMost": "1h"}},
            ]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let yara = opal_user_id(&org, ENGINEER)?;
    let ayesha = opal_user_id(&org, OTHER_ENGINEER)?;
    let break_glass = group(&org, BREAK_GLASS)?;
    let contractors = group(&org, CONTRACTORS)?;
    // Yara asks for break-glass indefinitely; the rule approves one minute of it.
    let indefinite = pending(&org, &yara, break_glass.clone(), -1)?;
    // Ayesha asks for one minute of Contractors; Opal will fail to end it.
    let short = pending(&org, &ayesha, contractors.clone(), 1)?;
    let grant_of = |org: &Org, user: &str, target: &GrantTarget| {
        org.opal
            .state()
            .user_grants(user)
            .into_iter()
            .find(|grant| grant.target == *target)
    };

    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-windows".into(),
        },
    )
    .await?;
    let cut = eventually(
        "Yara's indefinite approval is cut to end within a minute",
        DECISION,
        || async {
            Ok(grant_of(&org, &yara, &break_glass).and_then(|grant| grant.expiration_date))
        },
    )
    .await?;
    let opal = Sources::from_config(&org.config()?)?.opal;
    let approved_at = opal
        .request(&indefinite)
        .await?
        .updated_at
        .ok_or("the approved request has no update time")?;
    if cut > approved_at + chrono::Duration::minutes(2) {
        return Err(format!("cut to {cut}, more than a minute after {approved_at}").into());
    }
    eventually("Ayesha's short request is approved", DECISION, || async {
        Ok(grant_of(&org, &ayesha, &contractors).map(drop))
    })
    .await?;
    if org.opal.state().fail_group_expiry(
        match &contractors {
            GrantTarget::Group(id) => id,
            GrantTarget::Resource(id) => id,
        },
        &ayesha,
    ) != 1
    {
        return Err("Ayesha's grant could not be made to outlive its end".into());
    }
    let comments = opal.request_comments(&indefinite).await?;
    if !comments
        .iter()
        .any(|c| c.comment.contains("at most 1m") && c.comment.contains("break-glass-one-minute"))
    {
        return Err(format!("the approval does not say its limit: {comments:?}").into());
    }

    // Past both windows and the grace: Ayesha's stuck grant is removed and reported; Yara's
    // ended by itself and is left alone; neither window is followed any more.
    let window = eventually(
        "the grant that outlived its window is removed",
        Duration::from_secs(150),
        || async {
            let window = ledger_window(&ctx, &short).await?;
            Ok(window.filter(|window| window.grants.iter().all(|grant| grant.revoked)))
        },
    )
    .await?;
    if grant_of(&org, &ayesha, &contractors).is_some() {
        return Err("the ledger says revoked but Opal still shows the grant".into());
    }
    if window.capped || window.grants.len() != 1 {
        return Err(format!("unexpected window for the short request: {window:?}").into());
    }
    eventually("both windows leave the index", DECISION, || async {
        let index = api::<Secret>(&ctx.client, &ctx.namespace)
            .get_opt(WINDOW_INDEX)
            .await?;
        let listed = index
            .and_then(|secret| secret.data)
            .map(|data| data.len())
            .unwrap_or_default();
        Ok((listed == 0).then_some(()))
    })
    .await?;
    let yaras = ledger_window(&ctx, &indefinite)
        .await?
        .ok_or("Yara's approval recorded no window")?;
    if !yaras.capped || yaras.grants.iter().any(|g| !g.shortened || g.revoked) {
        return Err(format!("Yara's grant should be cut and not removed: {yaras:?}").into());
    }
    // The reconcile loop repairs the sample org's drift meanwhile; count only these grants.
    let counters = org.opal.counters();
    let writes_on = |method: &str, target: &GrantTarget, user: &str| {
        let GrantTarget::Group(id) = target else {
            return 0;
        };
        let path = format!("{method} /v1/groups/{id}/users/{user}");
        counters
            .handled_writes
            .iter()
            .filter(|(call, _)| call.starts_with(&path))
            .map(|(_, count)| *count)
            .sum::<u64>()
    };
    let cuts = writes_on("PUT", &break_glass, &yara);
    let removals = writes_on("DELETE", &contractors, &ayesha);
    let others = writes_on("PUT", &contractors, &ayesha) + writes_on("DELETE", &break_glass, &yara);
    if (cuts, removals, others) != (1, 1, 0) {
        return Err(format!(
            "expected one cut of Yara's grant and one removal of Ayesha's, saw {cuts} cuts, {removals} removals and {others} other writes"
        )
        .into());
    }
    let policy = api::<AccessPolicy>(&ctx.client, &ctx.namespace)
        .get("windows")
        .await?;
    let events = events_for(&ctx.client, &policy).await?;
    if !events
        .iter()
        .any(|(reason, note)| reason == "ExpiredGrantRevoked" && note.contains(&short))
    {
        return Err(format!("no ExpiredGrantRevoked Event names the request: {events:?}").into());
    }
    operator.stop().await
}

/// The PagerDuty service waiting requests are paged on.
const ACCESS_SERVICE: &str = "PACCESS1";

/// A ServiceNow user for the approvals: a 32-hex sys_id derived from the email.
fn sn_user(email: &str) -> SimSnUser {
    let name = email.split('@').next().unwrap_or_default();
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    SimSnUser {
        sys_id: format!("{hex:0<32}").chars().take(32).collect(),
        user_name: name.to_owned(),
        email: email.to_owned(),
        name: name.to_owned(),
    }
}

/// `Route` to a ServiceNow requested item: the operator opens one RITM per Opal request and
/// reads its `sysapproval_approver` records. An approval by someone the route does not name is
/// refused and noted once in the work notes; the requester's HR manager's approval is carried
/// out in Opal with the RITM number in the comment, and the RITM is closed with the outcome.
/// Waiting past the route's escalation pages PagerDuty once; the incident is resolved with the
/// outcome.
async fn requests_routed_to_servicenow_are_decided_by_an_eligible_approval_record(
    ctx: TestContext,
) -> Result<(), Failed> {
    let manager = sn_user(YARAS_MANAGER);
    let bystander = sn_user(OTHER_ENGINEER);
    let sim_config = ServiceNowSimConfig {
        approvers: vec![bystander.clone(), manager.clone()],
        approval_tables: vec!["sc_req_item".to_owned()],
        ..Default::default()
    };
    let servicenow = ServiceNowSim::start(sim_config.clone()).await?;
    credentials(
        &ctx,
        "servicenow-credentials",
        json!({"password": sim_config.password}),
    )
    .await?;
    let pagerduty = PagerDutySim::start(PagerDutySimConfig::default()).await?;
    pagerduty.add_user(FIRST_RESPONDER, "First Responder");
    credentials(
        &ctx,
        "pagerduty-credentials",
        json!({
            "routing-key": PagerDutySimConfig::default().routing_keys[0],
            "api-key": pagerduty.api_key(),
        }),
    )
    .await?;
    let pager = ChannelConfig::PagerDuty(PagerDutyConfig {
        events_url: pagerduty.events_url(),
        routing_key: pagerduty_secret_ref("routing-key"),
        source: "opal-operator".into(),
        component: None,
        group: None,
        rest: Some(PagerDutyRestConfig {
            api_url: pagerduty.rest_url(),
            api_key: pagerduty_secret_ref("api-key"),
            from_email: Some(FIRST_RESPONDER.to_owned()),
            service_id: Some(ACCESS_SERVICE.to_owned()),
        }),
    });
    let notify = NotifyConfig {
        channels: [
            ("pager".to_owned(), pager),
            (
                "access-desk".to_owned(),
                ChannelConfig::ServiceNow(ServiceNowConfig {
                    instance_url: servicenow.instance_url(),
                    username: sim_config.username.clone(),
                    password: SecretRef::SecretKeyRef(SecretKeySelector {
                        name: "servicenow-credentials".into(),
                        key: "password".into(),
                    }),
                    table: "sc_req_item".to_owned(),
                    fields: [("assignment_group".to_owned(), "Access".to_owned())].into(),
                    close_fields: [("state".to_owned(), "3".to_owned())].into(),
                }),
            ),
        ]
        .into(),
        outbox: Default::default(),
    };
    let mut org =
        Org::start_with(&ctx.namespace, "10m", Some(serde_json::to_value(&notify)?)).await?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "servicenow-routed", "namespace": ctx.namespace},
            "spec": {"requests": [
                {"name": "break-glass-by-manager", "action": "Route",
                 "match": {"targets": [{"group": {"name": BREAK_GLASS}}]},
                 "route": {"channel": "access-desk", "requesterManager": true,
                           "escalation": {"pagerDuty": "pager", "after": "2s"}}},
            ]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let yara = pending(
        &org,
        &opal_user_id(&org, ENGINEER)?,
        group(&org, BREAK_GLASS)?,
        60,
    )?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-servicenow".into(),
        },
    )
    .await?;
    let token = entry_name(&yara);
    let ritm = || {
        servicenow
            .records("sc_req_item")
            .into_iter()
            .find(|record| record.field("correlation_id") == token)
    };
    let opened = eventually("a requested item is opened", DECISION, || async {
        Ok(ritm())
    })
    .await?;
    if opened.field("assignment_group") != "Access" || opened.field("approval") != "requested" {
        return Err(format!("unexpected requested item: {:?}", opened.fields).into());
    }
    // Someone the route does not name approves first: refused, noted, still pending.
    if !servicenow.decide_approval(&opened.sys_id, &bystander.sys_id, true) {
        return Err("no approval record for the bystander".into());
    }
    let refusal = |record: &opal_operator::sim::notify::servicenow::SimRecord| {
        record
            .entries("work_notes")
            .iter()
            .filter(|note| note.contains("is not an approver"))
            .count()
    };
    eventually("the ineligible approval is noted", DECISION, || async {
        Ok(ritm().filter(|record| refusal(record) == 1).map(drop))
    })
    .await?;
    if status(&org, &yara) != "PENDING" {
        return Err("an ineligible approval was carried out".into());
    }
    // Still without an eligible answer after the escalation's wait: the on-call is paged.
    let paged = eventually("the waiting request is paged", DECISION, || async {
        Ok(pagerduty.incidents().into_iter().next())
    })
    .await?;
    if paged.incident_key.as_deref() != Some(token.as_str())
        || paged.service_id != ACCESS_SERVICE
        || !paged
            .details
            .as_deref()
            .unwrap_or_default()
            .contains(opened.field("number"))
    {
        return Err(format!("unexpected incident: {paged:?}").into());
    }
    // Yara's HR manager approves: carried out once, and the item is closed.
    servicenow.decide_approval(&opened.sys_id, &manager.sys_id, true);
    eventually(
        "the manager's approval is carried out",
        DECISION,
        || async { Ok((status(&org, &yara) == "APPROVED").then_some(())) },
    )
    .await?;
    let closed = eventually("the requested item is closed", DECISION, || async {
        Ok(ritm().filter(|record| record.field("state") == "3"))
    })
    .await?;
    if !closed.field("close_notes").contains("Approved in Opal") {
        return Err(format!("close notes: {:?}", closed.field("close_notes")).into());
    }
    let comments = Sources::from_config(&org.config()?)?
        .opal
        .request_comments(&yara)
        .await?;
    let number = opened.field("number");
    if !comments.iter().any(|c| {
        c.comment.contains(YARAS_MANAGER) && c.comment.contains(&format!("ServiceNow {number}"))
    }) {
        return Err(
            format!("the approval names neither the manager nor {number}: {comments:?}").into(),
        );
    }
    passes(&org, 2, "two more passes").await?;
    let approvals = org.opal.counters().calls("POST /requests/{id}/approve");
    let items = servicenow.records("sc_req_item").len();
    let notes = ritm().map(|record| refusal(&record)).unwrap_or_default();
    let incidents = pagerduty.incidents();
    if (approvals, items, notes, incidents.len()) != (1, 1, 1, 1) {
        return Err(format!(
            "expected one approval, requested item, refusal note and incident; saw {approvals}, {items}, {notes}, {}",
            incidents.len()
        )
        .into());
    }
    let incident = &incidents[0];
    if incident.status != IncidentStatus::Resolved
        || !incident
            .notes
            .iter()
            .any(|note| note.content.contains("Approved in Opal"))
    {
        return Err(format!("the page was not resolved with the outcome: {incident:?}").into());
    }
    let policy = api::<AccessPolicy>(&ctx.client, &ctx.namespace)
        .get("servicenow-routed")
        .await?;
    let events = events_for(&ctx.client, &policy).await?;
    if !events
        .iter()
        .any(|(reason, note)| reason == "RequestEscalated" && note.contains(&yara))
    {
        return Err(format!("no RequestEscalated Event: {events:?}").into());
    }
    operator.stop().await
}

/// Waits until the decider has listed pending requests `count` more times.
async fn passes(org: &Org, count: u64, what: &str) -> Result<(), Failed> {
    let lists = || org.opal.counters().calls("GET /requests");
    let seen = lists();
    eventually(what, DECISION, || async {
        Ok((lists() >= seen + count).then_some(()))
    })
    .await
}

/// `Route` to a plain Jira issue decided by its status: moving it to `Approved` by someone the
/// route does not name is refused and noted once; the requester's HR manager moving it to
/// `Declined` denies the request in Opal, and the issue is resolved with the outcome.
async fn requests_routed_to_a_jira_issue_are_decided_by_its_status_transition(
    ctx: TestContext,
) -> Result<(), Failed> {
    let jira_config = JiraSimConfig {
        users: [YARAS_MANAGER, OTHER_ENGINEER]
            .into_iter()
            .map(|email| SimUser::new(&account(email), email, email))
            .collect(),
        extra_statuses: vec![
            SimStatus::new("20001", "Approved", "indeterminate", "71"),
            SimStatus::new("20002", "Declined", "indeterminate", "72"),
        ],
        ..Default::default()
    };
    let jira = JiraSim::start(jira_config.clone()).await?;
    credentials(
        &ctx,
        "jira-credentials",
        json!({"api-token": jira_config.api_token}),
    )
    .await?;
    let notify = NotifyConfig {
        channels: [(
            "security-jira".to_owned(),
            ChannelConfig::Jira(JiraConfig {
                url: jira.site_url(),
                email: jira_config.email.clone(),
                api_token: SecretRef::SecretKeyRef(SecretKeySelector {
                    name: "jira-credentials".into(),
                    key: "api-token".into(),
                }),
                project_key: "SEC".to_owned(),
                issue_type: "Task".to_owned(),
                labels: vec!["access-request".to_owned()],
                resolve_transition: None,
                decisions: Some(JiraDecisionStatuses {
                    approve_status: "Approved".to_owned(),
                    deny_status: "Declined".to_owned(),
                }),
            }),
        )]
        .into(),
        outbox: Default::default(),
    };
    let mut org =
        Org::start_with(&ctx.namespace, "10m", Some(serde_json::to_value(&notify)?)).await?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "jira-routed", "namespace": ctx.namespace},
            "spec": {"requests": [
                {"name": "break-glass-by-manager", "action": "Route",
                 "match": {"targets": [{"group": {"name": BREAK_GLASS}}]},
                 "route": {"channel": "security-jira", "requesterManager": true}},
            ]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let yara = pending(
        &org,
        &opal_user_id(&org, ENGINEER)?,
        group(&org, BREAK_GLASS)?,
        60,
    )?;
    // HR answers nothing at first, so the requester's manager cannot be known yet.
    org.hr.set_fault_rates(FaultRates {
        service_unavailable: 1.0,
        ..Default::default()
    });
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-jira-issue".into(),
        },
    )
    .await?;
    let token = entry_name(&yara);
    let issue = || {
        jira.issues()
            .into_iter()
            .find(|issue| issue.labels.contains(&token))
    };
    let opened = eventually("an issue is opened", DECISION, || async { Ok(issue()) }).await?;
    if opened.project != "SEC" || !opened.labels.iter().any(|l| l == "access-request") {
        return Err(format!("unexpected issue: {opened:?}").into());
    }
    let refusals = |issue: &opal_operator::sim::notify::jira::SimIssue| {
        issue
            .comments
            .iter()
            .filter(|c| c.to_string().contains("is not an approver"))
            .count()
    };
    if !jira.transition_as(&opened.key, &account(OTHER_ENGINEER), "Approved") {
        return Err("the bystander could not move the issue".into());
    }
    // Until HR is read no answer is judged: a manager's answer judged then would be refused.
    passes(&org, 2, "two passes without HR").await?;
    if issue().is_none_or(|issue| refusals(&issue) != 0) || status(&org, &yara) != "PENDING" {
        return Err("an answer was judged before the requester's manager could be known".into());
    }
    org.hr.set_fault_rates(FaultRates::default());
    eventually("the ineligible approval is noted", DECISION, || async {
        Ok(issue().filter(|issue| refusals(issue) == 1).map(drop))
    })
    .await?;
    if status(&org, &yara) != "PENDING" {
        return Err("an ineligible transition was carried out".into());
    }
    jira.transition_as(&opened.key, &account(YARAS_MANAGER), "Declined");
    eventually("the manager's decline is carried out", DECISION, || async {
        Ok((status(&org, &yara) == "DENIED").then_some(()))
    })
    .await?;
    eventually("the issue is resolved", DECISION, || async {
        Ok(issue().filter(|issue| issue.status == "Done").map(drop))
    })
    .await?;
    let comments = Sources::from_config(&org.config()?)?
        .opal
        .request_comments(&yara)
        .await?;
    if !comments.iter().any(|c| {
        c.comment.contains(YARAS_MANAGER) && c.comment.contains(&format!("Jira {}", opened.key))
    }) {
        return Err(
            format!("the denial names neither the manager nor the issue: {comments:?}").into(),
        );
    }
    passes(&org, 2, "two more passes").await?;
    let counters = org.opal.counters();
    let decisions =
        counters.calls("POST /requests/{id}/approve") + counters.calls("POST /requests/{id}/deny");
    let notes = issue().map(|issue| refusals(&issue)).unwrap_or_default();
    if (decisions, jira.issues().len(), notes) != (1, 1, 1) {
        return Err(format!(
            "expected one decision, one issue and one refusal note; saw {decisions}, {}, {notes}",
            jira.issues().len()
        )
        .into());
    }
    operator.stop().await
}

/// With a two-second `ledgerRetention`, a denied request's entry is deleted and leaves the
/// entries index, while an entry carried out whose request Opal still shows pending (as an
/// approval that leaves a later reviewer stage) is kept, so the request is not decided again.
async fn old_ledger_entries_go_once_decided_but_never_while_opal_shows_them_pending(
    ctx: TestContext,
) -> Result<(), Failed> {
    let mut org = Org::start(&ctx.namespace, "10m").await?;
    org.patch_config(|config| config["requests"]["ledgerRetention"] = json!("2s"))?;
    org.manifests
        .access_policies
        .push(jit_policy(&ctx.namespace)?);
    org.apply_manifests(&ctx.client).await?;
    let engineer = opal_user_id(&org, ENGINEER)?;
    let denied = pending(&org, &engineer, group(&org, CONTRACTORS)?, -1)?;
    let still_pending = pending(&org, &engineer, group(&org, BREAK_GLASS)?, 60)?;
    let ledger = Ledger::new(ctx.client.clone(), &ctx.namespace);
    ledger
        .claim(&Entry {
            request_id: still_pending.clone(),
            phase: Phase::Applied,
            decided_by: format!("{}/jit", ctx.namespace),
            rule: "engineers-break-glass".to_owned(),
            action: "AutoApprove".to_owned(),
            comment: "approved at the first reviewer stage".to_owned(),
            claimed_at: chrono::Utc::now() - chrono::Duration::hours(1),
            outcome: "Opal waits for a later stage".to_owned(),
            route: None,
            grant_at_most_seconds: None,
            window: None,
        })
        .await?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-ledger-gc".into(),
        },
    )
    .await?;
    eventually(
        "the denial is carried out and its entry removed",
        DECISION,
        || async {
            let gone = ledger_phase(&ctx, &denied).await?.is_none();
            Ok((status(&org, &denied) == "DENIED" && gone).then_some(()))
        },
    )
    .await?;
    let listed = ledger.listed(Index::Entries).await?;
    if listed.contains(&denied) || !listed.contains(&still_pending) {
        return Err(format!("unexpected entries index: {listed:?}").into());
    }
    passes(&org, 3, "three more passes").await?;
    let counters = org.opal.counters();
    let decisions =
        counters.calls("POST /requests/{id}/approve") + counters.calls("POST /requests/{id}/deny");
    if ledger_phase(&ctx, &still_pending).await?.as_deref() != Some("Applied")
        || status(&org, &still_pending) != "PENDING"
        || decisions != 1
    {
        return Err(format!(
            "the entry of a request Opal shows pending was removed or decided again ({decisions} decisions)"
        )
        .into());
    }
    operator.stop().await
}

const SLACK_CHANNEL: &str = "C0ACCESS";
const SLACK_SIGNING_SECRET: &str = "e2e-slack-signing-secret";

/// `Route` to a Slack message with buttons. Forged and tampered clicks are refused before
/// anything is recorded; clicks that do not belong to the request's message are ignored; the
/// requester's own Approve is recorded once (Slack's retry finds it recorded), refused and
/// noted once in the thread; the HR manager's Approve approves in Opal and replaces the
/// message with the outcome, and a click after that is ignored.
async fn requests_routed_to_slack_are_decided_by_an_eligible_click(
    ctx: TestContext,
) -> Result<(), Failed> {
    let member = |email: &str, id: &str| (email.to_owned(), id.to_owned());
    let slack = SlackSim::start(SlackSimConfig {
        channels: vec![SLACK_CHANNEL.to_owned()],
        users: [
            member(ENGINEER, "U0YARA"),
            member(YARAS_MANAGER, "U0AMARA"),
            member(OTHER_ENGINEER, "U0AYESHA"),
        ]
        .into(),
        ..SlackSimConfig::default()
    })
    .await?;
    credentials(
        &ctx,
        "slack-credentials",
        json!({"bot-token": SlackSimConfig::default().bot_token}),
    )
    .await?;
    let notify = NotifyConfig {
        channels: [(
            "access-slack".to_owned(),
            ChannelConfig::Slack(SlackApiConfig {
                api_url: slack.api_url(),
                token: SecretRef::SecretKeyRef(SecretKeySelector {
                    name: "slack-credentials".into(),
                    key: "bot-token".into(),
                }),
                channel: Some(SLACK_CHANNEL.to_owned()),
                direct_messages: false,
            }),
        )]
        .into(),
        outbox: Default::default(),
    };
    let mut org =
        Org::start_with(&ctx.namespace, "10m", Some(serde_json::to_value(&notify)?)).await?;
    let signing_secret = org.dir.path().join("slack-signing-secret");
    std::fs::write(&signing_secret, SLACK_SIGNING_SECRET)?;
    org.patch_config(|config| {
        config["webhooks"]["slack"] = json!({"signingSecret": {"file": signing_secret}});
    })?;
    org.manifests
        .access_policies
        .push(serde_json::from_value(json!({
            "apiVersion": "opal-operator.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "slack-routed", "namespace": ctx.namespace},
            "spec": {"requests": [
                {"name": "break-glass-by-manager", "action": "Route",
                 "match": {"targets": [{"group": {"name": BREAK_GLASS}}]},
                 "route": {"channel": "access-slack", "requesterManager": true}},
            ]},
        }))?);
    org.apply_manifests(&ctx.client).await?;
    let yara = pending(
        &org,
        &opal_user_id(&org, ENGINEER)?,
        group(&org, BREAK_GLASS)?,
        60,
    )?;
    let operator = InProcessOperator::start(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(600),
            lease: true,
            identity: "e2e-slack".into(),
        },
    )
    .await?;
    let token = entry_name(&yara);
    let routed = || {
        slack.messages().into_iter().filter(|message| {
            message.event_payload().and_then(|p| p.get("token")) == Some(&json!(token))
        })
    };
    let message = eventually("the buttons are posted", DECISION, || async {
        Ok(routed().next())
    })
    .await?;
    let values: Vec<Option<String>> = message.buttons().into_iter().map(|b| b.value).collect();
    if values != [Some(token.clone()), Some(token.clone())] {
        return Err(format!("the buttons do not name the request: {values:?}").into());
    }
    let hook = format!("http://{}/webhooks/slack/interactivity", operator.addr);
    let click = |user: &str, action: &str| {
        Click::new(&hook, SLACK_SIGNING_SECRET, &message.ts, user, action)
    };
    let ledger = Ledger::new(ctx.client.clone(), &ctx.namespace);

    // Forged: the wrong secret, a body changed after signing, a replayed old click.
    let forged = [
        Click::new(
            &hook,
            "not-the-secret",
            &message.ts,
            "U0AMARA",
            SLACK_APPROVE_ACTION,
        ),
        click("U0AYESHA", SLACK_APPROVE_ACTION)
            .tamper(|body| body.extend_from_slice(b"&user=U0AMARA")),
        click("U0AMARA", SLACK_APPROVE_ACTION).at_timestamp(1_700_000_000),
    ];
    for forgery in forged {
        let outcome = slack.click_with(forgery).await?;
        if outcome.status != 401 {
            return Err(format!("a forged click answered {}", outcome.status).into());
        }
    }
    // Signed by Slack but not a click on this request's message: recorded nowhere.
    let recorder = ClickRecorder::new(ledger.clone(), Default::default());
    let block = |value: &str, ts: Option<&str>| BlockAction {
        user_id: "U0AMARA".to_owned(),
        team_id: None,
        channel_id: Some(SLACK_CHANNEL.to_owned()),
        message_ts: ts.map(str::to_owned),
        action_id: SLACK_APPROVE_ACTION.to_owned(),
        value: value.to_owned(),
    };
    for stray in [
        block(&token, Some("1.000001")),
        block(&token, None),
        block(ROUTE_INDEX, Some(&message.ts)),
        block("slack-credentials", Some(&message.ts)),
        block(&entry_name("some-other-request"), Some(&message.ts)),
    ] {
        let answer = recorder.record(stray.clone()).await?;
        if !matches!(answer, ClickRecorded::Ignored { .. }) {
            return Err(format!("{stray:?} was {answer:?}").into());
        }
    }
    if !ledger.clicks(&yara).await?.is_empty() {
        return Err("a forged or stray click was recorded".into());
    }

    // The requester's own Approve: recorded once, refused, noted once in the thread.
    let own = slack
        .click_with(click("U0YARA", SLACK_APPROVE_ACTION))
        .await?;
    let retried = slack
        .click_with(click("U0YARA", SLACK_APPROVE_ACTION))
        .await?;
    let outcome = |sent: &ClickOutcome| String::from_utf8_lossy(&sent.body).into_owned();
    if own.status != 200 || !outcome(&own).contains("\"recorded\"") {
        return Err(format!("the requester's click: {} {}", own.status, outcome(&own)).into());
    }
    if retried.status != 200 || !outcome(&retried).contains("already_recorded") {
        return Err(format!(
            "the retried click: {} {}",
            retried.status,
            outcome(&retried)
        )
        .into());
    }
    let refusals = || {
        slack
            .replies(SLACK_CHANNEL, &message.ts)
            .iter()
            .filter(|reply| reply.text.as_deref().is_some_and(|t| t.contains("refused")))
            .count()
    };
    eventually(
        "the requester's approval is refused in the thread",
        DECISION,
        || async { Ok((refusals() == 1).then_some(())) },
    )
    .await?;
    if status(&org, &yara) != "PENDING" {
        return Err("the requester approved their own request".into());
    }

    // The manager's Approve decides.
    let manager = slack
        .click_with(click("U0AMARA", SLACK_APPROVE_ACTION))
        .await?;
    if manager.status != 200 {
        return Err(format!("the manager's click answered {}", manager.status).into());
    }
    eventually(
        "the manager's approval is carried out",
        DECISION,
        || async { Ok((status(&org, &yara) == "APPROVED").then_some(())) },
    )
    .await?;
    eventually("the message shows the outcome", DECISION, || async {
        Ok(slack
            .message(&message.ts)
            .filter(|now| !now.has_buttons() && now.edits >= 1)
            .map(drop))
    })
    .await?;
    let comments = Sources::from_config(&org.config()?)?
        .opal
        .request_comments(&yara)
        .await?;
    if !comments
        .iter()
        .any(|c| c.comment.contains(YARAS_MANAGER) && c.comment.contains("Slack message"))
    {
        return Err(
            format!("the approval names neither the manager nor Slack: {comments:?}").into(),
        );
    }
    let late = recorder.record(block(&token, Some(&message.ts))).await?;
    if !matches!(late, ClickRecorded::Ignored { .. }) {
        return Err(format!("a click after the decision was {late:?}").into());
    }
    passes(&org, 2, "two more passes").await?;
    let approvals = org.opal.counters().calls("POST /requests/{id}/approve");
    if (approvals, routed().count(), refusals()) != (1, 1, 1) {
        return Err(format!(
            "expected one approval, one message and one refusal note; saw {approvals}, {}, {}",
            routed().count(),
            refusals()
        )
        .into());
    }
    operator.stop().await
}
