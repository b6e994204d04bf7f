//! The Remote Desktop Gateway protocol ([MS-TSGU]) as its HTTP transport carries it, from
//! the gateway's side, with no I/O: [`packet`] decodes what a client sends and encodes the
//! answers, [`Connection`] holds the order a client must follow (handshake, tunnel, tunnel
//! authorization, channel, then data) and turns bytes into [`Event`]s.
//!
//! The same packets travel over a WebSocket (FreeRDP, recent mstsc) or over the legacy pair
//! of long HTTP requests (`RDG_OUT_DATA` down, `RDG_IN_DATA` up); framing by either carrier
//! is the caller's, so both feed [`Connection::receive`] with whatever bytes arrive.
//!
//! [MS-TSGU]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-tsgu/

pub mod packet;

mod connection;

pub use connection::{Connection, Event, Phase, ProtocolError};
pub use packet::{ClientPacket, DecodeError};

/// HRESULTs a gateway answers with (MS-TSGU 2.2.6), as clients show them.
pub mod status {
    pub const OK: u32 = 0;
    /// Something failed inside the gateway.
    pub const INTERNAL_ERROR: u32 = 0x8007_59D8;
    /// Resource authorization refused the requested computer (our admission said no).
    pub const RAP_ACCESS_DENIED: u32 = 0x8007_59DA;
    /// The gateway could not reach the computer.
    pub const CONNECT_FAILED: u32 = 0x8007_59DD;
    /// The client's authentication cookie (a Rampart token) was refused.
    pub const COOKIE_ACCESS_DENIED: u32 = 0x8007_59F8;
    /// The client offered no authentication the gateway takes.
    pub const UNSUPPORTED_AUTHENTICATION: u32 = 0x8007_59F9;
    /// The session was ended at the gateway (disconnected by an operator, revoked, drained).
    pub const CONNECTION_ABORTED: u32 = 0x0000_04D4;
    /// The session reached its bastion's time limit.
    pub const SESSION_TIMEOUT: u32 = 0x0000_59F6;
}
