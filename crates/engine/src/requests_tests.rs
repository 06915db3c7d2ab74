//! Table tests for request decisions: each condition alone, first match wins, tenancy, the
//! HR gate on auto-approval, lockdowns, and the recorded reasons.

use chrono::{Duration, TimeZone, Utc, Weekday};

use super::*;
use crate::selector::Requirement;
use crate::tests::{NS, employee, now};

const TENANT: &str = "team-payments";

fn target(name: &str, tags: &[(&str, &str)], sensitivity: Option<Sensitivity>) -> RequestedTarget {
    RequestedTarget {
        kind: TargetKind::Group,
        id: format!("id-{name}"),
        name: name.to_owned(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        sensitivity,
    }
}

fn facts() -> RequestFacts {
    RequestFacts {
        request_id: "req-1".to_owned(),
        requester_user_id: "u-ann".to_owned(),
        requester_email: Some("ann@example.com".to_owned()),
        requester: Some(employee("e-ann", "ann@example.com", "Engineering")),
        targets: vec![target(
            "prod-readonly",
            &[("env", "prod")],
            Some(Sensitivity::Low),
        )],
        duration: Some(Duration::hours(4)),
        // Monday 2026-06-15 12:00 UTC is 14:00 in Berlin.
        created_at: now(),
        on_call: BTreeMap::new(),
        lockdowns: Vec::new(),
        on_behalf_of: None,
    }
}

fn rule(name: &str, conditions: RequestConditions, verdict: RequestVerdict) -> RequestRule {
    RequestRule {
        name: name.to_owned(),
        conditions,
        verdict,
        grant_at_most: None,
    }
}

fn policy(namespace: &str, name: &str, rules: Vec<RequestRule>) -> PolicyRequestRules {
    PolicyRequestRules {
        policy: ObjectKey::new(namespace, name),
        rules,
        invalid: Vec::new(),
    }
}

fn decide(facts: &RequestFacts, policies: &[PolicyRequestRules]) -> Option<RequestDecision> {
    decide_request(facts, policies, NS, &[])
}

fn rule_name(decision: &Option<RequestDecision>) -> Option<&str> {
    match decision {
        Some(RequestDecision::Rule { rule, .. }) => Some(rule),
        _ => None,
    }
}

fn berlin_weekdays(start: u32, end: u32) -> BusinessWindow {
    BusinessWindow {
        zone: chrono_tz::Europe::Berlin,
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        start_minute: start * 60,
        end_minute: end * 60,
    }
}

fn on_call_condition() -> OnCallCondition {
    OnCallCondition {
        channel: "pagerduty".to_owned(),
        escalation_policy_ids: vec!["P-OPS".to_owned()],
        schedule_ids: Vec::new(),
        max_escalation_level: Some(1),
    }
}

/// One condition per row: the facts change, and whether the lone rule matches.
#[test]
fn each_condition_holds_or_does_not() {
    let engineering =
        || CompiledSelector::new(vec![Requirement::equals("department", "Engineering")]);
    type Edit = fn(&mut RequestFacts);
    let rows: Vec<(&str, RequestConditions, Edit, bool)> = vec![
        ("empty match", RequestConditions::default(), |_| {}, true),
        (
            "requester selector holds",
            RequestConditions {
                requester: Some(engineering()),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "requester selector fails",
            RequestConditions {
                requester: Some(engineering()),
                ..Default::default()
            },
            |f| {
                if let Some(e) = f.requester.as_mut() {
                    e.department = Some("Sales".to_owned());
                }
            },
            false,
        ),
        (
            "requester missing from HR",
            RequestConditions {
                requester: Some(engineering()),
                ..Default::default()
            },
            |f| f.requester = None,
            false,
        ),
        (
            "target listed by name",
            RequestConditions {
                targets: vec![crate::Target::group_named("prod-readonly")],
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "one requested target not listed",
            RequestConditions {
                targets: vec![crate::Target::group_named("prod-readonly")],
                ..Default::default()
            },
            |f| {
                f.targets
                    .push(target("prod-admin", &[("env", "prod")], None))
            },
            false,
        ),
        (
            "listed name but a resource, not a group",
            RequestConditions {
                targets: vec![crate::Target::resource_named("prod-readonly")],
                ..Default::default()
            },
            |_| {},
            false,
        ),
        (
            "tag with value",
            RequestConditions {
                target_tags: [("env".to_owned(), "prod".to_owned())].into(),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "tag with another value",
            RequestConditions {
                target_tags: [("env".to_owned(), "staging".to_owned())].into(),
                ..Default::default()
            },
            |_| {},
            false,
        ),
        (
            "tag with any value",
            RequestConditions {
                target_tags: [("env".to_owned(), String::new())].into(),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "sensitivity at the limit",
            RequestConditions {
                max_sensitivity: Some(Sensitivity::Low),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "sensitivity above the limit",
            RequestConditions {
                max_sensitivity: Some(Sensitivity::Low),
                ..Default::default()
            },
            |f| f.targets[0].sensitivity = Some(Sensitivity::High),
            false,
        ),
        (
            "unrated target under a sensitivity limit",
            RequestConditions {
                max_sensitivity: Some(Sensitivity::Critical),
                ..Default::default()
            },
            |f| f.targets[0].sensitivity = None,
            false,
        ),
        (
            "duration at most, equal",
            RequestConditions {
                duration_at_most: Some(Duration::hours(4)),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "duration at most, longer",
            RequestConditions {
                duration_at_most: Some(Duration::hours(2)),
                ..Default::default()
            },
            |_| {},
            false,
        ),
        (
            "duration at most, indefinite",
            RequestConditions {
                duration_at_most: Some(Duration::hours(2)),
                ..Default::default()
            },
            |f| f.duration = None,
            false,
        ),
        (
            "duration above, longer",
            RequestConditions {
                duration_above: Some(Duration::hours(2)),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "duration above, equal",
            RequestConditions {
                duration_above: Some(Duration::hours(4)),
                ..Default::default()
            },
            |_| {},
            false,
        ),
        (
            "duration above, indefinite",
            RequestConditions {
                duration_above: Some(Duration::hours(24)),
                ..Default::default()
            },
            |f| f.duration = None,
            true,
        ),
        (
            "inside business hours in Berlin",
            RequestConditions {
                business_hours: Some(berlin_weekdays(9, 17)),
                ..Default::default()
            },
            |_| {},
            true,
        ),
        (
            "after closing in Berlin (16:00 UTC is 18:00 CEST)",
            RequestConditions {
                business_hours: Some(berlin_weekdays(9, 17)),
                ..Default::default()
            },
            |f| f.created_at = Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap(),
            false,
        ),
        (
            "Saturday in Berlin",
            RequestConditions {
                business_hours: Some(berlin_weekdays(9, 17)),
                ..Default::default()
            },
            |f| f.created_at = Utc.with_ymd_and_hms(2026, 6, 20, 10, 0, 0).unwrap(),
            false,
        ),
        (
            "Sunday 23:30 UTC is Monday 01:30 in Berlin",
            RequestConditions {
                business_hours: Some(berlin_weekdays(1, 2)),
                ..Default::default()
            },
            |f| f.created_at = Utc.with_ymd_and_hms(2026, 6, 14, 23, 30, 0).unwrap(),
            true,
        ),
        (
            "on call",
            RequestConditions {
                requester_on_call: Some(on_call_condition()),
                ..Default::default()
            },
            |f| {
                f.on_call.insert(on_call_condition(), OnCallAnswer::OnCall);
            },
            true,
        ),
        (
            "not on call",
            RequestConditions {
                requester_on_call: Some(on_call_condition()),
                ..Default::default()
            },
            |f| {
                f.on_call
                    .insert(on_call_condition(), OnCallAnswer::NotOnCall);
            },
            false,
        ),
        (
            "on-call lookup failed",
            RequestConditions {
                requester_on_call: Some(on_call_condition()),
                ..Default::default()
            },
            |f| {
                f.on_call.insert(
                    on_call_condition(),
                    OnCallAnswer::Unknown("HTTP 503".to_owned()),
                );
            },
            false,
        ),
        (
            "on-call never asked",
            RequestConditions {
                requester_on_call: Some(on_call_condition()),
                ..Default::default()
            },
            |_| {},
            false,
        ),
    ];
    for (label, conditions, edit, expected) in rows {
        let mut request = facts();
        edit(&mut request);
        let policies = [policy(
            NS,
            "jit",
            vec![rule("only", conditions, RequestVerdict::Deny)],
        )];
        assert_eq!(
            decide(&request, &policies).is_some(),
            expected,
            "row {label:?}"
        );
    }
}

#[test]
fn first_matching_rule_decides_and_its_reasons_are_recorded() {
    let policies = [policy(
        NS,
        "jit",
        vec![
            rule(
                "too-long",
                RequestConditions {
                    duration_above: Some(Duration::hours(8)),
                    ..Default::default()
                },
                RequestVerdict::Deny,
            ),
            rule(
                "prod-readonly",
                RequestConditions {
                    target_tags: [("env".to_owned(), "prod".to_owned())].into(),
                    duration_at_most: Some(Duration::hours(8)),
                    ..Default::default()
                },
                RequestVerdict::AutoApprove,
            ),
            rule(
                "everything-else",
                RequestConditions::default(),
                RequestVerdict::Route(RoutePlan {
                    channel: "jsm".to_owned(),
                    ..Default::default()
                }),
            ),
        ],
    )];
    let decision = decide(&facts(), &policies).expect("a rule matches");
    assert_eq!(
        decision,
        RequestDecision::Rule {
            policy: ObjectKey::new(NS, "jit"),
            rule: "prod-readonly".to_owned(),
            verdict: RequestVerdict::AutoApprove,
            because: vec![
                "every requested target is tagged env=prod".to_owned(),
                "duration 4h is at most 8h".to_owned(),
            ],
            grant_at_most: None,
        }
    );
    assert_eq!(
        decision.comment(),
        "opal-operator approved this request by AccessPolicy opal-system/jit rule \"prod-readonly\": every requested target is tagged env=prod; duration 4h is at most 8h."
    );

    let mut long = facts();
    long.duration = Some(Duration::hours(12));
    assert_eq!(rule_name(&decide(&long, &policies)), Some("too-long"));

    let mut staging = facts();
    staging.targets[0].tags = vec![("env".to_owned(), "staging".to_owned())];
    let routed = decide(&staging, &policies);
    assert_eq!(rule_name(&routed), Some("everything-else"));
    assert_eq!(
        routed.map(|d| d.verdict()),
        Some(RequestVerdict::Route(RoutePlan {
            channel: "jsm".to_owned(),
            ..Default::default()
        }))
    );
}

#[test]
fn no_rule_matching_leaves_the_request_to_opal() {
    let policies = [policy(
        NS,
        "jit",
        vec![rule(
            "staging-only",
            RequestConditions {
                target_tags: [("env".to_owned(), "staging".to_owned())].into(),
                ..Default::default()
            },
            RequestVerdict::AutoApprove,
        )],
    )];
    assert_eq!(decide(&facts(), &policies), None);
    assert_eq!(decide(&facts(), &[]), None);
}

/// Auto-approval needs the requester in HR and active, even when the rule names no requester
/// condition: a leaver's pending request is never approved by rule.
#[test]
fn auto_approval_requires_an_active_hr_record() {
    let policies = [policy(
        NS,
        "jit",
        vec![rule(
            "approve-all",
            RequestConditions::default(),
            RequestVerdict::AutoApprove,
        )],
    )];
    assert!(decide(&facts(), &policies).is_some());
    let mut unknown = facts();
    unknown.requester = None;
    assert_eq!(decide(&unknown, &policies), None);
    for status in [EmploymentStatus::Terminated, EmploymentStatus::OnLeave] {
        let mut leaver = facts();
        if let Some(employee) = leaver.requester.as_mut() {
            employee.status = status;
        }
        assert_eq!(decide(&leaver, &policies), None, "{status:?}");
    }
    // A Deny rule still applies to someone HR does not know.
    let deny = [policy(
        NS,
        "jit",
        vec![rule(
            "deny-all",
            RequestConditions::default(),
            RequestVerdict::Deny,
        )],
    )];
    assert_eq!(rule_name(&decide(&unknown, &deny)), Some("deny-all"));
}

#[test]
fn a_lockdown_in_force_denies_before_any_rule() {
    let policies = [policy(
        NS,
        "jit",
        vec![rule(
            "approve-all",
            RequestConditions::default(),
            RequestVerdict::AutoApprove,
        )],
    )];
    let mut locked = facts();
    locked.lockdowns = vec![ObjectKey::new(NS, "incident-42")];
    let decision = decide(&locked, &policies).expect("denied");
    assert_eq!(decision.verdict(), RequestVerdict::Deny);
    assert!(
        decision
            .comment()
            .contains("Lockdown opal-system/incident-42")
    );
}

/// Operator-namespace policies come first, whatever their names; a tenant's rules decide only
/// requests for targets its namespace may govern.
#[test]
fn tenant_rules_decide_only_requests_on_targets_they_may_govern() {
    let approve_all = |namespace: &str, name: &str| {
        policy(
            namespace,
            name,
            vec![rule(
                "approve-all",
                RequestConditions::default(),
                RequestVerdict::AutoApprove,
            )],
        )
    };
    let payments_tenancy = [TenancyGrant {
        namespaces: vec![TENANT.to_owned()],
        target_names: vec!["payments-db".to_owned()],
        ..Default::default()
    }];
    let tenant_only = [approve_all(TENANT, "aaa-first-by-name")];

    // The attack: a tenant auto-approves everything; a request for a target it does not
    // govern is untouched.
    assert_eq!(
        decide_request(&facts(), &tenant_only, NS, &payments_tenancy),
        None
    );
    // A request for its own target is decided by its rule.
    let mut own = facts();
    own.targets = vec![target("payments-db", &[], None)];
    let decision = decide_request(&own, &tenant_only, NS, &payments_tenancy);
    assert!(matches!(
        decision,
        Some(RequestDecision::Rule { ref policy, .. }) if policy.namespace == TENANT
    ));
    // Mixed: one target it governs and one it does not.
    let mut mixed = own.clone();
    mixed.targets.push(target("prod-readonly", &[], None));
    assert_eq!(
        decide_request(&mixed, &tenant_only, NS, &payments_tenancy),
        None
    );
    // Tenancy granted to another namespace does not count.
    let other_tenancy = [TenancyGrant {
        namespaces: vec!["team-other".to_owned()],
        target_names: vec!["payments-db".to_owned()],
        ..Default::default()
    }];
    assert_eq!(decide_request(&own, &tenant_only, NS, &other_tenancy), None);
    // The operator namespace's rules win even when the tenant's policy sorts first by name.
    let deny_ops = policy(
        NS,
        "zzz-last-by-name",
        vec![rule(
            "deny-all",
            RequestConditions::default(),
            RequestVerdict::Deny,
        )],
    );
    let both = [approve_all(TENANT, "aaa-first-by-name"), deny_ops];
    assert_eq!(
        rule_name(&decide_request(&own, &both, NS, &payments_tenancy)),
        Some("deny-all")
    );
}

#[test]
fn business_window_reads_local_time_across_daylight_saving() {
    let window = berlin_weekdays(9, 17);
    // Winter: Berlin is UTC+1, so 08:30 UTC is 09:30 local.
    assert!(window.contains(Utc.with_ymd_and_hms(2026, 1, 12, 8, 30, 0).unwrap()));
    // Summer: UTC+2, so 07:30 UTC is 09:30 local and 15:00 UTC is 17:00 local (closed).
    assert!(window.contains(Utc.with_ymd_and_hms(2026, 7, 13, 7, 30, 0).unwrap()));
    assert!(!window.contains(Utc.with_ymd_and_hms(2026, 7, 13, 15, 0, 0).unwrap()));
    let until_midnight = BusinessWindow {
        end_minute: 24 * 60,
        ..berlin_weekdays(22, 0)
    };
    assert!(until_midnight.contains(Utc.with_ymd_and_hms(2026, 7, 13, 21, 59, 0).unwrap()));
    assert_eq!(
        window.to_string(),
        "Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Berlin"
    );
}

#[test]
fn a_request_for_someone_else_is_never_auto_approved() {
    let policies = [policy(
        NS,
        "jit",
        vec![rule(
            "approve-all",
            RequestConditions::default(),
            RequestVerdict::AutoApprove,
        )],
    )];
    let mut for_bob = facts();
    for_bob.on_behalf_of = Some("user u-bob".to_owned());
    assert_eq!(decide(&for_bob, &policies), None);
    assert!(decide(&facts(), &policies).is_some());
}

fn lockdown(namespace: &str, subjects: Vec<Subject>, scope: LockScope) -> LockdownInput {
    LockdownInput {
        key: ObjectKey::new(namespace, "lock"),
        rules: crate::LockdownRules {
            subjects,
            scope,
            ..Default::default()
        },
        activated_at: Some(now()),
        released: false,
        deleting: false,
    }
}

#[test]
fn lockdowns_cover_the_requester_or_a_target_within_tenancy() {
    let covers = |lockdowns: &[LockdownInput], tenancy: &[TenancyGrant]| {
        !lockdowns_on_request(lockdowns, now(), NS, tenancy, &facts()).is_empty()
    };
    let by_email = |namespace| {
        lockdown(
            namespace,
            vec![Subject::Email("ANN@example.com".to_owned())],
            LockScope::Everything,
        )
    };
    assert!(covers(&[by_email(NS)], &[]));
    assert!(covers(
        &[lockdown(
            NS,
            vec![Subject::OpalUserId("u-ann".to_owned())],
            LockScope::Everything
        )],
        &[]
    ));
    assert!(covers(
        &[lockdown(
            NS,
            vec![Subject::HrisId("e-ann".to_owned())],
            LockScope::Everything
        )],
        &[]
    ));
    assert!(!covers(
        &[lockdown(
            NS,
            vec![Subject::Email("bob@example.com".to_owned())],
            LockScope::Everything
        )],
        &[]
    ));
    // Scoped to other targets: this request is not covered; to this one, it is.
    let scoped = |name: &str| {
        lockdown(
            NS,
            vec![Subject::Email("ann@example.com".to_owned())],
            LockScope::Targets(vec![crate::Target::group_named(name)]),
        )
    };
    assert!(!covers(&[scoped("payments-db")], &[]));
    assert!(covers(&[scoped("prod-readonly")], &[]));
    // A target lockdown covers anyone requesting it.
    assert!(covers(
        &[lockdown(
            NS,
            vec![Subject::Target(crate::Target::group_named("prod-readonly"))],
            LockScope::Everything
        )],
        &[]
    ));
    // Released or expired lockdowns do not count.
    let mut released = by_email(NS);
    released.released = true;
    assert!(!covers(&[released], &[]));
    // A tenant's lockdown counts only where its namespace may lock the requested targets:
    // a tenant cannot deny other teams' requests by locking their people.
    assert!(!covers(&[by_email(TENANT)], &[]));
    let may_govern = TenancyGrant {
        namespaces: vec![TENANT.to_owned()],
        target_names: vec!["prod-readonly".to_owned()],
        ..Default::default()
    };
    assert!(!covers(
        &[by_email(TENANT)],
        std::slice::from_ref(&may_govern)
    ));
    let may_lock = TenancyGrant {
        allow_lockdowns: true,
        ..may_govern
    };
    assert!(covers(&[by_email(TENANT)], &[may_lock]));
}

fn answer(approve: bool, email: Option<&str>, user: Option<&str>) -> RouteAnswer {
    RouteAnswer {
        approve,
        decider_email: email.map(str::to_owned),
        decider_user_id: user.map(str::to_owned),
        place: "Jira Service Management ITSD-4".to_owned(),
    }
}

#[test]
fn a_routed_answer_counts_only_from_an_eligible_opal_user_who_did_not_ask() {
    let listed = RoutePlan {
        channel: "jsm".to_owned(),
        approvers: vec!["olivia.chen@example.com".to_owned()],
        requester_manager: true,
        wait_at_most: None,
        escalation: None,
    };
    let open = RoutePlan {
        channel: "jsm".to_owned(),
        ..Default::default()
    };
    let by = "AccessPolicy opal-system/jit rule \"prod\"";
    let manager = Some("Marcus.Webb@example.com");
    let refused = |plan: &RoutePlan, answer: RouteAnswer| match judge_route_answer(
        plan,
        &answer,
        "u-requester",
        manager,
        by,
    ) {
        RouteJudgment::Refuse { reason } => reason,
        carried => panic!("{answer:?} was carried out: {carried:?}"),
    };
    // (plan, answer, why it is refused)
    let cases = [
        (
            &listed,
            answer(true, None, Some("u-olivia")),
            "carries no email",
        ),
        (
            &listed,
            answer(true, Some(" "), Some("u-olivia")),
            "carries no email",
        ),
        (
            &listed,
            answer(true, Some("olivia.chen@example.com"), None),
            "is not an Opal user",
        ),
        (
            &open,
            answer(true, Some("yara@example.com"), Some("u-requester")),
            "made this request",
        ),
        (
            &listed,
            answer(false, Some("zara@example.com"), Some("u-zara")),
            "is not an approver",
        ),
    ];
    for (plan, answer, why) in cases {
        let reason = refused(plan, answer.clone());
        assert!(reason.contains(why), "{answer:?}: {reason}");
    }
    // Listed (case-insensitively), the HR manager, and anyone but the requester on an open route.
    let carried = [
        (
            &listed,
            answer(true, Some("Olivia.Chen@example.com"), Some("u-olivia")),
            true,
        ),
        (
            &listed,
            answer(false, Some("marcus.webb@example.com"), Some("u-marcus")),
            false,
        ),
        (
            &open,
            answer(true, Some("zara@example.com"), Some("u-zara")),
            true,
        ),
    ];
    for (plan, answer, approve) in carried {
        match judge_route_answer(plan, &answer, "u-requester", manager, by) {
            RouteJudgment::Carry {
                approve: a,
                comment,
            } => {
                assert_eq!(a, approve);
                let email = answer
                    .decider_email
                    .clone()
                    .unwrap_or_default()
                    .to_lowercase();
                assert!(
                    comment.contains(&email) && comment.contains("ITSD-4") && comment.contains(by),
                    "{comment}"
                );
            }
            refused => panic!("{answer:?} was refused: {refused:?}"),
        }
    }
    // Without requesterManager the manager is just another person.
    let no_manager = RoutePlan {
        requester_manager: false,
        ..listed.clone()
    };
    assert!(
        refused(
            &no_manager,
            answer(true, Some("marcus.webb@example.com"), Some("u-marcus"))
        )
        .contains("is not an approver")
    );
}

#[test]
fn a_route_expires_only_after_its_wait() {
    let routed = now();
    let plan = RoutePlan {
        wait_at_most: Some(Duration::hours(4)),
        ..Default::default()
    };
    assert!(!route_expired(&plan, routed, routed + Duration::hours(4)));
    assert!(route_expired(
        &plan,
        routed,
        routed + Duration::hours(4) + Duration::seconds(1)
    ));
    assert!(!route_expired(
        &RoutePlan::default(),
        routed,
        routed + Duration::days(365)
    ));
}

#[test]
fn a_rule_limit_caps_the_approval_and_is_said_in_the_comment() {
    let mut limited = rule(
        "short",
        RequestConditions::default(),
        RequestVerdict::AutoApprove,
    );
    limited.grant_at_most = Some(Duration::hours(2));
    let decision =
        decide(&facts(), &[policy(NS, "jit", vec![limited.clone()])]).expect("the rule matches");
    assert_eq!(decision.grant_at_most(), Some(Duration::hours(2)));
    assert!(
        decision
            .comment()
            .ends_with(" An approval gives access for at most 2h."),
        "{}",
        decision.comment()
    );
    limited.verdict = RequestVerdict::Deny;
    let denied = decide(&facts(), &[policy(NS, "jit", vec![limited])]).expect("matches");
    assert!(
        !denied.comment().contains("at most"),
        "{}",
        denied.comment()
    );
}

#[test]
fn the_approved_window_is_the_shorter_of_the_request_and_the_rule() {
    let at = now();
    let hours = Duration::hours;
    let cases = [
        (None, None, None),
        (
            Some(hours(4)),
            None,
            Some(ApprovedWindow {
                until: at + hours(4),
                capped: false,
            }),
        ),
        (
            None,
            Some(hours(2)),
            Some(ApprovedWindow {
                until: at + hours(2),
                capped: true,
            }),
        ),
        (
            Some(hours(8)),
            Some(hours(2)),
            Some(ApprovedWindow {
                until: at + hours(2),
                capped: true,
            }),
        ),
        (
            Some(hours(1)),
            Some(hours(2)),
            Some(ApprovedWindow {
                until: at + hours(1),
                capped: false,
            }),
        ),
    ];
    for (requested, most, expected) in cases {
        assert_eq!(
            approved_window(at, requested, most),
            expected,
            "{requested:?} {most:?}"
        );
    }
}

#[test]
fn a_window_step_is_due_exactly_when_it_could_be_more_than_waiting() {
    let at = now();
    let grace = Duration::minutes(10);
    let mut seen = (0, 0);
    for capped in [false, true] {
        let window = ApprovedWindow {
            until: at + Duration::hours(1),
            capped,
        };
        for shortened in [false, true] {
            for offset in [-30, 0, 59, 60, 65, 69, 70, 71, 200] {
                let now = at + Duration::minutes(offset);
                let due = window_step_due(&window, shortened, now, grace);
                seen = if due {
                    (seen.0 + 1, seen.1)
                } else {
                    (seen.0, seen.1 + 1)
                };
                let helds = [
                    HeldGrant::Absent,
                    HeldGrant::Held(None),
                    HeldGrant::Held(Some(at)),
                    HeldGrant::Held(Some(window.until)),
                    HeldGrant::Held(Some(window.until + Duration::hours(5))),
                ];
                let steps: Vec<WindowStep> = helds
                    .into_iter()
                    .map(|held| window_step(&window, shortened, held, now, grace))
                    .collect();
                let only_waits = steps.iter().all(|step| *step == WindowStep::Wait);
                assert_eq!(
                    due, !only_waits,
                    "capped {capped}, shortened {shortened}, at +{offset}m: {steps:?}"
                );
            }
        }
    }
    assert!(seen.0 > 0 && seen.1 > 0, "{seen:?}");
}

#[test]
fn window_steps_cut_then_remove_only_what_outlived_the_window() {
    let at = now();
    let grace = Duration::minutes(10);
    let capped = ApprovedWindow {
        until: at + Duration::hours(2),
        capped: true,
    };
    let plain = ApprovedWindow {
        until: at + Duration::hours(2),
        capped: false,
    };
    let step = |window: &ApprovedWindow, shortened, held, now| {
        window_step(window, shortened, held, now, grace)
    };
    let indefinite = HeldGrant::Held(None);
    // Inside a capped window, an indefinite or longer grant is cut to end with the window,
    // rounding up to whole minutes.
    assert_eq!(
        step(&capped, false, indefinite, at + Duration::seconds(30)),
        WindowStep::Shorten { minutes: 120 }
    );
    assert_eq!(
        step(
            &capped,
            false,
            HeldGrant::Held(Some(at + Duration::hours(8))),
            at
        ),
        WindowStep::Shorten { minutes: 120 }
    );
    // Already ending with the window (Opal rounds to minutes), or cut before: nothing to do.
    assert_eq!(
        step(
            &capped,
            false,
            HeldGrant::Held(Some(capped.until + Duration::seconds(40))),
            at
        ),
        WindowStep::Wait
    );
    assert_eq!(step(&capped, true, indefinite, at), WindowStep::Wait);
    // An uncapped window never cuts.
    assert_eq!(step(&plain, false, indefinite, at), WindowStep::Wait);
    // Within the grace after the window, Opal's own expiry may still be on its way.
    let ended = HeldGrant::Held(Some(plain.until));
    assert_eq!(
        step(&plain, false, ended, plain.until + Duration::minutes(5)),
        WindowStep::Wait
    );
    // Past the grace: a grant whose end date has passed outlived its window.
    let late = plain.until + Duration::minutes(11);
    match step(&plain, false, ended, late) {
        WindowStep::Revoke { reason } => assert!(reason.contains("11m"), "{reason}"),
        other => panic!("not revoked: {other:?}"),
    }
    // A capped grant that could never be cut is removed; one cut and then extended (a later
    // decision) is left alone, as is one that is gone.
    assert!(matches!(
        step(&capped, false, indefinite, late),
        WindowStep::Revoke { .. }
    ));
    assert_eq!(step(&capped, true, indefinite, late), WindowStep::Done);
    // Cut and rounded up to the minute: still ending, so it is waited for.
    let rounded = HeldGrant::Held(Some(capped.until + Duration::seconds(50)));
    let short_grace = Duration::seconds(2);
    let just_after = capped.until + Duration::seconds(20);
    assert_eq!(
        window_step(&capped, true, rounded, just_after, short_grace),
        WindowStep::Wait
    );
    assert_eq!(
        step(
            &plain,
            false,
            HeldGrant::Held(Some(late + Duration::hours(1))),
            late
        ),
        WindowStep::Done
    );
    assert_eq!(
        step(&plain, false, HeldGrant::Absent, late),
        WindowStep::Done
    );
    assert_eq!(step(&plain, false, HeldGrant::Absent, at), WindowStep::Wait);
}

#[test]
fn an_escalation_is_due_once_its_wait_is_over() {
    let routed = now();
    let plan = RoutePlan {
        escalation: Some(RouteEscalation {
            channel: "pd".to_owned(),
            after: Duration::minutes(30),
        }),
        ..Default::default()
    };
    assert!(!escalation_due(
        &plan,
        routed,
        routed + Duration::minutes(29)
    ));
    assert!(escalation_due(
        &plan,
        routed,
        routed + Duration::minutes(30)
    ));
    assert!(!escalation_due(
        &RoutePlan::default(),
        routed,
        routed + Duration::days(30)
    ));
}
