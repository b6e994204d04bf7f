//! Sign-in and sign-out.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use rampart_proto::api::LoginRequest;
use serde::Deserialize;

use super::super::{COOKIE, HOME, PortalUser, SIGNIN, render, same_origin};
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};
use crate::auth;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    next: String,
    username: String,
    /// "Sign in with NAME" for each identity provider, with its start URL.
    providers: Vec<(String, String)>,
}

/// Each identity provider's button: its name and where its sign-in starts.
async fn provider_links(gw: &crate::server::Gateway, next: &str) -> Vec<(String, String)> {
    let providers = gw.store.list_identity_providers().await.unwrap_or_default();
    providers
        .into_iter()
        .map(|p| {
            let url = format!(
                "{}?next={}",
                crate::federation::LOGIN.replace("{name}", &super::super::url_encode(&p.name)),
                super::super::url_encode(next)
            );
            (p.name, url)
        })
        .collect()
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this gateway: never an absolute URL (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/portal") && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => HOME.to_string(),
    }
}

pub async fn sign_in_page(State(gw): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let providers = provider_links(&gw, &next).await;
    render(&SignInPage { signed_in: None, csrf: "", error: None, next, username: String::new(), providers })
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    /// The authenticator app's code (or a recovery code), for accounts with MFA.
    mfa_code: Option<String>,
    next: Option<String>,
}

pub async fn sign_in(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<SignInForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return refused.into_response();
    }
    let next = safe_next(form.next.as_deref());
    let login = LoginRequest {
        username: form.username.clone(),
        password: form.password,
        tenant: None,
        mfa_code: form.mfa_code.filter(|c| !c.trim().is_empty()),
    };
    let user = match crate::api::session::authenticate(&gw, &login, client, user_agent, true).await {
        Ok(u) => u,
        Err(e) if e.status.is_server_error() => return e.into_response(),
        Err(e) => {
            let providers = provider_links(&gw, &next).await;
            let page = SignInPage {
                signed_in: None,
                csrf: "",
                error: Some(e.message),
                next,
                username: form.username,
                providers,
            };
            return (e.status, render(&page)).into_response();
        }
    };
    let secret = auth::random_secret(32);
    let ttl = gw.config.refresh_token_ttl;
    let expires = Utc::now().timestamp() + auth::ttl_secs(ttl);
    if let Err(e) =
        gw.store.insert_portal_session(&auth::refresh_token_hash(&secret), &user.id, expires).await
    {
        return ApiError::from(e).into_response();
    }
    let cookie = crate::portal::session_cookie_header(&secret, ttl.as_secs());
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(State(gw): State<AppState>, user: PortalUser, Form(form): Form<CsrfForm>) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    if let Err(e) = gw.store.delete_portal_session(&user.session_hash).await {
        return ApiError::from(e).into_response();
    }
    let mut response = Redirect::to(SIGNIN).into_response();
    let clear = format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
