//! The conformance check of session recordings' data.

use std::sync::Arc;

use chrono::Utc;
use rampart_store::RecordingRecord;
use rampart_store::prelude::*;

use super::{Checked, fail};

/// A recording is listed by its bastion (in any case) newest first, incomplete until its end
/// is recorded with its size and digest.
pub async fn recordings_are_listed_and_finished(store: Arc<dyn Store>) -> Checked {
    let now = Utc::now();
    let record = |id: &str, at: chrono::DateTime<Utc>| RecordingRecord {
        id: id.into(),
        bastion_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/bastionHosts/b".into(),
        username: "alice".into(),
        target: "10.0.0.4:22".into(),
        protocol: "ssh".into(),
        format: "asciicast-v2".into(),
        location: format!("/data/recordings/{id}.cast"),
        started_at: at,
        ended_at: None,
        size_bytes: None,
        sha256: None,
    };
    store.create_recording(&record("rec-1", now - chrono::Duration::seconds(10))).await?;
    store.create_recording(&record("rec-2", now)).await?;
    let listed = store
        .recordings("/subscriptions/S/resourceGroups/G/providers/Microsoft.Network/bastionHosts/B")
        .await?;
    ensure!(listed.len() == 2 && listed[0].id == "rec-2", "newest first, any case: {listed:?}");
    ensure!(listed.iter().all(|r| r.ended_at.is_none() && r.sha256.is_none()), "incomplete until finished");
    store.finish_recording("rec-1", now, 1234, &"ab".repeat(32)).await?;
    let done = store.recording("rec-1").await?.ok_or_else(|| fail("recording read back"))?;
    ensure!(
        done.size_bytes == Some(1234) && done.sha256.as_deref() == Some(&"ab".repeat(32)[..]),
        "{done:?}"
    );
    ensure!(store.recording("nope").await?.is_none(), "an unknown one is none");
    ensure!(store.delete_recording("rec-2").await?, "a recording is deleted");
    ensure!(!store.delete_recording("rec-2").await?, "once");
    ensure!(store.recording("rec-2").await?.is_none(), "and gone");
    ensure!(store.recording("rec-1").await?.is_some(), "the other stays");
    Ok(())
}
