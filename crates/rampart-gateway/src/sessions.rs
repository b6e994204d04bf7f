//! Live sessions: every relayed connection is registered while it runs, with live byte
//! counts, so operators can list and disconnect it; a sweeper ends sessions that outlive
//! their bastion's idle timeout or maximum duration, reading the settings as they are now.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rampart_core::ResourceId;
use rampart_store::Store;
use rampart_tunnel::{Counters, now_ms};
use tokio::sync::watch;

/// One live session.
pub struct Session {
    pub id: String,
    pub user: String,
    pub client: String,
    pub bastion_id: String,
    pub protocol: &'static str,
    pub target_ip: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    pub counters: Arc<Counters>,
    /// The bastion's copy-and-paste setting as it is now: a settings change updates it in
    /// live sessions, and browser desktops follow it at once.
    pub copy_paste: watch::Sender<bool>,
    stop: watch::Sender<Option<String>>,
}

impl Session {
    /// Ends the session with `reason` (the client is told); false if it was already ending.
    pub fn stop(&self, reason: &str) -> bool {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                false
            } else {
                *current = Some(reason.to_string());
                true
            }
        })
    }
}

/// What a new session is.
pub struct NewSession {
    pub id: String,
    pub user: String,
    pub client: String,
    pub bastion_id: String,
    pub protocol: &'static str,
    pub target_ip: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Registers a session; the receiver ends its relay when the session is stopped.
    pub fn register(&self, new: NewSession) -> (Arc<Session>, watch::Receiver<Option<String>>) {
        let (stop, stopped) = watch::channel(None);
        let session = Arc::new(Session {
            id: new.id,
            user: new.user,
            client: new.client,
            bastion_id: new.bastion_id,
            protocol: new.protocol,
            target_ip: new.target_ip,
            target_port: new.target_port,
            target_resource_id: new.target_resource_id,
            started_at: Utc::now(),
            started: Instant::now(),
            counters: Arc::new(Counters::default()),
            copy_paste: watch::Sender::new(true),
            stop,
        });
        self.lock().insert(session.id.clone(), session.clone());
        metrics::gauge!("rampart_sessions_active", "protocol" => session.protocol).increment(1.0);
        metrics::counter!("rampart_sessions_started_total", "protocol" => session.protocol).increment(1);
        (session, stopped)
    }

    pub fn remove(&self, id: &str) {
        if let Some(s) = self.lock().remove(id) {
            metrics::gauge!("rampart_sessions_active", "protocol" => s.protocol).decrement(1.0);
            let up = s.counters.tunnel_to_socket.load(Ordering::Relaxed);
            let down = s.counters.socket_to_tunnel.load(Ordering::Relaxed);
            metrics::counter!("rampart_bytes_relayed_total", "direction" => "to_target").increment(up);
            metrics::counter!("rampart_bytes_relayed_total", "direction" => "from_target").increment(down);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Live sessions on one bastion (case-insensitive ID), oldest first.
    pub fn on_bastion(&self, bastion_id: &str) -> Vec<Arc<Session>> {
        let mut list: Vec<Arc<Session>> =
            self.lock().values().filter(|s| s.bastion_id.eq_ignore_ascii_case(bastion_id)).cloned().collect();
        list.sort_by_key(|s| s.started);
        list
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn stop_all(&self, reason: &str) {
        for s in self.lock().values() {
            s.stop(reason);
        }
    }

    /// Ends sessions past their bastion's idle timeout or maximum duration. Each bastion's
    /// settings are read once per sweep, so a changed limit applies to running sessions.
    pub async fn sweep(&self, store: &dyn Store) {
        let sessions: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        let mut by_bastion: HashMap<String, Vec<Arc<Session>>> = HashMap::new();
        for s in sessions {
            by_bastion.entry(s.bastion_id.to_ascii_lowercase()).or_default().push(s);
        }
        for (bastion, sessions) in by_bastion {
            let Ok(id) = ResourceId::from_str(&bastion) else { continue };
            let Ok(Some(b)) = store.bastion(&id).await else { continue };
            let now = now_ms();
            for s in sessions {
                let idle_ms = now.saturating_sub(s.counters.last_activity_ms.load(Ordering::Relaxed));
                if let Some(limit) = b.settings.idle_timeout_secs
                    && idle_ms >= limit.saturating_mul(1000)
                {
                    s.stop(&format!("idle timeout: no data for {limit} s (bastion setting)"));
                } else if let Some(limit) = b.settings.max_session_secs
                    && s.started.elapsed() >= Duration::from_secs(limit)
                {
                    s.stop(&format!("maximum session duration of {limit} s reached (bastion setting)"));
                }
            }
        }
    }
}
