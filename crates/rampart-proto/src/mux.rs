//! Protocol v3's frames: every relayed TCP connection is a numbered stream of one TLS
//! connection per tunnel (an HTTP/1.1 upgrade to [`UPGRADE`]), as in v2, but framed by Rampart
//! itself so that a stream's own task can read its socket and write frames, and the
//! connection's reader can write a frame's bytes straight into the stream's socket: one task
//! hand-off per direction, as in v1, instead of HTTP/2's two (see `docs/tunnel-protocol.md`).
//!
//! A frame is a 9-byte header, `kind: u8, stream: u32, length: u32` (big-endian), and
//! `length` bytes of payload. Sans I/O: [`Frame::encode`] appends to a buffer and
//! [`decode`] takes one frame off the front of one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::tunnel::StreamEnd;

/// `Upgrade:` token of the v3 connection (`GET` [`MUX_PATH`](crate::tunnel::MUX_PATH)).
pub const UPGRADE: &str = "rampart-tunnel.v3";
/// The gateway's error code for a request to the v3 endpoint that arrived without its upgrade
/// (a proxy in between dropped the `Upgrade` header): the client falls back to v2.
pub const NOT_AN_UPGRADE: &str = "NotUpgrade";
/// Bytes before every payload.
pub const HEADER_LEN: usize = 9;
/// Largest payload a receiver accepts; senders send at most
/// [`DATA_CHUNK`](crate::tunnel::DATA_CHUNK) of data per frame.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Bytes a sender may have in flight per stream before the receiver's [`Frame::Window`]
/// returns credit: it bounds what one stream can make its receiver buffer when the receiving
/// socket is slow, and keeps several chunks in flight for a bulk transfer.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Longest reason carried in an [`Frame::End`] (bytes).
pub const MAX_REASON: usize = 200;

mod kind {
    pub const DATA: u8 = 0;
    pub const OPEN: u8 = 1;
    pub const OPENED: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const END: u8 = 4;
    pub const WINDOW: u8 = 5;
    pub const PING: u8 = 6;
    pub const PONG: u8 = 7;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes of the stream's TCP connection, in order.
    Data {
        stream: u32,
        data: Bytes,
    },
    /// Client → gateway: a new connection, admitted with this tunnel token.
    Open {
        stream: u32,
        token: String,
    },
    /// Gateway → client: admitted (policy, dial, durable open record); data may flow.
    Opened {
        stream: u32,
    },
    /// Gateway → client: not admitted; the HTTP status and JSON error body the other
    /// protocols would have answered.
    Refused {
        stream: u32,
        status: u16,
        body: Bytes,
    },
    /// The sender's side of the stream ended: `Completed` is TCP half-close (the other
    /// direction goes on), anything else ends the whole stream with `reason`.
    End {
        stream: u32,
        end: StreamEnd,
        reason: String,
    },
    /// The receiver wrote `increment` more bytes of the stream to its socket: the sender may
    /// send that many more.
    Window {
        stream: u32,
        increment: u32,
    },
    /// Keep-alive, for the connection (stream 0); answered with a `Pong` of the same value.
    Ping {
        value: u64,
    },
    Pong {
        value: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("a frame of {0} bytes is larger than the {MAX_PAYLOAD} allowed")]
    TooLarge(usize),
    #[error("malformed {kind} frame: {detail}")]
    Malformed { kind: &'static str, detail: &'static str },
}

impl Frame {
    /// The stream a frame belongs to (0 for the connection's own frames).
    pub fn stream(&self) -> u32 {
        match self {
            Frame::Data { stream, .. }
            | Frame::Open { stream, .. }
            | Frame::Opened { stream }
            | Frame::Refused { stream, .. }
            | Frame::End { stream, .. }
            | Frame::Window { stream, .. } => *stream,
            Frame::Ping { .. } | Frame::Pong { .. } => 0,
        }
    }

    /// Appends the frame, header and payload, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Data { stream, data } => {
                put_header(out, kind::DATA, *stream, data.len());
                out.put_slice(data);
            }
            Frame::Open { stream, token } => {
                put_header(out, kind::OPEN, *stream, token.len());
                out.put_slice(token.as_bytes());
            }
            Frame::Opened { stream } => put_header(out, kind::OPENED, *stream, 0),
            Frame::Refused { stream, status, body } => {
                put_header(out, kind::REFUSED, *stream, 2 + body.len());
                out.put_u16(*status);
                out.put_slice(body);
            }
            Frame::End { stream, end, reason } => {
                let reason = truncated(reason);
                put_header(out, kind::END, *stream, 1 + reason.len());
                out.put_u8(end_code(*end));
                out.put_slice(reason.as_bytes());
            }
            Frame::Window { stream, increment } => {
                put_header(out, kind::WINDOW, *stream, 4);
                out.put_u32(*increment);
            }
            Frame::Ping { value } => {
                put_header(out, kind::PING, 0, 8);
                out.put_u64(*value);
            }
            Frame::Pong { value } => {
                put_header(out, kind::PONG, 0, 8);
                out.put_u64(*value);
            }
        }
    }
}

/// Writes a data frame's header in front of data already in `buf` (the sender reads its
/// socket into the room left by [`data_buffer`], so the payload is never copied).
pub fn seal_data(buf: &mut BytesMut, stream: u32) {
    let len = buf.len().saturating_sub(HEADER_LEN);
    let mut header = [0u8; HEADER_LEN];
    header[0] = kind::DATA;
    header[1..5].copy_from_slice(&stream.to_be_bytes());
    header[5..9].copy_from_slice(&(len as u32).to_be_bytes());
    buf[..HEADER_LEN].copy_from_slice(&header);
}

/// An empty buffer with room for a data frame's header (zeros, filled by [`seal_data`]) and
/// `capacity` bytes of payload after it.
pub fn data_buffer(capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + capacity);
    buf.put_bytes(0, HEADER_LEN);
    buf
}

fn put_header(out: &mut BytesMut, kind: u8, stream: u32, len: usize) {
    out.reserve(HEADER_LEN + len);
    out.put_u8(kind);
    out.put_u32(stream);
    out.put_u32(len as u32);
}

fn truncated(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn end_code(end: StreamEnd) -> u8 {
    match end {
        StreamEnd::Completed => 0,
        StreamEnd::SocketError => 1,
        StreamEnd::EndedByGateway => 2,
    }
}

/// How many bytes the frame at the front of `buf` needs in all, once its header is there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    Ok(Some(HEADER_LEN + len))
}

/// Takes one whole frame off the front of `buf`; `None` until all of it has arrived. Data
/// payloads are split off `buf` without a copy.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    let Some(total) = frame_len(buf)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    let kind = buf[0];
    let stream = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let mut frame = buf.split_to(total);
    frame.advance(HEADER_LEN);
    let malformed = |kind, detail| FrameError::Malformed { kind, detail };
    let text = |bytes: &[u8], kind| {
        std::str::from_utf8(bytes).map(str::to_string).map_err(|_| malformed(kind, "text is not UTF-8"))
    };
    let frame = match kind {
        kind::DATA => Frame::Data { stream, data: frame.freeze() },
        kind::OPEN => Frame::Open { stream, token: text(&frame, "open")? },
        kind::OPENED => Frame::Opened { stream },
        kind::REFUSED => {
            if frame.len() < 2 {
                return Err(malformed("refused", "no status"));
            }
            let status = frame.get_u16();
            Frame::Refused { stream, status, body: frame.freeze() }
        }
        kind::END => {
            if frame.is_empty() {
                return Err(malformed("end", "no end code"));
            }
            let end = match frame.get_u8() {
                0 => StreamEnd::Completed,
                1 => StreamEnd::SocketError,
                2 => StreamEnd::EndedByGateway,
                _ => return Err(malformed("end", "unknown end code")),
            };
            Frame::End { stream, end, reason: String::from_utf8_lossy(&frame).into_owned() }
        }
        kind::WINDOW => {
            if frame.len() != 4 {
                return Err(malformed("window", "the increment is not 4 bytes"));
            }
            Frame::Window { stream, increment: frame.get_u32() }
        }
        kind::PING | kind::PONG => {
            if frame.len() != 8 {
                return Err(malformed("ping", "the value is not 8 bytes"));
            }
            let value = frame.get_u64();
            if kind == kind::PING { Frame::Ping { value } } else { Frame::Pong { value } }
        }
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::Data { stream: 7, data: Bytes::from_static(b"hello") },
            Frame::Open { stream: 1, token: "eyJ.token".into() },
            Frame::Opened { stream: 1 },
            Frame::Refused { stream: 3, status: 403, body: Bytes::from_static(b"{\"error\":{}}") },
            Frame::End { stream: 5, end: StreamEnd::EndedByGateway, reason: "disconnected by admin".into() },
            Frame::End { stream: 5, end: StreamEnd::Completed, reason: String::new() },
            Frame::Window { stream: 9, increment: 1 << 20 },
            Frame::Ping { value: 42 },
            Frame::Pong { value: u64::MAX },
        ]
    }

    #[test]
    fn every_frame_comes_back_as_sent_even_when_it_arrives_a_byte_at_a_time() {
        let mut wire = BytesMut::new();
        for f in all_kinds() {
            f.encode(&mut wire);
        }
        let mut arriving = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            arriving.put_u8(*byte);
            while let Some(f) = decode(&mut arriving).expect("valid frames") {
                got.push(f);
            }
        }
        assert_eq!(got, all_kinds());
        assert!(arriving.is_empty());
    }

    #[test]
    fn a_data_buffer_sealed_in_place_is_a_data_frame() {
        let mut buf = data_buffer(16);
        buf.put_slice(b"bytes read from a socket");
        seal_data(&mut buf, 77);
        let frame = decode(&mut buf).expect("valid").expect("whole");
        assert_eq!(frame, Frame::Data { stream: 77, data: Bytes::from_static(b"bytes read from a socket") });
    }

    #[test]
    fn bad_frames_are_errors_naming_what_is_wrong_not_panics() {
        let mut too_large = BytesMut::from(&[0u8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode(&mut too_large), Err(FrameError::TooLarge(u32::MAX as usize)));
        let mut unknown = BytesMut::from(&[99u8, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut unknown), Err(FrameError::UnknownKind(99)));
        let mut short_window = BytesMut::from(&[kind::WINDOW, 0, 0, 0, 1, 0, 0, 0, 1, 7][..]);
        assert!(matches!(decode(&mut short_window), Err(FrameError::Malformed { kind: "window", .. })));
        let mut bad_end = BytesMut::from(&[kind::END, 0, 0, 0, 1, 0, 0, 0, 1, 9][..]);
        assert!(matches!(decode(&mut bad_end), Err(FrameError::Malformed { kind: "end", .. })));
        let mut bad_token = BytesMut::from(&[kind::OPEN, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xfe][..]);
        assert!(matches!(decode(&mut bad_token), Err(FrameError::Malformed { kind: "open", .. })));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(MAX_REASON);
        let mut wire = BytesMut::new();
        Frame::End { stream: 1, end: StreamEnd::SocketError, reason }.encode(&mut wire);
        let Some(Frame::End { reason, .. }) = decode(&mut wire).expect("valid") else {
            panic!("not an end frame");
        };
        assert_eq!(reason.len(), MAX_REASON);
    }
}
