//! Shared secrets, nodes, their live sessions, and events (in-process: SQLite has one node).

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, parse_ts, ts};
use crate::nodes::{LiveSessionRecord, NodeRecord, NodeState, NodeStore, Reaped, StoreEvent};
use crate::{StoreError, StoreResult};

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn session_from_row(r: &SqliteRow) -> StoreResult<LiveSessionRecord> {
    let port: i64 = r.try_get("target_port")?;
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
        started_at: parse_ts(r.try_get("started_at")?)?,
        bytes_to_target: u64_of(r.try_get("bytes_to_target")?),
        bytes_from_target: u64_of(r.try_get("bytes_from_target")?),
    })
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO shared_secrets (name, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = ?1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn register_node(
        &self,
        name: &str,
        address: &str,
        instance: &str,
        alive_within: std::time::Duration,
    ) -> StoreResult<()> {
        let now = Utc::now();
        // Zero: the name is taken whatever the clock says (one node; a clock set back since its
        // last run must not lock it out).
        let alive_since = if alive_within.is_zero() {
            now + chrono::Duration::days(365 * 100)
        } else {
            now - chrono::Duration::from_std(alive_within).unwrap_or(chrono::Duration::days(365))
        };
        let taken = sqlx::query(
            "INSERT INTO nodes (name, address, state, started_at, last_heartbeat, sessions, instance)
             VALUES (?1, ?2, 'active', ?3, ?3, 0, ?4)
             ON CONFLICT (name) DO UPDATE SET address = ?2, state = 'active', started_at = ?3,
               last_heartbeat = ?3, sessions = 0, instance = ?4
             WHERE nodes.instance = ?4 OR nodes.state NOT IN ('active', 'draining') OR nodes.last_heartbeat < ?5
             RETURNING name",
        )
        .bind(name)
        .bind(address)
        .bind(ts(now))
        .bind(instance)
        .bind(ts(alive_since))
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(());
        }
        let row = sqlx::query("SELECT address, last_heartbeat FROM nodes WHERE name = ?1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let (other, beat): (String, String) = (row.try_get("address")?, row.try_get("last_heartbeat")?);
        let ago = now.signed_duration_since(parse_ts(&beat)?).num_milliseconds() as f64 / 1000.0;
        Err(crate::nodes::name_taken(name, &other, ago))
    }

    async fn heartbeat(
        &self,
        name: &str,
        instance: &str,
        state: NodeState,
        sessions: &[LiveSessionRecord],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let beat = sqlx::query(
            "UPDATE nodes SET state = ?2, last_heartbeat = ?3, sessions = ?4 WHERE name = ?1 AND instance = ?5",
        )
        .bind(name)
        .bind(state.as_str())
        .bind(ts(Utc::now()))
        .bind(i64::try_from(sessions.len()).unwrap_or(i64::MAX))
        .bind(instance)
        .execute(&mut *tx)
        .await?;
        if beat.rows_affected() == 0 {
            return Err(crate::nodes::name_lost(name));
        }
        sqlx::query("DELETE FROM live_sessions WHERE node = ?1").bind(name).execute(&mut *tx).await?;
        for s in sessions {
            sqlx::query(
                "INSERT INTO live_sessions (id, node, user, client, bastion_id, protocol, target_ip, target_port,
                   target_resource_id, started_at, bytes_to_target, bytes_from_target)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&s.id)
            .bind(name)
            .bind(&s.user)
            .bind(&s.client)
            .bind(&s.bastion_id)
            .bind(&s.protocol)
            .bind(&s.target_ip)
            .bind(i64::from(s.target_port))
            .bind(&s.target_resource_id)
            .bind(ts(s.started_at))
            .bind(i64_of(s.bytes_to_target))
            .bind(i64_of(s.bytes_from_target))
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
                let sessions: i64 = r.try_get("sessions")?;
                Ok(NodeRecord {
                    name: r.try_get("name")?,
                    address: r.try_get("address")?,
                    state: NodeState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("node state '{state}'")))?,
                    started_at: parse_ts(r.try_get("started_at")?)?,
                    last_heartbeat: parse_ts(r.try_get("last_heartbeat")?)?,
                    sessions: u32::try_from(sessions).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn reap_lost_nodes(&self, silent_for: std::time::Duration, except: &str) -> StoreResult<Reaped> {
        let before = Utc::now() - chrono::Duration::from_std(silent_for).unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        let lost: Vec<String> = sqlx::query_scalar(
            "UPDATE nodes SET state = 'lost', sessions = 0
             WHERE state IN ('active', 'draining') AND last_heartbeat < ?1 AND name <> ?2 RETURNING name",
        )
        .bind(ts(before))
        .bind(except)
        .fetch_all(&mut *tx)
        .await?;
        let mut sessions = Vec::new();
        for node in &lost {
            let rows = sqlx::query("DELETE FROM live_sessions WHERE node = ?1 RETURNING *")
                .bind(node)
                .fetch_all(&mut *tx)
                .await?;
            for r in &rows {
                sessions.push(session_from_row(r)?);
            }
        }
        tx.commit().await?;
        Ok(Reaped { nodes: lost, sessions })
    }

    async fn take_sessions(&self, node: &str) -> StoreResult<Vec<LiveSessionRecord>> {
        let rows = sqlx::query("DELETE FROM live_sessions WHERE node = ?1 RETURNING *")
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn live_sessions(&self, bastion_id: Option<&str>) -> StoreResult<Vec<LiveSessionRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM live_sessions WHERE (?1 IS NULL OR bastion_id = ?1) ORDER BY started_at, id",
        )
        .bind(bastion_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn publish(&self, event: &StoreEvent) -> StoreResult<()> {
        // One node: the event goes to this process's subscribers only.
        let _ = self.events.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}
