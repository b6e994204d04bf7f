//! Tunnels: a grant (policy check, then a signed token bound to user, bastion, target and
//! port), then every relayed TCP connection admitted again through the admission service
//! with the bastion's current settings (changes apply to the next connection at once), its
//! target dialled, and only then accepted: a refusal or an unreachable target is an answer
//! naming the reason, never a hang. The three carriers of a connection are in `v1`
//! (a WebSocket each), `v2` (an HTTP/2 stream each) and `v3` (a stream of one upgraded
//! connection per tunnel, the default).

mod v1;
mod v2;
mod v3;

use std::str::FromStr;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use rampart_core::{
    AuditEntry, AuditEvent, AuditResult, ClientKind, Identity, Protocol, Refusal, RefusalReason, ResourceId,
    parse_target_ip,
};
use rampart_proto::tunnel::{TunnelGrant, TunnelRequest};

use crate::admission::{Admission, Denial, DenialKind, Request, Target};
use crate::api::{ApiError, AppState, AuthUser, ClientAddr, JsonBody, UserAgent, bearer_in};
use crate::auth::{TargetNaming, TunnelClaims, ttl_secs};
use crate::server::Gateway;

pub use v1::connect;
pub(crate) use v1::{relay_websocket, server_websocket, switching_protocols, websocket_key};
pub use v2::open_stream;
pub use v3::open_mux;

/// `POST /api/tunnels`: checks the policy and grants a tunnel token.
pub async fn grant(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    user: Result<AuthUser, ApiError>,
    JsonBody(req): JsonBody<TunnelRequest>,
) -> Result<Json<TunnelGrant>, ApiError> {
    let admission = &gw.admission;
    let entry = grant_entry(client, user_agent, &req);
    if let Err(denial) = admission.check_not_draining() {
        return Err(admission.refuse(entry, denial).await.into());
    }
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            let denial = Denial::new(DenialKind::Unauthenticated, e.code, e.message);
            return Err(admission.refuse(entry, denial).await.into());
        }
    };
    issue(&gw, user, &req, entry, None).await.map(Json).map_err(ApiError::from)
}

/// The audit record a grant starts from.
pub(crate) fn grant_entry(
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    req: &TunnelRequest,
) -> AuditEntry {
    let mut entry = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Refused);
    entry.client_address = Some(client.to_string());
    entry.user_agent = user_agent;
    entry.bastion_id = Some(req.bastion_id.chars().take(512).collect());
    entry.target_ip = req.target_ip_address.as_ref().map(|t| t.chars().take(64).collect());
    entry.target_port = Some(req.resource_port);
    entry
}

/// Grants a tunnel token to a signed-in `user` (the API's grant, the portal's .rdp file,
/// az's `/api/tokens`): the user's roles, the policy and the bastion's settings decide; every
/// outcome is audited in `entry`. `tunnel_id` continues a tunnel (az asks once per
/// connection); a new one is made otherwise.
pub(crate) async fn issue(
    gw: &Gateway,
    user: AuthUser,
    req: &TunnelRequest,
    mut entry: AuditEntry,
    tunnel_id: Option<String>,
) -> Result<TunnelGrant, Denial> {
    let admission = &gw.admission;
    entry.user = Some(user.claims.name.clone());
    entry.protocol = Some(Protocol::TcpTunnel.as_str().into());
    let probe =
        AuthUser { claims: user.claims.clone(), client: user.client, user_agent: user.user_agent.clone() };
    if let Err(e) = crate::api::caller::Caller::load(gw, probe).await {
        let denial = Denial::new(DenialKind::Forbidden, e.code, e.message);
        return Err(admission.refuse(entry, denial).await);
    }
    let request = match grant_request(gw, &user, req, &mut entry).await {
        Ok(r) => r,
        Err(denial) => return Err(admission.refuse(entry, denial).await),
    };
    let authorization = match admission.authorize(&request).await {
        Ok(a) => a,
        Err(denial) => return Err(admission.refuse(entry, denial).await),
    };
    let naming = match request.target {
        Target::Ip(_) => TargetNaming::Ip,
        Target::Machine(_) => TargetNaming::Resource,
    };
    let tunnel_id = tunnel_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let now = Utc::now().timestamp();
    let claims = TunnelClaims {
        sub: user.claims.sub.clone(),
        name: user.claims.name.clone(),
        aud: TunnelClaims::audience(),
        iat: now,
        exp: now + ttl_secs(gw.config.tunnel_token_ttl),
        jti: tunnel_id.clone(),
        bastion: request.bastion.to_string(),
        ip: authorization.addr().ip().to_string(),
        port: authorization.addr().port(),
        naming,
        resource: entry.target_resource_id.clone(),
        nonce: None,
    };
    let token = gw.keys.sign_tunnel(&claims).map_err(Denial::internal)?;
    entry.result = AuditResult::Allowed;
    entry.tunnel_id = Some(tunnel_id.clone());
    gw.store.append_audit(&entry).await.map_err(Denial::internal)?;
    Ok(TunnelGrant {
        tunnel_id,
        tunnel_token: token,
        expires_at: claims.exp,
        target: authorization.addr().to_string(),
    })
}

/// The admission request a grant asks for; fills `entry` as it learns the parts.
async fn grant_request(
    gw: &Gateway,
    user: &AuthUser,
    req: &TunnelRequest,
    entry: &mut AuditEntry,
) -> Result<Request, Denial> {
    let bastion = gw.admission.resolve_bastion(&req.bastion_id).await?;
    entry.bastion_id = Some(bastion.to_string());
    let target = match (&req.target_ip_address, &req.target_resource_id) {
        (Some(ip), None) => Target::Ip(parse_target_ip(ip).map_err(|r| Denial::refused(&Refusal::new(r)))?),
        (None, Some(raw)) => {
            entry.target_resource_id = Some(raw.chars().take(512).collect());
            let m = gw.admission.resolve_machine(raw).await?;
            entry.target_resource_id = Some(m.id.to_string());
            Target::Machine(Box::new(m))
        }
        _ => {
            return Err(Denial::bad_request(
                "InvalidTarget",
                "give exactly one of --target-ip-address and --target-resource-id",
            ));
        }
    };
    entry.target_ip = Some(target.ip().to_string());
    Ok(Request {
        identity: Identity::user(&user.claims.sub, &user.claims.name),
        bastion,
        target,
        port: req.resource_port,
        protocol: Protocol::TcpTunnel,
        client_kind: ClientKind::Native,
        client: user.client,
    })
}

/// The tunnel token, verified; otherwise why not.
fn tunnel_claims(gw: &Gateway, token: Option<&str>) -> Result<TunnelClaims, String> {
    match token {
        Some(token) => gw.keys.verify_tunnel(token),
        None => Err("no tunnel token (Authorization: Bearer …)".to_string()),
    }
}

/// The tunnel token of a request's `Authorization: Bearer …`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer_in(headers)
}

/// The checks every new tunnelled connection passes, whatever carries it: the tunnel token,
/// draining, the carrier's own request form (`carrier`), then the admission service (roles,
/// settings and policy again, the dial, the durable open record, the live session).
async fn admit(
    gw: &Gateway,
    client: std::net::SocketAddr,
    token: Option<&str>,
    user_agent: Option<String>,
    carrier: Result<(), Denial>,
) -> Result<Admission, Denial> {
    admit_claims(gw, client, tunnel_claims(gw, token), user_agent, carrier).await
}

/// [`admit`] with the token already verified (`claims`, or why it was not accepted).
pub(crate) async fn admit_claims(
    gw: &Gateway,
    client: std::net::SocketAddr,
    claims: Result<TunnelClaims, String>,
    user_agent: Option<String>,
    carrier: Result<(), Denial>,
) -> Result<Admission, Denial> {
    let since = Instant::now();
    let admission = &gw.admission;
    let mut entry = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.client_address = Some(client.to_string());
    entry.connection_id = Some(uuid::Uuid::new_v4().to_string());
    entry.user_agent = user_agent;
    let claims = match claims {
        Ok(c) => c,
        Err(detail) => {
            let denial = Denial::refused(&RefusalReason::Unauthenticated { detail }.into());
            return Err(admission.refuse(entry, denial).await);
        }
    };
    entry.user = Some(claims.name.clone());
    entry.bastion_id = Some(claims.bastion.clone());
    entry.target_ip = Some(claims.ip.clone());
    entry.target_port = Some(claims.port);
    entry.tunnel_id = Some(claims.jti.clone());
    if let Err(denial) = admission.check_not_draining().and(carrier) {
        return Err(admission.refuse(entry, denial).await);
    }
    entry.target_resource_id = claims.resource.clone();
    entry.protocol = Some(Protocol::TcpTunnel.as_str().into());
    let request = match connection_request(gw, &claims, client, Protocol::TcpTunnel).await {
        Ok(r) => r,
        Err(denial) => return Err(admission.refuse(entry, denial).await),
    };
    admission.admit(request, entry, since).await
}

/// The admission request of a new connection of an open tunnel, read from its token and the
/// store as they are now, so a deleted user or an unregistered or moved machine takes effect
/// at once. The RD Gateway endpoint asks the same for an RDP channel (`protocol`).
pub(crate) async fn connection_request(
    gw: &Gateway,
    claims: &TunnelClaims,
    client: std::net::SocketAddr,
    protocol: Protocol,
) -> Result<Request, Denial> {
    let unparsable = || Denial::internal("a signed tunnel token holds an unparsable target");
    let bastion = ResourceId::from_str(&claims.bastion).map_err(|_| unparsable())?;
    let ip = parse_target_ip(&claims.ip).map_err(|_| unparsable())?;
    let user = gw
        .store
        .user_by_id(&claims.sub)
        .await?
        .ok_or_else(|| Denial::unauthenticated("the user of this tunnel no longer exists"))?;
    let target = match &claims.resource {
        Some(raw) => {
            let m = gw.admission.resolve_machine(raw).await?;
            if m.nic.private_ip != ip {
                return Err(Denial::refused(&Refusal::new(RefusalReason::TargetNotFound {
                    id: format!("{raw} at {ip} (its address changed since the tunnel opened; open it again)"),
                })));
            }
            Target::Machine(Box::new(m))
        }
        None => Target::Ip(ip),
    };
    Ok(Request {
        identity: Identity::user(user.id, user.username),
        bastion,
        target,
        port: claims.port,
        protocol,
        client_kind: ClientKind::Native,
        client,
    })
}

/// A denial as v1's and v2's HTTP answer (v3 sends the same status and body in a frame).
pub(crate) fn answer(denial: Denial) -> axum::response::Response {
    axum::response::IntoResponse::into_response(ApiError::from(denial))
}
