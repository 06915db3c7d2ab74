//! Users, owners, tags, message channels, bundles, user access reviews and the audit log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::super::http::{ApiError, ApiResult, Params, json_body, optional_json_body};
use super::super::model::{ChannelRec, EventRec, Org, TagRec, UarRec};
use super::super::paging::{Position, page_size, paginate};
use super::super::server::{RouteTable, Shared};
use super::super::wire::{UAR_ASSIGNMENT_POLICIES, timestamp};
use super::{PairPath, standard_page};

pub(super) fn register(table: RouteTable) -> RouteTable {
    table
        .get("/users", list_users)
        .get("/user", find_user)
        .get("/users/{user_id}/tags", user_tags)
        .get("/owners", list_owners)
        .get("/owners/{owner_id}", get_owner)
        .get("/owners/{owner_id}/users", owner_users)
        .put("/owners/{owner_id}/users", set_owner_users)
        .get("/tags", list_tags)
        .get("/tag", find_tag)
        .post("/tag", create_tag)
        .post(
            "/tags/{tag_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::User, true),
        )
        .delete(
            "/tags/{tag_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::User, false),
        )
        .post(
            "/tags/{tag_id}/groups/{group_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::Group, true),
        )
        .delete(
            "/tags/{tag_id}/groups/{group_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::Group, false),
        )
        .post(
            "/tags/{tag_id}/resources/{resource_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::Resource, true),
        )
        .delete(
            "/tags/{tag_id}/resources/{resource_id}",
            |s: State<Shared>, p: PairPath| tag_link(s, p, TagLink::Resource, false),
        )
        .get("/message-channels", list_channels)
        .post("/message-channels", create_channel)
        .get("/message-channels/{message_channel_id}", get_channel)
        .get("/bundles", list_bundles)
        .post("/uar", create_uar)
        .get("/uars", list_uars)
        .get("/uar/{uar_id}", get_uar)
        .get("/events", list_events)
        .get("/events/{event_id}", get_event)
}

async fn list_users(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let tag_ids = params.list("tag_ids");
    let org = shared.org();
    let (users, next, previous) = paginate(&org.users, &position, size, |_, user| {
        (tag_ids.is_empty() || tag_ids.iter().any(|tag| user.tag_ids.contains(tag)))
            .then(|| user.clone())
    })
    .into_items();
    Ok(Json(standard_page(users, next, previous)))
}

async fn find_user(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let user = match (params.get("user_id"), params.get("email")) {
        (Some(user_id), _) => org.user(user_id)?,
        (None, Some(email)) => org
            .user_by_email(email)
            .ok_or_else(|| ApiError::not_found("user with email", email))?,
        (None, None) => return Err(ApiError::bad_request("either user_id or email is required")),
    };
    Ok(Json(json!(user)))
}

fn tags_of<'a>(org: &'a Org, tag_ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a TagRec> {
    tag_ids
        .into_iter()
        .filter_map(|tag_id| org.tags.get(tag_id))
        .collect()
}

async fn user_tags(
    State(shared): State<Shared>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let user = org.user(&user_id)?;
    Ok(Json(json!({ "tags": tags_of(&org, &user.tag_ids) })))
}

async fn list_owners(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let name = params.get("name");
    let org = shared.org();
    let (owners, next, previous) = paginate(&org.owners, &position, size, |_, owner| {
        name.is_none_or(|name| owner.name == name)
            .then(|| owner.clone())
    })
    .into_items();
    Ok(Json(standard_page(owners, next, previous)))
}

async fn get_owner(
    State(shared): State<Shared>,
    Path(owner_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    Ok(Json(json!(org.owner(&owner_id)?)))
}

fn owner_users_json(org: &Org, owner_id: &str) -> ApiResult<Value> {
    let owner = org.owner(owner_id)?;
    let users: Vec<_> = owner
        .user_ids
        .iter()
        .filter_map(|user_id| org.users.get(user_id))
        .collect();
    Ok(json!({ "users": users }))
}

async fn owner_users(
    State(shared): State<Shared>,
    Path(owner_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    Ok(Json(owner_users_json(&org, &owner_id)?))
}

#[derive(Deserialize)]
struct UserIdList {
    user_ids: Vec<String>,
}

async fn set_owner_users(
    State(shared): State<Shared>,
    Path(owner_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: UserIdList = json_body(&body)?;
    let mut org = shared.org();
    let owner = org.owner(&owner_id)?;
    if owner.source_group_id.is_some() {
        return Err(ApiError::bad_request(
            "owner takes its users from a source group; its user list cannot be set",
        ));
    }
    for user_id in &request.user_ids {
        org.user(user_id)?;
    }
    if let Some(owner) = org.owners.get_mut(&owner_id) {
        owner.user_ids = request.user_ids;
    }
    org.record_object_event("OWNER_USERS_UPDATED", "owner_id", &owner_id);
    Ok(Json(owner_users_json(&org, &owner_id)?))
}

async fn list_tags(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let org = shared.org();
    let (tags, next, previous) =
        paginate(&org.tags, &position, size, |_, tag| Some(tag.clone())).into_items();
    Ok(Json(standard_page(tags, next, previous)))
}

fn tag_by_key_value<'a>(org: &'a Org, key: &str, value: Option<&str>) -> Option<&'a TagRec> {
    org.tags
        .values()
        .find(|tag| tag.key == key && tag.value.as_deref() == value)
}

async fn find_tag(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let key = params
        .get("tag_key")
        .ok_or_else(|| ApiError::bad_request("tag_key is required"))?;
    let value = params.get("tag_value");
    let org = shared.org();
    let tag = tag_by_key_value(&org, key, value)
        .ok_or_else(|| ApiError::not_found("tag", &format!("{key}:{}", value.unwrap_or(""))))?;
    Ok(Json(json!(tag)))
}

#[derive(Deserialize)]
struct CreateTagInfo {
    tag_key: String,
    #[serde(default)]
    tag_value: Option<String>,
}

async fn create_tag(
    State(shared): State<Shared>,
    params: Params,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    // The deprecated query parameters still work when no body is sent.
    let info = match optional_json_body::<CreateTagInfo>(&body)? {
        Some(info) => info,
        None => CreateTagInfo {
            tag_key: params
                .get("tag_key")
                .ok_or_else(|| ApiError::bad_request("tag_key is required"))?
                .to_owned(),
            tag_value: params.get("tag_value").map(str::to_owned),
        },
    };
    if info.tag_key.is_empty() {
        return Err(ApiError::bad_request("tag_key must not be empty"));
    }
    let mut org = shared.org();
    if let Some(existing) = tag_by_key_value(&org, &info.tag_key, info.tag_value.as_deref()) {
        return Ok(Json(json!(existing)));
    }
    let tag_id = org.new_id();
    let now = timestamp(org.now());
    let tag = TagRec {
        tag_id: tag_id.clone(),
        created_at: now.clone(),
        updated_at: now,
        user_creator_id: org.actor.user_id.clone(),
        key: info.tag_key,
        value: info.tag_value,
    };
    org.tags.insert(tag_id.clone(), tag.clone());
    org.record_object_event("TAG_CREATED", "tag_id", &tag_id);
    Ok(Json(json!(tag)))
}

#[derive(Clone, Copy)]
enum TagLink {
    User,
    Group,
    Resource,
}

async fn tag_link(
    State(shared): State<Shared>,
    Path((tag_id, object_id)): Path<(String, String)>,
    link: TagLink,
    apply: bool,
) -> ApiResult<StatusCode> {
    let mut org = shared.org();
    org.tag(&tag_id)?;
    let (tags, noun, field) = match link {
        TagLink::User => {
            org.user(&object_id)?;
            let tags = org.users.get_mut(&object_id).map(|user| &mut user.tag_ids);
            (tags, "USER", "user_id")
        }
        TagLink::Group => {
            org.group(&object_id)?;
            let tags = org
                .groups
                .get_mut(&object_id)
                .map(|group| &mut group.settings.tag_ids);
            (tags, "GROUP", "group_id")
        }
        TagLink::Resource => {
            org.resource(&object_id)?;
            let tags = org
                .resources
                .get_mut(&object_id)
                .map(|resource| &mut resource.settings.tag_ids);
            (tags, "RESOURCE", "resource_id")
        }
    };
    let Some(tags) = tags else {
        return Err(ApiError::not_found("object", &object_id));
    };
    let changed = if apply {
        tags.insert(tag_id.clone())
    } else {
        tags.remove(&tag_id)
    };
    if !apply && !changed {
        return Err(ApiError::not_found(
            "tag application",
            &format!("{tag_id} on {object_id}"),
        ));
    }
    if changed {
        let event_type = if apply {
            format!("TAG_{noun}_ADDED")
        } else {
            format!("TAG_{noun}_REMOVED")
        };
        let mut sub_event = Map::new();
        sub_event.insert("sub_event_type".into(), event_type.clone().into());
        sub_event.insert("tag_id".into(), tag_id.into());
        sub_event.insert(field.into(), object_id.into());
        org.record_event(&event_type, vec![sub_event]);
    }
    Ok(StatusCode::OK)
}

async fn list_channels(State(shared): State<Shared>) -> Json<Value> {
    let org = shared.org();
    let channels: Vec<&ChannelRec> = org.channels.values().collect();
    Json(json!({ "channels": channels }))
}

#[derive(Deserialize)]
struct CreateMessageChannelInfo {
    third_party_provider: String,
    remote_id: String,
}

async fn create_channel(State(shared): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let info: CreateMessageChannelInfo = json_body(&body)?;
    if info.third_party_provider != "SLACK" {
        return Err(ApiError::bad_request(format!(
            "unsupported third_party_provider {:?}",
            info.third_party_provider
        )));
    }
    let mut org = shared.org();
    if let Some(existing) = org
        .channels
        .values()
        .find(|channel| channel.remote_id == info.remote_id)
    {
        return Ok(Json(json!(existing)));
    }
    let id = org.new_id();
    let channel = ChannelRec {
        message_channel_id: id.clone(),
        third_party_provider: info.third_party_provider,
        name: info.remote_id.clone(),
        remote_id: info.remote_id,
        is_private: false,
    };
    org.channels.insert(id.clone(), channel.clone());
    org.record_object_event("MESSAGE_CHANNEL_CREATED", "message_channel_id", &id);
    Ok(Json(json!(channel)))
}

async fn get_channel(
    State(shared): State<Shared>,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let channel = org
        .channels
        .get(&channel_id)
        .ok_or_else(|| ApiError::not_found("message channel", &channel_id))?;
    Ok(Json(json!(channel)))
}

async fn list_bundles(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let contains = params.get("contains").map(str::to_lowercase);
    let org = shared.org();
    let matches = |name: &str| {
        contains
            .as_deref()
            .is_none_or(|needle| name.to_lowercase().contains(needle))
    };
    let total_count = org
        .bundles
        .values()
        .filter(|bundle| matches(&bundle.name))
        .count();
    let (bundles, next, previous) = paginate(&org.bundles, &position, size, |_, bundle| {
        matches(&bundle.name).then(|| bundle.clone())
    })
    .into_items();
    Ok(Json(json!({
        "previous": previous,
        "next": next,
        "total_count": total_count,
        "bundles": bundles,
    })))
}

#[derive(Deserialize, Serialize)]
struct CreateUarInfo {
    name: String,
    reviewer_assignment_policy: String,
    send_reviewer_assignment_notification: bool,
    deadline: DateTime<Utc>,
    time_zone: String,
    self_review_allowed: bool,
    #[serde(default)]
    instantly_action_reviews: Option<bool>,
    #[serde(default)]
    reminder_schedule: Option<Vec<i64>>,
    #[serde(default)]
    reminder_include_manager: Option<bool>,
    #[serde(default)]
    uar_scope: Option<Value>,
}

async fn create_uar(State(shared): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let info: CreateUarInfo = json_body(&body)?;
    if !UAR_ASSIGNMENT_POLICIES.contains(&info.reviewer_assignment_policy.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown reviewer_assignment_policy {:?}",
            info.reviewer_assignment_policy
        )));
    }
    if info
        .uar_scope
        .as_ref()
        .is_some_and(|scope| !scope.is_object())
    {
        return Err(ApiError::bad_request("uar_scope must be an object"));
    }
    let mut org = shared.org();
    let uar_id = org.new_id();
    let uar = UarRec {
        uar_id: uar_id.clone(),
        name: info.name,
        reviewer_assignment_policy: info.reviewer_assignment_policy,
        send_reviewer_assignment_notification: info.send_reviewer_assignment_notification,
        deadline: timestamp(info.deadline),
        time_zone: info.time_zone,
        self_review_allowed: info.self_review_allowed,
        instantly_action_reviews: info.instantly_action_reviews.unwrap_or(false),
        uar_scope: info.uar_scope,
    };
    org.uars.insert(uar_id.clone(), uar.clone());
    org.record_object_event("UAR_CREATED", "uar_id", &uar_id);
    Ok(Json(json!(uar)))
}

async fn list_uars(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let org = shared.org();
    let (uars, next, previous) =
        paginate(&org.uars, &position, size, |_, uar| Some(uar.clone())).into_items();
    Ok(Json(standard_page(uars, next, previous)))
}

async fn get_uar(
    State(shared): State<Shared>,
    Path(uar_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let uar = org
        .uars
        .get(&uar_id)
        .ok_or_else(|| ApiError::not_found("uar", &uar_id))?;
    Ok(Json(json!(uar)))
}

/// A date filter bound: an instant, or a whole day given as a date.
#[derive(Clone, Copy)]
pub(super) struct DateBound {
    at: DateTime<Utc>,
    whole_day: bool,
}

impl DateBound {
    /// Reads `2021-11-01`, `2021/11/01` or an RFC 3339 date-time.
    pub(super) fn parse(name: &str, value: &str) -> ApiResult<Self> {
        if let Ok(at) = DateTime::parse_from_rfc3339(value) {
            return Ok(Self {
                at: at.with_timezone(&Utc),
                whole_day: false,
            });
        }
        let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(value, "%Y/%m/%d"))
            .map_err(|_| {
                ApiError::bad_request(format!("{name} must be a date or date-time, got {value:?}"))
            })?;
        Ok(Self {
            at: date.and_time(chrono::NaiveTime::MIN).and_utc(),
            whole_day: true,
        })
    }

    pub(super) fn from_params(params: &Params, name: &str) -> ApiResult<Option<Self>> {
        params
            .get(name)
            .map(|value| Self::parse(name, value))
            .transpose()
    }

    /// `at` is on or after this bound.
    pub(super) fn admits_from(self, at: DateTime<Utc>) -> bool {
        at >= self.at
    }

    /// `at` is on or before this bound (a date covers its whole day).
    pub(super) fn admits_until(self, at: DateTime<Utc>) -> bool {
        if self.whole_day {
            at < self.at + TimeDelta::days(1)
        } else {
            at <= self.at
        }
    }
}

struct EventFilter {
    start: Option<DateBound>,
    end: Option<DateBound>,
    actor: Option<String>,
    object: Option<String>,
    event_type: Option<String>,
    api_token_name: Option<String>,
}

impl EventFilter {
    fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            start: DateBound::from_params(params, "start_date_filter")?,
            end: DateBound::from_params(params, "end_date_filter")?,
            actor: params.get("actor_filter").map(str::to_owned),
            object: params.get("object_filter").map(str::to_owned),
            event_type: params.get("event_type_filter").map(str::to_owned),
            api_token_name: params
                .get("api_token_filter")
                .map(|filter| filter.split(':').next().unwrap_or_default().to_owned()),
        })
    }

    fn admits(&self, event: &EventRec) -> bool {
        self.start.is_none_or(|start| start.admits_from(event.at))
            && self.end.is_none_or(|end| end.admits_until(event.at))
            && self
                .actor
                .as_ref()
                .is_none_or(|actor| *actor == event.actor_user_id)
            && self
                .object
                .as_ref()
                .is_none_or(|object| event.object_ids.contains(object))
            && self
                .event_type
                .as_ref()
                .is_none_or(|event_type| *event_type == event.event_type)
            && self
                .api_token_name
                .as_ref()
                .is_none_or(|name| *name == event.api_token_name)
    }
}

async fn list_events(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let filter = EventFilter::from_params(&params)?;
    let org = shared.org();
    let (events, next, previous) = paginate(&org.events, &position, size, |_, event| {
        filter.admits(event).then(|| event.clone())
    })
    .into_items();
    Ok(Json(standard_page(events, next, previous)))
}

async fn get_event(
    State(shared): State<Shared>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    Ok(Json(json!(org.event(&event_id)?)))
}
