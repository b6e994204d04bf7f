//! Custom role definitions and role assignments.

use async_trait::async_trait;
use chrono::Utc;
use rampart_core::{RoleAssignment, RoleDefinition};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, conflict};
use crate::codec::{condition_from_json, condition_json, json_list, parse_json_list};
use crate::{AccessStore, StoreError, StoreResult};

fn assignment_from_row(row: &PgRow) -> StoreResult<RoleAssignment> {
    let scope: String = row.try_get("scope")?;
    let condition: Option<String> = row.try_get("condition")?;
    let eligibility: Option<String> = row.try_get("eligibility")?;
    Ok(RoleAssignment {
        id: row.try_get("id")?,
        principal_id: row.try_get("principal_id")?,
        principal_name: row.try_get("username")?,
        role: row.try_get("role")?,
        scope: scope.parse().map_err(|e| StoreError::Corrupt(format!("scope '{scope}': {e}")))?,
        condition: condition.as_deref().map(condition_from_json).transpose()?,
        eligibility: eligibility
            .as_deref()
            .map(|e| serde_json::from_str(e).map_err(|e| StoreError::Corrupt(format!("eligibility: {e}"))))
            .transpose()?,
    })
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_role_definition(&self, role: &RoleDefinition) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        sqlx::query(
            "INSERT INTO role_definitions (name, description, actions, not_actions, data_actions, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(json_list(role.actions.iter().cloned()))
        .bind(json_list(role.not_actions.iter().cloned()))
        .bind(json_list(role.data_actions.iter().cloned()))
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(conflict(|| format!("role '{}'", role.name)))?;
        Ok(())
    }

    async fn custom_role_definitions(&self) -> StoreResult<Vec<RoleDefinition>> {
        if let Some(roles) = self.cache.get(|c| c.custom_roles.clone()) {
            return Ok(roles);
        }
        let generation = self.cache.generation();
        let rows = sqlx::query("SELECT * FROM role_definitions ORDER BY name").fetch_all(&self.pool).await?;
        let roles = rows
            .iter()
            .map(|r| {
                Ok(RoleDefinition {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    actions: parse_json_list(r.try_get("actions")?, "role actions")?,
                    not_actions: parse_json_list(r.try_get("not_actions")?, "role not-actions")?,
                    data_actions: parse_json_list(r.try_get("data_actions")?, "role data actions")?,
                    builtin: false,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.cache.fill(generation, |c| c.custom_roles = Some(roles.clone()));
        Ok(roles)
    }

    async fn create_role_assignment(&self, a: &RoleAssignment) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        sqlx::query(
            "INSERT INTO role_assignments (id, principal_id, role, scope, condition, created_at, eligibility)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.id)
        .bind(&a.principal_id)
        .bind(&a.role)
        .bind(a.scope.to_string())
        .bind(a.condition.as_ref().map(condition_json))
        .bind(Utc::now())
        .bind(a.eligibility.as_ref().and_then(|e| serde_json::to_string(e).ok()))
        .execute(&self.pool)
        .await
        .map_err(conflict(|| {
            format!("role assignment of {} to {} at {}", a.role, a.principal_name, a.scope)
        }))?;
        Ok(())
    }

    async fn role_assignments(
        &self,
        principal_id: Option<&str>,
        scope: Option<&str>,
    ) -> StoreResult<Vec<RoleAssignment>> {
        // One user's assignments at every scope: what every request and connection checks.
        let per_user = match (principal_id, scope) {
            (Some(user), None) => Some(user),
            _ => None,
        };
        if let Some(user) = per_user
            && let Some(found) = self.cache.get(|c| c.assignments.get(user).cloned())
        {
            return Ok(found);
        }
        let generation = self.cache.generation();
        let rows = sqlx::query(
            "SELECT a.*, u.username FROM role_assignments a JOIN users u ON u.id = a.principal_id
             WHERE ($1::text IS NULL OR a.principal_id = $1) AND ($2::text IS NULL OR a.scope = $2)
             ORDER BY u.username, a.scope, a.role",
        )
        .bind(principal_id)
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        let found = rows.iter().map(assignment_from_row).collect::<StoreResult<Vec<_>>>()?;
        if let Some(user) = per_user {
            self.cache.fill(generation, |c| {
                c.assignments.insert(user.to_string(), found.clone());
            });
        }
        Ok(found)
    }

    async fn delete_role_assignment(&self, id: &str) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let done =
            sqlx::query("DELETE FROM role_assignments WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("role assignment '{id}'")));
        }
        Ok(())
    }
}
