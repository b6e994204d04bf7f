// Draws what the gateway sends a desktop page (and what a desktop recording holds) on a
// canvas, in the order it was sent. Every message starts with a rectangle (x, y, width,
// height: little-endian u16); then either a picture (PNG, or JPEG: FF D8) for that rectangle,
// or a four-letter command of the graphics pipeline (portal/video.rs in the gateway says
// each): H.264 video decoded here with WebCodecs, fills, copies and the bitmap cache.
// Pictures and video decode in parallel with the rest; drawing waits for its turn.

const TEXT = new TextDecoder();
// The largest screen the gateway lets a server ask for.
const MAX_SCREEN = 8192;
// A picture the decoder never gives back stops the screen no longer than this (ms).
const PATIENCE = 2000;

/// The codec string of the H.264 stream whose key unit is `data` (from its SPS).
function codecOf(data) {
  for (let i = 0; i + 7 < data.length; i += 1) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, '0');
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return 'avc1.64002a';
}

const RDP_COLOURS = { primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', fullRange: true };

/// The decoded picture as RDP's AVC420 means it (BT.709, full range: MS-RDPEGFX). A decoder
/// that took it otherwise (Chromium's software decoder assumes BT.601) gets its planes
/// re-labelled: a copy of 1.5 bytes a pixel, no conversion here.
async function asRdpColours(frame) {
  const c = frame.colorSpace;
  if (!c || (c.matrix === 'bt709' && c.fullRange === true) || !['I420', 'NV12'].includes(frame.format)) return frame;
  // (copyTo copies the visible part: the new picture is that size.)
  const { width, height } = frame.visibleRect;
  const buffer = new Uint8Array(frame.allocationSize());
  const layout = await frame.copyTo(buffer);
  const init = { format: frame.format, codedWidth: width, codedHeight: height, timestamp: frame.timestamp };
  return new VideoFrame(buffer, { ...init, layout, colorSpace: RDP_COLOURS });
}

const rects = (view, at, n) => Array.from({ length: n }, (_, i) => [0, 2, 4, 6].map((o) => view.getUint16(at + i * 8 + o, true)));
const points = (view, at, n) => Array.from({ length: n }, (_, i) => [view.getUint16(at + i * 4, true), view.getUint16(at + i * 4 + 2, true)]);

export class Screen {
  constructor(canvas, { onFrame = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.onFrame = onFrame;
    this.cache = new Map();
    // One decoder per surface (its place and size on the screen).
    this.decoders = new Map();
    this.timestamp = 0;
    // What is still to be drawn, in order: { run } or a video picture { video, frame? }.
    this.queue = [];
    this.pumping = false;
    this.timer = null;
    this.idleWaiters = [];
  }

  /// Forgets the video and the cache (a seek in a recording starts again from a keyframe).
  reset() {
    for (const d of this.decoders.values()) if (d.decoder.state !== 'closed') d.decoder.close();
    this.decoders.clear();
    for (const item of this.queue) if (item.frame) item.frame.close();
    this.queue = [];
    this.cache.clear();
    this.settle();
  }

  /// Resolves once everything taken so far is on the canvas.
  idle() {
    if (!this.queue.length && !this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /// Takes one message; returns a promise of it being drawn.
  apply(buffer) {
    const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
    if (bytes.length < 8) return this.idle();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const [x, y, w, h] = [0, 2, 4, 6].map((o) => view.getUint16(o, true));
    const command = bytes.length >= 12 ? TEXT.decode(bytes.subarray(8, 12)) : '';
    const ctx = this.ctx;
    const at = (f) => this.push({ run: f });
    switch (command) {
      case 'AVC1':
        // (Without WebCodecs, video cannot be shown: a watcher's browser may lack it.)
        if (!window.VideoDecoder) { this.problem = 'this browser cannot decode H.264 (WebCodecs)'; break; }
        try { this.video(bytes, view, x, y, w, h); } catch (e) { this.problem = String(e); }
        break;
      case 'RSET':
        // A new screen: every decoder starts again at a key picture.
        for (const d of this.decoders.values()) { this.failed(d); if (d.decoder.state !== 'closed') d.decoder.close(); }
        this.decoders.clear();
        at(() => {
          const [cw, ch] = [Math.min(w, MAX_SCREEN), Math.min(h, MAX_SCREEN)];
          if (this.canvas.width !== cw || this.canvas.height !== ch) [this.canvas.width, this.canvas.height] = [cw, ch];
          ctx.fillStyle = '#000';
          ctx.fillRect(0, 0, cw, ch);
        });
        break;
      case 'FILL':
        at(() => {
          ctx.fillStyle = `rgb(${bytes[12]},${bytes[13]},${bytes[14]})`;
          for (const [rx, ry, rw, rh] of rects(view, 18, view.getUint16(16, true))) ctx.fillRect(rx, ry, rw, rh);
        });
        break;
      case 'COPY':
        at(() => {
          const part = this.grab(x, y, w, h);
          if (part) for (const [px, py] of points(view, 14, view.getUint16(12, true))) ctx.putImageData(part, px, py);
        });
        break;
      case 'CPUT':
        at(() => { const part = this.grab(x, y, w, h); if (part) this.cache.set(view.getUint16(12, true), part); });
        break;
      case 'CGET':
        at(() => {
          const part = this.cache.get(view.getUint16(12, true));
          if (part) for (const [px, py] of points(view, 16, view.getUint16(14, true))) ctx.putImageData(part, px, py);
        });
        break;
      case 'CDEL':
        at(() => { this.cache.delete(view.getUint16(12, true)); });
        break;
      default: {
        // A picture: decoded now, drawn in its turn.
        const image = bytes.subarray(8);
        const jpeg = image[0] === 0xff && image[1] === 0xd8;
        const decoded = createImageBitmap(new Blob([image], { type: jpeg ? 'image/jpeg' : 'image/png' })).catch(() => null);
        at(() => decoded.then((bitmap) => {
          if (!bitmap) return;
          ctx.drawImage(bitmap, x, y);
          bitmap.close();
          this.onFrame(jpeg ? 'jpeg' : 'png');
        }));
      }
    }
    return this.idle();
  }

  /// The canvas pixels of a rectangle, clipped to the canvas (nothing when empty).
  grab(x, y, w, h) {
    const [cw, ch] = [Math.min(w, this.canvas.width - x), Math.min(h, this.canvas.height - y)];
    return cw > 0 && ch > 0 ? this.ctx.getImageData(x, y, cw, ch) : null;
  }

  video(bytes, view, originX, originY, w, h) {
    const key = bytes[12] === 1;
    const regions = rects(view, 16, view.getUint16(14, true));
    const data = bytes.subarray(16 + regions.length * 8);
    const surface = `${originX},${originY},${w},${h}`;
    let d = this.decoders.get(surface);
    if (!d || d.decoder.state === 'closed' || d.needKey) {
      // A watcher who joined mid-stream, or a decoder that failed, waits for a key picture.
      if (!key) return;
      if (d && d.decoder.state !== 'closed') d.decoder.close();
      d = { needKey: false, pictures: new Map() };
      d.decoder = new VideoDecoder({
        output: (frame) => this.decoded(d, frame),
        error: () => this.failed(d),
      });
      // RDP's AVC420 is BT.709 with full range (MS-RDPEGFX), which the stream does not say.
      const colorSpace = RDP_COLOURS;
      try {
        d.decoder.configure({ codec: codecOf(data), optimizeForLatency: true, colorSpace });
      } catch {
        d.decoder.configure({ codec: 'avc1.64002a', optimizeForLatency: true, colorSpace });
      }
      this.decoders.set(surface, d);
    }
    this.timestamp += 1;
    const item = { video: d, regions, originX, originY, deadline: performance.now() + PATIENCE };
    d.pictures.set(this.timestamp, item);
    this.push(item);
    try {
      d.decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: this.timestamp, data }));
    } catch {
      this.failed(d);
    }
  }

  decoded(d, frame) {
    const item = d.pictures.get(frame.timestamp);
    d.pictures.delete(frame.timestamp);
    if (!item || item.done) { frame.close(); return; }
    item.frame = frame;
    this.pump();
  }

  failed(d) {
    d.needKey = true;
    for (const item of d.pictures.values()) item.done = true;
    d.pictures.clear();
    this.pump();
  }

  push(item) {
    this.queue.push(item);
    this.pump();
  }

  /// Draws what is due, in order; a video picture waits for its decoder (at most PATIENCE).
  async pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length) {
        const item = this.queue[0];
        if (item.video) {
          if (!item.frame && !item.done) {
            const wait = item.deadline - performance.now();
            if (wait > 0) {
              if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.pump(); }, wait);
              return;
            }
            item.done = true; // never came back
          }
          this.queue.shift();
          if (item.frame) {
            let picture = item.frame;
            try {
              picture = await asRdpColours(item.frame).catch((e) => { this.problem = String(e); return item.frame; });
              for (const [rx, ry, rw, rh] of item.regions) {
                this.ctx.drawImage(picture, rx - item.originX, ry - item.originY, rw, rh, rx, ry, rw, rh);
              }
              this.onFrame('video', item.frame.colorSpace && item.frame.colorSpace.toJSON());
            } catch (e) {
              this.problem = String(e);
            } finally {
              if (picture !== item.frame) picture.close();
              item.frame.close();
            }
          }
        } else {
          this.queue.shift();
          try { await item.run(); } catch { /* a bad message draws nothing */ }
        }
      }
    } finally {
      this.pumping = false;
      if (!this.queue.length) this.settle();
    }
  }

  settle() {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
