//! Sign-in routes: password login, refresh-token rotation, logout.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult};
use rampart_proto::api::{LoginRequest, RefreshRequest, TokenResponse};
use rampart_store::User;

use super::{ApiError, AppState, ClientAddr, JsonBody, UserAgent};
use crate::auth::{self, AccessClaims};
use crate::server::Gateway;

pub async fn login(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = authenticate(&gw, &body, client, user_agent, false).await?;
    Ok(Json(issue_tokens(&gw, &user, None).await?))
}

/// Checks a user name and password under the sign-in rate limits, and audits the attempt
/// (the API's login and the portal's sign-in page, `browser`, both come here).
pub(crate) async fn authenticate(
    gw: &Gateway,
    body: &LoginRequest,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    browser: bool,
) -> Result<User, ApiError> {
    let now = Instant::now();
    if let Some(wait) = gw.limiter.blocked(&body.username, client.ip(), now) {
        audit_sign_in(
            gw,
            &body.username,
            client,
            user_agent.clone(),
            AuditResult::Refused,
            Some("RateLimited"),
        )
        .await?;
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManySignInFailures",
            format!(
                "too many failed sign-ins for '{}' from {}; try again in {} s",
                body.username,
                client.ip(),
                wait.as_secs().max(1)
            ),
        );
        err.retry_after = Some(wait.as_secs().max(1));
        return Err(err);
    }
    let user = gw.store.user_by_name(&body.username).await?;
    // Verify against a fixed hash when the user does not exist, so timing does not tell
    // which user names exist.
    let stored = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| gw.dummy_hash.clone());
    let password = body.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &stored))
        .await
        .map_err(ApiError::internal)?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            gw.limiter.record_failure(&body.username, client.ip(), now);
            audit_sign_in(
                gw,
                &body.username,
                client,
                user_agent.clone(),
                AuditResult::Refused,
                Some("BadCredentials"),
            )
            .await?;
            return Err(ApiError::unauthenticated("wrong user name or password"));
        }
    };
    if let Some(refused) = principal_refusal(gw, &user, body, browser).await? {
        audit_sign_in(
            gw,
            &body.username,
            client,
            user_agent.clone(),
            AuditResult::Refused,
            Some(&refused.code),
        )
        .await?;
        return Err(refused);
    }
    if let Some(refused) = super::mfa::second_factor(gw, &user, body.mfa_code.as_deref()).await? {
        // Being asked for a code is a step of the sign-in, not a failure; a wrong or reused one is.
        if refused.code != "MfaRequired" {
            gw.limiter.record_failure(&body.username, client.ip(), now);
        }
        audit_sign_in(
            gw,
            &user.username,
            client,
            user_agent.clone(),
            AuditResult::Refused,
            Some(&refused.code),
        )
        .await?;
        return Err(refused);
    }
    gw.limiter.clear(&body.username, client.ip());
    audit_sign_in(gw, &user.username, client, user_agent.clone(), AuditResult::Allowed, None).await?;
    Ok(user)
}

/// What refuses a principal whose secret was right: a service principal in the browser
/// portal (automation's identities do not sign in there), or a sign-in naming a tenant that is
/// not this gateway's.
async fn principal_refusal(
    gw: &Gateway,
    user: &User,
    body: &LoginRequest,
    browser: bool,
) -> Result<Option<ApiError>, ApiError> {
    if browser && user.kind == rampart_core::IdentityKind::ServicePrincipal {
        return Ok(Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "NotInteractive",
            "a service principal signs in with `rampart login --service-principal`, not in the browser",
        )));
    }
    if let Some(asked) = &body.tenant {
        let tenant = super::principals::tenant(gw).await?;
        if !asked.trim().eq_ignore_ascii_case(&tenant) {
            let asked: String = asked.chars().take(64).collect();
            return Ok(Some(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "TenantMismatch",
                format!("tenant '{asked}' is not this gateway's ({tenant})"),
            )));
        }
    }
    Ok(None)
}

/// A federated sign-in is renewed at its provider too: the provider may refuse (the user was
/// disabled or signed out there), and the groups are read again, so a user removed from a
/// group loses what the group granted at this refresh.
pub async fn refresh(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    crate::federation::GatewayOrigin(origin): crate::federation::GatewayOrigin,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let hash = auth::refresh_token_hash(&body.refresh_token);
    let user_id = gw.store.consume_refresh_token(&hash, Utc::now().timestamp()).await?.ok_or_else(|| {
        ApiError::unauthenticated(
            "the refresh token is unknown, expired or revoked; sign in again with `rampart login`",
        )
    })?;
    let upstream = gw.store.take_upstream_token(&hash).await?;
    let user = gw
        .store
        .user_by_id(&user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the user no longer exists"))?;
    let Some((provider_name, upstream_token)) = upstream else {
        return Ok(Json(issue_tokens(&gw, &user, None).await?));
    };
    let (record, provider) = gw.providers.get(&gw, &provider_name, &origin).await?;
    let signed_in = match provider.refresh(&upstream_token).await {
        Ok(s) => s,
        Err(e) => {
            let err = crate::federation::oidc_error(&e);
            return Err(crate::federation::refuse(&gw, &provider_name, client, user_agent, err).await);
        }
    };
    let user = crate::federation::complete(&gw, &record, &signed_in, client, user_agent).await?;
    let upstream = signed_in.refresh_token.as_deref().map(|rt| (record.name.as_str(), rt));
    Ok(Json(issue_tokens(&gw, &user, upstream).await?))
}

/// Revokes the refresh token, and a federated sign-in's at its provider too.
pub async fn logout(
    State(gw): State<AppState>,
    crate::federation::GatewayOrigin(origin): crate::federation::GatewayOrigin,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let hash = auth::refresh_token_hash(&body.refresh_token);
    gw.store.consume_refresh_token(&hash, Utc::now().timestamp()).await?;
    if let Some((name, upstream)) = gw.store.take_upstream_token(&hash).await? {
        let (_, provider) = gw.providers.get(&gw, &name, &origin).await?;
        if let Err(e) = provider.revoke(&upstream).await {
            tracing::warn!(provider = %name, error = %e, "cannot revoke the sign-in at the identity provider");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An access token and a refresh token for `user`; a federated sign-in's provider refresh
/// token (`upstream`: provider, token) is kept behind the new refresh token.
pub(crate) async fn issue_tokens(
    gw: &Gateway,
    user: &User,
    upstream: Option<(&str, &str)>,
) -> Result<TokenResponse, ApiError> {
    let now = Utc::now().timestamp();
    let access = gw
        .keys
        .sign_access(&AccessClaims::new(&user.id, &user.username, now, gw.config.access_token_ttl))
        .map_err(ApiError::internal)?;
    let refresh_token = auth::random_secret(32);
    gw.store
        .insert_refresh_token(
            &auth::refresh_token_hash(&refresh_token),
            &user.id,
            now + auth::ttl_secs(gw.config.refresh_token_ttl),
        )
        .await?;
    if let Some((provider, token)) = upstream {
        gw.store.put_upstream_token(&auth::refresh_token_hash(&refresh_token), provider, token).await?;
    }
    Ok(TokenResponse {
        access_token: access,
        expires_in: gw.config.access_token_ttl.as_secs(),
        refresh_token,
        username: user.username.clone(),
    })
}

async fn audit_sign_in(
    gw: &Gateway,
    username: &str,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    result: AuditResult,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::SignIn, result);
    e.user_agent = user_agent;
    e.user = Some(username.chars().take(128).collect());
    e.client_address = Some(client.to_string());
    e.reason_code = reason.map(str::to_string);
    gw.store.append_audit(&e).await?;
    Ok(())
}
