//! Protocol v2's data path: one relayed TCP connection as one HTTP/2 stream.
//!
//! Each direction is a body: the sender's socket becomes a [`ChunkBody`] that the HTTP/2
//! connection polls itself (no task or channel in between, and no buffer while the socket is
//! idle), and the receiver drains the peer's body into its socket with [`pump_body`]. HTTP/2
//! carries what v1's messages did: flow control is per stream, pings are per connection. Every
//! body ends with trailers naming how its side ended ([`StreamEnd`]): the end of the body is
//! TCP half-close only when they say `completed`; a body cut off without them (hyper ends the
//! bodies of a connection it closes as if they had finished) is a lost connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use rampart_proto::tunnel::{END_TRAILER, REASON_TRAILER, StreamEnd};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::{ChunkRead, Counters, RelayEnd, stopped};

/// HTTP/2 settings of tunnel connections, the same at both ends.
/// Streams per connection: one per relayed TCP connection (the 10,000-connection benchmark
/// runs through one tunnel).
pub const MAX_STREAMS: u32 = 65_536;
/// Per-stream window: several chunks in flight keep one bulk stream at full speed; it bounds
/// what one stream can make its receiver buffer when the receiving socket is slow.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Per-connection window: all streams of a tunnel together.
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest frame: one read chunk, so a chunk is one frame.
pub const MAX_FRAME: u32 = rampart_proto::tunnel::DATA_CHUNK as u32;

/// How a [`ChunkBody`] ended, told to whoever waits for the relay to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// The socket reached EOF and the body ended.
    Eof,
    /// Reading the socket failed.
    SocketError(String),
    /// Ended on purpose with this reason (the gateway's stop signal).
    Stopped(String),
    /// Dropped before its end: the stream was reset or the connection lost.
    Dropped,
}

type StopFuture = Pin<Box<dyn Future<Output = String> + Send>>;

/// A socket's read side as an HTTP body: one data frame per chunk read, then trailers.
pub struct ChunkBody<R> {
    reader: Option<R>,
    counters: Arc<Counters>,
    stop: Option<StopFuture>,
    outcome: Option<BodyEnd>,
    on_end: Option<oneshot::Sender<BodyEnd>>,
}

impl<R: ChunkRead> ChunkBody<R> {
    /// The body and a receiver told how it ended (or that it was dropped unfinished).
    pub fn new(reader: R, counters: Arc<Counters>) -> (Self, oneshot::Receiver<BodyEnd>) {
        let (tx, rx) = oneshot::channel();
        let body = ChunkBody { reader: Some(reader), counters, stop: None, outcome: None, on_end: Some(tx) };
        (body, rx)
    }

    /// Ends the body, with its reason in the trailers, when `stop` turns to `Some(reason)`.
    pub fn with_stop(mut self, stop: watch::Receiver<Option<String>>) -> Self {
        self.stop = Some(Box::pin(stopped(Some(stop))));
        self
    }

    /// Ends the body with trailers that say how.
    fn finish(&mut self, end: BodyEnd) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.reader = None;
        self.stop = None;
        let (kind, reason) = match &end {
            BodyEnd::Eof | BodyEnd::Dropped => (StreamEnd::Completed, None),
            BodyEnd::SocketError(e) => (StreamEnd::SocketError, Some(e.as_str())),
            BodyEnd::Stopped(r) => (StreamEnd::EndedByGateway, Some(r.as_str())),
        };
        let mut trailers = HeaderMap::new();
        trailers.insert(END_TRAILER, HeaderValue::from_static(kind.encode()));
        if let Some(v) = reason.and_then(|r| HeaderValue::from_str(&header_safe(r)).ok()) {
            trailers.insert(REASON_TRAILER, v);
        }
        self.outcome = Some(end.clone());
        if let Some(tx) = self.on_end.take() {
            let _ = tx.send(end);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

/// Trailer values are visible ASCII; reasons are kept short.
fn header_safe(reason: &str) -> String {
    reason.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect()
}

impl<R: ChunkRead> Body for ChunkBody<R> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(stop) = this.stop.as_mut()
            && let Poll::Ready(reason) = stop.as_mut().poll(cx)
        {
            return this.finish(BodyEnd::Stopped(reason));
        }
        let Some(reader) = this.reader.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(reader.poll_chunk(cx)) {
            Ok(Some(chunk)) => {
                this.counters.add(&this.counters.socket_to_tunnel, chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Ok(None) => this.finish(BodyEnd::Eof),
            Err(e) => this.finish(BodyEnd::SocketError(e.to_string())),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none()
    }
}

impl<R> Drop for ChunkBody<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.on_end.take() {
            let _ = tx.send(self.outcome.clone().unwrap_or(BodyEnd::Dropped));
        }
    }
}

/// How the peer's body ended, as [`pump_body`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpEnd {
    /// The body ended with trailers saying how the peer's side ended; the socket's write
    /// side has been shut down if that was `Completed`.
    Ended(StreamEnd, String),
    /// The body ended without trailers: its connection closed under it (the peer answered
    /// no keep-alive ping, or shut the connection down).
    Lost,
    /// Writing to the socket failed.
    SocketError(String),
    /// The stream broke (reset by the peer, connection lost).
    TunnelError(String),
}

/// Writes the peer's body into `socket` until it ends, then half-closes the socket if the
/// peer's side ended normally.
pub async fn pump_body<B, W>(mut body: B, socket: &mut W, counters: &Counters) -> PumpEnd
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
    W: AsyncWrite + Unpin,
{
    let mut end = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return PumpEnd::TunnelError(error_chain(&e)),
        };
        match frame.into_data() {
            Ok(data) => {
                if let Err(e) = socket.write_all(&data).await {
                    return PumpEnd::SocketError(e.to_string());
                }
                // A pipe (standard output) buffers; a TCP socket's flush is free.
                if let Err(e) = socket.flush().await {
                    return PumpEnd::SocketError(e.to_string());
                }
                counters.add(&counters.tunnel_to_socket, data.len() as u64);
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    end = Some(read_trailers(&trailers));
                }
            }
        }
    }
    let Some((end, reason)) = end else {
        return PumpEnd::Lost;
    };
    if end == StreamEnd::Completed
        && let Err(e) = socket.shutdown().await
    {
        return PumpEnd::SocketError(e.to_string());
    }
    PumpEnd::Ended(end, reason)
}

/// Runs one v2 stream to its end at either side: `incoming` drains the peer's body into the
/// socket (a [`pump_body`]), `outgoing_end` hears how this side's [`ChunkBody`], read by the
/// HTTP/2 connection, ended. Done when both ended normally, or at the first failure or
/// `stop`. `lost` says what a connection cut off under the stream means from this side.
pub async fn run_stream(
    incoming: impl Future<Output = PumpEnd>,
    outgoing_end: oneshot::Receiver<BodyEnd>,
    stop: Option<watch::Receiver<Option<String>>>,
    lost: &str,
) -> RelayEnd {
    let stopped = stopped(stop);
    tokio::pin!(incoming, outgoing_end, stopped);
    let (mut received, mut sent) = (false, false);
    loop {
        tokio::select! {
            end = &mut incoming, if !received => match end {
                PumpEnd::Ended(StreamEnd::Completed, _) => {
                    received = true;
                    if sent { return RelayEnd::Completed; }
                }
                PumpEnd::Ended(end, reason) => {
                    return RelayEnd::PeerClosed { code: Some(end.close_code()), reason };
                }
                PumpEnd::Lost => return RelayEnd::TunnelError(lost.to_string()),
                PumpEnd::SocketError(e) => return RelayEnd::SocketError(e),
                PumpEnd::TunnelError(e) => return RelayEnd::TunnelError(format!("{lost}: {e}")),
            },
            end = &mut outgoing_end, if !sent => match end.unwrap_or(BodyEnd::Dropped) {
                BodyEnd::Eof => {
                    sent = true;
                    if received { return RelayEnd::Completed; }
                }
                BodyEnd::SocketError(e) => return RelayEnd::SocketError(e),
                BodyEnd::Stopped(reason) => return RelayEnd::Stopped(reason),
                BodyEnd::Dropped => return RelayEnd::TunnelError(lost.to_string()),
            },
            // This side's body sends the reason in its trailers; the rest stops here, once the
            // body has handed its trailers over (dropping the other direction first can reset
            // the stream before they go out, and the client would see a lost connection).
            reason = &mut stopped => {
                if !sent {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut outgoing_end).await;
                }
                return RelayEnd::Stopped(reason);
            }
        }
    }
}

/// An error and its sources, for messages (hyper's own text is often just "http2 error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn read_trailers(trailers: &HeaderMap) -> (StreamEnd, String) {
    let text = |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let reason = text(REASON_TRAILER).to_string();
    match StreamEnd::decode(text(END_TRAILER)) {
        Some(end) => (end, reason),
        None => (StreamEnd::SocketError, format!("the peer ended the stream without saying how {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    #[tokio::test]
    async fn a_socket_body_carries_bytes_then_trailers_naming_eof() {
        let (mut app, ours) = pair().await;
        let (read, _write) = ours.into_split();
        let counters = Arc::new(Counters::default());
        let (mut body, ended) = ChunkBody::new(read, counters.clone());
        app.write_all(b"hello").await.expect("write");
        app.shutdown().await.expect("shutdown");
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("frame");
            match frame.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            }
        }
        assert_eq!(data, b"hello");
        let trailers = trailers.expect("trailers at the end");
        assert_eq!(read_trailers(&trailers), (StreamEnd::Completed, String::new()));
        assert_eq!(ended.await, Ok(BodyEnd::Eof));
        assert_eq!(counters.socket_to_tunnel.load(std::sync::atomic::Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_stop_ends_the_body_with_its_reason_and_a_dropped_body_says_so() {
        let (_app, ours) = pair().await;
        let (read, _write) = ours.into_split();
        let (tx, rx) = watch::channel(None);
        let (body, ended) = ChunkBody::new(read, Arc::default());
        let mut body = body.with_stop(rx);
        tx.send(Some("disconnected by admin".into())).expect("send");
        let frame = body.frame().await.expect("a frame").expect("no error");
        let trailers = frame.into_trailers().expect("trailers");
        assert_eq!(read_trailers(&trailers), (StreamEnd::EndedByGateway, "disconnected by admin".into()));
        assert!(body.frame().await.is_none());
        assert_eq!(ended.await, Ok(BodyEnd::Stopped("disconnected by admin".into())));

        let (_app2, ours2) = pair().await;
        let (body, ended) = ChunkBody::new(ours2.into_split().0, Arc::default());
        drop(body);
        assert_eq!(ended.await, Ok(BodyEnd::Dropped));
    }

    #[tokio::test]
    async fn pumping_a_body_half_closes_the_socket_only_on_a_normal_end() {
        for (end, closes) in [(StreamEnd::Completed, true), (StreamEnd::EndedByGateway, false)] {
            let (mut app, mut ours) = pair().await;
            let mut trailers = HeaderMap::new();
            trailers.insert(END_TRAILER, HeaderValue::from_static(end.encode()));
            let frames: Vec<Result<Frame<Bytes>, io::Error>> =
                vec![Ok(Frame::data(Bytes::from_static(b"abc"))), Ok(Frame::trailers(trailers))];
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
            let counters = Counters::default();
            let got = pump_body(body, &mut ours, &counters).await;
            assert_eq!(got, PumpEnd::Ended(end, String::new()));
            let mut buf = [0u8; 3];
            app.read_exact(&mut buf).await.expect("data");
            assert_eq!(&buf, b"abc");
            let eof = tokio::time::timeout(std::time::Duration::from_millis(200), app.read(&mut buf)).await;
            assert_eq!(eof.is_ok_and(|r| r.is_ok_and(|n| n == 0)), closes, "{end:?}");
        }
    }

    #[tokio::test]
    async fn a_body_cut_off_without_trailers_is_a_lost_connection_not_a_half_close() {
        let (mut app, mut ours) = pair().await;
        let frames: Vec<Result<Frame<Bytes>, io::Error>> = vec![Ok(Frame::data(Bytes::from_static(b"abc")))];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        assert_eq!(pump_body(body, &mut ours, &Counters::default()).await, PumpEnd::Lost);
        let mut buf = [0u8; 3];
        app.read_exact(&mut buf).await.expect("data");
        let eof = tokio::time::timeout(std::time::Duration::from_millis(200), app.read(&mut buf)).await;
        assert!(eof.is_err(), "the socket was half-closed: {eof:?}");
    }
}
