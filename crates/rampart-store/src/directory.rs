//! Single sign-on's part of the store: identity providers, the users and groups they bring,
//! group memberships, and the provider refresh token behind a federated sign-in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{StoreResult, User};

/// An OpenID Connect provider as configured (`rampart identity-provider create`). The client
/// secret is stored because the gateway must present it; it is never shown or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityProviderRecord {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub username_claim: String,
    pub groups_claim: String,
    pub allowed_domains: Vec<String>,
    /// PEM certificates of a private CA the provider's TLS chains to.
    pub ca_pem: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for IdentityProviderRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviderRecord")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// A duplicate name is [`crate::StoreError::Conflict`].
    async fn create_identity_provider(&self, provider: &IdentityProviderRecord) -> StoreResult<()>;
    async fn identity_provider(&self, name: &str) -> StoreResult<Option<IdentityProviderRecord>>;
    async fn list_identity_providers(&self) -> StoreResult<Vec<IdentityProviderRecord>>;
    /// Deletes the provider with every user and group it brought (their role assignments,
    /// tokens and browser sessions go with them).
    async fn delete_identity_provider(&self, name: &str) -> StoreResult<()>;

    /// The provider's user `subject`, created as `username` at its first sign-in.
    async fn federated_user(&self, provider: &str, subject: &str, username: &str) -> StoreResult<User>;
    /// The provider's group `external_id` (a group claim's value), named `name`; created if
    /// new, found by ID otherwise.
    async fn ensure_group(&self, provider: &str, external_id: &str, name: &str) -> StoreResult<User>;
    /// Makes the user a member of exactly these groups of `provider` (external IDs), creating
    /// groups not seen before; `true` when the memberships changed.
    async fn set_memberships(&self, user_id: &str, provider: &str, groups: &[String]) -> StoreResult<bool>;
    /// The IDs of the groups a principal belongs to.
    async fn groups_of(&self, user_id: &str) -> StoreResult<Vec<String>>;
    /// A group's members.
    async fn group_members(&self, group_id: &str) -> StoreResult<Vec<User>>;

    /// Keeps the provider's refresh token behind a Rampart refresh token (by its hash).
    async fn put_upstream_token(
        &self,
        token_hash: &str,
        provider: &str,
        refresh_token: &str,
    ) -> StoreResult<()>;
    /// Takes (removes and returns) the provider and refresh token kept behind a Rampart
    /// refresh token.
    async fn take_upstream_token(&self, token_hash: &str) -> StoreResult<Option<(String, String)>>;
}
