//! Who can reach a resource and what a user can reach, counting direct grants and every group
//! that grants the resource to its members.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::super::http::{ApiResult, Params};
use super::super::paging::{Position, page_size, paginate};
use super::super::server::{RouteTable, Shared};
use super::{IdPath, PairPath, ResourceAccessUserOut, ResourceUserOut, standard_page};

pub(super) fn register(table: RouteTable) -> RouteTable {
    table
        .get("/resources/{resource_id}/users", resource_users)
        .get("/resources/{resource_id}/users/{user_id}", resource_user)
        .get("/resources/users/{user_id}", user_resources)
}

/// `limit` works like `page_size` here (default 200, at most 1000, the page cap applies).
fn limit(shared: &Shared, params: &Params) -> ApiResult<usize> {
    page_size(params.integer("limit")?, shared.page_cap())
}

async fn resource_users(
    State(shared): State<Shared>,
    axum::extract::Path(resource_id): IdPath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let size = limit(&shared, &params)?;
    let position = Position::from_cursor(params.get("cursor"))?;
    let org = shared.org();
    org.resource(&resource_id)?;
    let access = org.resource_access(&resource_id);
    let (items, next, previous) = paginate(&access, &position, size, |(user_id, _), entry| {
        ResourceAccessUserOut::new(&org, &resource_id, user_id, entry)
    })
    .into_items();
    Ok(Json(standard_page(items, next, previous)))
}

async fn resource_user(
    State(shared): State<Shared>,
    axum::extract::Path((resource_id, user_id)): PairPath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let position = Position::from_cursor(params.get("cursor"))?;
    let size = page_size(None, shared.page_cap())?;
    let org = shared.org();
    org.resource(&resource_id)?;
    let user = org.user(&user_id)?;
    let now = org.now();
    let direct: BTreeMap<String, ResourceUserOut> = org
        .resource_grants
        .user_grants_on(&resource_id, &user_id, now)
        .iter()
        .map(|grant| {
            (
                grant.level.remote_id.clone(),
                ResourceUserOut::new(&resource_id, user, grant),
            )
        })
        .collect();
    let total_count = direct.len();
    let page = paginate(&direct, &position, size, |_, grant| Some(json!(grant)));
    let mut body = json!({ "total_count": total_count });
    let (data, next, _) = page.into_items();
    body["data"] = json!(data);
    if let Some(cursor) = next {
        body["cursor"] = json!(cursor);
    }
    Ok(Json(body))
}

async fn user_resources(
    State(shared): State<Shared>,
    axum::extract::Path(user_id): IdPath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let size = limit(&shared, &params)?;
    let position = Position::from_cursor(params.get("cursor"))?;
    // Every simulated resource is managed, so unmanaged access adds nothing; the flag is still
    // validated like the real parameter.
    params.boolean("include_unmanaged")?;
    let org = shared.org();
    org.user(&user_id)?;
    let access = org.user_resource_access(&user_id);
    let (items, next, previous) = paginate(&access, &position, size, |(resource_id, _), entry| {
        ResourceAccessUserOut::new(&org, resource_id, &user_id, entry)
    })
    .into_items();
    Ok(Json(standard_page(items, next, previous)))
}
