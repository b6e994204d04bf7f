//! Protocol v3's data path: every relayed TCP connection is a stream of one connection per
//! tunnel, in Rampart's own framing ([`rampart_proto::mux`]).
//!
//! Why not HTTP/2 (v2): hyper's connection task owns the socket, so every message passes two
//! task hand-offs per direction (the stream's task, then the connection's). Here
//! - a stream's own task reads its socket and writes the frame to the connection itself
//!   (under the connection's write lock);
//! - the connection's one reader writes a data frame straight into the stream's socket
//!   (`try_write`, never waiting); only what the socket cannot take now is queued for the
//!   stream's task, which writes it when the socket is writable.
//!
//! So a message costs one wake-up per direction at each end, as in v1, with v2's single TLS
//! connection per tunnel and no buffer held by an idle stream.
//!
//! Rules that keep it safe:
//! - **The reader never waits on a write.** Frames it must send (window updates, pongs) go to
//!   a small queue written by the connection's control task; otherwise two peers whose
//!   readers both waited on full sockets could deadlock.
//! - **Flow control per stream**: a sender sends at most [`STREAM_WINDOW`] bytes beyond what
//!   the receiver has written to its socket ([`Frame::Window`] returns credit), so a slow
//!   socket makes its own stream wait, not the others. The reader also stops reading while
//!   more than [`CONNECTION_BUFFER`] bytes are queued for all streams together.
//! - **A lost connection is never a half-close**: every stream of a connection that ends
//!   (EOF, error, no answer to keep-alive pings) ends as lost, with the reason.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rampart_proto::mux::{Frame, HEADER_LEN, MAX_PAYLOAD, STREAM_WINDOW, decode, frame_len};
use rampart_proto::tunnel::StreamEnd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};

use crate::{Counters, now_ms};

/// Bytes queued for the sockets of all streams of a connection before its reader waits.
pub const CONNECTION_BUFFER: usize = 16 * 1024 * 1024;
/// Streams one connection may hold at once (the 10,000-connection benchmark uses one tunnel).
pub const MAX_STREAMS: usize = 65_536;
/// What one queued payload costs beyond its bytes (its slot and its allocation), counted
/// toward [`CONNECTION_BUFFER`] so that many tiny frames cannot hold more than a few large ones.
const ENTRY_COST: usize = 128;
/// Payloads smaller than this are copied when queued: a slice of the reader's buffer would keep
/// the whole buffer alive.
const COPY_BELOW: usize = 64 * 1024;
/// Frames the reader has queued for the control task (pongs, window updates, refusals); only a
/// peer that does not read what it is sent fills this, and its connection ends.
const MAX_CONTROL_QUEUE: usize = 1024 * 1024;

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// One tunnel connection, shared by its reader, its control task and its streams.
struct Connection {
    writer: tokio::sync::Mutex<Writer>,
    streams: Mutex<HashMap<u32, Arc<StreamState>>>,
    /// Frames the reader has to send; written by the control task.
    control: Mutex<BytesMut>,
    control_ready: Notify,
    /// Why the connection ended, once it has.
    lost: watch::Sender<Option<String>>,
    last_heard_ms: AtomicU64,
    /// The reader is waiting for queued bytes to drain, so it hears nothing: not silence.
    paused: std::sync::atomic::AtomicBool,
    /// Bytes queued for streams' sockets, all streams together (with [`ENTRY_COST`] each).
    buffered: AtomicUsize,
    drained: Notify,
    next_stream: AtomicU32,
}

/// What the reader and a stream's task share.
struct StreamState {
    id: u32,
    inbound: Mutex<Inbound>,
    wake: Notify,
}

#[derive(Default)]
struct Inbound {
    /// The stream's socket once it runs: the reader writes into it directly.
    socket: Option<Arc<TcpStream>>,
    counters: Option<Arc<Counters>>,
    /// What the socket could not take yet, oldest first.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    /// The peer's side ended (after the pending bytes).
    peer_end: Option<(StreamEnd, String)>,
    /// Writing to the socket failed.
    write_error: Option<String>,
    /// Bytes this side may still send.
    credit: usize,
    /// Bytes written to the socket and not yet returned to the peer as window.
    unacked: usize,
    /// Client side: the gateway refused the stream (status and JSON error body).
    refused: Option<(u16, Bytes)>,
    /// The stream has ended here: data still arriving for it is dropped, not queued (nobody
    /// would write it, and the connection's queued total would never come down).
    finished: bool,
}

impl StreamState {
    fn new(id: u32) -> Arc<Self> {
        Arc::new(StreamState {
            id,
            inbound: Mutex::new(Inbound { credit: STREAM_WINDOW as usize, ..Default::default() }),
            wake: Notify::new(),
        })
    }

    fn inbound(&self) -> MutexGuard<'_, Inbound> {
        // A panic while holding the lock leaves plain data behind; go on with it.
        self.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    fn new(writer: Writer, first_stream: u32) -> Arc<Self> {
        Arc::new(Connection {
            writer: tokio::sync::Mutex::new(writer),
            streams: Mutex::new(HashMap::new()),
            control: Mutex::new(BytesMut::new()),
            control_ready: Notify::new(),
            lost: watch::channel(None).0,
            last_heard_ms: AtomicU64::new(now_ms()),
            paused: std::sync::atomic::AtomicBool::new(false),
            buffered: AtomicUsize::new(0),
            drained: Notify::new(),
            next_stream: AtomicU32::new(first_stream),
        })
    }

    fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Ends the connection and every stream on it, once; the first reason wins.
    fn fail(&self, reason: String) {
        let first = self.lost.send_if_modified(|lost| {
            if lost.is_some() {
                return false;
            }
            *lost = Some(reason.clone());
            true
        });
        if !first {
            return;
        }
        tracing::debug!(%reason, "tunnel connection ended");
        let streams: Vec<_> = lock(&self.streams).drain().map(|(_, s)| s).collect();
        for stream in streams {
            stream.wake.notify_one();
        }
        self.control_ready.notify_one();
        self.drained.notify_one();
    }

    /// Writes whole frames in one go (one TLS record where they fit) and flushes.
    async fn write(&self, bytes: &[u8]) -> Result<(), String> {
        if let Some(reason) = self.lost_reason() {
            return Err(reason);
        }
        // A peer that stops reading would hold this write (and the lock) for ever: the write
        // gives way once the connection is lost (keep-alive, or any other failure). A frame cut
        // off then does not matter; nothing more is written.
        let mut lost = self.lost.subscribe();
        let written = tokio::select! {
            written = async {
                let mut writer = self.writer.lock().await;
                writer.write_all(bytes).await?;
                writer.flush().await
            } => written,
            _ = lost.wait_for(Option::is_some) => {
                return Err(self.lost_reason().unwrap_or_else(|| "the tunnel connection ended".into()));
            }
        };
        written.map_err(|e| {
            let reason = format!("writing to the tunnel connection failed: {e}");
            self.fail(reason.clone());
            reason
        })
    }

    async fn send(&self, frame: &Frame) -> Result<(), String> {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        self.write(&buf).await
    }

    /// Queues a frame for the control task (the reader's way to send without waiting).
    fn queue(&self, frame: &Frame) {
        let full = {
            let mut control = lock(&self.control);
            frame.encode(&mut control);
            control.len() > MAX_CONTROL_QUEUE
        };
        if full {
            self.fail("the peer does not read what it is sent (its control frames piled up)".into());
            return;
        }
        self.control_ready.notify_one();
    }

    fn stream(&self, id: u32) -> Option<Arc<StreamState>> {
        lock(&self.streams).get(&id).cloned()
    }

    fn remove(&self, id: u32) {
        lock(&self.streams).remove(&id);
    }

    /// Reads frames until the connection ends. `opens` takes the gateway's incoming streams;
    /// the client has none.
    async fn read_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        mut reader: R,
        mut buf: BytesMut,
        opens: Option<mpsc::UnboundedSender<OpenRequest>>,
    ) {
        let mut lost = self.lost.subscribe();
        let reason = loop {
            loop {
                match decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if let Err(e) = self.handle(frame, opens.as_ref()) {
                            self.fail(format!("the peer broke the tunnel protocol: {e}"));
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.fail(format!("the peer broke the tunnel protocol: {e}"));
                        return;
                    }
                }
            }
            // Too much queued for slow sockets: read on once they have taken some of it.
            while self.buffered.load(Ordering::Acquire) > CONNECTION_BUFFER && self.lost_reason().is_none() {
                let drained = self.drained.notified();
                if self.buffered.load(Ordering::Acquire) <= CONNECTION_BUFFER {
                    break;
                }
                self.paused.store(true, Ordering::Relaxed);
                drained.await;
            }
            if self.paused.swap(false, Ordering::Relaxed) {
                self.last_heard_ms.store(now_ms(), Ordering::Relaxed);
            }
            let need = match frame_len(&buf) {
                Ok(n) => n.unwrap_or(HEADER_LEN),
                Err(e) => {
                    self.fail(format!("the peer broke the tunnel protocol: {e}"));
                    return;
                }
            };
            buf.reserve(need.saturating_sub(buf.len()).max(64 * 1024));
            tokio::select! {
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) => break "the peer closed the tunnel connection".to_string(),
                    Ok(_) => self.last_heard_ms.store(now_ms(), Ordering::Relaxed),
                    Err(e) => break format!("reading the tunnel connection failed: {e}"),
                },
                _ = lost.wait_for(Option::is_some) => return,
            }
        };
        self.fail(reason);
    }

    fn handle(
        self: &Arc<Self>,
        frame: Frame,
        opens: Option<&mpsc::UnboundedSender<OpenRequest>>,
    ) -> Result<(), String> {
        match frame {
            Frame::Data { stream, data } => {
                if let Some(state) = self.stream(stream) {
                    self.deliver(&state, data)?;
                }
            }
            Frame::Open { stream, token } => {
                let Some(opens) = opens else {
                    return Err("only the client opens streams".into());
                };
                let state = {
                    let mut streams = lock(&self.streams);
                    if streams.contains_key(&stream) {
                        return Err(format!("stream {stream} is already open"));
                    }
                    if streams.len() >= MAX_STREAMS {
                        drop(streams);
                        self.queue(&Frame::Refused {
                            stream,
                            status: 503,
                            body: Bytes::from(format!(
                                "{{\"error\":{{\"code\":\"TooManyStreams\",\"message\":\"this tunnel connection already carries {MAX_STREAMS} connections\"}}}}"
                            )),
                        });
                        return Ok(());
                    }
                    let state = StreamState::new(stream);
                    streams.insert(stream, state.clone());
                    state
                };
                let _ = opens.send(OpenRequest { token, stream: Some(MuxStream::new(state, self)) });
            }
            // The client sends as soon as it has asked (its bytes wait at the gateway until
            // the stream is admitted), so `Opened` only confirms.
            Frame::Opened { .. } => {}
            Frame::Refused { stream, status, body } => {
                if let Some(state) = self.stream(stream) {
                    self.remove(stream);
                    state.inbound().refused = Some((status, body));
                    state.wake.notify_one();
                }
            }
            Frame::End { stream, end, reason } => {
                if let Some(state) = self.stream(stream) {
                    state.inbound().peer_end = Some((end, reason));
                    state.wake.notify_one();
                }
            }
            Frame::Window { stream, increment } => {
                if let Some(state) = self.stream(stream) {
                    let mut inbound = state.inbound();
                    inbound.credit = inbound.credit.saturating_add(increment as usize);
                    drop(inbound);
                    state.wake.notify_one();
                }
            }
            Frame::Ping { value } => self.queue(&Frame::Pong { value }),
            Frame::Pong { .. } => {}
        }
        Ok(())
    }

    /// Hands a data frame to its stream: straight into the socket when nothing is queued
    /// before it, the rest queued for the stream's task.
    fn deliver(&self, state: &StreamState, mut data: Bytes) -> Result<(), String> {
        if data.is_empty() {
            return Ok(());
        }
        let mut inbound = state.inbound();
        if inbound.finished {
            return Ok(());
        }
        if inbound.peer_end.is_some() {
            return Err(format!("data after the end of stream {}", state.id));
        }
        if inbound.write_error.is_some() {
            return Ok(());
        }
        if inbound.pending.is_empty()
            && let Some(socket) = inbound.socket.clone()
        {
            let mut written = 0;
            while written < data.len() {
                match socket.try_write(&data[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        inbound.write_error = Some(e.to_string());
                        state.wake.notify_one();
                        return Ok(());
                    }
                }
            }
            self.delivered(state.id, &mut inbound, written);
            if written == data.len() {
                return Ok(());
            }
            data = data.slice(written..);
        }
        if inbound.pending_bytes + data.len() > STREAM_WINDOW as usize + MAX_PAYLOAD {
            return Err(format!("stream {} sent beyond its window", state.id));
        }
        let data = if data.len() < COPY_BELOW { Bytes::copy_from_slice(&data) } else { data };
        inbound.pending_bytes += data.len();
        self.buffered.fetch_add(data.len() + ENTRY_COST, Ordering::AcqRel);
        inbound.pending.push_back(data);
        drop(inbound);
        state.wake.notify_one();
        Ok(())
    }

    /// Counts bytes written to a stream's socket and returns window to the peer in batches.
    fn delivered(&self, id: u32, inbound: &mut Inbound, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(c) = &inbound.counters {
            c.add(&c.tunnel_to_socket, n as u64);
        }
        inbound.unacked += n;
        if inbound.unacked >= STREAM_WINDOW as usize / 4 {
            let increment = u32::try_from(inbound.unacked).unwrap_or(u32::MAX);
            inbound.unacked = 0;
            self.queue(&Frame::Window { stream: id, increment });
        }
    }

    /// Writes the reader's queued frames and keeps the connection alive: a ping every
    /// `keepalive`, and the connection ends when the peer has been silent for two of them.
    async fn control_loop(self: Arc<Self>) {
        let mut lost = self.lost.subscribe();
        loop {
            tokio::select! {
                _ = lost.wait_for(Option::is_some) => break,
                () = self.control_ready.notified() => {}
            }
            let frames = std::mem::take(&mut *lock(&self.control));
            if !frames.is_empty() && self.write(&frames).await.is_err() {
                break;
            }
        }
        // Let the peer see the end instead of waiting for its own keep-alive to notice.
        let _ =
            tokio::time::timeout(Duration::from_secs(2), async { self.writer.lock().await.shutdown().await })
                .await;
    }

    /// A ping every `keepalive`; the connection ends when the peer has been silent for two of
    /// them. A task of its own, so that a write stuck on a peer that stopped reading cannot
    /// keep it from noticing.
    async fn keepalive_loop(self: Arc<Self>, keepalive: Duration) {
        let mut lost = self.lost.subscribe();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let limit = 2 * u64::try_from(keepalive.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::select! {
                _ = lost.wait_for(Option::is_some) => return,
                _ = tick.tick() => {}
            }
            let silent = now_ms().saturating_sub(self.last_heard_ms.load(Ordering::Relaxed));
            if silent > limit && !self.paused.load(Ordering::Relaxed) {
                self.fail(format!("the peer answered no keep-alive ping for {} s", silent / 1000));
                return;
            }
            self.queue(&Frame::Ping { value: now_ms() });
        }
    }
}

fn start<T>(
    io: T,
    already_read: Bytes,
    keepalive: Duration,
    first_stream: u32,
) -> (Arc<Connection>, ReadTask<T>)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let conn = Connection::new(Box::new(writer), first_stream);
    tokio::spawn(conn.clone().control_loop());
    tokio::spawn(conn.clone().keepalive_loop(keepalive));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.put_slice(&already_read);
    (conn, ReadTask { reader, buf })
}

struct ReadTask<T> {
    reader: tokio::io::ReadHalf<T>,
    buf: BytesMut,
}

/// The client's end of a v3 connection: opens streams.
#[derive(Clone)]
pub struct MuxClient {
    conn: Arc<Connection>,
}

impl MuxClient {
    /// Runs the client side of an established v3 connection (after the upgrade);
    /// `already_read` is what arrived with the upgrade's answer.
    pub fn start<T>(io: T, already_read: Bytes, keepalive: Duration) -> MuxClient
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (conn, task) = start(io, already_read, keepalive, 1);
        tokio::spawn(conn.clone().read_loop(task.reader, task.buf, None));
        MuxClient { conn }
    }

    /// False once the connection has ended (open a new one).
    pub fn is_closed(&self) -> bool {
        self.conn.lost_reason().is_some()
    }

    /// Whether `other` is a handle on this same connection.
    pub fn same_connection(&self, other: &MuxClient) -> bool {
        Arc::ptr_eq(&self.conn, &other.conn)
    }

    /// Asks the gateway for a stream with `token`, without waiting for its answer: the
    /// stream's bytes may follow at once and wait at the gateway until it is admitted (saving a
    /// round trip per new connection); nothing reaches the target before admission. A refusal
    /// ends the stream's relay with [`RelayEnd::Refused`]. Fails only if the connection has
    /// ended.
    pub async fn open(&self, token: &str) -> Result<MuxStream, String> {
        let id = self.conn.next_stream.fetch_add(1, Ordering::Relaxed);
        let state = StreamState::new(id);
        lock(&self.conn.streams).insert(id, state.clone());
        // Removes the stream if this future is dropped or fails.
        let stream = MuxStream::new(state, &self.conn);
        self.conn.send(&Frame::Open { stream: id, token: token.to_string() }).await?;
        Ok(stream)
    }
}

/// The gateway's end of a v3 connection: streams the client asks for, to admit or refuse.
pub struct MuxServer {
    opens: mpsc::UnboundedReceiver<OpenRequest>,
    conn: Arc<Connection>,
}

/// A stream the client asked for, not yet answered. Dropped unanswered, it is refused (the
/// client never waits for an answer that will not come).
pub struct OpenRequest {
    /// The tunnel token it came with.
    pub token: String,
    stream: Option<MuxStream>,
}

impl OpenRequest {
    /// Admits the stream: the client may send once it hears so.
    pub async fn accept(mut self) -> Result<MuxStream, String> {
        let stream = self.stream.take().ok_or("the stream was already answered")?;
        stream.conn.send(&Frame::Opened { stream: stream.state.id }).await?;
        Ok(stream)
    }

    /// Refuses it with the HTTP status and JSON error body of the other protocols.
    pub async fn refuse(mut self, status: u16, body: Bytes) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.conn.send(&Frame::Refused { stream: stream.state.id, status, body }).await;
        }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let body = r#"{"error":{"code":"InternalError","message":"the gateway dropped the connection before admitting it"}}"#;
            stream.conn.queue(&Frame::Refused {
                stream: stream.state.id,
                status: 500,
                body: Bytes::from_static(body.as_bytes()),
            });
        }
    }
}

impl MuxServer {
    /// Runs the gateway side of an established v3 connection (after the upgrade).
    pub fn start<T>(io: T, already_read: Bytes, keepalive: Duration) -> MuxServer
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (conn, task) = start(io, already_read, keepalive, 0);
        let (tx, opens) = mpsc::unbounded_channel();
        tokio::spawn(conn.clone().read_loop(task.reader, task.buf, Some(tx)));
        MuxServer { opens, conn }
    }

    /// The next stream the client opens; `None` once the connection has ended.
    pub async fn next(&mut self) -> Option<OpenRequest> {
        self.opens.recv().await
    }

    /// Why the connection ended, once it has.
    pub fn lost_reason(&self) -> Option<String> {
        self.conn.lost_reason()
    }
}

mod relay;
pub use relay::MuxStream;

#[cfg(test)]
mod tests;
