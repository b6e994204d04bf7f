//! Just-in-time access's bodies: eligibility on a role assignment, activations.

use serde::{Deserialize, Serialize};

/// What makes an assignment eligible (`role assignment create --eligible …`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibilitySpec {
    /// ISO 8601 (`PT8H`), the longest an activation may last [default: PT8H].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    #[serde(default)]
    pub require_approval: bool,
    /// Users or groups (names or object IDs) who may approve.
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub require_justification: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibilityView {
    pub max_duration: String,
    pub require_approval: bool,
    /// The approvers' names.
    pub approvers: Vec<String>,
    pub require_justification: bool,
}

/// `rampart role activate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivationRequest {
    pub role: String,
    pub scope: String,
    /// ISO 8601 (`PT1H`).
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivationDecision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivationView {
    pub id: String,
    pub principal_name: String,
    pub role_definition_name: String,
    pub scope: String,
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// pending, active, expired, denied or revoked.
    pub state: String,
    pub requested_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}
