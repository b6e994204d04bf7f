// Draws what the gateway sends a desktop page (and what a desktop recording holds) on a
// canvas, in order. Every message starts with a rectangle (x, y, width, height: little-endian
// u16); then either a picture (PNG, or JPEG: FF D8) for that rectangle, or a four-letter
// command of the graphics pipeline (portal/video.rs in the gateway says each): H.264 video
// decoded here with WebCodecs, fills, copies and the bitmap cache.

const TEXT = new TextDecoder();

/// The codec string of the H.264 stream whose first key unit is `data` (from its SPS).
function codecOf(data) {
  for (let i = 0; i + 7 < data.length; i += 1) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, '0');
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return 'avc1.64002a';
}

export class Screen {
  constructor(canvas, { onFrame = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.onFrame = onFrame;
    this.drawing = Promise.resolve();
    this.cache = new Map();
    this.decoder = null;
    this.needKey = true;
    // Regions of the pictures sent to the decoder, in order, until each comes out.
    this.pending = [];
    this.drained = null;
    this.timestamp = 0;
  }

  /// Forgets the video (a seek in a recording starts again from a key picture).
  reset() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.needKey = true;
    this.pending = [];
    this.cache.clear();
    if (this.drained) this.drained();
  }

  /// Takes one message; returns when it is drawn (pictures and video may finish later than
  /// they are taken, but always in order).
  apply(buffer) {
    const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
    if (bytes.length < 8) return this.drawing;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const [x, y, w, h] = [0, 2, 4, 6].map((o) => view.getUint16(o, true));
    const command = bytes.length >= 12 ? TEXT.decode(bytes.subarray(8, 12)) : '';
    if (command === 'AVC1') {
      this.video(bytes, view, x, y);
      return this.drawing;
    }
    // Anything else draws after the video before it.
    const run = (f) => { this.drawing = this.drawing.then(() => this.videoDone()).then(f).catch(() => {}); return this.drawing; };
    const ctx = this.ctx;
    const list = (at, n, size) => Array.from({ length: n }, (_, i) => at + i * size);
    switch (command) {
      case 'RSET':
        return run(() => {
          if (this.canvas.width !== w || this.canvas.height !== h) [this.canvas.width, this.canvas.height] = [w, h];
          ctx.fillStyle = '#000';
          ctx.fillRect(0, 0, w, h);
        });
      case 'FILL':
        return run(() => {
          ctx.fillStyle = `rgb(${bytes[12]},${bytes[13]},${bytes[14]})`;
          for (const at of list(18, view.getUint16(16, true), 8)) {
            const [rx, ry, rw, rh] = [0, 2, 4, 6].map((o) => view.getUint16(at + o, true));
            ctx.fillRect(rx, ry, rw, rh);
          }
        });
      case 'COPY':
        return run(() => {
          if (!w || !h) return;
          const part = ctx.getImageData(x, y, w, h);
          for (const at of list(14, view.getUint16(12, true), 4)) ctx.putImageData(part, view.getUint16(at, true), view.getUint16(at + 2, true));
        });
      case 'CPUT':
        return run(() => { if (w && h) this.cache.set(view.getUint16(12, true), ctx.getImageData(x, y, w, h)); });
      case 'CGET':
        return run(() => {
          const part = this.cache.get(view.getUint16(12, true));
          if (!part) return;
          for (const at of list(16, view.getUint16(14, true), 4)) ctx.putImageData(part, view.getUint16(at, true), view.getUint16(at + 2, true));
        });
      case 'CDEL':
        return run(() => { this.cache.delete(view.getUint16(12, true)); });
      default: {
        // A picture: decoded in parallel, drawn in order.
        const image = bytes.subarray(8);
        const jpeg = image[0] === 0xff && image[1] === 0xd8;
        const decoded = createImageBitmap(new Blob([image], { type: jpeg ? 'image/jpeg' : 'image/png' }));
        return run(() => decoded.then((bitmap) => {
          ctx.drawImage(bitmap, x, y);
          bitmap.close();
          this.onFrame(jpeg ? 'jpeg' : 'png');
        }));
      }
    }
  }

  video(bytes, view, originX, originY) {
    const key = bytes[12] === 1;
    const n = view.getUint16(14, true);
    const regions = Array.from({ length: n }, (_, i) => [0, 2, 4, 6].map((o) => view.getUint16(16 + i * 8 + o, true)));
    const data = bytes.subarray(16 + n * 8);
    if (this.needKey && !key) return; // a watcher who joined mid-stream waits for the key picture
    if (key && (this.needKey || !this.decoder || this.decoder.state === 'closed')) {
      if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
      this.pending = [];
      this.decoder = new VideoDecoder({
        output: (frame) => this.draw(frame),
        error: () => { this.needKey = true; this.pending = []; if (this.drained) this.drained(); },
      });
      this.decoder.configure({ codec: codecOf(data), optimizeForLatency: true });
      this.needKey = false;
    }
    this.pending.push({ regions, originX, originY });
    try {
      this.decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: this.timestamp += 1, data }));
    } catch {
      this.needKey = true;
      this.pending = [];
    }
  }

  draw(frame) {
    const picture = this.pending.shift();
    if (picture) {
      for (const [rx, ry, rw, rh] of picture.regions) {
        const [sx, sy] = [rx - picture.originX, ry - picture.originY];
        this.ctx.drawImage(frame, sx, sy, rw, rh, rx, ry, rw, rh);
      }
      this.onFrame('video');
    }
    frame.close();
    if (!this.pending.length && this.drained) this.drained();
  }

  /// Resolves once every picture given to the decoder is on the canvas.
  videoDone() {
    if (!this.pending.length) return Promise.resolve();
    return new Promise((resolve) => {
      // A picture the decoder never gives back must not stop the screen for good.
      const timer = setTimeout(() => { this.drained = null; resolve(); }, 1000);
      this.drained = () => { clearTimeout(timer); this.drained = null; resolve(); };
    });
  }
}
