use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{
    Group, GroupResource, GroupResourceList, GroupType, GroupUser, MessageChannel,
    MessageChannelIdList, MessageChannelList, ReviewerStage, ReviewerStageList, Tag, TagList,
    UpdateGroupInfo, UpdateGroupInfoList, VisibilityInfo,
};
use crate::opal::pagination::{CursorPage, PageParams, Pager};

/// Filters of `GET /groups`; the default lists every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub group_type: Option<GroupType>,
    pub group_ids: Vec<String>,
    pub name: Option<String>,
    pub tag_ids: Vec<String>,
}

impl Client {
    /// Groups matching `filter`, page by page (`GET /groups`).
    pub fn groups(&self, filter: &GroupFilter) -> Pager<CursorPage<Group>> {
        let call = Call::get("groups.list", ApiPath::new(["groups"]))
            .query_opt(
                "group_type_filter",
                filter.group_type.as_ref().map(|t| t.as_str()),
            )
            .query_joined("group_ids", &filter.group_ids)
            .query_opt("group_name", filter.name.as_deref())
            .query_repeated("tag_ids", &filter.tag_ids);
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every group matching `filter`.
    pub async fn list_groups(&self, filter: &GroupFilter) -> Result<Vec<Group>, OpalError> {
        self.groups(filter).collect_all().await
    }

    /// One group (`GET /groups/{group_id}`).
    pub async fn group(&self, group_id: &str) -> Result<Group, OpalError> {
        self.fetch(&Call::get("groups.get", ApiPath::new(["groups", group_id])))
            .await
    }

    /// Bulk configuration update (`PUT /groups`); returns what Opal echoes back.
    pub async fn update_groups(
        &self,
        updates: &[UpdateGroupInfo],
    ) -> Result<Vec<UpdateGroupInfo>, OpalError> {
        let body = UpdateGroupInfoList {
            groups: updates.to_vec(),
        };
        let call = Call::new("groups.update", HttpMethod::Put, ApiPath::new(["groups"]))
            .json_body(&body)?;
        Ok(self.fetch::<UpdateGroupInfoList>(&call).await?.groups)
    }

    /// Members of a group, page by page (`GET /groups/{group_id}/users`).
    pub fn group_users(&self, group_id: &str) -> Pager<CursorPage<GroupUser>> {
        let call = Call::get(
            "groups.users.list",
            ApiPath::new(["groups", group_id, "users"]),
        );
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every member of a group.
    pub async fn list_group_users(&self, group_id: &str) -> Result<Vec<GroupUser>, OpalError> {
        self.group_users(group_id).collect_all().await
    }

    /// Groups a user belongs to, page by page (`GET /groups/users/{user_id}`).
    pub fn user_groups(&self, user_id: &str) -> Pager<CursorPage<GroupUser>> {
        let call = Call::get(
            "users.groups.list",
            ApiPath::new(["groups", "users", user_id]),
        );
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every group a user belongs to.
    pub async fn list_user_groups(&self, user_id: &str) -> Result<Vec<GroupUser>, OpalError> {
        self.user_groups(user_id).collect_all().await
    }

    /// Resources members get through a group (`GET /groups/{group_id}/resources`).
    pub async fn group_resources(&self, group_id: &str) -> Result<Vec<GroupResource>, OpalError> {
        let call = Call::get(
            "groups.resources.list",
            ApiPath::new(["groups", group_id, "resources"]),
        );
        Ok(self
            .fetch::<GroupResourceList>(&call)
            .await?
            .group_resources)
    }

    /// `GET /groups/{group_id}/visibility`.
    pub async fn group_visibility(&self, group_id: &str) -> Result<VisibilityInfo, OpalError> {
        let call = Call::get(
            "groups.visibility.get",
            ApiPath::new(["groups", group_id, "visibility"]),
        );
        self.fetch(&call).await
    }

    /// `PUT /groups/{group_id}/visibility`.
    pub async fn set_group_visibility(
        &self,
        group_id: &str,
        visibility: &VisibilityInfo,
    ) -> Result<VisibilityInfo, OpalError> {
        let call = Call::new(
            "groups.visibility.set",
            HttpMethod::Put,
            ApiPath::new(["groups", group_id, "visibility"]),
        )
        .json_body(visibility)?;
        self.fetch(&call).await
    }

    /// `GET /groups/{group_id}/reviewer-stages`.
    pub async fn group_reviewer_stages(
        &self,
        group_id: &str,
    ) -> Result<Vec<ReviewerStage>, OpalError> {
        let call = Call::get(
            "groups.reviewer_stages.get",
            ApiPath::new(["groups", group_id, "reviewer-stages"]),
        );
        self.fetch(&call).await
    }

    /// Replaces a group's reviewer stages (`PUT /groups/{group_id}/reviewer-stages`).
    pub async fn set_group_reviewer_stages(
        &self,
        group_id: &str,
        stages: &[ReviewerStage],
    ) -> Result<Vec<ReviewerStage>, OpalError> {
        let call = Call::new(
            "groups.reviewer_stages.set",
            HttpMethod::Put,
            ApiPath::new(["groups", group_id, "reviewer-stages"]),
        )
        .json_body(&ReviewerStageList { stages })?;
        self.fetch(&call).await
    }

    /// `GET /groups/{group_id}/message-channels`.
    pub async fn group_message_channels(
        &self,
        group_id: &str,
    ) -> Result<Vec<MessageChannel>, OpalError> {
        let call = Call::get(
            "groups.message_channels.get",
            ApiPath::new(["groups", group_id, "message-channels"]),
        );
        Ok(self.fetch::<MessageChannelList>(&call).await?.channels)
    }

    /// Replaces a group's message channels; returns the resulting channel IDs.
    pub async fn set_group_message_channels(
        &self,
        group_id: &str,
        message_channel_ids: &[String],
    ) -> Result<Vec<String>, OpalError> {
        let call = Call::new(
            "groups.message_channels.set",
            HttpMethod::Put,
            ApiPath::new(["groups", group_id, "message-channels"]),
        )
        .json_body(&MessageChannelIdList {
            message_channel_ids,
        })?;
        self.fetch(&call).await
    }

    /// `GET /groups/{group_id}/tags`.
    pub async fn group_tags(&self, group_id: &str) -> Result<Vec<Tag>, OpalError> {
        let call = Call::get(
            "groups.tags.list",
            ApiPath::new(["groups", group_id, "tags"]),
        );
        Ok(self.fetch::<TagList>(&call).await?.tags)
    }
}
