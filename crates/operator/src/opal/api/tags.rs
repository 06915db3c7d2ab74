use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{CreateTagBody, Tag};
use crate::opal::pagination::{CursorPage, PageParams, Pager};

/// What kind of object a tag is applied to.
#[derive(Debug, Clone, Copy)]
enum Tagged {
    User,
    Group,
    Resource,
}

impl Tagged {
    fn segment(self) -> &'static str {
        match self {
            Self::User => "users",
            Self::Group => "groups",
            Self::Resource => "resources",
        }
    }

    fn operations(self) -> (&'static str, &'static str) {
        match self {
            Self::User => ("tags.users.add", "tags.users.remove"),
            Self::Group => ("tags.groups.add", "tags.groups.remove"),
            Self::Resource => ("tags.resources.add", "tags.resources.remove"),
        }
    }
}

impl Client {
    /// Tags, page by page (`GET /tags`).
    pub fn tags(&self) -> Pager<CursorPage<Tag>> {
        let call = Call::get("tags.list", ApiPath::new(["tags"]));
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every tag.
    pub async fn list_tags(&self) -> Result<Vec<Tag>, OpalError> {
        self.tags().collect_all().await
    }

    /// The tag with this key (and value), or `None` on 404 (`GET /tag`).
    pub async fn tag_by_key(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Option<Tag>, OpalError> {
        let call = Call::get("tags.get", ApiPath::new(["tag"]))
            .query("tag_key", key)
            .query_opt("tag_value", value);
        self.fetch_optional(&call).await
    }

    /// Creates a tag (`POST /tag`). Not retried after ambiguous failures, to avoid duplicates.
    pub async fn create_tag(&self, key: &str, value: Option<&str>) -> Result<Tag, OpalError> {
        let call = Call::new("tags.create", HttpMethod::Post, ApiPath::new(["tag"]))
            .json_body(&CreateTagBody {
                tag_key: key,
                tag_value: value,
            })?
            .not_replayable();
        self.fetch(&call).await
    }

    /// `POST /tags/{tag_id}/users/{user_id}`.
    pub async fn add_tag_to_user(&self, tag_id: &str, user_id: &str) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::User, user_id, true).await
    }

    /// `DELETE /tags/{tag_id}/users/{user_id}`.
    pub async fn remove_tag_from_user(&self, tag_id: &str, user_id: &str) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::User, user_id, false).await
    }

    /// `POST /tags/{tag_id}/groups/{group_id}`.
    pub async fn add_tag_to_group(&self, tag_id: &str, group_id: &str) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::Group, group_id, true).await
    }

    /// `DELETE /tags/{tag_id}/groups/{group_id}`.
    pub async fn remove_tag_from_group(
        &self,
        tag_id: &str,
        group_id: &str,
    ) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::Group, group_id, false).await
    }

    /// `POST /tags/{tag_id}/resources/{resource_id}`.
    pub async fn add_tag_to_resource(
        &self,
        tag_id: &str,
        resource_id: &str,
    ) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::Resource, resource_id, true)
            .await
    }

    /// `DELETE /tags/{tag_id}/resources/{resource_id}`.
    pub async fn remove_tag_from_resource(
        &self,
        tag_id: &str,
        resource_id: &str,
    ) -> Result<(), OpalError> {
        self.apply_tag(tag_id, Tagged::Resource, resource_id, false)
            .await
    }

    async fn apply_tag(
        &self,
        tag_id: &str,
        target: Tagged,
        target_id: &str,
        add: bool,
    ) -> Result<(), OpalError> {
        let (add_operation, remove_operation) = target.operations();
        let path = ApiPath::new(["tags", tag_id, target.segment(), target_id]);
        let call = if add {
            // Opal declares an (empty) JSON body for the user variant; sending `{}` suits all.
            Call::new(add_operation, HttpMethod::Post, path).json_body(&serde_json::Map::new())?
        } else {
            Call::new(remove_operation, HttpMethod::Delete, path)
        };
        self.send(&call).await.map(drop)
    }
}
