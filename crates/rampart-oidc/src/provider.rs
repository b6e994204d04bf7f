//! One configured identity provider: its discovery document and keys (cached, fetched again
//! when a token names a key it does not know), and the flows the gateway runs against it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreErrorResponseType, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreRevocableToken, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, RefreshToken,
    RequestTokenError, RevocationUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::verify::{Expected, is_unknown_key, verify_id_token};
use crate::{OidcError, Refusal, http_client};

/// A discovery document is trusted this long before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// However many tokens name unknown keys, the keys are fetched again at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Deserialize, Serialize)]
struct ExtraMetadata {
    #[serde(default)]
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    #[serde(default)]
    revocation_endpoint: Option<RevocationUrl>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// PEM certificates the provider's TLS chains to (a private CA); then only these.
    pub ca_pem: Option<String>,
    /// `https://GATEWAY/auth/oidc/NAME/callback`, registered at the provider.
    pub redirect_uri: String,
}

/// The start of an authorization code flow: send the user to `url`; keep the rest (never
/// shown to anyone) until the callback.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A device authorization: what to show the user, and the handle to poll with.
#[derive(Debug, Clone)]
pub struct DeviceStart {
    /// The provider's answer, serialized: what [`Provider::poll_device`] takes.
    pub handle: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
}

#[derive(Debug)]
pub enum DevicePoll {
    /// Nobody has approved yet: ask again after `interval`.
    Pending {
        interval: Duration,
    },
    Done(SignedIn),
}

/// A completed sign-in (or refresh): the id_token's validated claims and, when the provider
/// issued one, the refresh token that renews them.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub claims: Map<String, Value>,
    pub refresh_token: Option<String>,
}

pub struct Provider {
    config: ProviderConfig,
    http: reqwest::Client,
    cached: Mutex<Option<(Arc<Metadata>, Instant)>>,
    last_refetch: Mutex<Option<Instant>>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Provider, OidcError> {
        IssuerUrl::new(config.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer '{}': {e}", config.issuer)))?;
        RedirectUrl::new(config.redirect_uri.clone())
            .map_err(|e| OidcError::Config(format!("redirect URI '{}': {e}", config.redirect_uri)))?;
        let http = http_client::build(config.ca_pem.as_deref())?;
        Ok(Provider { config, http, cached: Mutex::new(None), last_refetch: Mutex::new(None) })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Fetches the discovery document and keys now (a check that the provider answers).
    pub async fn check(&self) -> Result<(), OidcError> {
        self.discover().await.map(|_| ())
    }

    async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        let cached = self.cached.lock().ok().and_then(|c| c.clone());
        match cached {
            Some((md, at)) if at.elapsed() < METADATA_TTL => Ok(md),
            _ => self.discover().await,
        }
    }

    async fn discover(&self) -> Result<Arc<Metadata>, OidcError> {
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let http = self.http.clone();
        let client = move |req| http_client::send(http.clone(), req);
        let md =
            Metadata::discover_async(issuer, &client).await.map_err(|e| OidcError::Unreachable(chain(&e)))?;
        let md = Arc::new(md);
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((md.clone(), Instant::now()));
        }
        Ok(md)
    }

    /// The keys again, unless they were fetched moments ago (a flood of forged tokens must
    /// not become a flood of requests to the provider).
    async fn refetch_keys(&self) -> Result<Option<Arc<Metadata>>, OidcError> {
        {
            let Ok(mut last) = self.last_refetch.lock() else { return Ok(None) };
            if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        self.discover().await.map(Some)
    }

    fn client(&self, md: &Metadata) -> Result<Client, OidcError> {
        let redirect = RedirectUrl::new(self.config.redirect_uri.clone())
            .map_err(|e| OidcError::Config(format!("redirect URI: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            md.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Scopes beyond `openid` (which the client always adds): profile and email, and groups
    /// and offline access where the provider offers them.
    fn scopes(md: &Metadata) -> Vec<Scope> {
        let offered: Vec<String> = md
            .scopes_supported()
            .map(|s| s.iter().map(|s| s.as_str().to_string()).collect())
            .unwrap_or_default();
        ["profile", "email", "groups", "offline_access"]
            .into_iter()
            .filter(|s| matches!(*s, "profile" | "email") || offered.iter().any(|o| o == s))
            .map(|s| Scope::new(s.to_string()))
            .collect()
    }

    /// The authorization code flow's first step: the URL, with a fresh state, nonce and PKCE
    /// challenge (S256).
    pub async fn authorization_request(&self) -> Result<AuthorizationRequest, OidcError> {
        let md = self.metadata().await?;
        let client = self.client(&md)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(Self::scopes(&md))
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// The callback's step: the code for tokens (with the PKCE verifier), then the id_token
    /// validated against the nonce.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<SignedIn, OidcError> {
        let md = self.metadata().await?;
        let client = self.client(&md)?;
        let http = self.http.clone();
        let send = move |req| http_client::send(http.clone(), req);
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Unsupported(format!("the code flow: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&send)
            .await
            .map_err(token_error)?;
        let raw = answer
            .id_token()
            .ok_or_else(|| {
                OidcError::refused(Refusal::NoIdToken, "the provider answered without an id_token")
            })?
            .to_string();
        let claims = self.verify(&raw, Some(nonce), md).await?;
        Ok(SignedIn { claims, refresh_token: answer.refresh_token().map(|t| t.secret().clone()) })
    }

    /// Validates an id_token; on a key the cached set lacks, fetches the keys once more.
    async fn verify(
        &self,
        raw: &str,
        nonce: Option<&str>,
        md: Arc<Metadata>,
    ) -> Result<Map<String, Value>, OidcError> {
        let expected = Expected {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce,
            now: Utc::now(),
        };
        match verify_id_token(raw, md.jwks(), &expected) {
            Err(e) if is_unknown_key(&e) => match self.refetch_keys().await? {
                Some(fresh) => verify_id_token(raw, fresh.jwks(), &expected),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Starts the device flow (RFC 8628).
    pub async fn start_device(&self) -> Result<DeviceStart, OidcError> {
        let md = self.metadata().await?;
        let endpoint = md.additional_metadata().device_authorization_endpoint.clone().ok_or_else(|| {
            OidcError::Unsupported("the device flow (no device_authorization_endpoint)".into())
        })?;
        let client = self.client(&md)?.set_device_authorization_url(endpoint);
        let http = self.http.clone();
        let send = move |req| http_client::send(http.clone(), req);
        let details: CoreDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(Self::scopes(&md))
            .request_async(&send)
            .await
            .map_err(|e| OidcError::Unreachable(chain(&e)))?;
        Ok(DeviceStart {
            handle: serde_json::to_string(&details)
                .map_err(|e| OidcError::Unreachable(format!("device answer: {e}")))?,
            user_code: details.user_code().secret().clone(),
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details.verification_uri_complete().map(|u| u.secret().clone()),
            expires_in: details.expires_in(),
            interval: details.interval(),
        })
    }

    /// Asks the provider once whether the device code was approved.
    pub async fn poll_device(&self, handle: &str) -> Result<DevicePoll, OidcError> {
        let details: CoreDeviceAuthorizationResponse = serde_json::from_str(handle).map_err(|_| {
            OidcError::refused(Refusal::GrantRejected, "the device code handle is not one of ours")
        })?;
        let md = self.metadata().await?;
        let client = self.client(&md)?;
        let http = self.http.clone();
        let send = move |req| http_client::send(http.clone(), req);
        // The library polls in a loop; one question per call is wanted here (the client polls
        // the gateway). Its clock stands still for the first request and then jumps past any
        // timeout, and its sleep only notes the interval it was asked to wait: so a pending
        // answer ends the loop at once, as "expired" with a noted wait.
        let asked_to_wait: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
        let noted = asked_to_wait.clone();
        let sleep = move |d: Duration| {
            if let Ok(mut w) = noted.lock() {
                *w = Some(d);
            }
            std::future::ready(())
        };
        let calls = AtomicUsize::new(0);
        let start = Utc::now();
        let clock = move || {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                start
            } else {
                start + chrono::Duration::days(3650)
            }
        };
        let answer = client
            .exchange_device_access_token(&details)
            .map_err(|e| OidcError::Unsupported(format!("the device flow: {e}")))?
            .set_time_fn(clock)
            .request_async(&send, sleep, Some(Duration::from_secs(3600)))
            .await;
        let waited = asked_to_wait.lock().ok().and_then(|w| *w);
        match answer {
            Ok(answer) => {
                let raw = answer
                    .id_token()
                    .ok_or_else(|| {
                        OidcError::refused(Refusal::NoIdToken, "the provider answered without an id_token")
                    })?
                    .to_string();
                let claims = self.verify(&raw, None, md).await?;
                Ok(DevicePoll::Done(SignedIn {
                    claims,
                    refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
                }))
            }
            Err(RequestTokenError::ServerResponse(e)) => match (e.error(), waited) {
                (DeviceCodeErrorResponseType::ExpiredToken, Some(interval)) => {
                    Ok(DevicePoll::Pending { interval })
                }
                (DeviceCodeErrorResponseType::AccessDenied, _) => Err(OidcError::refused(
                    Refusal::AccessDenied,
                    "the request was denied at the identity provider",
                )),
                (DeviceCodeErrorResponseType::ExpiredToken, None) => Err(OidcError::refused(
                    Refusal::DeviceCodeExpired,
                    "the device code expired before it was approved; run the command again",
                )),
                (other, _) => {
                    Err(OidcError::refused(Refusal::GrantRejected, format!("the provider refused: {other}")))
                }
            },
            Err(e) => Err(OidcError::Unreachable(chain(&e))),
        }
    }

    /// Renews a sign-in: a new id_token (groups as they are now) and the next refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, OidcError> {
        let md = self.metadata().await?;
        let client = self.client(&md)?;
        let http = self.http.clone();
        let send = move |req| http_client::send(http.clone(), req);
        let token = RefreshToken::new(refresh_token.to_string());
        let answer = client
            .exchange_refresh_token(&token)
            .map_err(|e| OidcError::Unsupported(format!("refresh: {e}")))?
            .request_async(&send)
            .await
            .map_err(token_error)?;
        let raw = answer
            .id_token()
            .ok_or_else(|| {
                OidcError::refused(Refusal::NoIdToken, "the provider renewed the sign-in without an id_token")
            })?
            .to_string();
        let claims = self.verify(&raw, None, md).await?;
        Ok(SignedIn {
            claims,
            // Providers that do not rotate refresh tokens keep the old one valid.
            refresh_token: Some(
                answer.refresh_token().map_or_else(|| refresh_token.to_string(), |t| t.secret().clone()),
            ),
        })
    }

    /// Revokes a refresh token at the provider (RFC 7009), where it offers revocation.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), OidcError> {
        let md = self.metadata().await?;
        let Some(endpoint) = md.additional_metadata().revocation_endpoint.clone() else { return Ok(()) };
        let client = self.client(&md)?.set_revocation_url(endpoint);
        let http = self.http.clone();
        let send = move |req| http_client::send(http.clone(), req);
        let token = CoreRevocableToken::from(RefreshToken::new(refresh_token.to_string()));
        client
            .revoke_token(token)
            .map_err(|e| OidcError::Unsupported(format!("revocation: {e}")))?
            .request_async(&send)
            .await
            .map_err(|e| OidcError::Unreachable(chain(&e)))
    }
}

fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(answer) => {
            let what = answer.error_description().cloned().unwrap_or_else(|| answer.error().to_string());
            OidcError::refused(
                Refusal::GrantRejected,
                format!("the identity provider refused the grant: {what}"),
            )
        }
        other => OidcError::Unreachable(chain(&other)),
    }
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
