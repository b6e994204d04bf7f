//! Activations of eligible role assignments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rampart_core::{Activation, ActivationState};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::{ActivationStore, StoreError, StoreResult};

/// An activation with its assignment's role and scope and its requester's name, then `$rest`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT a.*, ra.role AS role, ra.scope AS scope, u.username AS username FROM activations a ",
            "JOIN role_assignments ra ON ra.id = a.assignment_id JOIN users u ON u.id = a.principal_id ",
            $rest
        )
    };
}

fn activation_from_row(row: &PgRow) -> StoreResult<Activation> {
    let state: String = row.try_get("state")?;
    let duration: i64 = row.try_get("duration_secs")?;
    Ok(Activation {
        id: row.try_get("id")?,
        assignment_id: row.try_get("assignment_id")?,
        principal_id: row.try_get("principal_id")?,
        principal_name: row.try_get("username")?,
        role: row.try_get("role")?,
        scope: row.try_get("scope")?,
        justification: row.try_get("justification")?,
        duration_secs: u64::try_from(duration).unwrap_or(0),
        state: ActivationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("activation state '{state}'")))?,
        requested_at: row.try_get("requested_at")?,
        decided_by: row.try_get("decided_by")?,
        decision_reason: row.try_get("decision_reason")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
    })
}

#[async_trait]
impl ActivationStore for PostgresStore {
    async fn create_activation(&self, a: &Activation) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        sqlx::query(
            "INSERT INTO activations (id, assignment_id, principal_id, justification, duration_secs, state, requested_at, decided_by, decision_reason, starts_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&a.id)
        .bind(&a.assignment_id)
        .bind(&a.principal_id)
        .bind(&a.justification)
        .bind(i64::try_from(a.duration_secs).unwrap_or(i64::MAX))
        .bind(a.state.as_str())
        .bind(a.requested_at)
        .bind(&a.decided_by)
        .bind(&a.decision_reason)
        .bind(a.starts_at)
        .bind(a.ends_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn activation(&self, id: &str) -> StoreResult<Option<Activation>> {
        let row = sqlx::query(select!("WHERE a.id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(activation_from_row).transpose()
    }

    async fn activations(&self, principal_id: Option<&str>) -> StoreResult<Vec<Activation>> {
        let rows = match principal_id {
            Some(p) => {
                sqlx::query(select!("WHERE a.principal_id = $1 ORDER BY a.requested_at DESC"))
                    .bind(p)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(select!("ORDER BY a.requested_at DESC")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(activation_from_row).collect()
    }

    async fn decide_activation(
        &self,
        id: &str,
        to: ActivationState,
        by: &str,
        reason: Option<&str>,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> StoreResult<bool> {
        let _written = self.cache.write_guard();
        let done = sqlx::query(
            "UPDATE activations SET state = $2, decided_by = $3, decision_reason = $4, starts_at = $5, ends_at = $6
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(by)
        .bind(reason)
        .bind(window.map(|w| w.0))
        .bind(window.map(|w| w.1))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_activation(
        &self,
        id: &str,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let _written = self.cache.write_guard();
        let done = sqlx::query(
            "UPDATE activations SET state = 'revoked', decided_by = $2, decision_reason = $3, ends_at = $4
             WHERE id = $1 AND state = 'active' AND ends_at > $4",
        )
        .bind(id)
        .bind(by)
        .bind(reason)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn activations_in_force(
        &self,
        principal_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Activation>> {
        let rows = sqlx::query(select!(
            "WHERE a.principal_id = $1 AND a.state = 'active' AND a.starts_at <= $2 AND a.ends_at > $2"
        ))
        .bind(principal_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(activation_from_row).collect()
    }

    async fn claim_end_record(&self, id: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE activations SET end_recorded = TRUE WHERE id = $1 AND end_recorded = FALSE")
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn activations_ended(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<Activation>> {
        let rows = sqlx::query(select!(
            "WHERE a.state IN ('active', 'revoked') AND a.ends_at > $1 AND a.ends_at <= $2 ORDER BY a.ends_at"
        ))
        .bind(after)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(activation_from_row).collect()
    }
}
