//! Observers: code that receives a session's events without touching protocol code.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rampart_core::EndReason;

use super::Session;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the user to the target (terminal input, desktop input, tunnel upload).
    ToTarget,
    /// From the target to the user (terminal output, desktop frames, tunnel download).
    FromTarget,
}

/// Receives every session's start, data and end. Called inline on the session's own task:
/// an observer must not block (hand heavy work to a task of its own).
///
/// `data` sees what the gateway itself handles: a browser terminal's output and input, a
/// browser desktop's frames and input. Tunnelled bytes are relayed by `rampart-tunnel`
/// without a copy through the gateway; observers see their byte counts at the end.
pub trait SessionObserver: Send + Sync {
    /// `admitted_in`: from the request to the durable open record, when it was admitted now.
    fn started(&self, _session: &Session, _admitted_in: Option<Duration>) {}
    fn data(&self, _session: &Session, _direction: Direction, _bytes: &[u8]) {}
    /// A picture of a browser desktop the gateway made for the browser (an image rectangle,
    /// see `portal::desktop`); `whole`: the whole screen, made for the observers alone.
    fn frame(&self, _session: &Session, _image: &[u8], _whole: bool) {}
    /// Called once as the session ends, before its close record is written: a note to add to
    /// that record once the observer is done with the session (a recording's size and
    /// digest, so the tamper-evident audit log vouches for the recording).
    fn closing(&self, _session: &Session) -> Option<tokio::sync::oneshot::Receiver<String>> {
        None
    }
    fn ended(&self, _session: &Session, _end: &EndReason) {}
}

/// The Prometheus metrics of sessions: live count and starts by protocol, connect latency,
/// bytes relayed, ends by reason.
pub struct MetricsObserver;

impl SessionObserver for MetricsObserver {
    fn started(&self, session: &Session, admitted_in: Option<Duration>) {
        let protocol = session.protocol.as_str();
        metrics::gauge!("rampart_sessions_active", "protocol" => protocol).increment(1.0);
        metrics::counter!("rampart_sessions_started_total", "protocol" => protocol).increment(1);
        if let Some(took) = admitted_in {
            metrics::histogram!("rampart_connect_seconds").record(took.as_secs_f64());
        }
    }

    fn ended(&self, session: &Session, end: &EndReason) {
        let protocol = session.protocol.as_str();
        metrics::gauge!("rampart_sessions_active", "protocol" => protocol).decrement(1.0);
        metrics::counter!("rampart_sessions_ended_total", "protocol" => protocol, "reason" => end.code())
            .increment(1);
        let up = session.counters.tunnel_to_socket.load(Ordering::Relaxed);
        let down = session.counters.socket_to_tunnel.load(Ordering::Relaxed);
        metrics::counter!("rampart_bytes_relayed_total", "direction" => "to_target").increment(up);
        metrics::counter!("rampart_bytes_relayed_total", "direction" => "from_target").increment(down);
    }
}
