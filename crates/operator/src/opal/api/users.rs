use crate::opal::call::{ApiPath, Call};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{Tag, TagList, User};
use crate::opal::pagination::{CursorPage, PageParams, Pager};

impl Client {
    /// All users, page by page (`GET /users`); `tag_ids` narrows to users with those tags.
    pub fn users(&self, tag_ids: &[String]) -> Pager<CursorPage<User>> {
        let call =
            Call::get("users.list", ApiPath::new(["users"])).query_repeated("tag_ids", tag_ids);
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every user (`GET /users`, all pages).
    pub async fn list_users(&self) -> Result<Vec<User>, OpalError> {
        self.users(&[]).collect_all().await
    }

    /// The user with this email, or `None` when Opal answers 404 (`GET /user?email=`).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, OpalError> {
        let call = Call::get("users.get", ApiPath::new(["user"])).query("email", email);
        self.fetch_optional(&call).await
    }

    /// The user with this ID, or `None` when Opal answers 404 (`GET /user?user_id=`).
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, OpalError> {
        let call = Call::get("users.get", ApiPath::new(["user"])).query("user_id", user_id);
        self.fetch_optional(&call).await
    }

    /// Tags on a user (`GET /users/{user_id}/tags`).
    pub async fn user_tags(&self, user_id: &str) -> Result<Vec<Tag>, OpalError> {
        let call = Call::get("users.tags.list", ApiPath::new(["users", user_id, "tags"]));
        Ok(self.fetch::<TagList>(&call).await?.tags)
    }
}
