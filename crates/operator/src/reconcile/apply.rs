//! Applies a plan's operations through the Opal client: concurrently (the client's shared
//! limiter paces the calls), idempotently (an existing grant or a missing one is success),
//! and with every failure reported against its operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};

use crate::crd::{ChangeAction, TargetKind};
use crate::engine::Operation;
use crate::opal::model::GrantSpec;
use crate::opal::{Client, GrantOn, GrantOutcome, OpalError, RevokeOutcome};

/// What happened to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationOutcome {
    /// Opal accepted the change. Opal documents no conflict answer for an add, so a grant that
    /// already existed and was answered 200 also lands here.
    Applied,
    /// Opal already matched: the grant existed, or the revoked grant was gone.
    AlreadyDone,
    /// Opal refused or could not be reached after retries; `message` carries its answer.
    Failed {
        label: &'static str,
        message: String,
    },
}

/// Every operation with its outcome, in the order they were given.
#[derive(Clone, Debug, Default)]
pub struct ExecutionReport {
    pub outcomes: Vec<(Operation, OperationOutcome)>,
    pub elapsed: Duration,
}

impl ExecutionReport {
    pub fn applied(&self) -> usize {
        self.count(|outcome| *outcome == OperationOutcome::Applied)
    }

    pub fn already_done(&self) -> usize {
        self.count(|outcome| *outcome == OperationOutcome::AlreadyDone)
    }

    pub fn failures(&self) -> impl Iterator<Item = (&Operation, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(op, outcome)| match outcome {
                OperationOutcome::Failed { message, .. } => Some((op, message.as_str())),
                _ => None,
            })
    }

    fn count(&self, predicate: impl Fn(&OperationOutcome) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, o)| predicate(o)).count()
    }
}

/// Asked before each call: false once this process may no longer write (it lost the lease).
pub type WriteFence = Arc<dyn Fn() -> bool + Send + Sync>;

/// Runs operations against Opal.
#[derive(Clone)]
pub struct Executor {
    client: Client,
    concurrency: usize,
    fence: Option<WriteFence>,
}

impl Executor {
    /// `concurrency` bounds the operations in flight; the client's limiter bounds the rate.
    pub fn new(client: Client, concurrency: usize) -> Self {
        Self {
            client,
            concurrency: concurrency.max(1),
            fence: None,
        }
    }

    /// Calls not yet started when `fence` turns false are not made: they fail as
    /// `not_leader`, and the replica that leads now plans them again from what Opal holds.
    pub fn with_fence(self, fence: WriteFence) -> Self {
        Self {
            fence: Some(fence),
            ..self
        }
    }

    /// Applies `operations`. Lockdown revocations come first in a plan, and the stream keeps
    /// that order when starting calls.
    pub async fn apply(&self, operations: &[Operation]) -> ExecutionReport {
        let started = Instant::now();
        let mut outcomes: Vec<(usize, OperationOutcome)> =
            // Owned items: a future over a borrowed stream item is not `Send` for the
            // compiler when the caller is spawned.
            stream::iter(operations.iter().cloned().enumerate())
                .map(|(index, operation)| async move { (index, self.apply_one(&operation).await) })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(index, _)| *index);
        ExecutionReport {
            outcomes: outcomes
                .into_iter()
                .map(|(index, outcome)| (operations[index].clone(), outcome))
                .collect(),
            elapsed: started.elapsed(),
        }
    }

    async fn apply_one(&self, operation: &Operation) -> OperationOutcome {
        if self.fence.as_ref().is_some_and(|may_write| !may_write()) {
            return OperationOutcome::Failed {
                label: "not_leader",
                message: "not made: this replica lost the lease before the call".to_owned(),
            };
        }
        let level = Some(operation.access_level_remote_id.as_str()).filter(|l| !l.is_empty());
        let on = match operation.kind {
            TargetKind::Group => GrantOn::Group(&operation.target_id),
            TargetKind::Resource => GrantOn::Resource(&operation.target_id),
        };
        let user = &operation.user_id;
        let result: Result<OperationOutcome, OpalError> = match operation.action {
            ChangeAction::Grant => {
                let grant = GrantSpec {
                    duration_minutes: 0,
                    access_level_remote_id: level.map(str::to_owned),
                };
                self.client
                    .grant_user(on, user, &grant)
                    .await
                    .map(|outcome| match outcome {
                        GrantOutcome::Granted(()) => OperationOutcome::Applied,
                        GrantOutcome::AlreadyPresent => OperationOutcome::AlreadyDone,
                    })
            }
            ChangeAction::Revoke => self
                .client
                .revoke_user(on, user, level)
                .await
                .map(|outcome| match outcome {
                    RevokeOutcome::Revoked => OperationOutcome::Applied,
                    RevokeOutcome::AlreadyAbsent => OperationOutcome::AlreadyDone,
                }),
        };
        result.unwrap_or_else(|error| OperationOutcome::Failed {
            label: error.label(),
            message: error.to_string(),
        })
    }
}
