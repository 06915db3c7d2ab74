use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{Owner, User, UserIdList, UserList};
use crate::opal::pagination::{CursorPage, PageParams, Pager};

impl Client {
    /// Owners, page by page (`GET /owners`); `name` narrows to that owner name.
    pub fn owners(&self, name: Option<&str>) -> Pager<CursorPage<Owner>> {
        let call = Call::get("owners.list", ApiPath::new(["owners"])).query_opt("name", name);
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every owner.
    pub async fn list_owners(&self) -> Result<Vec<Owner>, OpalError> {
        self.owners(None).collect_all().await
    }

    /// One owner (`GET /owners/{owner_id}`).
    pub async fn owner(&self, owner_id: &str) -> Result<Owner, OpalError> {
        self.fetch(&Call::get("owners.get", ApiPath::new(["owners", owner_id])))
            .await
    }

    /// An owner's users in escalation order (`GET /owners/{owner_id}/users`).
    pub async fn owner_users(&self, owner_id: &str) -> Result<Vec<User>, OpalError> {
        let call = Call::get(
            "owners.users.get",
            ApiPath::new(["owners", owner_id, "users"]),
        );
        Ok(self.fetch::<UserList>(&call).await?.users)
    }

    /// Replaces an owner's users; the order is the escalation order (`PUT /owners/{id}/users`).
    /// Opal refuses this for owners backed by a source group.
    pub async fn set_owner_users(
        &self,
        owner_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<User>, OpalError> {
        let call = Call::new(
            "owners.users.set",
            HttpMethod::Put,
            ApiPath::new(["owners", owner_id, "users"]),
        )
        .json_body(&UserIdList { user_ids })?;
        Ok(self.fetch::<UserList>(&call).await?.users)
    }
}
