use chrono::{DateTime, Utc};

use super::filter_time;
use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{
    ApprovalLevel, ApproveBody, CommentBody, CreateRequest, CreatedRequest, DenyBody, Request,
    RequestComment, RequestCommentList, RequestEnvelope, RequestStatus,
};
use crate::opal::pagination::{PageParams, Pager, RequestConnection, RequestPage};

/// Filters of `GET /requests`; the default lists every request visible to the token's user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub requester_id: Option<String>,
    pub target_user_id: Option<String>,
    pub resource_id: Option<String>,
    pub group_id: Option<String>,
    pub pending_only: bool,
}

/// Filters of the deprecated Relay listing `GET /requests/relay`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayRequestFilter {
    pub status: Option<RequestStatus>,
    /// Requests assigned to this user for review.
    pub assignee_user_id: Option<String>,
    /// Requests made by this user.
    pub requester_user_id: Option<String>,
}

impl Client {
    /// Requests matching `filter`, page by page (`GET /requests`, `{requests, cursor}` style).
    pub fn requests(&self, filter: &RequestFilter) -> Pager<RequestPage> {
        let mut call = Call::get("requests.list", ApiPath::new(["requests"]))
            .query_opt("start_date_filter", filter.start.as_ref().map(filter_time))
            .query_opt("end_date_filter", filter.end.as_ref().map(filter_time))
            .query_opt("requester_id", filter.requester_id.as_deref())
            .query_opt("target_user_id", filter.target_user_id.as_deref())
            .query_opt("resource_id", filter.resource_id.as_deref())
            .query_opt("group_id", filter.group_id.as_deref());
        if filter.pending_only {
            call = call.query("show_pending_only", "true");
        }
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every request matching `filter`.
    pub async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<Request>, OpalError> {
        self.requests(filter).collect_all().await
    }

    /// Requests through the Relay listing, page by page (`GET /requests/relay`, `first`/`after`).
    pub fn requests_relay(&self, filter: &RelayRequestFilter) -> Pager<RequestConnection> {
        let call = Call::get("requests.relay.list", ApiPath::new(["requests", "relay"]))
            .query_opt("status", filter.status.as_ref().map(|s| s.as_str()))
            .query_opt("to", filter.assignee_user_id.as_deref())
            .query_opt("from", filter.requester_user_id.as_deref());
        Pager::new(self, call, PageParams::relay(self.page_size()))
    }

    /// Every request through the Relay listing.
    pub async fn list_requests_relay(
        &self,
        filter: &RelayRequestFilter,
    ) -> Result<Vec<Request>, OpalError> {
        self.requests_relay(filter).collect_all().await
    }

    /// One request (`GET /requests/{id}`).
    pub async fn request(&self, request_id: &str) -> Result<Request, OpalError> {
        self.fetch(&Call::get(
            "requests.get",
            ApiPath::new(["requests", request_id]),
        ))
        .await
    }

    /// Files a request (`POST /requests`) and returns its ID. Not retried after ambiguous
    /// failures, so a lost response never files the request twice.
    pub async fn create_request(&self, request: &CreateRequest) -> Result<String, OpalError> {
        let call = Call::new(
            "requests.create",
            HttpMethod::Post,
            ApiPath::new(["requests"]),
        )
        .json_body(request)?
        .not_replayable();
        Ok(self.fetch::<CreatedRequest>(&call).await?.id)
    }

    /// Approves a request (`POST /requests/{id}/approve`).
    pub async fn approve_request(
        &self,
        request_id: &str,
        level: &ApprovalLevel,
        comment: Option<&str>,
    ) -> Result<Request, OpalError> {
        let call = Call::new(
            "requests.approve",
            HttpMethod::Post,
            ApiPath::new(["requests", request_id, "approve"]),
        )
        .json_body(&ApproveBody { level, comment })?
        .not_replayable();
        Ok(self.fetch::<RequestEnvelope>(&call).await?.request)
    }

    /// Denies a request with a comment (`POST /requests/{id}/deny`).
    pub async fn deny_request(
        &self,
        request_id: &str,
        comment: &str,
        level: Option<&ApprovalLevel>,
    ) -> Result<Request, OpalError> {
        let call = Call::new(
            "requests.deny",
            HttpMethod::Post,
            ApiPath::new(["requests", request_id, "deny"]),
        )
        .json_body(&DenyBody { comment, level })?
        .not_replayable();
        Ok(self.fetch::<RequestEnvelope>(&call).await?.request)
    }

    /// Comments on a request (`GET /requests/{id}/comments`).
    pub async fn request_comments(
        &self,
        request_id: &str,
    ) -> Result<Vec<RequestComment>, OpalError> {
        let call = Call::get(
            "requests.comments.list",
            ApiPath::new(["requests", request_id, "comments"]),
        );
        Ok(self.fetch::<RequestCommentList>(&call).await?.comments)
    }

    /// Adds a comment (`POST /requests/{id}/comments`); returns the updated request.
    pub async fn add_request_comment(
        &self,
        request_id: &str,
        comment: &str,
    ) -> Result<Request, OpalError> {
        let call = Call::new(
            "requests.comments.add",
            HttpMethod::Post,
            ApiPath::new(["requests", request_id, "comments"]),
        )
        .json_body(&CommentBody { comment })?
        .not_replayable();
        Ok(self.fetch::<RequestEnvelope>(&call).await?.request)
    }
}
