//! Retention: recordings that ended more than their bastion's `recording_retention_days` ago
//! are deleted, bytes first and then their listing, each deletion audited. Every node sweeps
//! once an hour (and at start); two nodes deleting the same recording is harmless, the
//! second finds it gone. A recording still running (or left incomplete) is judged by its start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_core::{AuditEntry, AuditEvent, AuditResult};

use crate::server::Gateway;

/// How often each node looks for recordings past their retention.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub deleted: usize,
    pub failed: usize,
}

/// Deletes every recording past its bastion's retention at `now`.
pub async fn sweep(gw: &Gateway, now: DateTime<Utc>) -> Swept {
    let mut swept = Swept::default();
    let Ok(subscriptions) = gw.store.list_subscriptions().await else { return swept };
    for sub in subscriptions {
        let Ok(bastions) = gw.store.list_bastions(&sub.id, None).await else { continue };
        for b in bastions {
            let Some(days) = b.settings.recording_retention_days else { continue };
            let cutoff = now - chrono::Duration::days(i64::from(days));
            let Ok(recordings) = gw.store.recordings(&b.id.to_string()).await else { continue };
            for r in recordings.into_iter().filter(|r| r.ended_at.unwrap_or(r.started_at) < cutoff) {
                let mut e = AuditEntry::new(Utc::now(), AuditEvent::Recording, AuditResult::Allowed);
                e.bastion_id = Some(r.bastion_id.clone());
                e.user = Some(r.username.clone());
                e.target_resource_id = Some(format!("recordings/{}", r.id));
                match gw.recorder.delete(&r).await {
                    Ok(()) => {
                        if !gw.store.delete_recording(&r.id).await.unwrap_or(false) {
                            continue;
                        }
                        swept.deleted += 1;
                        e.reason = Some(format!(
                            "deleted recording {}: older than the bastion's retention of {days} days",
                            r.id
                        ));
                    }
                    Err(err) => {
                        swept.failed += 1;
                        e.result = AuditResult::Failed;
                        e.reason = Some(format!(
                            "recording {} is past its retention but cannot be deleted: {err}",
                            r.id
                        ));
                    }
                }
                if let Err(err) = gw.store.append_audit(&e).await {
                    tracing::warn!(recording = %r.id, error = %err, "cannot audit a retention deletion");
                }
            }
        }
    }
    swept
}

/// Sweeps at start and then every [`SWEEP_EVERY`].
pub async fn keep_sweeping(gw: std::sync::Arc<Gateway>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let swept = sweep(&gw, Utc::now()).await;
        if swept.deleted > 0 || swept.failed > 0 {
            tracing::info!(deleted = swept.deleted, failed = swept.failed, "recording retention");
        }
    }
}
