//! Endpoint methods of [`Client`](super::Client), one file per area of the API.

mod channels;
mod events;
mod grants;
mod groups;
mod owners;
mod requests;
mod resources;
mod reviews;
mod tags;
mod users;

pub use events::EventFilter;
pub use grants::{GrantOn, GrantOutcome, RevokeOutcome};
pub use groups::GroupFilter;
pub use requests::{RelayRequestFilter, RequestFilter};
pub use resources::ResourceFilter;

use chrono::{DateTime, SecondsFormat, Utc};

/// Timestamp format for Opal's date filters.
fn filter_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
