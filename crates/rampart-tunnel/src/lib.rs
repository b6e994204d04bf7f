//! The tunnel data path, the same code at both ends: [`mux`] (protocol v3, the default:
//! every TCP connection a stream of one tunnel connection in Rampart's own framing),
//! [`stream`] (v2: an HTTP/2 stream each) and, here, v1: one TCP connection over one tunnel
//! WebSocket.
//!
//! Both ends of a v1 tunnel run the same [`relay`]: the gateway between the WebSocket and the
//! target's socket, the client between the WebSocket and the local application's socket.
//! It is two pumps, one per direction (after wstunnel's `propagate_*`), linked by the end
//! conditions below.
//!
//! - TCP half-close is carried: EOF on the socket becomes a [`Control::Eof`] message, and a
//!   received `Eof` shuts down the socket's write side; the other direction keeps flowing.
//! - The relay ends normally when both directions have seen EOF; then it sends a close frame.
//! - An idle connection holds no data buffer: a buffer is taken only once the socket is
//!   readable (memory per idle connection matters at 10,000 connections).
//! - With `keepalive`, a ping goes out at that interval, so a dead peer is found when the
//!   ping cannot be written, and middleboxes do not drop an idle tunnel.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rampart_proto::tunnel::{Control, DATA_CHUNK, MAX_MESSAGE_SIZE, close_code};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use tokio_tungstenite;

pub mod mux;
pub mod stream;
pub mod tls;

/// WebSocket settings for tunnel connections, the same at both ends.
///
/// The read buffer is allocated for every connection and zero-filled before each read, so
/// it is small: 8 KiB instead of tungstenite's 128 KiB cut gateway memory per idle
/// connection from 77 to 20 KiB and CPU per GiB by about 15% (BENCHMARKS.md). Large frames
/// still arrive whole: the codec reserves a frame's length once its header is read.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_MESSAGE_SIZE)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// Send a WebSocket ping at this interval; a peer silent for three intervals is dead.
    pub keepalive: Option<Duration>,
    /// Live byte counts and last activity, for a session registry.
    pub counters: Option<Arc<Counters>>,
    /// Ends the relay when it changes to `Some(reason)`; the peer gets the reason.
    pub stop: Option<watch::Receiver<Option<String>>>,
}

/// Live figures of one relayed connection, updated as bytes flow.
#[derive(Debug, Default)]
pub struct Counters {
    pub socket_to_tunnel: AtomicU64,
    pub tunnel_to_socket: AtomicU64,
    /// Unix milliseconds of the last data in either direction.
    pub last_activity_ms: AtomicU64,
}

impl Counters {
    /// Counts `n` bytes on one direction and marks the session active.
    pub fn add(&self, which: &AtomicU64, n: u64) {
        which.fetch_add(n, Ordering::Relaxed);
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions finished with EOF.
    Completed,
    /// The WebSocket peer closed (with its close code and reason, if it sent one).
    PeerClosed { code: Option<u16>, reason: String },
    /// The TCP socket failed (reset, broken pipe…).
    SocketError(String),
    /// The WebSocket failed or broke the protocol.
    TunnelError(String),
    /// Ended on purpose (disconnect, timeout, shutdown) with this reason.
    Stopped(String),
    /// v3: the gateway refused the stream after its bytes had started (the HTTP status and
    /// JSON error body v1 and v2 answer before any byte).
    Refused { status: u16, body: Bytes },
}

impl RelayEnd {
    pub fn is_clean(&self) -> bool {
        matches!(self, RelayEnd::Completed)
            || matches!(self, RelayEnd::PeerClosed { code: Some(c), .. } if *c == close_code::NORMAL)
    }
}

/// What a relay moved and how it ended.
#[derive(Debug, Clone)]
pub struct RelayReport {
    /// Bytes read from the TCP socket and sent into the tunnel.
    pub socket_to_tunnel: u64,
    /// Bytes received from the tunnel and written to the TCP socket.
    pub tunnel_to_socket: u64,
    pub end: RelayEnd,
}

/// The read side of a relay's local end: hands out chunks of bytes, `None` at EOF.
/// Polled, so a v2 stream's request body can read the socket from the HTTP/2 connection's
/// own task with no hand-off; [`ChunkRead::read_chunk`] is the same as a future.
pub trait ChunkRead: Send + Unpin {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>>;

    fn read_chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send {
        std::future::poll_fn(move |cx| self.poll_chunk(cx))
    }
}

/// A TCP socket takes a buffer only once data is there, so an idle connection holds none.
impl ChunkRead for OwnedReadHalf {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            std::task::ready!(self.as_ref().poll_read_ready(cx))?;
            let mut buf = BytesMut::with_capacity(DATA_CHUNK);
            match self.try_read_buf(&mut buf) {
                Ok(0) => return Poll::Ready(Ok(None)),
                Ok(_) => return Poll::Ready(Ok(Some(buf.freeze()))),
                // The readiness was stale; try_read cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Any byte stream (standard input, a pipe) as a chunk reader.
pub struct StreamReader<R>(pub R);

impl<R: AsyncRead + Unpin + Send> ChunkRead for StreamReader<R> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut buf = BytesMut::with_capacity(DATA_CHUNK);
        match std::task::ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, &mut buf))? {
            0 => Poll::Ready(Ok(None)),
            _ => Poll::Ready(Ok(Some(buf.freeze()))),
        }
    }
}

/// The local end of a relay: the socket of a TCP client, or standard input and output.
pub trait LocalEnd {
    type Read: ChunkRead + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn split(self) -> (Self::Read, Self::Write);

    /// The local end as a TCP socket, if it is one (protocol v3 relays sockets only).
    fn into_tcp(self) -> Result<TcpStream, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl LocalEnd for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;
    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        // Each message is written and flushed at once; Nagle would only add latency.
        self.set_nodelay(true).ok();
        self.into_split()
    }

    fn into_tcp(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

/// Standard input and output, for `ProxyCommand` use.
pub struct Stdio;

impl LocalEnd for Stdio {
    type Read = StreamReader<tokio::io::Stdin>;
    type Write = tokio::io::Stdout;
    fn split(self) -> (Self::Read, Self::Write) {
        (StreamReader(tokio::io::stdin()), tokio::io::stdout())
    }
}

/// When the peer was last heard from, for dead-peer detection.
struct Liveness {
    last_heard_ms: AtomicU64,
    /// False once the peer half-closed: nobody reads its pongs any more.
    listening: AtomicBool,
}

enum TunnelEnd {
    /// The peer half-closed: it sends no more data.
    Eof,
    Closed(Option<CloseFrame>),
}

/// Relays `local` over `ws` until both directions end or either side fails.
pub async fn relay<S, L>(ws: WebSocketStream<S>, local: L, options: RelayOptions) -> RelayReport
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: LocalEnd,
{
    let (mut sink, mut stream) = ws.split();
    let (mut socket_read, mut socket_write) = local.split();
    let counters = options.counters.clone().unwrap_or_default();
    counters.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    let liveness = Liveness { last_heard_ms: AtomicU64::new(now_ms()), listening: AtomicBool::new(true) };
    let mut stop = options.stop.clone();

    let end = {
        let inbound = tunnel_to_socket_pump(&mut stream, &mut socket_write, &counters, &liveness);
        let outbound =
            socket_to_tunnel_pump(&mut socket_read, &mut sink, &counters, options.keepalive, &liveness);
        let stopped = stopped(stop.take());
        tokio::pin!(inbound, outbound, stopped);
        let (mut peer_eof, mut our_eof) = (false, false);
        loop {
            tokio::select! {
                reason = &mut stopped => break RelayEnd::Stopped(reason),
                r = &mut inbound, if !peer_eof => match r {
                    Ok(TunnelEnd::Eof) => {
                        peer_eof = true;
                        if our_eof { break RelayEnd::Completed; }
                    }
                    Ok(TunnelEnd::Closed(frame)) => break RelayEnd::PeerClosed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    },
                    Err(e) => break e,
                },
                r = &mut outbound, if !our_eof => match r {
                    Ok(()) => {
                        our_eof = true;
                        if peer_eof { break RelayEnd::Completed; }
                    }
                    Err(e) => break e,
                },
            }
        }
    };

    let close = match &end {
        RelayEnd::Completed => Some((close_code::NORMAL, String::new())),
        RelayEnd::SocketError(e) => Some((close_code::TARGET_ERROR, e.clone())),
        RelayEnd::TunnelError(e) => Some((close_code::PROTOCOL_ERROR, e.clone())),
        RelayEnd::Stopped(reason) => Some((close_code::ENDED_BY_GATEWAY, reason.clone())),
        // tungstenite answers a received close frame by itself; v1 has no refusals mid-way.
        RelayEnd::PeerClosed { .. } | RelayEnd::Refused { .. } => None,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame { code: CloseCode::from(code), reason: truncate_reason(&reason).into() };
        if sink.send(Message::Close(Some(frame))).await.is_ok() {
            // Give the peer a moment to answer the close, so it sees a clean ending.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
    }
    RelayReport {
        socket_to_tunnel: counters.socket_to_tunnel.load(Ordering::Relaxed),
        tunnel_to_socket: counters.tunnel_to_socket.load(Ordering::Relaxed),
        end,
    }
}

/// Resolves with the reason once `stop` turns to `Some(reason)`; never without a `stop`, or
/// once its sender is gone.
pub async fn stopped(stop: Option<watch::Receiver<Option<String>>>) -> String {
    let Some(mut rx) = stop else {
        return std::future::pending().await;
    };
    loop {
        if let Some(reason) = rx.borrow_and_update().clone() {
            return reason;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

async fn tunnel_to_socket_pump<S, W>(
    stream: &mut SplitStream<WebSocketStream<S>>,
    socket: &mut W,
    counters: &Counters,
    liveness: &Liveness,
) -> Result<TunnelEnd, RelayEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let socket_err = |e: io::Error| RelayEnd::SocketError(e.to_string());
    while let Some(msg) = stream.next().await {
        liveness.last_heard_ms.store(now_ms(), Ordering::Relaxed);
        match msg.map_err(|e| RelayEnd::TunnelError(e.to_string()))? {
            Message::Binary(data) => {
                socket.write_all(&data).await.map_err(socket_err)?;
                // A pipe (standard output) buffers; a TCP socket's flush is free.
                socket.flush().await.map_err(socket_err)?;
                counters.add(&counters.tunnel_to_socket, data.len() as u64);
            }
            Message::Text(text) => match Control::decode(text.as_str()) {
                Ok(Control::Eof) => {
                    socket.shutdown().await.map_err(socket_err)?;
                    liveness.listening.store(false, Ordering::Relaxed);
                    return Ok(TunnelEnd::Eof);
                }
                Err(e) => return Err(RelayEnd::TunnelError(e.to_string())),
            },
            Message::Close(frame) => return Ok(TunnelEnd::Closed(frame)),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    Ok(TunnelEnd::Closed(None))
}

async fn socket_to_tunnel_pump<S, R>(
    socket: &mut R,
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    counters: &Counters,
    keepalive: Option<Duration>,
    liveness: &Liveness,
) -> Result<(), RelayEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: ChunkRead,
{
    let tunnel_err = |e: tokio_tungstenite::tungstenite::Error| RelayEnd::TunnelError(e.to_string());
    let period = keepalive.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let chunk = tokio::select! {
            chunk = socket.read_chunk() => chunk.map_err(|e| RelayEnd::SocketError(e.to_string()))?,
            _ = ping.tick(), if keepalive.is_some() => {
                let silent_ms = now_ms().saturating_sub(liveness.last_heard_ms.load(Ordering::Relaxed));
                let limit = 3 * period;
                if liveness.listening.load(Ordering::Relaxed) && silent_ms > u64::try_from(limit.as_millis()).unwrap_or(u64::MAX) {
                    return Err(RelayEnd::TunnelError(format!(
                        "the peer answered no keep-alive ping for {} s",
                        silent_ms / 1000
                    )));
                }
                sink.send(Message::Ping(Default::default())).await.map_err(tunnel_err)?;
                continue;
            }
        };
        match chunk {
            None => {
                sink.send(Message::text(Control::Eof.encode())).await.map_err(tunnel_err)?;
                return Ok(());
            }
            Some(data) => {
                let n = data.len() as u64;
                sink.send(Message::Binary(data)).await.map_err(tunnel_err)?;
                counters.add(&counters.socket_to_tunnel, n);
            }
        }
    }
}
