//! Multi-factor authentication's bodies.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaStatus {
    pub enabled: bool,
}

/// A new authenticator secret, pending until a code from it is verified.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaEnrolment {
    /// `otpauth://totp/…`: what an authenticator app reads.
    pub otpauth_uri: String,
    /// The same secret in base32, for typing in.
    pub secret: String,
}

impl std::fmt::Debug for MfaEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaEnrolment(<hidden>)")
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaCode {
    pub code: String,
}

impl std::fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaCode(<hidden>)")
    }
}

/// Shown once, at enrolment: each signs in once in place of a code.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaRecoveryCodes {
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for MfaRecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaRecoveryCodes(<hidden>)")
    }
}
