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
use rampart_proto::mux::{
    Frame, HEADER_LEN, MAX_PAYLOAD, STREAM_WINDOW, data_buffer, decode, frame_len, seal_data,
};
use rampart_proto::tunnel::{DATA_CHUNK, StreamEnd};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};

use crate::{Counters, RelayEnd, RelayReport, now_ms, stopped};

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

/// Reads at most `want` bytes into `buf`. A read that returns less than asked for has
/// drained the socket, so its readiness is cleared as tokio's own `poll_read` does (the
/// stream's next wait then costs no `recv` that can only answer "would block": one system
/// call less per message).
fn read_chunk(socket: &TcpStream, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    let mut got = None;
    let read = socket.try_io(tokio::io::Interest::READABLE, || {
        let n = socket.try_read_buf(&mut buf.limit(want))?;
        got = Some(n);
        if n > 0 && n < want { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
    });
    match (read, got) {
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (read, _) => read,
    }
}

/// What a stream's task does next, after [`MuxStream::settle`].
enum Settled {
    Wait {
        waiting_to_write: bool,
        credit: usize,
    },
    /// Ended; nothing more to tell the peer.
    Finished(RelayEnd),
    /// Writing to the socket failed: tell the peer.
    Failed(String),
}

/// One relayed TCP connection on a v3 connection. Dropped without running, it is removed.
pub struct MuxStream {
    state: Arc<StreamState>,
    conn: Arc<Connection>,
}

impl MuxStream {
    fn new(state: Arc<StreamState>, conn: &Arc<Connection>) -> MuxStream {
        MuxStream { state, conn: conn.clone() }
    }

    /// Relays `socket` over this stream until both directions end or either side fails;
    /// `stop` (the gateway's) ends it with a reason the peer hears.
    pub async fn relay(
        self,
        socket: TcpStream,
        counters: Arc<Counters>,
        stop: Option<watch::Receiver<Option<String>>>,
    ) -> RelayReport {
        socket.set_nodelay(true).ok();
        let socket = Arc::new(socket);
        counters.last_activity_ms.store(now_ms(), Ordering::Relaxed);
        {
            let mut inbound = self.state.inbound();
            inbound.socket = Some(socket.clone());
            inbound.counters = Some(counters.clone());
        }
        let end = self.run(&socket, &counters, stop).await;
        RelayReport {
            socket_to_tunnel: counters.socket_to_tunnel.load(Ordering::Relaxed),
            tunnel_to_socket: counters.tunnel_to_socket.load(Ordering::Relaxed),
            end,
        }
    }

    async fn run(
        &self,
        socket: &TcpStream,
        counters: &Counters,
        stop: Option<watch::Receiver<Option<String>>>,
    ) -> RelayEnd {
        let id = self.state.id;
        let stopped = stopped(stop);
        tokio::pin!(stopped);
        let (mut our_eof, mut peer_eof) = (false, false);
        loop {
            // What the reader left: bytes the socket could not take, the peer's end, errors.
            let (waiting_to_write, credit) = match self.settle(socket, our_eof, &mut peer_eof) {
                Settled::Wait { waiting_to_write, credit } => (waiting_to_write, credit),
                Settled::Finished(end) => {
                    self.finish();
                    return end;
                }
                Settled::Failed(e) => {
                    return self.end_here(StreamEnd::SocketError, RelayEnd::SocketError(e)).await;
                }
            };
            if let Some(reason) = self.conn.lost_reason() {
                self.finish();
                return RelayEnd::TunnelError(reason);
            }
            tokio::select! {
                biased;
                reason = &mut stopped => {
                    return self.end_here(StreamEnd::EndedByGateway, RelayEnd::Stopped(reason)).await;
                }
                () = self.state.wake.notified() => {}
                ready = socket.writable(), if waiting_to_write => {
                    if let Err(e) = ready {
                        return self.end_here(StreamEnd::SocketError, RelayEnd::SocketError(e.to_string())).await;
                    }
                }
                ready = socket.readable(), if !our_eof && credit > 0 => {
                    if let Err(e) = ready {
                        return self.end_here(StreamEnd::SocketError, RelayEnd::SocketError(e.to_string())).await;
                    }
                    let want = credit.min(DATA_CHUNK);
                    let mut buf = data_buffer(want);
                    match read_chunk(socket, &mut buf, want) {
                        Ok(0) => {
                            our_eof = true;
                            let end = Frame::End { stream: id, end: StreamEnd::Completed, reason: String::new() };
                            if let Err(reason) = self.conn.send(&end).await {
                                self.finish();
                                return RelayEnd::TunnelError(reason);
                            }
                            if peer_eof {
                                self.finish();
                                return RelayEnd::Completed;
                            }
                        }
                        Ok(n) => {
                            self.state.inbound().credit -= n;
                            seal_data(&mut buf, id);
                            if let Err(reason) = self.conn.write(&buf).await {
                                self.finish();
                                return RelayEnd::TunnelError(reason);
                            }
                            counters.add(&counters.socket_to_tunnel, n as u64);
                        }
                        // The readiness was stale; try_read cleared it.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            return self.end_here(StreamEnd::SocketError, RelayEnd::SocketError(e.to_string())).await;
                        }
                    }
                }
            }
        }
    }

    /// Writes what the reader queued, as far as the socket takes it, and acts on the peer's
    /// end once everything before it is written. Never waits.
    fn settle(&self, socket: &TcpStream, our_eof: bool, peer_eof: &mut bool) -> Settled {
        let mut inbound = self.state.inbound();
        if let Some((status, body)) = inbound.refused.take() {
            return Settled::Finished(RelayEnd::Refused { status, body });
        }
        // An end other than a half-close ends the stream at once, after a half-close too, and
        // whatever is still queued for the socket is dropped.
        if let Some((end, reason)) = inbound.peer_end.clone()
            && end != StreamEnd::Completed
        {
            return Settled::Finished(RelayEnd::PeerClosed { code: Some(end.close_code()), reason });
        }
        let (mut written, mut popped) = (0, 0);
        let mut failed = None;
        while let Some(front) = inbound.pending.front_mut() {
            match socket.try_write(front) {
                Ok(n) if n == front.len() => {
                    written += n;
                    popped += 1;
                    inbound.pending.pop_front();
                }
                Ok(n) => {
                    written += n;
                    let _ = front.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if written > 0 {
            inbound.pending_bytes -= written;
            self.conn.buffered.fetch_sub(written + popped * ENTRY_COST, Ordering::AcqRel);
            self.conn.drained.notify_one();
            self.conn.delivered(self.state.id, &mut inbound, written);
        }
        if let Some(e) = failed {
            return Settled::Failed(e);
        }
        if let Some(e) = inbound.write_error.take() {
            return Settled::Failed(e);
        }
        if inbound.pending.is_empty()
            && !*peer_eof
            && matches!(inbound.peer_end, Some((StreamEnd::Completed, _)))
        {
            *peer_eof = true;
            if let Err(e) = socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Write) {
                return Settled::Failed(e.to_string());
            }
            if our_eof {
                return Settled::Finished(RelayEnd::Completed);
            }
        }
        Settled::Wait { waiting_to_write: !inbound.pending.is_empty(), credit: inbound.credit }
    }

    /// Ends the whole stream from this side: tells the peer why, then forgets it.
    async fn end_here(&self, end: StreamEnd, relay_end: RelayEnd) -> RelayEnd {
        let reason = match &relay_end {
            RelayEnd::SocketError(r) | RelayEnd::Stopped(r) => r.clone(),
            _ => String::new(),
        };
        let _ = self.conn.send(&Frame::End { stream: self.state.id, end, reason }).await;
        self.finish();
        relay_end
    }

    /// Forgets the stream: frames still on their way for it are dropped.
    fn finish(&self) {
        self.conn.remove(self.state.id);
        let mut inbound = self.state.inbound();
        inbound.finished = true;
        let left = std::mem::take(&mut inbound.pending_bytes) + inbound.pending.len() * ENTRY_COST;
        inbound.pending.clear();
        inbound.socket = None;
        if left > 0 {
            self.conn.buffered.fetch_sub(left, Ordering::AcqRel);
            self.conn.drained.notify_one();
        }
    }
}

impl Drop for MuxStream {
    /// A stream dropped before its end (its relay future dropped) tells the peer, which would
    /// otherwise wait on it for ever.
    fn drop(&mut self) {
        let unfinished = !self.state.inbound().finished;
        if unfinished && self.conn.lost_reason().is_none() {
            let reason = "the stream was dropped before it ended".to_string();
            self.conn.queue(&Frame::End { stream: self.state.id, end: StreamEnd::SocketError, reason });
        }
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    /// A gateway in miniature: refuses the token "bad", and relays every other stream to a
    /// fresh socket whose far end the test gets. Stops a stream when `stop` says so.
    async fn setup(
        keepalive: Duration,
    ) -> (
        MuxClient,
        mpsc::UnboundedReceiver<TcpStream>,
        watch::Sender<Option<String>>,
        mpsc::UnboundedReceiver<RelayReport>,
    ) {
        let (client_io, server_io) = pair().await;
        let client = MuxClient::start(client_io, Bytes::new(), keepalive);
        let mut server = MuxServer::start(server_io, Bytes::new(), keepalive);
        let (targets_tx, targets) = mpsc::unbounded_channel();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(None);
        tokio::spawn(async move {
            while let Some(open) = server.next().await {
                if open.token == "bad" {
                    open.refuse(
                        403,
                        Bytes::from_static(b"{\"error\":{\"code\":\"Denied\",\"message\":\"no\"}}"),
                    )
                    .await;
                    continue;
                }
                let (target_end, far_end) = pair().await;
                let _ = targets_tx.send(far_end);
                let stream = open.accept().await.expect("accept");
                let stop = stop.clone();
                let reports_tx = reports_tx.clone();
                tokio::spawn(async move {
                    let report = stream.relay(target_end, Arc::default(), Some(stop)).await;
                    let _ = reports_tx.send(report);
                });
            }
        });
        (client, targets, stop_tx, reports)
    }

    /// Opens a stream and relays a local socket over it; the test gets the app's end.
    async fn connect(client: &MuxClient) -> (TcpStream, tokio::task::JoinHandle<RelayReport>) {
        let stream = client.open("good").await.expect("asked");
        let (app, ours) = pair().await;
        let relay = tokio::spawn(stream.relay(ours, Arc::default(), None));
        (app, relay)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[tokio::test]
    async fn megabytes_cross_both_ways_intact_and_a_half_close_still_gets_the_reply() {
        let (client, mut targets, _stop, mut reports) = setup(Duration::from_secs(30)).await;
        let (mut app, relay) = connect(&client).await;
        let mut target = targets.recv().await.expect("target");
        // More than two windows each way, so credit must come back for it to finish.
        let upload = pattern(5 * 1024 * 1024 + 17, 1);
        let download = pattern(6 * 1024 * 1024 + 3, 2);
        let target_side = tokio::spawn(async move {
            let mut got = Vec::new();
            target.read_to_end(&mut got).await.expect("read to the client's half-close");
            target.write_all(&download).await.expect("reply after the half-close");
            target.shutdown().await.expect("shutdown");
            (got, download)
        });
        let (mut app_read, mut app_write) = app.split();
        let sending = async {
            app_write.write_all(&upload).await.expect("send");
            app_write.shutdown().await.expect("half-close");
        };
        let mut reply = Vec::new();
        let receiving = app_read.read_to_end(&mut reply);
        let ((), received) = tokio::join!(sending, receiving);
        received.expect("reply");
        let (got, download) = target_side.await.expect("target");
        assert!(got == upload, "the upload arrived changed ({} of {} bytes)", got.len(), upload.len());
        assert!(reply == download, "the reply arrived changed ({} of {} bytes)", reply.len(), download.len());
        let report = relay.await.expect("relay");
        assert_eq!(report.end, RelayEnd::Completed);
        assert_eq!(
            (report.socket_to_tunnel, report.tunnel_to_socket),
            (upload.len() as u64, download.len() as u64)
        );
        let gateway = reports.recv().await.expect("gateway report");
        assert_eq!(gateway.end, RelayEnd::Completed);
    }

    async fn echo_once(app: &mut TcpStream, target: &mut TcpStream, msg: &[u8]) {
        app.write_all(msg).await.expect("write");
        let mut buf = vec![0u8; msg.len()];
        target.read_exact(&mut buf).await.expect("target reads");
        target.write_all(&buf).await.expect("target answers");
        let mut back = vec![0u8; msg.len()];
        app.read_exact(&mut back).await.expect("app reads the answer");
        assert_eq!(back, msg);
    }

    #[tokio::test]
    async fn a_refusal_comes_back_with_its_status_and_body_and_the_connection_goes_on() {
        let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
        let refused = client.open("bad").await.expect("asked");
        // The app's bytes go at once; they wait at the gateway, which throws them away.
        let (mut app, ours) = pair().await;
        app.write_all(b"sent before the answer").await.expect("write");
        let end = tokio::time::timeout(Duration::from_secs(5), refused.relay(ours, Arc::default(), None))
            .await
            .expect("ends")
            .end;
        let RelayEnd::Refused { status, body } = end else {
            panic!("a bad token was admitted: {end:?}");
        };
        assert_eq!(status, 403);
        assert!(String::from_utf8_lossy(&body).contains("Denied"));
        let (mut app, _relay) = connect(&client).await;
        let mut target = targets.recv().await.expect("target");
        echo_once(&mut app, &mut target, b"still carrying").await;
    }

    #[tokio::test]
    async fn a_stream_whose_target_reads_nothing_does_not_hold_up_the_others() {
        let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
        let (mut stuck_app, _stuck_relay) = connect(&client).await;
        let _stuck_target = targets.recv().await.expect("target");
        // Far more than the window and the sockets' buffers: the stuck stream must stop at
        // its window, not fill the connection.
        let flood = tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..256 {
                if stuck_app.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut app, _relay) = connect(&client).await;
        let mut target = targets.recv().await.expect("target");
        for i in 0..20u8 {
            tokio::time::timeout(Duration::from_secs(5), echo_once(&mut app, &mut target, &[i; 100]))
                .await
                .expect("the second stream answers while the first is stuck");
        }
        assert!(!flood.is_finished(), "the whole flood went through although its target read nothing");
        flood.abort();
    }

    #[tokio::test]
    async fn a_stop_reaches_the_client_with_its_reason() {
        let (client, mut targets, stop, mut reports) = setup(Duration::from_secs(30)).await;
        let (mut app, relay) = connect(&client).await;
        let mut target = targets.recv().await.expect("target");
        echo_once(&mut app, &mut target, b"hello").await;
        stop.send(Some("disconnected by admin".into())).expect("stop");
        let end =
            tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("relay").end;
        assert_eq!(
            end,
            RelayEnd::PeerClosed {
                code: Some(rampart_proto::tunnel::close_code::ENDED_BY_GATEWAY),
                reason: "disconnected by admin".into()
            }
        );
        assert_eq!(
            reports.recv().await.expect("report").end,
            RelayEnd::Stopped("disconnected by admin".into())
        );
    }

    #[tokio::test]
    async fn an_error_after_a_half_close_still_ends_the_stream() {
        let (client, mut targets, _stop, mut reports) = setup(Duration::from_secs(30)).await;
        let (mut app, relay) = connect(&client).await;
        let mut target = targets.recv().await.expect("target");
        target.shutdown().await.expect("the target half-closes");
        let mut byte = [0u8; 1];
        assert_eq!(app.read(&mut byte).await.expect("read"), 0, "the half-close did not arrive");
        // Then the target goes away entirely; the app goes on sending, so the gateway's writes
        // to the target fail and the client must hear of it although the peer had half-closed.
        drop(target);
        for _ in 0..100 {
            if app.write_all(&[1u8; 4096]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let end = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("the stream hung after an error that followed a half-close")
            .expect("relay")
            .end;
        assert!(matches!(end, RelayEnd::PeerClosed { .. } | RelayEnd::SocketError(_)), "{end:?}");
        let gateway = reports.recv().await.expect("gateway report").end;
        assert!(matches!(gateway, RelayEnd::SocketError(_)), "{gateway:?}");
    }

    #[tokio::test]
    async fn a_peer_that_breaks_the_protocol_loses_its_connection_with_the_reason() {
        let (mut client_io, server_io) = pair().await;
        let mut server = MuxServer::start(server_io, Bytes::new(), Duration::from_secs(30));
        // A frame header announcing 4 GiB.
        client_io.write_all(&[0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).await.expect("write");
        let next = tokio::time::timeout(Duration::from_secs(5), server.next()).await.expect("ends");
        assert!(next.is_none());
        let reason = server.lost_reason().unwrap_or_default();
        assert!(reason.contains("broke the tunnel protocol") && reason.contains("larger than"), "{reason}");
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(5), client_io.read_to_end(&mut rest)).await;
        assert!(eof.is_ok(), "the gateway kept the connection open");
    }

    #[tokio::test]
    async fn a_lost_connection_ends_its_streams_as_lost_never_as_a_half_close() {
        // A peer that completes the upgrade and then says nothing: the client's pings go
        // unanswered and its streams end with the reason.
        let (client_io, mut silent_peer) = pair().await;
        let client = MuxClient::start(client_io, Bytes::new(), Duration::from_millis(100));
        let stream = client.open("good").await.expect("asked");
        let (_app, ours) = pair().await;
        let relay = tokio::spawn(stream.relay(ours, Arc::default(), None));
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), silent_peer.read_to_end(&mut sink)).await;
        let end =
            tokio::time::timeout(Duration::from_secs(3), relay).await.expect("ends").expect("relay").end;
        let RelayEnd::TunnelError(reason) = end else {
            panic!("the stream did not end as lost: {end:?}");
        };
        assert!(reason.contains("keep-alive"), "{reason}");
        assert!(client.is_closed());
        assert!(client.open("good").await.is_err(), "a stream opened on a lost connection");

        // A stream already running when its connection closes ends as a tunnel error.
        let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
        let (_app, relay) = connect(&client).await;
        let _target = targets.recv().await.expect("target");
        client.conn.fail("test: the connection closed".into());
        let end =
            tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("relay").end;
        assert_eq!(end, RelayEnd::TunnelError("test: the connection closed".into()));
    }
}
