//! The audit log: append-only and hash-chained (`rampart_core::audit::chain_hash`).

use async_trait::async_trait;
use rampart_core::audit::GENESIS_HASH;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, chain_hash};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

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
        chain: Some(row.try_get::<String, _>("chain")?).filter(|c| !c.is_empty()),
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Computes hashes for records stored before the chain existed (oldest first).
pub(super) async fn seal_unchained_audit(pool: &sqlx::SqlitePool) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let rows =
        sqlx::query("SELECT * FROM audit_records WHERE hash IS NULL ORDER BY id").fetch_all(&mut *tx).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let (_, mut prev) = chain_head_sqlx(&mut tx).await?;
    for row in &rows {
        let entry = audit_from_row(row)?;
        let id = entry.id.unwrap_or_default();
        // Records from before the chain are in the unnamed one, numbered by their ids.
        let hash = chain_hash(&prev, entry.seq.unwrap_or(id), &entry);
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

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<i64> {
        let (done, result) = tokio::sync::oneshot::channel();
        let mut entry = e.clone();
        entry.chain = self.audit_chain_name.read().unwrap_or_else(|p| p.into_inner()).clone();
        let job = AuditJob { entry, done };
        let sent = match self.audit_writer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(writer) => writer.jobs.send(job).is_ok(),
            None => return Err(StoreError::AuditWrite("the store is closed".into())),
        };
        if !sent {
            return Err(StoreError::AuditWrite("the audit writer has stopped".into()));
        }
        result.await.unwrap_or_else(|_| Err(StoreError::AuditWrite("the audit writer has stopped".into())))
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

    async fn unclosed_connections_of(&self, node: &str) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_records o
             WHERE o.chain = ?1 AND o.event = 'connection-open' AND o.result = 'allowed'
               AND o.connection_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM audit_records c
                               WHERE c.connection_id = o.connection_id AND c.event = 'connection-close')
             ORDER BY o.id",
        )
        .bind(node)
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
        let rows =
            sqlx::query("SELECT * FROM audit_records ORDER BY chain, seq").fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    fn set_audit_chain(&self, node: &str) {
        *self.audit_chain_name.write().unwrap_or_else(|p| p.into_inner()) =
            Some(node.to_string()).filter(|n| !n.is_empty());
    }
}

/// An append waiting for the writer: the entry and where its id (or error) goes.
pub(super) struct AuditJob {
    entry: AuditEntry,
    done: tokio::sync::oneshot::Sender<StoreResult<i64>>,
}

/// Most records one transaction takes.
const MAX_BATCH: usize = 256;

/// The audit chain's one writer: where appends go, and its thread.
#[derive(Debug)]
pub(super) struct AuditWriter {
    pub(super) jobs: std::sync::mpsc::Sender<AuditJob>,
    pub(super) thread: std::thread::JoinHandle<()>,
}

/// Starts the one writer of the audit chain on a thread of its own, with its own SQLite
/// connection (rusqlite): an append is one `fsync` and microseconds of SQLite, where the same
/// append through sqlx took about 0.25 ms more (600 against 385 µs p50, BENCHMARKS.md).
/// The connection's page cache also stays warm (a pooled one re-reads pages another changed).
pub(super) fn start_audit_writer(path: &Path) -> StoreResult<AuditWriter> {
    let conn = rusqlite::Connection::open(path).map_err(audit_error)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(audit_error)?;
    // Durable when the commit returns. WAL is the database's own setting (`open` made it so).
    conn.pragma_update(None, "synchronous", "FULL").map_err(audit_error)?;
    let (jobs, queue) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("rampart-audit".into())
        .spawn(move || audit_writer(conn, queue))
        .map_err(|e| StoreError::AuditWrite(format!("cannot start the audit writer: {e}")))?;
    Ok(AuditWriter { jobs, thread })
}

fn audit_error(e: rusqlite::Error) -> StoreError {
    StoreError::AuditWrite(e.to_string())
}

/// The writer (group commit): it takes every append waiting when it is free and writes them
/// in one transaction, so concurrent connections share one `fsync` instead of queueing for
/// one each. It owns the chain's head (id and hash of the last record), read once, so a
/// record costs one INSERT. A caller that gives up waiting cannot leave a batch half written.
/// It ends when every sender is gone (the store closed), after writing what was queued.
fn audit_writer(mut conn: rusqlite::Connection, jobs: std::sync::mpsc::Receiver<AuditJob>) {
    let mut heads = Heads::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&mut conn, &mut heads, &batch) {
            Ok(ids) => {
                for (job, id) in batch.into_iter().zip(ids) {
                    let _ = job.done.send(Ok(id));
                }
            }
            Err(e) => {
                // Read the heads again next time: the failed batch may have been half applied
                // by someone else's write, or not at all.
                heads = Heads::default();
                tracing::error!(error = %e, records = batch.len(), "cannot append to the audit log");
                let text = e.to_string();
                for job in batch {
                    let _ = job.done.send(Err(StoreError::AuditWrite(text.clone())));
                }
            }
        }
    }
}

/// What the writer knows of the log: the last id, and each chain's last number and hash
/// (read once, kept while its own writes are the only ones).
#[derive(Default)]
struct Heads {
    last_id: Option<i64>,
    chains: HashMap<String, (i64, String)>,
}

/// Writes `batch`, each record after its chain's head, in one transaction, durable
/// (synchronous=FULL) when it returns; rolled back if any INSERT fails. Ids are primary keys
/// and (chain, number) is unique, so a record appended behind the writer's back makes the
/// batch fail, not fork a chain.
fn write_batch(
    conn: &mut rusqlite::Connection,
    heads: &mut Heads,
    batch: &[AuditJob],
) -> rusqlite::Result<Vec<i64>> {
    // IMMEDIATE: the write lock is taken (or waited for) up front.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut known = std::mem::take(heads);
    let mut last_id = match known.last_id {
        Some(id) => id,
        None => tx.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_records", [], |r| r.get(0))?,
    };
    let mut ids = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_records (id, time, event, user, client_address, bastion_id, target_ip,
               target_port, tunnel_id, connection_id, result, reason_code, reason,
               bytes_to_target, bytes_from_target, duration_ms, user_agent, protocol,
               target_resource_id, prev_hash, hash, chain, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
               ?21, ?22, ?23)",
        )?;
        for AuditJob { entry: e, .. } in batch {
            let chain = e.chain.clone().unwrap_or_default();
            let (seq, prev) = match known.chains.remove(&chain) {
                Some(head) => head,
                None => chain_head(&tx, &chain)?,
            };
            let (id, seq) = (last_id + 1, seq + 1);
            let hash = chain_hash(&prev, seq, e);
            insert.execute(rusqlite::params![
                id,
                ts(e.time),
                e.event.as_str(),
                e.user,
                e.client_address,
                e.bastion_id,
                e.target_ip,
                e.target_port.map(i64::from),
                e.tunnel_id,
                e.connection_id,
                e.result.as_str(),
                e.reason_code,
                e.reason,
                opt_i64(e.bytes_to_target),
                opt_i64(e.bytes_from_target),
                opt_i64(e.duration_ms),
                e.user_agent,
                e.protocol,
                e.target_resource_id,
                prev,
                hash,
                chain,
                seq,
            ])?;
            ids.push(id);
            last_id = id;
            known.chains.insert(chain, (seq, hash));
        }
    }
    tx.commit()?;
    known.last_id = Some(last_id);
    *heads = known;
    Ok(ids)
}

/// The number and hash of a chain's last sealed entry.
const CHAIN_HEAD: &str =
    "SELECT seq, hash FROM audit_records WHERE chain = ?1 AND hash IS NOT NULL ORDER BY seq DESC LIMIT 1";

fn chain_head(conn: &rusqlite::Connection, chain: &str) -> rusqlite::Result<(i64, String)> {
    use rusqlite::OptionalExtension;
    let row = conn.query_row(CHAIN_HEAD, [chain], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    Ok(row.unwrap_or_else(|| (0, GENESIS_HASH.to_string())))
}

/// The unnamed chain's head through sqlx, for sealing old records at open, before the writer
/// starts.
async fn chain_head_sqlx(conn: &mut sqlx::SqliteConnection) -> StoreResult<(i64, String)> {
    let row = sqlx::query(CHAIN_HEAD).bind("").fetch_optional(&mut *conn).await?;
    Ok(match row {
        Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
        None => (0, GENESIS_HASH.to_string()),
    })
}
