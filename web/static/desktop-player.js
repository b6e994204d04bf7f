// The desktop recording player: draws a rampart-desktop-v1 recording (what the gateway sent
// the browser: pictures with whole-screen keyframes, or the server's video with its key
// pictures) on a canvas, with play/pause,
// seeking (from the last keyframe before the moment) and speed.
import { Screen } from './desktop-screen.js';

const canvas = document.getElementById('screen');
const play = document.getElementById('play');
const seek = document.getElementById('seek');
const clock = document.getElementById('clock');
const speed = document.getElementById('speed');

const FRAME = 1;
const KEYFRAME = 2;
const MAGIC = 'RAMPART-DESKTOP 1\n';

/// The records of a recording: { kind, t (seconds), payload }; a record cut short (a crash)
/// ends the list.
function parse(bytes) {
  if (new TextDecoder().decode(bytes.subarray(0, MAGIC.length)) !== MAGIC) throw new Error('not a desktop recording');
  let at = bytes.indexOf(10, MAGIC.length) + 1;
  if (at <= 0) throw new Error('no header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  while (at + 9 <= bytes.length) {
    const len = view.getUint32(at + 5, true);
    if (at + 9 + len > bytes.length) break;
    out.push({ kind: bytes[at], t: view.getUint32(at + 1, true) / 1000, payload: bytes.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return out;
}

const bytes = new Uint8Array(await (await fetch(canvas.dataset.src, { credentials: 'same-origin' })).arrayBuffer());
const pictures = parse(bytes).filter((r) => r.kind === FRAME || r.kind === KEYFRAME);
const duration = pictures.length ? pictures[pictures.length - 1].t : 0;
const rect = (p) => { const v = new DataView(p.buffer, p.byteOffset, 8); return [0, 2, 4, 6].map((o) => v.getUint16(o, true)); };
const firstKey = pictures.find((p) => p.kind === KEYFRAME);
if (firstKey) [, , canvas.width, canvas.height] = rect(firstKey.payload);
seek.max = String(duration);

let drawn = 0;
const screen = new Screen(canvas, { onFrame: () => { drawn += 1; } });
/// Draws records in order (decoded in parallel, drawn in sequence).
async function draw(list) {
  for (const p of list) screen.apply(p.payload);
  await screen.idle();
}

let index = 0; // the next picture to draw
let position = 0;
let playing = false;
let last = 0;
let drawing = Promise.resolve();
const show = () => { seek.value = String(position); clock.textContent = `${position.toFixed(1)} s / ${duration.toFixed(1)} s`; };

/// The screen as it was at `t`: the last keyframe before it, then the changes after that.
let seeking = Promise.resolve();
let target = null;
/// Seeks one at a time (a seek resets the decoder the one before is still using); of seeks
/// asked for meanwhile (a dragged slider), only the last is drawn. A failed seek does not
/// stop the next.
function seekTo(t) {
  target = t;
  const next = () => {
    if (target === null) return undefined;
    const to = target;
    target = null;
    return seekNow(to);
  };
  seeking = seeking.then(next, next);
  return seeking;
}

async function seekNow(t) {
  position = Math.max(0, Math.min(duration, t));
  let end = 0;
  while (end < pictures.length && pictures[end].t <= position) end += 1;
  let start = end - 1;
  while (start > 0 && pictures[start].kind !== KEYFRAME) start -= 1;
  index = end;
  await drawing;
  // Video starts again at its key picture.
  screen.reset();
  drawing = draw(pictures.slice(Math.max(0, start), end));
  await drawing;
  show();
}

function tick(now) {
  if (!playing) return;
  position += ((now - last) / 1000) * Number(speed.value);
  last = now;
  const batch = [];
  while (index < pictures.length && pictures[index].t <= position) batch.push(pictures[index++]);
  if (batch.length) drawing = drawing.catch(() => {}).then(() => draw(batch));
  if (index >= pictures.length) {
    playing = false;
    position = duration;
    // The button turns back once the last picture is on the screen, not when it was queued.
    drawing.then(() => { if (!playing) play.textContent = 'Play'; });
  }
  show();
  if (playing) requestAnimationFrame(tick);
}

play.addEventListener('click', async () => {
  playing = !playing;
  play.textContent = playing ? 'Pause' : 'Play';
  if (playing) {
    if (index >= pictures.length) await seekTo(0);
    last = performance.now();
    requestAnimationFrame(tick);
  }
});
seek.addEventListener('input', () => { playing = false; play.textContent = 'Play'; seekTo(Number(seek.value)); });

window.rampartPlayer = { duration, seekTo, pictures: pictures.length, drawn: () => drawn, ready: true };
await seekTo(0);
