//! The RD Gateway's legacy HTTP carrier (MS-TSGU 3.3.5.1), for clients without WebSocket
//! (FreeRDP's `/gt:http,no-websockets`, older mstsc): two long requests on two TLS
//! connections, paired by their `RDG-Connection-Id`. `RDG_OUT_DATA`'s chunked response
//! carries the gateway's packets (after a 10-byte seed), the chunked body of the second
//! `RDG_IN_DATA` carries the client's; a first `RDG_IN_DATA` without a body is the client's
//! probe before its long request, answered at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{mpsc, oneshot};

use super::channel::{self, Carrier};
use super::{IN, OUT, refuse};
use crate::admission::{Denial, DenialKind};
use crate::api::AppState;

/// Bytes the gateway sends before its first packet on `RDG_OUT_DATA` (clients skip them).
const SEED_LEN: usize = 10;
/// How long an `RDG_OUT_DATA` waits for its `RDG_IN_DATA`.
const PAIRING: Duration = Duration::from_secs(30);
/// Waiting `RDG_OUT_DATA` requests at most: each holds a task until paired or timed out.
const MAX_WAITING: usize = 1_000;
/// Packets queued for the client before the relay waits for the response body to drain.
const QUEUE: usize = 32;

/// `RDG_OUT_DATA` requests waiting for their `RDG_IN_DATA`, by connection id.
#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, oneshot::Sender<InLeg>>>);

impl Pending {
    fn wait(&self, id: &str) -> Result<oneshot::Receiver<InLeg>, Denial> {
        let mut waiting = self.0.lock().map_err(|_| Denial::internal("RD Gateway pairing lock poisoned"))?;
        if waiting.len() >= MAX_WAITING {
            return Err(Denial::new(
                DenialKind::Unavailable,
                "RdGatewayBusy",
                "too many RD Gateway connections are opening; try again",
            ));
        }
        if waiting.contains_key(id) {
            return Err(Denial::bad_request("RdGatewayCarrier", "this RDG-Connection-Id is already waiting"));
        }
        let (tx, rx) = oneshot::channel();
        waiting.insert(id.to_string(), tx);
        Ok(rx)
    }

    fn take(&self, id: &str) -> Option<oneshot::Sender<InLeg>> {
        self.0.lock().ok()?.remove(id)
    }
}

/// The client's half: its packets, and a signal held until the connection ends (the long
/// request is answered only then).
struct InLeg {
    packets: BoxStream<'static, Result<Bytes, String>>,
    _done: oneshot::Sender<()>,
}

pub(super) async fn request(
    gw: AppState,
    client: SocketAddr,
    user_agent: Option<String>,
    req: Request,
) -> Response {
    let id = req
        .headers()
        .get("rdg-connection-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(str::to_string);
    let Some(id) = id else {
        let denial = Denial::bad_request("RdGatewayCarrier", "RDG-Connection-Id is missing");
        return refuse(&gw, client, user_agent, denial).await;
    };
    let method = req.method().as_str().to_string();
    if method == OUT {
        return out_leg(gw, client, user_agent, id).await;
    }
    debug_assert_eq!(method, IN);
    if !chunked(req.headers()) {
        return empty(StatusCode::OK);
    }
    let Some(waiting) = gw.rd_gateway.take(&id) else {
        let denial = Denial::bad_request(
            "RdGatewayCarrier",
            "no RDG_OUT_DATA request with this RDG-Connection-Id is waiting (send it first, to the same gateway)",
        );
        return refuse(&gw, client, user_agent, denial).await;
    };
    let (done, ended) = oneshot::channel();
    let packets = req.into_body().into_data_stream().map_err(|e| e.to_string()).boxed();
    if waiting.send(InLeg { packets, _done: done }).is_ok() {
        let _ = ended.await;
    }
    empty(StatusCode::OK)
}

async fn out_leg(gw: AppState, client: SocketAddr, user_agent: Option<String>, id: String) -> Response {
    let paired = match gw.rd_gateway.wait(&id) {
        Ok(rx) => rx,
        Err(denial) => return refuse(&gw, client, user_agent, denial).await,
    };
    let (to_client, queue) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(async move {
        let leg = tokio::time::timeout(PAIRING, paired).await;
        drop(gw.rd_gateway.take(&id));
        match leg {
            Ok(Ok(leg)) => {
                let outgoing = futures_util::sink::unfold(to_client, |tx, packet: Bytes| async move {
                    tx.send(packet)
                        .await
                        .map_err(|_| "the client's RDG_OUT_DATA response ended".to_string())?;
                    Ok::<_, String>(tx)
                });
                let carrier = Carrier::new(leg.packets, Box::pin(outgoing));
                channel::serve(gw, carrier, client, user_agent).await;
            }
            _ => {
                let denial = Denial::bad_request(
                    "RdGatewayCarrier",
                    format!("no RDG_IN_DATA request followed within {} s", PAIRING.as_secs()),
                );
                drop(refuse(&gw, client, user_agent, denial).await);
            }
        }
    });
    let seed = Bytes::from(rand::random::<[u8; SEED_LEN]>().to_vec());
    let packets = futures_util::stream::unfold(queue, |mut queue| async move {
        queue.recv().await.map(|packet| (Ok::<_, Infallible>(packet), queue))
    });
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(seed) }).chain(packets);
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}

fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
