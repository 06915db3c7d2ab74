//! A plan rendered for people and tools: a terminal table, JSON, or Markdown for a pull-request
//! comment.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::crd::ChangeAction;
use crate::engine::{Cause, Operation, Plan, Withheld};

/// Output format of `plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
}

/// Renders `plan` in `format`.
pub fn render(plan: &Plan, format: ReportFormat) -> String {
    match format {
        ReportFormat::Table => table(plan),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&to_json(plan)).unwrap_or_else(|e| e.to_string()) + "\n"
        }
        ReportFormat::Markdown => markdown(plan),
    }
}

fn action(op: &Operation) -> &'static str {
    match op.action {
        ChangeAction::Grant => "grant",
        ChangeAction::Revoke => "revoke",
    }
}

fn cause(op: &Operation) -> String {
    match &op.cause {
        Cause::Mapping(key) => format!("RoleMapping {key}"),
        Cause::Unwanted => "not desired on an authoritative target".to_owned(),
        Cause::Offboarding => "offboarding".to_owned(),
        Cause::Lockdown(key) => format!("Lockdown {key}"),
    }
}

fn withheld_reason(why: Withheld) -> &'static str {
    match why {
        Withheld::Observe => "Observe mode or paused",
        Withheld::Breaker => "revocation breaker tripped",
        Withheld::HrGate => "HR flood gate",
    }
}

fn level(op: &Operation) -> &str {
    if op.access_level_remote_id.is_empty() {
        "(default)"
    } else {
        &op.access_level_remote_id
    }
}

/// Safety verdicts first: they explain why changes are held.
fn safety_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(reason) = &plan.hr_gate {
        lines.push(format!("HR flood gate: revocations held ({reason})"));
    }
    if plan.breaker.tripped {
        let verdict = if plan.breaker.approved {
            "approved, revocations proceed"
        } else {
            "revocations held until approved"
        };
        lines.push(format!(
            "revocation breaker tripped: {} — {verdict}; approve with annotation opal-operator.io/approve-plan: {}",
            plan.breaker.reason, plan.revocation_hash
        ));
    }
    lines
}

fn table(plan: &Plan) -> String {
    let mut out = String::new();
    for line in safety_lines(plan) {
        let _ = writeln!(out, "! {line}");
    }
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>9} {:>8} {:>6} {:>6}  PROBLEMS",
        "ROLEMAPPING", "MATCHED", "UNMATCHED", "DESIRED", "GRANT", "REVOKE"
    );
    for (key, findings) in &plan.mappings {
        let problems: Vec<String> = findings
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.reason(), p.message()))
            .collect();
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>9} {:>8} {:>6} {:>6}  {}",
            key.to_string(),
            findings.matched_employees,
            findings.unmatched_employees,
            findings.desired_grants,
            findings.to_grant,
            findings.to_revoke,
            if problems.is_empty() {
                "-".to_owned()
            } else {
                problems.join("; ")
            }
        );
    }
    for (key, findings) in &plan.lockdowns {
        let state = if findings.active {
            "active"
        } else {
            "inactive"
        };
        let _ = writeln!(
            out,
            "Lockdown {key}: {state}, {} user(s), {} target(s), {} revocation(s) pending",
            findings.locked_users, findings.locked_targets, findings.to_revoke
        );
    }
    let _ = writeln!(
        out,
        "\n{} change(s) to apply, {} held back",
        plan.operations.len(),
        plan.withheld.len()
    );
    for op in &plan.operations {
        let _ = writeln!(
            out,
            "  {:<6} {:<40} {:<36} {:<20} {}",
            action(op),
            op.target_label(),
            op.user_email,
            level(op),
            cause(op)
        );
    }
    for (op, why) in &plan.withheld {
        let _ = writeln!(
            out,
            "  held   {:<6} {:<33} {:<36} {}",
            action(op),
            op.target_label(),
            op.user_email,
            withheld_reason(*why)
        );
    }
    out
}

fn markdown(plan: &Plan) -> String {
    let mut out = String::from("### opal-operator plan\n\n");
    for line in safety_lines(plan) {
        let _ = writeln!(out, "> **{line}**\n");
    }
    let _ = writeln!(
        out,
        "**{}** change(s) to apply, **{}** held back.\n",
        plan.operations.len(),
        plan.withheld.len()
    );
    out.push_str(
        "| RoleMapping | matched | unmatched | desired | to grant | to revoke | problems |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (key, findings) in &plan.mappings {
        let problems: Vec<&str> = findings.problems.iter().map(|p| p.reason()).collect();
        let _ = writeln!(
            out,
            "| `{key}` | {} | {} | {} | {} | {} | {} |",
            findings.matched_employees,
            findings.unmatched_employees,
            findings.desired_grants,
            findings.to_grant,
            findings.to_revoke,
            if problems.is_empty() {
                "—".to_owned()
            } else {
                problems.join(", ")
            }
        );
    }
    if !plan.operations.is_empty() || !plan.withheld.is_empty() {
        out.push_str("\n| change | target | user | access level | why |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for op in &plan.operations {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | `{}` | {} |",
                action(op),
                op.target_label(),
                op.user_email,
                level(op),
                cause(op)
            );
        }
        for (op, why) in &plan.withheld {
            let _ = writeln!(
                out,
                "| {} (held) | `{}` | {} | `{}` | {} |",
                action(op),
                op.target_label(),
                op.user_email,
                level(op),
                withheld_reason(*why)
            );
        }
    }
    out
}

fn op_json(op: &Operation) -> Value {
    json!({
        "action": action(op),
        "target": op.target_label(),
        "targetId": op.target_id,
        "user": op.user_email,
        "userId": op.user_id,
        "accessLevelRemoteId": op.access_level_remote_id,
        "cause": cause(op),
    })
}

fn to_json(plan: &Plan) -> Value {
    json!({
        "operations": plan.operations.iter().map(op_json).collect::<Vec<_>>(),
        "withheld": plan.withheld.iter().map(|(op, why)| {
            let mut value = op_json(op);
            value["heldBecause"] = json!(withheld_reason(*why));
            value
        }).collect::<Vec<_>>(),
        "revocationHash": plan.revocation_hash,
        "breaker": {
            "tripped": plan.breaker.tripped,
            "approved": plan.breaker.approved,
            "revocations": plan.breaker.revocations,
            "governedGrants": plan.breaker.governed_grants,
            "reason": plan.breaker.reason,
        },
        "hrGate": plan.hr_gate,
        "roleMappings": plan.mappings.iter().map(|(key, f)| json!({
            "name": key.to_string(),
            "matchedEmployees": f.matched_employees,
            "unmatchedEmployees": f.unmatched_employees,
            "desiredGrants": f.desired_grants,
            "actualGrants": f.actual_grants,
            "toGrant": f.to_grant,
            "toRevoke": f.to_revoke,
            "problems": f.problems.iter().map(|p| json!({"reason": p.reason(), "message": p.message()})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "lockdowns": plan.lockdowns.iter().map(|(key, f)| json!({
            "name": key.to_string(),
            "active": f.active,
            "lockedUsers": f.locked_users,
            "toRevoke": f.to_revoke,
            "unresolvedSubjects": f.unresolved_subjects,
        })).collect::<Vec<_>>(),
    })
}
