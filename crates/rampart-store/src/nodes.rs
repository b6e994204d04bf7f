//! What several gateway nodes share through the store: secrets every node signs with, the
//! nodes themselves (heartbeats), the live sessions each holds, and events pushed to every
//! node (cache invalidation, a session to stop). With SQLite there is one node and events stay
//! in the process; PostgreSQL carries them between nodes with `LISTEN`/`NOTIFY`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use crate::{StoreError, StoreResult};

/// A node's state as the others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Active,
    /// Refuses new work; its sessions run on to their end or the drain deadline.
    Draining,
    /// Stopped cleanly.
    Stopped,
    /// No heartbeat within the bound: its sessions were ended as "node lost".
    Lost,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Stopped => "stopped",
            NodeState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<NodeState> {
        [NodeState::Active, NodeState::Draining, NodeState::Stopped, NodeState::Lost]
            .into_iter()
            .find(|n| n.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub name: String,
    /// Where it listens (as it reported).
    pub address: String,
    pub state: NodeState,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub sessions: u32,
}

/// A live session as the store shows it to every node: written by its node with each
/// heartbeat (so byte counts are batched), removed when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSessionRecord {
    pub id: String,
    pub node: String,
    pub user: String,
    pub client: String,
    pub bastion_id: String,
    pub protocol: String,
    pub target_ip: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
}

/// What one reaper took: the nodes it found lost, and the sessions they had reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub nodes: Vec<String>,
    pub sessions: Vec<LiveSessionRecord>,
}

/// Pushed to every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StoreEvent {
    /// A cached table changed: drop cached reads.
    CacheInvalidated,
    /// Stop this session wherever it runs, with this reason (a disconnect, a revocation).
    StopSession { id: String, reason: String, by: String },
    /// The named node drains: it refuses new work and stops once its sessions end.
    DrainNode { name: String, by: String },
}

/// Another running process holds the node name.
pub(crate) fn name_taken(name: &str, address: &str, seconds_ago: f64) -> StoreError {
    StoreError::Conflict(format!(
        "a node named '{name}' is running at {address} (last heartbeat {seconds_ago:.1} s ago); \
         give each node its own name (--node-name)"
    ))
}

/// Another process took this node's name while it was silent.
pub(crate) fn name_lost(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "another process registered as node '{name}' while this one was silent (taken for lost); \
         this node's reports stop"
    ))
}

#[async_trait]
pub trait NodeStore: Send + Sync {
    /// The secret every node shares under `name`: the stored one, or `candidate` if none was
    /// stored yet (the first writer wins, also between nodes starting together).
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String>;

    /// Registers a node (again) as held by `instance` (this process): its address, state
    /// active, heartbeat now. `Conflict`, naming the other, when another instance holds the
    /// name and heartbeated within `alive_within` (two processes given one name; a restarted
    /// node's previous run is held until it has been silent that long). A zero `alive_within`
    /// takes the name whatever the other's heartbeat (one node).
    async fn register_node(
        &self,
        name: &str,
        address: &str,
        instance: &str,
        alive_within: std::time::Duration,
    ) -> StoreResult<()>;
    /// A heartbeat of the node as held by `instance`: state, session count, and the node's live
    /// sessions as they are now (replacing what it reported before). `Conflict` when another
    /// instance has taken the name since (this one was silent and taken for lost): nothing is
    /// written.
    async fn heartbeat(
        &self,
        name: &str,
        instance: &str,
        state: NodeState,
        sessions: &[LiveSessionRecord],
    ) -> StoreResult<()>;
    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>>;
    /// Marks every active or draining node silent for longer than `silent_for` (other than
    /// `except`) as lost, and removes and returns those nodes and their sessions: each lost
    /// node, and its sessions, go to exactly one caller. Time is the store's own clock where
    /// it has one (heartbeats are stamped by it too), so nodes' clocks may differ.
    async fn reap_lost_nodes(&self, silent_for: std::time::Duration, except: &str) -> StoreResult<Reaped>;
    /// Removes and returns the sessions `node` reported (a restarted node's leftovers), each
    /// to one caller, whoever else reaps at the same time.
    async fn take_sessions(&self, node: &str) -> StoreResult<Vec<LiveSessionRecord>>;
    /// Live sessions of every node, on one bastion (case-insensitive) or all.
    async fn live_sessions(&self, bastion_id: Option<&str>) -> StoreResult<Vec<LiveSessionRecord>>;

    /// Pushes `event` to every node (this one included).
    async fn publish(&self, event: &StoreEvent) -> StoreResult<()>;
    /// Events pushed from now on. A receiver that lags, or a node that lost its connection
    /// to the store for a while, gets `CacheInvalidated` (what it missed is unknown).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;
}
