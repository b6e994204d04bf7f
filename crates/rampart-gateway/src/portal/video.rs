//! The graphics pipeline's updates as the desktop page (and a recording, and a watcher) takes
//! them: binary messages led by a rectangle (x, y, width, height: little-endian u16) like
//! the pictures of the bitmap path, then a four-letter command, so the page tells them from
//! a PNG (0x89 'P') or a JPEG (0xFF 0xD8):
//!
//! - `AVC1`: rectangle = the surface's place and size; key (1 byte), 0, n (u16), n screen
//!   rectangles to copy from the decoded picture, then the H.264 access unit (Annex B);
//! - `FILL`: r, g, b, 0, n (u16), n rectangles;
//! - `COPY`: rectangle = the source; n (u16), n points (x, y) it is copied to;
//! - `CPUT`: rectangle = the source, kept in cache slot (u16); `CGET`: slot (u16), n (u16),
//!   n points it is drawn at; `CDEL`: slot (u16) forgotten;
//! - `RSET`: rectangle = the new screen (blank).
//!
//! Pictures (codecs a browser cannot decode, decoded by the gateway) go as the bitmap path's.

use bytes::{BufMut, Bytes, BytesMut};
use rampart_rdp::{GfxUpdate, Rect};

/// One update as the page takes it, and whether a decoder can start there (an IDR picture).
pub(crate) fn message(update: &GfxUpdate) -> (Bytes, bool) {
    let mut out = BytesMut::new();
    let rect = |out: &mut BytesMut, r: Rect| {
        for v in [r.x, r.y, r.width, r.height] {
            out.put_u16_le(v);
        }
    };
    let points = |out: &mut BytesMut, to: &[(u16, u16)]| {
        out.put_u16_le(u16::try_from(to.len()).unwrap_or(u16::MAX));
        for &(x, y) in to.iter().take(usize::from(u16::MAX)) {
            out.put_u16_le(x);
            out.put_u16_le(y);
        }
    };
    let none = Rect { x: 0, y: 0, width: 0, height: 0 };
    let mut key = false;
    match update {
        GfxUpdate::Reset { width, height } => {
            rect(&mut out, Rect { x: 0, y: 0, width: *width, height: *height });
            out.put_slice(b"RSET");
        }
        GfxUpdate::Video { origin, size, regions, data, key: idr } => {
            key = *idr;
            rect(&mut out, Rect { x: origin.0, y: origin.1, width: size.0, height: size.1 });
            out.put_slice(b"AVC1");
            out.put_u8(u8::from(*idr));
            out.put_u8(0);
            out.put_u16_le(u16::try_from(regions.len()).unwrap_or(u16::MAX));
            for r in regions.iter().take(usize::from(u16::MAX)) {
                rect(&mut out, *r);
            }
            out.put_slice(data);
        }
        GfxUpdate::Fill { rgb, rects } => {
            rect(&mut out, none);
            out.put_slice(b"FILL");
            out.put_slice(&[rgb[0], rgb[1], rgb[2], 0]);
            out.put_u16_le(u16::try_from(rects.len()).unwrap_or(u16::MAX));
            for r in rects.iter().take(usize::from(u16::MAX)) {
                rect(&mut out, *r);
            }
        }
        GfxUpdate::Copy { source, to } => {
            rect(&mut out, *source);
            out.put_slice(b"COPY");
            points(&mut out, to);
        }
        GfxUpdate::ToCache { slot, source } => {
            rect(&mut out, *source);
            out.put_slice(b"CPUT");
            out.put_u16_le(*slot);
        }
        GfxUpdate::FromCache { slot, to } => {
            rect(&mut out, none);
            out.put_slice(b"CGET");
            out.put_u16_le(*slot);
            points(&mut out, to);
        }
        GfxUpdate::Evict { slot } => {
            rect(&mut out, none);
            out.put_slice(b"CDEL");
            out.put_u16_le(*slot);
        }
        GfxUpdate::Picture { rect: r, image } => {
            rect(&mut out, *r);
            out.put_slice(image);
        }
    }
    (out.freeze(), key)
}

/// Everything sent since the last IDR picture, so a watcher who joins (or falls behind) can
/// be brought to the present: H.264 pictures only make sense after the key one before them.
/// The desktop's loop adds to it and sends to the watchers under one lock, so a watcher who
/// copies it and subscribes under that lock gets every message once.
#[derive(Default)]
pub(crate) struct SinceKey {
    /// The screen's last reset (its size), which comes before any key picture.
    reset: Option<Bytes>,
    messages: Vec<Bytes>,
    bytes: usize,
    /// Over the limits since the last key: nothing to replay until the next one.
    overflowed: bool,
    /// Whether the desktop's server draws through the graphics pipeline (else pictures, and
    /// a watcher gets a whole picture of the screen instead of a replay).
    pub(crate) video: bool,
}

/// Kept at most, per desktop (an IDR every few seconds is usual; x264's default is every 250
/// pictures; an office desktop's pictures between are a few KB each).
const MAX_MESSAGES: usize = 512;
const MAX_BYTES: usize = 16 << 20;

impl SinceKey {
    pub(crate) fn push(&mut self, message: &Bytes, key: bool, reset: bool) {
        if reset {
            self.reset = Some(message.clone());
            self.messages.clear();
            self.bytes = 0;
            return;
        }
        if key {
            self.messages.clear();
            self.bytes = 0;
            self.overflowed = false;
        }
        if self.overflowed {
            return;
        }
        if self.messages.len() >= MAX_MESSAGES || self.bytes + message.len() > MAX_BYTES {
            self.messages.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += message.len();
        self.messages.push(message.clone());
    }

    /// What brings a decoder to the present: the screen's reset, then everything from the
    /// last key picture. Without a key picture kept, only the reset (the watcher's page
    /// then waits for the next key picture).
    pub(crate) fn replay(&self) -> Vec<Bytes> {
        self.reset.iter().chain(&self.messages).cloned().collect()
    }
}

/// A desktop's replay, shared with its watchers.
pub(crate) type SharedSinceKey = std::sync::Arc<std::sync::Mutex<SinceKey>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn video(key: bool, len: usize) -> GfxUpdate {
        let rect = Rect { x: 0, y: 0, width: 16, height: 16 };
        GfxUpdate::Video { origin: (0, 0), size: (16, 16), regions: vec![rect], data: vec![7; len], key }
    }

    #[test]
    fn messages_carry_their_command_after_the_rectangle() {
        let (bytes, key) = message(&video(true, 3));
        assert!(key);
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 16, 0, 16, 0]);
        assert_eq!(&bytes[8..12], b"AVC1");
        assert_eq!(&bytes[12..16], &[1, 0, 1, 0]);
        assert_eq!(&bytes[16..24], &[0, 0, 0, 0, 16, 0, 16, 0]);
        assert_eq!(&bytes[24..], &[7, 7, 7]);
        let (fill, key) = message(&GfxUpdate::Fill { rgb: [1, 2, 3], rects: vec![] });
        assert!(!key);
        assert_eq!(&fill[8..], b"FILL\x01\x02\x03\x00\x00\x00");
    }

    #[test]
    fn a_replay_starts_at_the_last_key_and_gives_up_when_too_long() {
        let mut since = SinceKey::default();
        let (delta, _) = message(&video(false, 1));
        let (key, _) = message(&video(true, 1));
        let (reset, _) = message(&GfxUpdate::Reset { width: 16, height: 16 });
        since.push(&reset, false, true);
        since.push(&delta, false, false);
        since.push(&key, true, false);
        since.push(&delta, false, false);
        assert_eq!(since.replay(), vec![reset.clone(), key.clone(), delta.clone()]);
        for _ in 0..MAX_MESSAGES {
            since.push(&delta, false, false);
        }
        assert_eq!(
            since.replay(),
            vec![reset.clone()],
            "no partial replay: a decoder could not start from it"
        );
        since.push(&key, true, false);
        assert_eq!(since.replay(), vec![reset, key]);
    }
}
