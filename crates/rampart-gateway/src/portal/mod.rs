//! The browser portal on the gateway's HTTPS port: server-rendered pages (askama templates
//! in `web/templates`), a few plain modules and xterm.js (`web/static`, `web/node_modules`),
//! and the browser terminal's WebSocket.
//!
//! Sign-in makes a server-side session: the cookie (`__Host-`, Secure, HttpOnly,
//! SameSite=Strict) holds a random secret, the store holds its hash, and a password change
//! ends it. Every state-changing form carries a CSRF token derived from that secret, and
//! POSTs and WebSocket upgrades must come from this origin. Authorization is the API's:
//! the same [`Caller`] checks, the same policy, the same audit records.

mod assets;
mod bridge;
mod desktop;
mod files;
mod join;
mod native;
mod pages;
mod passkeys;
pub(crate) mod paste;
mod rdp_file;
mod share;
mod shell;
mod terminal;
pub(crate) mod video;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::api::caller::Caller;
use crate::api::{ApiError, AppState, AuthUser, ClientAddr, UserAgent};
use crate::auth::{self, AccessClaims};

pub use files::{FilePoint, FilePoints};
pub use join::{DesktopView, JoinPoint, Joins, api_websocket as join_over_api};
pub use native::shell as native_shell;
pub(crate) use pages::safe_next;
pub(crate) use rdp_file::reached_as as rdp_file_address;
pub use terminal::PendingTerminals;

const COOKIE: &str = "__Host-rampart-session";
pub(crate) const HOME: &str = "/portal";
pub(crate) const SIGNIN: &str = "/portal/signin";
const SIGNOUT: &str = "/portal/signout";
const CONNECT: &str = "/portal/connect";
const RDP_FILE: &str = "/portal/rdp-file";
const TERMINAL: &str = "/portal/terminal/{ticket}";
const TERMINAL_WS: &str = "/portal/terminal/{ticket}/ws";
const BASTION: &str = "/portal/bastion";
const BASTION_DISCONNECT: &str = "/portal/bastion/disconnect";
const ASSETS: &str = "/assets/{*path}";
const MFA: &str = "/portal/mfa";
/// Where a user approves `az login --use-device-code`.
pub(crate) const DEVICE: &str = "/portal/device";
/// Where plain `az login` (the browser flow) is approved.
pub(crate) const AUTHORIZE: &str = "/portal/authorize";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(HOME) }))
        .route(HOME, get(pages::home))
        .route(SIGNIN, get(pages::sign_in_page).post(pages::sign_in))
        .route(SIGNOUT, post(pages::sign_out))
        .route(CONNECT, get(pages::connect_page).post(terminal::connect))
        .route(RDP_FILE, post(rdp_file::download))
        .route(TERMINAL, get(terminal::page))
        .route(TERMINAL_WS, get(terminal::websocket))
        .route(BASTION, get(pages::bastion_page).post(pages::change_bastion))
        .route(BASTION_DISCONNECT, post(pages::disconnect))
        .route(MFA, get(pages::mfa_page).post(pages::change_mfa))
        .route(DEVICE, get(pages::device_page).post(pages::approve_device))
        .route(AUTHORIZE, get(pages::authorize_page).post(pages::approve_authorize))
        .route("/portal/access", get(pages::access_page).post(pages::change_access))
        .route("/portal/sessions/{id}/join", get(join::page))
        .route("/portal/sessions/{id}/join/ws", get(join::websocket))
        .route("/portal/inventory", get(pages::inventory_page).post(pages::change_inventory))
        .route("/portal/roles", get(pages::roles_page).post(pages::change_roles))
        .route("/portal/users", get(pages::users_page).post(pages::change_users))
        .route("/portal/audit", get(pages::audit_page))
        .route("/portal/audit/export", get(pages::audit_export))
        .route("/portal/recordings", get(pages::recordings_page))
        .route("/portal/recordings/{id}", get(pages::player_page))
        .route("/portal/recordings/{id}/cast", get(pages::cast))
        .route("/portal/passkeys/register/start", post(passkeys::register_start))
        .route("/portal/passkeys/register/finish", post(passkeys::register_finish))
        .route("/portal/passkeys/login/start", post(passkeys::login_start))
        .route("/portal/passkeys/login/finish", post(passkeys::login_finish))
        .route(crate::federation::LOGIN, get(crate::federation::web::login))
        .route(crate::federation::CALLBACK, get(crate::federation::web::callback))
        .route("/portal/files/{session}", get(files::list))
        .route("/portal/files/{session}/upload", post(files::upload))
        .route("/portal/files/{session}/download", get(files::download))
        .route("/share/{token}", get(share::page).post(share::connect))
        .route("/share/{token}/terminal/{ticket}", get(share::terminal))
        .route("/share/{token}/terminal/{ticket}/ws", get(share::websocket))
        .route(ASSETS, get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The portal's content security policy: this origin only.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Pages name only this origin as a source of anything, cannot be framed, and are not cached.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    // xterm.js sets element styles at run time, hence 'unsafe-inline' for styles only.
    // A page that must post elsewhere (az's listener on localhost) sets its own, one origin wider.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not "no-referrer": with it, Chromium sends `Origin: null` on form posts.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in browser user, from the session cookie.
pub struct PortalUser {
    pub caller: Caller,
    /// The token every form of this session must send back.
    pub csrf: String,
    session_hash: String,
}

impl PortalUser {
    pub fn name(&self) -> &str {
        self.caller.name()
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), FormRefused> {
        if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(FormRefused {
                code: "CsrfTokenMismatch",
                reason: "the form was not sent by this sign-in session (reload the page and try again)"
                    .into(),
            })
        }
    }
}

/// The portal session's cookie: `__Host-`, Secure, HttpOnly, SameSite=Strict.
pub(crate) fn session_cookie_header(secret: &str, max_age: u64) -> String {
    format!("{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn csrf_token(session_secret: &str) -> String {
    hex::encode(Sha256::digest(format!("rampart-csrf:{session_secret}").as_bytes()))
}

fn session_cookie(parts_headers: &HeaderMap) -> Option<String> {
    parts_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Where an unauthenticated browser is sent: the sign-in page, then back here.
fn to_sign_in(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(HOME);
    let next = if parts.method == axum::http::Method::GET { next } else { HOME };
    let encoded: String = url_encode(next);
    Redirect::to(&format!("{SIGNIN}?next={encoded}")).into_response()
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, gw: &AppState) -> Result<Self, Response> {
        portal_user(parts, gw, true).await
    }
}

/// A signed-in browser user whom `require_mfa` does not stop: for the Security page, where an
/// account without an authenticator enrols one.
pub struct PortalAccount(PortalUser);

impl std::ops::Deref for PortalAccount {
    type Target = PortalUser;
    fn deref(&self) -> &PortalUser {
        &self.0
    }
}

impl PortalAccount {
    pub async fn user(&self, gw: &crate::server::Gateway) -> Result<rampart_store::User, ApiError> {
        gw.store
            .user_by_id(&self.0.caller.user.claims.sub)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("the user no longer exists"))
    }
}

impl FromRequestParts<AppState> for PortalAccount {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, gw: &AppState) -> Result<Self, Response> {
        portal_user(parts, gw, false).await.map(PortalAccount)
    }
}

async fn portal_user(parts: &Parts, gw: &AppState, check_mfa: bool) -> Result<PortalUser, Response> {
    let Some(secret) = session_cookie(&parts.headers) else {
        return Err(to_sign_in(parts));
    };
    let hash = auth::refresh_token_hash(&secret);
    let user_id = match gw.store.portal_session_user(&hash, Utc::now().timestamp()).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(to_sign_in(parts)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let user = match gw.store.user_by_id(&user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(to_sign_in(parts)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let claims = AccessClaims::new(&user.id, &user.username, Utc::now().timestamp(), Default::default());
    let auth_user =
        AuthUser { claims, client: ClientAddr::from_parts(parts), user_agent: UserAgent::from_parts(parts) };
    let loaded = if check_mfa {
        Caller::load(gw, auth_user).await
    } else {
        Caller::load_for_enrolment(gw, auth_user).await
    };
    let caller = match loaded {
        Ok(c) => c,
        // The portal's way out of the refusal: its Security page.
        Err(e) if e.code == "MfaEnrollmentRequired" => return Err(Redirect::to(MFA).into_response()),
        Err(e) => return Err(e.into_response()),
    };
    Ok(PortalUser { caller, csrf: csrf_token(&secret), session_hash: hash })
}

/// Refuses a state-changing request sent from another origin. Browsers send `Origin` on
/// every POST and WebSocket upgrade; it must name the host the request was sent to (the
/// `Host` header in HTTP/1.1, the URI's authority in HTTP/2).
pub fn same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), FormRefused> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    match (origin, host) {
        (None, _) => Ok(()),
        (Some(origin), Some(host)) if origin.strip_prefix("https://").is_some_and(|o| o == host) => Ok(()),
        (Some(origin), _) => Err(FormRefused {
            code: "CrossOrigin",
            reason: format!("a page from {origin} may not act on this gateway"),
        }),
    }
}

/// A request refused before anything was done: forged, or from another origin.
#[derive(Debug)]
pub struct FormRefused {
    code: &'static str,
    reason: String,
}

impl IntoResponse for FormRefused {
    fn into_response(self) -> Response {
        message(StatusCode::FORBIDDEN, "Request refused", self.code, &self.reason, HOME)
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    title: &'a str,
    code: &'a str,
    reason: &'a str,
    back: &'a str,
}

/// A page that says what went wrong, in words, with the stable code in `data-code`.
pub fn message(status: StatusCode, title: &str, code: &str, reason: &str, back: &str) -> Response {
    let page = MessagePage { signed_in: None, csrf: "", title, code, reason, back };
    (status, render(&page)).into_response()
}

/// The page for an API error (a refusal names its reasons).
pub fn error_page(err: &ApiError, back: &str) -> Response {
    let title = match err.status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "Refused",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Not valid",
        _ => "Cannot connect",
    };
    message(err.status, title, &err.code, &err.message, back)
}

pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}
