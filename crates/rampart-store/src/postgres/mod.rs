//! The PostgreSQL store: the same traits as SQLite's, for several gateway processes sharing
//! one database. One module per store area; migrations in `migrations/postgres`.
//!
//! Names compare without regard to case through a nondeterministic ICU collation (`nocase`),
//! as SQLite's `COLLATE NOCASE` does. Audit appends go through one task that writes every
//! append waiting in one transaction (group commit), under an advisory lock, so appends from
//! several processes still form one chain in id order.

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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::cache::ReadCache;
use crate::{Invalidation, LocalInvalidation, Store, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Appends go to the audit writer task (`audit::audit_writer`); `None` once closed.
    audit_writer: std::sync::Mutex<Option<audit::AuditWriter>>,
    /// The chain this process appends to (`AuditStore::set_audit_chain`).
    audit_chain_name: std::sync::RwLock<Option<String>>,
    cache: ReadCache,
    /// Every node's events (`nodes::listen`), for this process's subscribers.
    events: tokio::sync::broadcast::Sender<crate::StoreEvent>,
    /// The notifier and the listener.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`) and applies pending migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, Arc::new(LocalInvalidation::default())).await
    }

    /// [`PostgresStore::connect`] with the read cache invalidated by `invalidation`, which this
    /// store also moves on when any node writes (through `NOTIFY`).
    pub async fn connect_with(url: &str, invalidation: Arc<dyn Invalidation>) -> StoreResult<Self> {
        let options: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| StoreError::Unavailable(format!("store URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A stopped database is an answer within seconds, never a hang.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
        MIGRATOR.run(&pool).await?;
        let audit_writer = audit::start_audit_writer(pool.clone());
        let (invalidation, events, tasks) = nodes::start_events(pool.clone(), invalidation).await;
        Ok(PostgresStore {
            pool,
            audit_writer: std::sync::Mutex::new(Some(audit_writer)),
            audit_chain_name: std::sync::RwLock::new(None),
            cache: ReadCache::new(invalidation),
            events,
            tasks,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    /// Waits for the audit writer to write what it was given, then closes the pool.
    async fn close(&self) {
        let writer = self.audit_writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(audit::AuditWriter { jobs, task }) = writer {
            drop(jobs);
            if task.await.is_err() {
                tracing::error!("the audit writer ended abnormally");
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        self.pool.close().await;
    }
}

impl Drop for PostgresStore {
    /// A store dropped without `close` (a failed start) stops its background tasks too.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
pub(crate) fn conflict(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| if is_unique_violation(&e) { StoreError::Conflict(what()) } else { e.into() }
}
