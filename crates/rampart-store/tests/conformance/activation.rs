//! The conformance checks of just-in-time access: eligible assignments keep their rules;
//! activations are decided once, are in force only in their window, and end.

use std::sync::Arc;

use chrono::{Duration, Utc};
use rampart_core::{Activation, ActivationState, Eligibility};
use rampart_store::prelude::*;

use super::{Checked, assignment, fail};

pub async fn activations_are_decided_once_and_end(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("sub1", "default").await?;
    let user = store.create_user("jit-user", None, "hash").await?;
    let rules = Eligibility {
        max_duration_secs: 3600,
        require_approval: true,
        approvers: vec!["someone".into()],
        require_justification: true,
    };
    let mut eligible = assignment("ra-jit", &user, "Reader", "/subscriptions/sub1");
    eligible.eligibility = Some(rules.clone());
    store.create_role_assignment(&eligible).await?;
    let read = store.role_assignments(Some(&user.id), None).await?;
    ensure!(read.len() == 1 && read[0].eligibility.as_ref() == Some(&rules), "eligibility kept: {read:?}");

    let now = Utc::now();
    let pending = Activation {
        id: "act-1".into(),
        assignment_id: "ra-jit".into(),
        principal_id: user.id.clone(),
        principal_name: String::new(),
        role: String::new(),
        scope: String::new(),
        justification: Some("ticket 42".into()),
        duration_secs: 60,
        state: ActivationState::Pending,
        requested_at: now,
        decided_by: None,
        decision_reason: None,
        starts_at: None,
        ends_at: None,
    };
    store.create_activation(&pending).await?;
    let read = store.activation("act-1").await?.ok_or_else(|| fail("activation read back"))?;
    ensure!(
        read.role == "Reader" && read.principal_name == "jit-user" && read.scope.contains("sub1"),
        "{read:?}"
    );
    ensure!(store.activations_in_force(&user.id, now).await?.is_empty(), "pending grants nothing");

    let window = (now - Duration::seconds(1), now + Duration::seconds(60));
    let (a, b) = tokio::join!(
        store.decide_activation("act-1", ActivationState::Active, "approver-1", None, Some(window)),
        store.decide_activation("act-1", ActivationState::Denied, "approver-2", Some("no"), None),
    );
    ensure!(a? ^ b?, "two racing decisions: one wins");
    let decided = store.activation("act-1").await?.ok_or_else(|| fail("decided"))?;
    if decided.state == ActivationState::Active {
        ensure!(store.activations_in_force(&user.id, now).await?.len() == 1, "in force in its window");
        ensure!(
            store.activations_in_force(&user.id, now + Duration::seconds(61)).await?.is_empty(),
            "not after its end"
        );
        ensure!(store.revoke_activation("act-1", "admin", Some("done"), now).await?, "revoked");
        ensure!(!store.revoke_activation("act-1", "admin", None, now).await?, "revoked once");
        ensure!(store.activations_in_force(&user.id, now).await?.is_empty(), "a revoked one grants nothing");
        let ended = store.activations_ended(now - Duration::seconds(10), now + Duration::seconds(1)).await?;
        ensure!(ended.iter().any(|e| e.id == "act-1"), "an ended activation is found by its end");
    } else {
        ensure!(
            decided.state == ActivationState::Denied && decided.decided_by.as_deref() == Some("approver-2"),
            "{decided:?}"
        );
    }
    ensure!(store.activations(Some(&user.id)).await?.len() == 1, "listed by principal");
    store.delete_role_assignment("ra-jit").await?;
    ensure!(store.activation("act-1").await?.is_none(), "activations go with their assignment");
    Ok(())
}
