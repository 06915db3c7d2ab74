//! One user's grant on a group or resource: add, change, remove, and the idempotent forms that
//! are safe to repeat (and safe under retries of their own calls). Groups and resources share
//! one implementation; only the path and the operation name differ.

use serde::de::DeserializeOwned;

use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{GrantSpec, GroupUser, ResourceUser};

/// Whose user a grant call addresses: a group's member or a resource's direct user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantOn<'a> {
    /// A group, by Opal id.
    Group(&'a str),
    /// A resource, by Opal id.
    Resource(&'a str),
}

#[derive(Clone, Copy)]
enum GrantCall {
    Add,
    Update,
    Remove,
}

impl GrantOn<'_> {
    /// `{POST|PUT|DELETE} /{groups|resources}/{id}/users/{user_id}`.
    fn call(self, user_id: &str, kind: GrantCall) -> Call {
        let (collection, id) = match self {
            Self::Group(id) => ("groups", id),
            Self::Resource(id) => ("resources", id),
        };
        let (operation, method) = match (self, kind) {
            (Self::Group(_), GrantCall::Add) => ("groups.users.add", HttpMethod::Post),
            (Self::Group(_), GrantCall::Update) => ("groups.users.update", HttpMethod::Put),
            (Self::Group(_), GrantCall::Remove) => ("groups.users.remove", HttpMethod::Delete),
            (Self::Resource(_), GrantCall::Add) => ("resources.users.add", HttpMethod::Post),
            (Self::Resource(_), GrantCall::Update) => ("resources.users.update", HttpMethod::Put),
            (Self::Resource(_), GrantCall::Remove) => {
                ("resources.users.remove", HttpMethod::Delete)
            }
        };
        Call::new(
            operation,
            method,
            ApiPath::new([collection, id, "users", user_id]),
        )
    }
}

/// Result of an idempotent add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantOutcome<T> {
    /// Opal accepted the add and returned the grant. When Opal answers a duplicate add with 200
    /// (it documents no conflict status), the outcome is also `Granted`.
    Granted(T),
    /// Opal said the grant already exists (409, or 400 whose body says so).
    AlreadyPresent,
}

/// Result of an idempotent removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    /// Opal answered 404: the grant (or its group, resource or user) does not exist.
    AlreadyAbsent,
}

/// Whether an error answer to an add means the grant is already there.
fn means_already_present(err: &OpalError) -> bool {
    match err {
        OpalError::Api { status: 409, .. } => true,
        OpalError::Api {
            status: 400, body, ..
        } => {
            let body = body.to_ascii_lowercase();
            [
                "already exists",
                "already has",
                "already a member",
                "already granted",
                "already assigned",
            ]
            .iter()
            .any(|phrase| body.contains(phrase))
        }
        _ => false,
    }
}

fn grant_outcome<T>(result: Result<T, OpalError>) -> Result<GrantOutcome<T>, OpalError> {
    match result {
        Ok(grant) => Ok(GrantOutcome::Granted(grant)),
        Err(err) if means_already_present(&err) => Ok(GrantOutcome::AlreadyPresent),
        Err(err) => Err(err),
    }
}

fn revoke_outcome(result: Result<(), OpalError>) -> Result<RevokeOutcome, OpalError> {
    match result {
        Ok(_) => Ok(RevokeOutcome::Revoked),
        Err(err) if err.is_not_found() => Ok(RevokeOutcome::AlreadyAbsent),
        Err(err) => Err(err),
    }
}

impl Client {
    async fn add_user<T: DeserializeOwned>(
        &self,
        on: GrantOn<'_>,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<T, OpalError> {
        self.fetch(&on.call(user_id, GrantCall::Add).json_body(grant)?)
            .await
    }

    async fn update_user<T: DeserializeOwned>(
        &self,
        on: GrantOn<'_>,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<T, OpalError> {
        self.fetch(&on.call(user_id, GrantCall::Update).json_body(grant)?)
            .await
    }

    /// Removes a user's grant at one level (`None`: the default level); on a resource, access
    /// through groups stays. A missing grant is an error here; see [`Client::revoke_user`].
    pub async fn remove_user(
        &self,
        on: GrantOn<'_>,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<(), OpalError> {
        let call = on
            .call(user_id, GrantCall::Remove)
            .query_opt("access_level_remote_id", access_level_remote_id);
        self.send(&call).await.map(drop)
    }

    /// Adds a user's grant unless it already exists; what Opal answers is not kept.
    pub async fn grant_user(
        &self,
        on: GrantOn<'_>,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GrantOutcome<()>, OpalError> {
        let added: Result<serde::de::IgnoredAny, OpalError> =
            self.add_user(on, user_id, grant).await;
        grant_outcome(added.map(drop))
    }

    /// Removes a user's grant at one level (`None`: the default level) if it exists.
    pub async fn revoke_user(
        &self,
        on: GrantOn<'_>,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<RevokeOutcome, OpalError> {
        revoke_outcome(self.remove_user(on, user_id, access_level_remote_id).await)
    }

    /// Adds a user to a group (`POST /groups/{group_id}/users/{user_id}`). A duplicate add is an
    /// error here; use [`Client::grant_group_user`] for an idempotent add.
    pub async fn add_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GroupUser, OpalError> {
        self.add_user(GrantOn::Group(group_id), user_id, grant)
            .await
    }

    /// Changes the duration of a membership (`PUT /groups/{group_id}/users/{user_id}`).
    pub async fn update_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GroupUser, OpalError> {
        self.update_user(GrantOn::Group(group_id), user_id, grant)
            .await
    }

    /// Removes a user's membership at one level (`DELETE /groups/{group_id}/users/{user_id}`).
    pub async fn remove_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<(), OpalError> {
        self.remove_user(GrantOn::Group(group_id), user_id, access_level_remote_id)
            .await
    }

    /// Adds a user to a group unless the membership already exists.
    pub async fn grant_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GrantOutcome<GroupUser>, OpalError> {
        grant_outcome(self.add_group_user(group_id, user_id, grant).await)
    }

    /// Removes a user's group membership at one level (`None`: default level) if it exists.
    pub async fn revoke_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<RevokeOutcome, OpalError> {
        self.revoke_user(GrantOn::Group(group_id), user_id, access_level_remote_id)
            .await
    }

    /// Grants a user direct access (`POST /resources/{resource_id}/users/{user_id}`). A duplicate
    /// add is an error here; use [`Client::grant_resource_user`] for an idempotent add.
    pub async fn add_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<ResourceUser, OpalError> {
        self.add_user(GrantOn::Resource(resource_id), user_id, grant)
            .await
    }

    /// Changes the duration or level of a grant (`PUT /resources/{resource_id}/users/{user_id}`).
    pub async fn update_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<ResourceUser, OpalError> {
        self.update_user(GrantOn::Resource(resource_id), user_id, grant)
            .await
    }

    /// Removes a user's direct grant at one level (`DELETE /resources/{id}/users/{user_id}`).
    pub async fn remove_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<(), OpalError> {
        self.remove_user(
            GrantOn::Resource(resource_id),
            user_id,
            access_level_remote_id,
        )
        .await
    }

    /// Grants a user direct access to a resource unless the grant already exists.
    pub async fn grant_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GrantOutcome<ResourceUser>, OpalError> {
        grant_outcome(self.add_resource_user(resource_id, user_id, grant).await)
    }

    /// Removes a user's direct resource grant at one level (`None`: default level) if it exists.
    pub async fn revoke_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<RevokeOutcome, OpalError> {
        self.revoke_user(
            GrantOn::Resource(resource_id),
            user_id,
            access_level_remote_id,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_resources_differ_only_in_path_and_operation_name() {
        let cases = [
            (
                GrantOn::Group("g1"),
                GrantCall::Add,
                "groups.users.add",
                HttpMethod::Post,
            ),
            (
                GrantOn::Group("g1"),
                GrantCall::Update,
                "groups.users.update",
                HttpMethod::Put,
            ),
            (
                GrantOn::Group("g1"),
                GrantCall::Remove,
                "groups.users.remove",
                HttpMethod::Delete,
            ),
            (
                GrantOn::Resource("r1"),
                GrantCall::Add,
                "resources.users.add",
                HttpMethod::Post,
            ),
            (
                GrantOn::Resource("r1"),
                GrantCall::Update,
                "resources.users.update",
                HttpMethod::Put,
            ),
            (
                GrantOn::Resource("r1"),
                GrantCall::Remove,
                "resources.users.remove",
                HttpMethod::Delete,
            ),
        ];
        for (on, kind, operation, method) in cases {
            let call = on.call("u1", kind);
            assert_eq!((call.operation, call.method), (operation, method));
            let path = call.path.to_string();
            let expected = match on {
                GrantOn::Group(_) => "/groups/g1/users/u1",
                GrantOn::Resource(_) => "/resources/r1/users/u1",
            };
            assert_eq!(path, expected);
        }
    }

    fn api(status: u16, body: &str) -> OpalError {
        OpalError::Api {
            operation: "groups.users.add",
            status,
            body: body.to_owned(),
            attempts: 1,
        }
    }

    #[test]
    fn conflict_and_worded_bad_request_mean_already_present() {
        assert!(means_already_present(&api(409, "")));
        assert!(means_already_present(&api(
            400,
            r#"{"message":"User already has access to this group"}"#
        )));
        assert!(means_already_present(&api(400, "Grant ALREADY EXISTS")));
        assert!(!means_already_present(&api(
            400,
            "duration_minutes is required"
        )));
        assert!(!means_already_present(&api(404, "already exists")));
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            grant_outcome(Ok::<_, OpalError>(1)).expect("ok"),
            GrantOutcome::Granted(1)
        );
        assert_eq!(
            grant_outcome::<u8>(Err(api(409, "dup"))).expect("ok"),
            GrantOutcome::AlreadyPresent
        );
        assert!(grant_outcome::<u8>(Err(api(403, "no"))).is_err());
        assert_eq!(
            revoke_outcome(Err(api(404, "missing"))).expect("ok"),
            RevokeOutcome::AlreadyAbsent
        );
        assert_eq!(revoke_outcome(Ok(())).expect("ok"), RevokeOutcome::Revoked);
        assert!(revoke_outcome(Err(api(500, "boom"))).is_err());
    }
}
