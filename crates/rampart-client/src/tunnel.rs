//! The tunnel client. One grant opens any number of connections until it expires, and it is
//! renewed shortly before then, so a new local connection costs no token round trip. With
//! protocol v3 (the default) or v2 it costs no handshake either: each connection is a new
//! stream of the tunnel's one connection (v3: Rampart's own framing; v2: HTTP/2); v1 opens a
//! TLS connection and WebSocket for each.

use std::sync::Arc;
use std::time::Duration;

use rampart_proto::ErrorBody;
use std::sync::atomic::Ordering;

use rampart_proto::tunnel::{CONNECT_PATH, MUX_PATH, STREAM_PATH, SUBPROTOCOL, TunnelGrant, TunnelRequest};
use rampart_tunnel::Counters;
use rampart_tunnel::mux::MuxClient;
use rampart_tunnel::stream::{ChunkBody, pump_body, run_stream};
use rampart_tunnel::tokio_tungstenite::tungstenite::client::IntoClientRequest;
use rampart_tunnel::tokio_tungstenite::tungstenite::http::HeaderValue;
use rampart_tunnel::tokio_tungstenite::{WebSocketStream, client_async_with_config, tungstenite};
pub use rampart_tunnel::{LocalEnd, RelayEnd, Stdio};
use rampart_tunnel::{RelayOptions, RelayReport, relay, websocket_config};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::api::{ApiClient, ClientError, now};
use crate::trust::{Trust, TrustError, client_config};

/// How long opening the tunnel's connection (TCP, TLS, upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A v3 connection's socket is read through a buffer this large: rustls asks for at most one
/// record (16 KiB) per read, which made 68,000 `recv`s per GiB downloaded (one connection per
/// tunnel, so one buffer per tunnel).
const READ_AHEAD: usize = 256 * 1024;
/// Renew the grant when it has less than this left.
const RENEW_BEFORE_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The gateway refused or could not complete the connection; `message` says why.
    #[error("{message} ({code})")]
    Refused { status: u16, code: String, message: String },
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("TLS: {0}")]
    Trust(#[from] TrustError),
    #[error("cannot reach the gateway at {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The tunnel's connection or stream broke.
    #[error("the tunnel broke: {0}")]
    Stream(String),
    /// The gateway ended a connection on purpose (disconnect, timeout, shutdown).
    #[error("the gateway ended the connection: {0}")]
    Ended(String),
}

pub type TunnelStream = WebSocketStream<TlsStream<TcpStream>>;

/// Where and how to open tunnel WebSockets on one gateway.
#[derive(Clone)]
pub struct Connector {
    host: String,
    port: u16,
    tls: TlsConnector,
    tls_h2: TlsConnector,
}

impl Connector {
    pub fn new(server: &str, trust: &Trust) -> Result<Self, TunnelError> {
        let base = crate::api::normalize_server(server)?;
        let uri: http::Uri = base.parse().map_err(|_| ClientError::BadUrl(server.to_string()))?;
        let host = uri
            .host()
            .ok_or_else(|| ClientError::BadUrl(server.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        // Tunnels upgrade an HTTP/1.1 connection, so offer only that.
        let tls = TlsConnector::from(Arc::new(client_config(trust, &[b"http/1.1"])?));
        // v2 offers HTTP/2 and HTTP/1.1: a gateway (or proxy) without HTTP/2 is found here,
        // and the tunnel falls back to v1.
        let tls_h2 = TlsConnector::from(Arc::new(client_config(trust, &[b"h2", b"http/1.1"])?));
        Ok(Connector { host, port: uri.port_u16().unwrap_or(443), tls, tls_h2 })
    }

    /// `host:port`, with brackets around an IPv6 address.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn connect_tls(&self, tls: &TlsConnector) -> Result<TlsStream<TcpStream>, TunnelError> {
        self.connect_tls_over(tls, |tcp| tcp).await
    }

    /// TLS over the gateway's socket as `wrap` makes it (a read buffer for v3's connection).
    async fn connect_tls_over<S>(
        &self,
        tls: &TlsConnector,
        wrap: impl FnOnce(TcpStream) -> S,
    ) -> Result<TlsStream<S>, TunnelError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let addr = self.authority();
        let connect_err =
            |e: std::io::Error| TunnelError::Connect { addr: addr.clone(), error: e.to_string() };
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(connect_err)?;
        tcp.set_nodelay(true).ok();
        crate::spin::watch(&tcp);
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| TunnelError::Connect { addr: addr.clone(), error: e.to_string() })?;
        tls.connect(name, wrap(tcp)).await.map_err(connect_err)
    }

    /// Opens a v2 tunnel connection: TLS with HTTP/2, whose streams carry TCP connections.
    /// `None` if the server did not choose HTTP/2. Pings every `keepalive` find a dead gateway.
    async fn open_streams(&self, keepalive: Duration) -> Result<Option<StreamSender>, TunnelError> {
        use rampart_tunnel::stream as h2;
        let tls = self.connect_tls(&self.tls_h2).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok(None);
        }
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .initial_stream_window_size(h2::STREAM_WINDOW)
                .initial_connection_window_size(h2::CONNECTION_WINDOW)
                .max_frame_size(h2::MAX_FRAME)
                .keep_alive_interval(keepalive)
                .keep_alive_timeout(keepalive)
                .keep_alive_while_idle(true)
                .handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| TunnelError::Stream(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "the tunnel's HTTP/2 connection ended");
            }
        });
        Ok(Some(sender))
    }

    /// Opens a v3 tunnel connection: TLS, then an HTTP/1.1 upgrade to Rampart's stream
    /// framing, authorized by `token`. A refusal comes back as [`TunnelError::Refused`];
    /// `None` when the upgrade did not get through (a proxy's answer, a proxy that dropped the
    /// `Upgrade` header, or a gateway without v3).
    async fn open_mux(&self, token: &str, keepalive: Duration) -> Result<Option<MuxClient>, TunnelError> {
        use rampart_proto::mux::{NOT_AN_UPGRADE, UPGRADE};
        let tls = self
            .connect_tls_over(&self.tls, |tcp| tokio::io::BufReader::with_capacity(READ_AHEAD, tcp))
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| TunnelError::Stream(format!("HTTP/1.1 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "the tunnel's upgrade connection ended");
            }
        });
        let request = http::Request::get(MUX_PATH)
            .header(http::header::HOST, self.authority())
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, UPGRADE)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::USER_AGENT, crate::api::USER_AGENT)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| TunnelError::Stream(e.to_string()))?;
        let broken = |e: hyper::Error| TunnelError::Stream(rampart_tunnel::stream::error_chain(&e));
        let response = sender.send_request(request).await.map_err(broken)?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status().as_u16();
            let body = error_body(response.into_body()).await;
            // Not the gateway's answer (a proxy's page), or the gateway's "not an upgrade": a
            // proxy that passes WebSocket upgrades only (as many load balancers do) drops the
            // `Upgrade` header and forwards a plain request. Either way v3 cannot get through.
            match serde_json::from_slice::<ErrorBody>(&body) {
                Err(_) => return Ok(None),
                Ok(e) if e.error.code == NOT_AN_UPGRADE => return Ok(None),
                Ok(_) => return Err(refusal(status, &body)),
            }
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(broken)?;
        // The TLS stream itself when hyper hands it back, so no layer sits in between.
        Ok(Some(
            match upgraded.downcast::<hyper_util::rt::TokioIo<TlsStream<tokio::io::BufReader<TcpStream>>>>() {
                Ok(parts) => MuxClient::start(parts.io.into_inner(), parts.read_buf, keepalive),
                Err(upgraded) => {
                    MuxClient::start(hyper_util::rt::TokioIo::new(upgraded), bytes::Bytes::new(), keepalive)
                }
            },
        ))
    }

    /// Opens one tunnel WebSocket with `token`. A refusal comes back as
    /// [`TunnelError::Refused`] with the gateway's reason.
    pub async fn open(&self, token: &str) -> Result<TunnelStream, TunnelError> {
        self.open_websocket(CONNECT_PATH, token, Some(SUBPROTOCOL)).await
    }

    /// Opens a WebSocket to `path` (with its query) on the gateway, authorized by `token`.
    pub async fn open_websocket(
        &self,
        path: &str,
        token: &str,
        subprotocol: Option<&'static str>,
    ) -> Result<TunnelStream, TunnelError> {
        let tls = self.connect_tls(&self.tls).await?;
        let authority = self.authority();
        let mut request = format!("wss://{authority}{path}")
            .into_client_request()
            .map_err(|e| TunnelError::WebSocket(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| TunnelError::WebSocket("the token is not a valid header value".into()))?,
        );
        if let Some(subprotocol) = subprotocol {
            headers.insert("sec-websocket-protocol", HeaderValue::from_static(subprotocol));
        }
        headers.insert("user-agent", HeaderValue::from_static(crate::api::USER_AGENT));
        match client_async_with_config(request, tls, Some(websocket_config())).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(resp)) => {
                Err(refusal(resp.status().as_u16(), resp.body().as_deref().unwrap_or_default()))
            }
            Err(e) => Err(TunnelError::WebSocket(e.to_string())),
        }
    }
}

/// How a tunnel carries its connections to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelProtocol {
    /// v2: one TLS connection per tunnel, each TCP connection an HTTP/2 stream of it; falls
    /// back to v1 when the gateway (or a proxy in front of it) does not offer HTTP/2.
    Streams,
    /// v1: one TLS connection and WebSocket per TCP connection.
    WebSocket,
    /// v3, the default: one TLS connection per tunnel in Rampart's own stream framing. It
    /// carries local TCP connections; standard input and output (`ssh-proxy`) get an HTTP/2
    /// connection of their own (v2). Falls back to v2 when the gateway (or a proxy in front of
    /// it) does not take the upgrade.
    Mux,
}

impl TunnelProtocol {
    /// `RAMPART_TUNNEL_PROTOCOL=v1` (or `websocket`) forces v1, `v2` (or `http2`) v2; anything
    /// else, or nothing, v3.
    pub fn from_env() -> Self {
        match std::env::var("RAMPART_TUNNEL_PROTOCOL").as_deref() {
            Ok("v1" | "websocket") => TunnelProtocol::WebSocket,
            Ok("v2" | "http2") => TunnelProtocol::Streams,
            _ => TunnelProtocol::Mux,
        }
    }
}

type StreamBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>;
type StreamSender = hyper::client::conn::http2::SendRequest<StreamBody>;

/// What carries the next connection.
enum Carrier {
    /// v2, not connected yet (or the last connection ended).
    Streams(Option<StreamSender>),
    /// v1: asked for, or the gateway did not offer HTTP/2.
    WebSocket,
    /// v3, not connected yet (or the last connection ended).
    Mux(Option<MuxClient>),
}

/// An open tunnel: a grant for one target, and the means to relay connections to it.
pub struct TunnelClient {
    api: ApiClient,
    request: TunnelRequest,
    grant: tokio::sync::Mutex<TunnelGrant>,
    connector: Connector,
    keepalive: Duration,
    carrier: tokio::sync::Mutex<Carrier>,
}

impl TunnelClient {
    /// Asks the gateway for a grant; a refusal is returned here, before anything listens.
    /// Pings go out every 30 s; a gateway silent for three intervals is taken for dead.
    pub async fn open(api: ApiClient, request: TunnelRequest) -> Result<Arc<Self>, TunnelError> {
        Self::open_with_keepalive(api, request, Duration::from_secs(30)).await
    }

    pub async fn open_with_keepalive(
        api: ApiClient,
        request: TunnelRequest,
        keepalive: Duration,
    ) -> Result<Arc<Self>, TunnelError> {
        Self::open_with(api, request, keepalive, TunnelProtocol::from_env()).await
    }

    pub async fn open_with(
        api: ApiClient,
        request: TunnelRequest,
        keepalive: Duration,
        protocol: TunnelProtocol,
    ) -> Result<Arc<Self>, TunnelError> {
        let grant = api.grant_tunnel(&request).await?;
        let connector = Connector::new(api.server(), api.trust())?;
        let carrier = match protocol {
            TunnelProtocol::Streams => Carrier::Streams(None),
            TunnelProtocol::WebSocket => Carrier::WebSocket,
            TunnelProtocol::Mux => Carrier::Mux(None),
        };
        Ok(Arc::new(TunnelClient {
            api,
            request,
            grant: tokio::sync::Mutex::new(grant),
            connector,
            keepalive,
            carrier: tokio::sync::Mutex::new(carrier),
        }))
    }

    pub async fn grant(&self) -> TunnelGrant {
        self.grant.lock().await.clone()
    }

    /// The tunnel token, renewed first if it is about to expire.
    async fn token(&self) -> Result<String, TunnelError> {
        let mut grant = self.grant.lock().await;
        if grant.expires_at - RENEW_BEFORE_SECS <= now() {
            *grant = self.api.grant_tunnel(&self.request).await?;
        }
        Ok(grant.tunnel_token.clone())
    }

    /// Relays one local connection (a socket, or standard input and output) through the
    /// tunnel until it ends.
    pub async fn relay<L: LocalEnd>(&self, local: L) -> Result<RelayReport, TunnelError> {
        let token = self.token().await?;
        match local.into_tcp() {
            Ok(socket) => match self.mux_client(&token).await? {
                Some(mux) => self.relay_mux(&mux, &token, socket).await,
                None => self.relay_v2_or_v1(&token, socket).await,
            },
            Err(local) => self.relay_v2_or_v1(&token, local).await,
        }
    }

    /// Relays over an HTTP/2 stream (v2) or, without HTTP/2, a WebSocket of its own (v1).
    async fn relay_v2_or_v1<L: LocalEnd>(&self, token: &str, local: L) -> Result<RelayReport, TunnelError> {
        match self.stream_sender().await? {
            Some(sender) => self.relay_stream(sender, token, local).await,
            None => {
                let ws = Box::pin(self.connector.open(token)).await?;
                Ok(relay(ws, local, RelayOptions { keepalive: Some(self.keepalive), ..Default::default() })
                    .await)
            }
        }
    }

    /// The v3 connection of this tunnel, opened on first use and again after it ended; `None`
    /// for the other protocols.
    async fn mux_client(&self, token: &str) -> Result<Option<MuxClient>, TunnelError> {
        let mut carrier = self.carrier.lock().await;
        let Carrier::Mux(current) = &mut *carrier else {
            return Ok(None);
        };
        if let Some(mux) = current.as_ref().filter(|m| !m.is_closed()) {
            return Ok(Some(mux.clone()));
        }
        // The lock is held meanwhile (every new local connection waits for this one), so a
        // gateway that accepts and then says nothing must not hold it for ever.
        let opening =
            tokio::time::timeout(CONNECT_TIMEOUT, Box::pin(self.connector.open_mux(token, self.keepalive)));
        let opened = opening.await.map_err(|_| TunnelError::Connect {
            addr: self.connector.authority(),
            error: format!("no answer to the tunnel upgrade within {} s", CONNECT_TIMEOUT.as_secs()),
        })?;
        match opened? {
            Some(mux) => {
                *current = Some(mux.clone());
                Ok(Some(mux))
            }
            None => {
                tracing::info!("the gateway did not take the v3 upgrade; relaying over HTTP/2 streams (v2)");
                *carrier = Carrier::Streams(None);
                Ok(None)
            }
        }
    }

    /// Protocol v3: one stream of the tunnel's connection, admitted by the gateway, then the
    /// socket relayed over it until both directions end.
    async fn relay_mux(
        &self,
        mux: &MuxClient,
        token: &str,
        socket: TcpStream,
    ) -> Result<RelayReport, TunnelError> {
        let stream = mux.open(token).await.map_err(TunnelError::Stream)?;
        let report = stream.relay(socket, Arc::default(), None).await;
        match report.end {
            RelayEnd::Refused { status, body } => {
                let refused = refusal(status, &body);
                // A draining node takes no new streams: the next connection opens a new
                // tunnel connection, which a balancer sends to another node. Streams running
                // on this one go on.
                if matches!(&refused, TunnelError::Refused { code, .. } if code == "ShuttingDown") {
                    let mut carrier = self.carrier.lock().await;
                    if let Carrier::Mux(current) = &mut *carrier
                        && current.as_ref().is_some_and(|c| c.same_connection(mux))
                    {
                        tracing::info!(
                            "the gateway node is draining; the next connection opens a new tunnel connection"
                        );
                        *current = None;
                    }
                }
                Err(refused)
            }
            _ => Ok(report),
        }
    }

    /// The HTTP/2 connection of this tunnel, opened on first use and again after it ended;
    /// `None` when connections go over v1 WebSockets.
    async fn stream_sender(&self) -> Result<Option<StreamSender>, TunnelError> {
        let mut carrier = self.carrier.lock().await;
        let current = match &mut *carrier {
            Carrier::Streams(current) => current,
            Carrier::WebSocket => return Ok(None),
            // v3 carries sockets only; anything else (standard input and output, one per
            // `ssh-proxy` process) gets an HTTP/2 connection of its own.
            Carrier::Mux(_) => return Box::pin(self.connector.open_streams(self.keepalive)).await,
        };
        if let Some(sender) = current.as_ref().filter(|s| !s.is_closed()) {
            return Ok(Some(sender.clone()));
        }
        match Box::pin(self.connector.open_streams(self.keepalive)).await? {
            Some(sender) => {
                *current = Some(sender.clone());
                Ok(Some(sender))
            }
            None => {
                tracing::info!(
                    "the gateway did not offer HTTP/2; relaying each connection over its own WebSocket"
                );
                *carrier = Carrier::WebSocket;
                Ok(None)
            }
        }
    }

    /// Protocol v2: the local socket's bytes are the request body (read by the HTTP/2
    /// connection itself), the response body goes to the socket; done when both have ended.
    async fn relay_stream<L: LocalEnd>(
        &self,
        mut sender: StreamSender,
        token: &str,
        local: L,
    ) -> Result<RelayReport, TunnelError> {
        use http_body_util::BodyExt;
        let (read, mut write) = local.split();
        let counters = Arc::new(Counters::default());
        let (body, upload_end) = ChunkBody::new(read, counters.clone());
        let request = http::Request::post(format!("https://{}{STREAM_PATH}", self.connector.authority()))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::USER_AGENT, crate::api::USER_AGENT)
            .body(body.boxed_unsync())
            .map_err(|e| TunnelError::Stream(e.to_string()))?;
        let broken = |e: hyper::Error| TunnelError::Stream(rampart_tunnel::stream::error_chain(&e));
        sender.ready().await.map_err(broken)?;
        let response = sender.send_request(request).await.map_err(broken)?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(refusal(status, &error_body(response.into_body()).await));
        }
        let download = pump_body(response.into_body(), &mut write, &counters);
        let end = run_stream(download, upload_end, None, &self.lost()).await;
        Ok(RelayReport {
            socket_to_tunnel: counters.socket_to_tunnel.load(Ordering::Relaxed),
            tunnel_to_socket: counters.tunnel_to_socket.load(Ordering::Relaxed),
            end,
        })
    }

    /// Why a stream ends when the tunnel's connection goes: hyper closes it when the gateway
    /// answers no keep-alive ping, and the gateway may go away or reset the stream.
    fn lost(&self) -> String {
        format!(
            "the connection to the gateway was lost (no answer to keep-alive pings within {} s, or closed by the gateway)",
            self.keepalive.as_secs() * 2
        )
    }

    /// Accepts local connections and relays each one on its own task. `on_error` hears of
    /// connections the gateway refused or could not complete (the local socket is closed).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        on_error: impl Fn(TunnelError) + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        let on_error = Arc::new(on_error);
        crate::spin::watch(&listener);
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(a) => a,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            crate::spin::watch(&socket);
            let tunnel = self.clone();
            let on_error = on_error.clone();
            tokio::spawn(async move {
                match tunnel.relay(socket).await {
                    Err(e) => on_error(e),
                    Ok(report) => match report.end {
                        RelayEnd::PeerClosed { code: Some(code), reason }
                            if code == rampart_proto::tunnel::close_code::ENDED_BY_GATEWAY =>
                        {
                            on_error(TunnelError::Ended(reason))
                        }
                        RelayEnd::TunnelError(reason) => on_error(TunnelError::Stream(reason)),
                        _ => {}
                    },
                }
            });
        }
    }
}

/// The body of an error answer: small JSON; a larger one is cut, not read to its end.
async fn error_body(body: hyper::body::Incoming) -> bytes::Bytes {
    use http_body_util::BodyExt;
    http_body_util::Limited::new(body, 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default()
}

/// A refusal from its HTTP status and JSON error body.
fn refusal(status: u16, body: &[u8]) -> TunnelError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => TunnelError::Refused { status, code: b.error.code, message: b.error.message },
        Err(_) => TunnelError::Refused {
            status,
            code: format!("Http{status}"),
            message: format!("the gateway answered HTTP {status}"),
        },
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || e.raw_os_error() == Some(24) // EMFILE: wait for descriptors to free up
}
