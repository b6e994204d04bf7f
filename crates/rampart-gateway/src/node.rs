//! This gateway as one node of several sharing a store: it registers itself, heartbeats with
//! its live sessions (their byte counts batched into the heartbeat), ends the sessions of nodes
//! that stopped heartbeating ("node lost", close records written for them), and stops its own
//! sessions when any node asks (a disconnect made through another node).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, EndReason};
use rampart_store::{LiveSessionRecord, NodeState, Store, StoreError, StoreEvent};
use tokio::sync::Notify;

use crate::lifecycle::Session;
use crate::server::Gateway;

/// How often a node heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node silent this long is lost: its sessions are ended by another node.
pub const LOST_AFTER: Duration = Duration::from_secs(5);

/// What the store shows of a live session of this node.
pub fn record_of(node: &str, s: &Session) -> LiveSessionRecord {
    LiveSessionRecord {
        id: s.id.clone(),
        node: node.to_string(),
        user: s.user.clone(),
        client: s.client.clone(),
        bastion_id: s.bastion_id.clone(),
        protocol: s.protocol.as_str().to_string(),
        target_ip: s.target_ip.clone(),
        target_port: s.target_port,
        target_resource_id: s.target_resource_id.clone(),
        started_at: s.started_at,
        bytes_to_target: s.counters.tunnel_to_socket.load(Ordering::Relaxed),
        bytes_from_target: s.counters.socket_to_tunnel.load(Ordering::Relaxed),
    }
}

/// Registers this node as held by `instance` (a fresh heartbeat first, so no reaper takes it
/// for lost meanwhile); sessions a previous run of it left in the store (it was killed) are
/// taken, and closed in the audit log as ended by the restart when `shared` (SQLite's start
/// closes every connection left open already).
///
/// On a shared store a name is held by one running process: while another process holding it
/// heartbeats (a restart's previous run, killed a moment ago, or a second node given the same
/// name) this waits up to [`LOST_AFTER`] and a heartbeat for it to go silent, then fails naming
/// the other.
pub async fn register(
    store: &Arc<dyn Store>,
    node: &str,
    instance: &str,
    address: &str,
    shared: bool,
) -> Result<(), StoreError> {
    let alive_within = if shared { LOST_AFTER } else { Duration::ZERO };
    let began = std::time::Instant::now();
    loop {
        match store.register_node(node, address, instance, alive_within).await {
            Ok(()) => break,
            Err(StoreError::Conflict(why)) if began.elapsed() < LOST_AFTER + HEARTBEAT => {
                if began.elapsed() < HEARTBEAT / 2 {
                    tracing::warn!(%why, "waiting for the node's name to be free (a previous run seen silent)");
                }
                tokio::time::sleep(HEARTBEAT / 2).await;
            }
            Err(e) => return Err(e),
        }
    }
    let left = store.take_sessions(node).await?;
    if shared {
        close_records(store.as_ref(), &left, "ended by gateway restart", None).await;
        close_unreported(store.as_ref(), node, "ended by gateway restart", None).await;
    }
    Ok(())
}

/// Close records for connections opened in `node`'s audit chain and never closed: sessions it
/// had not reported yet when it was lost (started within its last heartbeat), or that its
/// previous run left. Written after the reported ones', which carry their byte counts.
async fn close_unreported(store: &dyn Store, node: &str, reason: &str, code: Option<&str>) {
    let open = match store.unclosed_connections_of(node).await {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %e, %node, "cannot look for connections left open by a node");
            return;
        }
    };
    for o in &open {
        let mut close = o.closing(Utc::now(), reason, code);
        close.duration_ms = u64::try_from(close.time.signed_duration_since(o.time).num_milliseconds()).ok();
        tracing::warn!(session = o.connection_id.as_deref().unwrap_or_default(), %node, "closing a connection a node left open");
        if let Err(e) = store.append_audit(&close).await {
            tracing::error!(error = %e, "cannot record the end of a connection a node left open");
        }
    }
}

/// Close records for sessions whose node can no longer write them.
async fn close_records(store: &dyn Store, sessions: &[LiveSessionRecord], reason: &str, code: Option<&str>) {
    for s in sessions {
        let mut close = AuditEntry::new(Utc::now(), AuditEvent::ConnectionClose, AuditResult::Closed);
        close.connection_id = Some(s.id.clone());
        close.user = Some(s.user.clone());
        close.client_address = Some(s.client.clone());
        close.bastion_id = Some(s.bastion_id.clone());
        close.target_ip = Some(s.target_ip.clone());
        close.target_port = Some(s.target_port);
        close.target_resource_id = s.target_resource_id.clone();
        close.protocol = Some(s.protocol.clone());
        close.bytes_to_target = Some(s.bytes_to_target);
        close.bytes_from_target = Some(s.bytes_from_target);
        let lasted = Utc::now().signed_duration_since(s.started_at).num_milliseconds();
        close.duration_ms = u64::try_from(lasted).ok();
        close.reason = Some(reason.to_string());
        close.reason_code = code.map(str::to_string);
        if code.is_some() {
            close.result = AuditResult::Failed;
        }
        if let Err(e) = store.append_audit(&close).await {
            tracing::error!(error = %e, session = %s.id, "cannot record the end of a lost session");
        }
    }
}

/// One heartbeat: this node's state and live sessions; then, if `may_reap`, the sessions of
/// nodes gone silent are ended, each by exactly one node.
pub async fn beat(gw: &Gateway, may_reap: bool) -> Result<(), StoreError> {
    let state = if gw.draining.load(Ordering::SeqCst) { NodeState::Draining } else { NodeState::Active };
    let sessions: Vec<LiveSessionRecord> = gw.sessions.all().iter().map(|s| record_of(&gw.node, s)).collect();
    gw.store.heartbeat(&gw.node, &gw.instance, state, &sessions).await?;
    // The store answers again: close records kept while it was away go in now.
    gw.sessions.write_unwritten_closes().await;
    if !may_reap {
        return Ok(());
    }
    let lost = gw.store.reap_lost_nodes(LOST_AFTER, &gw.node).await?;
    for s in &lost.sessions {
        let reason = EndReason::NodeLost { node: s.node.clone() };
        tracing::warn!(session = %s.id, node = %s.node, "ending a session of a lost node");
        close_records(gw.store.as_ref(), std::slice::from_ref(s), &reason.to_string(), Some(reason.code()))
            .await;
    }
    for node in &lost.nodes {
        let reason = EndReason::NodeLost { node: node.clone() };
        close_unreported(gw.store.as_ref(), node, &reason.to_string(), Some(reason.code())).await;
    }
    Ok(())
}

/// Heartbeats until the gateway stops. A node reaps others only once its own heartbeats have
/// gone through for [`LOST_AFTER`]: after the database was away, every node's last heartbeat
/// is old, and none may take the others for lost before they had their chance to beat.
pub async fn heartbeat(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beating_since: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let may_reap = beating_since.is_some_and(|t| t.elapsed() >= LOST_AFTER);
        match beat(&gw, may_reap).await {
            Ok(()) => {
                beating_since.get_or_insert_with(std::time::Instant::now);
            }
            // Another process holds this node's name now (this one was silent and taken for
            // lost): two processes must not report as one node, so this one drains and stops.
            Err(StoreError::Conflict(why)) => {
                tracing::error!(%why, "this node's name was taken; ending its sessions and draining");
                // The process that took the name closed them in the audit log already.
                gw.sessions.stop_all(&EndReason::NodeLost { node: gw.node.clone() });
                gw.drain_requested.notify_one();
                return;
            }
            Err(e) => {
                beating_since = None;
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

/// Follows every node's events: stops this node's sessions that any node asks to stop,
/// drains when asked, and after every change to authorization inputs (a role assignment, a
/// bastion setting, a machine, a user; made through any node) decides again on this node's
/// live sessions, ending those no longer allowed.
pub async fn follow_events(gw: Arc<Gateway>) {
    let changed = Notify::new();
    tokio::join!(
        receive_events(&gw, &changed),
        reauthorize_on_change(&gw, &changed),
        watch_activation_ends(&gw, &changed),
        watch_link_expiry(&gw)
    );
}

async fn receive_events(gw: &Gateway, changed: &Notify) {
    let mut events = gw.store.subscribe();
    loop {
        match events.recv().await {
            Ok(StoreEvent::StopSession { id, reason, by }) => {
                if let Some(session) = gw.sessions.get(&id) {
                    let end = if reason == "revoked" {
                        EndReason::Revoked { detail: format!("by {by}") }
                    } else {
                        EndReason::DisconnectedBy { by }
                    };
                    session.stop(end);
                }
            }
            Ok(StoreEvent::DrainNode { name, by }) => {
                if name.eq_ignore_ascii_case(&gw.node) {
                    tracing::warn!(%by, "this node was asked to drain");
                    gw.drain_requested.notify_one();
                }
            }
            Ok(StoreEvent::CacheInvalidated) => {
                gw.admission.note_change();
                changed.notify_one();
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // What was missed may have been a change.
                tracing::warn!(missed, "missed events from other nodes");
                gw.admission.note_change();
                changed.notify_one();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// How often live sessions are decided on again without a change notice: a backstop should a
/// notice be lost (as the read cache's own age limit is for new connections).
pub const REAUTHORIZE_EVERY: Duration = Duration::from_secs(30);

/// One pass per burst of changes (changes that arrive during a pass cause one more), and one
/// every [`REAUTHORIZE_EVERY`].
async fn reauthorize_on_change(gw: &Gateway, changed: &Notify) {
    let mut backstop = tokio::time::interval(REAUTHORIZE_EVERY);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    backstop.reset();
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = backstop.tick() => {}
        }
        if gw.sessions.count() == 0 {
            continue;
        }
        let stopped = gw.admission.reauthorize_live().await;
        if stopped > 0 {
            tracing::info!(stopped, "ended live sessions whose access was revoked");
        }
    }
}

/// Sessions through a shareable link end within this of the link's expiry.
const LINK_EXPIRY_WATCH: Duration = Duration::from_secs(1);

/// Shareable links expire without any write: this node decides again on its link sessions
/// every second (there are few; nothing is read while there are none).
async fn watch_link_expiry(gw: &Gateway) {
    let mut tick = tokio::time::interval(LINK_EXPIRY_WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if gw.sessions.count() > 0 {
            gw.admission.reauthorize_links().await;
        }
    }
}

/// How often this node looks for activations that ended (their sessions end within this, and
/// a pass).
const ACTIVATION_WATCH: Duration = Duration::from_millis(500);

/// Just-in-time access ends without any write when an activation reaches its end: every node
/// looks for ended activations twice a second and decides again on its live sessions. One
/// node (whichever claims it) records the expiry; the sessions' close records name it.
async fn watch_activation_ends(gw: &Gateway, changed: &Notify) {
    let mut last = Utc::now();
    let mut tick = tokio::time::interval(ACTIVATION_WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Utc::now();
        let ended = match gw.store.activations_ended(last, now).await {
            Ok(ended) => ended,
            // The same window again next time: nothing is skipped while the store is away.
            Err(_) => continue,
        };
        last = now;
        if ended.is_empty() {
            continue;
        }
        for a in ended.iter().filter(|a| a.state == rampart_core::ActivationState::Active) {
            if gw.store.claim_end_record(&a.id).await.unwrap_or(false) {
                let when = a.ends_at.map(|t| t.format("%H:%M:%S UTC").to_string()).unwrap_or_default();
                let what = format!(
                    "expired at {when} after {}",
                    rampart_core::activation::format_duration(a.duration_secs)
                );
                if let Err(e) = crate::api::activation::record(gw, &a.principal_name, None, a, what).await {
                    tracing::warn!(activation = %a.id, error = %e.message, "cannot record an activation's expiry");
                }
            }
        }
        gw.admission.note_change();
        changed.notify_one();
    }
}

/// The last heartbeat: stopped, no sessions.
pub async fn stopped(gw: &Gateway) {
    if let Err(e) = gw.store.heartbeat(&gw.node, &gw.instance, NodeState::Stopped, &[]).await {
        tracing::warn!(error = %e, "cannot tell the other nodes this one stopped");
    }
}
