//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a committed
//! audit entry survives a crash of the process or the machine.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, Bastion, BastionSettings, ResourceId, Tier};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::{AuditFilter, Store, StoreError, StoreResult, Subscription, User};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Fixed-width UTC timestamps, so text order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp '{s}': {e}")))
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            password_hash: row.try_get("password_hash")?,
            created_at: parse_ts(row.try_get("created_at")?)?,
        })
    }

    fn bastion_from_row(row: &SqliteRow) -> StoreResult<Bastion> {
        let tier: String = row.try_get("tier")?;
        let networks: String = row.try_get("reachable_networks")?;
        let networks: Vec<String> = serde_json::from_str(&networks)
            .map_err(|e| StoreError::Corrupt(format!("reachable networks: {e}")))?;
        let reachable_networks = networks
            .iter()
            .map(|n| IpNet::from_str(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("reachable network: {e}")))?;
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
            },
            created_at: parse_ts(row.try_get("created_at")?)?,
            updated_at: parse_ts(row.try_get("updated_at")?)?,
        })
    }

    fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEntry> {
        let event: String = row.try_get("event")?;
        let result: String = row.try_get("result")?;
        let port: Option<i64> = row.try_get("target_port")?;
        Ok(AuditEntry {
            id: Some(row.try_get("id")?),
            time: parse_ts(row.try_get("time")?)?,
            event: AuditEvent::parse(&event)
                .ok_or_else(|| StoreError::Corrupt(format!("audit event '{event}'")))?,
            user: row.try_get("user")?,
            client_address: row.try_get("client_address")?,
            bastion_id: row.try_get("bastion_id")?,
            target_ip: row.try_get("target_ip")?,
            target_port: port.and_then(|p| u16::try_from(p).ok()),
            tunnel_id: row.try_get("tunnel_id")?,
            connection_id: row.try_get("connection_id")?,
            result: AuditResult::parse(&result)
                .ok_or_else(|| StoreError::Corrupt(format!("audit result '{result}'")))?,
            reason_code: row.try_get("reason_code")?,
            reason: row.try_get("reason")?,
            bytes_to_target: opt_u64(row.try_get("bytes_to_target")?),
            bytes_from_target: opt_u64(row.try_get("bytes_from_target")?),
            duration_ms: opt_u64(row.try_get("duration_ms")?),
        })
    }
}

fn networks_json(settings: &BastionSettings) -> String {
    let list: Vec<String> = settings.reachable_networks.iter().map(|n| n.to_string()).collect();
    serde_json::Value::from(list).to_string()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn user_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<User> {
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            created_at: Utc::now(),
        };
        sqlx::query("INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(ts(user.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("user '{username}'"))
                } else {
                    e.into()
                }
            })?;
        Ok(user)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row =
            sqlx::query("SELECT * FROM users WHERE id = ?1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_at)
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consume_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET revoked_at = ?3
             WHERE token_hash = ?1 AND revoked_at IS NULL AND expires_at > ?2
             RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(user)
    }

    async fn create_subscription(&self, id: &str, name: &str) -> StoreResult<Subscription> {
        sqlx::query("INSERT INTO subscriptions (id, name, created_at) VALUES (?1, ?2, ?3)")
            .bind(id)
            .bind(name)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("subscription '{name}'"))
                } else {
                    e.into()
                }
            })?;
        Ok(Subscription { id: id.to_string(), name: name.to_string() })
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let rows =
            sqlx::query("SELECT id, name FROM subscriptions ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(Subscription { id: r.try_get("id")?, name: r.try_get("name")? })).collect()
    }

    async fn ensure_resource_group(&self, subscription_id: &str, name: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO resource_groups (subscription_id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )
        .bind(subscription_id)
        .bind(name)
        .bind(ts(Utc::now()))
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
        self.ensure_resource_group(&id.subscription, &id.resource_group).await?;
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO bastions (subscription_id, resource_group, name, tier, enable_tunneling,
               enable_ip_connect, reachable_networks, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .bind(settings.tier.as_str())
        .bind(settings.enable_tunneling)
        .bind(settings.enable_ip_connect)
        .bind(networks_json(settings))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("bastion '{}'", id.name))
            } else {
                e.into()
            }
        })?;
        self.bastion(id).await?.ok_or_else(|| StoreError::NotFound(format!("bastion '{}'", id.name)))
    }

    async fn bastion(&self, id: &ResourceId) -> StoreResult<Option<Bastion>> {
        let row = sqlx::query(
            "SELECT * FROM bastions WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::bastion_from_row).transpose()
    }

    async fn list_bastions(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<Bastion>> {
        let rows = sqlx::query(
            "SELECT * FROM bastions WHERE subscription_id = ?1 AND (?2 IS NULL OR resource_group = ?2)
             ORDER BY resource_group, name",
        )
        .bind(subscription_id)
        .bind(resource_group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::bastion_from_row).collect()
    }

    async fn update_bastion(&self, id: &ResourceId, settings: &BastionSettings) -> StoreResult<Bastion> {
        let done = sqlx::query(
            "UPDATE bastions SET tier = ?4, enable_tunneling = ?5, enable_ip_connect = ?6,
               reachable_networks = ?7, updated_at = ?8
             WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .bind(settings.tier.as_str())
        .bind(settings.enable_tunneling)
        .bind(settings.enable_ip_connect)
        .bind(networks_json(settings))
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bastion '{}'", id.name)));
        }
        self.bastion(id).await?.ok_or_else(|| StoreError::NotFound(format!("bastion '{}'", id.name)))
    }

    async fn delete_bastion(&self, id: &ResourceId) -> StoreResult<()> {
        let done = sqlx::query(
            "DELETE FROM bastions WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bastion '{}'", id.name)));
        }
        Ok(())
    }

    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_records (time, event, user, client_address, bastion_id, target_ip,
               target_port, tunnel_id, connection_id, result, reason_code, reason,
               bytes_to_target, bytes_from_target, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             RETURNING id",
        )
        .bind(ts(e.time))
        .bind(e.event.as_str())
        .bind(&e.user)
        .bind(&e.client_address)
        .bind(&e.bastion_id)
        .bind(&e.target_ip)
        .bind(e.target_port.map(i64::from))
        .bind(&e.tunnel_id)
        .bind(&e.connection_id)
        .bind(e.result.as_str())
        .bind(&e.reason_code)
        .bind(&e.reason)
        .bind(opt_i64(e.bytes_to_target))
        .bind(opt_i64(e.bytes_from_target))
        .bind(opt_i64(e.duration_ms))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_records
             WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR user = ?2 COLLATE NOCASE)
               AND (?3 IS NULL OR result = ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(f.since.map(ts))
        .bind(&f.user)
        .bind(&f.result)
        .bind(i64::from(f.limit.unwrap_or(1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::audit_from_row).collect()
    }

    /// Closes the pool, checkpointing the WAL.
    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bastions_and_audit_survive_reopening() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("rampart.db");
        let id = ResourceId::bastion("sub1", "rg1", "b1");
        {
            let store = SqliteStore::open(&path).await?;
            store.create_subscription("sub1", "default").await?;
            let mut settings = BastionSettings::new_default();
            settings.reachable_networks = vec!["10.0.0.0/8".parse().expect("cidr")];
            store.create_bastion(&id, &settings).await?;
            let dup = store.create_bastion(&id, &settings).await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))));
            let mut entry = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Refused);
            entry.reason_code = Some("NativeClientDisabled".into());
            entry.target_port = Some(22);
            store.append_audit(&entry).await?;
            store.close().await;
        }
        let store = SqliteStore::open(&path).await?;
        let b = store.bastion(&ResourceId::bastion("sub1", "RG1", "B1")).await?.expect("bastion kept");
        assert_eq!(b.settings.reachable_networks.len(), 1);
        let audit = store.list_audit(&AuditFilter::default()).await?;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].reason_code.as_deref(), Some("NativeClientDisabled"));
        assert_eq!(audit[0].target_port, Some(22));
        Ok(())
    }

    #[tokio::test]
    async fn refresh_token_can_be_used_once() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("r.db")).await?;
        let user = store.create_user("alice", "hash").await?;
        store.insert_refresh_token("h1", &user.id, 2_000).await?;
        assert_eq!(store.consume_refresh_token("h1", 1_000).await?, Some(user.id));
        assert_eq!(store.consume_refresh_token("h1", 1_000).await?, None);
        store.insert_refresh_token("h2", "x", 500).await.ok();
        assert_eq!(store.consume_refresh_token("h2", 1_000).await?, None);
        Ok(())
    }
}
