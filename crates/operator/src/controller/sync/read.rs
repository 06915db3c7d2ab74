//! The read step: the custom resources as planner inputs, HR and Opal into one world, and
//! what a targeted sync re-reads.

use super::*;
use crate::engine::Subject;

pub(super) fn world_from(
    context: &SyncContext,
    inputs: &Inputs,
    hr: HrState,
    opal: OpalState,
    last_good: Option<usize>,
) -> World {
    World {
        hr,
        last_good_employee_count: last_good,
        opal,
        mappings: inputs.mappings.clone(),
        policies: inputs.policies.clone(),
        lockdowns: inputs.lockdowns.clone(),
        operator_namespace: context.sources.operator_namespace.clone(),
    }
}

pub(super) fn observation_scope(
    context: &SyncContext,
    inputs: &Inputs,
    hr: &HrState,
) -> ObservationScope {
    let leavers =
        users_losing_everything(&inputs.policies, hr, &context.sources.operator_namespace);
    // Released lockdowns stay in: their targets are observed for the restore.
    ObservationScope::new(&inputs.mappings, &inputs.lockdowns, hr, leavers)
}

/// The custom resources as the caches hold them now, as planner inputs.
pub(super) fn current_inputs(context: &SyncContext) -> Inputs {
    let sources = &context.sources;
    context.stores.inputs(
        &sources.operator_namespace,
        sources.safety_defaults.as_ref(),
        Utc::now(),
    )
}

/// Re-reads the dirty users' grants and the dirty targets' members into `opal`.
pub(super) async fn refresh(
    sources: &Sources,
    opal: &mut OpalState,
    dirty: &Dirty,
    targets: Vec<OpalTarget>,
) -> Result<(), OpalError> {
    let (user_grants, target_grants) = futures::try_join!(
        observe_user_grants(&sources.opal, &dirty.users, sources.concurrency),
        observe_target_grants(&sources.opal, targets, sources.concurrency),
    )?;
    opal.replace_user_grants(&dirty.users, user_grants);
    opal.replace_target_grants(&dirty.targets, target_grants);
    Ok(())
}

pub(super) struct LockdownUsers {
    pub(super) emails: BTreeSet<String>,
    pub(super) user_ids: BTreeSet<String>,
}

/// The users a lockdown names, when it names only users and is in force; `None` when it
/// needs a full sync (locked targets, release, or gone).
pub(super) fn lockdown_user_subjects(
    context: &SyncContext,
    inputs: &Inputs,
    key: &ObjectKey,
    employees: &[Employee],
) -> Option<LockdownUsers> {
    let input = inputs.lockdowns.iter().find(|l| l.key == *key)?;
    if !input.in_force(inputs.at) || context.stores.lockdown(key).is_none() {
        return None;
    }
    let mut users = LockdownUsers {
        emails: BTreeSet::new(),
        user_ids: BTreeSet::new(),
    };
    for subject in &input.rules.subjects {
        match subject {
            Subject::Target(_) => return None,
            Subject::Email(email) => {
                users.emails.insert(email.to_lowercase());
            }
            Subject::OpalUserId(id) => {
                users.user_ids.insert(id.clone());
            }
            Subject::HrisId(hris_id) => {
                let employee = employees.iter().find(|e| e.id == *hris_id)?;
                users.emails.insert(employee.email.to_lowercase());
            }
        }
    }
    Some(users)
}
