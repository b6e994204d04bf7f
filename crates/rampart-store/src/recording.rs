//! Session recording's part of the store: each recording, where its bytes are, and their
//! size and SHA-256 once it ended.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRecord {
    /// The session's ID.
    pub id: String,
    pub bastion_id: String,
    pub username: String,
    /// `ip:port`, or the machine's resource ID.
    pub target: String,
    pub protocol: String,
    pub format: String,
    pub location: String,
    pub started_at: DateTime<Utc>,
    /// `None` while it runs, or when the gateway died before it ended (incomplete).
    pub ended_at: Option<DateTime<Utc>>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
}

#[async_trait]
pub trait RecordingStore: Send + Sync {
    async fn create_recording(&self, recording: &RecordingRecord) -> StoreResult<()>;
    /// Its end, size and digest.
    async fn finish_recording(
        &self,
        id: &str,
        ended_at: DateTime<Utc>,
        size: u64,
        sha256: &str,
    ) -> StoreResult<()>;
    async fn recording(&self, id: &str) -> StoreResult<Option<RecordingRecord>>;
    /// A bastion's recordings, newest first.
    async fn recordings(&self, bastion_id: &str) -> StoreResult<Vec<RecordingRecord>>;
    /// Forgets a recording (its bytes are deleted first by the caller). `false`: not there.
    async fn delete_recording(&self, id: &str) -> StoreResult<bool>;
}
