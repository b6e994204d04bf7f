//! Shareable links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::{ShareableLinkRecord, ShareableLinkStore, StoreResult};

fn link_from_row(row: &PgRow) -> StoreResult<ShareableLinkRecord> {
    Ok(ShareableLinkRecord {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        bastion_id: row.try_get("bastion_id")?,
        target_id: row.try_get("target_id")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl ShareableLinkStore for PostgresStore {
    async fn create_shareable_links(
        &self,
        bastion_id: &str,
        links: &[ShareableLinkRecord],
        limit: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Every change to links is an authorization input: live sessions are decided on again.
        let _written = self.cache.write_guard();
        let mut tx = self.pool.begin().await?;
        // Nodes make links concurrently: the bastion's links are counted under a lock of
        // their own, taken for this transaction.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shareable_links:' || lower($1)))")
            .bind(bastion_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM shareable_links WHERE bastion_id = $1 AND expires_at <= $2")
            .bind(bastion_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        for l in links {
            let done = sqlx::query(
                "INSERT INTO shareable_links (id, token_hash, bastion_id, target_id, created_by, created_at, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7
                 WHERE (SELECT COUNT(*) FROM shareable_links WHERE bastion_id = $3) < $8",
            )
            .bind(&l.id)
            .bind(&l.token_hash)
            .bind(bastion_id)
            .bind(&l.target_id)
            .bind(&l.created_by)
            .bind(l.created_at)
            .bind(l.expires_at)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn shareable_links(&self, bastion_id: &str) -> StoreResult<Vec<ShareableLinkRecord>> {
        let rows = sqlx::query("SELECT * FROM shareable_links WHERE bastion_id = $1 ORDER BY created_at, id")
            .bind(bastion_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(link_from_row).collect()
    }

    async fn shareable_link(&self, id: &str) -> StoreResult<Option<ShareableLinkRecord>> {
        let row = sqlx::query("SELECT * FROM shareable_links WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    async fn shareable_link_by_token(&self, token_hash: &str) -> StoreResult<Option<ShareableLinkRecord>> {
        let row = sqlx::query("SELECT * FROM shareable_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    async fn delete_shareable_links(&self, bastion_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        let _written = self.cache.write_guard();
        let mut tx = self.pool.begin().await?;
        let mut deleted = Vec::new();
        for id in ids {
            let done = sqlx::query("DELETE FROM shareable_links WHERE id = $1 AND bastion_id = $2")
                .bind(id)
                .bind(bastion_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                deleted.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
