//! A shareable link's pages: `/share/{token}` asks whoever opens it for the machine's own
//! credentials (no Rampart account, no sign-in), then opens a terminal or desktop on the
//! link's one machine. The target comes from the link alone (nothing in the form names one),
//! the admission service decides on the link (it exists, has not expired, the bastion's tier
//! and setting allow links) and the bastion's network policy, and every attempt is audited
//! under the link's id. Attempts are limited per link and address.

use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use rampart_core::{AuditEvent, AuditResult, ClientKind, Machine, OsType};
use rampart_store::ShareableLinkRecord;
use serde::Deserialize;

use super::terminal::{ConnectForm, TerminalSize, attach, connect_failed, page_for, sign_in_to_target};
use super::{error_page, message, render, same_origin};
use crate::api::caller::Caller;
use crate::api::{ApiError, AppState, AuthUser, ClientAddr, UserAgent};
use crate::auth::AccessClaims;
use crate::server::Gateway;

/// Where a link's pages send the visitor back to: the link itself.
fn back(token: &str) -> String {
    format!("{}{token}", crate::shareable::PATH_PREFIX)
}

/// What a ticket of this link's visitors is bound to.
fn owner(link: &ShareableLinkRecord) -> String {
    format!("shareable-link:{}", link.id)
}

/// The link behind `token` (still usable), and its machine; or why not (with the link, when
/// there is one: the refusal is then recorded under its id).
async fn usable(
    gw: &Gateway,
    token: &str,
) -> Result<(ShareableLinkRecord, Machine), (Option<ShareableLinkRecord>, ApiError)> {
    let not_found =
        || ApiError::refused(&rampart_core::Refusal::new(rampart_core::RefusalReason::ShareableLinkNotFound));
    let token = crate::shareable::token_of(token);
    if token.is_empty() || token.len() > 128 {
        return Err((None, not_found()));
    }
    let link = match gw.store.shareable_link_by_token(&crate::shareable::token_hash(token)).await {
        Ok(Some(link)) => link,
        Ok(None) => return Err((None, not_found())),
        Err(e) => return Err((None, e.into())),
    };
    let checked = async {
        let rules = crate::shareable::from_record(&link).map_err(ApiError::internal)?;
        let bastion = gw.store.bastion(&rules.bastion).await?.ok_or_else(not_found)?;
        let machine = gw.admission.resolve_machine(&link.target_id).await?;
        rampart_core::shareable::check_use(&rules, &bastion.id, &bastion.settings, &machine.id, Utc::now())
            .map_err(|r| ApiError::refused(&r))?;
        Ok::<_, ApiError>(machine)
    }
    .await;
    match checked {
        Ok(machine) => Ok((link, machine)),
        Err(e) => Err((Some(link), e)),
    }
}

/// The page for a link that cannot be used; the refusal is recorded under the link's id.
async fn refused_use(
    gw: &Gateway,
    (link, err): (Option<ShareableLinkRecord>, ApiError),
    client: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Response {
    if let Some(link) = link {
        let mut e =
            rampart_core::AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
        e.user = Some(crate::shareable::identity(&link.id).name);
        e.client_address = Some(client.to_string());
        e.user_agent = UserAgent::from_headers(headers);
        e.bastion_id = Some(link.bastion_id.clone());
        e.target_resource_id = Some(link.target_id.clone());
        e.reason_code = Some(err.code.clone());
        e.reason = Some(err.message.clone());
        if let Err(e) = gw.store.append_audit(&e).await {
            return ApiError::internal(e).into_response();
        }
    } else if err.status == StatusCode::NOT_FOUND {
        gw.link_limiter.record_failure(UNKNOWN, client.ip(), Instant::now());
    }
    error_page(&err, "/")
}

/// The rate limit's key for tokens that name no link (apart from each link's own).
const UNKNOWN: &str = "\0unknown";

/// Refuses an address that tried too often (`key`: the link, or [`UNKNOWN`]).
fn limited(gw: &Gateway, key: &str, client: std::net::SocketAddr) -> Option<Response> {
    let wait = gw.link_limiter.blocked(key, client.ip(), Instant::now())?;
    Some(message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "TooManyAttempts",
        &format!("this link was tried too often from your address; try again in {} s", wait.as_secs().max(1)),
        "/",
    ))
}

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    action: String,
    vm_id: String,
    vm_name: String,
    os: &'static str,
    port_ssh: u16,
    port_rdp: u16,
    rdp: bool,
    expires_at: String,
}

/// `GET /share/{token}`: the sign-in form for the link's machine.
pub async fn page(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = limited(&gw, UNKNOWN, client) {
        return r;
    }
    match usable(&gw, &token).await {
        Ok((link, m)) => render(&SharePage {
            signed_in: None,
            csrf: "",
            action: back(&token),
            vm_id: m.id.to_string(),
            vm_name: m.id.name.clone(),
            os: m.os_type.as_str(),
            port_ssh: m.port_ssh,
            port_rdp: m.port_rdp,
            rdp: m.os_type == OsType::Windows,
            expires_at: link.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }),
        Err(refused) => refused_use(&gw, refused, client, &headers).await,
    }
}

/// What the link's form sends: how to sign in to the machine, never which machine.
#[derive(Deserialize)]
pub struct ShareForm {
    protocol: String,
    port: Option<String>,
    username: String,
    auth: String,
    password: Option<String>,
    private_key: Option<String>,
    passphrase: Option<String>,
    domain: Option<String>,
    width: Option<u16>,
    height: Option<u16>,
    video: Option<String>,
}

/// `POST /share/{token}`: sign in to the link's machine and open its terminal or desktop.
pub async fn connect(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<ShareForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return refused.into_response();
    }
    let (link, machine) = match usable(&gw, &token).await {
        Ok(found) => found,
        Err(refused) => return refused_use(&gw, refused, client, &headers).await,
    };
    if let Some(r) = limited(&gw, &link.id, client) {
        return r;
    }
    gw.link_limiter.record_failure(&link.id, client.ip(), Instant::now());
    let identity = crate::shareable::identity(&link.id);
    let now = Utc::now().timestamp();
    // The visitor, as the audit records and the ticket know them: no roles at all.
    let visitor = Caller {
        user: AuthUser {
            claims: AccessClaims::new(&owner(&link), &identity.name, now, Default::default()),
            client,
            user_agent: UserAgent::from_headers(&headers),
        },
        assignments: Vec::new(),
        roles: Vec::new(),
    };
    let connect = ConnectForm::for_link(
        link.bastion_id.clone(),
        machine.id.to_string(),
        (form.protocol, form.port, form.username, form.auth),
        (form.password, form.private_key, form.passphrase, form.domain),
        (form.width, form.height, form.video),
    );
    let mut entry = visitor.entry(AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.connection_id = Some(uuid::Uuid::new_v4().to_string());
    entry.bastion_id = Some(link.bastion_id.clone());
    entry.target_resource_id = Some(link.target_id.clone());
    match sign_in_to_target(&gw, &visitor, identity, ClientKind::Browser, &connect, &mut entry).await {
        Ok(pending) => {
            let ticket = gw.terminals.insert(pending);
            Redirect::to(&format!("{}/terminal/{ticket}", back(&token))).into_response()
        }
        Err(err) => connect_failed(&gw, entry, &err, &back(&token)).await,
    }
}

/// `GET /share/{token}/terminal/{ticket}`.
pub async fn terminal(State(gw): State<AppState>, Path((token, ticket)): Path<(String, String)>) -> Response {
    match usable(&gw, &token).await {
        Ok((link, _)) => {
            page_for(&gw, &ticket, &owner(&link), &format!("{}/terminal/{ticket}/ws", back(&token)), false)
        }
        Err((_, e)) => error_page(&e, "/"),
    }
}

/// `GET /share/{token}/terminal/{ticket}/ws`.
pub async fn websocket(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path((token, ticket)): Path<(String, String)>,
    Query(size): Query<TerminalSize>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return refused.into_response();
    }
    match usable(&gw, &token).await {
        Ok((link, _)) => attach(gw.clone(), &ticket, &owner(&link), client, size, upgrade),
        Err((_, e)) => error_page(&e, "/"),
    }
}
