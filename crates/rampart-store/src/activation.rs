//! Just-in-time access's part of the store: activations of eligible role assignments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rampart_core::{Activation, ActivationState};

use crate::StoreResult;

#[async_trait]
pub trait ActivationStore: Send + Sync {
    async fn create_activation(&self, activation: &Activation) -> StoreResult<()>;
    async fn activation(&self, id: &str) -> StoreResult<Option<Activation>>;
    /// Activations, newest first: one principal's, or everyone's.
    async fn activations(&self, principal_id: Option<&str>) -> StoreResult<Vec<Activation>>;
    /// A pending activation approved (`Active`, with its window) or `Denied`, once: `false`
    /// when it was no longer pending (two approvers racing: one wins).
    async fn decide_activation(
        &self,
        id: &str,
        to: ActivationState,
        by: &str,
        reason: Option<&str>,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> StoreResult<bool>;
    /// An active activation ended early at `at` (its end moved there); `false` when it was not
    /// active.
    async fn revoke_activation(
        &self,
        id: &str,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The activations `principal_id` asked for that are in force at `now`.
    async fn activations_in_force(
        &self,
        principal_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Activation>>;
    /// Claims the writing of an activation's end record: `true` once, for one caller of all
    /// nodes.
    async fn claim_end_record(&self, id: &str) -> StoreResult<bool>;
    /// Activations (active or revoked) whose end falls after `after`, up to `until`.
    async fn activations_ended(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<Activation>>;
}
