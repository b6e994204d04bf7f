//! The one session lifecycle every kind of session runs in (tunnels v1-v3, the browser
//! terminal, the browser desktop): [`Sessions::start`] writes the durable open record and
//! lists the session, [`LiveSession::data`] counts what it carries and hands it to the
//! observers, and [`LiveSession::finish`] writes the close record with its [`EndReason`] and
//! takes it off the list. Stopping (a disconnect, a limit, the drain, later revocation) goes
//! through [`Session::stop`]; a sweeper ends sessions past their bastion's limits.
//!
//! Observers ([`SessionObserver`]) see every session start, its data where the gateway
//! handles the data itself (terminal output and input, desktop frames and input), and its
//! end, without touching protocol code: the metrics are one ([`MetricsObserver`]); recording
//! and live join will be others.

mod observer;
mod registry;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, EndReason};
use rampart_store::StoreError;
use tokio::sync::watch;

pub use observer::{Direction, MetricsObserver, SessionObserver};
pub use registry::{NewSession, Session, Sessions};

/// A session that has started: its open record is durable and it is listed. It must end
/// with [`LiveSession::finish`] (dropping it unfinished leaves it listed until the gateway
/// stops, and its close record to the next start's clean-up).
pub struct LiveSession {
    pub session: Arc<Session>,
    /// Changes to `Some(reason)` when the session is stopped; relays end on it.
    pub stop: watch::Receiver<Option<String>>,
    entry: Box<AuditEntry>,
    sessions: Arc<Sessions>,
}

impl Sessions {
    /// Writes the open record (durable before any byte flows), then lists the session and
    /// tells the observers. `Err` when the audit log cannot be written: the session must not
    /// start.
    pub async fn start(
        self: &Arc<Self>,
        mut entry: AuditEntry,
        new: NewSession,
    ) -> Result<LiveSession, StoreError> {
        entry.event = AuditEvent::ConnectionOpen;
        entry.result = AuditResult::Allowed;
        entry.time = Utc::now();
        entry.protocol = Some(new.protocol.as_str().to_string());
        self.store().append_audit(&entry).await?;
        let (session, stop) = self.register(new);
        Ok(LiveSession { session, stop, entry: Box::new(entry), sessions: self.clone() })
    }
}

impl LiveSession {
    /// Counts `bytes` that went `direction` and hands them to the observers.
    pub fn data(&self, direction: Direction, bytes: &[u8]) {
        let c = &self.session.counters;
        match direction {
            Direction::ToTarget => c.add(&c.tunnel_to_socket, bytes.len() as u64),
            Direction::FromTarget => c.add(&c.socket_to_tunnel, bytes.len() as u64),
        }
        self.sessions.observe_data(&self.session, direction, bytes);
    }

    /// Hands a picture of a browser desktop to the observers (not counted as relayed bytes).
    pub fn frame(&self, image: &[u8], whole: bool) {
        self.sessions.observe_frame(&self.session, image, whole);
    }

    /// Why the session was stopped; meaningful once `stop` has changed.
    pub fn stop_reason(&self) -> EndReason {
        self.session.end_reason().unwrap_or_else(|| EndReason::Failed { detail: "stopped".into() })
    }

    /// Ends a relayed connection by how its relay ended.
    pub async fn finish_relay(self, report: Result<rampart_tunnel::RelayReport, String>) {
        let end = match report {
            Ok(report) => relay_end(&self.session, &report.end),
            Err(detail) => EndReason::Failed { detail },
        };
        self.finish(end).await;
    }

    /// Writes the close record (result, reason, bytes and duration), tells the observers, and
    /// only then takes the session off the list: a draining gateway waits for its sessions,
    /// close records included.
    pub async fn finish(self, end: EndReason) {
        let counters = &self.session.counters;
        let mut close = *self.entry;
        close.id = None;
        close.event = AuditEvent::ConnectionClose;
        close.time = Utc::now();
        close.result = if end.is_clean() { AuditResult::Closed } else { AuditResult::Failed };
        close.reason_code = Some(end.code().to_string());
        let notes = self.sessions.closing_notes(&self.session, CLOSING_NOTES_WITHIN).await;
        close.reason = Some(std::iter::once(end.to_string()).chain(notes).collect::<Vec<_>>().join("; "));
        close.bytes_to_target = Some(counters.tunnel_to_socket.load(Ordering::Relaxed));
        close.bytes_from_target = Some(counters.socket_to_tunnel.load(Ordering::Relaxed));
        close.duration_ms =
            Some(u64::try_from(self.session.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        if let Err(e) = self.sessions.store().append_audit(&close).await {
            // Kept and written once the store answers again (`write_unwritten_closes`).
            tracing::error!(error = %e, session = %self.session.id, "cannot record the end of a session yet; will retry");
            self.sessions.keep_unwritten(close);
        }
        self.sessions.end(&self.session, &end);
    }
}

/// How long a session's end waits for its observers' notes (a recording's last chunk and
/// digest) before the close record is written without them.
const CLOSING_NOTES_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The end reason of a relay: a stop names its own; the rest is how the connection ended.
fn relay_end(session: &Session, end: &rampart_tunnel::RelayEnd) -> EndReason {
    use rampart_tunnel::RelayEnd;
    match end {
        RelayEnd::Stopped(detail) => {
            session.end_reason().unwrap_or_else(|| EndReason::Failed { detail: detail.clone() })
        }
        clean if clean.is_clean() => EndReason::ClientClosed { detail: "the connection was closed".into() },
        other => EndReason::Failed { detail: format!("{other:?}") },
    }
}
