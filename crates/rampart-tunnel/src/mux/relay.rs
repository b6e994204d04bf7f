//! One stream's task: relays its socket over the tunnel connection (reads the socket and
//! writes frames itself; writes what the connection's reader queued for it), and its ends.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use rampart_proto::mux::{Frame, data_buffer, seal_data};
use rampart_proto::tunnel::{DATA_CHUNK, StreamEnd};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Connection, ENTRY_COST, StreamState};
use crate::{Counters, RelayEnd, RelayReport, now_ms, stopped};

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
    pub(super) state: Arc<StreamState>,
    pub(super) conn: Arc<Connection>,
}

impl MuxStream {
    pub(super) fn new(state: Arc<StreamState>, conn: &Arc<Connection>) -> MuxStream {
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
