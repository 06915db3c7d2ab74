use chrono::{DateTime, Utc};

use super::filter_time;
use crate::opal::call::{ApiPath, Call};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::Event;
use crate::opal::pagination::{CursorPage, PageParams, Pager};

/// Filters of `GET /events`; the default lists the whole audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Events performed by this user.
    pub actor_id: Option<String>,
    /// Events about this object (user, group, resource, …).
    pub object_id: Option<String>,
    pub event_type: Option<String>,
    /// `<token name>:<preview>` of the API token that caused the events.
    pub api_token: Option<String>,
}

impl Client {
    /// Audit events matching `filter`, page by page (`GET /events`).
    pub fn events(&self, filter: &EventFilter) -> Pager<CursorPage<Event>> {
        let call = Call::get("events.list", ApiPath::new(["events"]))
            .query_opt("start_date_filter", filter.start.as_ref().map(filter_time))
            .query_opt("end_date_filter", filter.end.as_ref().map(filter_time))
            .query_opt("actor_filter", filter.actor_id.as_deref())
            .query_opt("object_filter", filter.object_id.as_deref())
            .query_opt("event_type_filter", filter.event_type.as_deref())
            .query_opt("api_token_filter", filter.api_token.as_deref());
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every audit event matching `filter`.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, OpalError> {
        self.events(filter).collect_all().await
    }

    /// One event (`GET /events/{event_id}`).
    pub async fn event(&self, event_id: &str) -> Result<Event, OpalError> {
        self.fetch(&Call::get("events.get", ApiPath::new(["events", event_id])))
            .await
    }
}
