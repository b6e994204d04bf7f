//! The tunnel protocol (see `docs/tunnel-protocol.md`).
//!
//! 1. `POST /api/tunnels` with a [`TunnelRequest`] and the user's access token; the gateway
//!    checks the policy and answers a [`TunnelGrant`]: a short-lived token bound to the user,
//!    bastion, target and port.
//! 2. For every TCP connection: `GET /api/tunnels/connect` as a WebSocket upgrade with
//!    `Authorization: Bearer <tunnel token>` and subprotocol [`SUBPROTOCOL`]. The gateway
//!    checks the policy again with the current settings, dials the target, and only then
//!    answers 101; a refusal or a failed dial is an HTTP error with an [`ErrorBody`](crate::ErrorBody).
//! 3. Binary messages carry TCP bytes. Text messages are [`Control`] messages. Close codes
//!    are in [`close_code`].

use serde::{Deserialize, Serialize};

/// Path of the grant request (POST).
pub const GRANT_PATH: &str = "/api/tunnels";
/// Path of the WebSocket upgrade, one per relayed TCP connection.
pub const CONNECT_PATH: &str = "/api/tunnels/connect";
/// Path of protocol v2: every relayed TCP connection is one HTTP/2 stream (`POST`) of one TLS
/// connection per tunnel, so a new connection costs no TCP, TLS or WebSocket handshake.
pub const STREAM_PATH: &str = "/api/tunnels/streams";
/// Path of protocol v3: one TLS connection per tunnel upgraded (HTTP/1.1 `Upgrade:`
/// [`crate::mux::UPGRADE`]) to Rampart's own stream framing ([`crate::mux`]).
pub const MUX_PATH: &str = "/api/tunnels/mux";
/// Trailer of a v2 request or response body: how that side of the stream ended ([`StreamEnd`]).
pub const END_TRAILER: &str = "rampart-tunnel-end";
/// Trailer of a v2 body: why, for ends other than `completed`.
pub const REASON_TRAILER: &str = "rampart-tunnel-reason";
/// WebSocket subprotocol; the version changes if the message set changes.
pub const SUBPROTOCOL: &str = "rampart-tunnel.v1";
/// Largest binary message either side sends (bytes): large messages mean fewer frames and
/// wake-ups per byte (measured: 64 KiB to 256 KiB lowered CPU per GiB). Receivers accept up to
/// [`MAX_MESSAGE_SIZE`].
pub const DATA_CHUNK: usize = 256 * 1024;
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelRequest {
    /// The bastion's resource ID.
    pub bastion_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource_id: Option<String>,
    pub resource_port: u16,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelGrant {
    pub tunnel_id: String,
    pub tunnel_token: String,
    /// Unix time (seconds) after which the token no longer opens connections; the client asks
    /// for a new grant before then.
    pub expires_at: i64,
    /// The authorized target, `ip:port`.
    pub target: String,
}

impl std::fmt::Debug for TunnelGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelGrant")
            .field("tunnel_id", &self.tunnel_id)
            .field("expires_at", &self.expires_at)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Control messages, sent as WebSocket text messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The sender will send no more data (TCP half-close: it read EOF from its socket). The
    /// receiver shuts down the write side of its socket and keeps relaying the other way.
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tunnel control message '{0}'")]
pub struct UnknownControl(pub String);

impl Control {
    pub fn encode(self) -> &'static str {
        match self {
            Control::Eof => "eof",
        }
    }

    pub fn decode(text: &str) -> Result<Control, UnknownControl> {
        match text {
            "eof" => Ok(Control::Eof),
            other => Err(UnknownControl(other.chars().take(64).collect())),
        }
    }
}

/// WebSocket close codes used by the gateway (4000-4999 is the private range).
pub mod close_code {
    /// Both sides finished normally.
    pub const NORMAL: u16 = 1000;
    /// The connection to the target broke (reset, I/O error).
    pub const TARGET_ERROR: u16 = 4000;
    /// The gateway ended the connection (policy change, shutdown).
    pub const ENDED_BY_GATEWAY: u16 = 4001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
}

/// How one side of a v2 stream ended, sent as the [`END_TRAILER`] trailer of its body. Both
/// bodies end with one, so a body that ends without it was cut off (its connection closed),
/// never mistaken for a TCP half-close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The sender's socket reached EOF (TCP half-close); the other direction may go on.
    Completed,
    /// The socket at the sender's end broke (reset, I/O error).
    SocketError,
    /// The gateway ended the connection (disconnect, policy change, shutdown).
    EndedByGateway,
}

impl StreamEnd {
    pub fn encode(self) -> &'static str {
        match self {
            StreamEnd::Completed => "completed",
            StreamEnd::SocketError => "socket-error",
            StreamEnd::EndedByGateway => "ended-by-gateway",
        }
    }

    pub fn decode(text: &str) -> Option<StreamEnd> {
        match text {
            "completed" => Some(StreamEnd::Completed),
            "socket-error" => Some(StreamEnd::SocketError),
            "ended-by-gateway" => Some(StreamEnd::EndedByGateway),
            _ => None,
        }
    }

    /// The v1 close code with the same meaning, so both versions report ends alike.
    pub fn close_code(self) -> u16 {
        match self {
            StreamEnd::Completed => close_code::NORMAL,
            StreamEnd::SocketError => close_code::TARGET_ERROR,
            StreamEnd::EndedByGateway => close_code::ENDED_BY_GATEWAY,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_ends_round_trip() {
        for end in [StreamEnd::Completed, StreamEnd::SocketError, StreamEnd::EndedByGateway] {
            assert_eq!(StreamEnd::decode(end.encode()), Some(end));
        }
        assert_eq!(StreamEnd::decode("exploded"), None);
    }

    use super::*;

    #[test]
    fn control_round_trips_and_rejects_unknown() {
        assert_eq!(Control::decode(Control::Eof.encode()), Ok(Control::Eof));
        assert!(Control::decode("reboot").is_err());
    }

    #[test]
    fn grant_debug_hides_the_token() {
        let g = TunnelGrant {
            tunnel_id: "t".into(),
            tunnel_token: "secret-token".into(),
            expires_at: 0,
            target: "10.0.0.4:22".into(),
        };
        assert!(!format!("{g:?}").contains("secret-token"));
    }
}
