//! The audit log: append-only and hash-chained (`rampart_core::audit::chain_hash`).

use std::time::Duration;

use async_trait::async_trait;
use rampart_core::audit::GENESIS_HASH;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, chain_hash};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use tokio::sync::{mpsc, oneshot};

use super::PostgresStore;
use crate::{AuditFilter, AuditStore, StoreError, StoreResult};

/// The advisory locks (this number and the chain name's hash) that make one appender at a
/// time extend a chain: each node appends to its own, so nodes never wait on each other; two
/// processes given one name wait their turn instead of forking it.
const CHAIN_LOCKS: i32 = 0x7261_6d70;
/// Most records one transaction takes.
const MAX_BATCH: usize = 256;
/// How long a batch waits for a connection: the pool's own acquire timeout, and much less
/// right after the database was found away.
const ACQUIRE: Duration = Duration::from_secs(5);
const AWAY_ACQUIRE: Duration = Duration::from_millis(250);

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn audit_from_row(row: &PgRow) -> StoreResult<AuditEntry> {
    let event: String = row.try_get("event")?;
    let result: String = row.try_get("result")?;
    let port: Option<i32> = row.try_get("target_port")?;
    Ok(AuditEntry {
        id: Some(row.try_get("id")?),
        time: row.try_get("time")?,
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
        seq: Some(row.try_get("seq")?),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// An append waiting for the writer: the entry and where its id (or error) goes.
pub(super) struct AuditJob {
    entry: AuditEntry,
    done: oneshot::Sender<StoreResult<i64>>,
}

#[derive(Debug)]
pub(super) struct AuditWriter {
    pub(super) jobs: mpsc::UnboundedSender<AuditJob>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for AuditJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditJob")
    }
}

pub(super) fn start_audit_writer(pool: PgPool) -> AuditWriter {
    let (jobs, queue) = mpsc::unbounded_channel();
    let task = tokio::spawn(audit_writer(pool, queue));
    AuditWriter { jobs, task }
}

/// The writer (group commit): every append waiting when it is free goes into one
/// transaction. It ends when every sender is gone (the store closed), after writing what was
/// queued.
async fn audit_writer(pool: PgPool, mut jobs: mpsc::UnboundedReceiver<AuditJob>) {
    // While the database is away, each batch would wait the pool's whole acquire timeout
    // behind the one before: after one such failure, the next batches wait briefly.
    let mut away = false;
    while let Some(first) = jobs.recv().await {
        let acquire = if away { AWAY_ACQUIRE } else { ACQUIRE };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let written = write_batch(&pool, &batch, acquire).await;
        away = matches!(&written, Err(e) if is_unavailable(e));
        match written {
            Ok(ids) => {
                for (job, id) in batch.into_iter().zip(ids) {
                    let _ = job.done.send(Ok(id));
                }
            }
            // One record may be what failed: the others are written one by one.
            Err(e) if batch.len() > 1 && !is_unavailable(&e) => {
                tracing::warn!(error = %e, records = batch.len(), "an audit batch failed; writing its records one by one");
                for job in batch {
                    let answer = write_batch(&pool, std::slice::from_ref(&job), acquire)
                        .await
                        .map(|ids| ids.first().copied().unwrap_or_default())
                        .map_err(|e| failure(&e));
                    let _ = job.done.send(answer);
                }
            }
            Err(e) => {
                let answer = failure(&e);
                for job in batch {
                    let _ = job.done.send(Err(match &answer {
                        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
                        _ => StoreError::AuditWrite("cannot append to the audit log".into()),
                    }));
                }
            }
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P")))
}

/// What the callers of a failed append are told: the database away is "unavailable" (try
/// again shortly), anything else a failed write; logged once here.
fn failure(e: &sqlx::Error) -> StoreError {
    tracing::error!(error = %e, "cannot append to the audit log");
    if is_unavailable(e) {
        StoreError::Unavailable("the audit log's database is unavailable".into())
    } else {
        StoreError::AuditWrite("cannot append to the audit log".into())
    }
}

/// `e` with every NUL character replaced: PostgreSQL's text cannot hold one (SQLite's can), and
/// one record a client filled must not fail the records appended with it. Replaced before the
/// hash is taken, so the chain verifies.
fn storable(e: &AuditEntry) -> AuditEntry {
    let clean = |v: &Option<String>| {
        v.as_ref().map(|s| if s.contains('\0') { s.replace('\0', "\u{FFFD}") } else { s.clone() })
    };
    AuditEntry {
        user: clean(&e.user),
        client_address: clean(&e.client_address),
        bastion_id: clean(&e.bastion_id),
        target_ip: clean(&e.target_ip),
        tunnel_id: clean(&e.tunnel_id),
        connection_id: clean(&e.connection_id),
        reason_code: clean(&e.reason_code),
        reason: clean(&e.reason),
        user_agent: clean(&e.user_agent),
        protocol: clean(&e.protocol),
        target_resource_id: clean(&e.target_resource_id),
        chain: clean(&e.chain),
        ..e.clone()
    }
}

/// The chain an entry goes to ('' is the unnamed one).
fn chain_of(e: &AuditEntry) -> &str {
    e.chain.as_deref().unwrap_or_default()
}

/// Writes `batch` in one transaction, each record after its chain's head, under that chain's
/// advisory lock (held until commit; chains locked in name order, so two writers never wait
/// on each other in a cycle). The head is read under the lock every time: another process
/// may have appended. Ids come from a sequence: they order records, the chains link them.
async fn write_batch(pool: &PgPool, batch: &[AuditJob], acquire: Duration) -> Result<Vec<i64>, sqlx::Error> {
    // Only the wait for a connection is cut short: nothing has been sent yet, so a batch
    // given up here is certainly not written.
    let mut tx =
        tokio::time::timeout(acquire, pool.begin()).await.map_err(|_| sqlx::Error::PoolTimedOut)??;
    let mut chains: Vec<&str> = batch.iter().map(|j| chain_of(&j.entry)).collect();
    chains.sort_unstable();
    chains.dedup();
    let mut ids = vec![0i64; batch.len()];
    for chain in chains {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(CHAIN_LOCKS)
            .bind(chain)
            .execute(&mut *tx)
            .await?;
        let head =
            sqlx::query("SELECT seq, hash FROM audit_records WHERE chain = $1 ORDER BY seq DESC LIMIT 1")
                .bind(chain)
                .fetch_optional(&mut *tx)
                .await?;
        let (mut seq, mut prev): (i64, String) = match head {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, GENESIS_HASH.to_string()),
        };
        for (i, AuditJob { entry, .. }) in batch.iter().enumerate() {
            if chain_of(entry) != chain {
                continue;
            }
            let e = &storable(entry);
            seq += 1;
            let hash = chain_hash(&prev, seq, e);
            ids[i] = insert(&mut tx, e, chain, seq, &prev, &hash).await?;
            prev = hash;
        }
    }
    tx.commit().await?;
    Ok(ids)
}

async fn insert(
    tx: &mut sqlx::PgConnection,
    e: &AuditEntry,
    chain: &str,
    seq: i64,
    prev: &str,
    hash: &str,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO audit_records (id, time, event, \"user\", client_address, bastion_id, target_ip,
           target_port, tunnel_id, connection_id, result, reason_code, reason,
           bytes_to_target, bytes_from_target, duration_ms, user_agent, protocol,
           target_resource_id, chain, seq, prev_hash, hash)
         VALUES (nextval('audit_records_id_seq'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
           $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
         RETURNING id",
    )
    .bind(e.time)
    .bind(e.event.as_str())
    .bind(&e.user)
    .bind(&e.client_address)
    .bind(&e.bastion_id)
    .bind(&e.target_ip)
    .bind(e.target_port.map(i32::from))
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
    .bind(chain)
    .bind(seq)
    .bind(prev)
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    row.try_get("id")
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<i64> {
        let (done, result) = oneshot::channel();
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
             WHERE ($1::timestamptz IS NULL OR time >= $1) AND ($2::text IS NULL OR \"user\" = $2)
               AND ($3::text IS NULL OR result = $3)
               AND ($4::text IS NULL OR target_ip = $4 OR target_resource_id = $4)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(f.since)
        .bind(&f.user)
        .bind(&f.result)
        .bind(&f.target)
        .bind(i64::from(f.limit.unwrap_or(1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_chain(&self) -> StoreResult<Vec<AuditEntry>> {
        let rows =
            sqlx::query("SELECT * FROM audit_records ORDER BY chain, seq").fetch_all(&self.pool).await?;
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
             WHERE o.chain = $1 AND o.event = 'connection-open' AND o.result = 'allowed'
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

    fn set_audit_chain(&self, node: &str) {
        *self.audit_chain_name.write().unwrap_or_else(|p| p.into_inner()) =
            Some(node.to_string()).filter(|n| !n.is_empty());
    }

    async fn integrity_check(&self) -> StoreResult<()> {
        // PostgreSQL checks its own pages; what the gateway can check is that it answers.
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
