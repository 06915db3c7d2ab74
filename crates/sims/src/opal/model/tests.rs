//! The model's rules, driven directly.

use super::*;
use crate::opal::fixture::{
    FixtureGroup, FixtureGroupResource, FixtureMembership, FixtureResource, FixtureResourceGrant,
    FixtureUser, OrgFixture,
};

fn fixture() -> OrgFixture {
    OrgFixture {
        users: vec![
            FixtureUser {
                email: "a@example.com".into(),
                ..FixtureUser::default()
            },
            FixtureUser {
                email: "b@example.com".into(),
                ..FixtureUser::default()
            },
        ],
        groups: vec![
            FixtureGroup {
                name: "eng".into(),
                ..FixtureGroup::default()
            },
            FixtureGroup {
                name: "ops".into(),
                ..FixtureGroup::default()
            },
        ],
        resources: vec![FixtureResource {
            name: "db".into(),
            ..FixtureResource::default()
        }],
        memberships: vec![
            FixtureMembership {
                group: "eng".into(),
                user: "a@example.com".into(),
                ..FixtureMembership::default()
            },
            FixtureMembership {
                group: "ops".into(),
                user: "a@example.com".into(),
                ..FixtureMembership::default()
            },
        ],
        resource_grants: vec![FixtureResourceGrant {
            resource: "db".into(),
            user: "a@example.com".into(),
            ..FixtureResourceGrant::default()
        }],
        group_resources: vec![
            FixtureGroupResource {
                group: "eng".into(),
                resource: "db".into(),
                access_level: None,
            },
            FixtureGroupResource {
                group: "ops".into(),
                resource: "db".into(),
                access_level: None,
            },
        ],
        ..OrgFixture::default()
    }
}

#[test]
fn derived_ids_are_stable_uuids() {
    let id = derived_id("user", "a@example.com", 0);
    assert_eq!(id, derived_id("user", "a@example.com", 0));
    assert_ne!(id, derived_id("user", "a@example.com", 1));
    assert!(uuid::Uuid::parse_str(&id).is_ok());
}

#[test]
fn access_paths_count_direct_and_every_group() {
    let org = Org::from_fixture(&fixture(), 1).expect("fixture loads");
    let db = derived_id("resource", "db", 0);
    let alice = derived_id("user", "a@example.com", 0);
    let access = org.resource_access(&db);
    let entry = access
        .get(&(alice.clone(), String::new()))
        .expect("alice has access");
    assert!(entry.has_direct_access);
    assert_eq!(entry.num_access_paths, 3);
    let by_user = org.user_resource_access(&alice);
    assert_eq!(
        by_user
            .get(&(db, String::new()))
            .map(|a| a.num_access_paths),
        Some(3)
    );
}

#[test]
fn unknown_reference_is_reported() {
    let mut broken = fixture();
    broken.memberships[0].user = "nobody@example.com".into();
    let err = Org::from_fixture(&broken, 1).expect_err("must fail");
    assert!(err.to_string().contains("nobody@example.com"), "{err}");
}

#[test]
fn expired_grants_are_absent() {
    let mut org = Org::from_fixture(&fixture(), 1).expect("fixture loads");
    let eng = derived_id("group", "eng", 0);
    let bob = derived_id("user", "b@example.com", 0);
    let expiry = org.expiry_after(5);
    let outcome = org
        .add_grant(TargetKind::Group, &eng, &bob, "", expiry)
        .expect("grant");
    assert!(matches!(outcome, AddOutcome::Created(_)));
    assert!(org.active_members(&eng).contains_key(&bob));
    org.clock.advance(TimeDelta::minutes(6));
    assert!(!org.active_members(&eng).contains_key(&bob));
    // A failed expiry keeps it, with its end date, until it is removed.
    assert_eq!(org.group_grants.fail_expiry(&eng, &bob), 1);
    assert!(org.active_members(&eng).contains_key(&bob));
    assert!(
        org.remove_grant(TargetKind::Group, &eng, &bob, "")
            .is_some()
    );
    let expiry = org.expiry_after(5);
    org.add_grant(TargetKind::Group, &eng, &bob, "", expiry)
        .expect("grant");
    org.clock.advance(TimeDelta::minutes(6));
    assert!(
        org.remove_grant(TargetKind::Group, &eng, &bob, "")
            .is_none()
    );
}
