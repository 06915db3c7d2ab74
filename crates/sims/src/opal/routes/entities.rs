//! Groups and resources as objects: listing, bulk updates and per-object configuration
//! (visibility, reviewer stages, tags, message channels, group ↔ resource links).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::http::{ApiError, ApiResult, Params, json_body};
use super::super::model::{AccessSettings, Org, TargetKind};
use super::super::paging::{Position, page_size, paginate};
use super::super::server::{RouteTable, Shared};
use super::super::wire::{
    RequestConfiguration, ReviewerStage, TicketPropagationConfiguration, VisibilityInfo, nullable,
};
use super::{GroupResourceOut, IdPath, standard_page};

pub(super) fn register(table: RouteTable) -> RouteTable {
    use TargetKind::{Group, Resource};
    table
        .get("/groups", list_groups)
        .put("/groups", update_groups)
        .get("/groups/{group_id}", get_group)
        .get("/resources", list_resources)
        .put("/resources", update_resources)
        .get("/resources/{resource_id}", get_resource)
        .get(
            "/groups/{group_id}/visibility",
            |s: State<Shared>, p: IdPath| get_visibility(s, p, Group),
        )
        .put(
            "/groups/{group_id}/visibility",
            |s: State<Shared>, p: IdPath, b: Bytes| set_visibility(s, p, b, Group),
        )
        .get(
            "/resources/{resource_id}/visibility",
            |s: State<Shared>, p: IdPath| get_visibility(s, p, Resource),
        )
        .put(
            "/resources/{resource_id}/visibility",
            |s: State<Shared>, p: IdPath, b: Bytes| set_visibility(s, p, b, Resource),
        )
        .get(
            "/groups/{group_id}/reviewer-stages",
            |s: State<Shared>, p: IdPath| get_stages(s, p, Group),
        )
        .put(
            "/groups/{group_id}/reviewer-stages",
            |s: State<Shared>, p: IdPath, b: Bytes| set_stages(s, p, b, Group),
        )
        .get(
            "/resources/{resource_id}/reviewer-stages",
            |s: State<Shared>, p: IdPath| get_stages(s, p, Resource),
        )
        .put(
            "/resources/{resource_id}/reviewer-stages",
            |s: State<Shared>, p: IdPath, b: Bytes| set_stages(s, p, b, Resource),
        )
        .get("/groups/{group_id}/tags", |s: State<Shared>, p: IdPath| {
            get_tags(s, p, Group)
        })
        .get(
            "/resources/{resource_id}/tags",
            |s: State<Shared>, p: IdPath| get_tags(s, p, Resource),
        )
        .get(
            "/groups/{group_id}/message-channels",
            |s: State<Shared>, p: IdPath| get_channels(s, p, Group),
        )
        .put(
            "/groups/{group_id}/message-channels",
            |s: State<Shared>, p: IdPath, b: Bytes| set_channels(s, p, b, Group),
        )
        .get(
            "/resources/{resource_id}/message-channels",
            |s: State<Shared>, p: IdPath| get_channels(s, p, Resource),
        )
        .put(
            "/resources/{resource_id}/message-channels",
            |s: State<Shared>, p: IdPath, b: Bytes| set_channels(s, p, b, Resource),
        )
        .get("/groups/{group_id}/resources", group_resources)
        .get("/resources/{resource_id}/groups", resource_groups)
}

fn has_any_tag(settings: &AccessSettings, tag_ids: &[String]) -> bool {
    tag_ids.is_empty() || tag_ids.iter().any(|tag| settings.tag_ids.contains(tag))
}

async fn list_groups(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let group_type = params.get("group_type_filter");
    let group_ids = params.list("group_ids");
    let name = params.get("group_name");
    let tag_ids = params.list("tag_ids");
    let org = shared.org();
    let (groups, next, previous) = paginate(&org.groups, &position, size, |id, group| {
        let admitted = group_type.is_none_or(|wanted| group.group_type == wanted)
            && (group_ids.is_empty() || group_ids.contains(id))
            && name.is_none_or(|wanted| group.name == wanted)
            && has_any_tag(&group.settings, &tag_ids);
        admitted.then(|| group.clone())
    })
    .into_items();
    Ok(Json(standard_page(groups, next, previous)))
}

async fn get_group(
    State(shared): State<Shared>,
    axum::extract::Path(group_id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    Ok(Json(json!(org.group(&group_id)?)))
}

async fn list_resources(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let resource_type = params.get("resource_type_filter");
    let resource_ids = params.list("resource_ids");
    let name = params.get("resource_name");
    let parent = params.get("parent_resource_id");
    let ancestor = params.get("ancestor_resource_id");
    let remote_id = params.get("remote_id");
    if remote_id.is_some() && resource_type.is_none() {
        return Err(ApiError::bad_request(
            "remote_id requires resource_type_filter",
        ));
    }
    let tag_ids = params.list("tag_ids");
    let org = shared.org();
    let (resources, next, previous) = paginate(&org.resources, &position, size, |id, resource| {
        let admitted = resource_type.is_none_or(|wanted| resource.resource_type == wanted)
            && (resource_ids.is_empty() || resource_ids.contains(id))
            && name.is_none_or(|wanted| resource.name == wanted)
            && parent.is_none_or(|wanted| resource.parent_resource_id.as_deref() == Some(wanted))
            && ancestor
                .is_none_or(|wanted| resource.ancestor_resource_ids.iter().any(|id| id == wanted))
            && remote_id
                .is_none_or(|wanted| resource.remote_resource_id.as_deref() == Some(wanted))
            && has_any_tag(&resource.settings, &tag_ids);
        admitted.then(|| resource.clone())
    })
    .into_items();
    Ok(Json(standard_page(resources, next, previous)))
}

async fn get_resource(
    State(shared): State<Shared>,
    axum::extract::Path(resource_id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    Ok(Json(json!(org.resource(&resource_id)?)))
}

/// Fields bulk updates of groups and resources share; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recommended_duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_manager_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_support_ticket: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_mfa_to_approve: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_mfa_to_request: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auto_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    configuration_template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_requestable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extensions_duration_in_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_configurations: Option<Vec<RequestConfiguration>>,
    /// Deprecated; echoed but not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_configuration_list: Option<Value>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    custom_request_notification: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    risk_sensitivity_override: Option<String>,
}

impl SettingsUpdate {
    fn validate(&self, org: &Org) -> ApiResult<()> {
        if let Some(owner) = &self.admin_owner_id {
            org.owner(owner)?;
        }
        if let Some(Some(text)) = &self.custom_request_notification
            && text.chars().count() > 800
        {
            return Err(ApiError::bad_request(
                "custom_request_notification is longer than 800 characters",
            ));
        }
        for configuration in self.request_configurations.iter().flatten() {
            for stage in configuration.reviewer_stages.iter().flatten() {
                for owner in &stage.owner_ids {
                    org.owner(owner)?;
                }
            }
            for group in configuration
                .condition
                .iter()
                .flat_map(|condition| condition.group_ids.iter().flatten())
            {
                org.group(group)?;
            }
        }
        Ok(())
    }

    fn apply(&self, settings: &mut AccessSettings) {
        let update = self.clone();
        if let Some(owner) = update.admin_owner_id {
            settings.admin_owner_id = Some(owner);
        }
        if let Some(minutes) = update.max_duration {
            settings.max_duration = Some(minutes);
        }
        if let Some(minutes) = update.recommended_duration {
            settings.recommended_duration = Some(minutes);
        }
        if let Some(minutes) = update.extensions_duration_in_minutes {
            settings.extensions_duration_in_minutes = Some(minutes);
        }
        if let Some(flag) = update.require_support_ticket {
            settings.require_support_ticket = flag;
        }
        if let Some(flag) = update.require_mfa_to_approve {
            settings.require_mfa_to_approve = flag;
        }
        if let Some(flag) = update.require_mfa_to_request {
            settings.require_mfa_to_request = flag;
        }
        if let Some(flag) = update.auto_approval {
            settings.auto_approval = flag;
        }
        if let Some(flag) = update.is_requestable {
            settings.is_requestable = flag;
        }
        if let Some(id) = update.configuration_template_id {
            settings.configuration_template_id = Some(id);
        }
        if let Some(id) = update.request_template_id {
            settings.request_template_id = Some(id);
        }
        if let Some(configurations) = update.request_configurations {
            settings.request_configurations = configurations;
        }
        if let Some(text) = update.custom_request_notification {
            settings.custom_request_notification = text;
        }
        if let Some(risk) = update.risk_sensitivity_override {
            settings.risk_sensitivity_override = Some(risk);
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
struct UpdateGroupInfo {
    group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_leader_user_ids: Option<Vec<String>>,
    #[serde(flatten)]
    settings: SettingsUpdate,
}

#[derive(Deserialize, Serialize)]
struct UpdateGroupInfoList {
    groups: Vec<UpdateGroupInfo>,
}

/// Applies every update or none: any unknown id rejects the whole list.
async fn update_groups(State(shared): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let request: UpdateGroupInfoList = json_body(&body)?;
    let mut org = shared.org();
    for update in &request.groups {
        org.group(&update.group_id)?;
        update.settings.validate(&org)?;
        for user in update.group_leader_user_ids.iter().flatten() {
            org.user(user)?;
        }
    }
    for update in &request.groups {
        if let Some(group) = org.groups.get_mut(&update.group_id) {
            if let Some(name) = &update.name {
                group.name.clone_from(name);
            }
            if let Some(description) = &update.description {
                group.description.clone_from(description);
            }
            if let Some(leaders) = &update.group_leader_user_ids {
                group.group_leader_user_ids.clone_from(leaders);
            }
            update.settings.apply(&mut group.settings);
        }
        org.record_object_event("GROUP_UPDATED", "group_id", &update.group_id);
    }
    Ok(Json(json!(request)))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
struct UpdateResourceInfo {
    resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_mfa_to_connect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ticket_propagation: Option<TicketPropagationConfiguration>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    parent_resource_id: Option<Option<String>>,
    #[serde(flatten)]
    settings: SettingsUpdate,
}

#[derive(Deserialize, Serialize)]
struct UpdateResourceInfoList {
    resources: Vec<UpdateResourceInfo>,
}

/// Applies every update or none: any unknown id rejects the whole list.
async fn update_resources(State(shared): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let request: UpdateResourceInfoList = json_body(&body)?;
    let mut org = shared.org();
    for update in &request.resources {
        org.resource(&update.resource_id)?;
        update.settings.validate(&org)?;
        if let Some(Some(parent)) = &update.parent_resource_id {
            org.resource(parent)?;
            if *parent == update.resource_id {
                return Err(ApiError::bad_request("a resource cannot be its own parent"));
            }
        }
    }
    if parents_would_cycle(&org, &request.resources) {
        return Err(ApiError::bad_request(
            "parent_resource_id would create a cycle",
        ));
    }
    for update in &request.resources {
        if let Some(resource) = org.resources.get_mut(&update.resource_id) {
            if let Some(name) = &update.name {
                resource.name.clone_from(name);
            }
            if let Some(description) = &update.description {
                resource.description.clone_from(description);
            }
            if let Some(flag) = update.require_mfa_to_connect {
                resource.require_mfa_to_connect = flag;
            }
            if let Some(propagation) = &update.ticket_propagation {
                resource.ticket_propagation = Some(propagation.clone());
            }
            if let Some(parent) = &update.parent_resource_id {
                resource.parent_resource_id.clone_from(parent);
            }
            update.settings.apply(&mut resource.settings);
        }
    }
    org.recompute_resource_tree()
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    for update in &request.resources {
        org.record_object_event("RESOURCE_UPDATED", "resource_id", &update.resource_id);
    }
    Ok(Json(json!(request)))
}

/// Whether applying the updates' parent changes would make a resource its own ancestor.
fn parents_would_cycle(org: &Org, updates: &[UpdateResourceInfo]) -> bool {
    let mut parents: HashMap<&str, Option<&str>> = org
        .resources
        .iter()
        .map(|(id, resource)| (id.as_str(), resource.parent_resource_id.as_deref()))
        .collect();
    for update in updates {
        if let Some(parent) = &update.parent_resource_id {
            parents.insert(update.resource_id.as_str(), parent.as_deref());
        }
    }
    parents.keys().any(|start| {
        let mut current = *start;
        for _ in 0..parents.len() {
            match parents.get(current).copied().flatten() {
                Some(parent) if parent == *start => return true,
                Some(parent) => current = parent,
                None => return false,
            }
        }
        // A chain longer than the number of resources loops somewhere.
        true
    })
}

fn event_name(kind: TargetKind, what: &str) -> String {
    format!("{}_{what}_UPDATED", kind.noun().to_uppercase())
}

async fn get_visibility(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let (_, settings) = org.target(kind, &id)?;
    Ok(Json(json!(settings.visibility)))
}

async fn set_visibility(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let visibility: VisibilityInfo = json_body(&body)?;
    let mut org = shared.org();
    org.target(kind, &id)?;
    for group in &visibility.visibility_group_ids {
        org.group(group)?;
    }
    org.settings_mut(kind, &id)?.visibility = visibility.clone();
    org.record_object_event(&event_name(kind, "VISIBILITY"), kind.id_field(), &id);
    Ok(Json(json!(visibility)))
}

async fn get_stages(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let (_, settings) = org.target(kind, &id)?;
    Ok(Json(json!(settings.reviewer_stages)))
}

#[derive(Deserialize)]
struct ReviewerStageList {
    stages: Vec<ReviewerStage>,
}

async fn set_stages(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let request: ReviewerStageList = json_body(&body)?;
    let mut org = shared.org();
    org.target(kind, &id)?;
    for owner in request.stages.iter().flat_map(|stage| &stage.owner_ids) {
        org.owner(owner)?;
    }
    org.settings_mut(kind, &id)?.reviewer_stages = request.stages.clone();
    org.record_object_event(&event_name(kind, "REVIEWER_STAGES"), kind.id_field(), &id);
    Ok(Json(json!(request.stages)))
}

async fn get_tags(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let (_, settings) = org.target(kind, &id)?;
    let tags: Vec<_> = settings
        .tag_ids
        .iter()
        .filter_map(|tag| org.tags.get(tag))
        .collect();
    Ok(Json(json!({ "tags": tags })))
}

async fn get_channels(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let (_, settings) = org.target(kind, &id)?;
    let channels: Vec<_> = settings
        .message_channel_ids
        .iter()
        .filter_map(|channel| org.channels.get(channel))
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

#[derive(Deserialize)]
struct MessageChannelIdList {
    message_channel_ids: Vec<String>,
}

async fn set_channels(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let request: MessageChannelIdList = json_body(&body)?;
    let mut org = shared.org();
    org.target(kind, &id)?;
    for channel in &request.message_channel_ids {
        if !org.channels.contains_key(channel) {
            return Err(ApiError::not_found("message channel", channel));
        }
    }
    org.settings_mut(kind, &id)?.message_channel_ids = request.message_channel_ids.clone();
    org.record_object_event(&event_name(kind, "MESSAGE_CHANNELS"), kind.id_field(), &id);
    Ok(Json(json!(request.message_channel_ids)))
}

async fn group_resources(
    State(shared): State<Shared>,
    axum::extract::Path(group_id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    org.group(&group_id)?;
    let now = org.now();
    let links: Vec<GroupResourceOut> = org
        .group_resources
        .get(&group_id)
        .into_iter()
        .flatten()
        .filter(|(_, link)| link.active_at(now))
        .filter_map(|((resource_id, _), link)| {
            GroupResourceOut::new(&org, &group_id, resource_id, link)
        })
        .collect();
    Ok(Json(json!({ "group_resources": links })))
}

async fn resource_groups(
    State(shared): State<Shared>,
    axum::extract::Path(resource_id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    org.resource(&resource_id)?;
    let now = org.now();
    let links: Vec<GroupResourceOut> = org
        .resource_groups
        .get(&resource_id)
        .into_iter()
        .flatten()
        .filter_map(|(group_id, level)| {
            let link = org
                .group_resources
                .get(group_id)?
                .get(&(resource_id.clone(), level.clone()))
                .filter(|link| link.active_at(now))?;
            GroupResourceOut::new(&org, group_id, &resource_id, link)
        })
        .collect();
    Ok(Json(json!({ "group_resources": links })))
}
