//! What a decision's role assignments are, just-in-time access included: the standing ones of
//! the principal and its groups, plus each eligible one while an activation of it is in force;
//! and, when only an eligible assignment would allow a request, the refusal that says how to
//! activate it (or which activation just ended, and how).

use chrono::Utc;
use rampart_core::activation::format_duration;
use rampart_core::{ActivationState, RoleAssignment};
use rampart_store::{Store, StoreError};

/// How long after an activation ends a refusal still names it (so a session it admitted ends
/// with the story, not only with the hint).
const RECENT_SECS: i64 = 600;

/// Every assignment of the principal and of its groups, eligible ones as they are.
async fn all_of(store: &dyn Store, principal_id: &str) -> Result<Vec<RoleAssignment>, StoreError> {
    let mut all = store.role_assignments(Some(principal_id), None).await?;
    for group in store.groups_of(principal_id).await? {
        all.extend(store.role_assignments(Some(&group), None).await?);
    }
    Ok(all)
}

/// A principal's role assignments in force now: standing ones (its own and its groups'), and
/// each eligible one the principal has an activation in force for.
pub async fn assignments_of(
    store: &dyn Store,
    principal_id: &str,
) -> Result<Vec<RoleAssignment>, StoreError> {
    let (mut effective, eligible): (Vec<_>, Vec<_>) =
        all_of(store, principal_id).await?.into_iter().partition(|a| a.eligibility.is_none());
    if eligible.is_empty() {
        return Ok(effective);
    }
    for activation in store.activations_in_force(principal_id, Utc::now()).await? {
        if let Some(a) = eligible.iter().find(|e| e.id == activation.assignment_id) {
            effective.push(RoleAssignment {
                id: format!("activation:{}", activation.id),
                eligibility: None,
                ..a.clone()
            });
        }
    }
    Ok(effective)
}

/// The principal's eligible assignments, as if they were in force.
pub async fn eligible_of(store: &dyn Store, principal_id: &str) -> Result<Vec<RoleAssignment>, StoreError> {
    Ok(all_of(store, principal_id)
        .await?
        .into_iter()
        .filter(|a| a.eligibility.is_some())
        .map(|a| RoleAssignment { eligibility: None, ..a })
        .collect())
}

/// Why an eligible principal is refused, and what to do: an activation that just ended (and
/// how), one waiting for approval, or the command that activates.
pub async fn hint(
    store: &dyn Store,
    principal_id: &str,
    eligible: &[RoleAssignment],
) -> Result<String, StoreError> {
    let Some(first) = eligible.first() else { return Ok("not eligible".into()) };
    let command = format!(
        "rampart role activate --role \"{}\" --scope {} --duration PT1H --justification \"…\"",
        first.role, first.scope
    );
    let now = Utc::now();
    for a in store.activations(Some(principal_id)).await? {
        if !eligible.iter().any(|e| e.id == a.assignment_id) {
            continue;
        }
        if a.state == ActivationState::Pending {
            return Ok(format!(
                "the activation {} of {} at {} is waiting for an approver (requested {})",
                a.id,
                a.role,
                a.scope,
                a.requested_at.format("%H:%M:%S UTC")
            ));
        }
        let Some(end) = a.ends_at else { continue };
        if end <= now && (now - end).num_seconds() < RECENT_SECS {
            let how = match (a.state, &a.decided_by) {
                (ActivationState::Revoked, Some(by)) => {
                    let why = a.decision_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
                    format!("was revoked by {by}{why}")
                }
                _ => format!(
                    "expired at {} after {}",
                    end.format("%H:%M:%S UTC"),
                    format_duration(a.duration_secs)
                ),
            };
            return Ok(format!(
                "the activation {} of {} at {} {how}; to activate again: {command}",
                a.id, a.role, a.scope
            ));
        }
    }
    Ok(format!("eligible for {} at {}, not active: run `{command}`", first.role, first.scope))
}
