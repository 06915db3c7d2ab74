use super::campaign::{assignment_policy, push_history};
use super::*;
use crate::crd::{ReminderSpec, TagSelector};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid UTC time")
}

fn spec(schedule: &str, time_zone: &str) -> ReviewScheduleSpec {
    ReviewScheduleSpec {
        schedule: schedule.to_owned(),
        time_zone: time_zone.to_owned(),
        scope: None,
        reviewer_assignment: ReviewerAssignment::ByManager,
        deadline: "14d".to_owned(),
        reminders: None,
        escalation: None,
        outcomes: Vec::new(),
        self_review_allowed: false,
        instantly_action_reviews: false,
        notify_reviewers: true,
        suspend: false,
    }
}

fn campaign(uar_id: &str, started_at: DateTime<Utc>, deadline: DateTime<Utc>) -> Campaign {
    Campaign {
        uar_id: uar_id.to_owned(),
        name: format!("team/review {uar_id}"),
        started_at,
        deadline,
        state: CampaignState::Running,
        progress: NO_COMPLETION_DATA.to_owned(),
    }
}

#[test]
fn next_run_in_utc_is_strictly_after() {
    let daily = spec("0 9 * * *", "UTC");
    assert_eq!(
        next_run(&daily, utc(2025, 1, 1, 8, 59)).unwrap(),
        utc(2025, 1, 1, 9, 0)
    );
    assert_eq!(
        next_run(&daily, utc(2025, 1, 1, 9, 0)).unwrap(),
        utc(2025, 1, 2, 9, 0)
    );
    let just_after = utc(2025, 1, 1, 9, 0) + Duration::milliseconds(300);
    assert_eq!(next_run(&daily, just_after).unwrap(), utc(2025, 1, 2, 9, 0));
    let quarterly = spec("0 9 1 1,4,7,10 *", "UTC");
    assert_eq!(
        next_run(&quarterly, utc(2025, 1, 1, 9, 0)).unwrap(),
        utc(2025, 4, 1, 9, 0)
    );
}

#[test]
fn next_run_follows_a_non_utc_zone_across_summer_and_winter() {
    let berlin = spec("0 9 1 * *", "Europe/Berlin");
    // CET (UTC+1) in January, CEST (UTC+2) in July.
    assert_eq!(
        next_run(&berlin, utc(2025, 1, 1, 0, 0)).unwrap(),
        utc(2025, 1, 1, 8, 0)
    );
    assert_eq!(
        next_run(&berlin, utc(2025, 6, 15, 0, 0)).unwrap(),
        utc(2025, 7, 1, 7, 0)
    );
    let tokyo = spec("30 18 * * MON", "Asia/Tokyo");
    // Monday 2025-03-03 18:30 JST is 09:30 UTC.
    assert_eq!(
        next_run(&tokyo, utc(2025, 3, 1, 0, 0)).unwrap(),
        utc(2025, 3, 3, 9, 30)
    );
}

#[test]
fn a_time_skipped_by_spring_forward_runs_right_after_the_gap() {
    // Europe/Berlin jumps from 02:00 CET to 03:00 CEST on 2025-03-30.
    let berlin = spec("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        next_run(&berlin, utc(2025, 3, 29, 12, 0)).unwrap(),
        utc(2025, 3, 30, 1, 0),
        "03:00 CEST, the first instant after the gap"
    );
    assert_eq!(
        next_run(&berlin, utc(2025, 3, 30, 1, 0)).unwrap(),
        utc(2025, 3, 31, 0, 30),
        "back to 02:30 CEST the next day"
    );
    // America/New_York jumps from 02:00 EST to 03:00 EDT on 2025-03-09.
    let new_york = spec("30 2 9 3 *", "America/New_York");
    assert_eq!(
        next_run(&new_york, utc(2025, 3, 1, 0, 0)).unwrap(),
        utc(2025, 3, 9, 7, 0)
    );
}

#[test]
fn a_time_repeated_by_fall_back_runs_once_at_the_first_instant() {
    // America/New_York repeats 01:00-02:00 on 2025-11-02 (EDT, then EST).
    let new_york = spec("30 1 * * *", "America/New_York");
    let first = next_run(&new_york, utc(2025, 11, 1, 12, 0)).unwrap();
    assert_eq!(first, utc(2025, 11, 2, 5, 30), "01:30 EDT");
    let second = next_run(&new_york, first).unwrap();
    assert_eq!(second, utc(2025, 11, 3, 6, 30), "01:30 EST the next day");
    // Europe/Berlin repeats 02:00-03:00 on 2025-10-26.
    let berlin = spec("30 2 26 10 *", "Europe/Berlin");
    let first = next_run(&berlin, utc(2025, 10, 1, 0, 0)).unwrap();
    assert_eq!(first, utc(2025, 10, 26, 0, 30), "02:30 CEST");
    assert_eq!(
        next_run(&berlin, first).unwrap(),
        utc(2026, 10, 26, 1, 30),
        "a year later, in CET"
    );
}

#[test]
fn invalid_fields_are_named_with_their_value() {
    let cases = [
        (spec("0 9 * *", "UTC"), "invalid_schedule", "\"0 9 * *\""),
        (spec("0 0 9 * * *", "UTC"), "invalid_schedule", "6 fields"),
        (spec("@daily x y z w", "UTC"), "invalid_schedule", "'@'"),
        (
            spec("61 9 * * *", "UTC"),
            "invalid_schedule",
            "\"61 9 * * *\"",
        ),
        (
            spec("0 0 30 2 *", "UTC"),
            "invalid_schedule",
            "no occurrence",
        ),
        (
            spec("0 9 * * *", "Mars/Olympus"),
            "invalid_time_zone",
            "Mars/Olympus",
        ),
    ];
    for (spec, label, needle) in cases {
        let error = next_run(&spec, utc(2025, 1, 1, 0, 0)).unwrap_err();
        assert_eq!(error.label(), label, "{error}");
        assert!(error.to_string().contains(needle), "{error}");
    }
    for deadline in ["0d", "14", "2w", "10000d", "+5d", "-3h", "0h", ""] {
        let mut bad = spec("0 9 * * *", "UTC");
        bad.deadline = deadline.to_owned();
        let error = next_run(&bad, utc(2025, 1, 1, 0, 0)).unwrap_err();
        assert_eq!(error.label(), "invalid_deadline", "{deadline}: {error}");
        assert!(
            error
                .to_string()
                .contains(&format!("deadline {deadline:?}")),
            "{error}"
        );
    }
}

fn status_with_next(next_run: DateTime<Utc>) -> ReviewScheduleStatus {
    ReviewScheduleStatus {
        next_run: Some(next_run),
        ..ReviewScheduleStatus::default()
    }
}

#[test]
fn nothing_runs_before_the_first_occurrence_after_creation() {
    let daily = spec("0 9 * * *", "UTC");
    let created = utc(2025, 1, 1, 10, 0);
    let decision = decide(&daily, None, None, created, utc(2025, 1, 1, 12, 0)).unwrap();
    assert_eq!(decision.run, None);
    assert_eq!(decision.next_run, utc(2025, 1, 2, 9, 0));
    assert_eq!(decision.requeue_after, MAX_REQUEUE);
    let decision = decide(&daily, None, None, created, utc(2025, 1, 2, 8, 59)).unwrap();
    assert_eq!(decision.run, None);
    assert_eq!(decision.requeue_after, StdDuration::from_secs(60));
}

#[test]
fn a_due_occurrence_runs_once_and_the_next_counts_from_now() {
    let daily = spec("0 9 * * *", "UTC");
    let created = utc(2025, 1, 1, 10, 0);
    let now = utc(2025, 1, 2, 9, 0) + Duration::seconds(2);
    let decision = decide(&daily, None, None, created, now).unwrap();
    assert_eq!(
        decision.run,
        Some(RunReason::Scheduled {
            due_at: utc(2025, 1, 2, 9, 0)
        })
    );
    assert_eq!(decision.next_run, utc(2025, 1, 3, 9, 0));
    // Once recorded, the same instant decides nothing.
    let status = status_with_next(decision.next_run);
    let again = decide(&daily, Some(&status), None, created, now).unwrap();
    assert_eq!(again.run, None);
    assert_eq!(again.next_run, utc(2025, 1, 3, 9, 0));
}

#[test]
fn many_missed_occurrences_start_one_campaign() {
    let daily = spec("0 9 * * *", "UTC");
    let status = status_with_next(utc(2025, 1, 2, 9, 0));
    let now = utc(2025, 1, 20, 12, 0);
    let decision = decide(&daily, Some(&status), None, utc(2025, 1, 1, 0, 0), now).unwrap();
    assert_eq!(
        decision.run,
        Some(RunReason::Scheduled {
            due_at: utc(2025, 1, 2, 9, 0)
        })
    );
    assert_eq!(decision.next_run, utc(2025, 1, 21, 9, 0));
    let recorded = status_with_next(decision.next_run);
    let after = decide(&daily, Some(&recorded), None, utc(2025, 1, 1, 0, 0), now).unwrap();
    assert_eq!(after.run, None);
}

#[test]
fn an_edited_schedule_counts_from_now_without_a_catch_up_run() {
    let monthly = spec("0 9 1 * *", "UTC");
    // Stored by the former daily schedule; not an occurrence of the monthly one.
    let status = status_with_next(utc(2025, 1, 2, 9, 0));
    let now = utc(2025, 1, 20, 12, 0);
    let decision = decide(&monthly, Some(&status), None, utc(2025, 1, 1, 0, 0), now).unwrap();
    assert_eq!(decision.run, None);
    assert_eq!(decision.next_run, utc(2025, 2, 1, 9, 0));
}

#[test]
fn suspend_never_runs_but_reports_the_next_run() {
    let mut daily = spec("0 9 * * *", "UTC");
    daily.suspend = true;
    let status = status_with_next(utc(2025, 1, 2, 9, 0));
    let now = utc(2025, 1, 5, 12, 0);
    let decision = decide(
        &daily,
        Some(&status),
        Some("now"),
        utc(2025, 1, 1, 0, 0),
        now,
    )
    .unwrap();
    assert_eq!(decision.run, None);
    assert_eq!(decision.next_run, utc(2025, 1, 6, 9, 0));
    let future = status_with_next(utc(2025, 1, 6, 9, 0));
    let decision = decide(&daily, Some(&future), None, utc(2025, 1, 1, 0, 0), now).unwrap();
    assert_eq!(decision.run, None);
    assert_eq!(decision.next_run, utc(2025, 1, 6, 9, 0));
}

#[test]
fn run_now_runs_once_per_distinct_value() {
    let quarterly = spec("0 9 1 1,4,7,10 *", "UTC");
    let created = utc(2025, 1, 1, 0, 0);
    let now = utc(2025, 2, 10, 12, 0);
    let mut status = status_with_next(utc(2025, 4, 1, 9, 0));
    let decision = decide(&quarterly, Some(&status), Some(" one "), created, now).unwrap();
    let reason = RunReason::RunNow {
        token: "one".to_owned(),
    };
    assert_eq!(decision.run, Some(reason.clone()));
    assert_eq!(
        decision.next_run,
        utc(2025, 4, 1, 9, 0),
        "a run-now leaves the schedule alone"
    );
    record_campaign(
        &mut status,
        campaign("u1", now, utc(2025, 2, 24, 12, 0)),
        &reason,
        decision.next_run,
    );
    assert_eq!(status.last_run_now.as_deref(), Some("one"));
    let same = decide(&quarterly, Some(&status), Some("one"), created, now).unwrap();
    assert_eq!(same.run, None);
    let empty = decide(&quarterly, Some(&status), Some("  "), created, now).unwrap();
    assert_eq!(empty.run, None);
    let other = decide(&quarterly, Some(&status), Some("two"), created, now).unwrap();
    assert_eq!(
        other.run,
        Some(RunReason::RunNow {
            token: "two".to_owned()
        })
    );
}

#[test]
fn run_now_with_a_due_occurrence_is_one_campaign_that_covers_both() {
    let daily = spec("0 9 * * *", "UTC");
    let status = status_with_next(utc(2025, 1, 2, 9, 0));
    let now = utc(2025, 1, 2, 10, 0);
    let decision = decide(
        &daily,
        Some(&status),
        Some("go"),
        utc(2025, 1, 1, 0, 0),
        now,
    )
    .unwrap();
    assert!(matches!(decision.run, Some(RunReason::RunNow { .. })));
    assert_eq!(decision.next_run, utc(2025, 1, 3, 9, 0));
}

#[test]
fn requeue_wakes_for_an_active_deadline_before_the_next_run() {
    let yearly = spec("0 9 1 1 *", "UTC");
    let now = utc(2025, 3, 1, 12, 0);
    let mut status = status_with_next(utc(2026, 1, 1, 9, 0));
    status.active_campaigns.push(campaign(
        "u1",
        utc(2025, 2, 1, 9, 0),
        now + Duration::seconds(90) + Duration::milliseconds(1),
    ));
    let decision = decide(&yearly, Some(&status), None, utc(2024, 1, 1, 0, 0), now).unwrap();
    assert_eq!(decision.requeue_after, StdDuration::from_secs(91));
}

fn full_spec() -> ReviewScheduleSpec {
    let mut full = spec("0 9 1 1,4,7,10 *", "Europe/Berlin");
    full.reviewer_assignment = ReviewerAssignment::ByOwningTeamAdminAll;
    full.deadline = "14d".to_owned();
    full.reminders = Some(ReminderSpec {
        days_before_deadline: vec![7, 3, 1, 0],
        include_manager: true,
    });
    full.self_review_allowed = true;
    full.instantly_action_reviews = true;
    full.notify_reviewers = false;
    full.scope = Some(ReviewScope {
        tags: vec![
            TagSelector {
                key: "env".to_owned(),
                value: Some("prod".to_owned()),
            },
            TagSelector {
                key: "pii".to_owned(),
                value: None,
            },
        ],
        names: vec!["payments".to_owned()],
        apps: vec!["app-1".to_owned()],
        group_types: vec!["okta_group".to_owned(), "NEW_KIND".to_owned()],
        resource_types: vec!["AWS_IAM_ROLE".to_owned()],
        users: vec!["Ada@Example.com".to_owned()],
        filter_operator: FilterOperator::All,
        include_group_bindings: true,
    });
    full
}

#[test]
fn the_request_maps_every_field() {
    let key = ObjectKey::new("team-a", "quarterly");
    let mut users = ScopeUsers::default();
    users.insert("ada@example.com", "user-ada");
    let due_at = utc(2025, 1, 1, 8, 0);
    let started_at = due_at + Duration::milliseconds(2500);
    let request = uar_request(
        &key,
        &full_spec(),
        &RunReason::Scheduled { due_at },
        started_at,
        &users,
    )
    .unwrap();
    assert_eq!(request.name, "team-a/quarterly 2025-01-01 09:00");
    assert_eq!(
        request.deadline,
        utc(2025, 1, 15, 8, 0) + Duration::seconds(2)
    );
    assert_eq!(
        request.reviewer_assignment_policy,
        ReviewerAssignmentPolicy::ByOwningTeamAdminAll
    );
    assert!(!request.send_reviewer_assignment_notification);
    assert_eq!(request.time_zone, "Europe/Berlin");
    assert!(request.self_review_allowed);
    assert_eq!(request.instantly_action_reviews, Some(true));
    assert_eq!(request.reminder_schedule, vec![7, 3, 1, 0]);
    assert_eq!(request.reminder_include_manager, Some(true));
    let scope = request.uar_scope.clone().expect("scope");
    assert_eq!(scope.filter_operator, Some(UarFilterOperator::All));
    assert_eq!(scope.users, vec!["user-ada"]);
    assert_eq!(scope.apps, vec!["app-1"]);
    assert_eq!(scope.names, vec!["payments"]);
    assert_eq!(
        scope.group_types,
        vec![
            GroupType::OktaGroup,
            GroupType::Unknown("NEW_KIND".to_owned())
        ]
    );
    assert_eq!(scope.resource_types, vec![ResourceType::AwsIamRole]);
    assert_eq!(scope.include_group_bindings, Some(true));
    assert_eq!(
        scope.tags,
        vec![
            TagFilter {
                key: "env".to_owned(),
                value: Some("prod".to_owned())
            },
            TagFilter {
                key: "pii".to_owned(),
                value: None
            },
        ]
    );
    assert_eq!(scope.group_visibility, None);
    assert!(scope.entities.is_empty() && scope.admins.is_empty());
    let wire = serde_json::to_value(&request).unwrap();
    assert_eq!(
        wire["reviewer_assignment_policy"],
        "BY_OWNING_TEAM_ADMIN_ALL"
    );
    assert_eq!(wire["deadline"], "2025-01-15T08:00:02Z");
    assert_eq!(wire["uar_scope"]["group_types"][0], "OKTA_GROUP");
    assert_eq!(wire["uar_scope"]["filter_operator"], "ALL");
}

#[test]
fn the_request_defaults_and_every_assignment_policy() {
    let key = ObjectKey::new("ns", "r");
    let reason = RunReason::Scheduled {
        due_at: utc(2025, 1, 1, 9, 0),
    };
    let at = utc(2025, 1, 1, 9, 0);
    let plain = spec("0 9 * * *", "UTC");
    let request = uar_request(&key, &plain, &reason, at, &ScopeUsers::default()).unwrap();
    assert_eq!(request.uar_scope, None);
    assert!(request.reminder_schedule.is_empty());
    assert_eq!(request.reminder_include_manager, None);
    assert!(request.send_reviewer_assignment_notification);
    assert_eq!(request.instantly_action_reviews, Some(false));
    let pairs = [
        (ReviewerAssignment::Manually, "MANUALLY"),
        (
            ReviewerAssignment::ByOwningTeamAdmin,
            "BY_OWNING_TEAM_ADMIN",
        ),
        (
            ReviewerAssignment::ByOwningTeamAdminAll,
            "BY_OWNING_TEAM_ADMIN_ALL",
        ),
        (ReviewerAssignment::ByManager, "BY_MANAGER"),
        (ReviewerAssignment::ByApprovers, "BY_APPROVERS"),
        (ReviewerAssignment::ByApproversAll, "BY_APPROVERS_ALL"),
    ];
    for (assignment, wire) in pairs {
        assert_eq!(assignment_policy(assignment).as_str(), wire);
    }
}

#[test]
fn day_deadlines_keep_the_wall_clock_and_hour_deadlines_are_elapsed() {
    let key = ObjectKey::new("ns", "r");
    // 2025-03-20 09:00 CET; 14 days later is 2025-04-03 09:00 CEST.
    let started_at = utc(2025, 3, 20, 8, 0);
    let reason = RunReason::Scheduled { due_at: started_at };
    let days = spec("0 9 * * *", "Europe/Berlin");
    let request = uar_request(&key, &days, &reason, started_at, &ScopeUsers::default());
    assert_eq!(request.unwrap().deadline, utc(2025, 4, 3, 7, 0));
    let mut hours = days.clone();
    hours.deadline = "72h".to_owned();
    let request = uar_request(&key, &hours, &reason, started_at, &ScopeUsers::default());
    assert_eq!(request.unwrap().deadline, utc(2025, 3, 23, 8, 0));
}

#[test]
fn run_now_names_carry_the_value_and_stay_distinct_when_long() {
    let key = ObjectKey::new("ns", "r");
    let at = utc(2025, 1, 1, 9, 0);
    let name = |token: &str| {
        let reason = RunReason::RunNow {
            token: token.to_owned(),
        };
        uar_request(
            &key,
            &spec("0 9 * * *", "UTC"),
            &reason,
            at,
            &ScopeUsers::default(),
        )
        .unwrap()
        .name
    };
    assert_eq!(name("2025-01-01T09:00"), "ns/r run-now 2025-01-01T09:00");
    assert_eq!(name("a\nb"), "ns/r run-now ab");
    let long_a = format!("{}a", "x".repeat(100));
    let long_b = format!("{}b", "x".repeat(100));
    assert_ne!(name(&long_a), name(&long_b));
    assert!(name(&long_a).chars().count() <= "ns/r run-now ".len() + RUN_NOW_NAME_CHARS);
}

#[test]
fn unknown_scope_users_and_bad_reminders_are_errors() {
    let key = ObjectKey::new("ns", "r");
    let at = utc(2025, 1, 1, 9, 0);
    let reason = RunReason::Scheduled { due_at: at };
    let error = uar_request(&key, &full_spec(), &reason, at, &ScopeUsers::default()).unwrap_err();
    assert_eq!(error.label(), "unknown_scope_user");
    assert!(error.to_string().contains("Ada@Example.com"), "{error}");
    let mut reminders = spec("0 9 * * *", "UTC");
    reminders.reminders = Some(ReminderSpec {
        days_before_deadline: vec![3, -1],
        include_manager: false,
    });
    let error = uar_request(&key, &reminders, &reason, at, &ScopeUsers::default()).unwrap_err();
    assert_eq!(error.label(), "invalid_reminder");
    assert!(error.to_string().contains("-1"), "{error}");
}

#[test]
fn record_campaign_updates_status_and_bounds_it() {
    let mut status = ReviewScheduleStatus::default();
    let start = utc(2025, 1, 1, 9, 0);
    let reason = RunReason::Scheduled { due_at: start };
    record_campaign(
        &mut status,
        campaign("u0", start, start + Duration::days(14)),
        &reason,
        utc(2025, 1, 2, 9, 0),
    );
    assert_eq!(status.last_run, Some(start));
    assert_eq!(status.last_run_now, None);
    assert_eq!(status.next_run, Some(utc(2025, 1, 2, 9, 0)));
    // The same UAR found again replaces its entry.
    record_campaign(
        &mut status,
        campaign("u0", start, start + Duration::days(14)),
        &reason,
        utc(2025, 1, 2, 9, 0),
    );
    assert_eq!(status.active_campaigns.len(), 1);
    for index in 1..=ACTIVE_LIMIT {
        let at = start + Duration::days(index as i64);
        record_campaign(
            &mut status,
            campaign(&format!("u{index}"), at, at + Duration::days(400)),
            &RunReason::Scheduled { due_at: at },
            at + Duration::days(1),
        );
    }
    assert_eq!(status.active_campaigns.len(), ACTIVE_LIMIT);
    assert!(status.active_campaigns.iter().all(|c| c.uar_id != "u0"));
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.history[0].uar_id, "u0");
    assert_eq!(status.history[0].state, CampaignState::Unknown);

    let finished = (0..HISTORY_LIMIT + 5)
        .map(|index| {
            let at = start - Duration::days(index as i64 + 1);
            campaign(&format!("old{index}"), at, at + Duration::days(1))
        })
        .collect();
    push_history(&mut status, finished);
    assert_eq!(status.history.len(), HISTORY_LIMIT);
    assert_eq!(status.history[0].uar_id, "u0", "newest first");
    assert!(
        status
            .history
            .windows(2)
            .all(|pair| pair[0].started_at >= pair[1].started_at)
    );
}
