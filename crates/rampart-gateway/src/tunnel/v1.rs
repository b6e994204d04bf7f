//! Protocol v1: one TLS connection and WebSocket per relayed TCP connection.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use rampart_proto::tunnel::SUBPROTOCOL;
use rampart_tunnel::tokio_tungstenite::WebSocketStream;
use rampart_tunnel::tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use rampart_tunnel::tokio_tungstenite::tungstenite::protocol::Role;
use rampart_tunnel::{RelayOptions, relay, websocket_config};

use super::{admit_claims, answer, bearer_token};
use crate::admission::{Admission, Denial};
use crate::api::{AppState, ClientAddr, UserAgent};
use crate::server::Gateway;

/// `GET /api/tunnels/connect` (WebSocket upgrade).
pub async fn connect(State(gw): State<AppState>, ClientAddr(client): ClientAddr, req: Request) -> Response {
    let claims = super::tunnel_claims(&gw, bearer_token(req.headers()));
    relay_websocket(&gw, client, claims, req).await
}

/// One relayed TCP connection as one WebSocket of binary messages (v1, and az's
/// `/webtunnelv2/`): admitted with the token's `claims`, then upgraded and relayed.
pub(crate) async fn relay_websocket(
    gw: &Gateway,
    client: std::net::SocketAddr,
    claims: Result<crate::auth::TunnelClaims, String>,
    mut req: Request,
) -> Response {
    let (key, carrier) = match websocket_key(req.headers()) {
        Ok(key) => (key, Ok(())),
        Err(e) => (String::new(), Err(e)),
    };
    let user_agent = UserAgent::from_headers(req.headers());
    let admitted = match admit_claims(gw, client, claims, user_agent, carrier).await {
        Ok(a) => a,
        Err(denial) => return answer(denial),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let offered_protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL));

    let keepalive = gw.config.keepalive;
    tokio::spawn(async move {
        let Admission { target, session, .. } = admitted;
        let report = match on_upgrade.await {
            Ok(upgraded) => {
                let ws = server_websocket(upgraded).await;
                let options = RelayOptions {
                    keepalive: Some(keepalive),
                    counters: Some(session.session.counters.clone()),
                    stop: Some(session.stop.clone()),
                };
                Ok(relay(ws, target, options).await)
            }
            Err(e) => Err(format!("WebSocket upgrade failed: {e}")),
        };
        session.finish_relay(report).await;
    });

    let mut response = switching_protocols(&key);
    if offered_protocol {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    }
    response
}

/// The gateway's side of a WebSocket whose upgrade has completed.
pub(crate) async fn server_websocket(
    upgraded: hyper::upgrade::Upgraded,
) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(websocket_config())).await
}

/// `101 Switching Protocols`, accepting the WebSocket whose `Sec-WebSocket-Key` was `key`.
pub(crate) fn switching_protocols(key: &str) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

pub(crate) fn websocket_key(headers: &HeaderMap) -> Result<String, Denial> {
    let is = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    };
    if !is(header::UPGRADE, "websocket") || !is(header::CONNECTION, "upgrade") {
        return Err(Denial::bad_request(
            "NotWebSocket",
            "this endpoint takes a WebSocket upgrade (HTTP/1.1, Upgrade: websocket)",
        ));
    }
    if !is(header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(Denial::bad_request("NotWebSocket", "WebSocket version 13 is required"));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| Denial::bad_request("NotWebSocket", "Sec-WebSocket-Key is missing"))
}
