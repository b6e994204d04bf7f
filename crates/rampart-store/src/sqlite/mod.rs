//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a committed
//! audit entry survives a crash of the process or the machine. One module per store area.

mod access;
mod accounts;
mod activation;
mod audit;
mod directory;
mod inventory;
mod mfa;
mod nodes;
mod recording;
mod shareable;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Store, StoreError, StoreResult};
use audit::seal_unchained_audit;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Appends go to the audit chain's one writer (`audit::audit_writer`, group commit, on
    /// a thread of its own, joined at close so that no queued record is lost); `None` once
    /// the store is closed.
    audit_writer: std::sync::Mutex<Option<audit::AuditWriter>>,
    /// Reads every new connection makes, kept between writes (`cache`).
    cache: crate::cache::ReadCache,
    /// The chain this process appends to (`AuditStore::set_audit_chain`).
    audit_chain_name: std::sync::RwLock<Option<String>>,
    /// Events for this process's subscribers (one node: nothing crosses processes).
    events: tokio::sync::broadcast::Sender<crate::StoreEvent>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file, applies pending migrations, and seals
    /// audit records written before the chain existed into it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, std::sync::Arc::new(crate::LocalInvalidation::default())).await
    }

    /// [`SqliteStore::open`] with the read cache invalidated by `invalidation`.
    pub async fn open_with(
        path: &Path,
        invalidation: std::sync::Arc<dyn crate::Invalidation>,
    ) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        // Records from before the hash chain are sealed before the writer takes over.
        seal_unchained_audit(&pool).await?;
        let audit_writer = audit::start_audit_writer(path)?;
        let events = tokio::sync::broadcast::channel(1024).0;
        let invalidation = std::sync::Arc::new(crate::invalidation::AnnouncedInvalidation::new(
            invalidation,
            events.clone(),
        ));
        Ok(SqliteStore {
            pool,
            audit_writer: std::sync::Mutex::new(Some(audit_writer)),
            audit_chain_name: std::sync::RwLock::new(None),
            cache: crate::cache::ReadCache::new(invalidation),
            events,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// Waits for the audit writer to finish what it was given, then closes the pool,
    /// checkpointing the WAL.
    async fn close(&self) {
        // The writer ends once it has written every record queued before this point.
        let writer = self.audit_writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(audit::AuditWriter { jobs, thread }) = writer {
            drop(jobs);
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the audit writer ended abnormally");
            }
        }
        self.pool.close().await;
    }
}

/// Fixed-width UTC timestamps, so text order is time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp '{s}': {e}")))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
pub(crate) fn conflict(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| if is_unique_violation(&e) { StoreError::Conflict(what()) } else { e.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditFilter;
    use crate::prelude::*;
    use rampart_core::{AuditEntry, AuditEvent, AuditResult, BastionSettings, ResourceId};

    /// Closing the store under appends in flight: every append answered with an id is
    /// durable, in one whole chain, and one made after the close is refused with a reason.
    /// (That `close` joins the writer is not observable here: the writer empties its queue
    /// well before a second store could read it; tried by leaving the join out.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_answered_before_close_are_all_written() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("rampart.db");
        let mut written = 0;
        let chain;
        {
            let store = std::sync::Arc::new(SqliteStore::open(&path).await?);
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..200u16 {
                let store = store.clone();
                tasks.spawn(async move {
                    let mut entry =
                        AuditEntry::new(Utc::now(), AuditEvent::ConnectionClose, AuditResult::Closed);
                    entry.target_port = Some(n);
                    store.append_audit(&entry).await
                });
            }
            // Close once the first append is answered, with the others queued or on their way.
            let mut answers = Vec::new();
            if let Some(first) = tasks.join_next().await {
                answers.push(first);
            }
            store.close().await;
            let reopened = SqliteStore::open(&path).await?;
            chain = reopened.audit_chain().await?;
            while let Some(done) = tasks.join_next().await {
                answers.push(done);
            }
            for done in answers {
                match done.map_err(|e| StoreError::Corrupt(e.to_string()))? {
                    Ok(_) => written += 1,
                    Err(StoreError::AuditWrite(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let late = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
            assert!(
                matches!(store.append_audit(&late).await, Err(StoreError::AuditWrite(_))),
                "a closed store takes no more records, and says so"
            );
        }
        assert_eq!(
            rampart_core::verify_chain(&chain).ok(),
            Some(written),
            "every answered append is written, in one whole chain"
        );
        Ok(())
    }

    /// The read cache serves what it read until its invalidation moves on, whoever moves it:
    /// a shared backend's listener calls `invalidate` when another process wrote.
    #[tokio::test]
    async fn the_cache_follows_its_invalidation() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("rampart.db");
        let invalidation = std::sync::Arc::new(crate::LocalInvalidation::default());
        let store = SqliteStore::open_with(&path, invalidation.clone()).await?;
        store.create_subscription("sub1", "default").await?;
        let id = ResourceId::bastion("sub1", "rg1", "b1");
        store.create_bastion(&id, &BastionSettings::new_default()).await?;
        assert!(!store.bastion(&id).await?.expect("bastion").settings.enable_ip_connect);
        // Another writer changes the setting behind this store's back.
        let other = SqliteStore::open(&path).await?;
        let mut settings = BastionSettings::new_default();
        settings.enable_ip_connect = true;
        other.update_bastion(&id, &settings).await?;
        other.close().await;
        assert!(
            !store.bastion(&id).await?.expect("bastion").settings.enable_ip_connect,
            "served from the cache"
        );
        crate::Invalidation::invalidate(invalidation.as_ref());
        assert!(
            store.bastion(&id).await?.expect("bastion").settings.enable_ip_connect,
            "read again once invalidated"
        );
        store.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn bastions_and_audit_survive_reopening() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("rampart.db");
        let id = ResourceId::bastion("sub1", "rg1", "b1");
        {
            let store = SqliteStore::open(&path).await?;
            store.create_subscription("sub1", "default").await?;
            let mut settings = BastionSettings::new_default();
            settings.reachable_networks = vec!["10.0.0.0/8".parse().expect("cidr")];
            store.create_bastion(&id, &settings).await?;
            let dup = store.create_bastion(&id, &settings).await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))));
            let mut entry = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Refused);
            entry.reason_code = Some("NativeClientDisabled".into());
            entry.target_port = Some(22);
            store.append_audit(&entry).await?;
            store.close().await;
        }
        let store = SqliteStore::open(&path).await?;
        let b = store.bastion(&ResourceId::bastion("sub1", "RG1", "B1")).await?.expect("bastion kept");
        assert_eq!(b.settings.reachable_networks.len(), 1);
        let audit = store.list_audit(&AuditFilter::default()).await?;
        assert_eq!(rampart_core::verify_chain(&store.audit_chain().await?).ok(), Some(1));
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].reason_code.as_deref(), Some("NativeClientDisabled"));
        assert_eq!(audit[0].target_port, Some(22));
        Ok(())
    }
}
