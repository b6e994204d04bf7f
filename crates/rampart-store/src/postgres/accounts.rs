//! Users, refresh tokens, subscriptions, resource groups and bastions.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Bastion, BastionSettings, ResourceId, Tier};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, conflict};
use crate::codec::{json_list, parse_json_list};
use crate::{AccountStore, StoreError, StoreResult, Subscription, User};

fn principal_kind(kind: String) -> StoreResult<rampart_core::IdentityKind> {
    rampart_core::IdentityKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("principal kind '{kind}'")))
}

pub(super) fn user_from_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        kind: principal_kind(row.try_get("kind")?)?,
        identity_provider: row.try_get("identity_provider")?,
    })
}

fn bastion_from_row(row: &PgRow) -> StoreResult<Bastion> {
    let tier: String = row.try_get("tier")?;
    let networks = parse_json_list(row.try_get("reachable_networks")?, "reachable networks")?;
    let reachable_networks = networks
        .iter()
        .map(|n| IpNet::from_str(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("reachable network: {e}")))?;
    let secs = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(Bastion {
        id: ResourceId::bastion(
            row.try_get("subscription_id")?,
            row.try_get("resource_group")?,
            row.try_get("name")?,
        ),
        settings: BastionSettings {
            tier: Tier::from_str(&tier).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            enable_tunneling: row.try_get("enable_tunneling")?,
            enable_ip_connect: row.try_get("enable_ip_connect")?,
            reachable_networks,
            idle_timeout_secs: secs(row.try_get("idle_timeout_secs")?),
            max_session_secs: secs(row.try_get("max_session_secs")?),
            disable_copy_paste: row.try_get("disable_copy_paste")?,
            enable_shareable_link: row.try_get("enable_shareable_link")?,
            file_transfer: row
                .try_get::<String, _>("file_transfer")?
                .parse()
                .map_err(|e: rampart_core::files::BadFileTransfer| StoreError::Corrupt(e.to_string()))?,
            file_transfer_max_bytes: row
                .try_get::<Option<i64>, _>("file_transfer_max_bytes")?
                .and_then(|b| u64::try_from(b).ok()),
            session_recording: row.try_get("session_recording")?,
            allow_unrecorded_tunnels: row.try_get("allow_unrecorded_tunnels")?,
            recording_storage_url: row
                .try_get::<Option<String>, _>("recording_storage_url")?
                .map(rampart_core::SecretUrl::new),
            recording_retention_days: row
                .try_get::<Option<i64>, _>("recording_retention_days")?
                .and_then(|d| u32::try_from(d).ok()),
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn secs_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn networks_json(settings: &BastionSettings) -> String {
    json_list(settings.reachable_networks.iter().map(|n| n.to_string()))
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[async_trait]
impl AccountStore for PostgresStore {
    async fn user_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(
        &self,
        username: &str,
        display_name: Option<&str>,
        password_hash: &str,
    ) -> StoreResult<User> {
        self.insert_principal(username, display_name, password_hash, rampart_core::IdentityKind::User).await
    }

    async fn create_service_principal(
        &self,
        app_id: &str,
        display_name: &str,
        secret_hash: &str,
    ) -> StoreResult<User> {
        self.insert_principal(
            app_id,
            Some(display_name),
            secret_hash,
            rampart_core::IdentityKind::ServicePrincipal,
        )
        .await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        if let Some(user) = self.cache.get(|c| c.users.get(id).cloned()) {
            return Ok(user);
        }
        let generation = self.cache.generation();
        let row =
            sqlx::query("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        self.cache.fill(generation, |c| {
            c.users.insert(id.to_string(), user.clone());
        });
        Ok(user)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username").fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, username: &str) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let done =
            sqlx::query("DELETE FROM users WHERE username = $1").bind(username).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user '{username}'")));
        }
        Ok(())
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let mut tx = self.pool.begin().await?;
        let id: Option<String> =
            sqlx::query_scalar("UPDATE users SET password_hash = $2 WHERE username = $1 RETURNING id")
                .bind(username)
                .bind(password_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let id = id.ok_or_else(|| StoreError::NotFound(format!("user '{username}'")))?;
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(&id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn refresh_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        let user: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM refresh_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(user)
    }

    async fn consume_refresh_token(&self, token_hash: &str, now_secs: i64) -> StoreResult<Option<String>> {
        // One statement: of two concurrent uses, the second finds the row revoked.
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET revoked_at = $3
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2
             RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now_secs)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(user)
    }

    async fn insert_portal_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        // Expired sessions go as new ones come, so the table does not grow without bound.
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(at.timestamp())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn portal_session_user(&self, token_hash: &str, now_secs: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_secs)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delete_portal_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_subscription(&self, id: &str, name: &str) -> StoreResult<Subscription> {
        let _written = self.cache.write_guard();
        sqlx::query("INSERT INTO subscriptions (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(conflict(|| format!("subscription '{name}'")))?;
        Ok(Subscription { id: id.to_string(), name: name.to_string() })
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let rows =
            sqlx::query("SELECT id, name FROM subscriptions ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(Subscription { id: r.try_get("id")?, name: r.try_get("name")? })).collect()
    }

    async fn ensure_resource_group(&self, subscription_id: &str, name: &str) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        sqlx::query(
            "INSERT INTO resource_groups (subscription_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(subscription_id)
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("subscription '{subscription_id}'"))
            }
            _ => e.into(),
        })?;
        Ok(())
    }

    async fn create_bastion(&self, id: &ResourceId, settings: &BastionSettings) -> StoreResult<Bastion> {
        let _written = self.cache.write_guard();
        self.ensure_resource_group(&id.subscription, &id.resource_group).await?;
        sqlx::query(
            "INSERT INTO bastions (subscription_id, resource_group, name, tier, enable_tunneling,
               enable_ip_connect, reachable_networks, created_at, updated_at, idle_timeout_secs, max_session_secs,
               disable_copy_paste, session_recording, allow_unrecorded_tunnels,
               recording_storage_url, recording_retention_days, enable_shareable_link, file_transfer,
               file_transfer_max_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .bind(settings.tier.as_str())
        .bind(settings.enable_tunneling)
        .bind(settings.enable_ip_connect)
        .bind(networks_json(settings))
        .bind(now())
        .bind(secs_i64(settings.idle_timeout_secs))
        .bind(secs_i64(settings.max_session_secs))
        .bind(settings.disable_copy_paste)
        .bind(settings.session_recording)
        .bind(settings.allow_unrecorded_tunnels)
        .bind(settings.recording_storage_url.as_ref().map(|u| u.expose().to_string()))
        .bind(settings.recording_retention_days.map(i64::from))
        .bind(settings.enable_shareable_link)
        .bind(settings.file_transfer.to_string())
        .bind(settings.file_transfer_max_bytes.and_then(|b| i64::try_from(b).ok()))
        .execute(&self.pool)
        .await
        .map_err(conflict(|| format!("bastion '{}'", id.name)))?;
        self.bastion(id).await?.ok_or_else(|| StoreError::NotFound(format!("bastion '{}'", id.name)))
    }

    async fn bastion(&self, id: &ResourceId) -> StoreResult<Option<Bastion>> {
        let key = id.to_string().to_lowercase();
        if let Some(bastion) = self.cache.get(|c| c.bastions.get(&key).cloned()) {
            return Ok(bastion);
        }
        let generation = self.cache.generation();
        let row = sqlx::query(
            "SELECT * FROM bastions WHERE subscription_id = $1 AND resource_group = $2 AND name = $3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .fetch_optional(&self.pool)
        .await?;
        let bastion = row.as_ref().map(bastion_from_row).transpose()?;
        self.cache.fill(generation, |c| {
            c.bastions.insert(key, bastion.clone());
        });
        Ok(bastion)
    }

    async fn list_bastions(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<Bastion>> {
        let rows = sqlx::query(
            "SELECT * FROM bastions WHERE subscription_id = $1 AND ($2::text IS NULL OR resource_group = $2)
             ORDER BY resource_group, name",
        )
        .bind(subscription_id)
        .bind(resource_group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(bastion_from_row).collect()
    }

    async fn update_bastion(&self, id: &ResourceId, settings: &BastionSettings) -> StoreResult<Bastion> {
        let _written = self.cache.write_guard();
        let done = sqlx::query(
            "UPDATE bastions SET tier = $4, enable_tunneling = $5, enable_ip_connect = $6,
               reachable_networks = $7, updated_at = $8, idle_timeout_secs = $9, max_session_secs = $10,
               disable_copy_paste = $11, session_recording = $12, allow_unrecorded_tunnels = $13,
               recording_storage_url = $14, recording_retention_days = $15, enable_shareable_link = $16,
               file_transfer = $17, file_transfer_max_bytes = $18
             WHERE subscription_id = $1 AND resource_group = $2 AND name = $3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .bind(settings.tier.as_str())
        .bind(settings.enable_tunneling)
        .bind(settings.enable_ip_connect)
        .bind(networks_json(settings))
        .bind(now())
        .bind(secs_i64(settings.idle_timeout_secs))
        .bind(secs_i64(settings.max_session_secs))
        .bind(settings.disable_copy_paste)
        .bind(settings.session_recording)
        .bind(settings.allow_unrecorded_tunnels)
        .bind(settings.recording_storage_url.as_ref().map(|u| u.expose().to_string()))
        .bind(settings.recording_retention_days.map(i64::from))
        .bind(settings.enable_shareable_link)
        .bind(settings.file_transfer.to_string())
        .bind(settings.file_transfer_max_bytes.and_then(|b| i64::try_from(b).ok()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bastion '{}'", id.name)));
        }
        self.bastion(id).await?.ok_or_else(|| StoreError::NotFound(format!("bastion '{}'", id.name)))
    }

    async fn delete_bastion(&self, id: &ResourceId) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let done = sqlx::query(
            "DELETE FROM bastions WHERE subscription_id = $1 AND resource_group = $2 AND name = $3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bastion '{}'", id.name)));
        }
        // Its links go with it (a bastion made again under the name starts with none).
        sqlx::query("DELETE FROM shareable_links WHERE bastion_id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl PostgresStore {
    async fn insert_principal(
        &self,
        username: &str,
        display_name: Option<&str>,
        password_hash: &str,
        kind: rampart_core::IdentityKind,
    ) -> StoreResult<User> {
        let _written = self.cache.write_guard();
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            display_name: display_name.map(str::to_string),
            password_hash: password_hash.to_string(),
            created_at: now(),
            kind,
            identity_provider: None,
        };
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, created_at, kind) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(kind.as_str())
        .execute(&self.pool)
        .await
        .map_err(conflict(|| format!("user '{username}'")))?;
        Ok(user)
    }
}
