//! What the browser terminal and the browser desktop share around their own data loops: the
//! durable open record and the live-session entry before the first byte, the keep-alive of
//! the browser's WebSocket, and the close record with bytes and duration.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult};
use tokio::sync::watch;

use crate::server::Gateway;
use crate::sessions::{NewSession, Session};

/// A browser session that has started: registered, its open record written.
pub(crate) struct Started {
    pub session: Arc<Session>,
    pub stop: watch::Receiver<Option<String>>,
    entry: AuditEntry,
    started: Instant,
}

/// Writes the open record (durable before any byte flows), then registers the live session.
/// `Err` when the audit log cannot be written: the session must not start.
pub(crate) async fn start(
    gw: &Gateway,
    mut entry: AuditEntry,
    client: String,
    protocol: &'static str,
) -> Result<Started, String> {
    entry.time = Utc::now();
    if let Err(e) = gw.store.append_audit(&entry).await {
        tracing::error!(error = %e, protocol, "cannot record a browser session; not starting it");
        return Err("the gateway cannot write its audit log".to_string());
    }
    let (session, stop) = gw.sessions.register(NewSession {
        id: entry.connection_id.clone().unwrap_or_default(),
        user: entry.user.clone().unwrap_or_default(),
        client,
        bastion_id: entry.bastion_id.clone().unwrap_or_default(),
        protocol,
        target_ip: entry.target_ip.clone().unwrap_or_default(),
        target_port: entry.target_port.unwrap_or_default(),
        target_resource_id: entry.target_resource_id.clone(),
    });
    Ok(Started { session, stop, entry, started: Instant::now() })
}

impl Started {
    /// Why the session was stopped (a disconnect, a limit, the drain).
    pub fn stop_reason(&self) -> String {
        self.stop.borrow().clone().unwrap_or_else(|| "stopped".to_string())
    }

    /// Writes the close record with bytes and duration, then removes the live session.
    pub async fn finish(self, gw: &Gateway, reason: String, clean: bool) {
        let counters = &self.session.counters;
        let mut close = self.entry;
        close.event = AuditEvent::ConnectionClose;
        close.time = Utc::now();
        close.result = if clean { AuditResult::Closed } else { AuditResult::Failed };
        close.reason = Some(reason);
        close.reason_code = None;
        close.bytes_to_target = Some(counters.tunnel_to_socket.load(Ordering::Relaxed));
        close.bytes_from_target = Some(counters.socket_to_tunnel.load(Ordering::Relaxed));
        close.duration_ms = Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        if let Err(e) = gw.store.append_audit(&close).await {
            tracing::error!(error = %e, "cannot record the end of a browser session");
        }
        // Off the list only now: a draining gateway waits for its sessions, close records included.
        gw.sessions.remove(&self.session.id);
    }
}

/// The browser side's keep-alive: a ping every interval, and the browser counted gone after
/// three intervals without a word from it.
pub(crate) struct Keepalive {
    pub ping: tokio::time::Interval,
    every: Duration,
    last_heard: Instant,
}

impl Keepalive {
    pub fn new(every: Duration) -> Keepalive {
        let mut ping = tokio::time::interval(every);
        ping.reset();
        Keepalive { ping, every, last_heard: Instant::now() }
    }

    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// After a tick: `Err(reason)` when the browser has been silent too long.
    pub fn check(&self) -> Result<(), String> {
        if self.last_heard.elapsed() > self.every * 3 {
            Err(format!("the browser did not answer for {} s", (self.every * 3).as_secs()))
        } else {
            Ok(())
        }
    }
}
