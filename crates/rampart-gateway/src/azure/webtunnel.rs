//! The bastion data plane `az network bastion tunnel|ssh` speaks. For each local TCP
//! connection az posts a form to `/api/tokens` with its ARM access token and the target, gets
//! `{authToken, nodeId, websocketToken}`, opens a plain WebSocket at
//! `/webtunnelv2/{websocketToken}` (binary messages both ways), and deletes the `authToken`
//! when its last connection ends. Here the grant is the API's tunnel grant (roles, settings,
//! policy, audited), the WebSocket is admitted and relayed as a v1 tunnel connection (the
//! admission service and the session lifecycle), the `authToken` names the tunnel all of
//! one az command's connections share, and deleting it ends them, on whichever node.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rampart_core::{
    AuditEntry, AuditEvent, AuditResult, EndReason, Refusal, RefusalReason, ResourceId, Scope,
};
use rampart_proto::tunnel::TunnelRequest;
use rampart_store::StoreEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::admission::{Denial, DenialKind};
use crate::api::bastions::READ;
use crate::api::caller::Caller;
use crate::api::{AppState, AuthUser, ClientAddr, UserAgent};
use crate::auth::TunnelClaims;
use crate::server::Gateway;

pub const TOKENS: &str = "/api/tokens";
pub const TOKEN: &str = "/api/tokens/{token}";

/// The `authToken`: names one az command's tunnel; deleting it ends the tunnel's connections.
const AUTH_AUDIENCE: &str = "rampart-az-tunnel";
/// The `websocketToken`: opens one connection, once, soon.
const WEBSOCKET_AUDIENCE: &str = "rampart-az-websocket";
/// az opens the WebSocket right after it gets the token.
const WEBSOCKET_TTL_SECS: i64 = 60;
/// Used WebSocket tokens remembered per node, at most (each for its minute of life).
const MAX_USED: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthClaims {
    sub: String,
    name: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The tunnel's ID, shared by its connections (in their open and close records).
    jti: String,
}

/// WebSocket tokens already used on this node, until they expire.
#[derive(Default)]
pub struct UsedTokens(Mutex<HashMap<[u8; 32], i64>>);

impl UsedTokens {
    /// True the first time a token is presented; false again, or when too many are held.
    fn first_use(&self, token: &str, expires: i64, now: i64) -> bool {
        let mut used = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= MAX_USED / 2 {
            used.retain(|_, exp| *exp >= now);
        }
        if used.len() >= MAX_USED {
            return false;
        }
        used.insert(Sha256::digest(token.as_bytes()).into(), expires).is_none()
    }
}

/// `POST /api/tokens`: a grant for one connection of az's tunnel.
pub async fn create_token(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match create(&gw, client, user_agent, &form).await {
        Ok(answer) => Json(answer).into_response(),
        Err(denial) => message(&denial),
    }
}

/// az reads a refusal's `message` (and shows it with `--verbose`).
pub(super) fn message(denial: &Denial) -> Response {
    let api = crate::api::ApiError::from(denial.clone());
    (api.status, Json(json!({"message": denial.message, "code": denial.code}))).into_response()
}

async fn create(
    gw: &Gateway,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, Denial> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let mut entry = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Refused);
    entry.client_address = Some(client.to_string());
    entry.user_agent = user_agent.clone();
    let refuse = |entry: AuditEntry, denial: Denial| async { gw.admission.refuse(entry, denial).await };
    let claims = match gw.keys.verify_access(field("aztoken")) {
        Ok(c) => c,
        Err(detail) => {
            let detail = format!("aztoken: {detail}; sign in again with `az login`");
            return Err(
                refuse(entry, Denial::refused(&RefusalReason::Unauthenticated { detail }.into())).await
            );
        }
    };
    entry.user = Some(claims.name.clone());
    let parsed = target(field("resourceId"), field("hostname"), field("workloadHostPort"), field("protocol"));
    let (target, port) = match parsed {
        Ok(t) => t,
        Err(denial) => return Err(refuse(entry, denial).await),
    };
    entry.target_port = Some(port);
    match &target {
        AzTarget::Machine(id) => entry.target_resource_id = Some(id.chars().take(512).collect()),
        AzTarget::Ip { ip, .. } => entry.target_ip = Some(ip.chars().take(64).collect()),
    }
    // A later connection of the same az command continues its tunnel.
    let tunnel_id = gw
        .keys
        .verify::<AuthClaims>(field("token"), AUTH_AUDIENCE)
        .ok()
        .filter(|previous| previous.sub == claims.sub)
        .map(|previous| previous.jti);
    let user = AuthUser { claims: claims.clone(), client, user_agent };
    let caller = match Caller::load(gw, AuthUser { claims: claims.clone(), client, user_agent: None }).await {
        Ok(c) => c,
        Err(e) => return Err(refuse(entry, Denial::new(DenialKind::Forbidden, e.code, e.message)).await),
    };
    let bastion = match choose_bastion(gw, &target, &caller).await {
        Ok(b) => b,
        Err(denial) => return Err(refuse(entry, denial).await),
    };
    let request = TunnelRequest {
        bastion_id: bastion.to_string(),
        target_ip_address: match &target {
            AzTarget::Ip { ip, .. } => Some(ip.clone()),
            AzTarget::Machine(_) => None,
        },
        target_resource_id: match &target {
            AzTarget::Machine(id) => Some(id.clone()),
            AzTarget::Ip { .. } => None,
        },
        resource_port: port,
    };
    entry.bastion_id = Some(request.bastion_id.clone());
    let grant = crate::tunnel::issue(gw, user, &request, entry, tunnel_id).await?;
    let now = Utc::now().timestamp();
    let mut websocket: TunnelClaims = gw.keys.verify_tunnel(&grant.tunnel_token).map_err(Denial::internal)?;
    websocket.aud = WEBSOCKET_AUDIENCE.to_string();
    websocket.exp = websocket.exp.min(now + WEBSOCKET_TTL_SECS);
    // Connections of one tunnel asked for in the same second must not share a token.
    websocket.nonce = Some(crate::auth::random_secret(12));
    let auth = AuthClaims {
        sub: claims.sub,
        name: claims.name,
        aud: AUTH_AUDIENCE.to_string(),
        iat: now,
        exp: grant.expires_at,
        jti: grant.tunnel_id,
    };
    Ok(json!({
        "authToken": gw.keys.sign(&auth).map_err(Denial::internal)?,
        "nodeId": gw.node,
        "websocketToken": gw.keys.sign(&websocket).map_err(Denial::internal)?,
    }))
}

/// A target as az names it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AzTarget {
    /// A VM's resource ID.
    Machine(String),
    /// `--target-ip-address`: az names the bastion's subscription and resource group.
    Ip { ip: String, subscription: String, group: String },
}

/// The target and port of az's form; `protocol` must be `tcptunnel`.
pub(crate) fn target(
    resource_id: &str,
    hostname: &str,
    port: &str,
    protocol: &str,
) -> Result<(AzTarget, u16), Denial> {
    if !protocol.eq_ignore_ascii_case("tcptunnel") {
        let protocol: String = protocol.chars().take(40).collect();
        return Err(Denial::bad_request(
            "UnsupportedProtocol",
            format!("protocol '{protocol}': only tcptunnel is offered"),
        ));
    }
    let port: u16 = port.trim().parse().map_err(|_| {
        Denial::bad_request("InvalidPort", "workloadHostPort must be a port number (1-65535)")
    })?;
    let segments: Vec<&str> = resource_id.split('/').filter(|s| !s.is_empty()).collect();
    let after = |name: &str| {
        segments.iter().position(|s| s.eq_ignore_ascii_case(name)).and_then(|i| segments.get(i + 1)).copied()
    };
    if let Some(ip) = after("bh-hostConnect") {
        let ip = if hostname.is_empty() { ip } else { hostname };
        let (Some(subscription), Some(group)) = (after("subscriptions"), after("resourceGroups")) else {
            return Err(Denial::bad_request(
                "InvalidResourceId",
                "the host-connect ID names no subscription and resource group",
            ));
        };
        return Ok((
            AzTarget::Ip { ip: ip.to_string(), subscription: subscription.into(), group: group.into() },
            port,
        ));
    }
    if resource_id.is_empty() {
        return Err(Denial::bad_request("InvalidResourceId", "resourceId is missing"));
    }
    Ok((AzTarget::Machine(resource_id.to_string()), port))
}

/// az does not say which bastion it showed: of the bastions in the target's subscription (for
/// an IP, in the resource group az names) whose settings allow the connection and whose
/// networks reach the target, the first (by name) the caller may read, else the first. The
/// grant then checks the caller's roles on it (and names what is missing).
pub(super) async fn choose_bastion(
    gw: &Gateway,
    target: &AzTarget,
    caller: &Caller,
) -> Result<ResourceId, Denial> {
    let (subscription, group, ip, what) = match target {
        AzTarget::Ip { ip, subscription, group } => {
            let ip = rampart_core::parse_target_ip(ip).map_err(|r| Denial::refused(&Refusal::new(r)))?;
            (subscription.clone(), Some(group.clone()), ip, ip.to_string())
        }
        AzTarget::Machine(raw) => {
            let m = gw.admission.resolve_machine(raw).await?;
            // The machine is named, never its address: the caller may not be allowed to read it.
            (m.id.subscription.clone(), None, m.nic.private_ip, m.id.to_string())
        }
    };
    let by_ip = matches!(target, AzTarget::Ip { .. });
    let subscription = crate::api::bastions::resolve_subscription(gw, &subscription)
        .await
        .map_err(|e| Denial::new(DenialKind::NotFound, e.code, e.message))?;
    let mut bastions = gw.store.list_bastions(&subscription.id, group.as_deref()).await?;
    bastions.sort_by_key(|b| b.id.to_string().to_ascii_lowercase());
    let fits = |b: &&rampart_core::Bastion| {
        let s = &b.settings;
        s.tier.includes_native_client()
            && s.enable_tunneling
            && (!by_ip || s.enable_ip_connect)
            && s.reachable_networks.iter().any(|n| n.contains(&ip))
    };
    let readable = |b: &&rampart_core::Bastion| caller.may(READ, &Scope::Resource(b.id.clone()));
    let fitting: Vec<_> = bastions.iter().filter(fits).collect();
    match fitting.iter().find(|b| readable(b)).or(fitting.first()) {
        Some(b) => Ok(b.id.clone()),
        None => Err(Denial::new(
            DenialKind::Forbidden,
            "NoBastionForTarget",
            format!(
                "no bastion in subscription '{}'{} has native client support{} and reaches {what}",
                subscription.id,
                group.map(|g| format!(", resource group '{g}',")).unwrap_or_default(),
                if by_ip { ", IP-based connection" } else { "" },
            ),
        )),
    }
}

/// `GET /webtunnelv2/{token}` and `/webtunnel/{token}`: one relayed connection.
pub async fn connect(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let claims = gw.keys.verify::<TunnelClaims>(&token, WEBSOCKET_AUDIENCE).and_then(|c| {
        if gw.az_tokens.first_use(&token, c.exp, Utc::now().timestamp()) {
            Ok(c)
        } else {
            Err("this WebSocket token was already used; az asks for one per connection".to_string())
        }
    });
    crate::tunnel::relay_websocket(&gw, client, claims, req).await
}

/// `DELETE /api/tokens/{authToken}`: az's tunnel ended; its connections end too, on every node.
pub async fn delete_token(State(gw): State<AppState>, Path(token): Path<String>) -> Response {
    let claims = match gw.keys.verify::<AuthClaims>(&token, AUTH_AUDIENCE) {
        Ok(c) => c,
        Err(detail) => {
            return (StatusCode::NOT_FOUND, Json(json!({"message": format!("no such tunnel: {detail}")})))
                .into_response();
        }
    };
    match end_tunnel(&gw, &claims).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => message(&Denial::internal(e)),
    }
}

async fn end_tunnel(gw: &Gateway, claims: &AuthClaims) -> Result<(), rampart_store::StoreError> {
    let by = format!("{} (az closed its tunnel)", claims.name);
    for open in gw.store.unclosed_connections().await? {
        if open.tunnel_id.as_deref() != Some(claims.jti.as_str()) {
            continue;
        }
        let Some(id) = open.connection_id else { continue };
        match gw.sessions.get(&id) {
            Some(session) => {
                session.stop(EndReason::DisconnectedBy { by: by.clone() });
            }
            None => {
                gw.store
                    .publish(&StoreEvent::StopSession { id, reason: "disconnected".into(), by: by.clone() })
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn az_targets_are_read_from_its_form() {
        let vm = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        assert_eq!(target(vm, "", "22", "tcptunnel").ok(), Some((AzTarget::Machine(vm.into()), 22)));
        let by_ip = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/bh-hostConnect/10.0.0.4";
        let want = AzTarget::Ip { ip: "10.0.0.4".into(), subscription: "s1".into(), group: "rg".into() };
        assert_eq!(target(by_ip, "10.0.0.4", "3389", "tcptunnel").ok(), Some((want, 3389)));
        assert_eq!(target(vm, "", "99999", "tcptunnel").map_err(|d| d.code), Err("InvalidPort".into()));
        assert_eq!(target(vm, "", "22", "rdp").map_err(|d| d.code), Err("UnsupportedProtocol".into()));
        assert_eq!(target("", "", "22", "tcptunnel").map_err(|d| d.code), Err("InvalidResourceId".into()));
    }

    #[test]
    fn a_websocket_token_opens_one_connection() {
        let used = UsedTokens::default();
        assert!(used.first_use("a", 100, 50));
        assert!(!used.first_use("a", 100, 50));
        assert!(used.first_use("b", 100, 50));
    }
}
