//! Shared secrets, nodes, their live sessions, and events between nodes (`LISTEN`/`NOTIFY`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgRow};
use tokio::sync::{broadcast, mpsc};

use super::PostgresStore;
use crate::nodes::{LiveSessionRecord, NodeRecord, NodeState, NodeStore, Reaped, StoreEvent};
use crate::{Invalidation, StoreError, StoreResult};

/// The channel every node listens on.
const CHANNEL: &str = "rampart_events";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn session_from_row(r: &PgRow) -> StoreResult<LiveSessionRecord> {
    let port: i32 = r.try_get("target_port")?;
    Ok(LiveSessionRecord {
        id: r.try_get("id")?,
        node: r.try_get("node")?,
        user: r.try_get("user")?,
        client: r.try_get("client")?,
        bastion_id: r.try_get("bastion_id")?,
        protocol: r.try_get("protocol")?,
        target_ip: r.try_get("target_ip")?,
        target_port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?,
        target_resource_id: r.try_get("target_resource_id")?,
        started_at: r.try_get("started_at")?,
        bytes_to_target: u64_of(r.try_get("bytes_to_target")?),
        bytes_from_target: u64_of(r.try_get("bytes_from_target")?),
    })
}

/// The cache's invalidation on PostgreSQL: this process's generation, moved on by its own
/// writes at once and by every node's writes through `NOTIFY` (the listener).
#[derive(Debug)]
pub(super) struct NotifyingInvalidation {
    local: Arc<dyn Invalidation>,
    notify: mpsc::UnboundedSender<()>,
}

impl Invalidation for NotifyingInvalidation {
    fn generation(&self) -> u64 {
        self.local.generation()
    }

    fn invalidate(&self) {
        self.local.invalidate();
        let _ = self.notify.send(());
    }
}

/// Starts the notifier (this node's cache invalidations to every node, coalesced) and the
/// listener (every node's events to this one's subscribers and cache).
pub(super) async fn start_events(
    pool: PgPool,
    local: Arc<dyn Invalidation>,
) -> (Arc<NotifyingInvalidation>, broadcast::Sender<StoreEvent>, Vec<tokio::task::JoinHandle<()>>) {
    let (notify, mut pending) = mpsc::unbounded_channel::<()>();
    let (events, _) = broadcast::channel(1024);
    let notifier = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let payload = serde_json::to_string(&StoreEvent::CacheInvalidated).unwrap_or_default();
            while pending.recv().await.is_some() {
                // Invalidations waiting together go out as one.
                while pending.try_recv().is_ok() {}
                if let Err(e) =
                    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await
                {
                    tracing::warn!(error = %e, "cannot tell the other nodes about a change");
                }
            }
        })
    };
    let (listening, started) = tokio::sync::oneshot::channel();
    let listener = {
        let events = events.clone();
        let local = local.clone();
        tokio::spawn(listen(pool, local, events, Some(listening)))
    };
    // Events published once the store is open reach it: wait (a little) for the LISTEN.
    if tokio::time::timeout(Duration::from_secs(5), started).await.is_err() {
        tracing::warn!("not yet listening for other nodes' events; going on, and retrying");
    }
    (Arc::new(NotifyingInvalidation { local, notify }), events, vec![notifier, listener])
}

/// Receives every node's events. After losing the connection (the database restarted), what
/// was missed is unknown: the cache is dropped and subscribers are told so.
async fn listen(
    pool: PgPool,
    local: Arc<dyn Invalidation>,
    events: broadcast::Sender<StoreEvent>,
    mut listening: Option<tokio::sync::oneshot::Sender<()>>,
) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for other nodes' events; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::debug!(error = %e, "cannot listen for other nodes' events; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        local.invalidate();
        let _ = events.send(StoreEvent::CacheInvalidated);
        if let Some(tell) = listening.take() {
            let _ = tell.send(());
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match serde_json::from_str::<StoreEvent>(n.payload()) {
                    Ok(event) => {
                        if event == StoreEvent::CacheInvalidated {
                            local.invalidate();
                        }
                        let _ = events.send(event);
                    }
                    Err(e) => tracing::warn!(error = %e, "an event from another node is not understood"),
                },
                // The connection was lost: listen again on a new one, and drop the cache only
                // once listening (a read in between would refill it with what a missed
                // notification would have dropped).
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "lost the event listener; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl NodeStore for PostgresStore {
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO shared_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .bind(Utc::now())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn register_node(
        &self,
        name: &str,
        address: &str,
        instance: &str,
        alive_within: Duration,
    ) -> StoreResult<()> {
        // The database's clock, as the heartbeats'.
        let taken = sqlx::query(
            "INSERT INTO nodes (name, address, state, started_at, last_heartbeat, sessions, instance)
             VALUES ($1, $2, 'active', now(), now(), 0, $3)
             ON CONFLICT (name) DO UPDATE SET address = $2, state = 'active', started_at = now(),
               last_heartbeat = now(), sessions = 0, instance = $3
             WHERE nodes.instance = $3 OR nodes.state NOT IN ('active', 'draining')
               OR nodes.last_heartbeat < now() - make_interval(secs => $4)
             RETURNING name",
        )
        .bind(name)
        .bind(address)
        .bind(instance)
        // Zero: the name is taken whatever the clocks say.
        .bind(if alive_within.is_zero() { -3.2e9 } else { alive_within.as_secs_f64() })
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(());
        }
        let row = sqlx::query(
            "SELECT address, EXTRACT(EPOCH FROM now() - last_heartbeat)::float8 AS ago FROM nodes WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Err(crate::nodes::name_taken(name, &row.try_get::<String, _>("address")?, row.try_get("ago")?))
    }

    async fn heartbeat(
        &self,
        name: &str,
        instance: &str,
        state: NodeState,
        sessions: &[LiveSessionRecord],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The database's clock, as the reaper's: nodes' own clocks may differ.
        let beat = sqlx::query(
            "UPDATE nodes SET state = $2, last_heartbeat = now(), sessions = $3 WHERE name = $1 AND instance = $4",
        )
        .bind(name)
        .bind(state.as_str())
        .bind(i32::try_from(sessions.len()).unwrap_or(i32::MAX))
        .bind(instance)
        .execute(&mut *tx)
        .await?;
        if beat.rows_affected() == 0 {
            return Err(crate::nodes::name_lost(name));
        }
        sqlx::query("DELETE FROM live_sessions WHERE node = $1").bind(name).execute(&mut *tx).await?;
        if !sessions.is_empty() {
            // One statement for all of them: a heartbeat costs the same few round trips
            // however many sessions the node holds.
            let col =
                |f: &dyn Fn(&LiveSessionRecord) -> String| sessions.iter().map(f).collect::<Vec<String>>();
            sqlx::query(
                "INSERT INTO live_sessions (id, node, \"user\", client, bastion_id, protocol, target_ip, target_port,
                   target_resource_id, started_at, bytes_to_target, bytes_from_target)
                 SELECT id, $2, u, c, b, p, ip, port, rid, st, up, down
                 FROM UNNEST($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[],
                             $9::text[], $10::timestamptz[], $11::bigint[], $12::bigint[])
                      AS t(id, u, c, b, p, ip, port, rid, st, up, down)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(col(&|s| s.id.clone()))
            .bind(name)
            .bind(col(&|s| s.user.clone()))
            .bind(col(&|s| s.client.clone()))
            .bind(col(&|s| s.bastion_id.clone()))
            .bind(col(&|s| s.protocol.clone()))
            .bind(col(&|s| s.target_ip.clone()))
            .bind(sessions.iter().map(|s| i32::from(s.target_port)).collect::<Vec<i32>>())
            .bind(sessions.iter().map(|s| s.target_resource_id.clone()).collect::<Vec<Option<String>>>())
            .bind(sessions.iter().map(|s| s.started_at).collect::<Vec<DateTime<Utc>>>())
            .bind(sessions.iter().map(|s| i64_of(s.bytes_to_target)).collect::<Vec<i64>>())
            .bind(sessions.iter().map(|s| i64_of(s.bytes_from_target)).collect::<Vec<i64>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let sessions: i32 = r.try_get("sessions")?;
                Ok(NodeRecord {
                    name: r.try_get("name")?,
                    address: r.try_get("address")?,
                    state: NodeState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("node state '{state}'")))?,
                    started_at: r.try_get("started_at")?,
                    last_heartbeat: r.try_get("last_heartbeat")?,
                    sessions: u32::try_from(sessions).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn reap_lost_nodes(&self, silent_for: Duration, except: &str) -> StoreResult<Reaped> {
        let mut tx = self.pool.begin().await?;
        // Row locks: of two nodes reaping at once, the second finds the node already lost.
        let lost: Vec<String> = sqlx::query_scalar(
            "UPDATE nodes SET state = 'lost', sessions = 0
             WHERE state IN ('active', 'draining') AND last_heartbeat < now() - make_interval(secs => $1)
               AND name <> $2 RETURNING name",
        )
        .bind(silent_for.as_secs_f64())
        .bind(except)
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query("DELETE FROM live_sessions WHERE node = ANY($1) RETURNING *")
            .bind(&lost)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let sessions = rows.iter().map(session_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Reaped { nodes: lost, sessions })
    }

    async fn take_sessions(&self, node: &str) -> StoreResult<Vec<LiveSessionRecord>> {
        let rows = sqlx::query("DELETE FROM live_sessions WHERE node = $1 RETURNING *")
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn live_sessions(&self, bastion_id: Option<&str>) -> StoreResult<Vec<LiveSessionRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM live_sessions WHERE ($1::text IS NULL OR bastion_id = $1) ORDER BY started_at, id",
        )
        .bind(bastion_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn publish(&self, event: &StoreEvent) -> StoreResult<()> {
        let payload = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}
