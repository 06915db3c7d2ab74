use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{
    MessageChannel, MessageChannelIdList, MessageChannelList, Resource, ResourceAccessUser,
    ResourceType, ResourceUser, ReviewerStage, ReviewerStageList, Tag, TagList, UpdateResourceInfo,
    UpdateResourceInfoList, VisibilityInfo,
};
use crate::opal::pagination::{CursorPage, DataPage, PageParams, Pager};

/// Filters of `GET /resources`; the default lists every resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_ids: Vec<String>,
    pub name: Option<String>,
    pub parent_resource_id: Option<String>,
    pub ancestor_resource_id: Option<String>,
    /// Opal only honours this together with `resource_type`.
    pub remote_id: Option<String>,
    pub tag_ids: Vec<String>,
}

impl Client {
    /// Resources matching `filter`, page by page (`GET /resources`).
    pub fn resources(&self, filter: &ResourceFilter) -> Pager<CursorPage<Resource>> {
        let call = Call::get("resources.list", ApiPath::new(["resources"]))
            .query_opt(
                "resource_type_filter",
                filter.resource_type.as_ref().map(|t| t.as_str()),
            )
            .query_joined("resource_ids", &filter.resource_ids)
            .query_opt("resource_name", filter.name.as_deref())
            .query_opt("parent_resource_id", filter.parent_resource_id.as_deref())
            .query_opt(
                "ancestor_resource_id",
                filter.ancestor_resource_id.as_deref(),
            )
            .query_opt("remote_id", filter.remote_id.as_deref())
            .query_repeated("tag_ids", &filter.tag_ids);
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every resource matching `filter`.
    pub async fn list_resources(
        &self,
        filter: &ResourceFilter,
    ) -> Result<Vec<Resource>, OpalError> {
        self.resources(filter).collect_all().await
    }

    /// One resource (`GET /resources/{resource_id}`).
    pub async fn resource(&self, resource_id: &str) -> Result<Resource, OpalError> {
        self.fetch(&Call::get(
            "resources.get",
            ApiPath::new(["resources", resource_id]),
        ))
        .await
    }

    /// Bulk configuration update (`PUT /resources`); returns what Opal echoes back.
    pub async fn update_resources(
        &self,
        updates: &[UpdateResourceInfo],
    ) -> Result<Vec<UpdateResourceInfo>, OpalError> {
        let body = UpdateResourceInfoList {
            resources: updates.to_vec(),
        };
        let call = Call::new(
            "resources.update",
            HttpMethod::Put,
            ApiPath::new(["resources"]),
        )
        .json_body(&body)?;
        Ok(self.fetch::<UpdateResourceInfoList>(&call).await?.resources)
    }

    /// Users with access to a resource, direct or through groups (`GET /resources/{id}/users`).
    /// Opal documents only `limit` here; if a response carries `next`, it is followed as `cursor`.
    pub fn resource_users(&self, resource_id: &str) -> Pager<CursorPage<ResourceAccessUser>> {
        let call = Call::get(
            "resources.users.list",
            ApiPath::new(["resources", resource_id, "users"]),
        );
        Pager::new(self, call, PageParams::limit(self.page_size()))
    }

    /// Every user with access to a resource.
    pub async fn list_resource_users(
        &self,
        resource_id: &str,
    ) -> Result<Vec<ResourceAccessUser>, OpalError> {
        self.resource_users(resource_id).collect_all().await
    }

    /// A user's direct grants on a resource, one per access level
    /// (`GET /resources/{resource_id}/users/{user_id}`, all pages). Opal answers 404 when the
    /// resource or user is unknown.
    pub async fn resource_user_grants(
        &self,
        resource_id: &str,
        user_id: &str,
    ) -> Result<Vec<ResourceUser>, OpalError> {
        let call = Call::get(
            "resources.users.get",
            ApiPath::new(["resources", resource_id, "users", user_id]),
        );
        Pager::<DataPage<ResourceUser>>::new(self, call, PageParams::cursor_only())
            .collect_all()
            .await
    }

    /// Resources a user can access, page by page (`GET /resources/users/{user_id}`).
    /// `include_unmanaged` adds access Opal does not manage.
    pub fn user_resources(
        &self,
        user_id: &str,
        include_unmanaged: bool,
    ) -> Pager<CursorPage<ResourceAccessUser>> {
        let call = Call::get(
            "users.resources.list",
            ApiPath::new(["resources", "users", user_id]),
        )
        .query("include_unmanaged", include_unmanaged.to_string());
        Pager::new(self, call, PageParams::limit(self.page_size()))
    }

    /// Every resource a user can access.
    pub async fn list_user_resources(
        &self,
        user_id: &str,
        include_unmanaged: bool,
    ) -> Result<Vec<ResourceAccessUser>, OpalError> {
        self.user_resources(user_id, include_unmanaged)
            .collect_all()
            .await
    }

    /// `GET /resources/{resource_id}/visibility`.
    pub async fn resource_visibility(
        &self,
        resource_id: &str,
    ) -> Result<VisibilityInfo, OpalError> {
        let call = Call::get(
            "resources.visibility.get",
            ApiPath::new(["resources", resource_id, "visibility"]),
        );
        self.fetch(&call).await
    }

    /// `PUT /resources/{resource_id}/visibility`.
    pub async fn set_resource_visibility(
        &self,
        resource_id: &str,
        visibility: &VisibilityInfo,
    ) -> Result<VisibilityInfo, OpalError> {
        let call = Call::new(
            "resources.visibility.set",
            HttpMethod::Put,
            ApiPath::new(["resources", resource_id, "visibility"]),
        )
        .json_body(visibility)?;
        self.fetch(&call).await
    }

    /// `GET /resources/{resource_id}/reviewer-stages`.
    pub async fn resource_reviewer_stages(
        &self,
        resource_id: &str,
    ) -> Result<Vec<ReviewerStage>, OpalError> {
        let call = Call::get(
            "resources.reviewer_stages.get",
            ApiPath::new(["resources", resource_id, "reviewer-stages"]),
        );
        self.fetch(&call).await
    }

    /// Replaces a resource's reviewer stages (`PUT /resources/{resource_id}/reviewer-stages`).
    pub async fn set_resource_reviewer_stages(
        &self,
        resource_id: &str,
        stages: &[ReviewerStage],
    ) -> Result<Vec<ReviewerStage>, OpalError> {
        let call = Call::new(
            "resources.reviewer_stages.set",
            HttpMethod::Put,
            ApiPath::new(["resources", resource_id, "reviewer-stages"]),
        )
        .json_body(&ReviewerStageList { stages })?;
        self.fetch(&call).await
    }

    /// `GET /resources/{resource_id}/message-channels`.
    pub async fn resource_message_channels(
        &self,
        resource_id: &str,
    ) -> Result<Vec<MessageChannel>, OpalError> {
        let call = Call::get(
            "resources.message_channels.get",
            ApiPath::new(["resources", resource_id, "message-channels"]),
        );
        Ok(self.fetch::<MessageChannelList>(&call).await?.channels)
    }

    /// Replaces a resource's message channels; returns the resulting channel IDs.
    pub async fn set_resource_message_channels(
        &self,
        resource_id: &str,
        message_channel_ids: &[String],
    ) -> Result<Vec<String>, OpalError> {
        let call = Call::new(
            "resources.message_channels.set",
            HttpMethod::Put,
            ApiPath::new(["resources", resource_id, "message-channels"]),
        )
        .json_body(&MessageChannelIdList {
            message_channel_ids,
        })?;
        self.fetch(&call).await
    }

    /// `GET /resources/{resource_id}/tags`.
    pub async fn resource_tags(&self, resource_id: &str) -> Result<Vec<Tag>, OpalError> {
        let call = Call::get(
            "resources.tags.list",
            ApiPath::new(["resources", resource_id, "tags"]),
        );
        Ok(self.fetch::<TagList>(&call).await?.tags)
    }
}
