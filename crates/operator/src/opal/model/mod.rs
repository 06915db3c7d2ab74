//! Typed request and response bodies of the Opal API.
//!
//! Responses ignore unknown fields, decode unknown enum values into `Unknown(..)` variants, read
//! `null` as empty where the spec says a value is required, and accept numbers where a string
//! identifier is expected (see `wire`).

mod bundles;
mod common;
mod enums;
mod events;
mod groups;
mod requests;
mod resources;
mod reviews;
mod users;
pub(crate) mod wire;

use serde::{Deserialize, Serialize};

pub use bundles::Bundle;
pub use common::{
    AccessLevel, CreateMessageChannel, GrantSpec, MessageChannel, PropagationStatus,
    RequestCondition, RequestConfiguration, ReviewerStage, SyncTask, Tag, TicketPropagation,
    VisibilityInfo,
};
pub use enums::{
    ApprovalLevel, CustomFieldType, GroupType, HrIdpStatus, MessageChannelProvider,
    PropagationStatusCode, RequestStatus, ResourceType, ReviewerAssignmentPolicy, ReviewerDecision,
    ReviewerStageOperator, RiskSensitivity, TicketingProvider, UarFilterOperator,
    UarGroupVisibility, Visibility,
};
pub use events::{Event, SubEvent};
pub use groups::{Group, GroupResource, GroupUser, UpdateGroupInfo};
pub(crate) use groups::{GroupResourceList, UpdateGroupInfoList};
pub(crate) use requests::{
    ApproveBody, CommentBody, CreatedRequest, DenyBody, RequestCommentList, RequestEnvelope,
};
pub use requests::{
    CreateRequest, CustomFieldResponse, CustomFieldValue, ItemReviewerStages, Request,
    RequestComment, RequestCustomMetadata, RequestReviewer, RequestReviewerStages, RequestStage,
    RequestedItem, RequestedTarget, SupportTicket,
};
pub(crate) use resources::UpdateResourceInfoList;
pub use resources::{Resource, ResourceAccessUser, ResourceUser, UpdateResourceInfo};
pub use reviews::{CreateUar, TagFilter, Uar, UarScope};
pub use users::{Owner, User};
pub(crate) use users::{UserIdList, UserList};

#[derive(Debug, Deserialize)]
pub(crate) struct TagList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateTagBody<'a> {
    pub tag_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_value: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageChannelList {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub channels: Vec<MessageChannel>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MessageChannelIdList<'a> {
    pub message_channel_ids: &'a [String],
}

#[derive(Debug, Serialize)]
pub(crate) struct ReviewerStageList<'a> {
    pub stages: &'a [ReviewerStage],
}

#[cfg(test)]
mod tests;
