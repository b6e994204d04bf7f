//! The browser's part of single sign-on: `/auth/oidc/NAME/login` sends the browser to the
//! provider with a fresh state, nonce and PKCE challenge, kept in a signed, HttpOnly cookie
//! bound to this browser (any node can read it); `/auth/oidc/NAME/callback` checks them,
//! exchanges the code, and either opens a portal session or hands the CLI (waiting on a
//! loopback port) a one-time code it redeems with its own PKCE verifier.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{GatewayOrigin, check_limits, complete, oidc_error, refuse};
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};
use crate::auth;
use crate::portal::{error_page, render, safe_next};

const FLOW_COOKIE: &str = "__Host-rampart-oidc";
const FLOW_AUDIENCE: &str = "rampart-oidc-flow";
/// How long a user may take at the provider's pages.
const FLOW_SECS: i64 = 600;
/// How long the CLI has to redeem the code handed to its loopback port.
pub const HANDOFF_SECS: i64 = 60;

/// What the callback must find again: signed by the gateway (so not forged), in a cookie of
/// this browser (so another browser's callback finds nothing).
#[derive(Serialize, Deserialize)]
struct Flow {
    aud: String,
    /// The provider's name.
    sub: String,
    exp: i64,
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cli_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cli_challenge: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    /// The CLI's loopback port (`rampart login --identity-provider`).
    cli_port: Option<u16>,
    /// The CLI's PKCE challenge (S256) for the code it will redeem.
    code_challenge: Option<String>,
}

fn cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .ok()
}

fn is_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn login(
    State(gw): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LoginQuery>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    GatewayOrigin(origin): GatewayOrigin,
) -> Response {
    let started = async {
        check_limits(&gw, &name, client, user_agent.clone()).await?;
        if q.cli_port.is_some() != q.code_challenge.as_deref().is_some_and(is_challenge) {
            return Err(ApiError::bad_request(
                "InvalidCliSignIn",
                "a CLI sign-in gives both its loopback port and a PKCE challenge (S256, base64url)",
            ));
        }
        let (record, provider) = gw.providers.get(&gw, &name, &origin).await?;
        let request = provider.authorization_request().await.map_err(|e| oidc_error(&e))?;
        let flow = Flow {
            aud: FLOW_AUDIENCE.into(),
            sub: record.name.clone(),
            exp: Utc::now().timestamp() + FLOW_SECS,
            state: request.state,
            nonce: request.nonce,
            verifier: request.pkce_verifier,
            next: safe_next(q.next.as_deref()),
            cli_port: q.cli_port,
            cli_challenge: q.code_challenge.clone(),
        };
        let sealed = gw.keys.sign(&flow).map_err(ApiError::internal)?;
        Ok::<(String, String), ApiError>((request.url, sealed))
    };
    match started.await {
        Ok((url, sealed)) => {
            let mut response = Redirect::to(&url).into_response();
            if let Some(v) = cookie(&sealed, FLOW_SECS) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => error_page(&e, crate::portal::SIGNIN),
    }
}

#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the provider that answered, against mix-up attacks.
    iss: Option<String>,
}

fn flow_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == FLOW_COOKIE)
        .map(|(_, v)| v.to_string())
}

#[derive(Template)]
#[template(path = "continue.html")]
struct Continue<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    user: &'a str,
    next: &'a str,
}

fn refused(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

pub async fn callback(
    State(gw): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    GatewayOrigin(origin): GatewayOrigin,
    headers: HeaderMap,
) -> Response {
    let result = finish(&gw, &name, q, client, user_agent.clone(), &headers, &origin).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) if e.status.is_server_error() => error_page(&e, crate::portal::SIGNIN),
        Err(e) => {
            let e = if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::BAD_REQUEST {
                refuse(&gw, &name, client, user_agent, e).await
            } else {
                e
            };
            error_page(&e, crate::portal::SIGNIN)
        }
    };
    // The flow is over, whatever its end: its cookie goes.
    if let Some(v) = cookie("", 0) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn finish(
    gw: &AppState,
    name: &str,
    q: CallbackQuery,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    headers: &HeaderMap,
    origin: &str,
) -> Result<Response, ApiError> {
    check_limits(gw, name, client, user_agent.clone()).await?;
    let flow: Flow = flow_cookie(headers)
        .and_then(|c| gw.keys.verify(&c, FLOW_AUDIENCE).ok())
        .ok_or_else(|| {
            refused("StateMismatch", "this browser started no sign-in that is still open (it expires after 10 minutes); start again")
        })?;
    if !flow.sub.eq_ignore_ascii_case(name) {
        return Err(refused("StateMismatch", "the sign-in was started with another identity provider"));
    }
    let state_ok = q.state.as_deref().is_some_and(|s| {
        s.len() == flow.state.len()
            && s.bytes().zip(flow.state.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    });
    if !state_ok {
        return Err(refused(
            "StateMismatch",
            "the answer's state is not this sign-in's (a forged or replayed answer)",
        ));
    }
    if let Some(error) = q.error {
        let what = q.error_description.unwrap_or_else(|| error.clone());
        let code = if error == "access_denied" { "AccessDenied" } else { "ProviderError" };
        return Err(refused(
            code,
            format!("the identity provider said: {}", what.chars().take(200).collect::<String>()),
        ));
    }
    let (record, provider) = gw.providers.get(gw, name, origin).await?;
    if let Some(iss) = &q.iss
        && iss.trim_end_matches('/') != record.issuer.trim_end_matches('/')
    {
        return Err(refused(
            "IssuerMismatch",
            format!("the answer comes from '{iss}', not {}", record.issuer),
        ));
    }
    let code =
        q.code.filter(|c| !c.is_empty()).ok_or_else(|| refused("NoCode", "the answer carries no code"))?;
    let signed_in =
        provider.exchange_code(&code, &flow.verifier, &flow.nonce).await.map_err(|e| oidc_error(&e))?;
    let user = complete(gw, &record, &signed_in, client, user_agent).await?;
    let now = Utc::now().timestamp();
    if let (Some(port), Some(challenge)) = (flow.cli_port, flow.cli_challenge) {
        // The CLI's code: one-time (a refresh-token row), bound to its PKCE challenge, so only
        // the process that started the sign-in can redeem it.
        let handoff = auth::random_secret(32);
        let key = handoff_key(&handoff, &challenge);
        gw.store.insert_refresh_token(&key, &user.id, now + HANDOFF_SECS).await?;
        if let Some(rt) = &signed_in.refresh_token {
            gw.store.put_upstream_token(&key, &record.name, rt).await?;
        }
        return Ok(Redirect::to(&format!("http://127.0.0.1:{port}/?code={handoff}")).into_response());
    }
    let secret = auth::random_secret(32);
    // A federated portal session lasts an access token's life: then the provider is asked again.
    let ttl = gw.config.access_token_ttl;
    gw.store
        .insert_portal_session(&auth::refresh_token_hash(&secret), &user.id, now + auth::ttl_secs(ttl))
        .await?;
    // SameSite=Strict cookies are not sent on a navigation that came from another site, so the
    // page continues to the portal from here (same-site) instead of redirecting.
    let mut response =
        render(&Continue { signed_in: None, csrf: "", user: &user.username, next: &flow.next });
    if let Ok(v) = HeaderValue::from_str(&crate::portal::session_cookie_header(&secret, ttl.as_secs())) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Where the CLI's one-time code is kept: the hash of the code with the PKCE challenge.
pub fn handoff_key(code: &str, challenge: &str) -> String {
    hex::encode(Sha256::digest(format!("rampart-cli-handoff:{code}:{challenge}").as_bytes()))
}
