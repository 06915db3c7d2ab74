//! Handlers, one module per area of the API, and the response shapes they share.

mod access;
mod directory;
mod entities;
mod grants;
mod requests;

use serde::Serialize;
use serde_json::{Value, json};

use super::model::{Grant, GroupRec, Org, ResourceAccess, UserRec};
use super::server::RouteTable;
use super::wire::{PROPAGATED, PropagationStatus, WireAccessLevel, timestamp};

/// Path with two ids, e.g. `/groups/{group_id}/users/{user_id}`.
type PairPath = axum::extract::Path<(String, String)>;

/// Path with one id.
type IdPath = axum::extract::Path<String>;

pub(crate) fn register(table: RouteTable) -> RouteTable {
    let table = directory::register(table);
    let table = entities::register(table);
    let table = grants::register(table);
    let table = access::register(table);
    requests::register(table)
}

/// The standard envelope: `{next, previous, results}`.
fn standard_page<T: Serialize>(
    results: Vec<T>,
    next: Option<String>,
    previous: Option<String>,
) -> Value {
    json!({ "next": next, "previous": previous, "results": results })
}

/// `GroupUser`.
#[derive(Serialize)]
struct GroupUserOut {
    group_id: String,
    group_name: String,
    description: String,
    user_id: String,
    access_level: WireAccessLevel,
    full_name: String,
    email: String,
    expiration_date: Option<String>,
    propagation_status: PropagationStatus,
}

impl GroupUserOut {
    fn new(group: &GroupRec, user: &UserRec, grant: &Grant) -> Self {
        Self {
            group_id: group.group_id.clone(),
            group_name: group.name.clone(),
            description: group.description.clone(),
            user_id: user.user_id.clone(),
            access_level: WireAccessLevel::from(&grant.level),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            expiration_date: grant.expiration.map(timestamp),
            propagation_status: PROPAGATED,
        }
    }
}

/// `ResourceUser` (a direct grant).
#[derive(Serialize)]
struct ResourceUserOut {
    resource_id: String,
    user_id: String,
    access_level: WireAccessLevel,
    full_name: String,
    email: String,
    expiration_date: Option<String>,
}

impl ResourceUserOut {
    fn new(resource_id: &str, user: &UserRec, grant: &Grant) -> Self {
        Self {
            resource_id: resource_id.to_owned(),
            user_id: user.user_id.clone(),
            access_level: WireAccessLevel::from(&grant.level),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            expiration_date: grant.expiration.map(timestamp),
        }
    }
}

/// `ResourceAccessUser` (direct or through groups).
#[derive(Serialize)]
struct ResourceAccessUserOut {
    resource_id: String,
    resource_name: String,
    user_id: String,
    access_level: WireAccessLevel,
    full_name: String,
    email: String,
    expiration_date: Option<String>,
    has_direct_access: bool,
    num_access_paths: u32,
    propagation_status: PropagationStatus,
}

impl ResourceAccessUserOut {
    fn new(org: &Org, resource_id: &str, user_id: &str, access: &ResourceAccess) -> Option<Self> {
        let resource = org.resources.get(resource_id)?;
        let user = org.users.get(user_id)?;
        Some(Self {
            resource_id: resource_id.to_owned(),
            resource_name: resource.name.clone(),
            user_id: user_id.to_owned(),
            access_level: WireAccessLevel::from(&access.level),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            expiration_date: access.expiration.map(timestamp),
            has_direct_access: access.has_direct_access,
            num_access_paths: access.num_access_paths,
            propagation_status: PROPAGATED,
        })
    }
}

/// `GroupResource`.
#[derive(Serialize)]
struct GroupResourceOut {
    group_id: String,
    resource_id: String,
    group_name: String,
    resource_name: String,
    access_level: WireAccessLevel,
    expiration_date: Option<String>,
}

impl GroupResourceOut {
    fn new(org: &Org, group_id: &str, resource_id: &str, link: &Grant) -> Option<Self> {
        Some(Self {
            group_id: group_id.to_owned(),
            resource_id: resource_id.to_owned(),
            group_name: org.groups.get(group_id)?.name.clone(),
            resource_name: org.resources.get(resource_id)?.name.clone(),
            access_level: WireAccessLevel::from(&link.level),
            expiration_date: link.expiration.map(timestamp),
        })
    }
}
