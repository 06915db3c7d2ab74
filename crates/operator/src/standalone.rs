//! The loop without a cluster: HR snapshot and Opal state in, plan, apply, observe again.
//! Used by `plan`, `run --standalone` and `demo`.

use chrono::{DateTime, Utc};

use crate::config::OperatorConfig;
use crate::crd::SafetySpec;
use crate::engine::{
    HrState, ObjectKey, OffboardingScope, Plan, PolicyInput, PolicyRules, World, plan,
};
use crate::reconcile::{ExecutionReport, Executor, ObservationScope, observe_opal};

/// Name under which the config file's safety defaults appear among the policies (a name no
/// Kubernetes object can have).
pub const SAFETY_DEFAULTS_POLICY: &str = "config:safetyDefaults";
use crate::hris::{EmploymentStatus, HrSource, HrisError};
use crate::manifests::Manifests;
use crate::opal::{ApiToken, Client, OpalError};

/// Why a sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("HR source: {0}")]
    Hris(#[from] HrisError),
    #[error("Opal: {0}")]
    Opal(#[from] OpalError),
    #[error("Opal token: {0}")]
    Token(#[from] crate::secret::SecretError),
}

impl StandaloneError {
    pub fn label(&self) -> &'static str {
        match self {
            StandaloneError::Hris(error) => error.label(),
            StandaloneError::Opal(error) => error.label(),
            StandaloneError::Token(_) => "secret",
        }
    }
}

/// The two systems a sync reads, built from the operator config.
pub struct Sources {
    pub hr: HrSource,
    pub opal: Client,
    pub concurrency: usize,
    pub operator_namespace: String,
    /// The config file's `safetyDefaults`, planned as one more AccessPolicy in the operator
    /// namespace (so the strictest limit wins).
    pub safety_defaults: Option<SafetySpec>,
}

impl Sources {
    pub fn from_config(config: &OperatorConfig) -> Result<Self, StandaloneError> {
        Self::observed(config, None)
    }

    /// Like [`Sources::from_config`], with every Opal HTTP attempt reported to `observer`.
    pub fn observed(
        config: &OperatorConfig,
        observer: Option<std::sync::Arc<dyn crate::opal::CallObserver>>,
    ) -> Result<Self, StandaloneError> {
        let token = config.opal.token.resolve()?;
        let token = ApiToken::new(token.expose())?;
        let mut opal = Client::builder(config.opal.client.clone(), token);
        if let Some(observer) = observer {
            opal = opal.observer(observer);
        }
        Ok(Self {
            hr: HrSource::from_config(&config.hris)?,
            opal: opal.build()?,
            concurrency: config.sync.concurrency,
            operator_namespace: config.operator_namespace.clone(),
            safety_defaults: config.safety_defaults.clone(),
        })
    }
}

/// The HR snapshot as the planner takes it: complete, incomplete (skipped records), or failed.
pub async fn read_hr(hr: &HrSource) -> HrState {
    match hr.snapshot().await {
        Ok(snapshot) if snapshot.is_complete() => HrState::Snapshot(snapshot.employees),
        Ok(snapshot) => HrState::Incomplete {
            reason: format!("{} record(s) skipped", snapshot.skipped.len()),
            employees: snapshot.employees,
        },
        Err(error) => HrState::Failed(error.to_string()),
    }
}

/// The config file's `safetyDefaults` as one more operator-namespace policy.
pub fn safety_defaults_policy(operator_namespace: &str, safety: &SafetySpec) -> PolicyInput {
    PolicyInput {
        key: ObjectKey::new(operator_namespace, SAFETY_DEFAULTS_POLICY),
        rules: PolicyRules {
            safety: Some(safety.rules()),
            ..PolicyRules::default()
        },
        approved_plan_hash: None,
    }
}

/// Emails of terminated employees whose every Opal grant must be read, because an
/// operator-namespace policy offboards with `revoke: All`.
pub fn users_losing_everything(
    policies: &[PolicyInput],
    hr: &HrState,
    operator_namespace: &str,
) -> Vec<String> {
    let offboard_everything = policies.iter().any(|policy| {
        policy.key.namespace == operator_namespace
            && matches!(
                &policy.rules.offboarding,
                Some(Ok(o)) if o.scope == OffboardingScope::All
            )
    });
    match hr {
        HrState::Snapshot(employees) | HrState::Incomplete { employees, .. }
            if offboard_everything =>
        {
            employees
                .iter()
                .filter(|e| e.status == EmploymentStatus::Terminated)
                .map(|e| e.email.clone())
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Reads HR and Opal into a [`World`] for `manifests`. A failing HR source does not fail the
/// read: it becomes [`HrState::Failed`], which blocks every change but lockdowns.
pub async fn observe_world(
    sources: &Sources,
    manifests: &Manifests,
    last_good_employee_count: Option<usize>,
) -> Result<World, StandaloneError> {
    let hr = read_hr(&sources.hr).await;
    let mappings = manifests.mapping_inputs();
    let mut policies = manifests.policy_inputs();
    if let Some(safety) = &sources.safety_defaults {
        policies.push(safety_defaults_policy(&sources.operator_namespace, safety));
    }
    let lockdowns = manifests.lockdown_inputs();
    let leavers = users_losing_everything(&policies, &hr, &sources.operator_namespace);
    let scope = ObservationScope::new(&mappings, &lockdowns, &hr, leavers);
    let opal = observe_opal(&sources.opal, &scope, sources.concurrency).await?;
    Ok(World {
        hr,
        last_good_employee_count,
        opal,
        mappings,
        policies,
        lockdowns,
        operator_namespace: sources.operator_namespace.clone(),
    })
}

/// One sync: observe, plan, apply, then observe and plan again to confirm.
pub struct SyncOutcome {
    pub plan: Plan,
    pub execution: ExecutionReport,
    /// The plan after applying; empty operations mean Opal converged.
    pub confirmation: Plan,
    /// Employees in the snapshot, when it passed the flood gate (the next sync's baseline).
    pub good_employee_count: Option<usize>,
}

pub async fn sync_once(
    sources: &Sources,
    manifests: &Manifests,
    last_good_employee_count: Option<usize>,
    now: DateTime<Utc>,
) -> Result<SyncOutcome, StandaloneError> {
    let world = observe_world(sources, manifests, last_good_employee_count).await?;
    let first = plan(&world, now);
    let good_employee_count = match (&world.hr, &first.hr_gate) {
        (HrState::Snapshot(employees), None) => Some(employees.len()),
        _ => last_good_employee_count,
    };
    let execution = Executor::new(sources.opal.clone(), sources.concurrency)
        .apply(&first.operations)
        .await;
    let after = observe_world(sources, manifests, good_employee_count).await?;
    let confirmation = plan(&after, now);
    Ok(SyncOutcome {
        plan: first,
        execution,
        confirmation,
        good_employee_count,
    })
}
