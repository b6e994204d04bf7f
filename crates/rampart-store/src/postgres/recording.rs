//! Recordings of sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::{RecordingRecord, RecordingStore, StoreResult};

fn recording_from_row(row: &PgRow) -> StoreResult<RecordingRecord> {
    let size: Option<i64> = row.try_get("size_bytes")?;
    Ok(RecordingRecord {
        id: row.try_get("id")?,
        bastion_id: row.try_get("bastion_id")?,
        username: row.try_get("username")?,
        target: row.try_get("target")?,
        protocol: row.try_get("protocol")?,
        format: row.try_get("format")?,
        location: row.try_get("location")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        size_bytes: size.and_then(|s| u64::try_from(s).ok()),
        sha256: row.try_get("sha256")?,
    })
}

#[async_trait]
impl RecordingStore for PostgresStore {
    async fn create_recording(&self, r: &RecordingRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO recordings (id, bastion_id, username, target, protocol, format, location, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.bastion_id)
        .bind(&r.username)
        .bind(&r.target)
        .bind(&r.protocol)
        .bind(&r.format)
        .bind(&r.location)
        .bind(r.started_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_recording(
        &self,
        id: &str,
        ended_at: DateTime<Utc>,
        size: u64,
        sha256: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE recordings SET ended_at = $2, size_bytes = $3, sha256 = $4 WHERE id = $1")
            .bind(id)
            .bind(ended_at)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn recording(&self, id: &str) -> StoreResult<Option<RecordingRecord>> {
        let row =
            sqlx::query("SELECT * FROM recordings WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(recording_from_row).transpose()
    }

    async fn recordings(&self, bastion_id: &str) -> StoreResult<Vec<RecordingRecord>> {
        let rows = sqlx::query("SELECT * FROM recordings WHERE bastion_id = $1 ORDER BY started_at DESC")
            .bind(bastion_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recording_from_row).collect()
    }

    async fn delete_recording(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM recordings WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}
