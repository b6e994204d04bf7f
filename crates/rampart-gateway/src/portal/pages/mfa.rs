//! Security: enrolling an authenticator app (a QR code of the otpauth URI, drawn here as SVG),
//! the recovery codes shown once, and turning it off with a current code. Reachable while
//! `require_mfa` refuses everything else to an account without one.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use qrcodegen::{QrCode, QrCodeEcc};
use serde::Deserialize;

use super::super::{PortalAccount, error_page, render};
use crate::api::mfa::{begin, finish, second_factor};
use crate::api::{ApiError, AppState};

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    enabled: bool,
    qr_svg: String,
    secret: String,
    recovery_codes: Vec<String>,
    /// The names of the user's passkeys.
    passkeys: Vec<String>,
}

/// The QR code as an SVG of dark squares (quiet zone of four modules).
fn qr_svg(text: &str) -> Result<String, ApiError> {
    let qr =
        QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let n = qr.size();
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    let side = n + 8;
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" width=\"220\" height=\"220\" role=\"img\" aria-label=\"QR code of the authenticator key\" shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

async fn page(gw: &AppState, account: &PortalAccount, error: Option<String>) -> Result<Response, ApiError> {
    let user = account.user(gw).await?;
    if user.kind != rampart_core::IdentityKind::User || user.identity_provider.is_some() {
        return Err(ApiError::bad_request(
            "NotALocalAccount",
            "two-step sign-in and passkeys here are for local accounts: a federated user's are their identity provider's",
        ));
    }
    let enabled = gw.store.totp(&user.id).await?.is_some_and(|t| t.enabled);
    let (qr, secret) = if enabled {
        (String::new(), String::new())
    } else {
        let enrolment = begin(gw, &user).await?;
        (qr_svg(&enrolment.otpauth_uri)?, enrolment.secret)
    };
    let passkeys = gw.store.passkeys(&user.id).await?.into_iter().map(|(_, name, _)| name).collect();
    Ok(render(&MfaPage {
        signed_in: Some(account.name()),
        csrf: &account.csrf,
        error,
        enabled,
        qr_svg: qr,
        secret,
        recovery_codes: Vec::new(),
        passkeys,
    }))
}

pub async fn mfa_page(State(gw): State<AppState>, account: PortalAccount) -> Response {
    match page(&gw, &account, None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

#[derive(Deserialize)]
pub struct MfaForm {
    csrf: String,
    action: String,
    code: String,
}

pub async fn change_mfa(
    State(gw): State<AppState>,
    account: PortalAccount,
    Form(form): Form<MfaForm>,
) -> Response {
    if let Err(refused) = account.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let result = async {
        let user = account.user(&gw).await?;
        match form.action.as_str() {
            "verify" => match finish(&gw, &user, &form.code).await {
                Ok(codes) => Ok(render(&MfaPage {
                    signed_in: Some(account.name()),
                    csrf: &account.csrf,
                    error: None,
                    enabled: true,
                    qr_svg: String::new(),
                    secret: String::new(),
                    recovery_codes: codes.recovery_codes,
                    passkeys: Vec::new(),
                })),
                Err(e) if e.status.is_client_error() => page(&gw, &account, Some(e.message)).await,
                Err(e) => Err(e),
            },
            "disable" => match second_factor(&gw, &user, Some(&form.code)).await? {
                Some(refused) => page(&gw, &account, Some(refused.message)).await,
                None => {
                    gw.store.disable_totp(&user.id).await?;
                    page(&gw, &account, None).await
                }
            },
            _ => Err(ApiError::bad_request("InvalidAction", "verify or disable")),
        }
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => error_page(&e, "/portal/mfa"),
    }
}
