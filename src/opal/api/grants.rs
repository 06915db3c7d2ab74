//! Idempotent grant and revoke helpers: safe to repeat, and safe under retries of their own calls.

use super::groups::{add_group_user_call, remove_group_user_call};
use super::resources::{add_resource_user_call, remove_resource_user_call};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{GrantSpec, GroupUser, ResourceUser};

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

fn revoke_outcome(result: Result<Vec<u8>, OpalError>) -> Result<RevokeOutcome, OpalError> {
    match result {
        Ok(_) => Ok(RevokeOutcome::Revoked),
        Err(err) if err.is_not_found() => Ok(RevokeOutcome::AlreadyAbsent),
        Err(err) => Err(err),
    }
}

impl Client {
    /// Adds a user to a group unless the membership already exists.
    pub async fn grant_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GrantOutcome<GroupUser>, OpalError> {
        let call = add_group_user_call(group_id, user_id, grant)?;
        grant_outcome(self.fetch(&call).await)
    }

    /// Removes a user's group membership at one level (`None`: default level) if it exists.
    pub async fn revoke_group_user(
        &self,
        group_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<RevokeOutcome, OpalError> {
        let call = remove_group_user_call(group_id, user_id, access_level_remote_id);
        revoke_outcome(self.send(&call).await)
    }

    /// Grants a user direct access to a resource unless the grant already exists.
    pub async fn grant_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        grant: &GrantSpec,
    ) -> Result<GrantOutcome<ResourceUser>, OpalError> {
        let call = add_resource_user_call(resource_id, user_id, grant)?;
        grant_outcome(self.fetch(&call).await)
    }

    /// Removes a user's direct resource grant at one level (`None`: default level) if it exists.
    pub async fn revoke_resource_user(
        &self,
        resource_id: &str,
        user_id: &str,
        access_level_remote_id: Option<&str>,
    ) -> Result<RevokeOutcome, OpalError> {
        let call = remove_resource_user_call(resource_id, user_id, access_level_remote_id);
        revoke_outcome(self.send(&call).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            revoke_outcome(Ok(Vec::new())).expect("ok"),
            RevokeOutcome::Revoked
        );
        assert!(revoke_outcome(Err(api(500, "boom"))).is_err());
    }
}
