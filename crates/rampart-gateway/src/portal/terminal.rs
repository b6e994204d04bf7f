//! SSH in the browser. The Connect form is checked like a tunnel (roles, then the bastion's
//! settings and network policy), the gateway dials the target, verifies its pinned host key
//! and signs in with what the user typed; only then does the browser get a terminal page,
//! whose WebSocket is bridged to a shell on a PTY. Credentials live in memory for the
//! duration of the sign-in and are never stored or logged.
//!
//! Between the form and the WebSocket, the signed-in SSH connection waits under a one-time
//! ticket bound to the user, for at most [`TICKET_TTL`].

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use rampart_core::{AuditEntry, AuditEvent, AuditResult, ClientKind, Protocol, Refusal, parse_target_ip};
use rampart_ssh::terminal::{SshTerminal, TerminalAuth, TerminalError};
use serde::Deserialize;
use tokio::net::TcpStream;

use super::{HOME, PortalUser, error_page, message, render, same_origin};
use crate::admission::{Request, Target};
use crate::api::{ApiError, AppState};
use crate::auth;
use crate::server::Gateway;

/// How long a signed-in SSH connection waits for its terminal page to attach.
const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long the SSH handshake and sign-in may take.
const SSH_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(20);

/// A signed-in connection to a target, SSH or RDP.
pub(crate) enum TargetConnection {
    Ssh(SshTerminal),
    Rdp(Box<rampart_rdp::RdpSession>),
}

/// A signed-in connection waiting for its browser page.
pub(crate) struct PendingTerminal {
    user_id: String,
    title: String,
    pub(crate) connection: TargetConnection,
    /// The open record to write when the shell starts.
    pub(crate) entry: AuditEntry,
    /// What was authorized: decided on again while the session runs.
    pub(crate) request: Request,
    /// The admission service's change mark when it was authorized.
    pub(crate) mark: u64,
    created: Instant,
}

#[derive(Default)]
pub struct PendingTerminals {
    map: Mutex<HashMap<String, PendingTerminal>>,
}

impl PendingTerminals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingTerminal>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops connections nobody attached to (closing them).
    fn expire(map: &mut HashMap<String, PendingTerminal>) {
        map.retain(|_, p| p.created.elapsed() < TICKET_TTL);
    }

    pub(crate) fn insert(&self, pending: PendingTerminal) -> String {
        let ticket = auth::random_secret(24);
        let mut map = self.lock();
        Self::expire(&mut map);
        map.insert(ticket.clone(), pending);
        ticket
    }

    /// The page's title, and whether it is a desktop (RDP).
    fn title(&self, ticket: &str, user_id: &str) -> Option<(String, bool)> {
        let mut map = self.lock();
        Self::expire(&mut map);
        map.get(ticket)
            .filter(|p| p.user_id == user_id)
            .map(|p| (p.title.clone(), matches!(p.connection, TargetConnection::Rdp(_))))
    }

    fn take(&self, ticket: &str, user_id: &str) -> Option<PendingTerminal> {
        let mut map = self.lock();
        Self::expire(&mut map);
        if map.get(ticket).is_some_and(|p| p.user_id == user_id) { map.remove(ticket) } else { None }
    }
}

#[derive(Deserialize)]
pub struct ConnectForm {
    csrf: String,
    bastion: String,
    /// "vm" or "ip".
    target: String,
    vm: Option<String>,
    ip: Option<String>,
    protocol: String,
    port: Option<String>,
    username: String,
    /// "password" or "key".
    auth: String,
    password: Option<String>,
    private_key: Option<String>,
    passphrase: Option<String>,
    /// RDP: the Windows domain, if any.
    domain: Option<String>,
    /// RDP: the desktop size the browser window has room for.
    width: Option<u16>,
    height: Option<u16>,
    /// RDP: "h264" when the browser decodes H.264 itself (WebCodecs): the server's video is
    /// then passed through instead of decoded and re-encoded here.
    video: Option<String>,
}

impl ConnectForm {
    /// An SSH sign-in by identity (the gateway's CA), as `rampart ssh --auth-type AAD` asks for
    /// on a recording bastion.
    pub(crate) fn identity_ssh(
        bastion: String,
        target: (Option<String>, Option<String>),
        port: Option<u16>,
        username: String,
    ) -> ConnectForm {
        let (vm, ip) = target;
        ConnectForm {
            csrf: String::new(),
            bastion,
            target: if vm.is_some() { "vm" } else { "ip" }.into(),
            vm,
            ip,
            protocol: "ssh".into(),
            port: port.map(|p| p.to_string()),
            username,
            auth: "identity".into(),
            password: None,
            private_key: None,
            passphrase: None,
            domain: None,
            width: None,
            height: None,
            video: None,
        }
    }
}

impl ConnectForm {
    /// A shareable link's form: its bastion and machine, and what the visitor typed.
    pub(crate) fn for_link(
        bastion: String,
        vm: String,
        (protocol, port, username, auth): (String, Option<String>, String, String),
        (password, private_key, passphrase, domain): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
        (width, height, video): (Option<u16>, Option<u16>, Option<String>),
    ) -> ConnectForm {
        ConnectForm {
            csrf: String::new(),
            bastion,
            target: "vm".into(),
            vm: Some(vm),
            ip: None,
            protocol,
            port,
            username,
            auth,
            password,
            private_key,
            passphrase,
            domain,
            width,
            height,
            video,
        }
    }
}

impl std::fmt::Debug for ConnectForm {
    // The secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectForm").field("bastion", &self.bastion).field("target", &self.target).finish()
    }
}

fn invalid(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// `POST /portal/connect`: authorize, dial, sign in to the target, then send the browser to
/// its terminal page. Every outcome is audited; a refusal names its reasons.
pub async fn connect(
    State(gw): State<AppState>,
    user: PortalUser,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<ConnectForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri).and_then(|()| user.check_csrf(&form.csrf)) {
        return refused.into_response();
    }
    let back = format!("/portal/connect?bastion={}", super::url_encode(&form.bastion));
    let mut entry = user.caller.entry(AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.connection_id = Some(uuid::Uuid::new_v4().to_string());
    entry.protocol = Some(form.protocol.chars().take(16).collect());
    entry.bastion_id = Some(form.bastion.chars().take(512).collect());
    let identity = user.caller.identity();
    match sign_in_to_target(&gw, &user.caller, identity, ClientKind::Browser, &form, &mut entry).await {
        Ok(pending) => {
            let ticket = gw.terminals.insert(pending);
            Redirect::to(&format!("/portal/terminal/{ticket}")).into_response()
        }
        Err(err) => connect_failed(&gw, entry, &err, &back).await,
    }
}

/// Records why a Connect form (the portal's, or a shareable link's) did not open a session,
/// and answers the page that says so. Nothing is answered unaudited.
pub(crate) async fn connect_failed(
    gw: &Gateway,
    mut entry: AuditEntry,
    err: &ApiError,
    back: &str,
) -> Response {
    if entry.result == AuditResult::Allowed {
        entry.result = AuditResult::Failed;
    }
    entry.reason_code = Some(err.code.clone());
    entry.reason = Some(err.message.clone());
    if let Err(e) = gw.store.append_audit(&entry).await {
        return ApiError::internal(e).into_response();
    }
    error_page(err, back)
}

/// Authorizes the form's target, dials it and signs in (the portal's Connect form, and
/// `rampart ssh` on a recording bastion, whose sessions the gateway terminates).
///
/// `identity` is whom the session is for: the caller, or whoever holds a shareable link (then
/// `caller` stands for the link's visitor, with no role assignments).
pub(crate) async fn sign_in_to_target(
    gw: &Gateway,
    caller: &crate::api::caller::Caller,
    identity: rampart_core::Identity,
    client_kind: ClientKind,
    form: &ConnectForm,
    entry: &mut AuditEntry,
) -> Result<PendingTerminal, ApiError> {
    let admission = &gw.admission;
    admission.check_not_draining()?;
    let bastion = admission.resolve_bastion(&form.bastion).await?;
    entry.bastion_id = Some(bastion.to_string());
    let target = match form.target.as_str() {
        "vm" => {
            let raw = form.vm.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
                invalid("InvalidTarget", "choose a virtual machine, or IP address and type one")
            })?;
            entry.target_resource_id = Some(raw.chars().take(512).collect());
            let m = admission.resolve_machine(raw).await?;
            entry.target_resource_id = Some(m.id.to_string());
            Target::Machine(Box::new(m))
        }
        "ip" => {
            let raw = form.ip.as_deref().map(str::trim).unwrap_or_default();
            entry.target_ip = Some(raw.chars().take(64).collect());
            Target::Ip(parse_target_ip(raw).map_err(|r| ApiError::refused(&Refusal::new(r)))?)
        }
        other => return Err(invalid("InvalidTarget", format!("unknown target kind '{other}'"))),
    };
    entry.target_ip = Some(target.ip().to_string());
    let protocol = form.protocol.parse::<Protocol>().ok().filter(|p| *p != Protocol::TcpTunnel);
    let port = match form.port.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => u16::from_str(p)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("InvalidPort", format!("port '{p}' is not a number from 1 to 65535")))?,
        None => match (&target, protocol) {
            (Target::Machine(m), Some(Protocol::Rdp)) => m.port_rdp,
            (Target::Machine(m), _) => m.port_ssh,
            (Target::Ip(_), p) => p.and_then(Protocol::default_port).unwrap_or(22),
        },
    };
    entry.target_port = Some(port);
    let by_link = identity.kind == rampart_core::IdentityKind::ShareableLink;
    let request = Request {
        identity,
        bastion: bastion.clone(),
        target,
        port,
        protocol: protocol.unwrap_or(Protocol::Ssh),
        client_kind,
        client: caller.user.client,
    };
    let mark = admission.change_mark();
    let authorization = admission.authorize(&request).await?;
    let Some(protocol) = protocol else {
        return Err(invalid("InvalidProtocol", format!("unknown protocol '{}' (SSH or RDP)", form.protocol)));
    };
    entry.protocol = Some(protocol.as_str().into());
    let machine = match &request.target {
        Target::Machine(m) => Some(m.as_ref()),
        Target::Ip(_) => None,
    };
    let username = form.username.trim();
    if username.is_empty() || username.len() > 64 || username.chars().any(|c| c.is_control()) {
        return Err(invalid("InvalidUsername", "give the user name to sign in as on the target"));
    }
    let credentials = match (protocol, form.auth.as_str()) {
        (Protocol::Rdp, _) => Credentials::Rdp(rampart_rdp::RdpCredentials {
            username: username.to_string(),
            password: form.password.clone().unwrap_or_default(),
            domain: form.domain.clone().map(|d| d.trim().to_string()).filter(|d| !d.is_empty()),
        }),
        (_, "password") => {
            Credentials::Ssh(TerminalAuth::Password(form.password.clone().unwrap_or_default()))
        }
        (_, "key") => {
            let key = form.private_key.clone().unwrap_or_default();
            if key.trim().is_empty() {
                return Err(invalid("NoPrivateKey", "choose a private key file or paste the key"));
            }
            Credentials::Ssh(TerminalAuth::PrivateKey { key, passphrase: form.passphrase.clone() })
        }
        (_, "identity") if by_link => {
            return Err(invalid(
                "InvalidAuthType",
                "a shareable link signs in with the machine's own credentials (a password or a key)",
            ));
        }
        (_, "identity") => {
            Credentials::Ssh(identity_certificate(gw, caller, &bastion, form, username).await?)
        }
        (_, other) => {
            return Err(invalid("InvalidAuthType", format!("unknown authentication type '{other}'")));
        }
    };
    let addr = authorization.addr();
    let stream = match admission.dial(&authorization).await {
        Ok(s) => s,
        Err(denial) => {
            entry.result = AuditResult::Failed;
            return Err(denial.into());
        }
    };
    // Pinned per target as the user named it: the machine's resource ID, or ip:port.
    let named = machine.map(|m| m.id.to_string()).unwrap_or_else(|| addr.to_string());
    entry.result = AuditResult::Failed;
    let connection = match credentials {
        Credentials::Ssh(auth) => {
            TargetConnection::Ssh(sign_in_ssh(gw, stream, addr, &named, username, auth).await?)
        }
        Credentials::Rdp(creds) => {
            let video = form.video.as_deref() == Some("h264");
            let session = super::desktop::sign_in(
                gw,
                stream,
                addr,
                (&named, &bastion),
                creds,
                (desktop_size(form), video),
            );
            TargetConnection::Rdp(Box::new(session.await?))
        }
    };
    entry.result = AuditResult::Allowed;
    let shown = machine.map(|m| m.id.name.clone()).unwrap_or_else(|| addr.to_string());
    Ok(PendingTerminal {
        user_id: caller.user.claims.sub.clone(),
        title: format!("{username}@{shown}"),
        connection,
        entry: entry.clone(),
        request,
        mark,
        created: Instant::now(),
    })
}

/// Identity sign-in done by the gateway: a key made for this session and a certificate for it
/// from the gateway's CA, under the same rules as `rampart ssh --auth-type AAD` (a login role on
/// the VM; only one's own login without Administrator Login).
async fn identity_certificate(
    gw: &Gateway,
    caller: &crate::api::caller::Caller,
    bastion: &rampart_core::ResourceId,
    form: &ConnectForm,
    username: &str,
) -> Result<TerminalAuth, ApiError> {
    let (key, public) = rampart_ssh::session_key().map_err(ApiError::internal)?;
    let request = rampart_proto::api::SshCertificateRequest {
        bastion_id: bastion.to_string(),
        target_resource_id: form.vm.clone().filter(|v| form.target == "vm" && !v.is_empty()),
        target_ip_address: form.ip.clone().filter(|_| form.target == "ip"),
        username: Some(username.to_string()),
        public_key: public,
    };
    let cert = crate::api::ssh::sign(gw, caller, &request).await?;
    Ok(TerminalAuth::Certificate { key, certificate: cert.certificate })
}

enum Credentials {
    Ssh(TerminalAuth),
    Rdp(rampart_rdp::RdpCredentials),
}

/// The desktop size the browser asked for (its window), within what RDP servers accept.
fn desktop_size(form: &ConnectForm) -> (u16, u16) {
    let w = form.width.unwrap_or(1280).clamp(640, 3840);
    let h = form.height.unwrap_or(720).clamp(480, 2160);
    // RDP wants an even width.
    (w & !1, h)
}

async fn sign_in_ssh(
    gw: &Gateway,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    pin_key: &str,
    username: &str,
    auth: TerminalAuth,
) -> Result<SshTerminal, ApiError> {
    let pinned = gw.store.pinned_host_key(pin_key).await?;
    let terminal = match tokio::time::timeout(
        SSH_SIGN_IN_TIMEOUT,
        SshTerminal::connect(stream, pinned.clone(), username, auth),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(terminal_error(&e, addr)),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "SshTimeout",
                format!("SSH sign-in to {addr} did not finish within {} s", SSH_SIGN_IN_TIMEOUT.as_secs()),
            ));
        }
    };
    if pinned.is_none() {
        let kept = gw.store.pin_host_key(pin_key, terminal.host_key()).await?;
        // Another session pinned a different key in the meantime: trust neither.
        if kept != terminal.host_key() {
            return Err(terminal_error(
                &TerminalError::HostKeyChanged {
                    pinned: rampart_ssh::terminal::fingerprint(&kept),
                    offered: rampart_ssh::terminal::fingerprint(terminal.host_key()),
                },
                addr,
            ));
        }
        tracing::info!(target = %pin_key, key = %rampart_ssh::terminal::fingerprint(&kept), "pinned SSH host key");
    }
    Ok(terminal)
}

fn terminal_error(e: &TerminalError, addr: std::net::SocketAddr) -> ApiError {
    let (status, code) = match e {
        TerminalError::HostKeyChanged { .. } => (StatusCode::BAD_GATEWAY, "HostKeyChanged"),
        TerminalError::AuthenticationFailed { .. } => {
            (StatusCode::UNAUTHORIZED, "TargetAuthenticationFailed")
        }
        TerminalError::KeyNeedsPassphrase | TerminalError::BadPrivateKey(_) => {
            (StatusCode::BAD_REQUEST, "BadPrivateKey")
        }
        TerminalError::Protocol(_) | TerminalError::Shell(_) => (StatusCode::BAD_GATEWAY, "SshFailed"),
    };
    ApiError::new(status, code, format!("{addr}: {e}"))
}

#[derive(Template)]
#[template(path = "terminal.html")]
pub(crate) struct TerminalPage {
    pub title: String,
    /// The WebSocket the page opens: its own terminal's, or a join's.
    pub ws: String,
    /// The file panel is offered (the user's own terminal in the portal).
    pub files: bool,
}

pub async fn page(State(gw): State<AppState>, user: PortalUser, Path(ticket): Path<String>) -> Response {
    page_for(&gw, &ticket, &user.caller.user.claims.sub, &format!("/portal/terminal/{ticket}/ws"), true)
}

/// The terminal or desktop page of a waiting connection, opening the WebSocket at `ws`.
pub(crate) fn page_for(gw: &Gateway, ticket: &str, owner: &str, ws: &str, files: bool) -> Response {
    match gw.terminals.title(ticket, owner) {
        Some((title, false)) => render(&TerminalPage { title, ws: ws.to_string(), files }),
        Some((title, true)) => render(&super::desktop::DesktopPage::own(title, ws)),
        None => gone(),
    }
}

pub(crate) fn gone() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Terminal not available",
        "TerminalNotFound",
        "this terminal was already opened, or was not opened within a minute; connect again",
        HOME,
    )
}

#[derive(Deserialize)]
pub(crate) struct TerminalSize {
    cols: Option<u16>,
    rows: Option<u16>,
}

/// `GET /portal/terminal/{ticket}/ws`: the terminal's WebSocket (one per ticket).
pub async fn websocket(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(ticket): Path<String>,
    Query(size): Query<TerminalSize>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return refused.into_response();
    }
    attach(gw, &ticket, &user.caller.user.claims.sub, user.caller.user.client, size, upgrade)
}

/// Bridges the WebSocket to the connection waiting under `ticket` for `owner`.
pub(crate) fn attach(
    gw: AppState,
    ticket: &str,
    owner: &str,
    client: std::net::SocketAddr,
    size: TerminalSize,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(pending) = gw.terminals.take(ticket, owner) else {
        return gone();
    };
    let cols = size.cols.unwrap_or(80).clamp(10, 1000);
    let rows = size.rows.unwrap_or(24).clamp(2, 500);
    upgrade.on_upgrade(move |socket| async move {
        let PendingTerminal { connection, mut entry, mut request, mark, .. } = pending;
        // The session is where the page attached from.
        request.client = client;
        match connection {
            TargetConnection::Ssh(terminal) => {
                super::shell::run_terminal(gw, terminal, entry, (request, mark), socket, cols, rows).await
            }
            TargetConnection::Rdp(session) => {
                entry.protocol = Some(Protocol::Rdp.as_str().into());
                super::desktop::run_desktop(gw, *session, entry, (request, mark), socket).await
            }
        }
    })
}
