//! What can go wrong, each with a stable code for the audit log and a sentence for people.

/// Why a sign-in was refused: the code goes to the audit record's `reasonCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The id_token's `aud` does not name this gateway's client.
    WrongAudience,
    /// The id_token's `iss` is not the configured issuer.
    WrongIssuer,
    /// The id_token has expired (or is not yet valid).
    TokenExpired,
    /// The id_token's nonce is not the one this sign-in sent.
    NonceMismatch,
    /// Signed by a key the provider does not publish, even after fetching its keys again.
    UnknownSigningKey,
    /// `alg: none`, or an algorithm outside the allow-list (HMAC with the client secret, say).
    DisallowedAlgorithm,
    /// The signature does not verify.
    BadSignature,
    /// Anything else wrong with the id_token (unparsable, missing claims).
    InvalidIdToken,
    /// The provider refused the code, device code or refresh token (`invalid_grant`: used
    /// twice, expired, a PKCE verifier that does not match, a user signed out there).
    GrantRejected,
    /// The user denied the request at the provider.
    AccessDenied,
    /// The device code expired before anyone approved it.
    DeviceCodeExpired,
    /// The provider answered without an id_token.
    NoIdToken,
    /// The user's address is outside the provider's allowed domains.
    DomainNotAllowed,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::WrongAudience => "IdTokenWrongAudience",
            Refusal::WrongIssuer => "IdTokenWrongIssuer",
            Refusal::TokenExpired => "IdTokenExpired",
            Refusal::NonceMismatch => "NonceMismatch",
            Refusal::UnknownSigningKey => "IdTokenUnknownKey",
            Refusal::DisallowedAlgorithm => "IdTokenAlgorithmNotAllowed",
            Refusal::BadSignature => "IdTokenBadSignature",
            Refusal::InvalidIdToken => "IdTokenInvalid",
            Refusal::GrantRejected => "GrantRejected",
            Refusal::AccessDenied => "AccessDenied",
            Refusal::DeviceCodeExpired => "DeviceCodeExpired",
            Refusal::NoIdToken => "NoIdToken",
            Refusal::DomainNotAllowed => "DomainNotAllowed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider (or its discovery document) could not be reached or read.
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    /// The provider's configuration does not allow what was asked (no device endpoint, say).
    #[error("the identity provider does not support {0}")]
    Unsupported(String),
    /// A configuration value is not usable (a bad issuer URL, an unreadable CA file).
    #[error("identity provider configuration: {0}")]
    Config(String),
    /// The sign-in is refused, with the reason.
    #[error("{detail}")]
    Refused { refusal: Refusal, detail: String },
}

impl OidcError {
    pub fn refused(refusal: Refusal, detail: impl Into<String>) -> OidcError {
        OidcError::Refused { refusal, detail: detail.into() }
    }

    /// The audit code: the refusal's, or what kind of failure it was.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Unreachable(_) => "ProviderUnreachable",
            OidcError::Unsupported(_) => "ProviderUnsupported",
            OidcError::Config(_) => "ProviderMisconfigured",
            OidcError::Refused { refusal, .. } => refusal.code(),
        }
    }
}
