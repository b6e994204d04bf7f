//! The graphics pipeline (MS-RDPEGFX) passed through to a browser that decodes H.264 itself.
//!
//! The gateway advertises AVC420 and forwards the server's H.264 pictures untouched (the
//! browser decodes them with WebCodecs, on its GPU where it has one), so a full-screen
//! change costs the gateway a copy instead of a decode and a re-encode. What the pipeline
//! sends besides video is kept in order for the browser: solid fills, copies within the
//! screen and through the bitmap cache as drawing commands, and the few codecs a browser
//! cannot decode (planar, ClearCodec, uncompressed) decoded here into RGB pictures.
//!
//! Sans-I/O: a dynamic channel processor IronRDP's session drives; the session drains
//! [`GfxUpdate`]s after each frame.

use std::collections::BTreeMap;

use ironrdp_core::{Decode as _, ReadCursor, impl_as_any};
use ironrdp_dvc::{DvcClientProcessor, DvcMessage, DvcProcessor};
use ironrdp_egfx::pdu::{
    Avc420BitmapStream, CapabilitiesAdvertisePdu, CapabilitiesV81Flags, CapabilitySet, Codec1Type,
    FrameAcknowledgePdu, GfxPdu, QueueDepth, WireToSurface1Pdu,
};
use ironrdp_graphics::clearcodec::ClearCodecDecoder;
use ironrdp_graphics::rdp6::BitmapStreamDecoder;
use ironrdp_graphics::zgfx;
use ironrdp_pdu::geometry::ExclusiveRectangle;
use ironrdp_pdu::{PduResult, decode_cursor, decode_err, pdu_other_err};

use crate::Rect;

/// A decompressed batch of pipeline commands is at most this large (a 4K screen's
/// uncompressed update is 32 MiB; anything larger is refused rather than buffered).
const MAX_BATCH: usize = 64 << 20;

/// A tile decoded here holds at most this many pixels (a 4K screen): a server cannot make the
/// gateway allocate more by naming a huge rectangle.
const MAX_TILE_PIXELS: usize = 3840 * 2160;

/// The largest screen a reset may ask the browser for (Windows' own limit).
const MAX_SCREEN: u32 = 8192;

/// Cache slots there are with the small cache this client advertises (MS-RDPEGFX 2.2.3.2).
const CACHE_SLOTS: u16 = 4096;

/// What the browser does to its screen, in the order the server asked for it. Coordinates
/// are the screen's (surfaces are placed where the server mapped them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GfxUpdate {
    /// The screen is now this size and blank.
    Reset { width: u16, height: u16 },
    /// One H.264 access unit (Annex B) of a surface whose top left is at `origin`; the
    /// browser decodes it and copies `regions` (screen coordinates, same place in the
    /// picture relative to `origin`) onto the screen. `key` when it starts with an IDR
    /// picture (a decoder can start here).
    Video { origin: (u16, u16), size: (u16, u16), regions: Vec<Rect>, data: Vec<u8>, key: bool },
    /// Rectangles filled with one colour.
    Fill { rgb: [u8; 3], rects: Vec<Rect> },
    /// `source` copied to each of `to` (top-left corners).
    Copy { source: Rect, to: Vec<(u16, u16)> },
    /// `source` kept in cache slot `slot`.
    ToCache { slot: u16, source: Rect },
    /// Cache slot `slot` drawn at each of `to`.
    FromCache { slot: u16, to: Vec<(u16, u16)> },
    /// Cache slot `slot` forgotten.
    Evict { slot: u16 },
    /// A picture for `rect` (what the browser cannot decode, decoded here): PNG, or JPEG when
    /// large and photo-like.
    Picture { rect: Rect, image: Vec<u8> },
}

#[derive(Debug, Clone, Copy)]
struct Surface {
    width: u16,
    height: u16,
    /// Where the surface sits on the screen; an unmapped surface is not shown.
    origin: Option<(u16, u16)>,
}

/// The graphics pipeline channel, passing video through.
pub struct GfxPassthrough {
    decompressor: zgfx::Decompressor,
    buffer: Vec<u8>,
    surfaces: BTreeMap<u16, Surface>,
    planar: BitmapStreamDecoder,
    clear: Option<ClearCodecDecoder>,
    frames: u32,
    updates: Vec<GfxUpdate>,
    /// Whether the server has started drawing through the pipeline.
    active: bool,
    /// Updates the browser cannot be given (codecs not advertised, unmapped surfaces, tiles
    /// outside their surface, undecodable tiles): counted, and the first one logged.
    pub(crate) skipped: u64,
}

impl_as_any!(GfxPassthrough);

impl Default for GfxPassthrough {
    fn default() -> Self {
        GfxPassthrough {
            decompressor: zgfx::Decompressor::new(),
            buffer: Vec::new(),
            surfaces: BTreeMap::new(),
            planar: BitmapStreamDecoder::default(),
            clear: None,
            frames: 0,
            updates: Vec::new(),
            active: false,
            skipped: 0,
        }
    }
}

impl GfxPassthrough {
    /// What was drawn since the last call.
    pub fn drain(&mut self) -> Vec<GfxUpdate> {
        std::mem::take(&mut self.updates)
    }

    /// Whether the server draws through the pipeline (it then sends no bitmap updates).
    pub fn active(&self) -> bool {
        self.active
    }

    /// Handles one decompressed batch of commands; answers what needs an answer.
    pub fn handle_batch(&mut self, batch: &[u8]) -> PduResult<Vec<DvcMessage>> {
        let mut cursor = ReadCursor::new(batch);
        let mut replies: Vec<DvcMessage> = Vec::new();
        while !cursor.is_empty() {
            let pdu: GfxPdu = decode_cursor(&mut cursor).map_err(|e| decode_err!(e))?;
            if let Some(reply) = self.handle(pdu)? {
                replies.push(Box::new(reply));
            }
        }
        Ok(replies)
    }

    fn handle(&mut self, pdu: GfxPdu) -> PduResult<Option<GfxPdu>> {
        match pdu {
            GfxPdu::CapabilitiesConfirm(_) => self.active = true,
            GfxPdu::ResetGraphics(reset) => {
                let too_large = |v: u32| v == 0 || v > MAX_SCREEN;
                if too_large(reset.width) || too_large(reset.height) {
                    return Err(pdu_other_err!("a graphics reset to an empty screen or one over 8192×8192"));
                }
                self.surfaces.clear();
                let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                self.updates
                    .push(GfxUpdate::Reset { width: clamp(reset.width), height: clamp(reset.height) });
            }
            GfxPdu::CreateSurface(create) => {
                let surface = Surface { width: create.width, height: create.height, origin: None };
                self.surfaces.insert(create.surface_id, surface);
            }
            GfxPdu::DeleteSurface(delete) => {
                self.surfaces.remove(&delete.surface_id);
            }
            GfxPdu::MapSurfaceToOutput(map) => {
                if let Some(surface) = self.surfaces.get_mut(&map.surface_id) {
                    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                    surface.origin = Some((clamp(map.output_origin_x), clamp(map.output_origin_y)));
                }
            }
            GfxPdu::EndFrame(end) => {
                self.frames = self.frames.wrapping_add(1);
                // Acknowledged at once: the session forwards each frame before it reads the
                // next, so a slow browser slows the reading, and TCP the server.
                return Ok(Some(GfxPdu::FrameAcknowledge(FrameAcknowledgePdu {
                    queue_depth: QueueDepth::Unavailable,
                    frame_id: end.frame_id,
                    total_frames_decoded: self.frames,
                })));
            }
            GfxPdu::WireToSurface1(wire) => self.wire_to_surface(wire)?,
            GfxPdu::SolidFill(fill) => {
                if let Some(origin) = self.origin(fill.surface_id) {
                    let c = fill.fill_pixel;
                    let rects = fill.rectangles.iter().map(|r| rect_at(origin, r)).collect();
                    self.updates.push(GfxUpdate::Fill { rgb: [c.r, c.g, c.b], rects });
                }
            }
            GfxPdu::SurfaceToSurface(copy) => {
                let from = self.mapped(copy.source_surface_id);
                let source = from.and_then(|(origin, surface)| {
                    clip(&copy.source_rectangle, surface).map(|r| rect_at(origin, &r))
                });
                match (source, self.origin(copy.destination_surface_id)) {
                    (Some(source), Some(to)) => {
                        let to = copy.destination_points.iter().map(|p| point_at(to, p.x, p.y)).collect();
                        self.updates.push(GfxUpdate::Copy { source, to });
                    }
                    _ => self.skip("a copy between surfaces not on the screen"),
                }
            }
            GfxPdu::SurfaceToCache(cache) => {
                let source = self.mapped(cache.surface_id).and_then(|(origin, surface)| {
                    clip(&cache.source_rectangle, surface).map(|r| rect_at(origin, &r))
                });
                match source {
                    Some(source) if cache.cache_slot <= CACHE_SLOTS => {
                        self.updates.push(GfxUpdate::ToCache { slot: cache.cache_slot, source });
                    }
                    _ => self.skip("a cache entry from outside the screen or beyond the cache"),
                }
            }
            GfxPdu::CacheToSurface(cache) => match self.origin(cache.surface_id) {
                Some(origin) if cache.cache_slot <= CACHE_SLOTS => {
                    let to = cache.destination_points.iter().map(|p| point_at(origin, p.x, p.y)).collect();
                    self.updates.push(GfxUpdate::FromCache { slot: cache.cache_slot, to });
                }
                _ => self.skip("a cache entry drawn outside the screen or from beyond the cache"),
            },
            GfxPdu::EvictCacheEntry(evict) if evict.cache_slot <= CACHE_SLOTS => {
                self.updates.push(GfxUpdate::Evict { slot: evict.cache_slot });
            }
            GfxPdu::WireToSurface2(_) => self.skip("a RemoteFX Progressive update (not advertised)"),
            // Start of frame, cache import replies, window mappings (RemoteApp), QoE: nothing
            // for the screen.
            _ => {}
        }
        Ok(None)
    }

    fn origin(&self, surface_id: u16) -> Option<(u16, u16)> {
        self.surfaces.get(&surface_id).and_then(|s| s.origin)
    }

    fn mapped(&self, surface_id: u16) -> Option<((u16, u16), Surface)> {
        self.surfaces.get(&surface_id).and_then(|s| s.origin.map(|o| (o, *s)))
    }

    /// Counts an update the browser is not given; the first one of a session is logged.
    fn skip(&mut self, what: &str) {
        if self.skipped == 0 {
            tracing::warn!(
                "the RDP server's graphics pipeline sent {what}: not shown (further ones are counted)"
            );
        }
        self.skipped += 1;
    }

    fn wire_to_surface(&mut self, wire: WireToSurface1Pdu) -> PduResult<()> {
        let Some((origin, surface)) = self.mapped(wire.surface_id) else {
            self.skip("an update of a surface not on the screen");
            return Ok(());
        };
        let dest = &wire.destination_rectangle;
        let width = dest.right.saturating_sub(dest.left);
        let height = dest.bottom.saturating_sub(dest.top);
        let decoded_here = !matches!(wire.codec_id, Codec1Type::Avc420);
        if decoded_here
            && (dest.right > surface.width
                || dest.bottom > surface.height
                || usize::from(width) * usize::from(height) > MAX_TILE_PIXELS)
        {
            self.skip("a tile outside its surface");
            return Ok(());
        }
        match wire.codec_id {
            Codec1Type::Avc420 => {
                let mut cursor = ReadCursor::new(&wire.bitmap_data);
                let Ok(stream) = Avc420BitmapStream::decode(&mut cursor) else {
                    self.skip("an H.264 update whose regions do not parse");
                    return Ok(());
                };
                // No regions: nothing shown (as FreeRDP's client does), though the picture
                // still goes to the decoder, whose later pictures refer to it.
                let regions = stream
                    .rectangles
                    .iter()
                    .filter_map(|r| clip(r, surface))
                    .map(|r| rect_at(origin, &r))
                    .collect();
                let key = starts_with_idr(stream.data);
                let size = (surface.width, surface.height);
                let data = stream.data.to_vec();
                self.updates.push(GfxUpdate::Video { origin, size, regions, data, key });
            }
            Codec1Type::Planar => {
                let mut rgb = Vec::new();
                let (w, h) = (usize::from(width), usize::from(height));
                match self.planar.decode_bitmap_stream_to_rgb24(&wire.bitmap_data, &mut rgb, w, h) {
                    Ok(()) => self.pixels(origin, dest, rgb),
                    Err(_) => self.skip("an undecodable planar tile"),
                }
            }
            Codec1Type::ClearCodec => {
                let clear = self.clear.get_or_insert_with(ClearCodecDecoder::new);
                match clear.decode(&wire.bitmap_data, width, height) {
                    Ok(bgra) => {
                        let rgb = bgra.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
                        self.pixels(origin, dest, rgb);
                    }
                    Err(_) => self.skip("an undecodable ClearCodec tile"),
                }
            }
            Codec1Type::Uncompressed => {
                // 32 bits per pixel, blue first.
                let expected = usize::from(width) * usize::from(height) * 4;
                match wire.bitmap_data.get(..expected) {
                    Some(raw) => {
                        let rgb = raw.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
                        self.pixels(origin, dest, rgb);
                    }
                    None => self.skip("an uncompressed tile shorter than its rectangle"),
                }
            }
            // Not advertised (AVC444, RemoteFX, alpha): a server that sends them anyway is
            // counted, not followed.
            _ => self.skip("an update in a codec not advertised"),
        }
        Ok(())
    }

    fn pixels(&mut self, origin: (u16, u16), dest: &ExclusiveRectangle, rgb: Vec<u8>) {
        let rect = rect_at(origin, dest);
        if rect.width == 0 || rect.height == 0 {
            return;
        }
        match crate::encode::encode(&rgb, rect.width, rect.height) {
            Ok((_, image)) => self.updates.push(GfxUpdate::Picture { rect, image }),
            Err(_) => self.skip("a tile that could not be encoded as a picture"),
        }
    }
}

/// Whether an Annex B access unit holds an IDR picture (NAL type 5).
fn starts_with_idr(data: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if data[i + 3] & 0x1F == 5 {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// `r` (exclusive corners, surface coordinates) clipped to the surface; `None` when nothing is left.
fn clip(r: &ExclusiveRectangle, surface: Surface) -> Option<ExclusiveRectangle> {
    let right = r.right.min(surface.width);
    let bottom = r.bottom.min(surface.height);
    (r.left < right && r.top < bottom).then_some(ExclusiveRectangle {
        left: r.left,
        top: r.top,
        right,
        bottom,
    })
}

fn rect_at(origin: (u16, u16), r: &ExclusiveRectangle) -> Rect {
    let (x, y) = point_at(origin, r.left, r.top);
    Rect { x, y, width: r.right.saturating_sub(r.left), height: r.bottom.saturating_sub(r.top) }
}

fn point_at(origin: (u16, u16), x: u16, y: u16) -> (u16, u16) {
    (origin.0.saturating_add(x), origin.1.saturating_add(y))
}

impl DvcProcessor for GfxPassthrough {
    fn channel_name(&self) -> &str {
        ironrdp_egfx::CHANNEL_NAME
    }

    fn start(&mut self, _channel_id: u32) -> PduResult<Vec<DvcMessage>> {
        // Only AVC420 (what a browser decodes), with the small cache the browser keeps.
        let caps = [CapabilitySet::V8_1 {
            flags: CapabilitiesV81Flags::AVC420_ENABLED | CapabilitiesV81Flags::SMALL_CACHE,
        }];
        Ok(vec![Box::new(GfxPdu::CapabilitiesAdvertise(CapabilitiesAdvertisePdu::from_typed(&caps)))])
    }

    fn process(&mut self, _channel_id: u32, payload: &[u8]) -> PduResult<Vec<DvcMessage>> {
        self.process_segmented(payload)
    }
}

impl GfxPassthrough {
    /// One channel message as the server sends it (ZGFX segments), for the fuzzer.
    pub fn process_segment(&mut self, payload: &[u8]) -> PduResult<()> {
        self.process_segmented(payload).map(|_| ())
    }

    fn process_segmented(&mut self, payload: &[u8]) -> PduResult<Vec<DvcMessage>> {
        let mut batch = std::mem::take(&mut self.buffer);
        batch.clear();
        self.decompressor.decompress(payload, &mut batch).map_err(|e| decode_err!(e))?;
        if batch.len() > MAX_BATCH {
            return Err(pdu_other_err!("a graphics batch over 64 MiB"));
        }
        let result = self.handle_batch(&batch);
        // The buffer is kept for the next batch, unless one was unusually large.
        if batch.capacity() <= 16 << 20 {
            self.buffer = batch;
        }
        result
    }
}

impl DvcClientProcessor for GfxPassthrough {}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_core::encode_vec;
    use ironrdp_egfx::pdu::{
        CreateSurfacePdu, EndFramePdu, MapSurfaceToOutputPdu, PixelFormat, ResetGraphicsPdu, SolidFillPdu,
    };

    fn batch(pdus: &[GfxPdu]) -> Vec<u8> {
        pdus.iter().flat_map(|p| encode_vec(p).expect("encodes")).collect()
    }

    #[test]
    fn surfaces_are_placed_and_frames_acknowledged() {
        let mut gfx = GfxPassthrough::default();
        let rect = |left, top, right, bottom| ExclusiveRectangle { left, top, right, bottom };
        let bytes = batch(&[
            GfxPdu::ResetGraphics(ResetGraphicsPdu { width: 800, height: 600, monitors: vec![] }),
            GfxPdu::CreateSurface(CreateSurfacePdu {
                surface_id: 1,
                width: 400,
                height: 300,
                pixel_format: PixelFormat::XRgb,
            }),
            GfxPdu::MapSurfaceToOutput(MapSurfaceToOutputPdu {
                surface_id: 1,
                output_origin_x: 100,
                output_origin_y: 50,
            }),
            GfxPdu::SolidFill(SolidFillPdu {
                surface_id: 1,
                fill_pixel: ironrdp_egfx::pdu::Color { b: 3, g: 2, r: 1, xa: 0 },
                rectangles: vec![rect(10, 20, 30, 60)],
            }),
            // A surface never mapped: not shown.
            GfxPdu::SolidFill(SolidFillPdu {
                surface_id: 9,
                fill_pixel: ironrdp_egfx::pdu::Color { b: 0, g: 0, r: 0, xa: 0 },
                rectangles: vec![rect(0, 0, 1, 1)],
            }),
            GfxPdu::EndFrame(EndFramePdu { frame_id: 7 }),
        ]);
        let replies = gfx.handle_batch(&bytes).expect("handled");
        assert_eq!(replies.len(), 1, "one acknowledgement");
        assert_eq!(
            gfx.drain(),
            vec![
                GfxUpdate::Reset { width: 800, height: 600 },
                GfxUpdate::Fill {
                    rgb: [1, 2, 3],
                    rects: vec![Rect { x: 110, y: 70, width: 20, height: 40 }]
                },
            ]
        );
        assert_eq!(gfx.skipped, 0, "a fill of an unknown surface is not counted as a codec");
    }

    #[test]
    fn a_tile_outside_its_surface_is_skipped_before_decoding() {
        let mut gfx = GfxPassthrough::default();
        let bytes = batch(&[
            GfxPdu::CreateSurface(CreateSurfacePdu {
                surface_id: 1,
                width: 64,
                height: 64,
                pixel_format: PixelFormat::XRgb,
            }),
            GfxPdu::MapSurfaceToOutput(MapSurfaceToOutputPdu {
                surface_id: 1,
                output_origin_x: 0,
                output_origin_y: 0,
            }),
            GfxPdu::WireToSurface1(WireToSurface1Pdu {
                surface_id: 1,
                codec_id: Codec1Type::Planar,
                pixel_format: PixelFormat::XRgb,
                destination_rectangle: ExclusiveRectangle { left: 0, top: 0, right: 65535, bottom: 65535 },
                bitmap_data: vec![0x20; 16],
            }),
        ]);
        assert!(gfx.handle_batch(&bytes).is_ok(), "skipped, as IronRDP's own client does, not fatal");
        assert_eq!((gfx.drain(), gfx.skipped), (vec![], 1));
        let huge = batch(&[GfxPdu::ResetGraphics(ResetGraphicsPdu {
            width: 40_000,
            height: 600,
            monitors: vec![],
        })]);
        assert!(gfx.handle_batch(&huge).is_err(), "no screen over 8192 pixels wide");
    }

    #[test]
    fn idr_pictures_are_told_apart() {
        assert!(starts_with_idr(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x65, 9]));
        assert!(!starts_with_idr(&[0, 0, 0, 1, 0x41, 1, 2]));
        assert!(!starts_with_idr(&[0, 0, 1]));
        assert!(!starts_with_idr(&[]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut gfx = GfxPassthrough::default();
        for input in [&[0xFFu8; 3][..], &[0x13, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x10][..], &[0u8; 40][..]]
        {
            assert!(gfx.handle_batch(input).is_err(), "{input:?} is not a batch of commands");
            let _ = gfx.process(1, input);
        }
    }
}
