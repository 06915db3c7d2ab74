//! Bundles (named sets of groups and resources).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::wire;

/// A bundle of groups and resources requested together.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bundle {
    #[serde(default, deserialize_with = "wire::string")]
    pub bundle_id: String,
    #[serde(default, deserialize_with = "wire::string")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub admin_owner_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub total_num_items: Option<i64>,
    #[serde(default)]
    pub total_num_resources: Option<i64>,
    #[serde(default)]
    pub total_num_groups: Option<i64>,
}
