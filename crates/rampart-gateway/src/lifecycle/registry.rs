//! The live sessions: listed while they run, with live byte counts, so operators can list
//! and disconnect them; the sweeper ends those past their bastion's idle timeout or maximum
//! duration, reading the settings as they are now.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rampart_core::{AuditEntry, EndReason, Protocol, ResourceId, SessionRequest};
use rampart_store::Store;
use rampart_tunnel::{Counters, now_ms};
use tokio::sync::watch;

use super::observer::{Direction, SessionObserver};

/// One live session.
pub struct Session {
    pub id: String,
    pub user: String,
    pub client: String,
    pub bastion_id: String,
    pub protocol: Protocol,
    pub target_ip: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    pub counters: Arc<Counters>,
    /// The bastion's copy-and-paste setting as it is now: a settings change updates it in
    /// live sessions, and browser desktops follow it at once.
    pub copy_paste: watch::Sender<bool>,
    /// What it asked for: the admission service decides on it again when authorization
    /// inputs change, and stops the session if it is no longer allowed.
    pub request: SessionRequest,
    stop: watch::Sender<Option<String>>,
    end: Mutex<Option<EndReason>>,
}

impl Session {
    /// Ends the session with `reason` (the client is told its text); false if it was already
    /// ending.
    pub fn stop(&self, reason: EndReason) -> bool {
        let text = reason.to_string();
        {
            let mut end = self.end.lock().unwrap_or_else(|p| p.into_inner());
            if end.is_some() {
                return false;
            }
            *end = Some(reason);
        }
        self.stop.send_replace(Some(text));
        true
    }

    /// Why it was stopped, if it was.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a new session is.
pub struct NewSession {
    pub id: String,
    pub user: String,
    pub client: String,
    pub bastion_id: String,
    pub protocol: Protocol,
    pub target_ip: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
    /// When its admission began (the request), for the metrics: admission time runs from
    /// there to the durable open record.
    pub admission_began: Option<Instant>,
    /// What it asked for: decided on again while it runs.
    pub request: SessionRequest,
}

pub struct Sessions {
    live: Mutex<HashMap<String, Arc<Session>>>,
    /// Close records the store could not take when their sessions ended (it was away).
    unwritten: Mutex<Vec<AuditEntry>>,
    store: Arc<dyn Store>,
    observers: Vec<Arc<dyn SessionObserver>>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, observers: Vec<Arc<dyn SessionObserver>>) -> Sessions {
        Sessions { live: Mutex::default(), unwritten: Mutex::default(), store, observers }
    }

    pub(super) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Lists a session; the receiver changes when it is stopped.
    pub(super) fn register(&self, new: NewSession) -> (Arc<Session>, watch::Receiver<Option<String>>) {
        let (stop, stopped) = watch::channel(None);
        // A session starts active: idle time counts from its start, not from the epoch.
        let counters = Counters::default();
        counters.last_activity_ms.store(now_ms(), Ordering::Relaxed);
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
            counters: Arc::new(counters),
            copy_paste: watch::Sender::new(true),
            request: new.request,
            stop,
            end: Mutex::new(None),
        });
        self.lock().insert(session.id.clone(), session.clone());
        let admitted_in = new.admission_began.map(|t| t.elapsed());
        for o in &self.observers {
            o.started(&session, admitted_in);
        }
        (session, stopped)
    }

    pub(super) fn keep_unwritten(&self, close: AuditEntry) {
        self.unwritten.lock().unwrap_or_else(|p| p.into_inner()).push(close);
    }

    /// Writes the close records kept while the store was away, all at once (the audit writer
    /// takes them in one transaction); those that still fail are kept for the next try.
    /// Returns how many remain.
    pub async fn write_unwritten_closes(&self) -> usize {
        let pending: Vec<AuditEntry> =
            std::mem::take(&mut *self.unwritten.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return 0;
        }
        let written =
            futures_util::future::join_all(pending.iter().map(|c| self.store.append_audit(c))).await;
        let failed: Vec<AuditEntry> = pending
            .into_iter()
            .zip(written)
            .filter_map(|(close, result)| result.is_err().then_some(close))
            .collect();
        let mut kept = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        let newer = std::mem::take(&mut *kept);
        *kept = failed;
        kept.extend(newer);
        kept.len()
    }

    pub(super) fn observe_data(&self, session: &Session, direction: Direction, bytes: &[u8]) {
        for o in &self.observers {
            o.data(session, direction, bytes);
        }
    }

    /// What the observers add to a session's close record (a recording's size and digest),
    /// each waited for at most `within`, all together.
    pub(super) async fn closing_notes(&self, session: &Session, within: std::time::Duration) -> Vec<String> {
        let pending: Vec<_> = self.observers.iter().filter_map(|o| o.closing(session)).collect();
        let mut notes = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        for note in pending {
            match tokio::time::timeout_at(deadline, note).await {
                Ok(Ok(note)) => notes.push(note),
                Ok(Err(_)) => {}
                Err(_) => notes.push("an observer did not finish in time".into()),
            }
        }
        notes
    }

    pub(super) fn observe_frame(&self, session: &Session, image: &[u8], whole: bool) {
        for o in &self.observers {
            o.frame(session, image, whole);
        }
    }

    /// Takes a finished session off the list and tells the observers.
    pub(super) fn end(&self, session: &Session, end: &EndReason) {
        if self.lock().remove(&session.id).is_some() {
            for o in &self.observers {
                o.ended(session, end);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Every live session of this node.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
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

    pub fn stop_all(&self, reason: &EndReason) {
        for s in self.lock().values() {
            s.stop(reason.clone());
        }
    }

    /// Ends sessions past their bastion's idle timeout or maximum duration. Each bastion's
    /// settings are read once per sweep, so a changed limit applies to running sessions.
    pub async fn sweep(&self) {
        self.sweep_at(now_ms(), Instant::now()).await;
    }

    /// [`Sessions::sweep`] as if the clocks read `wall_ms` (milliseconds since the Unix epoch,
    /// what activity is stamped with) and `now`: tests move time instead of waiting.
    pub async fn sweep_at(&self, wall_ms: u64, now: Instant) {
        let sessions: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        let mut by_bastion: HashMap<String, Vec<Arc<Session>>> = HashMap::new();
        for s in sessions {
            by_bastion.entry(s.bastion_id.to_ascii_lowercase()).or_default().push(s);
        }
        for (bastion, sessions) in by_bastion {
            let Ok(id) = ResourceId::from_str(&bastion) else { continue };
            let Ok(Some(b)) = self.store.bastion(&id).await else { continue };
            for s in sessions {
                let idle_ms = wall_ms.saturating_sub(s.counters.last_activity_ms.load(Ordering::Relaxed));
                if let Some(limit) = b.settings.idle_timeout_secs
                    && idle_ms >= limit.saturating_mul(1000)
                {
                    s.stop(EndReason::IdleTimeout { limit_secs: limit });
                } else if let Some(limit) = b.settings.max_session_secs
                    && now.saturating_duration_since(s.started) >= Duration::from_secs(limit)
                {
                    s.stop(EndReason::MaxDuration { limit_secs: limit });
                }
            }
        }
    }
}
