//! The one validation of an id_token: signature by a key the provider publishes, with an
//! algorithm from a fixed allow-list (never `none`, never HMAC keyed by the client secret),
//! issuer, audience, expiry and, when the flow sent one, the nonce.

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl, JsonWebKeySet,
    Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{OidcError, Refusal};

/// Asymmetric signatures only: the provider's published keys sign, nobody else can.
pub const ALLOWED_ALGORITHMS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Every claim beyond the standard ones (groups, roles, tenant IDs), kept as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExtraClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}
impl AdditionalClaims for ExtraClaims {}

/// A provider's published keys (JWKS).
pub type KeySet = JsonWebKeySet<CoreJsonWebKey>;

type FullIdToken =
    IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// What the id_token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce the authorization request carried; `None` for flows without one (device,
    /// refresh).
    pub nonce: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Validates `raw` and returns its claims as one JSON object (`sub`, `preferred_username`,
/// `email` and every non-standard claim).
pub fn verify_id_token(
    raw: &str,
    keys: &JsonWebKeySet<CoreJsonWebKey>,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, OidcError> {
    let token: FullIdToken = raw.trim().parse().map_err(|e| {
        OidcError::refused(Refusal::InvalidIdToken, format!("the id_token is not a JWT: {e}"))
    })?;
    let issuer = IssuerUrl::new(expected.issuer.to_string())
        .map_err(|e| OidcError::Config(format!("issuer URL: {e}")))?;
    let now = expected.now;
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(expected.client_id.to_string()),
        issuer,
        keys.clone(),
    )
    .set_allowed_algs(ALLOWED_ALGORITHMS)
    .set_time_fn(move || now);
    let claims = match expected.nonce {
        Some(nonce) => token.claims(&verifier, &Nonce::new(nonce.to_string())),
        None => token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
    }
    .map_err(refusal)?;
    let mut out = claims.additional_claims().rest.clone();
    out.insert("sub".into(), Value::String(claims.subject().as_str().to_string()));
    if let Some(u) = claims.preferred_username() {
        out.insert("preferred_username".into(), Value::String(u.as_str().to_string()));
    }
    if let Some(e) = claims.email() {
        out.insert("email".into(), Value::String(e.as_str().to_string()));
    }
    Ok(out)
}

fn refusal(e: ClaimsVerificationError) -> OidcError {
    let detail = format!("the id_token is refused: {e}");
    let refusal = match &e {
        ClaimsVerificationError::Expired(_) => Refusal::TokenExpired,
        ClaimsVerificationError::InvalidAudience(_) => Refusal::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => Refusal::WrongIssuer,
        ClaimsVerificationError::InvalidNonce(_) => Refusal::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoMatchingKey => Refusal::UnknownSigningKey,
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => Refusal::DisallowedAlgorithm,
            _ => Refusal::BadSignature,
        },
        _ => Refusal::InvalidIdToken,
    };
    OidcError::refused(refusal, detail)
}

/// True when fetching the provider's keys again may help (they rotated).
pub(crate) fn is_unknown_key(e: &OidcError) -> bool {
    matches!(e, OidcError::Refused { refusal: Refusal::UnknownSigningKey, .. })
}
