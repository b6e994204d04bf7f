// What the RDP browser tests and the desktop benchmark share: the server's screen as it sees
// it (xwd) and the canvas's pixels, compared.
import { check, until } from './lib.mjs';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

/// The canvas pixel at (fx, fy) as fractions of its size.
export const pixel = (tab, fx, fy) => tab.evaluate(([fx, fy]) => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data;
  return [d[0], d[1], d[2]];
}, [fx, fy]);

/// A screenshot of an X display (xwd), read as the server sees its own screen; `set` paints
/// a pixel of it (to show it again with xwud).
export function screenshot(on, xenv = {}) {
  const buf = execFileSync('xwd', ['-root', '-silent'], { env: { ...process.env, DISPLAY: on, ...xenv }, maxBuffer: 64 << 20 });
  const u32 = (o) => buf.readUInt32BE(o);
  const [width, height, byteOrder, bitsPerPixel, bytesPerLine, ncolors] = [u32(16), u32(20), u32(28), u32(44), u32(48), u32(76)];
  const masks = [u32(56), u32(60), u32(64)];
  check(bitsPerPixel === 32, `xwd: ${bitsPerPixel} bits per pixel`);
  const data = u32(0) + ncolors * 12;
  const shift = (m) => 31 - Math.clz32(m & -m);
  const offset = (x, y) => data + y * bytesPerLine + x * 4;
  return {
    width, height, buf,
    at(x, y) {
      const v = byteOrder === 0 ? buf.readUInt32LE(offset(x, y)) : buf.readUInt32BE(offset(x, y));
      return masks.map((m) => ((v & m) >>> shift(m)) & 0xff);
    },
    set(x, y, rgb) {
      const v = rgb.reduce((acc, c, i) => (acc | (c << shift(masks[i]))) >>> 0, 0);
      if (byteOrder === 0) buf.writeUInt32LE(v, offset(x, y)); else buf.writeUInt32BE(v, offset(x, y));
    },
  };
}

/// Waits until the canvas shows what a screenshot of the server's display shows, at
/// `points` (fractions of the size); returns the pixels compared.
export async function matchesScreenshot(tab, on, xenv, points, tolerance = 8, ms = 20000) {
  let last = 'no screenshot of the same size yet';
  return until(`the canvas to match a screenshot of ${on}`, async () => {
    let shot;
    // xrdp draws its own screen while its session manager still starts the user's X server.
    try { shot = screenshot(on, xenv); } catch { return undefined; }
    const size = await tab.evaluate(() => [document.getElementById('screen').width, document.getElementById('screen').height]);
    if (size[0] !== shot.width || size[1] !== shot.height) return undefined;
    const pairs = [];
    for (const [fx, fy] of points) {
      pairs.push([await pixel(tab, fx, fy), shot.at(Math.floor(shot.width * fx), Math.floor(shot.height * fy))]);
    }
    last = pairs;
    return pairs.every(([a, b]) => a.every((v, i) => Math.abs(v - b[i]) <= tolerance)) ? pairs : undefined;
  }, ms).catch(async (e) => {
    const drawn = await tab.evaluate(() => window.rampartDesktop).catch(() => ({}));
    throw new Error(`${e.message}; [canvas, screen] at each point: ${JSON.stringify(last)}; drawn: ${JSON.stringify(drawn)}`);
  });
}

/// Writes to `path` a photo-like picture (smooth colour fields) the size of display `on`, as
/// an xwd file that xwud shows; returns `path`.
export function photo(on, path) {
  const painted = screenshot(on);
  const [w, h] = [painted.width, painted.height];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      painted.set(x, y, [Math.floor((x * 255) / w), Math.floor((y * 255) / h), Math.floor(((x + y) * 255) / (w + h))]);
    }
  }
  writeFileSync(path, painted.buf);
  return path;
}

/// Shows the xwd picture at `path` on display `on` (xwud); returns what closes it.
export function show(on, path) {
  const viewer = spawn('xwud', ['-in', path], { env: { ...process.env, DISPLAY: on }, stdio: 'ignore', detached: true });
  return () => { try { process.kill(-viewer.pid); } catch { /* already gone */ } };
}
