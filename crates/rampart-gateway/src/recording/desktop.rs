//! A browser desktop's recording, "rampart-desktop-v1": the image rectangles the gateway
//! already encodes for the browser (each a delta: an 8-byte header x, y, width, height as
//! little-endian u16, then a PNG or JPEG), with a whole-screen keyframe at the start and every
//! few seconds so a player can seek, the user's input events, and markers. Compact where one
//! image per frame would not be: only changed parts are stored, already compressed.
//!
//! Layout: the line `RAMPART-DESKTOP 1\n`, a JSON header line, then records of
//! `kind: u8, milliseconds since the start: u32 LE, length: u32 LE, payload`.

use chrono::Utc;

pub(super) const FORMAT: &str = "rampart-desktop-v1";
pub(crate) const MAGIC: &[u8] = b"RAMPART-DESKTOP 1\n";

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Changed rectangles, drawn over what is there.
    Frame = 1,
    /// The whole screen: where playing from any moment starts.
    Keyframe = 2,
    /// An input event from the browser (JSON).
    Input = 3,
    /// A marker (who joined, who left).
    Marker = 4,
}

pub(super) fn header(title: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let header = serde_json::json!({ "version": 1, "timestamp": Utc::now().timestamp(), "title": title });
    out.extend_from_slice(format!("{header}\n").as_bytes());
    out
}

pub(super) fn record(kind: Kind, t: f64, payload: &[u8]) -> Vec<u8> {
    let ms = (t * 1000.0).clamp(0.0, f64::from(u32::MAX)) as u32;
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(9 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&ms.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload[..len as usize]);
    out
}

/// A record read back: kind, milliseconds since the start, payload.
pub(crate) type Record<'a> = (u8, u32, &'a [u8]);

/// The records of a recording's bytes (after its two header lines): kind, milliseconds,
/// payload. Stops at a truncated record (the end of a recording cut by a crash).
pub(crate) fn records(bytes: &[u8]) -> Result<Vec<Record<'_>>, &'static str> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a rampart-desktop recording")?;
    let header_end = rest.iter().position(|b| *b == b'\n').ok_or("no header")?;
    let mut rest = &rest[header_end + 1..];
    let mut out = Vec::new();
    while rest.len() >= 9 {
        let kind = rest[0];
        let ms = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = u32::from_le_bytes([rest[5], rest[6], rest[7], rest[8]]) as usize;
        let Some(payload) = rest.get(9..9 + len) else { break };
        out.push((kind, ms, payload));
        rest = &rest[9 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_cut_end_is_dropped() {
        let mut bytes = header("ann → win1");
        bytes.extend(record(Kind::Keyframe, 0.0, b"\0\0\0\0\x10\0\x10\0png"));
        bytes.extend(record(Kind::Input, 1.25, br#"{"type":"key"}"#));
        let whole = bytes.len();
        bytes.extend(record(Kind::Frame, 2.0, b"12345678abc"));
        let read = records(&bytes).expect("records");
        assert_eq!(read.len(), 3);
        assert_eq!((read[1].0, read[1].1), (Kind::Input as u8, 1250));
        let cut = records(&bytes[..whole + 12]).expect("cut");
        assert_eq!(cut.len(), 2, "a record cut short by a crash is left out");
        assert!(records(b"{\"version\": 2}\n").is_err());
    }
}
