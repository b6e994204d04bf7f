//! Approving `az login --use-device-code`: the signed-in user enters the code az showed, and
//! az's next poll receives the user's tokens (`crate::azure::device`). The page warns that
//! approving hands the device the user's access: device-code phishing works by getting
//! someone to approve another's code.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rampart_core::{AuditEvent, AuditResult};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::{ApiError, AppState};
use crate::azure::device;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    code: String,
    error: Option<String>,
    approved: bool,
}

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    code: String,
}

pub async fn device_page(user: PortalUser, Query(q): Query<CodeQuery>) -> Response {
    let code: String = q.code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(16).collect();
    render(&DevicePage { signed_in: Some(user.name()), csrf: &user.csrf, code, error: None, approved: false })
}

#[derive(Deserialize)]
pub struct DeviceForm {
    csrf: String,
    code: String,
}

pub async fn approve_device(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<DeviceForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let page = |error: Option<String>, approved: bool| {
        let code = form.code.chars().take(16).collect();
        render(&DevicePage { signed_in: Some(user.name()), csrf: &user.csrf, code, error, approved })
    };
    let Some(code) = device::normalize(&gw, &form.code) else {
        let mut entry = user.caller.entry(AuditEvent::SignIn, AuditResult::Refused);
        entry.reason_code = Some("UnknownDeviceCode".into());
        entry.reason = Some("a device code the gateway did not give out was entered".into());
        if let Err(e) = gw.store.append_audit(&entry).await {
            return error_page(&ApiError::from(e), crate::portal::DEVICE);
        }
        return page(
            Some("That is not a code this gateway gave out: check it against az's message".into()),
            false,
        );
    };
    match approve(&gw, &user, &code).await {
        Ok(true) => page(None, true),
        Ok(false) => page(Some("That code was already approved".into()), false),
        Err(e) => error_page(&e, crate::portal::DEVICE),
    }
}

/// Leaves the approval for az's next poll; false when the code was approved before.
async fn approve(gw: &crate::server::Gateway, user: &PortalUser, code: &str) -> Result<bool, ApiError> {
    let key = device::approval_key(code);
    let now = Utc::now().timestamp();
    if gw.store.refresh_token_user(&key, now).await?.is_some() {
        return Ok(false);
    }
    gw.store
        .insert_refresh_token(&key, &user.caller.user.claims.sub, now + device::DEVICE_CODE_TTL_SECS)
        .await?;
    let mut entry = user.caller.entry(AuditEvent::SignIn, AuditResult::Allowed);
    // Not the code itself: whoever reads the audit log must not be able to redeem it.
    entry.reason = Some("approved an Azure CLI device code sign-in".into());
    gw.store.append_audit(&entry).await?;
    Ok(true)
}
