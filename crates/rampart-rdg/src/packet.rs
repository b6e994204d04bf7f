//! MS-TSGU's HTTP transport packets (2.2.10): an 8-byte header (type, reserved, length of
//! the whole packet, little-endian) and a body. Clients send the request packets, decoded
//! here into [`ClientPacket`]; the gateway sends the answers, encoded by the functions below.
//! Every length is checked against the bytes present: malformed input is an error, never a
//! panic or an allocation larger than the packet.

/// Bytes of the header every packet starts with.
pub const HEADER_LEN: usize = 8;
/// The largest packet accepted: a data packet's payload is counted by a 16-bit length.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + 2 + u16::MAX as usize;
/// Most bytes one data packet carries.
pub const MAX_DATA_LEN: usize = u16::MAX as usize;

/// HTTP_PACKET_TYPE (2.2.5.3.3).
pub mod kind {
    pub const HANDSHAKE_REQUEST: u16 = 0x01;
    pub const HANDSHAKE_RESPONSE: u16 = 0x02;
    pub const EXTENDED_AUTH: u16 = 0x03;
    pub const TUNNEL_CREATE: u16 = 0x04;
    pub const TUNNEL_RESPONSE: u16 = 0x05;
    pub const TUNNEL_AUTH: u16 = 0x06;
    pub const TUNNEL_AUTH_RESPONSE: u16 = 0x07;
    pub const CHANNEL_CREATE: u16 = 0x08;
    pub const CHANNEL_RESPONSE: u16 = 0x09;
    pub const DATA: u16 = 0x0A;
    pub const SERVICE_MESSAGE: u16 = 0x0B;
    pub const REAUTH_MESSAGE: u16 = 0x0C;
    pub const KEEPALIVE: u16 = 0x0D;
    pub const CLOSE_CHANNEL: u16 = 0x10;
    pub const CLOSE_CHANNEL_RESPONSE: u16 = 0x11;
}

/// HTTP_EXTENDED_AUTH (2.2.5.3.2): pluggable authentication, a cookie in the tunnel request.
pub const EXTENDED_AUTH_PAA: u16 = 0x02;

const TUNNEL_FIELD_PAA_COOKIE: u16 = 0x1;
const TUNNEL_FIELD_REAUTH: u16 = 0x2;
const TUNNEL_RESPONSE_FIELD_TUNNEL_ID: u16 = 0x1;
const TUNNEL_RESPONSE_FIELD_CAPS: u16 = 0x2;
const TUNNEL_AUTH_RESPONSE_FIELD_REDIR_FLAGS: u16 = 0x1;
const TUNNEL_AUTH_RESPONSE_FIELD_IDLE_TIMEOUT: u16 = 0x2;
const CHANNEL_RESPONSE_FIELD_CHANNEL_ID: u16 = 0x1;
/// HTTP_CAPABILITY_IDLE_TIMEOUT: the gateway tells the client its idle timeout.
pub const CAPABILITY_IDLE_TIMEOUT: u32 = 0x2;
/// HTTP_TUNNEL_REDIR_ENABLE_ALL: the gateway restricts no device redirection itself.
const REDIRECT_ENABLE_ALL: u32 = 0x8000_0000;

/// A packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    /// HTTP_HANDSHAKE_REQUEST_PACKET: the protocol version and the extended authentication
    /// the client will use.
    Handshake {
        version_major: u8,
        version_minor: u8,
        extended_auth: u16,
    },
    /// HTTP_TUNNEL_PACKET: asks for a tunnel, with the PAA cookie when the client has one.
    TunnelCreate {
        capabilities: u32,
        paa_cookie: Option<String>,
        reauth_context: Option<u64>,
    },
    /// HTTP_TUNNEL_AUTH_PACKET: the client's computer name.
    TunnelAuth {
        client_name: String,
    },
    /// HTTP_CHANNEL_PACKET: the computer (names, then alternative names) and port to reach.
    ChannelCreate {
        resources: Vec<String>,
        alternatives: Vec<String>,
        port: u16,
        protocol: u16,
    },
    /// HTTP_DATA_PACKET: bytes for the computer.
    Data(Vec<u8>),
    Keepalive,
    /// HTTP_CLOSE_PACKET: the client closes the channel.
    CloseChannel {
        status: u32,
    },
    /// The client's answer to the gateway's close.
    CloseChannelResponse {
        status: u32,
    },
}

impl ClientPacket {
    /// The packet's name in the specification, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ClientPacket::Handshake { .. } => "handshake request",
            ClientPacket::TunnelCreate { .. } => "tunnel request",
            ClientPacket::TunnelAuth { .. } => "tunnel authorization",
            ClientPacket::ChannelCreate { .. } => "channel request",
            ClientPacket::Data(_) => "data",
            ClientPacket::Keepalive => "keep-alive",
            ClientPacket::CloseChannel { .. } => "close channel",
            ClientPacket::CloseChannelResponse { .. } => "close channel response",
        }
    }
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet length {length} is outside 8..={max}")]
    BadLength { length: u32, max: usize },
    #[error("packet type {0:#06x} is not one a client sends")]
    UnknownType(u16),
    #[error("{packet}: {field} runs past the end of the packet")]
    Truncated { packet: &'static str, field: &'static str },
    #[error("{packet}: {field} is not a UTF-16 string")]
    BadString { packet: &'static str, field: &'static str },
}

/// Reads one packet from the front of `bytes`: `Ok(None)` until the whole packet is there,
/// else the packet and how many bytes it took.
pub fn decode(bytes: &[u8]) -> Result<Option<(ClientPacket, usize)>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Ok(None);
    }
    let ty = u16::from_le_bytes([bytes[0], bytes[1]]);
    let length = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
        return Err(DecodeError::BadLength { length, max: MAX_PACKET_LEN });
    }
    if bytes.len() < len {
        return Ok(None);
    }
    let body = Reader { bytes: &bytes[HEADER_LEN..len], packet: name_of(ty)? };
    Ok(Some((body.packet_of(ty)?, len)))
}

fn name_of(ty: u16) -> Result<&'static str, DecodeError> {
    Ok(match ty {
        kind::HANDSHAKE_REQUEST => "handshake request",
        kind::TUNNEL_CREATE => "tunnel request",
        kind::TUNNEL_AUTH => "tunnel authorization",
        kind::CHANNEL_CREATE => "channel request",
        kind::DATA => "data",
        kind::KEEPALIVE => "keep-alive",
        kind::CLOSE_CHANNEL => "close channel",
        kind::CLOSE_CHANNEL_RESPONSE => "close channel response",
        other => return Err(DecodeError::UnknownType(other)),
    })
}

/// A cursor over one packet's body; every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated { packet: self.packet, field });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A string counted in bytes by a 16-bit length, UTF-16LE, its terminating NULs dropped.
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let n = usize::from(self.u16(field)?);
        let raw = self.take(n, field)?;
        utf16(raw).ok_or(DecodeError::BadString { packet: self.packet, field })
    }

    fn packet_of(mut self, ty: u16) -> Result<ClientPacket, DecodeError> {
        Ok(match ty {
            kind::HANDSHAKE_REQUEST => {
                let version_major = self.u8("versionMajor")?;
                let version_minor = self.u8("versionMinor")?;
                self.u16("clientVersion")?;
                let extended_auth = self.u16("extendedAuthentication")?;
                ClientPacket::Handshake { version_major, version_minor, extended_auth }
            }
            kind::TUNNEL_CREATE => {
                let capabilities = self.u32("capsFlags")?;
                let fields = self.u16("fieldsPresent")?;
                self.u16("reserved")?;
                let reauth_context = if fields & TUNNEL_FIELD_REAUTH != 0 {
                    Some(self.u64("reauthTunnelContext")?)
                } else {
                    None
                };
                let paa_cookie = if fields & TUNNEL_FIELD_PAA_COOKIE != 0 {
                    Some(self.string("PAACookie")?)
                } else {
                    None
                };
                ClientPacket::TunnelCreate { capabilities, paa_cookie, reauth_context }
            }
            kind::TUNNEL_AUTH => {
                self.u16("fieldsPresent")?;
                let client_name = self.string("clientName")?;
                ClientPacket::TunnelAuth { client_name }
            }
            kind::CHANNEL_CREATE => {
                let count = self.u8("numResources")?;
                let alternative_count = self.u8("numAltResources")?;
                let port = self.u16("port")?;
                let protocol = self.u16("protocol")?;
                let mut resources = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    resources.push(self.string("resourceName")?);
                }
                let mut alternatives = Vec::with_capacity(usize::from(alternative_count));
                for _ in 0..alternative_count {
                    alternatives.push(self.string("altResourceName")?);
                }
                ClientPacket::ChannelCreate { resources, alternatives, port, protocol }
            }
            kind::DATA => {
                let n = usize::from(self.u16("cbDataLen")?);
                ClientPacket::Data(self.take(n, "data")?.to_vec())
            }
            kind::KEEPALIVE => ClientPacket::Keepalive,
            kind::CLOSE_CHANNEL => ClientPacket::CloseChannel { status: self.u32("statusCode")? },
            _ => ClientPacket::CloseChannelResponse { status: self.u32("statusCode")? },
        })
    }
}

/// UTF-16LE without its terminating NULs; `None` for an odd length or unpaired surrogates.
fn utf16(raw: &[u8]) -> Option<String> {
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let end = units.iter().rposition(|u| *u != 0).map_or(0, |i| i + 1);
    String::from_utf16(&units[..end]).ok()
}

/// A packet of type `ty` around `body`.
fn packet(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    // Bodies built here are at most a data packet's, far below u32::MAX.
    out.extend_from_slice(&u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// HTTP_HANDSHAKE_RESPONSE_PACKET: version 1.0 and the extended authentication accepted.
pub fn handshake_response(status: u32, extended_auth: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(10);
    b.extend_from_slice(&status.to_le_bytes());
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&extended_auth.to_le_bytes());
    packet(kind::HANDSHAKE_RESPONSE, &b)
}

/// HTTP_TUNNEL_RESPONSE: the tunnel's id and the gateway's capabilities when it is granted.
pub fn tunnel_response(status: u32, tunnel_id: Option<u32>, capabilities: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(18);
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&status.to_le_bytes());
    let fields = match tunnel_id {
        Some(_) => TUNNEL_RESPONSE_FIELD_TUNNEL_ID | TUNNEL_RESPONSE_FIELD_CAPS,
        None => 0,
    };
    b.extend_from_slice(&fields.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    if let Some(id) = tunnel_id {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&capabilities.to_le_bytes());
    }
    packet(kind::TUNNEL_RESPONSE, &b)
}

/// HTTP_TUNNEL_AUTH_RESPONSE: no redirection restricted by the gateway, and the idle
/// timeout in minutes (0: none) when the tunnel is authorized.
pub fn tunnel_auth_response(status: u32, idle_timeout_minutes: Option<u32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&status.to_le_bytes());
    let fields = match idle_timeout_minutes {
        Some(_) => TUNNEL_AUTH_RESPONSE_FIELD_REDIR_FLAGS | TUNNEL_AUTH_RESPONSE_FIELD_IDLE_TIMEOUT,
        None => 0,
    };
    b.extend_from_slice(&fields.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    if let Some(minutes) = idle_timeout_minutes {
        b.extend_from_slice(&REDIRECT_ENABLE_ALL.to_le_bytes());
        b.extend_from_slice(&minutes.to_le_bytes());
    }
    packet(kind::TUNNEL_AUTH_RESPONSE, &b)
}

/// HTTP_CHANNEL_RESPONSE: the channel's id when it is open.
pub fn channel_response(status: u32, channel_id: Option<u32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&status.to_le_bytes());
    let fields = if channel_id.is_some() { CHANNEL_RESPONSE_FIELD_CHANNEL_ID } else { 0 };
    b.extend_from_slice(&fields.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    if let Some(id) = channel_id {
        b.extend_from_slice(&id.to_le_bytes());
    }
    packet(kind::CHANNEL_RESPONSE, &b)
}

/// HTTP_DATA_PACKETs carrying `bytes`, each at most [`MAX_DATA_LEN`], appended to `out`.
pub fn data_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_DATA_LEN) {
        let total = HEADER_LEN + 2 + chunk.len();
        out.reserve(total);
        out.extend_from_slice(&kind::DATA.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

pub fn keepalive() -> Vec<u8> {
    packet(kind::KEEPALIVE, &[])
}

/// HTTP_CLOSE_PACKET from the gateway: the channel ends, with why.
pub fn close_channel(status: u32) -> Vec<u8> {
    packet(kind::CLOSE_CHANNEL, &status.to_le_bytes())
}

/// The gateway's answer to a client's close.
pub fn close_channel_response(status: u32) -> Vec<u8> {
    packet(kind::CLOSE_CHANNEL_RESPONSE, &status.to_le_bytes())
}

/// HTTP_SERVICE_MESSAGE: a line the client shows its user (why the session ends).
pub fn service_message(text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().take(2000).chain(std::iter::once(0)).collect();
    let mut b = Vec::with_capacity(2 + units.len() * 2);
    b.extend_from_slice(&u16::try_from(units.len() * 2).unwrap_or(u16::MAX).to_le_bytes());
    for u in units {
        b.extend_from_slice(&u.to_le_bytes());
    }
    packet(kind::SERVICE_MESSAGE, &b)
}

#[cfg(test)]
#[path = "packet/tests.rs"]
pub(crate) mod tests;
