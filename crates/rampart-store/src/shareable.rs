//! Shareable links' part of the store: each link, found by its id or by the SHA-256 of its
//! token (the token itself is never stored).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareableLinkRecord {
    pub id: String,
    /// SHA-256 (hex) of the token in the link.
    pub token_hash: String,
    pub bastion_id: String,
    /// The one machine it opens.
    pub target_id: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait ShareableLinkStore: Send + Sync {
    /// Adds `links` (all on `bastion_id`) unless the bastion would then have more than `limit`
    /// unexpired links at `now`; all or none. Links of the bastion expired before `now` are
    /// forgotten first. `Ok(false)`: over the limit, nothing added.
    async fn create_shareable_links(
        &self,
        bastion_id: &str,
        links: &[ShareableLinkRecord],
        limit: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// A bastion's links (in any case), oldest first, expired ones included until forgotten.
    async fn shareable_links(&self, bastion_id: &str) -> StoreResult<Vec<ShareableLinkRecord>>;
    async fn shareable_link(&self, id: &str) -> StoreResult<Option<ShareableLinkRecord>>;
    async fn shareable_link_by_token(&self, token_hash: &str) -> StoreResult<Option<ShareableLinkRecord>>;
    /// Deletes these links of `bastion_id`; returns the ids that were there.
    async fn delete_shareable_links(&self, bastion_id: &str, ids: &[String]) -> StoreResult<Vec<String>>;
}
