//! Passkeys (WebAuthn, through webauthn-rs) in the portal: a signed-in local user adds one on
//! the Security page; the sign-in page signs in with one instead of a password and code (a
//! passkey is both factors: the device and its PIN or biometric). The ceremony's state waits
//! between its two requests in a signed, HttpOnly cookie of the browser, so any node can
//! finish it. WebAuthn needs the gateway reached by a DNS name (`localhost` included): an IP
//! address is not a relying party ID.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, IdentityKind};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::{HOME, PortalAccount, same_origin, session_cookie_header};
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};
use crate::auth;
use crate::federation::GatewayOrigin;

const STATE_COOKIE: &str = "__Host-rampart-passkey";
const STATE_AUDIENCE: &str = "rampart-passkey";
/// How long a ceremony may take (the authenticator's prompt included).
const STATE_SECS: i64 = 300;
const CSRF_HEADER: &str = "x-rampart-csrf";

#[derive(Serialize, Deserialize)]
struct Ceremony {
    aud: String,
    /// The user's ID.
    sub: String,
    exp: i64,
    /// `register` or `login`.
    kind: String,
    state: serde_json::Value,
}

fn webauthn(origin: &str) -> Result<Webauthn, ApiError> {
    let url = Url::parse(origin).map_err(|e| ApiError::bad_request("NoHost", e.to_string()))?;
    let host = url.host_str().unwrap_or_default().to_string();
    if host.parse::<std::net::IpAddr>().is_ok()
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok()
    {
        return Err(ApiError::bad_request(
            "PasskeysNeedAName",
            "passkeys work only when the gateway is reached by a DNS name (localhost included), not an IP address",
        ));
    }
    WebauthnBuilder::new(&host, &url).and_then(|b| b.rp_name("Rampart").build()).map_err(|e| {
        ApiError::bad_request("PasskeysUnavailable", format!("passkeys cannot be used here: {e}"))
    })
}

fn state_cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .ok()
}

fn read_ceremony(gw: &AppState, headers: &HeaderMap, kind: &str) -> Result<Ceremony, ApiError> {
    let ceremony: Ceremony = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == STATE_COOKIE)
        .and_then(|(_, v)| gw.keys.verify(v, STATE_AUDIENCE).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "StateMismatch",
                "no passkey request of this browser is open; start again",
            )
        })?;
    if ceremony.kind != kind {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "StateMismatch",
            "the open passkey request is of another kind",
        ));
    }
    Ok(ceremony)
}

fn with_state(mut response: Response, gw: &AppState, ceremony: Option<&Ceremony>) -> Response {
    let cookie = match ceremony {
        Some(c) => gw.keys.sign(c).ok().and_then(|v| state_cookie(&v, STATE_SECS)),
        None => state_cookie("", 0),
    };
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn stored(list: &[(String, String, String)]) -> Vec<Passkey> {
    list.iter().filter_map(|(_, _, json)| serde_json::from_str(json).ok()).collect()
}

fn credential_id(passkey: &Passkey) -> String {
    serde_json::to_value(passkey.cred_id())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn json_error(e: ApiError) -> Response {
    e.into_response()
}

/// `POST /portal/passkeys/register/start`: the creation options for this user.
pub async fn register_start(
    State(gw): State<AppState>,
    account: PortalAccount,
    GatewayOrigin(origin): GatewayOrigin,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = async {
        check_form(&account, &headers, &uri)?;
        let user = account.user(&gw).await?;
        if user.kind != IdentityKind::User || user.identity_provider.is_some() {
            return Err(ApiError::bad_request("NotALocalAccount", "passkeys here are for local accounts"));
        }
        let wa = webauthn(&origin)?;
        let existing = stored(&gw.store.passkeys(&user.id).await?);
        let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
        let id = Uuid::parse_str(&user.id).map_err(ApiError::internal)?;
        let (options, state) = wa
            .start_passkey_registration(id, &user.username, &user.username, Some(exclude))
            .map_err(|e| ApiError::bad_request("PasskeyRefused", e.to_string()))?;
        let ceremony = Ceremony {
            aud: STATE_AUDIENCE.into(),
            sub: user.id,
            exp: Utc::now().timestamp() + STATE_SECS,
            kind: "register".into(),
            state: serde_json::to_value(&state).map_err(ApiError::internal)?,
        };
        Ok((Json(options).into_response(), ceremony))
    }
    .await;
    match result {
        Ok((response, ceremony)) => with_state(response, &gw, Some(&ceremony)),
        Err(e) => json_error(e),
    }
}

fn check_form(account: &PortalAccount, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    same_origin(headers, uri).map_err(|r| ApiError::new(StatusCode::FORBIDDEN, r.code, r.reason))?;
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    account.check_csrf(token).map_err(|r| ApiError::new(StatusCode::FORBIDDEN, r.code, r.reason))
}

#[derive(Serialize)]
struct Added {
    name: String,
}

/// `POST /portal/passkeys/register/finish`: the authenticator's answer; the passkey is kept.
pub async fn register_finish(
    State(gw): State<AppState>,
    account: PortalAccount,
    GatewayOrigin(origin): GatewayOrigin,
    headers: HeaderMap,
    uri: Uri,
    Json(credential): Json<RegisterPublicKeyCredential>,
) -> Response {
    let result = async {
        check_form(&account, &headers, &uri)?;
        let user = account.user(&gw).await?;
        let ceremony = read_ceremony(&gw, &headers, "register")?;
        if ceremony.sub != user.id {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "StateMismatch",
                "the passkey request was another user's",
            ));
        }
        let state: PasskeyRegistration =
            serde_json::from_value(ceremony.state).map_err(ApiError::internal)?;
        let passkey = webauthn(&origin)?.finish_passkey_registration(&credential, &state).map_err(|e| {
            ApiError::bad_request("PasskeyRefused", format!("the authenticator's answer is refused: {e}"))
        })?;
        let count = gw.store.passkeys(&user.id).await?.len();
        let name = format!("passkey {}", count + 1);
        let json = serde_json::to_string(&passkey).map_err(ApiError::internal)?;
        gw.store.add_passkey(&user.id, &credential_id(&passkey), &name, &json).await?;
        let mut e = AuditEntry::new(Utc::now(), AuditEvent::UserChange, AuditResult::Allowed);
        e.user = Some(user.username.clone());
        e.reason = Some(format!("added {name} for {}", user.username));
        gw.store.append_audit(&e).await?;
        Ok(Json(Added { name }).into_response())
    }
    .await;
    match result {
        Ok(r) => with_state(r, &gw, None),
        Err(e) => with_state(json_error(e), &gw, None),
    }
}

#[derive(Deserialize)]
pub struct LoginStart {
    username: String,
}

/// `POST /portal/passkeys/login/start`: the request options for the account's passkeys.
pub async fn login_start(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    GatewayOrigin(origin): GatewayOrigin,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<LoginStart>,
) -> Response {
    let result = async {
        same_origin(&headers, &uri).map_err(|r| ApiError::new(StatusCode::FORBIDDEN, r.code, r.reason))?;
        if let Some(wait) = gw.limiter.blocked(&body.username, client.ip(), std::time::Instant::now()) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManySignInFailures",
                "too many failed sign-ins",
            );
            e.retry_after = Some(wait.as_secs().max(1));
            return Err(e);
        }
        let user = gw.store.user_by_name(&body.username).await?;
        let keys = match &user {
            Some(u) if u.kind == IdentityKind::User => stored(&gw.store.passkeys(&u.id).await?),
            _ => Vec::new(),
        };
        let Some(user) = user.filter(|_| !keys.is_empty()) else {
            return Err(ApiError::bad_request(
                "NoPasskey",
                "no passkey is registered for this user name: sign in with the password",
            ));
        };
        let (options, state) = webauthn(&origin)?
            .start_passkey_authentication(&keys)
            .map_err(|e| ApiError::bad_request("PasskeyRefused", e.to_string()))?;
        let ceremony = Ceremony {
            aud: STATE_AUDIENCE.into(),
            sub: user.id,
            exp: Utc::now().timestamp() + STATE_SECS,
            kind: "login".into(),
            state: serde_json::to_value(&state).map_err(ApiError::internal)?,
        };
        Ok((Json(options).into_response(), ceremony))
    }
    .await;
    match result {
        Ok((response, ceremony)) => with_state(response, &gw, Some(&ceremony)),
        Err(e) => json_error(e),
    }
}

#[derive(Serialize)]
struct SignedIn {
    next: String,
}

/// `POST /portal/passkeys/login/finish`: a verified assertion opens a portal session.
pub async fn login_finish(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    GatewayOrigin(origin): GatewayOrigin,
    headers: HeaderMap,
    uri: Uri,
    Json(credential): Json<PublicKeyCredential>,
) -> Response {
    let result = async {
        same_origin(&headers, &uri).map_err(|r| ApiError::new(StatusCode::FORBIDDEN, r.code, r.reason))?;
        let ceremony = read_ceremony(&gw, &headers, "login")?;
        let user = gw
            .store
            .user_by_id(&ceremony.sub)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("the user no longer exists"))?;
        let state: PasskeyAuthentication =
            serde_json::from_value(ceremony.state).map_err(ApiError::internal)?;
        let outcome = match webauthn(&origin)?.finish_passkey_authentication(&credential, &state) {
            Ok(o) => o,
            Err(e) => {
                gw.limiter.record_failure(&user.username, client.ip(), std::time::Instant::now());
                audit(
                    &gw,
                    &user.username,
                    client,
                    user_agent.clone(),
                    AuditResult::Refused,
                    Some("PasskeyRefused"),
                )
                .await?;
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "PasskeyRefused",
                    format!("the passkey is refused: {e}"),
                ));
            }
        };
        for (id, _, json) in gw.store.passkeys(&user.id).await? {
            if let Ok(mut key) = serde_json::from_str::<Passkey>(&json)
                && key.update_credential(&outcome) == Some(true)
            {
                let json = serde_json::to_string(&key).map_err(ApiError::internal)?;
                gw.store.update_passkey(&id, &json).await?;
            }
        }
        gw.limiter.clear(&user.username, client.ip());
        audit(&gw, &user.username, client, user_agent, AuditResult::Allowed, None).await?;
        let secret = auth::random_secret(32);
        let ttl = gw.config.refresh_token_ttl;
        gw.store
            .insert_portal_session(
                &auth::refresh_token_hash(&secret),
                &user.id,
                Utc::now().timestamp() + auth::ttl_secs(ttl),
            )
            .await?;
        let mut response = Json(SignedIn { next: HOME.into() }).into_response();
        if let Ok(v) = HeaderValue::from_str(&session_cookie_header(&secret, ttl.as_secs())) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(response)
    }
    .await;
    match result {
        Ok(r) => with_state(r, &gw, None),
        Err(e) => with_state(json_error(e), &gw, None),
    }
}

async fn audit(
    gw: &AppState,
    user: &str,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    result: AuditResult,
    code: Option<&str>,
) -> Result<(), ApiError> {
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::SignIn, result);
    e.user = Some(user.to_string());
    e.client_address = Some(client.to_string());
    e.user_agent = user_agent;
    e.reason_code = code.map(str::to_string);
    e.reason = Some("passkey".into());
    gw.store.append_audit(&e).await?;
    Ok(())
}
