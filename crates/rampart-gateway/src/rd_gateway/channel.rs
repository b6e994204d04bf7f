//! One RD Gateway connection, whatever carries it: the protocol's opening (handshake, the
//! token in the tunnel request, the tunnel authorization, the channel request), admission of
//! the computer asked for, then the relay of the RDP bytes in data packets until either side
//! closes or the session is stopped (a disconnect, revoked access, a limit, the drain).

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Sink, SinkExt, StreamExt};
use rampart_core::{AuditEntry, EndReason, Protocol, RefusalReason};
use rampart_rdg::{Connection, Event, packet, status};
use rampart_tunnel::tokio_tungstenite::WebSocketStream;
use rampart_tunnel::tokio_tungstenite::tungstenite::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{audit_entry, names_the_target};
use crate::admission::{Admission, Denial, DenialKind};
use crate::api::AppState;
use crate::auth::TunnelClaims;
use crate::lifecycle::{Direction, LiveSession};

/// How long a client has from connecting to asking for its channel.
const OPENING: Duration = Duration::from_secs(30);
/// Bytes read from the target per data packet.
const READ_CHUNK: usize = 16 * 1024;
/// Packets queued for the client before the target's reader waits for the client.
const TO_CLIENT_QUEUE: usize = 32;
/// The channel's id in the answer (one channel per connection).
const CHANNEL_ID: u32 = 1;

/// The two directions of a carrier: bytes from the client as they arrive (the stream ends
/// when the client closes), and packets to the client.
pub(super) struct Carrier {
    incoming: BoxStream<'static, Result<Bytes, String>>,
    outgoing: Pin<Box<dyn Sink<Bytes, Error = String> + Send>>,
}

impl Carrier {
    pub(super) fn new(
        incoming: BoxStream<'static, Result<Bytes, String>>,
        outgoing: Pin<Box<dyn Sink<Bytes, Error = String> + Send>>,
    ) -> Carrier {
        Carrier { incoming, outgoing }
    }

    /// A WebSocket whose binary messages carry the packets.
    pub(super) fn websocket<S>(ws: WebSocketStream<S>) -> Carrier
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, stream) = ws.split();
        let outgoing = sink
            .sink_map_err(|e| e.to_string())
            .with(|b: Bytes| futures_util::future::ready(Ok::<_, String>(Message::Binary(b))));
        let incoming = stream.filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(Message::Text(_)) => Some(Err("a text message is not an RD Gateway packet".to_string())),
                // Pings are answered by the WebSocket itself; a close ends the stream.
                Ok(_) => None,
                Err(e) => Some(Err(e.to_string())),
            })
        });
        Carrier::new(incoming.boxed(), Box::pin(outgoing))
    }

    async fn send(&mut self, packet: Vec<u8>) -> Result<(), String> {
        self.outgoing.send(Bytes::from(packet)).await
    }
}

/// A refusal during the opening: the answer packet for the client, and the denial to audit.
struct Refused {
    answer: Option<Vec<u8>>,
    denial: Denial,
}

impl Refused {
    fn new(answer: Vec<u8>, denial: Denial) -> Refused {
        Refused { answer: Some(answer), denial }
    }
}

/// What the opening established: who, and the computer they asked for.
struct Opened {
    claims: TunnelClaims,
    resources: Vec<String>,
    port: u16,
}

/// Runs one connection to its end; every refusal is audited with its reason.
pub(super) async fn serve(
    gw: AppState,
    mut carrier: Carrier,
    client: SocketAddr,
    user_agent: Option<String>,
) {
    let since = Instant::now();
    let mut entry = audit_entry(client, user_agent);
    let mut conn = Connection::new();
    let opened = match tokio::time::timeout(OPENING, open(&gw, &mut carrier, &mut conn, &mut entry)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(refused)) => return refuse(&gw, &mut carrier, entry, refused).await,
        Err(_) => {
            let denial = Denial::bad_request(
                "RdGatewayTimeout",
                format!("the client asked for no computer within {} s of connecting", OPENING.as_secs()),
            );
            return refuse(&gw, &mut carrier, entry, Refused { answer: None, denial }).await;
        }
    };
    let Some(resource) = opened.resources.iter().find(|r| names_the_target(r, opened.port, &opened.claims))
    else {
        let asked = format!("{}:{}", opened.resources.join(" or "), opened.port);
        let granted = match &opened.claims.resource {
            Some(id) => format!("{id} ({}:{})", opened.claims.ip, opened.claims.port),
            None => format!("{}:{}", opened.claims.ip, opened.claims.port),
        };
        let denial = Denial::new(
            DenialKind::Forbidden,
            "TokenForOtherTarget",
            format!("this token was granted for {granted}, not {asked}: get an .rdp file for that computer"),
        );
        let answer = packet::channel_response(status::RAP_ACCESS_DENIED, None);
        return refuse(&gw, &mut carrier, entry, Refused::new(answer, denial)).await;
    };
    tracing::debug!(resource, "RD Gateway channel requested");
    let request = match crate::tunnel::connection_request(&gw, &opened.claims, client, Protocol::Rdp).await {
        Ok(r) => r,
        Err(denial) => {
            let answer = packet::channel_response(status::RAP_ACCESS_DENIED, None);
            return refuse(&gw, &mut carrier, entry, Refused::new(answer, denial)).await;
        }
    };
    // The admission service records its own refusals; only the client still needs its answer.
    let Admission { target, session, .. } = match gw.admission.admit(request, entry, since).await {
        Ok(admitted) => admitted,
        Err(denial) => {
            let code = if denial.is_failure() { status::CONNECT_FAILED } else { status::RAP_ACCESS_DENIED };
            let _ = carrier.send(packet::channel_response(code, None)).await;
            let _ = carrier.send(packet::service_message(&denial.message)).await;
            let _ = carrier.outgoing.close().await;
            return;
        }
    };
    if let Err(e) = carrier.send(packet::channel_response(status::OK, Some(CHANNEL_ID))).await {
        return session.finish(EndReason::ClientClosed { detail: e }).await;
    }
    let end = relay(carrier, conn, target, &session, gw.config.keepalive).await;
    session.finish(end).await;
}

/// The opening, up to the channel request; answers each step the client passes.
async fn open(
    gw: &AppState,
    carrier: &mut Carrier,
    conn: &mut Connection,
    entry: &mut AuditEntry,
) -> Result<Opened, Refused> {
    let mut claims = None;
    loop {
        let bytes = match carrier.incoming.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                return Err(Refused { answer: None, denial: Denial::bad_request("RdGatewayCarrier", e) });
            }
            None => {
                let detail = "the client closed the connection before asking for a computer";
                return Err(Refused { answer: None, denial: Denial::bad_request("RdGatewayClosed", detail) });
            }
        };
        conn.receive(&bytes);
        loop {
            let event = match conn.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    let denial = Denial::bad_request("RdGatewayProtocol", e);
                    return Err(Refused { answer: None, denial });
                }
            };
            match event {
                Event::Handshake { extended_auth } => {
                    if extended_auth & packet::EXTENDED_AUTH_PAA == 0 {
                        let denial = unauthenticated("the client offered no token (PAA) in its handshake");
                        let answer = packet::handshake_response(status::UNSUPPORTED_AUTHENTICATION, 0);
                        return Err(Refused::new(answer, denial));
                    }
                    answer(carrier, packet::handshake_response(status::OK, packet::EXTENDED_AUTH_PAA))
                        .await?;
                }
                Event::TunnelCreate { paa_cookie } => {
                    let verified = match paa_cookie {
                        Some(token) => gw.keys.verify_tunnel(token.trim()),
                        None => Err("the tunnel request carries no token".to_string()),
                    };
                    let c = verified.map_err(|detail| {
                        Refused::new(
                            packet::tunnel_response(status::COOKIE_ACCESS_DENIED, None, 0),
                            unauthenticated(&detail),
                        )
                    })?;
                    describe(entry, &c);
                    gw.admission.check_not_draining().map_err(|denial| {
                        Refused::new(packet::tunnel_response(status::INTERNAL_ERROR, None, 0), denial)
                    })?;
                    claims = Some(c);
                    let tunnel =
                        packet::tunnel_response(status::OK, Some(1), packet::CAPABILITY_IDLE_TIMEOUT);
                    answer(carrier, tunnel).await?;
                }
                Event::TunnelAuth { client_name } => {
                    tracing::debug!(client_name, "RD Gateway tunnel authorization");
                    // The gateway enforces its bastions' idle timeouts itself; 0 tells none.
                    answer(carrier, packet::tunnel_auth_response(status::OK, Some(0))).await?;
                }
                Event::ChannelCreate { resources, port } => {
                    entry.target_port = Some(port);
                    let Some(claims) = claims.take() else {
                        return Err(Refused {
                            answer: None,
                            denial: Denial::internal("a channel before a tunnel"),
                        });
                    };
                    return Ok(Opened { claims, resources, port });
                }
                Event::Keepalive => {}
                other => {
                    let denial = Denial::bad_request("RdGatewayProtocol", format!("unexpected {other:?}"));
                    return Err(Refused { answer: None, denial });
                }
            }
        }
    }
}

fn unauthenticated(detail: &str) -> Denial {
    Denial::refused(&RefusalReason::Unauthenticated { detail: detail.to_string() }.into())
}

async fn answer(carrier: &mut Carrier, packet: Vec<u8>) -> Result<(), Refused> {
    carrier
        .send(packet)
        .await
        .map_err(|e| Refused { answer: None, denial: Denial::bad_request("RdGatewayClosed", e) })
}

/// What the token says, into the audit record.
fn describe(entry: &mut AuditEntry, claims: &TunnelClaims) {
    entry.user = Some(claims.name.clone());
    entry.bastion_id = Some(claims.bastion.clone());
    entry.target_ip = Some(claims.ip.clone());
    entry.target_port = Some(claims.port);
    entry.tunnel_id = Some(claims.jti.clone());
    entry.target_resource_id = claims.resource.clone();
}

/// Audits a refusal, answers the client with its packet and a message naming the reason,
/// and closes.
async fn refuse(gw: &AppState, carrier: &mut Carrier, entry: AuditEntry, refused: Refused) {
    let denial = gw.admission.refuse(entry, refused.denial).await;
    if let Some(answer) = refused.answer {
        let _ = carrier.send(answer).await;
        let _ = carrier.send(packet::service_message(&denial.message)).await;
    }
    let _ = carrier.outgoing.close().await;
}

/// Relays until the end; returns why it ended. Each direction is a pump of its own, so a
/// target that stops reading while it still sends (or a client doing the same) never stalls
/// the other direction; the packets for the client go through one queue to its writer.
async fn relay(
    carrier: Carrier,
    mut conn: Connection,
    target: TcpStream,
    session: &LiveSession,
    keepalive: Duration,
) -> EndReason {
    let Carrier { mut incoming, outgoing } = carrier;
    let (from_target, to_target) = target.into_split();
    let (to_client, queue) = mpsc::channel::<Bytes>(TO_CLIENT_QUEUE);
    let pumps = async move {
        let up = client_to_target(&mut incoming, &mut conn, to_target, session, to_client.clone());
        let down = target_to_client(from_target, session, to_client.clone());
        let mut stop = session.stop.clone();
        let stopped = async {
            let _ = stop.changed().await;
            let end = session.stop_reason();
            let code = match end {
                EndReason::MaxDuration { .. } => status::SESSION_TIMEOUT,
                _ => status::CONNECTION_ABORTED,
            };
            let message = packet::service_message(&format!("Rampart ended this session: {end}"));
            let _ = to_client.send(Bytes::from(message)).await;
            let _ = to_client.send(Bytes::from(packet::close_channel(code))).await;
            end
        };
        let keeping_alive = async {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
            loop {
                ticker.tick().await;
                if to_client.send(Bytes::from(packet::keepalive())).await.is_err() {
                    return EndReason::ClientClosed { detail: "the RDP client's connection ended".into() };
                }
            }
        };
        tokio::select! {
            end = up => end,
            end = down => end,
            end = stopped => end,
            end = keeping_alive => end,
        }
    };
    // The writer drains the queue until every sender is gone (the pumps ended), then closes.
    let writer = async move {
        let (mut outgoing, mut queue) = (outgoing, queue);
        while let Some(packet) = queue.recv().await {
            if outgoing.send(packet).await.is_err() {
                return;
            }
        }
        let _ = outgoing.close().await;
    };
    let (end, ()) = tokio::join!(pumps, writer);
    end
}

/// The client's packets to the target, until the client closes.
async fn client_to_target(
    incoming: &mut BoxStream<'static, Result<Bytes, String>>,
    conn: &mut Connection,
    mut to_target: tokio::net::tcp::OwnedWriteHalf,
    session: &LiveSession,
    to_client: mpsc::Sender<Bytes>,
) -> EndReason {
    loop {
        let bytes = match incoming.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(detail)) => return EndReason::Failed { detail },
            None => return EndReason::ClientClosed { detail: "the RDP client closed the connection".into() },
        };
        conn.receive(&bytes);
        loop {
            match conn.next_event() {
                Ok(None) => break,
                Ok(Some(Event::Data(data))) => {
                    session.data(Direction::ToTarget, &data);
                    if let Err(e) = to_target.write_all(&data).await {
                        let _ =
                            to_client.send(Bytes::from(packet::close_channel(status::CONNECT_FAILED))).await;
                        return EndReason::TargetClosed { detail: e.to_string() };
                    }
                }
                Ok(Some(Event::Close { .. })) => {
                    let _ = to_client.send(Bytes::from(packet::close_channel_response(status::OK))).await;
                    return EndReason::ClientClosed { detail: "the RDP client closed the channel".into() };
                }
                Ok(Some(_)) => {}
                Err(e) => return EndReason::Failed { detail: e.to_string() },
            }
        }
    }
}

/// The target's bytes to the client in data packets, until the target closes.
async fn target_to_client(
    mut from_target: tokio::net::tcp::OwnedReadHalf,
    session: &LiveSession,
    to_client: mpsc::Sender<Bytes>,
) -> EndReason {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match from_target.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = to_client.send(Bytes::from(packet::close_channel(status::CONNECT_FAILED))).await;
                return EndReason::TargetClosed { detail: e.to_string() };
            }
        };
        if n == 0 {
            let _ = to_client.send(Bytes::from(packet::close_channel(status::OK))).await;
            return EndReason::TargetClosed { detail: "the computer closed the connection".into() };
        }
        session.data(Direction::FromTarget, &buf[..n]);
        let mut out = Vec::with_capacity(n + 10);
        packet::data_into(&mut out, &buf[..n]);
        if to_client.send(Bytes::from(out)).await.is_err() {
            return EndReason::ClientClosed { detail: "the RDP client's connection ended".into() };
        }
    }
}
