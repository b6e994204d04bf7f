//! The audit log: append-only and hash-chained (`rampart_core::audit::chain_hash`).

use async_trait::async_trait;
use rampart_core::audit::GENESIS_HASH;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, chain_hash};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, parse_ts, ts};
use crate::{AuditFilter, AuditStore, StoreError, StoreResult};

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
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
        user_agent: row.try_get("user_agent")?,
        protocol: row.try_get("protocol")?,
        target_resource_id: row.try_get("target_resource_id")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl SqliteStore {
    /// The id and hash of the chain's last sealed entry.
    async fn chain_head(&self, conn: &mut sqlx::SqliteConnection) -> StoreResult<(i64, String)> {
        let row =
            sqlx::query("SELECT id, hash FROM audit_records WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
        Ok(match row {
            Some(r) => (r.try_get("id")?, r.try_get("hash")?),
            None => (0, GENESIS_HASH.to_string()),
        })
    }

    /// Computes hashes for records stored before the chain existed (oldest first).
    pub(super) async fn seal_unchained_audit(&self) -> StoreResult<()> {
        let _guard = self.audit_append.lock().await;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM audit_records WHERE hash IS NULL ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let (_, mut prev) = self.chain_head(&mut tx).await?;
        for row in &rows {
            let entry = audit_from_row(row)?;
            let id = entry.id.unwrap_or_default();
            let hash = chain_hash(&prev, id, &entry);
            sqlx::query("UPDATE audit_records SET prev_hash = ?2, hash = ?3 WHERE id = ?1")
                .bind(id)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            prev = hash;
        }
        tx.commit().await?;
        tracing::info!(records = rows.len(), "sealed earlier audit records into the hash chain");
        Ok(())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<i64> {
        let mut head = self.audit_append.lock().await;
        let (last_id, prev) = match head.take() {
            Some(known) => known,
            None => {
                let mut conn = self.pool.acquire().await?;
                self.chain_head(&mut conn).await?
            }
        };
        let id = last_id + 1;
        let hash = chain_hash(&prev, id, e);
        // One INSERT is its own transaction: durable (synchronous=FULL) when it returns. The id
        // is the primary key, so a record appended behind our back makes it fail, not fork the
        // chain; the head is then read again on the next append.
        sqlx::query(
            "INSERT INTO audit_records (id, time, event, user, client_address, bastion_id, target_ip,
               target_port, tunnel_id, connection_id, result, reason_code, reason,
               bytes_to_target, bytes_from_target, duration_ms, user_agent, protocol,
               target_resource_id, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        )
        .bind(id)
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
        .bind(&e.user_agent)
        .bind(&e.protocol)
        .bind(&e.target_resource_id)
        .bind(&prev)
        .bind(&hash)
        .execute(&self.pool)
        .await?;
        *head = Some((id, hash));
        Ok(id)
    }

    async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_records
             WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR user = ?2 COLLATE NOCASE)
               AND (?3 IS NULL OR result = ?3)
               AND (?4 IS NULL OR target_ip = ?4 OR target_resource_id = ?4 COLLATE NOCASE)
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(f.since.map(ts))
        .bind(&f.user)
        .bind(&f.result)
        .bind(&f.target)
        .bind(i64::from(f.limit.unwrap_or(1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn unclosed_connections(&self) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_records o
             WHERE o.event = 'connection-open' AND o.result = 'allowed' AND o.connection_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM audit_records c
                               WHERE c.connection_id = o.connection_id AND c.event = 'connection-close')
             ORDER BY o.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn integrity_check(&self) -> StoreResult<()> {
        let answers: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pool).await?;
        if answers.len() == 1 && answers[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(answers.join("; ")))
        }
    }

    async fn audit_chain(&self) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_records ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}
