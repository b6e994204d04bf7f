//! The Remote Desktop Gateway endpoint (MS-TSGU's HTTP transport, `/remoteDesktopGateway/`
//! on the gateway's HTTPS port): stock RDP clients (mstsc, the Remote Desktop apps, FreeRDP,
//! Remmina) reach targets through Rampart with only an .rdp file, no CLI.
//!
//! A client proves who it is with a Rampart tunnel token as the protocol's PAA cookie
//! (`gatewayaccesstoken` in the .rdp file `rampart network bastion rdp --output-rdp-file`
//! and the portal write; FreeRDP's `/gat:`). The token names the user, the bastion and the
//! one target it was granted for; the computer the client then asks for must be that target,
//! and the admission service decides again at that step (roles, settings, policy, as for
//! every tunnelled connection), dials, and starts an ordinary session: listed, disconnectable,
//! idle-timed, audited. The RDP inside stays encrypted end to end between client and target,
//! so the gateway cannot record it: recording bastions refuse these sessions as they refuse
//! other native tunnels, unless unrecorded tunnels are allowed.
//!
//! The carrier is the WebSocket variant (`RDG_OUT_DATA` with `Upgrade: websocket`, what
//! FreeRDP and current Windows clients use first) or the legacy pair of long requests
//! (`RDG_OUT_DATA` down, `RDG_IN_DATA` up, matched by `RDG-Connection-Id`): [`legacy`].

mod channel;
mod legacy;

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, Protocol, RefusalReason};

use crate::admission::Denial;
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};
use crate::auth::TunnelClaims;

pub use legacy::Pending;

/// Where RD Gateway clients send their requests (fixed by the clients).
pub const PATH: &str = "/remoteDesktopGateway/";
const OUT: &str = "RDG_OUT_DATA";
const IN: &str = "RDG_IN_DATA";

/// Every request to [`PATH`]: the carrier's HTTP step. Authentication happens inside the
/// protocol (the tunnel request's cookie), so only the form of the request is checked here.
pub async fn endpoint(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    mut req: Request,
) -> Response {
    let user_agent = UserAgent::from_headers(req.headers());
    let method = req.method().as_str().to_string();
    if method != OUT && method != IN {
        let denial = Denial::bad_request(
            "NotRdGateway",
            "this is the Remote Desktop Gateway endpoint: open an .rdp file from `rampart network bastion rdp --output-rdp-file` in an RDP client",
        );
        return refuse(&gw, client, user_agent, denial).await;
    }
    if !uses_token(req.headers()) {
        // NTLM, Kerberos and Basic would need the user's password here; Rampart signs users
        // in with its own methods (MFA, single sign-on) and hands the client a token instead.
        let denial = Denial::refused(
            &RefusalReason::Unauthenticated {
                detail: "the RD Gateway takes a Rampart token (gatewayaccesstoken in the .rdp file from `rampart network bastion rdp --output-rdp-file` or the portal; FreeRDP: /gat:TOKEN), not NTLM, Kerberos or Basic".into(),
            }
            .into(),
        );
        let mut response = refuse(&gw, client, user_agent, denial).await;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    if !wants_websocket(req.headers()) {
        return legacy::request(gw, client, user_agent, req).await;
    }
    if method != OUT {
        let denial = Denial::bad_request("NotRdGateway", "the WebSocket carrier starts with RDG_OUT_DATA");
        return refuse(&gw, client, user_agent, denial).await;
    }
    let key = match crate::tunnel::websocket_key(req.headers()) {
        Ok(key) => key,
        Err(denial) => return refuse(&gw, client, user_agent, denial).await,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = crate::tunnel::server_websocket(upgraded).await;
                channel::serve(gw, channel::Carrier::websocket(ws), client, user_agent).await;
            }
            Err(e) => tracing::debug!(error = %e, "RD Gateway WebSocket upgrade failed"),
        }
    });
    crate::tunnel::switching_protocols(&key)
}

/// `RDG-Auth-Scheme: PAA`: the client will send a token in its tunnel request.
fn uses_token(headers: &HeaderMap) -> bool {
    headers
        .get("rdg-auth-scheme")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("PAA"))
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// Records a refusal at the HTTP step and answers it.
async fn refuse(
    gw: &AppState,
    client: std::net::SocketAddr,
    user_agent: Option<String>,
    denial: Denial,
) -> Response {
    let entry = audit_entry(client, user_agent);
    ApiError::from(gw.admission.refuse(entry, denial).await).into_response()
}

/// The audit record every RD Gateway connection starts from.
fn audit_entry(client: std::net::SocketAddr, user_agent: Option<String>) -> AuditEntry {
    let mut entry = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.client_address = Some(client.to_string());
    entry.user_agent = user_agent.or_else(|| Some("RD Gateway client".into()));
    entry.connection_id = Some(uuid::Uuid::new_v4().to_string());
    entry.protocol = Some(Protocol::Rdp.as_str().into());
    entry
}

/// Whether the computer a client asks for is the one its token was granted for: the same
/// port, and the target's address, or (for a registered machine) its name or resource ID.
fn names_the_target(resource: &str, port: u16, claims: &TunnelClaims) -> bool {
    if port != claims.port {
        return false;
    }
    let asked = resource.trim().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = asked.parse::<IpAddr>() {
        return claims.ip.parse::<IpAddr>().is_ok_and(|granted| granted == ip);
    }
    claims.resource.as_deref().is_some_and(|id| {
        id.eq_ignore_ascii_case(asked)
            || id.rsplit('/').next().is_some_and(|name| name.eq_ignore_ascii_case(asked))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TargetNaming;

    fn claims(resource: Option<&str>) -> TunnelClaims {
        TunnelClaims {
            sub: "u".into(),
            name: "alice".into(),
            aud: TunnelClaims::audience(),
            iat: 0,
            exp: 0,
            jti: "t".into(),
            bastion: "b".into(),
            ip: "10.1.0.4".into(),
            port: 3389,
            naming: TargetNaming::Resource,
            resource: resource.map(str::to_string),
            nonce: None,
        }
    }

    #[test]
    fn a_client_may_name_its_target_by_address_name_or_id_but_no_other() {
        let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/Win1";
        let c = claims(Some(vm));
        for asked in ["10.1.0.4", "win1", "WIN1", vm, "[10.1.0.4]"] {
            assert!(names_the_target(asked, 3389, &c), "{asked}");
        }
        for (asked, port) in [("10.1.0.5", 3389), ("win2", 3389), ("10.1.0.4", 22), ("", 3389)] {
            assert!(!names_the_target(asked, port, &c), "{asked}:{port}");
        }
        assert!(!names_the_target("win1", 3389, &claims(None)), "an address grant has no name");
    }
}
