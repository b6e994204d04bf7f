//! Single sign-on's API: identity providers (`rampart identity-provider …`), groups
//! (`rampart ad group …`), and the CLI's flows: the device flow and redeeming the code the
//! browser handed to the CLI's loopback port.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use rampart_core::{AuditEvent, IdentityKind};
use rampart_oidc::DevicePoll;
use rampart_proto::api::TokenResponse;
use rampart_proto::directory::{
    DeviceCodeView, FederatedTokenRequest, GroupCreate, GroupView, IdentityProviderCreate,
    IdentityProviderView,
};
use rampart_store::IdentityProviderRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::access::{USERS_READ, USERS_WRITE};
use super::caller::Caller;
use super::{ApiError, AppState, ClientAddr, JsonBody, UserAgent};
use crate::federation::{self, GatewayOrigin, check_limits, complete, oidc_error, refuse};

const DEVICE_AUDIENCE: &str = "rampart-oidc-device";

fn view(p: &IdentityProviderRecord, origin: &str) -> IdentityProviderView {
    IdentityProviderView {
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        client_id: p.client_id.clone(),
        username_claim: p.username_claim.clone(),
        groups_claim: p.groups_claim.clone(),
        allowed_domains: p.allowed_domains.clone(),
        private_ca: p.ca_pem.is_some(),
        redirect_uri: federation::redirect_uri(origin, &p.name),
        created_at: p.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

fn claim_name(value: Option<String>, default: &str, what: &str) -> Result<String, ApiError> {
    let v = value.map(|v| v.trim().to_string()).unwrap_or_else(|| default.to_string());
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request("InvalidClaimName", format!("{what} '{v}' is not a claim name")));
    }
    Ok(v)
}

/// `POST /api/identityProviders`: checked against the provider (discovery and keys) before it
/// is stored, so a typo is found now and not at the first sign-in.
pub async fn create_provider(
    State(gw): State<AppState>,
    caller: Caller,
    GatewayOrigin(origin): GatewayOrigin,
    JsonBody(body): JsonBody<IdentityProviderCreate>,
) -> Result<(StatusCode, Json<IdentityProviderView>), ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let name = body.name.trim().to_string();
    rampart_core::resource_id::validate_name(&name)
        .map_err(|e| ApiError::bad_request("InvalidIdentityProviderName", e.to_string()))?;
    if body.client_id.trim().is_empty() || body.client_secret.is_empty() {
        return Err(ApiError::bad_request("MissingClientCredentials", "give the client ID and its secret"));
    }
    let mut domains = Vec::new();
    for d in &body.allowed_domains {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || !d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(ApiError::bad_request("InvalidDomain", format!("'{d}' is not a domain name")));
        }
        domains.push(d);
    }
    let record = IdentityProviderRecord {
        name: name.clone(),
        issuer: body.issuer.trim().to_string(),
        client_id: body.client_id.trim().to_string(),
        client_secret: body.client_secret.clone(),
        username_claim: claim_name(body.username_claim, "preferred_username", "username claim")?,
        groups_claim: claim_name(body.groups_claim, "groups", "groups claim")?,
        allowed_domains: domains,
        ca_pem: body.ca_pem.filter(|p| !p.trim().is_empty()),
        created_at: Utc::now(),
    };
    let provider = rampart_oidc::Provider::new(rampart_oidc::ProviderConfig {
        issuer: record.issuer.clone(),
        client_id: record.client_id.clone(),
        client_secret: record.client_secret.clone(),
        ca_pem: record.ca_pem.clone(),
        redirect_uri: federation::redirect_uri(&origin, &record.name),
    })
    .map_err(|e| oidc_error(&e))?;
    provider.check().await.map_err(|e| oidc_error(&e))?;
    gw.store.create_identity_provider(&record).await?;
    caller
        .record(
            &gw,
            AuditEvent::UserChange,
            &format!("identityProviders/{name}"),
            format!("added identity provider {name} ({})", record.issuer),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&record, &origin))))
}

pub async fn list_providers(
    State(gw): State<AppState>,
    caller: Caller,
    GatewayOrigin(origin): GatewayOrigin,
) -> Result<Json<Vec<IdentityProviderView>>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::Read, USERS_READ).await?;
    Ok(Json(gw.store.list_identity_providers().await?.iter().map(|p| view(p, &origin)).collect()))
}

pub async fn show_provider(
    State(gw): State<AppState>,
    caller: Caller,
    GatewayOrigin(origin): GatewayOrigin,
    Path(name): Path<String>,
) -> Result<Json<IdentityProviderView>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::Read, USERS_READ).await?;
    let p = gw.store.identity_provider(&name).await?.ok_or_else(|| not_found(&name))?;
    Ok(Json(view(&p, &origin)))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "IdentityProviderNotFound",
        format!("no identity provider is named '{}'", name.chars().take(64).collect::<String>()),
    )
}

/// Deleting a provider deletes its users and groups: their sessions lose their access.
pub async fn delete_provider(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    gw.store.delete_identity_provider(&name).await.map_err(|e| match e {
        rampart_store::StoreError::NotFound(_) => not_found(&name),
        other => other.into(),
    })?;
    caller
        .record(
            &gw,
            AuditEvent::UserChange,
            &format!("identityProviders/{name}"),
            format!("deleted identity provider {name} with its users and groups"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the device handle holds, signed so only this gateway's handles are polled.
#[derive(Serialize, Deserialize)]
struct DeviceHandle {
    aud: String,
    sub: String,
    exp: i64,
    details: String,
}

/// `POST /api/auth/oidc/{name}/devicecode`
pub async fn device_code(
    State(gw): State<AppState>,
    Path(name): Path<String>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    GatewayOrigin(origin): GatewayOrigin,
) -> Result<Json<DeviceCodeView>, ApiError> {
    check_limits(&gw, &name, client, user_agent).await?;
    let (record, provider) = gw.providers.get(&gw, &name, &origin).await?;
    let start = provider.start_device().await.map_err(|e| oidc_error(&e))?;
    let handle = DeviceHandle {
        aud: DEVICE_AUDIENCE.into(),
        sub: record.name.clone(),
        exp: Utc::now().timestamp() + crate::auth::ttl_secs(start.expires_in),
        details: start.handle,
    };
    let device_code = gw.keys.sign(&handle).map_err(ApiError::internal)?;
    Ok(Json(DeviceCodeView {
        message: format!(
            "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
            start.verification_uri, start.user_code
        ),
        user_code: start.user_code,
        verification_uri: start.verification_uri,
        verification_uri_complete: start.verification_uri_complete,
        expires_in: start.expires_in.as_secs(),
        interval: start.interval.as_secs().max(1),
        device_code,
    }))
}

/// `POST /api/auth/oidc/{name}/token`: a device code (answered 400 `AuthorizationPending`
/// until approved) or the loopback code with its PKCE verifier.
pub async fn token(
    State(gw): State<AppState>,
    Path(name): Path<String>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    GatewayOrigin(origin): GatewayOrigin,
    JsonBody(body): JsonBody<FederatedTokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    check_limits(&gw, &name, client, user_agent.clone()).await?;
    match (&body.device_code, &body.code, &body.code_verifier) {
        (Some(device), None, None) => {
            let (record, provider) = gw.providers.get(&gw, &name, &origin).await?;
            let handle: DeviceHandle = match gw.keys.verify(device, DEVICE_AUDIENCE) {
                Ok(h) => h,
                Err(why) => {
                    let e = ApiError::unauthenticated(format!("the device code is not valid here: {why}"));
                    return Err(refuse(&gw, &name, client, user_agent, e).await);
                }
            };
            if !handle.sub.eq_ignore_ascii_case(&record.name) {
                let e = ApiError::unauthenticated("the device code was issued for another identity provider");
                return Err(refuse(&gw, &name, client, user_agent, e).await);
            }
            match provider.poll_device(&handle.details).await {
                Ok(DevicePoll::Pending { interval }) => {
                    let mut e = ApiError::bad_request(
                        "AuthorizationPending",
                        "the code has not been approved at the identity provider yet",
                    );
                    e.retry_after = Some(interval.as_secs().max(1));
                    Err(e)
                }
                Ok(DevicePoll::Done(signed_in)) => {
                    let user = complete(&gw, &record, &signed_in, client, user_agent).await?;
                    let upstream = signed_in.refresh_token.as_deref().map(|rt| (record.name.as_str(), rt));
                    Ok(Json(super::session::issue_tokens(&gw, &user, upstream).await?))
                }
                Err(e) => Err(refuse(&gw, &name, client, user_agent, oidc_error(&e)).await),
            }
        }
        (None, Some(code), Some(verifier)) => {
            let challenge = pkce_challenge(verifier);
            let key = federation::web::handoff_key(code, &challenge);
            let now = Utc::now().timestamp();
            let Some(user_id) = gw.store.consume_refresh_token(&key, now).await? else {
                let e = ApiError::unauthenticated(
                    "the sign-in code is unknown, used, expired, or not for this verifier; run `rampart login` again",
                );
                return Err(refuse(&gw, &name, client, user_agent, e).await);
            };
            let upstream = gw.store.take_upstream_token(&key).await?;
            let user = gw
                .store
                .user_by_id(&user_id)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("the user no longer exists"))?;
            let upstream = upstream.as_ref().map(|(p, rt)| (p.as_str(), rt.as_str()));
            Ok(Json(super::session::issue_tokens(&gw, &user, upstream).await?))
        }
        _ => Err(ApiError::bad_request(
            "InvalidTokenRequest",
            "give either deviceCode, or code with codeVerifier",
        )),
    }
}

/// RFC 7636's S256 challenge of a verifier.
fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn group_view(g: &rampart_store::User, members: Vec<String>) -> GroupView {
    GroupView {
        id: g.id.clone(),
        display_name: g.username.clone(),
        identity_provider: g.identity_provider.clone(),
        members,
    }
}

/// `GET /api/groups` (`ad group list`): groups with their members.
pub async fn list_groups(
    State(gw): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    Ok(Json(groups(&gw, &caller).await?))
}

/// Every group with its members, for a caller who may read users.
pub(crate) async fn groups(gw: &AppState, caller: &Caller) -> Result<Vec<GroupView>, ApiError> {
    caller.require_anywhere(gw, AuditEvent::Read, USERS_READ).await?;
    let mut out = Vec::new();
    for g in gw.store.list_users().await?.into_iter().filter(|u| u.kind == IdentityKind::Group) {
        let members = gw.store.group_members(&g.id).await?.into_iter().map(|m| m.username).collect();
        out.push(group_view(&g, members));
    }
    Ok(out)
}

/// `POST /api/groups` (`ad group create`): a provider's group before anyone of it signed in,
/// so a role can be assigned to it now.
pub async fn create_group(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<GroupCreate>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    Ok((StatusCode::CREATED, Json(add_group(&gw, &caller, body).await?)))
}

/// Adds a provider's group, if the caller administers users (the API and the portal).
pub(crate) async fn add_group(
    gw: &AppState,
    caller: &Caller,
    body: GroupCreate,
) -> Result<GroupView, ApiError> {
    let gw = gw.clone();
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let provider = gw
        .store
        .identity_provider(&body.identity_provider)
        .await?
        .ok_or_else(|| not_found(&body.identity_provider))?;
    let external = body.external_id.trim();
    if external.is_empty() || external.len() > 256 || external.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "InvalidGroup",
            "give the group as the provider's groups claim names it",
        ));
    }
    let name = body.display_name.clone().unwrap_or_else(|| format!("{external}@{}", provider.name));
    let group = gw.store.ensure_group(&provider.name, external, &name).await?;
    caller
        .record(
            &gw,
            AuditEvent::UserChange,
            &group.id,
            format!("added group {} of {}", group.username, provider.name),
        )
        .await?;
    Ok(group_view(&group, Vec::new()))
}
