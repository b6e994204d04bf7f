//! Protocol v2: one HTTP/2 stream per relayed TCP connection. The request body is the
//! client's bytes, the response body the target's, ending with trailers that say how the
//! target's side ended.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use rampart_tunnel::RelayReport;
use rampart_tunnel::stream::{ChunkBody, pump_body, run_stream};

use super::{admit, answer, bearer_token};
use crate::admission::{Admission, Denial, DenialKind};
use crate::api::{AppState, ClientAddr, UserAgent};

/// Why a v2 stream ends when its connection goes: hyper closes a connection whose client
/// answers no keep-alive ping, and a client may reset the stream or vanish.
const LOST: &str =
    "the client's connection closed under the stream (no answer to keep-alive pings, or reset)";

/// `POST /api/tunnels/streams`.
pub async fn open_stream(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let carrier = if parts.version == http::Version::HTTP_2 {
        Ok(())
    } else {
        Err(Denial::new(
            DenialKind::CarrierNotSupported,
            "Http2Required",
            "tunnel streams need HTTP/2 (TLS with ALPN h2); use /api/tunnels/connect for a WebSocket",
        ))
    };
    let user_agent = UserAgent::from_headers(&parts.headers);
    let Admission { target, session, .. } =
        match admit(&gw, client, bearer_token(&parts.headers), user_agent, carrier).await {
            Ok(a) => a,
            Err(denial) => return answer(denial),
        };
    let (target_read, mut target_write) = target.into_split();
    let counters = session.session.counters.clone();
    let (download, download_end) = ChunkBody::new(target_read, counters.clone());
    let download = download.with_stop(session.stop.clone());

    tokio::spawn(async move {
        counters.last_activity_ms.store(rampart_tunnel::now_ms(), Ordering::Relaxed);
        let mut body = body;
        let upload = pump_body(&mut body, &mut target_write, &counters);
        let end = run_stream(upload, download_end, Some(session.stop.clone()), LOST).await;
        if matches!(end, rampart_tunnel::RelayEnd::Stopped(_)) {
            // Dropping the client's side now would reset the stream, and a reset discards the
            // trailers still queued that tell the client why. The client ends its side once it
            // reads them: until then (at most a few seconds) its bytes are read and dropped,
            // never forwarded.
            let drain = async { while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {} };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
        let report = RelayReport {
            socket_to_tunnel: counters.socket_to_tunnel.load(Ordering::Relaxed),
            tunnel_to_socket: counters.tunnel_to_socket.load(Ordering::Relaxed),
            end,
        };
        session.finish_relay(Ok(report)).await;
    });

    let mut response = Response::new(axum::body::Body::new(download));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    response
}
