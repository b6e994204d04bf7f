//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a committed
//! audit entry survives a crash of the process or the machine. One module per store area.

mod access;
mod accounts;
mod audit;
mod cache;
mod inventory;

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
    cache: cache::ReadCache,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file, applies pending migrations, and seals
    /// audit records written before the chain existed into it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
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
        Ok(SqliteStore {
            pool,
            audit_writer: std::sync::Mutex::new(Some(audit_writer)),
            cache: cache::ReadCache::default(),
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

pub(crate) fn json_list(items: impl IntoIterator<Item = String>) -> String {
    serde_json::Value::from(items.into_iter().collect::<Vec<_>>()).to_string()
}

pub(crate) fn parse_json_list(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditFilter;
    use crate::prelude::*;
    use rampart_core::{AuditEntry, AuditEvent, AuditResult, BastionSettings, ResourceId};

    /// Each write to what the read cache holds is seen by the very next read, and the audit
    /// chain stays whole when appends use the remembered head.
    #[tokio::test]
    async fn every_write_is_seen_by_the_next_cached_read() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("rampart.db")).await?;
        store.create_subscription("sub1", "default").await?;
        let id = ResourceId::bastion("sub1", "rg1", "b1");
        store.create_bastion(&id, &BastionSettings::new_default()).await?;
        let user = store.create_user("ann", None, "hash").await?;
        let scope: rampart_core::Scope = "/subscriptions/sub1".parse().expect("scope");
        let assignment = rampart_core::RoleAssignment {
            id: "a1".into(),
            principal_id: user.id.clone(),
            principal_name: "ann".into(),
            role: "Reader".into(),
            scope,
            condition: None,
        };
        store.create_role_assignment(&assignment).await?;
        // Fill the cache, twice over.
        for _ in 0..2 {
            assert!(store.user_by_id(&user.id).await?.is_some());
            assert_eq!(store.role_assignments(Some(&user.id), None).await?.len(), 1);
            assert!(store.custom_role_definitions().await?.is_empty());
            assert!(!store.bastion(&id).await?.expect("bastion").settings.enable_ip_connect);
        }
        let mut settings = BastionSettings::new_default();
        settings.enable_ip_connect = true;
        store.update_bastion(&id, &settings).await?;
        assert!(store.bastion(&id).await?.expect("bastion").settings.enable_ip_connect);
        store.delete_role_assignment("a1").await?;
        assert!(store.role_assignments(Some(&user.id), None).await?.is_empty());
        let role = rampart_core::RoleDefinition {
            name: "Custom".into(),
            description: String::new(),
            actions: vec![],
            not_actions: vec![],
            data_actions: vec![],
            builtin: false,
        };
        store.create_role_definition(&role).await?;
        assert_eq!(store.custom_role_definitions().await?.len(), 1);
        store.delete_user("ann").await?;
        assert!(store.user_by_id(&user.id).await?.is_none());
        store.delete_bastion(&id).await?;
        assert!(store.bastion(&id).await?.is_none());

        for n in 0..5 {
            let mut entry = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Allowed);
            entry.target_port = Some(n);
            store.append_audit(&entry).await?;
        }
        assert_eq!(rampart_core::verify_chain(&store.audit_chain().await?).ok(), Some(5));
        Ok(())
    }

    /// Appends made at once share transactions (group commit) and the chain stays whole and
    /// in order of ids; every caller gets its own record's id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_keep_one_whole_chain() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("rampart.db")).await?);
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..300u16 {
            let store = store.clone();
            tasks.spawn(async move {
                let mut entry = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
                entry.target_port = Some(n);
                store.append_audit(&entry).await.map(|id| (id, n))
            });
        }
        let mut ids = std::collections::HashMap::new();
        while let Some(done) = tasks.join_next().await {
            let (id, n) = done.map_err(|e| StoreError::Corrupt(e.to_string()))??;
            ids.insert(id, n);
        }
        assert_eq!(ids.len(), 300, "every append got its own id");
        let chain = store.audit_chain().await?;
        assert_eq!(rampart_core::verify_chain(&chain).ok(), Some(300));
        for record in &chain {
            let id = record.id.unwrap_or_default();
            assert_eq!(record.target_port, ids.get(&id).copied(), "record {id} is the one its caller got");
        }
        Ok(())
    }

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

    #[tokio::test]
    async fn refresh_token_can_be_used_once() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("r.db")).await?;
        let user = store.create_user("alice", None, "hash").await?;
        store.insert_refresh_token("h1", &user.id, 2_000).await?;
        assert_eq!(store.consume_refresh_token("h1", 1_000).await?, Some(user.id));
        assert_eq!(store.consume_refresh_token("h1", 1_000).await?, None);
        store.insert_refresh_token("h2", "x", 500).await.ok();
        assert_eq!(store.consume_refresh_token("h2", 1_000).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn portal_sessions_end_on_expiry_sign_out_and_password_change() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("r.db")).await?;
        let user = store.create_user("alice", None, "hash").await?;
        let far = Utc::now().timestamp() + 3600;
        store.insert_portal_session("s1", &user.id, far).await?;
        store.insert_portal_session("s2", &user.id, far).await?;
        store.insert_portal_session("old", &user.id, 10).await?;
        assert_eq!(store.portal_session_user("s1", 0).await?, Some(user.id.clone()));
        assert_eq!(store.portal_session_user("old", 11).await?, None);
        store.delete_portal_session("s1").await?;
        assert_eq!(store.portal_session_user("s1", 0).await?, None);
        store.set_password("alice", "new-hash").await?;
        assert_eq!(store.portal_session_user("s2", 0).await?, None, "a new password ends browser sessions");
        Ok(())
    }

    #[tokio::test]
    async fn first_pinned_host_key_wins_until_forgotten() -> StoreResult<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("r.db")).await?;
        assert_eq!(store.pinned_host_key("10.0.0.4:22").await?, None);
        assert_eq!(store.pin_host_key("10.0.0.4:22", "ssh-ed25519 AAAA1").await?, "ssh-ed25519 AAAA1");
        assert_eq!(store.pin_host_key("10.0.0.4:22", "ssh-ed25519 BBBB2").await?, "ssh-ed25519 AAAA1");
        assert!(store.forget_host_key("10.0.0.4:22").await?);
        assert_eq!(store.pin_host_key("10.0.0.4:22", "ssh-ed25519 BBBB2").await?, "ssh-ed25519 BBBB2");
        Ok(())
    }
}
