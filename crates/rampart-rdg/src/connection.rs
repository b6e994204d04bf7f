//! One client's connection to the gateway: bytes in, [`Event`]s out, in the order MS-TSGU
//! 3.3.5 sets (handshake, tunnel, tunnel authorization, channel, then data). The caller
//! answers each request with the encoders of [`crate::packet`] and, after a refusal, closes.

use std::fmt;

use crate::packet::{self, ClientPacket, DecodeError};

/// Where a connection is in the protocol: the request it waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshake,
    TunnelCreate,
    TunnelAuth,
    ChannelCreate,
    /// The channel is open: data flows both ways.
    Open,
    /// The channel was closed by either side; nothing more is taken.
    Closed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Handshake => "the handshake",
            Phase::TunnelCreate => "the tunnel request",
            Phase::TunnelAuth => "the tunnel authorization",
            Phase::ChannelCreate => "the channel request",
            Phase::Open => "an open channel",
            Phase::Closed => "a closed channel",
        })
    }
}

/// What a client asked for, one request at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Answer with [`packet::handshake_response`].
    Handshake { extended_auth: u16 },
    /// Authenticate the cookie, then answer with [`packet::tunnel_response`].
    TunnelCreate { paa_cookie: Option<String> },
    /// Answer with [`packet::tunnel_auth_response`].
    TunnelAuth { client_name: String },
    /// Admit the computer, then answer with [`packet::channel_response`].
    ChannelCreate { resources: Vec<String>, port: u16 },
    /// Bytes for the computer.
    Data(Vec<u8>),
    /// The client's keep-alive (or its answer to the gateway's).
    Keepalive,
    /// The client closed the channel; answer with [`packet::close_channel_response`].
    Close { status: u32 },
    /// The client answered the gateway's close.
    CloseAcknowledged,
}

/// Why a connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a {packet} packet is out of order during {phase}")]
    OutOfOrder { packet: &'static str, phase: Phase },
    #[error("handshake version {major}.{minor} is not 1.0")]
    Version { major: u8, minor: u8 },
    #[error("the channel request names no computer")]
    NoResource,
}

/// A client's connection: buffers bytes until whole packets are there, checks their order.
#[derive(Debug)]
pub struct Connection {
    phase: Phase,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already taken.
    start: usize,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    pub fn new() -> Connection {
        Connection { phase: Phase::Handshake, buffer: Vec::new(), start: 0 }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes from the client, as the carrier delivers them (any split).
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next request, `Ok(None)` until a whole packet has arrived. After an error the
    /// connection is done: the caller closes it.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        let pending = &self.buffer[self.start..];
        // A header announcing more than the largest packet is refused before its body
        // arrives, so the buffer never holds more than one packet and one read.
        let Some((packet, used)) = packet::decode(pending)? else {
            self.compact();
            return Ok(None);
        };
        self.start += used;
        self.event_of(packet).map(Some)
    }

    /// Marks the channel closed by the gateway (after sending [`packet::close_channel`]):
    /// only the client's acknowledgement and keep-alives are taken from then on.
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }

    fn event_of(&mut self, packet: ClientPacket) -> Result<Event, ProtocolError> {
        let out_of_order = |p: &ClientPacket, phase| ProtocolError::OutOfOrder { packet: p.name(), phase };
        let event = match (self.phase, packet) {
            (Phase::Handshake, ClientPacket::Handshake { version_major, version_minor, extended_auth }) => {
                if (version_major, version_minor) != (1, 0) {
                    return Err(ProtocolError::Version { major: version_major, minor: version_minor });
                }
                self.phase = Phase::TunnelCreate;
                Event::Handshake { extended_auth }
            }
            (Phase::TunnelCreate, ClientPacket::TunnelCreate { paa_cookie, .. }) => {
                self.phase = Phase::TunnelAuth;
                Event::TunnelCreate { paa_cookie }
            }
            (Phase::TunnelAuth, ClientPacket::TunnelAuth { client_name }) => {
                self.phase = Phase::ChannelCreate;
                Event::TunnelAuth { client_name }
            }
            (Phase::ChannelCreate, ClientPacket::ChannelCreate { mut resources, port, .. }) => {
                resources.retain(|r| !r.is_empty());
                if resources.is_empty() {
                    return Err(ProtocolError::NoResource);
                }
                self.phase = Phase::Open;
                Event::ChannelCreate { resources, port }
            }
            (Phase::Open, ClientPacket::Data(bytes)) => Event::Data(bytes),
            (Phase::Open, ClientPacket::CloseChannel { status }) => {
                self.phase = Phase::Closed;
                Event::Close { status }
            }
            (Phase::Closed, ClientPacket::CloseChannelResponse { .. }) => Event::CloseAcknowledged,
            // A client may still be sending data the gateway's close crossed.
            (Phase::Closed, ClientPacket::Data(_) | ClientPacket::CloseChannel { .. }) => Event::Keepalive,
            (phase, ClientPacket::Keepalive) if phase != Phase::Handshake => Event::Keepalive,
            (phase, p) => return Err(out_of_order(&p, phase)),
        };
        Ok(event)
    }
}

#[cfg(test)]
#[path = "connection/tests.rs"]
mod tests;
