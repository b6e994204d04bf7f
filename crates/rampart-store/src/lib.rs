//! Rampart's persistent store. Callers see only the [`Store`] trait and domain types from
//! `rampart-core`; SQL stays in this crate. [`SqliteStore`] is the embedded implementation;
//! a PostgreSQL one can be added behind the same trait without touching callers.

mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rampart_core::{AuditEntry, Bastion, BastionSettings, ResourceId};

pub use sqlite::SqliteStore;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    /// argon2id PHC string; never the password.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub name: String,
}

/// Filter for [`Store::list_audit`]; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub user: Option<String>,
    pub result: Option<String>,
    /// Most recent first, at most this many (default 1000).
    pub limit: Option<u32>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn user_count(&self) -> StoreResult<u64>;
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<User>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;

    async fn insert_refresh_token(&self, token_hash: &str, user_id: &str, expires_at: i64)
    -> StoreResult<()>;
    /// Revokes a live refresh token and returns its user id, atomically; `None` if the token
    /// is unknown, expired or already revoked (so a token can be used once).
    async fn consume_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;

    async fn create_subscription(&self, id: &str, name: &str) -> StoreResult<Subscription>;
    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>>;
    /// Creates the resource group if it does not exist yet.
    async fn ensure_resource_group(&self, subscription_id: &str, name: &str) -> StoreResult<()>;

    async fn create_bastion(&self, id: &ResourceId, settings: &BastionSettings) -> StoreResult<Bastion>;
    async fn bastion(&self, id: &ResourceId) -> StoreResult<Option<Bastion>>;
    async fn list_bastions(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<Bastion>>;
    async fn update_bastion(&self, id: &ResourceId, settings: &BastionSettings) -> StoreResult<Bastion>;
    async fn delete_bastion(&self, id: &ResourceId) -> StoreResult<()>;

    /// Appends an entry durably (committed before this returns) and returns its id.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<i64>;
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;

    /// Flushes and closes the store; called once at shutdown.
    async fn close(&self);
}
