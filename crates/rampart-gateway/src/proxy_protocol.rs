//! The PROXY protocol (HAProxy's, v1 text and v2 binary) in front of TLS, so that behind a
//! layer-4 balancer the audit log keeps the user's own address. Headers are parsed by the
//! `ppp` crate; this module only reads exactly the header's bytes off the socket (never into
//! the TLS handshake behind it) and decides whom to believe:
//! - a peer in `--trusted-proxies` must send a header (its own address is the balancer's);
//! - anyone else must not: a header from an untrusted peer is refused, since believing it
//!   would let any client write any address into the audit log;
//! - with the PROXY protocol off, nothing is read.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// v2's 12-byte signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// v1's longest header (TCP6 with the longest addresses), CRLF included.
const V1_MAX: usize = 107;
/// The longest v2 header accepted: the address block and a few TLVs.
const V2_MAX: usize = 16 + 512;
/// How long a trusted balancer may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Whom the gateway believes about client addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPolicy {
    pub enabled: bool,
    pub trusted: Vec<IpNet>,
}

impl ProxyPolicy {
    pub fn trusts(&self, peer: SocketAddr) -> bool {
        self.enabled && self.trusted.iter().any(|n| n.contains(&peer.ip()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("a PROXY protocol header from {peer}, which is not a trusted proxy (--trusted-proxies)")]
    Untrusted { peer: SocketAddr },
    #[error("the trusted proxy {peer} sent no PROXY protocol header")]
    Missing { peer: SocketAddr },
    #[error("a malformed PROXY protocol header from {peer}: {detail}")]
    Malformed { peer: SocketAddr, detail: String },
    #[error("no PROXY protocol header from {peer} within {HEADER_TIMEOUT:?}: {detail}")]
    Unread { peer: SocketAddr, detail: String },
}

impl ProxyHeaderError {
    /// A stable code for the audit record.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyHeaderError::Untrusted { .. } => "UntrustedProxyHeader",
            ProxyHeaderError::Missing { .. } => "MissingProxyHeader",
            ProxyHeaderError::Malformed { .. } => "MalformedProxyHeader",
            ProxyHeaderError::Unread { .. } => "ProxyHeaderNotRead",
        }
    }
}

/// The client's address for a connection from `peer`: read from its PROXY header when `peer`
/// is a trusted proxy, `peer` itself otherwise (refused if it sends a header anyway).
pub async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    policy: &ProxyPolicy,
) -> Result<SocketAddr, ProxyHeaderError> {
    if !policy.enabled {
        return Ok(peer);
    }
    if !policy.trusts(peer) {
        // A TLS client's first byte is 0x16; a PROXY header starts with 'P' (v1) or CR (v2).
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await;
        return match peeked {
            Ok(Ok(1)) if first[0] == b'P' || first[0] == b'\r' => Err(ProxyHeaderError::Untrusted { peer }),
            _ => Ok(peer),
        };
    }
    let header = tokio::time::timeout(HEADER_TIMEOUT, read_header(stream))
        .await
        .map_err(|_| ProxyHeaderError::Unread { peer, detail: "timed out".into() })?
        .map_err(|e| match e {
            ReadError::NotAHeader => ProxyHeaderError::Missing { peer },
            ReadError::Io(detail) => ProxyHeaderError::Unread { peer, detail },
            ReadError::Malformed(detail) => ProxyHeaderError::Malformed { peer, detail },
        })?;
    parse(&header)
        .map(|found| found.unwrap_or(peer))
        .map_err(|detail| ProxyHeaderError::Malformed { peer, detail })
}

enum ReadError {
    NotAHeader,
    Io(String),
    Malformed(String),
}

/// Exactly the header's bytes: v2 by its length field, v1 up to its CRLF.
async fn read_header(stream: &mut TcpStream) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(e.to_string());
    let mut head = vec![0u8; 16];
    stream.read_exact(&mut head[..6]).await.map_err(io)?;
    if head[..6] == V2_SIGNATURE[..6] {
        stream.read_exact(&mut head[6..16]).await.map_err(io)?;
        let total = header_len(&head).map_err(ReadError::Malformed)?;
        head.resize(total, 0);
        stream.read_exact(&mut head[16..]).await.map_err(io)?;
        return Ok(head);
    }
    if &head[..6] != b"PROXY " {
        return Err(ReadError::NotAHeader);
    }
    head.truncate(6);
    while !head.ends_with(b"\r\n") {
        if head.len() >= V1_MAX {
            return Err(ReadError::Malformed(format!("a v1 header longer than {V1_MAX} bytes")));
        }
        head.push(stream.read_u8().await.map_err(io)?);
    }
    Ok(head)
}

/// The whole length of a v2 header from its first 16 bytes.
pub fn header_len(first16: &[u8]) -> Result<usize, String> {
    if first16.len() < 16 || first16[..12] != V2_SIGNATURE[..] {
        return Err("not a v2 header".into());
    }
    let total = 16 + usize::from(u16::from_be_bytes([first16[14], first16[15]]));
    if total > V2_MAX {
        return Err(format!("a v2 header of {total} bytes (at most {V2_MAX})"));
    }
    Ok(total)
}

/// The client address a whole header names; `None` for a header that names none (v2 LOCAL,
/// as balancers' health checks send, or v1 UNKNOWN).
pub fn parse(header: &[u8]) -> Result<Option<SocketAddr>, String> {
    match ppp::HeaderResult::parse(header) {
        ppp::HeaderResult::V2(Ok(h)) => {
            if h.len() != header.len() {
                return Err("bytes after the v2 header".into());
            }
            if h.command == ppp::v2::Command::Local {
                return Ok(None);
            }
            match h.addresses {
                ppp::v2::Addresses::IPv4(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
                ppp::v2::Addresses::IPv6(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
                ppp::v2::Addresses::Unspecified => Ok(None),
                ppp::v2::Addresses::Unix(_) => Err("a UNIX-socket address is no client address".into()),
            }
        }
        ppp::HeaderResult::V1(Ok(h)) => match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
            ppp::v1::Addresses::Tcp6(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
            ppp::v1::Addresses::Unknown => Ok(None),
        },
        ppp::HeaderResult::V2(Err(e)) => Err(format!("v2: {e}")),
        ppp::HeaderResult::V1(Err(e)) => Err(format!("v1: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 50123 8443\r\n";
        assert_eq!(parse(v1), Ok(Some("203.0.113.7:50123".parse().expect("addr"))));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(None));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 7, 127, 0, 0, 1, 0xC3, 0xCB, 0x20, 0xFB]);
        assert_eq!(header_len(&v2), Ok(28));
        assert_eq!(parse(&v2), Ok(Some("203.0.113.7:50123".parse().expect("addr"))));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local), Ok(None), "a health check's LOCAL header names nobody");
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        assert!(parse(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n").is_err());
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert!(header_len(&huge).is_err_and(|e| e.contains("at most")));
        assert!(header_len(b"short").is_err());
    }

    #[test]
    fn only_trusted_networks_are_believed() {
        let policy = ProxyPolicy { enabled: true, trusted: vec!["127.0.0.9/32".parse().expect("net")] };
        assert!(policy.trusts("127.0.0.9:1000".parse().expect("addr")));
        assert!(!policy.trusts("127.0.0.1:1000".parse().expect("addr")));
        let off = ProxyPolicy { enabled: false, ..policy };
        assert!(!off.trusts("127.0.0.9:1000".parse().expect("addr")));
    }
}
