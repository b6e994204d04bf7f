//! The tunnel client. One grant opens any number of connections until it expires, and it is
//! renewed shortly before then, so a new local connection costs one WebSocket handshake and
//! no token round trip.

use std::sync::Arc;
use std::time::Duration;

use rampart_proto::ErrorBody;
use rampart_proto::tunnel::{CONNECT_PATH, SUBPROTOCOL, TunnelGrant, TunnelRequest};
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
        Ok(Connector { host, port: uri.port_u16().unwrap_or(443), tls })
    }

    /// Opens one tunnel WebSocket with `token`. A refusal comes back as
    /// [`TunnelError::Refused`] with the gateway's reason.
    pub async fn open(&self, token: &str) -> Result<TunnelStream, TunnelError> {
        let addr = format!("{}:{}", self.host, self.port);
        let connect_err =
            |e: std::io::Error| TunnelError::Connect { addr: addr.clone(), error: e.to_string() };
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(connect_err)?;
        tcp.set_nodelay(true).ok();
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| TunnelError::Connect { addr: addr.clone(), error: e.to_string() })?;
        let tls = self.tls.connect(name, tcp).await.map_err(connect_err)?;
        let authority =
            if self.host.contains(':') { format!("[{}]:{}", self.host, self.port) } else { addr.clone() };
        let mut request = format!("wss://{authority}{CONNECT_PATH}")
            .into_client_request()
            .map_err(|e| TunnelError::WebSocket(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| TunnelError::WebSocket("the token is not a valid header value".into()))?,
        );
        headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        headers.insert("user-agent", HeaderValue::from_static(crate::api::USER_AGENT));
        match client_async_with_config(request, tls, Some(websocket_config())).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().unwrap_or_default();
                Err(match serde_json::from_slice::<ErrorBody>(body) {
                    Ok(b) => TunnelError::Refused { status, code: b.error.code, message: b.error.message },
                    Err(_) => TunnelError::Refused {
                        status,
                        code: format!("Http{status}"),
                        message: format!("the gateway answered HTTP {status}"),
                    },
                })
            }
            Err(e) => Err(TunnelError::WebSocket(e.to_string())),
        }
    }
}

/// An open tunnel: a grant for one target, and the means to relay connections to it.
pub struct TunnelClient {
    api: ApiClient,
    request: TunnelRequest,
    grant: tokio::sync::Mutex<TunnelGrant>,
    connector: Connector,
    keepalive: Duration,
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
        let grant = api.grant_tunnel(&request).await?;
        let connector = Connector::new(api.server(), api.trust())?;
        Ok(Arc::new(TunnelClient {
            api,
            request,
            grant: tokio::sync::Mutex::new(grant),
            connector,
            keepalive,
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
        let ws = self.connector.open(&token).await?;
        Ok(relay(ws, local, RelayOptions { keepalive: Some(self.keepalive), ..Default::default() }).await)
    }

    /// Accepts local connections and relays each one on its own task. `on_error` hears of
    /// connections the gateway refused or could not complete (the local socket is closed).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        on_error: impl Fn(TunnelError) + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        let on_error = Arc::new(on_error);
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(a) => a,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
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
                        RelayEnd::TunnelError(reason) => on_error(TunnelError::WebSocket(reason)),
                        _ => {}
                    },
                }
            });
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || e.raw_os_error() == Some(24) // EMFILE: wait for descriptors to free up
}
