// The recording player: an asciicast v2 file drawn by xterm.js, with play/pause, seeking,
// speed, and finding the moment a text appeared (then the screen as it was then).
import { Terminal } from '/assets/xterm/lib/xterm.mjs';

const host = document.getElementById('terminal');
const play = document.getElementById('play');
const seek = document.getElementById('seek');
const clock = document.getElementById('clock');
const speed = document.getElementById('speed');
const find = document.getElementById('find');
const found = document.getElementById('found');

const text = await (await fetch(host.dataset.src, { credentials: 'same-origin' })).text();
const lines = text.split('\n').filter((l) => l.trim());
const header = JSON.parse(lines[0]);
const events = lines.slice(1).map((l) => JSON.parse(l)).filter((e) => e[1] === 'o');
const duration = events.length ? events[events.length - 1][0] : 0;
const term = new Terminal({ cols: header.width || 80, rows: header.height || 24, scrollback: 5000, fontSize: 14,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace', disableStdin: true });
term.open(host);
seek.max = String(duration);

let index = 0; // the next event to write
let position = 0; // seconds into the recording
let playing = false;
let last = 0;

const write = (data) => new Promise((resolve) => term.write(data, resolve));
const show = () => { seek.value = String(position); clock.textContent = `${position.toFixed(1)} s / ${duration.toFixed(1)} s`; };

/// The screen as it was at `t`: drawn again from the start (xterm has no rewind).
async function seekTo(t) {
  position = Math.max(0, Math.min(duration, t));
  term.reset();
  index = 0;
  let batch = '';
  while (index < events.length && events[index][0] <= position) batch += events[index++][2];
  await write(batch);
  show();
}

function tick(now) {
  if (!playing) return;
  position += ((now - last) / 1000) * Number(speed.value);
  last = now;
  let batch = '';
  while (index < events.length && events[index][0] <= position) batch += events[index++][2];
  if (batch) term.write(batch);
  if (index >= events.length) { playing = false; play.textContent = 'Play'; position = duration; }
  show();
  if (playing) requestAnimationFrame(tick);
}

play.addEventListener('click', () => {
  playing = !playing;
  play.textContent = playing ? 'Pause' : 'Play';
  if (playing) {
    if (index >= events.length) seekTo(0);
    last = performance.now();
    requestAnimationFrame(tick);
  }
});
seek.addEventListener('input', () => { playing = false; play.textContent = 'Play'; seekTo(Number(seek.value)); });

/// Jumps to the moment the text first appeared on the screen.
async function findNext() {
  const wanted = find.value;
  if (!wanted) return;
  let joined = '';
  for (let i = 0; i < events.length; i += 1) {
    joined += events[i][2];
    if (joined.includes(wanted)) {
      await seekTo(events[i][0]);
      found.textContent = `found at ${events[i][0].toFixed(1)} s`;
      return;
    }
  }
  found.textContent = 'not found';
}
document.getElementById('find-next').addEventListener('click', findNext);

window.rampartPlayer = { term, duration, seekTo, findNext, ready: true };
show();
if (find.value) await findNext();
