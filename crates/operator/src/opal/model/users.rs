//! Users and owners.

use serde::{Deserialize, Serialize};

use super::enums::HrIdpStatus;
use super::wire;

/// An Opal user (people come from the IdP/HRIS sync; the API cannot create them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub user_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub email: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub full_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub first_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub last_name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub position: String,
    #[serde(default)]
    pub hr_idp_status: Option<HrIdpStatus>,
}

/// A team or person that administers or reviews Opal items (`admin_owner_id`, reviewer stages).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Owner {
    pub owner_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub description: String,
    /// Minutes before an unanswered request escalates to the next owner user.
    #[serde(default)]
    pub access_request_escalation_period: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub reviewer_message_channel_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub source_group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub users: Vec<User>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserIdList<'a> {
    pub user_ids: &'a [String],
}
