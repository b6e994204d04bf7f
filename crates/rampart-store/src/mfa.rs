//! Multi-factor authentication's part of the store: each local account's TOTP secret and the
//! last step accepted, and its recovery codes (hashes, each used once).

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// Base32, as authenticator apps take it.
    pub secret: String,
    /// Verified by a first code; until then sign-in does not ask for it.
    pub enabled: bool,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("enabled", &self.enabled)
            .field("last_step", &self.last_step)
            .finish()
    }
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRecord>>;
    /// A new secret, pending until verified; refused ([`crate::StoreError::Conflict`]) while
    /// one is enabled.
    async fn put_pending_totp(&self, user_id: &str, secret: &str) -> StoreResult<()>;
    /// Turns the pending secret on, with `step` as the first accepted and these recovery code
    /// hashes (replacing any older ones); `false` when nothing was pending.
    async fn enable_totp(&self, user_id: &str, step: i64, recovery_hashes: &[String]) -> StoreResult<bool>;
    /// Accepts a time step once: `true` only if it is later than every step accepted before
    /// (also between nodes racing with the same code).
    async fn accept_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Uses a recovery code once: `true` only the first time.
    async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> StoreResult<bool>;
    /// Removes the secret and the recovery codes; `false` when there was none.
    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool>;

    /// Keeps a passkey (its credential ID, a name, webauthn-rs's JSON of it); a credential ID
    /// seen before is [`crate::StoreError::Conflict`].
    async fn add_passkey(
        &self,
        user_id: &str,
        credential_id: &str,
        name: &str,
        passkey: &str,
    ) -> StoreResult<()>;
    /// The user's passkeys: (credential ID, name, JSON), oldest first.
    async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<(String, String, String)>>;
    /// Replaces a passkey's JSON (its signature counter moved on).
    async fn update_passkey(&self, credential_id: &str, passkey: &str) -> StoreResult<()>;
    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool>;
}
