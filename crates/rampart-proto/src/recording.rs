//! Session recordings' bodies.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    pub id: String,
    pub session_id: String,
    pub user: String,
    pub target: String,
    pub protocol: String,
    pub format: String,
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// False while it runs or when the gateway stopped before the session ended.
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingVerification {
    pub id: String,
    /// The stored bytes have the size and SHA-256 recorded when the session ended.
    pub valid: bool,
    pub detail: String,
}
