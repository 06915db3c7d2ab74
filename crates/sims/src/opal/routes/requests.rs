//! Access requests: listing (cursor and Relay styles), creating, approving, denying, comments.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::http::{ApiError, ApiResult, Params, json_body};
use super::super::model::{
    CommentRec, MAX_DURATION_MINUTES, Org, RequestItemRec, RequestRec, TargetKind,
};
use super::super::paging::{Position, decode_edge_cursor, edge_cursor, page_size, paginate};
use super::super::server::{RouteTable, Shared};
use super::super::wire::{AccessLevel, REQUEST_STATUSES, timestamp};
use super::IdPath;
use super::directory::DateBound;

pub(super) fn register(table: RouteTable) -> RouteTable {
    table
        .get("/requests", list_requests)
        .post("/requests", create_request)
        .get("/requests/relay", relay_requests)
        .get("/requests/{id}", get_request)
        .post("/requests/{id}/approve", approve_request)
        .post("/requests/{id}/deny", deny_request)
        .get("/requests/{id}/comments", list_comments)
        .post("/requests/{id}/comments", add_comment)
}

/// Reviewer status implied by the request's status.
fn reviewer_status(request_status: &str) -> &'static str {
    match request_status {
        "APPROVED" => "APPROVED",
        "DENIED" => "REJECTED",
        _ => "PENDING",
    }
}

fn item_json(item: &RequestItemRec) -> Value {
    let mut out = Map::new();
    out.insert(item.kind.id_field().into(), item.target_id.clone().into());
    out.insert("access_level_name".into(), item.level.name.clone().into());
    out.insert(
        "access_level_remote_id".into(),
        item.level.remote_id.clone().into(),
    );
    out.insert("name".into(), item.name.clone().into());
    if let Some(remote_id) = &item.remote_id {
        out.insert("remote_id".into(), remote_id.clone().into());
    }
    Value::Object(out)
}

/// `Request`.
fn request_json(request: &RequestRec) -> Value {
    let status = reviewer_status(&request.status);
    let reviewer_stages: Vec<Value> = request
        .items
        .iter()
        .map(|item| {
            let stages: Vec<Value> = item
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| {
                    let reviewers: Vec<Value> = stage
                        .reviewers
                        .iter()
                        .map(|reviewer| {
                            json!({
                                "id": reviewer.user_id,
                                "full_name": reviewer.full_name,
                                "status": status,
                            })
                        })
                        .collect();
                    json!({ "stage": index + 1, "operator": stage.operator, "reviewers": reviewers })
                })
                .collect();
            json!({
                "access_level_name": item.level.name,
                "access_level_remote_id": item.level.remote_id,
                "item_name": item.name,
                "item_id": item.target_id,
                "stages": stages,
            })
        })
        .collect();
    let mut out = json!({
        "id": request.id,
        "created_at": timestamp(request.created_at),
        "updated_at": timestamp(request.updated_at),
        "requester_id": request.requester_id,
        "status": request.status,
        "reason": request.reason,
        "duration_minutes": request.duration_minutes,
        "requested_items_list": request.items.iter().map(item_json).collect::<Vec<_>>(),
        "custom_fields_responses": request.custom_fields,
        "reviewer_stages": reviewer_stages,
    });
    if let Some(user) = &request.target_user_id {
        out["target_user_id"] = json!(user);
    }
    if let Some(group) = &request.target_group_id {
        out["target_group_id"] = json!(group);
    }
    out
}

struct RequestFilter {
    requester: Option<String>,
    target_user: Option<String>,
    resource: Option<String>,
    group: Option<String>,
    pending_only: bool,
    status: Option<String>,
    reviewer: Option<String>,
    start: Option<DateBound>,
    end: Option<DateBound>,
}

impl RequestFilter {
    fn admits(&self, request: &RequestRec) -> bool {
        let has_item = |kind: TargetKind, id: &str| {
            request
                .items
                .iter()
                .any(|item| item.kind == kind && item.target_id == id)
        };
        self.requester
            .as_ref()
            .is_none_or(|id| *id == request.requester_id)
            && self
                .target_user
                .as_ref()
                .is_none_or(|id| request.target_user_id.as_ref() == Some(id))
            && self
                .resource
                .as_ref()
                .is_none_or(|id| has_item(TargetKind::Resource, id))
            && self.group.as_ref().is_none_or(|id| {
                has_item(TargetKind::Group, id) || request.target_group_id.as_ref() == Some(id)
            })
            && (!self.pending_only || request.status == "PENDING")
            && self
                .status
                .as_ref()
                .is_none_or(|status| *status == request.status)
            && self.reviewer.as_ref().is_none_or(|reviewer| {
                request.items.iter().any(|item| {
                    item.stages
                        .iter()
                        .any(|stage| stage.reviewers.iter().any(|r| r.user_id == *reviewer))
                })
            })
            && self
                .start
                .is_none_or(|start| start.admits_from(request.created_at))
            && self
                .end
                .is_none_or(|end| end.admits_until(request.created_at))
    }
}

/// `{requests, cursor}`; `cursor` is left out on the last page.
async fn list_requests(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let filter = RequestFilter {
        requester: params.get("requester_id").map(str::to_owned),
        target_user: params.get("target_user_id").map(str::to_owned),
        resource: params.get("resource_id").map(str::to_owned),
        group: params.get("group_id").map(str::to_owned),
        pending_only: params.boolean("show_pending_only")?.unwrap_or(false),
        status: None,
        reviewer: None,
        start: DateBound::from_params(&params, "start_date_filter")?,
        end: DateBound::from_params(&params, "end_date_filter")?,
    };
    let org = shared.org();
    let (requests, next, _) = paginate(&org.requests, &position, size, |_, request| {
        filter.admits(request).then(|| request_json(request))
    })
    .into_items();
    let mut body = json!({ "requests": requests });
    if let Some(cursor) = next {
        body["cursor"] = json!(cursor);
    }
    Ok(Json(body))
}

fn relay_count(params: &Params, name: &str) -> ApiResult<Option<usize>> {
    params
        .integer(name)?
        .map(|count| {
            if (1..=100).contains(&count) {
                usize::try_from(count).map_err(|_| ApiError::bad_request("invalid count"))
            } else {
                Err(ApiError::bad_request(format!(
                    "{name} must be between 1 and 100, got {count}"
                )))
            }
        })
        .transpose()
}

/// The deprecated Relay-style listing: `first`/`after` forwards, `last`/`before` backwards;
/// 100 items when no count is given.
async fn relay_requests(State(shared): State<Shared>, params: Params) -> ApiResult<Json<Value>> {
    let first = relay_count(&params, "first")?;
    let last = relay_count(&params, "last")?;
    let after = params.get("after");
    let before = params.get("before");
    if (first.is_some() || after.is_some()) && (last.is_some() || before.is_some()) {
        return Err(ApiError::bad_request(
            "use either first/after or last/before, not both",
        ));
    }
    let position = match (after, before) {
        (Some(cursor), _) => Position::After(decode_edge_cursor::<String>(cursor)?),
        (None, Some(cursor)) => Position::Before(decode_edge_cursor::<String>(cursor)?),
        // `last` alone counts back from the end: a key above every id.
        (None, None) if last.is_some() => Position::Before(String::from('\u{10ffff}')),
        (None, None) => Position::Start,
    };
    let count = first.or(last).unwrap_or(100);
    let size = page_size(i64::try_from(count).ok(), shared.page_cap())?;
    let status = params.get("status").map(str::to_owned);
    if let Some(status) = &status
        && !REQUEST_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!("unknown status {status:?}")));
    }
    let filter = RequestFilter {
        requester: params.get("from").map(str::to_owned),
        target_user: None,
        resource: None,
        group: None,
        pending_only: false,
        status,
        reviewer: params.get("to").map(str::to_owned),
        start: None,
        end: None,
    };
    let org = shared.org();
    let total_count = org
        .requests
        .values()
        .filter(|request| filter.admits(request))
        .count();
    let page = paginate(&org.requests, &position, size, |_, request| {
        filter.admits(request).then(|| request_json(request))
    });
    let has_next = page.next.is_some();
    let has_previous = page.previous.is_some();
    let edges: Vec<Value> = page
        .items
        .iter()
        .map(|(key, node)| json!({ "node": node, "cursor": edge_cursor(key) }))
        .collect();
    let start_cursor = page.items.first().map(|(key, _)| edge_cursor(key));
    let end_cursor = page.items.last().map(|(key, _)| edge_cursor(key));
    Ok(Json(json!({
        "edges": edges,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": start_cursor.unwrap_or_default(),
            "endCursor": end_cursor.unwrap_or_default(),
        },
        "totalCount": total_count,
    })))
}

#[derive(Deserialize)]
struct RequestedObject {
    id: String,
    #[serde(default)]
    access_level_remote_id: Option<String>,
}

#[derive(Deserialize)]
struct CustomMetadata {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    value: String,
}

#[derive(Deserialize)]
struct CreateRequestInfo {
    resources: Vec<RequestedObject>,
    groups: Vec<RequestedObject>,
    #[serde(default)]
    target_user_id: Option<String>,
    #[serde(default)]
    target_group_id: Option<String>,
    reason: String,
    duration_minutes: i64,
    #[serde(default)]
    custom_metadata: Vec<CustomMetadata>,
}

fn check_request_duration(org: &Org, item: &RequestItemRec, minutes: i64) -> ApiResult<()> {
    let (_, settings) = org.target(item.kind, &item.target_id)?;
    if let Some(max) = settings.max_duration.filter(|max| *max > 0)
        && (minutes <= 0 || minutes > max)
    {
        return Err(ApiError::bad_request(format!(
            "{} {} allows at most {max} minutes",
            item.kind.noun(),
            item.target_id
        )));
    }
    Ok(())
}

/// Creates a request; it is approved at once when every requested object auto-approves.
async fn create_request(State(shared): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let info: CreateRequestInfo = json_body(&body)?;
    if !(-1..=MAX_DURATION_MINUTES).contains(&info.duration_minutes) {
        return Err(ApiError::bad_request(format!(
            "duration_minutes must be between -1 and {MAX_DURATION_MINUTES}"
        )));
    }
    if info.resources.is_empty() && info.groups.is_empty() {
        return Err(ApiError::bad_request(
            "request at least one resource or group",
        ));
    }
    if info.target_user_id.is_some() && info.target_group_id.is_some() {
        return Err(ApiError::bad_request(
            "give target_user_id or target_group_id, not both",
        ));
    }
    let mut org = shared.org();
    if let Some(user) = &info.target_user_id {
        org.user(user)?;
    }
    if let Some(group) = &info.target_group_id {
        org.group(group)?;
    }
    let mut items = Vec::new();
    for (kind, objects) in [
        (TargetKind::Resource, &info.resources),
        (TargetKind::Group, &info.groups),
    ] {
        for object in objects {
            let level = AccessLevel::new(
                "",
                object.access_level_remote_id.clone().unwrap_or_default(),
            );
            let item = org.request_item(kind, &object.id, Some(&level))?;
            check_request_duration(&org, &item, info.duration_minutes)?;
            items.push(item);
        }
    }
    let auto_approved = items.iter().all(|item| {
        org.target(item.kind, &item.target_id)
            .is_ok_and(|(_, settings)| settings.auto_approval)
    });
    let now = org.now();
    let id = org.new_id();
    let requester_id = org.actor.user_id.clone();
    let target_user_id = match (&info.target_user_id, &info.target_group_id) {
        (Some(user), _) => Some(user.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(requester_id.clone()),
    };
    org.requests.insert(
        id.clone(),
        RequestRec {
            id: id.clone(),
            created_at: now,
            updated_at: now,
            requester_id,
            target_user_id,
            target_group_id: info.target_group_id,
            status: if auto_approved { "APPROVED" } else { "PENDING" }.to_owned(),
            reason: info.reason,
            duration_minutes: info.duration_minutes,
            items,
            custom_fields: info
                .custom_metadata
                .into_iter()
                .map(|field| {
                    json!({
                        "field_name": field.name,
                        "field_type": field.field_type,
                        "field_value": field.value,
                    })
                })
                .collect(),
            comments: Vec::new(),
        },
    );
    org.record_object_event("REQUEST_CREATED", "request_id", &id);
    if auto_approved {
        let grants = org.fulfil_request(&id)?;
        record_decision(&mut org, "REQUEST_APPROVED", &id, grants);
    }
    Ok(Json(json!({ "id": id })))
}

fn record_decision(
    org: &mut Org,
    event_type: &str,
    request_id: &str,
    grants: Vec<Map<String, Value>>,
) {
    let mut decision = Map::new();
    decision.insert("sub_event_type".into(), event_type.into());
    decision.insert("request_id".into(), request_id.into());
    let mut sub_events = vec![decision];
    sub_events.extend(grants);
    org.record_event(event_type, sub_events);
}

async fn get_request(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let request = org
        .requests
        .get(&id)
        .ok_or_else(|| ApiError::not_found("request", &id))?;
    Ok(Json(request_json(request)))
}

#[derive(Deserialize)]
struct ApproveBody {
    level: ApprovalLevel,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
struct DenyBody {
    comment: String,
    #[serde(default, rename = "level")]
    _level: Option<ApprovalLevel>,
}

/// `RequestApprovalEnum`.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ApprovalLevel {
    Regular,
    Admin,
}

/// Moves a pending request to `status`, noting the comment; anything but a pending request is
/// a client error.
fn decide(org: &mut Org, id: &str, status: &str, comment: Option<String>) -> ApiResult<()> {
    let now = org.now();
    let actor = org.actor.user_id.clone();
    let request = org
        .requests
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found("request", id))?;
    if request.status != "PENDING" {
        return Err(ApiError::bad_request(format!(
            "request {id} is {}, not PENDING",
            request.status
        )));
    }
    request.status = status.to_owned();
    request.updated_at = now;
    if let Some(comment) = comment.filter(|comment| !comment.is_empty()) {
        request.comments.push(CommentRec {
            created_at: now,
            user_id: actor,
            comment,
        });
    }
    Ok(())
}

async fn approve_request(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let approval: ApproveBody = json_body(&body)?;
    let mut org = shared.org();
    decide(&mut org, &id, "APPROVED", approval.comment)?;
    let event_type = match approval.level {
        ApprovalLevel::Regular => "REQUEST_APPROVED",
        ApprovalLevel::Admin => "REQUEST_APPROVED_BY_ADMIN",
    };
    let grants = org.fulfil_request(&id)?;
    record_decision(&mut org, event_type, &id, grants);
    request_envelope(&org, &id)
}

async fn deny_request(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let denial: DenyBody = json_body(&body)?;
    let mut org = shared.org();
    decide(&mut org, &id, "DENIED", Some(denial.comment))?;
    record_decision(&mut org, "REQUEST_DENIED", &id, Vec::new());
    request_envelope(&org, &id)
}

fn request_envelope(org: &Org, id: &str) -> ApiResult<Json<Value>> {
    let request = org
        .requests
        .get(id)
        .ok_or_else(|| ApiError::not_found("request", id))?;
    Ok(Json(json!({ "request": request_json(request) })))
}

async fn list_comments(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
) -> ApiResult<Json<Value>> {
    let org = shared.org();
    let request = org
        .requests
        .get(&id)
        .ok_or_else(|| ApiError::not_found("request", &id))?;
    let comments: Vec<Value> = request
        .comments
        .iter()
        .map(|comment| {
            let mut out = json!({
                "created_at": timestamp(comment.created_at),
                "request_id": request.id,
                "user_id": comment.user_id,
                "comment": comment.comment,
            });
            if let Some(user) = org.users.get(&comment.user_id) {
                out["user_full_name"] = json!(user.full_name);
                out["user_email"] = json!(user.email);
            }
            out
        })
        .collect();
    Ok(Json(json!({ "comments": comments })))
}

#[derive(Deserialize)]
struct CommentBody {
    comment: String,
}

async fn add_comment(
    State(shared): State<Shared>,
    axum::extract::Path(id): IdPath,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let comment: CommentBody = json_body(&body)?;
    let mut org = shared.org();
    let now = org.now();
    let actor = org.actor.user_id.clone();
    let request = org
        .requests
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("request", &id))?;
    request.comments.push(CommentRec {
        created_at: now,
        user_id: actor,
        comment: comment.comment,
    });
    request.updated_at = now;
    org.record_object_event("REQUEST_COMMENT_ADDED", "request_id", &id);
    request_envelope(&org, &id)
}
