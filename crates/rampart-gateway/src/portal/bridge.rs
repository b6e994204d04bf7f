//! What the browser terminal and the browser desktop share around their own data loops: the
//! start of their session in the lifecycle, and the keep-alive of the browser's WebSocket.

use std::time::{Duration, Instant};

use rampart_core::{AuditEntry, SessionRequest};

use crate::lifecycle::{LiveSession, NewSession};
use crate::server::Gateway;

/// Starts a browser session in the lifecycle: the open record (durable before any byte
/// flows), then the live-session entry. `mark` is the admission service's change mark when
/// the request was authorized. `Err` names why for the browser when the audit log
/// cannot be written: the session must not start.
pub(crate) async fn start(
    gw: &Gateway,
    entry: AuditEntry,
    (request, mark): (SessionRequest, u64),
) -> Result<LiveSession, String> {
    let protocol = request.protocol;
    let new = NewSession {
        id: entry.connection_id.clone().unwrap_or_default(),
        user: entry.user.clone().unwrap_or_default(),
        client: request.client.to_string(),
        bastion_id: entry.bastion_id.clone().unwrap_or_default(),
        protocol,
        target_ip: entry.target_ip.clone().unwrap_or_default(),
        target_port: entry.target_port.unwrap_or_default(),
        target_resource_id: entry.target_resource_id.clone(),
        admission_began: None,
        request,
    };
    let live = gw.sessions.start(entry, new).await.map_err(|e| {
        tracing::error!(error = %e, %protocol, "cannot record a browser session; not starting it");
        "the gateway cannot write its audit log".to_string()
    })?;
    // Authorized when the form was sent (the sign-in to the target and the page's WebSocket
    // came in between): decided on again if anything changed since.
    gw.admission.recheck_if_changed(mark, &live.session).await;
    Ok(live)
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
