//! The portal's pages: sign-in, home (bastions and the machines the user may reach), the
//! Connect page, and a bastion's configuration and live sessions for its operators.

use std::collections::HashMap;
use std::str::FromStr;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use rampart_core::{Bastion, ConnectTarget, Machine, OsType, ResourceId, Scope, Tier, authorize_connect};
use rampart_proto::api::{BastionChange, LoginRequest, Session};
use serde::Deserialize;

use super::{COOKIE, HOME, PortalUser, SIGNIN, error_page, render, same_origin, url_encode};
use crate::api::bastions::{READ, WRITE, change_bastion as apply_bastion_change};
use crate::api::sessions::{disconnect_session, live_sessions};
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};
use crate::auth;
use crate::server::Gateway;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    next: String,
    username: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this gateway: never an absolute URL (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/portal") && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => HOME.to_string(),
    }
}

pub async fn sign_in_page(Query(q): Query<NextQuery>) -> Response {
    render(&SignInPage {
        signed_in: None,
        csrf: "",
        error: None,
        next: safe_next(q.next.as_deref()),
        username: String::new(),
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
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
    let login = LoginRequest { username: form.username.clone(), password: form.password };
    let user = match crate::api::session::authenticate(&gw, &login, client, user_agent).await {
        Ok(u) => u,
        Err(e) if e.status.is_server_error() => return e.into_response(),
        Err(e) => {
            let page = SignInPage {
                signed_in: None,
                csrf: "",
                error: Some(e.message),
                next,
                username: form.username,
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
    let cookie =
        format!("{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}", ttl.as_secs());
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

pub(crate) struct MachineRow {
    pub id: String,
    pub name: String,
    pub os: &'static str,
    pub ip: String,
    pub port_ssh: u16,
    pub port_rdp: u16,
    pub selected: bool,
}

fn os_name(os: OsType) -> &'static str {
    match os {
        OsType::Linux => "Linux",
        OsType::Windows => "Windows",
    }
}

fn machine_row(m: &Machine, selected: bool) -> MachineRow {
    MachineRow {
        id: m.id.to_string(),
        name: m
            .id
            .child
            .as_ref()
            .map(|c| format!("{}/{}", m.id.name, c.1))
            .unwrap_or_else(|| m.id.name.clone()),
        os: os_name(m.os_type),
        ip: m.nic.private_ip.to_string(),
        port_ssh: m.port_ssh,
        port_rdp: m.port_rdp,
        selected,
    }
}

/// Machines behind `bastion` (in its reachable networks) that the user may connect to:
/// Reader on the VM, its NIC and the bastion, as Azure asks.
async fn reachable_machines(
    gw: &Gateway,
    user: &PortalUser,
    bastion: &Bastion,
) -> Result<Vec<Machine>, ApiError> {
    let machines = gw.store.list_machines(&bastion.id.subscription, None).await?;
    let principal = user.caller.principal();
    Ok(machines
        .into_iter()
        .filter(|m| bastion.settings.reachable_networks.iter().any(|n| n.contains(&m.nic.private_ip)))
        .filter(|m| {
            authorize_connect(
                &principal,
                &bastion.id,
                ConnectTarget::Resource { machine: &m.id, nic: &m.nic.id },
            )
            .is_ok()
        })
        .collect())
}

struct BastionCard {
    id: String,
    name: String,
    resource_group: String,
    tier: Tier,
    networks: String,
    may_operate: bool,
    machines: Vec<MachineRow>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    bastions: Vec<BastionCard>,
}

fn networks(b: &Bastion) -> String {
    if b.settings.reachable_networks.is_empty() {
        "no network yet".to_string()
    } else {
        b.settings.reachable_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

pub async fn home(State(gw): State<AppState>, user: PortalUser) -> Response {
    match home_page(&gw, &user).await {
        Ok(r) => r,
        Err(e) => error_page(&e, HOME),
    }
}

async fn home_page(gw: &Gateway, user: &PortalUser) -> Result<Response, ApiError> {
    let mut cards = Vec::new();
    for sub in gw.store.list_subscriptions().await? {
        for b in gw.store.list_bastions(&sub.id, None).await? {
            let scope = Scope::Resource(b.id.clone());
            if !user.caller.may(READ, &scope) {
                continue;
            }
            let machines = reachable_machines(gw, user, &b).await?;
            cards.push(BastionCard {
                id: b.id.to_string(),
                name: b.id.name.clone(),
                resource_group: b.id.resource_group.clone(),
                tier: b.settings.tier,
                networks: networks(&b),
                may_operate: user.caller.may(WRITE, &scope)
                    || user.caller.may(crate::api::sessions::LIST, &scope),
                machines: machines.iter().map(|m| machine_row(m, false)).collect(),
            });
        }
    }
    Ok(render(&HomePage { signed_in: Some(user.name()), csrf: &user.csrf, bastions: cards }))
}

#[derive(Deserialize)]
pub struct ConnectQuery {
    bastion: Option<String>,
    vm: Option<String>,
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    bastion_id: String,
    bastion_name: String,
    tier: Tier,
    machines: Vec<MachineRow>,
    by_ip: bool,
    ip_connect_reason: Option<String>,
    protocol: &'static str,
    port: u16,
    custom_ports: bool,
    custom_ports_reason: String,
}

/// The bastion a portal page is about, if the user may read it (else the refusal, audited).
async fn readable_bastion(gw: &Gateway, user: &PortalUser, raw: Option<&str>) -> Result<Bastion, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request("InvalidResourceId", "no bastion was named"))?;
    let id = gw.admission.resolve_bastion(raw).await?;
    user.caller.require(gw, rampart_core::AuditEvent::Read, READ, &Scope::Resource(id.clone())).await?;
    gw.store.bastion(&id).await?.ok_or_else(|| {
        ApiError::refused(&rampart_core::Refusal::new(rampart_core::RefusalReason::BastionNotFound {
            bastion: id.to_string(),
        }))
    })
}

pub async fn connect_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(q): Query<ConnectQuery>,
) -> Response {
    match connect_page_for(&gw, &user, &q).await {
        Ok(r) => r,
        Err(e) => error_page(&e, HOME),
    }
}

async fn connect_page_for(gw: &Gateway, user: &PortalUser, q: &ConnectQuery) -> Result<Response, ApiError> {
    let bastion = readable_bastion(gw, user, q.bastion.as_deref()).await?;
    let machines = reachable_machines(gw, user, &bastion).await?;
    let chosen = match &q.vm {
        Some(raw) => {
            let wanted = ResourceId::from_str(raw)
                .map_err(|e| ApiError::bad_request("InvalidResourceId", e.to_string()))?;
            // A machine the user may not reach is refused as if it did not exist.
            let found = machines.iter().find(|m| m.id == wanted).ok_or_else(|| {
                ApiError::refused(&rampart_core::Refusal::new(rampart_core::RefusalReason::TargetNotFound {
                    id: wanted.to_string(),
                }))
            })?;
            Some(found.clone())
        }
        None => None,
    };
    let s = &bastion.settings;
    let ip_connect_reason = if !s.tier.includes_ip_connect() {
        Some(format!("the {} tier does not include IP-based connection (Standard or Premium does)", s.tier))
    } else if !s.enable_ip_connect {
        Some("IP-based connection is turned off on this bastion".to_string())
    } else {
        None
    };
    let custom_ports = s.tier.includes_custom_ports();
    let (protocol, port) = match &chosen {
        Some(m) if m.os_type == OsType::Windows => ("rdp", m.port_rdp),
        Some(m) => ("ssh", m.port_ssh),
        None => ("ssh", 22),
    };
    let rows: Vec<MachineRow> =
        machines.iter().map(|m| machine_row(m, chosen.as_ref().is_some_and(|c| c.id == m.id))).collect();
    let page = ConnectPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        bastion_id: bastion.id.to_string(),
        bastion_name: bastion.id.name.clone(),
        tier: s.tier,
        by_ip: chosen.is_none() && (rows.is_empty() || q.vm.is_none()) && ip_connect_reason.is_none(),
        machines: rows,
        ip_connect_reason,
        protocol,
        port,
        custom_ports,
        custom_ports_reason: format!(
            "The {} tier connects to ports 22 and 3389 only (Standard or Premium allow other ports).",
            s.tier
        ),
    };
    Ok(render(&page))
}

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
