//! Single sign-on with OpenID Connect providers: the providers as configured (applied live:
//! read from the store on every flow, the discovered client kept while its settings stay the
//! same), and what every federated flow ends with: the provider's claims become a principal
//! (`alice@corp`) with its groups, and the sign-in is audited. The flows themselves are in
//! [`web`] (the browser's, for the portal and the CLI's loopback) and in the API
//! (`api::federation`: the device flow, the CLI's token exchange).

pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult};
use rampart_oidc::{ClaimRules, OidcError, Provider, ProviderConfig, SignedIn};
use rampart_store::{IdentityProviderRecord, User};

use crate::api::ApiError;
use crate::server::Gateway;

/// Where the provider sends the browser back: register exactly this at the provider.
pub const CALLBACK: &str = "/auth/oidc/{name}/callback";
pub const LOGIN: &str = "/auth/oidc/{name}/login";

/// The discovered clients, by provider name, with the settings they were made from.
#[derive(Default)]
pub struct Providers {
    clients: Mutex<HashMap<String, (String, Arc<Provider>)>>,
}

/// The gateway's own address as the client used it (`https://HOST`), what the redirect URI
/// is built from: HTTP/2's `:authority`, else HTTP/1's Host. A forged one only makes a
/// redirect URI the provider does not know.
pub struct GatewayOrigin(pub String);

impl<S: Send + Sync> FromRequestParts<S> for GatewayOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let from_uri = parts.uri.authority().map(|a| a.as_str().to_string());
        let from_header =
            || parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
        let host = from_uri
            .or_else(from_header)
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
            .ok_or_else(|| ApiError::bad_request("NoHost", "the request names no usable Host"))?;
        Ok(GatewayOrigin(format!("https://{host}")))
    }
}

pub fn redirect_uri(origin: &str, provider: &str) -> String {
    format!("{origin}{}", CALLBACK.replace("{name}", provider))
}

impl Providers {
    /// The provider named `name` as the store has it now, and its client.
    pub async fn get(
        &self,
        gw: &Gateway,
        name: &str,
        origin: &str,
    ) -> Result<(IdentityProviderRecord, Arc<Provider>), ApiError> {
        let record = gw.store.identity_provider(name).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "IdentityProviderNotFound",
                format!("no identity provider is named '{}'", name.chars().take(64).collect::<String>()),
            )
        })?;
        let config = ProviderConfig {
            issuer: record.issuer.clone(),
            client_id: record.client_id.clone(),
            client_secret: record.client_secret.clone(),
            ca_pem: record.ca_pem.clone(),
            redirect_uri: redirect_uri(origin, &record.name),
        };
        let fingerprint = format!(
            "{}\n{}\n{}\n{}\n{}",
            config.issuer,
            config.client_id,
            crate::auth::refresh_token_hash(&config.client_secret),
            config.ca_pem.as_deref().unwrap_or(""),
            config.redirect_uri
        );
        let key = format!("{}\n{}", record.name.to_lowercase(), config.redirect_uri);
        let mut clients = self.clients.lock().map_err(|_| ApiError::internal("provider cache poisoned"))?;
        if let Some((seen, provider)) = clients.get(&key)
            && *seen == fingerprint
        {
            return Ok((record, provider.clone()));
        }
        let provider = Arc::new(Provider::new(config).map_err(|e| oidc_error(&e))?);
        clients.insert(key, (fingerprint, provider.clone()));
        Ok((record, provider))
    }
}

/// An error of the provider's side as the API answers it.
pub fn oidc_error(e: &OidcError) -> ApiError {
    let status = match e {
        OidcError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        OidcError::Unsupported(_) | OidcError::Config(_) => StatusCode::CONFLICT,
        OidcError::Refused { .. } => StatusCode::UNAUTHORIZED,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// Records a refused federated sign-in (and counts it against the sign-in limits) and returns
/// the error to answer with.
pub async fn refuse(
    gw: &Gateway,
    provider: &str,
    client: SocketAddr,
    user_agent: Option<String>,
    error: ApiError,
) -> ApiError {
    gw.limiter.record_failure(&limiter_key(provider), client.ip(), Instant::now());
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::SignIn, AuditResult::Refused);
    e.user = Some(format!("(via {provider})"));
    e.client_address = Some(client.to_string());
    e.user_agent = user_agent;
    e.reason_code = Some(error.code.clone());
    e.reason = Some(error.message.chars().take(300).collect());
    match gw.store.append_audit(&e).await {
        Ok(_) => error,
        Err(err) => ApiError::from(err),
    }
}

/// The sign-in limiter's key for a provider's flows (per client address, like a user name's).
pub fn limiter_key(provider: &str) -> String {
    format!("oidc:{}", provider.to_lowercase())
}

/// Refuses at once when this address failed too often with this provider.
pub async fn check_limits(
    gw: &Gateway,
    provider: &str,
    client: SocketAddr,
    user_agent: Option<String>,
) -> Result<(), ApiError> {
    if let Some(wait) = gw.limiter.blocked(&limiter_key(provider), client.ip(), Instant::now()) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimited",
            format!(
                "too many failed sign-ins with '{provider}' from {}; try again in {} s",
                client.ip(),
                wait.as_secs().max(1)
            ),
        );
        err.retry_after = Some(wait.as_secs().max(1));
        let mut e = AuditEntry::new(Utc::now(), AuditEvent::SignIn, AuditResult::Refused);
        e.user = Some(format!("(via {provider})"));
        e.client_address = Some(client.to_string());
        e.user_agent = user_agent;
        e.reason_code = Some("RateLimited".into());
        gw.store.append_audit(&e).await?;
        return Err(err);
    }
    Ok(())
}

/// What every federated flow ends with: the claims read by the provider's rules, the user
/// (made at the first sign-in) with its groups as the token lists them now, and the audit
/// record. A change of groups reaches live sessions through the store's change notice.
pub async fn complete(
    gw: &Gateway,
    record: &IdentityProviderRecord,
    signed_in: &SignedIn,
    client: SocketAddr,
    user_agent: Option<String>,
) -> Result<User, ApiError> {
    let rules = ClaimRules {
        provider: record.name.clone(),
        username_claim: record.username_claim.clone(),
        groups_claim: record.groups_claim.clone(),
        allowed_domains: record.allowed_domains.clone(),
    };
    let claims = match rules.read(&signed_in.claims) {
        Ok(c) => c,
        Err(e) => return Err(refuse(gw, &record.name, client, user_agent, oidc_error(&e)).await),
    };
    let user = match gw.store.federated_user(&record.name, &claims.subject, &claims.principal_name).await {
        Ok(u) => u,
        Err(rampart_store::StoreError::Conflict(_)) => {
            let err = ApiError::new(
                StatusCode::CONFLICT,
                "NameTaken",
                format!(
                    "'{}' is a local principal's name; an administrator must rename one",
                    claims.principal_name
                ),
            );
            return Err(refuse(gw, &record.name, client, user_agent, err).await);
        }
        Err(e) => return Err(e.into()),
    };
    let changed = gw.store.set_memberships(&user.id, &record.name, &claims.groups).await?;
    gw.limiter.clear(&limiter_key(&record.name), client.ip());
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::SignIn, AuditResult::Allowed);
    e.user = Some(user.username.clone());
    e.client_address = Some(client.to_string());
    e.user_agent = user_agent;
    e.reason = Some(format!(
        "signed in with {} (groups: {}{})",
        record.name,
        if claims.groups.is_empty() { "none".to_string() } else { claims.groups.join(", ") },
        if changed { "; changed" } else { "" }
    ));
    gw.store.append_audit(&e).await?;
    Ok(user)
}
