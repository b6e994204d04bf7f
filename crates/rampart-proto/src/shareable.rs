//! Shareable links' bodies, in the shapes of Azure's REST API (`createShareableLinks`,
//! `getShareableLinks`, `deleteShareableLinks`, `deleteShareableLinksByToken`).

use serde::{Deserialize, Serialize};

/// A resource reference, `{"id": …}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmRef {
    /// The VM's resource ID.
    pub id: String,
}

/// One VM of a request, `{"vm": {"id": …}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedVm {
    pub vm: VmRef,
}

/// Body of `createShareableLinks` (a link per VM) and of `getShareableLinks` (only these
/// VMs' links; none given: all).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareableLinkRequest {
    #[serde(default)]
    pub vms: Vec<LinkedVm>,
    /// How long the links last (ISO 8601, `PT4H`); default a day, at most `P365D`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// Body of `deleteShareableLinks`: the links of these VMs, and these links by id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareableLinkDelete {
    #[serde(default)]
    pub vms: Vec<LinkedVm>,
    #[serde(default)]
    pub ids: Vec<String>,
}

/// Body of `deleteShareableLinksByToken`: links (or their tokens) as they were handed out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareableLinkTokens {
    pub tokens: Vec<String>,
}

/// A shareable link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareableLink {
    pub id: String,
    pub vm: VmRef,
    /// The link itself: only in the answer that made it (the gateway keeps its hash only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsl: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub created_by: String,
}

/// A list of links, `{"value": [...]}` as Azure's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ShareableLinkList {
    pub value: Vec<ShareableLink>,
}
