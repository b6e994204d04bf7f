//! Single sign-on's bodies: identity providers, the device flow, the CLI's token exchange, and
//! groups.

use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProviderCreate {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// PEM certificates of the private CA the provider's TLS chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for IdentityProviderCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviderCreate")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .finish_non_exhaustive()
    }
}

/// A provider as shown: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderView {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub username_claim: String,
    pub groups_claim: String,
    pub allowed_domains: Vec<String>,
    /// Whether a private CA is configured (`--ca-file`).
    pub private_ca: bool,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    pub created_at: String,
}

/// A device sign-in started: what to show the user, and the handle to poll with.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCodeView {
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
    /// The sentence az prints.
    pub message: String,
    /// Opaque, signed by the gateway: poll `…/token` with it.
    pub device_code: String,
}

impl std::fmt::Debug for DeviceCodeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeView").field("user_code", &self.user_code).finish_non_exhaustive()
    }
}

/// `POST /api/auth/oidc/{name}/token`: a device code to poll, or the code the browser handed
/// to the CLI's loopback port with the CLI's PKCE verifier.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for FederatedTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FederatedTokenRequest(<hidden>)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupCreate {
    /// The group as the provider's groups claim names it (`ops`, or an Entra object ID).
    pub external_id: String,
    pub identity_provider: String,
    /// Defaults to `EXTERNAL_ID@PROVIDER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// The object ID role assignments name (`--assignee-object-id`).
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
    pub members: Vec<String>,
}
