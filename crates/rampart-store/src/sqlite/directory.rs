//! Identity providers, federated users and groups, memberships and upstream tokens.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::accounts::user_from_row;
use super::{SqliteStore, conflict, parse_ts, ts};
use crate::codec::{json_list, parse_json_list};
use crate::{DirectoryStore, IdentityProviderRecord, StoreError, StoreResult, User};

fn provider_from_row(row: &SqliteRow) -> StoreResult<IdentityProviderRecord> {
    Ok(IdentityProviderRecord {
        name: row.try_get("name")?,
        issuer: row.try_get("issuer")?,
        client_id: row.try_get("client_id")?,
        client_secret: row.try_get("client_secret")?,
        username_claim: row.try_get("username_claim")?,
        groups_claim: row.try_get("groups_claim")?,
        allowed_domains: parse_json_list(row.try_get("allowed_domains")?, "allowed domains")?,
        ca_pem: row.try_get("ca_pem")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

impl SqliteStore {
    /// The provider's principal of `kind` with this external ID, created as `name` if new. Two
    /// nodes creating it at once: the loser finds the winner's.
    async fn external_principal(
        &self,
        provider: &str,
        kind: &str,
        external_id: &str,
        name: &str,
    ) -> StoreResult<User> {
        let find = || {
            sqlx::query("SELECT * FROM users WHERE identity_provider = ?1 AND kind = ?2 AND external_id = ?3")
                .bind(provider)
                .bind(kind)
                .bind(external_id)
        };
        if let Some(row) = find().fetch_optional(&self.pool).await? {
            return user_from_row(&row);
        }
        // A group whose name is taken by a user (or the other way round) gets a suffix.
        for candidate in [name.to_string(), format!("{name}#{kind}")] {
            let inserted = sqlx::query(
                "INSERT INTO users (id, username, display_name, password_hash, created_at, kind, identity_provider, external_id)
                 VALUES (?1, ?2, NULL, '!', ?3, ?4, ?5, ?6)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&candidate)
            .bind(ts(Utc::now()))
            .bind(kind)
            .bind(provider)
            .bind(external_id)
            .execute(&self.pool)
            .await
            .map_err(conflict(|| format!("principal '{candidate}'")));
            match inserted {
                Ok(_) => break,
                Err(StoreError::Conflict(_)) => {
                    if let Some(row) = find().fetch_optional(&self.pool).await? {
                        return user_from_row(&row);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let row = find().fetch_optional(&self.pool).await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::Conflict(format!("principal '{name}'")))
    }
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn create_identity_provider(&self, p: &IdentityProviderRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_providers (name, issuer, client_id, client_secret, username_claim, groups_claim, allowed_domains, ca_pem, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(&p.name)
        .bind(&p.issuer)
        .bind(&p.client_id)
        .bind(&p.client_secret)
        .bind(&p.username_claim)
        .bind(&p.groups_claim)
        .bind(json_list(p.allowed_domains.iter().cloned()))
        .bind(&p.ca_pem)
        .bind(ts(p.created_at))
        .execute(&self.pool)
        .await
        .map_err(conflict(|| format!("identity provider '{}'", p.name)))?;
        Ok(())
    }

    async fn identity_provider(&self, name: &str) -> StoreResult<Option<IdentityProviderRecord>> {
        let row = sqlx::query("SELECT * FROM identity_providers WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(provider_from_row).transpose()
    }

    async fn list_identity_providers(&self) -> StoreResult<Vec<IdentityProviderRecord>> {
        let rows =
            sqlx::query("SELECT * FROM identity_providers ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(provider_from_row).collect()
    }

    async fn delete_identity_provider(&self, name: &str) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let done = sqlx::query("DELETE FROM identity_providers WHERE name = ?1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("identity provider '{name}'")));
        }
        Ok(())
    }

    async fn federated_user(&self, provider: &str, subject: &str, username: &str) -> StoreResult<User> {
        self.external_principal(provider, "user", subject, username).await
    }

    async fn ensure_group(&self, provider: &str, external_id: &str, name: &str) -> StoreResult<User> {
        self.external_principal(provider, "group", external_id, name).await
    }

    async fn set_memberships(&self, user_id: &str, provider: &str, groups: &[String]) -> StoreResult<bool> {
        let mut wanted = BTreeSet::new();
        for g in groups {
            wanted.insert(self.ensure_group(provider, g, &format!("{g}@{provider}")).await?.id);
        }
        let current: BTreeSet<String> = sqlx::query_scalar(
            "SELECT gm.group_id FROM group_members gm JOIN users g ON g.id = gm.group_id
             WHERE gm.member_id = ?1 AND g.identity_provider = ?2",
        )
        .bind(user_id)
        .bind(provider)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        if current == wanted {
            return Ok(false);
        }
        let _written = self.cache.write_guard();
        let mut tx = self.pool.begin().await?;
        for gone in current.difference(&wanted) {
            sqlx::query("DELETE FROM group_members WHERE group_id = ?1 AND member_id = ?2")
                .bind(gone)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        for new in wanted.difference(&current) {
            sqlx::query("INSERT OR IGNORE INTO group_members (group_id, member_id) VALUES (?1, ?2)")
                .bind(new)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn groups_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        if let Some(groups) = self.cache.get(|c| c.groups.get(user_id).cloned()) {
            return Ok(groups);
        }
        let generation = self.cache.generation();
        let groups: Vec<String> =
            sqlx::query_scalar("SELECT group_id FROM group_members WHERE member_id = ?1 ORDER BY group_id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        self.cache.fill(generation, |c| {
            c.groups.insert(user_id.to_string(), groups.clone());
        });
        Ok(groups)
    }

    async fn group_members(&self, group_id: &str) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.* FROM users u JOIN group_members gm ON gm.member_id = u.id WHERE gm.group_id = ?1 ORDER BY u.username",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn put_upstream_token(
        &self,
        token_hash: &str,
        provider: &str,
        refresh_token: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO upstream_tokens (token_hash, identity_provider, refresh_token) VALUES (?1, ?2, ?3)",
        )
        .bind(token_hash)
        .bind(provider)
        .bind(refresh_token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_upstream_token(&self, token_hash: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query(
            "DELETE FROM upstream_tokens WHERE token_hash = ?1 RETURNING identity_provider, refresh_token",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("identity_provider")?, r.try_get("refresh_token")?))).transpose()
    }
}
