//! Rampart's persistent store. Callers see only traits and domain types from `rampart-core`;
//! SQL stays in this crate. [`SqliteStore`] is the embedded implementation (the default);
//! [`PostgresStore`] is the one several gateway processes share. Both implement the same
//! traits, and callers cannot tell them apart.
//!
//! The store is split by area ([`AccountStore`], [`InventoryStore`], [`AccessStore`],
//! [`AuditStore`]); [`Store`] is all of them. `use rampart_store::prelude::*` brings the
//! methods into scope.
//!
//! # What every backend guarantees
//! The conformance suite (`tests/conformance`) checks each of these through the traits, and
//! runs against every backend:
//! - **Read-your-writes for the authorization inputs**: users, role assignments, custom
//!   roles, bastions and machines read after a committed write see it, however they are
//!   cached. A backend that caches reads invalidates through an [`Invalidation`], which a
//!   backend shared by several processes feeds from the others' writes too.
//! - **Audit appends are ordered and chained**: an append is durable when it returns, its id
//!   is higher than every earlier append's, and the hash chain over all records in id order
//!   is whole, also under concurrent appends (one chain head, whatever the writer count).
//! - **Unique names**: user, subscription and bastion names, and resource IDs, are unique
//!   without regard to case (ARM names are case-insensitive) and found in any case; a
//!   duplicate is [`StoreError::Conflict`].
//! - **One-time tokens**: a refresh token is consumed once, even by concurrent uses; the
//!   first pinned host key wins, even between concurrent pins; so does the first shared
//!   secret stored under a name.
//! - **Nodes**: a heartbeat replaces the node's live sessions; a lost node's sessions are
//!   handed to exactly one reaper; a published event reaches every subscriber.

mod activation;
mod cache;
mod codec;
mod directory;
mod invalidation;
mod mfa;
mod nodes;
mod postgres;
mod recording;
mod shareable;
mod sqlite;

pub use activation::ActivationStore;
pub use directory::{DirectoryStore, IdentityProviderRecord};
pub use invalidation::{Invalidation, LocalInvalidation};
pub use mfa::{MfaStore, TotpRecord};
pub use nodes::{LiveSessionRecord, NodeRecord, NodeState, NodeStore, Reaped, StoreEvent};
pub use postgres::PostgresStore;
pub use recording::{RecordingRecord, RecordingStore};
pub use shareable::{ShareableLinkRecord, ShareableLinkStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rampart_core::{
    AuditEntry, Bastion, BastionSettings, Machine, NetworkInterface, ResourceId, RoleAssignment,
    RoleDefinition,
};

pub use sqlite::SqliteStore;

pub mod prelude {
    pub use crate::{
        AccessStore, AccountStore, AuditStore, DirectoryStore, InventoryStore, NodeStore, Store,
    };
}

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
    Database(sqlx::Error),
    /// The database cannot be reached (stopped, restarting, network): a new request fails at
    /// once with this, never hangs, and works again once the database is back.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The audit log could not take a record; nothing that needed it may proceed.
    #[error("cannot write the audit log: {0}")]
    AuditWrite(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            // The server shutting down under an open connection (57P01 admin_shutdown and
            // its kin): unavailable too.
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c.starts_with("57P")) => {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    /// argon2id PHC string; never the password.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// A user, a service principal (whose user name is its application ID) or a group.
    pub kind: rampart_core::IdentityKind,
    /// The identity provider a federated user or group came from; `None` for local ones.
    pub identity_provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub name: String,
}

/// Filter for [`AuditStore::list_audit`]; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub user: Option<String>,
    pub result: Option<String>,
    /// Matches the target IP or the target resource ID.
    pub target: Option<String>,
    /// Most recent first, at most this many (default 1000).
    pub limit: Option<u32>,
}

/// Users, sign-in tokens, subscriptions, resource groups and bastions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn user_count(&self) -> StoreResult<u64>;
    async fn create_user(
        &self,
        username: &str,
        display_name: Option<&str>,
        password_hash: &str,
    ) -> StoreResult<User>;
    /// A service principal: its application ID is its user name, its secret hashed like a
    /// password.
    async fn create_service_principal(
        &self,
        app_id: &str,
        display_name: &str,
        secret_hash: &str,
    ) -> StoreResult<User>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Deletes the user, their role assignments and refresh tokens.
    async fn delete_user(&self, username: &str) -> StoreResult<()>;
    /// Sets a new password hash and revokes the user's refresh tokens and browser sessions.
    async fn set_password(&self, username: &str, password_hash: &str) -> StoreResult<()>;

    async fn insert_refresh_token(&self, token_hash: &str, user_id: &str, expires_at: i64)
    -> StoreResult<()>;
    /// Revokes a live refresh token and returns its user id, atomically; `None` if the token
    /// is unknown, expired or already revoked (so a token can be used once).
    async fn consume_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;
    /// The user of a live refresh token, leaving it live (to check a request before using it).
    async fn refresh_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;

    /// A browser sign-in session, stored as the hash of its cookie secret.
    async fn insert_portal_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The user of a live browser session; `None` when unknown or expired.
    async fn portal_session_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;
    async fn delete_portal_session(&self, token_hash: &str) -> StoreResult<()>;

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
}

/// Registered machines (VMs and scale-set instances) and network interfaces.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Registers machines and their network interfaces in one transaction: all or none.
    async fn register_machines(&self, machines: &[Machine]) -> StoreResult<usize>;
    async fn machine(&self, id: &ResourceId) -> StoreResult<Option<Machine>>;
    async fn list_machines(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<Machine>>;
    /// Changes a registered machine in place: its OS, ports and its network interface's
    /// address (the machine and interface keep their names). [`StoreError::NotFound`] when
    /// it is not registered.
    async fn update_machine(&self, machine: &Machine) -> StoreResult<()>;
    /// Removes a VM (or every instance of a scale set) and its network interfaces.
    async fn unregister_machine(&self, id: &ResourceId) -> StoreResult<usize>;
    async fn network_interface(&self, id: &ResourceId) -> StoreResult<Option<NetworkInterface>>;
    async fn list_network_interfaces(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<NetworkInterface>>;
    /// The SSH host key pinned for a target (resource ID, or `ip:port`), as one OpenSSH line.
    async fn pinned_host_key(&self, target: &str) -> StoreResult<Option<String>>;
    /// Pins a host key unless one is pinned already; returns the key pinned afterwards.
    async fn pin_host_key(&self, target: &str, host_key: &str) -> StoreResult<String>;
    /// Forgets a pinned host key (an operator who knows the target's key changed).
    async fn forget_host_key(&self, target: &str) -> StoreResult<bool>;
    /// Every pinned host key and certificate: (target, key, pinned at), by target.
    async fn pinned_host_keys(&self) -> StoreResult<Vec<(String, String, DateTime<Utc>)>>;
}

/// Custom role definitions and role assignments.
#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn create_role_definition(&self, role: &RoleDefinition) -> StoreResult<()>;
    async fn custom_role_definitions(&self) -> StoreResult<Vec<RoleDefinition>>;
    async fn create_role_assignment(&self, assignment: &RoleAssignment) -> StoreResult<()>;
    /// Assignments, filtered by principal id and/or exact scope.
    async fn role_assignments(
        &self,
        principal_id: Option<&str>,
        scope: Option<&str>,
    ) -> StoreResult<Vec<RoleAssignment>>;
    async fn delete_role_assignment(&self, id: &str) -> StoreResult<()>;
}

/// The append-only, hash-chained audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry to the chain durably (committed before this returns); returns its id.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<i64>;
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
    /// Every entry, chain by chain, each in its order (for verification).
    async fn audit_chain(&self) -> StoreResult<Vec<AuditEntry>>;
    /// Appends from this process go to the chain named `node` from now on (each node of a
    /// shared store has its own, so nodes never wait on each other to append); until then,
    /// and for an empty name, to the unnamed chain (one node's).
    fn set_audit_chain(&self, node: &str);
    /// Connections with an allowed open record and no close record (left by a crash).
    async fn unclosed_connections(&self) -> StoreResult<Vec<AuditEntry>>;
    /// The same, of the connections whose open record is in `node`'s chain (opened by that
    /// node): what a lost node, or a node's previous run, left open.
    async fn unclosed_connections_of(&self, node: &str) -> StoreResult<Vec<AuditEntry>>;
    /// The backend's own consistency check (SQLite's `integrity_check`; PostgreSQL answering);
    /// `Ok(())` when it reports nothing wrong.
    async fn integrity_check(&self) -> StoreResult<()>;
}

/// Everything the gateway stores.
#[async_trait]
pub trait Store:
    AccountStore
    + InventoryStore
    + AccessStore
    + AuditStore
    + NodeStore
    + DirectoryStore
    + MfaStore
    + ActivationStore
    + RecordingStore
    + ShareableLinkStore
    + 'static
{
    /// Flushes and closes the store; called once at shutdown.
    async fn close(&self);
}
