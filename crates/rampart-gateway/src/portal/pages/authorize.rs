//! Plain `az login`'s browser step: the authorize request comes here (after the portal's
//! sign-in), the user approves, and the browser is sent on to az's listener on this computer
//! with a one-time code (`crate::azure::auth_code`). A page with a refresh carries it there,
//! as the portal's policy lets forms post only to the gateway itself.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rampart_core::{AuditEvent, AuditResult};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::{ApiError, AppState};
use crate::azure::auth_code::{self, AuthorizeRequest};

#[derive(Template)]
#[template(path = "authorize.html")]
struct AuthorizePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    request: &'a AuthorizeRequest,
    /// Approved, `response_mode=query`: where the browser goes on to.
    continue_to: Option<String>,
    /// Approved, `form_post`: the code posted to the redirect.
    post_code: Option<String>,
}

fn refused(why: String) -> Response {
    error_page(&ApiError::new(StatusCode::BAD_REQUEST, "InvalidAuthorizeRequest", why), crate::portal::HOME)
}

pub async fn authorize_page(user: PortalUser, Query(request): Query<AuthorizeRequest>) -> Response {
    if let Err(why) = auth_code::check(&request) {
        return refused(why);
    }
    let page = AuthorizePage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        request: &request,
        continue_to: None,
        post_code: None,
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct AuthorizeForm {
    csrf: String,
    #[serde(flatten)]
    request: AuthorizeRequest,
}

pub async fn approve_authorize(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<AuthorizeForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    if let Err(why) = auth_code::check(&form.request) {
        return refused(why);
    }
    let sub = &user.caller.user.claims.sub;
    let code = match auth_code::issue(&gw, sub, &form.request, Utc::now().timestamp()).await {
        Ok(code) => code,
        Err(e) => return error_page(&ApiError::internal(e), crate::portal::HOME),
    };
    let mut entry = user.caller.entry(AuditEvent::SignIn, AuditResult::Allowed);
    entry.reason = Some("approved the Azure CLI's browser sign-in (az login)".into());
    if let Err(e) = gw.store.append_audit(&entry).await {
        return error_page(&ApiError::from(e), crate::portal::HOME);
    }
    let mut page = AuthorizePage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        request: &form.request,
        continue_to: None,
        post_code: None,
    };
    if form.request.response_mode != "form_post" {
        match auth_code::redirect_with(&form.request, &code) {
            Ok(to) => page.continue_to = Some(to),
            Err(e) => return refused(e),
        }
        return render(&page);
    }
    // The form goes to az's listener: this page alone may post there.
    let origin = auth_code::redirect_origin(&form.request).unwrap_or_default();
    page.post_code = Some(code);
    let mut response = render(&page);
    let policy = crate::portal::CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"));
    if let Ok(v) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}
