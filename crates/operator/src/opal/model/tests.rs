//! Decoding tests: unknown fields and enum values, and the spec quirks listed in the API notes.

use serde_json::json;

use super::*;

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("decodes")
}

#[test]
fn unknown_fields_are_ignored() {
    let user: User = decode(json!({
        "user_id": "u1", "email": "a@example.com", "full_name": "A B", "first_name": "A",
        "last_name": "B", "position": "Eng", "hr_idp_status": "ACTIVE",
        "brand_new_field": {"nested": [1, 2, 3]}
    }));
    assert_eq!(user.email, "a@example.com");
    assert_eq!(user.hr_idp_status, Some(HrIdpStatus::Active));
}

#[test]
fn unknown_enum_values_are_kept() {
    let group: Group = decode(json!({"group_id": "g1", "group_type": "QUANTUM_TEAM"}));
    assert_eq!(
        group.group_type,
        Some(GroupType::Unknown("QUANTUM_TEAM".into()))
    );
    let resource: Resource = decode(json!({
        "resource_id": "r1", "resource_type": "AWS_IAM_ROLE", "risk_sensitivity": "EXTREME"
    }));
    assert_eq!(resource.resource_type, Some(ResourceType::AwsIamRole));
    assert_eq!(
        resource.risk_sensitivity,
        Some(RiskSensitivity::Unknown("EXTREME".into()))
    );
    let user: User = decode(json!({"user_id": "u1", "hr_idp_status": "ON_LEAVE"}));
    assert_eq!(
        user.hr_idp_status,
        Some(HrIdpStatus::Unknown("ON_LEAVE".into()))
    );
    let member: GroupUser = decode(json!({
        "group_id": "g", "user_id": "u", "propagation_status": {"status": "ERR_SOMETHING_NEW"}
    }));
    assert_eq!(
        member.propagation_status.map(|p| p.status),
        Some(PropagationStatusCode::Unknown("ERR_SOMETHING_NEW".into()))
    );
}

#[test]
fn enums_round_trip_their_wire_spelling() {
    for raw in ["OKTA_GROUP", "OPAL_ACCESS_RULE", "NOT_IN_SPEC"] {
        assert_eq!(GroupType::from_wire(raw).as_str(), raw);
        assert_eq!(
            serde_json::to_value(GroupType::from_wire(raw)).expect("encode"),
            json!(raw)
        );
    }
    // The spec spells this one in mixed case.
    assert_eq!(
        ResourceType::from_wire("AZURE_USER_ASSIGNED_MANAGED_Identity"),
        ResourceType::AzureUserAssignedManagedIdentity
    );
    assert_eq!(
        RiskSensitivity::from_wire("UNKNOWN"),
        RiskSensitivity::Unrated
    );
}

#[test]
fn lower_case_request_status_is_understood() {
    let request: Request = decode(json!({
        "id": "req1", "created_at": "2022-01-23T04:56:07.000Z", "updated_at": "2022-01-23T04:56:07Z",
        "requester_id": "u1", "status": "pending", "reason": "need it"
    }));
    assert_eq!(request.status, RequestStatus::Pending);
    assert!(request.created_at.is_some());
}

#[test]
fn numeric_remote_ids_are_read_as_strings() {
    let grant: ResourceUser = decode(json!({
        "resource_id": "r", "user_id": "u", "full_name": "A", "email": "a@x",
        "access_level": {"access_level_name": "Developer", "access_level_remote_id": 20}
    }));
    assert_eq!(grant.access_level.access_level_remote_id, "20");
    let group: Group = decode(json!({"group_id": "g", "remote_id": 1234567890}));
    assert_eq!(group.remote_id.as_deref(), Some("1234567890"));
    let channel: MessageChannel = decode(json!({"message_channel_id": "m", "remote_id": 42}));
    assert_eq!(channel.remote_id, "42");
}

#[test]
fn required_fields_missing_in_spec_examples_default() {
    // ReviewerStage's `required` lists `stage`, which is not a property.
    let stage: ReviewerStage = decode(json!({"operator": "OR", "owner_ids": ["o1"]}));
    assert_eq!(stage.operator, Some(ReviewerStageOperator::Or));
    assert!(!stage.require_manager_approval);
    // RequestConfiguration's `required` lists `organization_id`, which is not a property.
    let config: RequestConfiguration = decode(json!({"allow_requests": true, "priority": 0}));
    assert!(config.allow_requests);
    // The ResourceAccessUserList example omits the required `access_level`.
    let access: ResourceAccessUser = decode(json!({
        "full_name": "Jake Barnes", "user_id": "u", "resource_id": "r",
        "expiration_date": "2022-01-23T04:56:07Z", "email": "jake@company.dev",
        "has_direct_access": true, "num_access_paths": 2
    }));
    assert_eq!(access.access_level, AccessLevel::default());
    assert!(access.has_direct_access);
    assert_eq!(access.num_access_paths, 2);
}

#[test]
fn nulls_read_as_empty() {
    let member: GroupUser = decode(json!({
        "group_id": "g", "user_id": "u", "group_name": null, "description": null,
        "full_name": "A", "email": "a@x", "access_level": null, "expiration_date": null,
        "propagation_status": null
    }));
    assert_eq!(member.description, "");
    assert_eq!(member.access_level, AccessLevel::default());
    assert_eq!(member.expiration_date, None);
    let group: Group = decode(json!({
        "group_id": "g", "group_leader_user_ids": null, "request_configurations": null,
        "custom_request_notification": null, "remote_info": null
    }));
    assert!(group.group_leader_user_ids.is_empty());
    assert!(group.request_configurations.is_empty());
    let owner: Owner = decode(json!({"owner_id": "o", "reviewer_message_channel_id": null}));
    assert_eq!(owner.reviewer_message_channel_id, None);
}

#[test]
fn event_with_untyped_actor_name_and_open_sub_events() {
    let event: Event = decode(json!({
        "event_id": "e1", "actor_user_id": "u1", "actor_name": 12345,
        "event_type": "USERS_CREATED", "created_at": "2022-01-23T04:56:07Z",
        "sub_events": [{"sub_event_type": "USERS_CREATED", "user_id": "u2", "user_name": "B"}]
    }));
    assert_eq!(event.actor_name, "12345");
    assert_eq!(event.sub_events[0].field_str("user_id"), Some("u2"));
    assert_eq!(event.sub_events[0].sub_event_type, "USERS_CREATED");
}

#[test]
fn request_reviewer_stages_may_be_a_message_and_custom_fields_may_be_bool() {
    let request: Request = decode(json!({
        "id": "r", "requester_id": "u", "status": "APPROVED", "reason": "x",
        "reviewer_stages": "could not load reviewers",
        "custom_fields_responses": [
            {"field_name": "on call", "field_type": "BOOLEAN", "field_value": true},
            {"field_name": "why", "field_type": "LONG_TEXT", "field_value": "because"}
        ]
    }));
    assert_eq!(
        request.reviewer_stages,
        Some(RequestReviewerStages::Unavailable(
            "could not load reviewers".into()
        ))
    );
    assert_eq!(
        request.custom_fields_responses[0].field_value,
        CustomFieldValue::Bool(true)
    );
    let staged: Request = decode(json!({
        "id": "r", "requester_id": "u", "status": "PENDING", "reason": "x",
        "reviewer_stages": [{"item_name": "prod", "item_id": "i", "stages": [
            {"stage": 1, "operator": "AND", "reviewers": [{"id": "o", "status": "PENDING"}]}
        ]}]
    }));
    let Some(RequestReviewerStages::Items(items)) = staged.reviewer_stages else {
        panic!("stages expected");
    };
    assert_eq!(
        items[0].stages[0].reviewers[0].status,
        ReviewerDecision::Pending
    );
}

#[test]
fn dates_accept_bare_days_and_reject_garbage() {
    let uar: Uar = decode(json!({"uar_id": "x", "deadline": "2022-07-14"}));
    assert_eq!(
        uar.deadline.map(|d| d.to_rfc3339()),
        Some("2022-07-14T00:00:00+00:00".to_owned())
    );
    assert!(serde_json::from_value::<Uar>(json!({"uar_id": "x", "deadline": "soon"})).is_err());
}

#[test]
fn request_bodies_omit_unset_fields() {
    let body = serde_json::to_value(UpdateGroupInfo {
        group_id: "g".into(),
        admin_owner_id: Some("o".into()),
        ..UpdateGroupInfo::default()
    })
    .expect("encode");
    assert_eq!(body, json!({"group_id": "g", "admin_owner_id": "o"}));
    let grant = serde_json::to_value(GrantSpec::indefinite()).expect("encode");
    assert_eq!(grant, json!({"duration_minutes": 0}));
    let create = serde_json::to_value(CreateRequest {
        reason: "r".into(),
        duration_minutes: -1,
        ..CreateRequest::default()
    })
    .expect("encode");
    assert_eq!(
        create,
        json!({"reason": "r", "duration_minutes": -1, "resources": [], "groups": []})
    );
}
