//! The gateway as the cloud's metadata and OAuth 2.0 authority, in the shapes az and MSAL read:
//! `GET /metadata/endpoints` (what `az cloud register` discovers), the authority's OpenID
//! configuration under `/{tenant}/v2.0/`, and its token endpoint. The tokens are Rampart's own
//! access tokens, so the ARM-shaped API and `/api/tokens` accept them as every other route
//! does. Sign-in goes through the same checks, rate limits and audit as `rampart login`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, IdentityKind};
use rampart_proto::api::LoginRequest;
use serde_json::{Value, json};

use super::{auth_code, device, ssh_cert};
use crate::api::{AppState, AuthUser, ClientAddr, UserAgent};
use crate::auth::AccessClaims;
use crate::federation::GatewayOrigin;
use crate::server::Gateway;

/// The tenants MSAL names when it does not know the user's: accepted for users' flows.
const MULTI_TENANT: [&str; 3] = ["organizations", "common", "consumers"];

/// `GET /metadata/endpoints`: this gateway as an Azure cloud. The resource manager, the
/// authority and the token audience are all the gateway itself.
pub async fn metadata(GatewayOrigin(origin): GatewayOrigin) -> Json<Value> {
    let root = format!("{origin}/");
    Json(json!({
        "name": "Rampart",
        "portal": format!("{origin}/portal"),
        "resourceManager": root,
        "authentication": {
            "loginEndpoint": root,
            "audiences": [root],
            "tenant": "organizations",
            "identityProvider": "AAD",
        },
        "suffixes": {},
    }))
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: where MSAL finds the endpoints.
pub async fn openid_configuration(
    State(gw): State<AppState>,
    GatewayOrigin(origin): GatewayOrigin,
    Path(tenant): Path<String>,
) -> Response {
    let tenant = match known_tenant(&gw, &tenant).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let base = format!("{origin}/{tenant}");
    Json(json!({
        "issuer": format!("{base}/v2.0"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "grant_types_supported": ["client_credentials", "refresh_token", "authorization_code", DEVICE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "scopes_supported": ["openid", "profile", "offline_access"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "tenant_region_scope": null,
        "cloud_instance_name": origin.trim_start_matches("https://"),
    }))
    .into_response()
}

/// The path's tenant, if it is this gateway's (or one of MSAL's multi-tenant names).
async fn known_tenant(gw: &Gateway, asked: &str) -> Result<String, OAuthError> {
    let ours = crate::api::principals::tenant(gw).await.map_err(|e| OAuthError::server(&e.message))?;
    if asked.eq_ignore_ascii_case(&ours) || MULTI_TENANT.iter().any(|t| asked.eq_ignore_ascii_case(t)) {
        return Ok(asked.to_ascii_lowercase());
    }
    let asked: String = asked.chars().take(64).collect();
    Err(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        format!(
            "tenant '{asked}' is not this gateway's ({ours}); `rampart az-setup` prints the commands for it"
        ),
    ))
}

/// `POST /{tenant}/oauth2/v2.0/token` (a form): `client_credentials` for a service principal.
pub async fn token(
    State(gw): State<AppState>,
    GatewayOrigin(origin): GatewayOrigin,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let answer = async {
        let tenant = known_tenant(&gw, &tenant).await?;
        let certificate = ssh_cert::ask(&form)?;
        let scope = form.get("scope").map(String::as_str).unwrap_or_default();
        check_scope(&origin, scope, certificate.is_some())?;
        let asked = Asked { client, user_agent: user_agent.clone(), certificate, nonce: None };
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => client_credentials(&gw, &tenant, &form, asked).await,
            Some(DEVICE_GRANT) => device_grant(&gw, &origin, &tenant, &form, asked).await,
            Some("refresh_token") => refresh_grant(&gw, &origin, &tenant, &form, asked).await,
            Some("authorization_code") => code_grant(&gw, &origin, &tenant, &form, asked).await,
            Some(other) => {
                let other: String = other.chars().take(80).collect();
                Err(OAuthError::bad(
                    "unsupported_grant_type",
                    format!("grant type '{other}' is not offered here"),
                ))
            }
            None => Err(OAuthError::bad("invalid_request", "grant_type is missing")),
        }
    };
    match answer.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            // Waiting for an approval is not a refusal; a wrong secret is audited by the
            // sign-in itself; everything else (a reused code, a wrong PKCE verifier, an unknown
            // refresh token, a foreign scope) is, here.
            let grant = form.get("grant_type").map(String::as_str).unwrap_or_default();
            let audited_elsewhere = e.code == "authorization_pending"
                || (grant == "client_credentials" && e.code != "invalid_scope")
                || e.code == "server_error";
            if !audited_elsewhere {
                let mut entry = AuditEntry::new(Utc::now(), AuditEvent::SignIn, AuditResult::Refused);
                entry.client_address = Some(client.to_string());
                entry.user_agent = user_agent;
                entry.reason_code = Some(e.code.to_string());
                entry.reason = Some(format!(
                    "az token request ({}): {}",
                    grant.chars().take(60).collect::<String>(),
                    e.description
                ));
                if let Err(err) = gw.store.append_audit(&entry).await {
                    return OAuthError::server(&err.to_string()).into_response();
                }
            }
            e.into_response()
        }
    }
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`: a code the user approves in the portal.
pub async fn device_code(
    State(gw): State<AppState>,
    GatewayOrigin(origin): GatewayOrigin,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let answer = async {
        known_tenant(&gw, &tenant).await?;
        check_scope(&origin, form.get("scope").map(String::as_str).unwrap_or_default(), false)?;
        let client_id = form
            .get("client_id")
            .ok_or_else(|| OAuthError::bad("invalid_request", "client_id is required"))?;
        let (device_code, user_code) =
            device::issue(&gw, client_id, Utc::now().timestamp()).map_err(|e| OAuthError::server(&e))?;
        let uri = format!("{origin}{}", crate::portal::DEVICE);
        Ok::<_, OAuthError>(json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?code={user_code}"),
            "expires_in": device::DEVICE_CODE_TTL_SECS,
            "interval": device::POLL_INTERVAL_SECS,
            "message": format!(
                "To sign in, open {uri} in a browser, sign in to Rampart and enter the code {user_code} to approve this sign-in."
            ),
        }))
    };
    match answer.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// az polls: pending until the user approves the code, then the user's tokens (once).
async fn device_grant(
    gw: &Gateway,
    origin: &str,
    tenant: &str,
    form: &HashMap<String, String>,
    asked: Asked,
) -> Result<Value, OAuthError> {
    let code = form
        .get("device_code")
        .ok_or_else(|| OAuthError::bad("invalid_request", "device_code is required"))?;
    let claims = device::verify(gw, code).map_err(|(code, why)| OAuthError::bad(code, why))?;
    let approved = gw
        .store
        .consume_refresh_token(&device::approval_key(&claims.user_code), Utc::now().timestamp())
        .await
        .map_err(|e| OAuthError::server(&e.to_string()))?;
    let Some(user_id) = approved else {
        return Err(OAuthError::bad(
            "authorization_pending",
            "the code has not been approved in the portal yet",
        ));
    };
    user_tokens(gw, origin, tenant, &user_id, &claims.client_id, asked).await
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: plain `az login`'s browser lands here and goes on to
/// the portal's page (behind its sign-in), the query unchanged.
pub async fn authorize(uri: axum::http::Uri) -> axum::response::Redirect {
    let query = uri.query().unwrap_or_default();
    axum::response::Redirect::to(&format!("{}?{query}", crate::portal::AUTHORIZE))
}

/// A code from the browser step, redeemed with its PKCE verifier.
async fn code_grant(
    gw: &Gateway,
    origin: &str,
    tenant: &str,
    form: &HashMap<String, String>,
    mut asked: Asked,
) -> Result<Value, OAuthError> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let now = Utc::now().timestamp();
    let claims = auth_code::redeem(
        gw,
        field("code"),
        field("redirect_uri"),
        field("client_id"),
        field("code_verifier"),
        now,
    )
    .await
    .map_err(|why| OAuthError::bad("invalid_grant", why))?;
    asked.nonce = Some(claims.nonce.clone());
    user_tokens(gw, origin, tenant, &claims.sub, field("client_id"), asked).await
}

/// A refresh token (one-time, as `rampart login`'s) for new tokens.
async fn refresh_grant(
    gw: &Gateway,
    origin: &str,
    tenant: &str,
    form: &HashMap<String, String>,
    asked: Asked,
) -> Result<Value, OAuthError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::bad("invalid_request", "refresh_token is required"))?;
    let hash = crate::auth::refresh_token_hash(token);
    let server = |e: rampart_store::StoreError| OAuthError::server(&e.to_string());
    let now = Utc::now().timestamp();
    // A certificate the user may not have must not cost them their sign-in: checked before
    // the refresh token is used.
    if let Some(user_id) = gw.store.refresh_token_user(&hash, now).await.map_err(server)?
        && asked.certificate.is_some()
    {
        let user = gw.store.user_by_id(&user_id).await.map_err(server)?;
        if let Some(user) = user {
            let claims = AccessClaims::new(&user.id, &user.username, now, gw.config.access_token_ttl);
            let caller = AuthUser { claims, client: asked.client, user_agent: asked.user_agent.clone() };
            ssh_cert::check(gw, caller).await?;
        }
    }
    let user_id = gw.store.consume_refresh_token(&hash, now).await.map_err(server)?;
    let Some(user_id) = user_id else {
        return Err(OAuthError::bad(
            "invalid_grant",
            "the refresh token is unknown, expired or revoked; sign in again with `az login`",
        ));
    };
    if gw.store.take_upstream_token(&hash).await.map_err(server)?.is_some() {
        return Err(OAuthError::bad(
            "invalid_grant",
            "this refresh token is `rampart login`'s (renewed at the identity provider); sign in with `az login`",
        ));
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or_default();
    user_tokens(gw, origin, tenant, &user_id, client_id, asked).await
}

/// A user's tokens as MSAL reads them: Rampart's access and refresh tokens (or an SSH
/// certificate in place of the access token), an ID token naming the user and `client_info`
/// (MSAL's account key).
async fn user_tokens(
    gw: &Gateway,
    origin: &str,
    tenant: &str,
    user_id: &str,
    client_id: &str,
    asked: Asked,
) -> Result<Value, OAuthError> {
    let server = |e: String| OAuthError::server(&e);
    let user = gw.store.user_by_id(user_id).await.map_err(|e| server(e.to_string()))?;
    let Some(user) = user.filter(|u| u.kind == IdentityKind::User) else {
        return Err(OAuthError::bad("invalid_grant", "the user no longer exists"));
    };
    let now = Utc::now().timestamp();
    // The certificate first: refused, no tokens are issued.
    let certificate = match &asked.certificate {
        Some(ask) => {
            let claims = AccessClaims::new(&user.id, &user.username, now, gw.config.access_token_ttl);
            let caller = AuthUser { claims, client: asked.client, user_agent: asked.user_agent.clone() };
            Some(ssh_cert::issue(gw, caller, ask).await?)
        }
        None => None,
    };
    // A federated user's sign-in is renewed at their identity provider, which az cannot do
    // here: no refresh token, so az signs in again (at the provider) once the access token ends.
    let tokens = if user.identity_provider.is_some() {
        let ttl = gw.config.access_token_ttl;
        let claims = AccessClaims::new(&user.id, &user.username, now, ttl);
        let access_token = gw.keys.sign_access(&claims).map_err(|e| server(e.to_string()))?;
        rampart_proto::api::TokenResponse {
            access_token,
            expires_in: ttl.as_secs(),
            refresh_token: String::new(),
            username: user.username.clone(),
        }
    } else {
        crate::api::session::issue_tokens(gw, &user, None).await.map_err(|e| server(e.message))?
    };
    let directory = crate::api::principals::tenant(gw).await.map_err(|e| server(e.message))?;
    let id_token = gw
        .keys
        .sign_id_token(&json!({
            "iss": format!("{origin}/{tenant}/v2.0"),
            "sub": user.id,
            "aud": client_id,
            "iat": now,
            "exp": now + i64::try_from(tokens.expires_in).unwrap_or(3600),
            "oid": user.id,
            "tid": directory,
            "preferred_username": user.username,
            "name": user.display_name.as_deref().unwrap_or(&user.username),
            "ver": "2.0",
            "nonce": asked.nonce.as_deref().filter(|n| !n.is_empty()),
        }))
        .map_err(|e| server(e.to_string()))?;
    let client_info = json!({"uid": user.id, "utid": directory}).to_string();
    let (token_type, access_token, expires_in) = match certificate {
        Some((body, ttl)) => ("ssh-cert", body, ttl),
        None => ("Bearer", tokens.access_token, tokens.expires_in),
    };
    let mut answer = json!({
        "token_type": token_type,
        "scope": format!("{origin}//.default openid profile offline_access"),
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
        "refresh_token": tokens.refresh_token,
        "id_token": id_token,
        "client_info": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(client_info),
    });
    if let Some(fields) = answer.as_object_mut()
        && tokens.refresh_token.is_empty()
    {
        fields.remove("refresh_token");
    }
    Ok(answer)
}

/// Who asked, from where, and for an SSH certificate instead of an access token or not.
struct Asked {
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    certificate: Option<ssh_cert::CertificateAsk>,
    /// The authorization request's nonce, echoed in the ID token.
    nonce: Option<String>,
}

/// Every scope asked for must be this gateway's resource or one of OpenID's own (or, for an
/// SSH certificate, the one az's `ssh` extension names).
pub(crate) fn check_scope(origin: &str, scope: &str, certificate: bool) -> Result<(), OAuthError> {
    for s in scope.split_whitespace() {
        if ["openid", "profile", "offline_access", "email"].contains(&s)
            || (certificate && ssh_cert::is_certificate_scope(s))
        {
            continue;
        }
        let resource = s.strip_suffix(".default").unwrap_or(s).trim_end_matches('/');
        if !resource.eq_ignore_ascii_case(origin) {
            let s: String = s.chars().take(200).collect();
            return Err(OAuthError::bad(
                "invalid_scope",
                format!("scope '{s}' is not this gateway's ({origin}/.default)"),
            ));
        }
    }
    Ok(())
}

async fn client_credentials(
    gw: &Gateway,
    tenant: &str,
    form: &HashMap<String, String>,
    asked: Asked,
) -> Result<Value, OAuthError> {
    let Asked { client, user_agent, certificate, .. } = asked;
    if form.contains_key("client_assertion") {
        return Err(OAuthError::bad(
            "invalid_client",
            "certificate credentials are not offered; sign in with the client secret",
        ));
    }
    let (Some(client_id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return Err(OAuthError::bad("invalid_request", "client_id and client_secret are required"));
    };
    let login = LoginRequest {
        username: client_id.clone(),
        password: secret.clone(),
        tenant: (!MULTI_TENANT.contains(&tenant)).then(|| tenant.to_string()),
        mfa_code: None,
    };
    let user = crate::api::session::authenticate(gw, &login, client, user_agent.clone(), false)
        .await
        .map_err(|e| OAuthError::new(e.status, oauth_code(e.status), e.message))?;
    if user.kind != IdentityKind::ServicePrincipal {
        let mut entry = AuditEntry::new(Utc::now(), AuditEvent::SignIn, AuditResult::Refused);
        entry.user = Some(user.username.clone());
        entry.client_address = Some(client.to_string());
        entry.user_agent = user_agent;
        entry.reason_code = Some("NotServicePrincipal".into());
        gw.store.append_audit(&entry).await.map_err(|e| OAuthError::server(&e.to_string()))?;
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "client credentials are a service principal's; a user signs in with `az login --use-device-code`",
        ));
    }
    let now = Utc::now().timestamp();
    let ttl = gw.config.access_token_ttl;
    let claims = AccessClaims::new(&user.id, &user.username, now, ttl);
    if let Some(ask) = certificate {
        let (body, ttl) = ssh_cert::issue(gw, AuthUser { claims, client, user_agent }, &ask).await?;
        return Ok(
            json!({"token_type": "ssh-cert", "expires_in": ttl, "ext_expires_in": ttl, "access_token": body}),
        );
    }
    let access = gw.keys.sign_access(&claims).map_err(|e| OAuthError::server(&e.to_string()))?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(),
        "access_token": access,
    }))
}

/// The OAuth error code for an API refusal's status.
fn oauth_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::TOO_MANY_REQUESTS => "temporarily_unavailable",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "invalid_client",
        _ => "invalid_request",
    }
}

/// An OAuth 2.0 error answer (`{"error", "error_description"}`), which MSAL and az print.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl OAuthError {
    pub(crate) fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, code, description: description.into() }
    }

    pub(crate) fn bad(code: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, description)
    }

    pub(crate) fn server(what: &str) -> Self {
        tracing::error!(error = %what, "internal error at the token endpoint");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the gateway failed; its log says why")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "error_description": self.description, "error_codes": []});
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_own_scope_is_granted() {
        let origin = "https://gw.example:8443";
        let own = "https://gw.example:8443//.default offline_access openid profile";
        assert!(check_scope(origin, own, false).is_ok());
        assert!(check_scope(origin, "https://gw.example:8443/.default", false).is_ok());
        let pas = "https://pas.windows.net/CheckMyAccess/Linux/.default";
        assert!(check_scope(origin, pas, true).is_ok() && check_scope(origin, pas, false).is_err());
        let foreign = "https://management.core.windows.net//.default";
        let refused = check_scope(origin, foreign, false).expect_err("foreign");
        assert_eq!(refused.code, "invalid_scope");
        assert!(refused.description.contains("management.core.windows.net"));
    }
}
