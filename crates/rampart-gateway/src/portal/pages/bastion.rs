//! A bastion's page for its operators: settings and live sessions.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use rampart_core::{Scope, Tier};
use rampart_proto::api::{BastionChange, Session};
use serde::Deserialize;

use super::super::{HOME, PortalUser, error_page, render, same_origin, url_encode};
use super::readable_bastion;
use crate::api::bastions::{WRITE, change_bastion as apply_bastion_change};
use crate::api::sessions::{disconnect_session, live_sessions};
use crate::api::{ApiError, AppState};
use crate::server::Gateway;

#[derive(Template)]
#[template(path = "bastion.html")]
struct BastionPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    id: String,
    name: String,
    tier: Tier,
    tiers: Vec<(Tier, bool)>,
    ip_connect: bool,
    native_client: bool,
    copy_paste: bool,
    shareable_link: bool,
    file_transfer: String,
    networks: String,
    idle_timeout: u64,
    max_session: u64,
    may_write: bool,
    notice: Option<String>,
    error: Option<String>,
    sessions: Vec<Session>,
    sessions_refused: Option<String>,
}

#[derive(Deserialize)]
pub struct BastionQuery {
    id: Option<String>,
    notice: Option<String>,
}

pub async fn bastion_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(q): Query<BastionQuery>,
) -> Response {
    let notice = q.notice.as_deref().map(|n| match n {
        "applied" => "Settings applied. They hold for every new connection at once.".to_string(),
        "disconnected" => "Session disconnected.".to_string(),
        _ => String::new(),
    });
    match bastion_page_for(&gw, &user, q.id.as_deref(), notice.filter(|n| !n.is_empty()), None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, HOME),
    }
}

async fn bastion_page_for(
    gw: &Gateway,
    user: &PortalUser,
    raw: Option<&str>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, ApiError> {
    let bastion = readable_bastion(gw, user, raw).await?;
    let scope = Scope::Resource(bastion.id.clone());
    let (sessions, sessions_refused) = if user.caller.may(crate::api::sessions::LIST, &scope) {
        (live_sessions(gw, &user.caller, &bastion.id).await?, None)
    } else {
        (Vec::new(), Some("Your roles do not let you see this bastion's sessions.".to_string()))
    };
    let s = &bastion.settings;
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = BastionPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        id: bastion.id.to_string(),
        name: bastion.id.name.clone(),
        tier: s.tier,
        tiers: Tier::ALL.iter().map(|t| (*t, *t == s.tier)).collect(),
        ip_connect: s.enable_ip_connect,
        native_client: s.enable_tunneling,
        copy_paste: !s.disable_copy_paste,
        shareable_link: s.enable_shareable_link,
        file_transfer: s.file_transfer.to_string(),
        networks: s.reachable_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        idle_timeout: s.idle_timeout_secs.unwrap_or(0),
        max_session: s.max_session_secs.unwrap_or(0),
        may_write: user.caller.may(WRITE, &scope),
        notice,
        error,
        sessions,
        sessions_refused,
    };
    Ok((status, render(&page)).into_response())
}

fn bastion_url(id: &str, notice: &str) -> String {
    format!("/portal/bastion?id={}&notice={notice}", url_encode(id))
}

/// The settings form. Unchecked boxes are absent from a form, so the booleans are set
/// from presence.
pub async fn change_bastion(
    State(gw): State<AppState>,
    user: PortalUser,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return refused.into_response();
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    if let Err(refused) = user.check_csrf(get("csrf").unwrap_or_default()) {
        return refused.into_response();
    }
    let raw = get("id").unwrap_or_default().to_string();
    let number = |k: &str| -> Result<Option<u64>, String> {
        match get(k).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| format!("{k}: '{v}' is not a whole number of seconds"))
            }
        }
    };
    let change = match (number("idle_timeout_seconds"), number("max_session_duration_seconds")) {
        (Ok(idle), Ok(max)) => BastionChange {
            sku: get("sku").map(str::to_string),
            enable_tunneling: Some(get("enable_tunneling") == Some("true")),
            enable_ip_connect: Some(get("enable_ip_connect") == Some("true")),
            disable_copy_paste: Some(get("copy_paste") != Some("true")),
            enable_shareable_link: Some(get("enable_shareable_link") == Some("true")),
            file_transfer: get("file_transfer").map(str::to_string),
            // The page does not show the size limit: it leaves it as it is.
            file_transfer_max_mb: None,
            // The operator page does not show recording yet: it leaves it as it is.
            enable_session_recording: None,
            allow_unrecorded_tunnels: None,
            session_recording_storage_url: None,
            recording_retention_days: None,
            reachable_networks: get("reachable_networks").map(|v| {
                v.split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            idle_timeout_seconds: idle,
            max_session_duration_seconds: max,
        },
        (Err(e), _) | (_, Err(e)) => {
            return bastion_page_for(&gw, &user, Some(&raw), None, Some(e))
                .await
                .unwrap_or_else(|e| error_page(&e, HOME));
        }
    };
    let id = match gw.admission.resolve_bastion(&raw).await.map_err(ApiError::from) {
        Ok(id) => id,
        Err(e) => return error_page(&e, HOME),
    };
    match apply_bastion_change(&gw, &user.caller, &id, &change).await {
        Ok(_) => Redirect::to(&bastion_url(&raw, "applied")).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            bastion_page_for(&gw, &user, Some(&raw), None, Some(e.message))
                .await
                .unwrap_or_else(|e| error_page(&e, HOME))
        }
        Err(e) => error_page(&e, &bastion_url(&raw, "")),
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    csrf: String,
    id: String,
    session: String,
}

pub async fn disconnect(
    State(gw): State<AppState>,
    user: PortalUser,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<DisconnectForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri).and_then(|()| user.check_csrf(&form.csrf)) {
        return refused.into_response();
    }
    let id = match gw.admission.resolve_bastion(&form.id).await.map_err(ApiError::from) {
        Ok(id) => id,
        Err(e) => return error_page(&e, HOME),
    };
    match disconnect_session(&gw, &user.caller, &id, &form.session).await {
        Ok(()) => Redirect::to(&bastion_url(&form.id, "disconnected")).into_response(),
        Err(e) => error_page(&e, &bastion_url(&form.id, "")),
    }
}
