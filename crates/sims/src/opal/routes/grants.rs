//! Users' grants on groups and resources: group member lists, a user's groups, and
//! adding, changing and removing a user's access.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::config::DuplicateGrant;
use super::super::http::{ApiError, ApiResult, Params, json_body, optional_json_body};
use super::super::model::{AddOutcome, Grant, MAX_DURATION_MINUTES, Org, TargetKind};
use super::super::paging::{Position, page_size, paginate};
use super::super::server::{RouteTable, Shared};
use super::super::wire::AccessLevel;
use super::{GroupUserOut, IdPath, PairPath, ResourceUserOut, standard_page};

pub(super) fn register(table: RouteTable) -> RouteTable {
    use TargetKind::{Group, Resource};
    table
        .get("/groups/{group_id}/users", group_members)
        .get("/groups/users/{user_id}", user_groups)
        .post(
            "/groups/{group_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, q: Params, b: Bytes| add_user(s, p, q, b, Group),
        )
        .put(
            "/groups/{group_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, b: Bytes| update_user(s, p, b, Group),
        )
        .delete(
            "/groups/{group_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, q: Params| remove_user(s, p, q, Group),
        )
        .post(
            "/resources/{resource_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, q: Params, b: Bytes| add_user(s, p, q, b, Resource),
        )
        .put(
            "/resources/{resource_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, b: Bytes| update_user(s, p, b, Resource),
        )
        .delete(
            "/resources/{resource_id}/users/{user_id}",
            |s: State<Shared>, p: PairPath, q: Params| remove_user(s, p, q, Resource),
        )
}

async fn group_members(
    State(shared): State<Shared>,
    axum::extract::Path(group_id): IdPath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let org = shared.org();
    let group = org.group(&group_id)?;
    let now = org.now();
    let Some(members) = org.group_grants.by_target.get(&group_id) else {
        return Ok(Json(standard_page(Vec::<Value>::new(), None, None)));
    };
    let (items, next, previous) = paginate(members, &position, size, |(user_id, _), grant| {
        let user = org.users.get(user_id)?;
        grant
            .active_at(now)
            .then(|| GroupUserOut::new(group, user, grant))
    })
    .into_items();
    Ok(Json(standard_page(items, next, previous)))
}

async fn user_groups(
    State(shared): State<Shared>,
    axum::extract::Path(user_id): IdPath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let size = page_size(params.integer("page_size")?, shared.page_cap())?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let org = shared.org();
    let user = org.user(&user_id)?;
    let now = org.now();
    let Some(memberships) = org.group_grants.by_user.get(&user_id) else {
        return Ok(Json(standard_page(Vec::<Value>::new(), None, None)));
    };
    let (items, next, previous) =
        paginate(memberships, &position, size, |(group_id, level), ()| {
            let grant = org
                .group_grants
                .get(group_id, &user_id, level)
                .filter(|grant| grant.active_at(now))?;
            let group = org.groups.get(group_id)?;
            Some(GroupUserOut::new(group, user, grant))
        })
        .into_items();
    Ok(Json(standard_page(items, next, previous)))
}

/// Body of the add/update user endpoints.
#[derive(Deserialize)]
struct GrantBody {
    duration_minutes: Option<i64>,
    #[serde(default)]
    access_level_remote_id: Option<String>,
}

fn grant_json(
    org: &Org,
    kind: TargetKind,
    target_id: &str,
    user_id: &str,
    grant: &Grant,
) -> ApiResult<Value> {
    let user = org.user(user_id)?;
    Ok(match kind {
        TargetKind::Group => json!(GroupUserOut::new(org.group(target_id)?, user, grant)),
        TargetKind::Resource => json!(ResourceUserOut::new(target_id, user, grant)),
    })
}

fn check_duration(minutes: i64, allow_negative: bool) -> ApiResult<()> {
    if minutes > MAX_DURATION_MINUTES {
        return Err(ApiError::bad_request(format!(
            "duration_minutes must be at most {MAX_DURATION_MINUTES}, got {minutes}"
        )));
    }
    if minutes < 0 && !allow_negative {
        return Err(ApiError::bad_request(format!(
            "duration_minutes must not be negative, got {minutes}"
        )));
    }
    Ok(())
}

async fn add_user(
    State(shared): State<Shared>,
    axum::extract::Path((target_id, user_id)): PairPath,
    params: Params,
    body: Bytes,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    // The body is the documented way; the query parameters are the deprecated one.
    let request = optional_json_body::<GrantBody>(&body)?.unwrap_or(GrantBody {
        duration_minutes: params.integer("duration_minutes")?,
        access_level_remote_id: params.get("access_level_remote_id").map(str::to_owned),
    });
    let minutes = request
        .duration_minutes
        .ok_or_else(|| ApiError::bad_request("duration_minutes is required"))?;
    check_duration(minutes, false)?;
    let level = request.access_level_remote_id.unwrap_or_default();
    let duplicate = shared.duplicate_grant();
    let mut org = shared.org();
    org.target(kind, &target_id)?;
    let expiration = org.expiry_after(minutes);
    match org.add_grant(kind, &target_id, &user_id, &level, expiration)? {
        AddOutcome::Created(grant) => {
            org.record_grant_event("ADDED", kind, &target_id, &user_id, &grant);
            Ok(Json(grant_json(&org, kind, &target_id, &user_id, &grant)?))
        }
        AddOutcome::AlreadyExisted(grant) => match duplicate {
            DuplicateGrant::ReturnExisting => {
                Ok(Json(grant_json(&org, kind, &target_id, &user_id, &grant)?))
            }
            DuplicateGrant::Conflict => Err(ApiError::conflict(format!(
                "user {user_id} already has access level {level:?} on {} {target_id}",
                kind.noun()
            ))),
        },
    }
}

/// Picks the grant a PUT without an exact level match refers to: the default level, or the
/// user's only grant on the target.
fn grant_to_update(grants: &[Grant], requested: Option<&str>) -> ApiResult<Option<Grant>> {
    let wanted = requested.unwrap_or("");
    if let Some(exact) = grants.iter().find(|grant| grant.level.remote_id == wanted) {
        return Ok(Some(exact.clone()));
    }
    match grants {
        [] => Ok(None),
        [only] => Ok(Some(only.clone())),
        _ => Err(ApiError::bad_request(format!(
            "user holds several access levels here and none is {wanted:?}; name the level to update"
        ))),
    }
}

async fn update_user(
    State(shared): State<Shared>,
    axum::extract::Path((target_id, user_id)): PairPath,
    body: Bytes,
    kind: TargetKind,
) -> ApiResult<Json<Value>> {
    let request: GrantBody = json_body(&body)?;
    let minutes = request
        .duration_minutes
        .ok_or_else(|| ApiError::bad_request("duration_minutes is required"))?;
    check_duration(minutes, kind == TargetKind::Group)?;
    let mut org = shared.org();
    org.target(kind, &target_id)?;
    org.user(&user_id)?;
    let now = org.now();
    let grants = org.grants(kind).user_grants_on(&target_id, &user_id, now);
    let current =
        grant_to_update(&grants, request.access_level_remote_id.as_deref())?.ok_or_else(|| {
            ApiError::not_found(
                "grant",
                &format!("of user {user_id} on {} {target_id}", kind.noun()),
            )
        })?;
    if minutes < 0 {
        let removed = org
            .remove_grant(kind, &target_id, &user_id, &current.level.remote_id)
            .unwrap_or(current);
        org.record_grant_event("REMOVED", kind, &target_id, &user_id, &removed);
        let revoked = Grant {
            expiration: Some(now),
            ..removed
        };
        return Ok(Json(grant_json(
            &org, kind, &target_id, &user_id, &revoked,
        )?));
    }
    let level = match &request.access_level_remote_id {
        Some(remote_id) => org.resolve_level(
            kind,
            &target_id,
            Some(&AccessLevel::new("", remote_id.clone())),
        )?,
        None => current.level.clone(),
    };
    if level.remote_id != current.level.remote_id {
        org.remove_grant(kind, &target_id, &user_id, &current.level.remote_id);
    }
    let updated = Grant::new(level, org.expiry_after(minutes));
    org.put_grant(kind, &target_id, &user_id, updated.clone())?;
    org.record_grant_event("UPDATED", kind, &target_id, &user_id, &updated);
    Ok(Json(grant_json(
        &org, kind, &target_id, &user_id, &updated,
    )?))
}

async fn remove_user(
    State(shared): State<Shared>,
    axum::extract::Path((target_id, user_id)): PairPath,
    params: Params,
    kind: TargetKind,
) -> ApiResult<StatusCode> {
    let level = params
        .get("access_level_remote_id")
        .unwrap_or("")
        .to_owned();
    let mut org = shared.org();
    org.target(kind, &target_id)?;
    org.user(&user_id)?;
    let removed = org
        .remove_grant(kind, &target_id, &user_id, &level)
        .ok_or_else(|| {
            ApiError::not_found(
                "grant",
                &format!(
                    "of user {user_id} at level {level:?} on {} {target_id}",
                    kind.noun()
                ),
            )
        })?;
    org.record_grant_event("REMOVED", kind, &target_id, &user_id, &removed);
    Ok(StatusCode::OK)
}
