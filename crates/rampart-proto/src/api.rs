//! JSON bodies of the HTTP API. Field names follow Azure Resource Manager (camelCase).

use serde::{Deserialize, Serialize};

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`, as ARM does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody { error: ErrorDetail { code: code.into(), message: message.into() } }
    }
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A service principal's sign-in names the tenant (the gateway's directory ID, as
    /// `ad sp create-for-rbac` printed it); a different one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A TOTP code or a recovery code, for an account with multi-factor authentication.
    #[serde(default, rename = "mfaCode", skip_serializing_if = "Option::is_none")]
    pub mfa_code: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub username: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Sku {
    pub name: String,
}

/// A bastion resource as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bastion {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub sku: Sku,
    pub enable_tunneling: bool,
    pub enable_ip_connect: bool,
    pub reachable_networks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_session_duration_seconds: Option<u64>,
    /// Browser sessions exchange no clipboard text with the remote machine.
    #[serde(default)]
    pub disable_copy_paste: bool,
    /// Shareable links may be made (Standard and Premium).
    #[serde(default)]
    pub enable_shareable_link: bool,
    /// File transfer in browser terminals: `upload,download`, `upload`, `download` or `none`.
    #[serde(default)]
    pub file_transfer: String,
    /// Some direction of file transfer is on (Azure's `enableFileCopy`).
    #[serde(default)]
    pub enable_file_copy: bool,
    /// The largest file a transfer may move, in MiB; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_transfer_max_mb: Option<u64>,
    /// Browser sessions are recorded (Premium).
    #[serde(default)]
    pub enable_session_recording: bool,
    /// With recording on, raw tunnels go through unrecorded instead of being refused.
    #[serde(default)]
    pub allow_unrecorded_tunnels: bool,
    /// The Azure Blob container recordings go to, its SAS token hidden; absent: the gateway's
    /// data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_recording_storage_url: Option<String>,
    /// Recordings older than this many days are deleted; absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_retention_days: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

/// A target's SSH host key or RDP certificate, pinned by the gateway on first use for browser
/// sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinnedHostKey {
    /// As the user named it: a VM's resource ID, or `ip:port`.
    pub target: String,
    /// `ssh` (an OpenSSH public key) or `rdp` (the SHA-256 of the TLS certificate, hex).
    pub kind: String,
    pub key: String,
    pub pinned_at: String,
}

/// A live session on a bastion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_id: String,
    pub user_name: String,
    pub client_address: String,
    pub protocol: String,
    pub target_ip_address: String,
    pub target_port: u16,
    pub target_resource_id: Option<String>,
    pub start_time: String,
    pub duration_seconds: u64,
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
    /// The gateway node that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// A gateway node, as `rampart node list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub address: String,
    /// `active`, `draining`, `stopped` or `lost`.
    pub state: String,
    pub started_at: String,
    pub last_heartbeat: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_seconds: u64,
    pub sessions: u32,
}

/// Body of create (all optional: defaults apply) and update (only what is given changes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BastionChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_tunneling: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ip_connect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable_networks: Option<Vec<String>>,
    /// Seconds; 0 removes the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds; 0 removes the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_session_duration_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_copy_paste: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_shareable_link: Option<bool>,
    /// `upload,download`, `upload`, `download` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_transfer: Option<String>,
    /// MiB; 0 removes the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_transfer_max_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_session_recording: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unrecorded_tunnels: Option<bool>,
    /// An Azure Blob container's SAS URL (a credential: never logged); empty: back to the
    /// data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_recording_storage_url: Option<String>,
    /// Days; 0 keeps recordings for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_retention_days: Option<u32>,
}

/// One audit record. Fields follow Azure's BastionAuditLogs where they overlap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    pub time: String,
    /// `sign-in`, `tunnel-request`, `connection-open`, `connection-close`, `bastion-change`.
    pub event: String,
    pub user: Option<String>,
    pub client_address: Option<String>,
    pub bastion_id: Option<String>,
    pub target_ip: Option<String>,
    pub target_port: Option<u16>,
    pub tunnel_id: Option<String>,
    pub connection_id: Option<String>,
    /// `allowed`, `refused`, `failed` or `closed`.
    pub result: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub bytes_to_target: Option<u64>,
    pub bytes_from_target: Option<u64>,
    pub duration_ms: Option<u64>,
    pub user_agent: Option<String>,
    pub protocol: Option<String>,
    pub target_resource_id: Option<String>,
    /// This record's link in the hash chain.
    pub hash: Option<String>,
}

/// Answer of `GET /api/audit/verify` when the chain is intact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub verified_records: u64,
    /// The newest record's hash.
    pub last_hash: Option<String>,
    /// Every chain: one per node on a shared store, one unnamed on a single node.
    #[serde(default)]
    pub chains: Vec<AuditChain>,
}

/// One verified audit chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditChain {
    /// The node whose chain it is; absent for a single node's unnamed chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub records: u64,
    /// Its last record's hash: keep it elsewhere; a later verify must reach it.
    pub last_hash: Option<String>,
}

/// A registered virtual machine or scale-set instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_set: Option<String>,
    pub os_type: String,
    pub private_ip_address: String,
    pub network_interface_id: String,
    pub port_ssh: u16,
    pub port_rdp: u16,
}

/// Registering one VM (`resourceGroup` is needed only in imports).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmRegistration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub os_type: String,
    pub private_ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_ssh: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_rdp: Option<u16>,
}

/// Changing a registered VM in place: only what is given changes (its name and its network
/// interface's name stay).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_ssh: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_rdp: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSetRegistration {
    pub os_type: String,
    /// One private IP address per instance; instances are numbered from 0.
    pub instances: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_ssh: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_rdp: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    pub registered: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub private_ip_address: String,
    pub virtual_machine: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserCreate {
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for UserCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCreate")
            .field("user_principal_name", &self.user_principal_name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChange {
    pub password: String,
}

/// `ad sp create-for-rbac`: a service principal with a role at each scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePrincipalCreate {
    pub display_name: String,
    pub role: String,
    pub scopes: Vec<String>,
}

/// A service principal's credentials, shown once (az's `create-for-rbac` output).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalCredentials {
    pub app_id: String,
    pub display_name: String,
    pub password: String,
    pub tenant: String,
}

impl std::fmt::Debug for ServicePrincipalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePrincipalCredentials")
            .field("app_id", &self.app_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A service principal as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalView {
    pub app_id: String,
    pub display_name: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDefinitionView {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub builtin: bool,
}

/// Asks the gateway's SSH CA for a short-lived user certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshCertificateRequest {
    pub bastion_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ip_address: Option<String>,
    /// The account to log in as; the user's own name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The client's public key, one OpenSSH line (the private key never leaves the client).
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshCertificate {
    /// One OpenSSH line, for `CertificateFile`.
    pub certificate: String,
    pub principal: String,
    /// Unix seconds.
    pub valid_before: u64,
    /// The machine it was issued for.
    pub target_resource_id: String,
}

/// Narrows an assignment for IP-based connections; empty lists mean any.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignmentCondition {
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignmentCreate {
    /// A principal's name (user principal name, group name, application ID) or object ID.
    pub assignee: String,
    /// `User`, `Group` or `ServicePrincipal` (az's `--assignee-principal-type`): the assignee
    /// must be of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_principal_type: Option<String>,
    pub role: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<AssignmentCondition>,
    /// Eligible (just-in-time) rather than standing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility: Option<crate::activation::EligibilitySpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentView {
    pub id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub role_definition_name: String,
    pub scope: String,
    pub condition: Option<AssignmentCondition>,
    /// Set for an eligible assignment: it grants nothing until activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility: Option<crate::activation::EligibilityView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let login = LoginRequest {
            username: "admin".into(),
            password: "hunter2-secret".into(),
            tenant: None,
            mfa_code: Some("123456".into()),
        };
        assert!(!format!("{login:?}").contains("hunter2-secret"));
        let tokens = TokenResponse {
            access_token: "access-secret".into(),
            expires_in: 60,
            refresh_token: "refresh-secret".into(),
            username: "admin".into(),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("access-secret") && !shown.contains("refresh-secret"));
    }

    #[test]
    fn bastion_change_rejects_unknown_fields() {
        let err = serde_json::from_str::<BastionChange>(r#"{"enableTunnelling": true}"#);
        assert!(err.is_err());
    }
}
