// The browser desktop: draws what the gateway sends on a canvas (desktop-screen.js), and sends
// mouse and keyboard input back as JSON. Keys travel as KeyboardEvent.code (the physical
// key); the remote machine applies its own keyboard layout.
import { Screen } from './desktop-screen.js';

const canvas = document.getElementById('screen');
const status = document.getElementById('status');
const title = document.title.replace(/ · Rampart$/, '');
const url = new URL(canvas.dataset.ws, location.href);
url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
let ended = false;
window.rampartDesktop = { frames: 0, jpegFrames: 0, videoFrames: 0 };
// Pictures, or the server's own video (H.264, decoded here) when this browser can.
const screen = new Screen(canvas, {
  onFrame: (kind, colorSpace) => {
    window.rampartDesktop.frames += 1;
    if (colorSpace) window.rampartDesktop.videoColorSpace = colorSpace;
    if (screen.problem) window.rampartDesktop.problem = screen.problem;
    if (kind === 'jpeg') window.rampartDesktop.jpegFrames += 1;
    if (kind === 'video') window.rampartDesktop.videoFrames += 1;
  },
});

function setStatus(text, state) {
  status.textContent = `${title} · ${text}`;
  status.dataset.state = state;
}
// An operator watching someone's desktop sends nothing.
const watching = canvas.dataset.watching === 'true';
const send = (message) => { if (!watching && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); };

ws.onmessage = (event) => {
  if (typeof event.data === 'string') {
    const message = JSON.parse(event.data);
    if (message.type === 'ready') {
      canvas.width = message.width;
      canvas.height = message.height;
      clipboardToggle.hidden = !message.clipboard;
      setStatus('connected', 'connected');
      canvas.focus();
    } else if (message.type === 'clipboard') {
      fromRemote(message.text);
    } else if (message.type === 'clipboard-state') {
      // The operator turned copy and paste off (or back on) while the session runs.
      clipboardToggle.hidden = !message.on;
      if (!message.on) clipboardPanel.hidden = true;
    } else if (message.type === 'notice') {
      // Who is watching this desktop.
      document.getElementById('notice').textContent = message.text;
    } else if (message.type === 'ended') {
      ended = true;
      setStatus(`session ended: ${message.reason}`, 'ended');
    }
    return;
  }
  screen.apply(event.data);
};
ws.onclose = (event) => {
  if (!ended) setStatus(`connection to the gateway closed${event.reason ? ': ' + event.reason : ''}`, 'ended');
};

function position(event) {
  const box = canvas.getBoundingClientRect();
  const x = Math.round((event.clientX - box.left) * canvas.width / box.width);
  const y = Math.round((event.clientY - box.top) * canvas.height / box.height);
  return { x: Math.max(0, Math.min(canvas.width - 1, x)), y: Math.max(0, Math.min(canvas.height - 1, y)) };
}
canvas.addEventListener('mousemove', (e) => send({ type: 'mouse', ...position(e) }));
canvas.addEventListener('mousedown', (e) => {
  canvas.focus();
  send({ type: 'mouse', ...position(e) });
  send({ type: 'button', button: e.button, down: true });
  e.preventDefault();
});
canvas.addEventListener('mouseup', (e) => {
  send({ type: 'mouse', ...position(e) });
  send({ type: 'button', button: e.button, down: false });
  e.preventDefault();
});
canvas.addEventListener('contextmenu', (e) => e.preventDefault());
canvas.addEventListener('wheel', (e) => { send({ type: 'wheel', delta: Math.round(e.deltaY) }); e.preventDefault(); },
  { passive: false });
// Keys held on the remote side. Modifiers are brought in line with the event's own flags
// before each key, so a Shift pressed while the page had no focus still counts.
const held = new Set();
const MODIFIERS = [['shiftKey', 'ShiftLeft', 'ShiftRight'], ['ctrlKey', 'ControlLeft', 'ControlRight'],
  ['altKey', 'AltLeft', 'AltRight']];
const isModifier = (code) => MODIFIERS.some(([, left, right]) => code === left || code === right);
function key(code, down) {
  if (down) held.add(code); else held.delete(code);
  send({ type: 'key', code, down });
}
function syncModifiers(e) {
  for (const [flag, left, right] of MODIFIERS) {
    const remote = held.has(left) || held.has(right);
    if (e[flag] && !remote) key(left, true);
    if (!e[flag] && remote) { if (held.has(left)) key(left, false); if (held.has(right)) key(right, false); }
  }
}
canvas.addEventListener('keydown', (e) => {
  if (!isModifier(e.code)) syncModifiers(e);
  key(e.code, true);
  e.preventDefault();
});
canvas.addEventListener('keyup', (e) => { key(e.code, false); e.preventDefault(); });
canvas.addEventListener('blur', () => { held.clear(); send({ type: 'release' }); });
document.getElementById('cad')?.addEventListener('click', () => { send({ type: 'cad' }); canvas.focus(); });

// Text clipboard both ways (when the bastion allows copy and paste). The panel always works;
// the browser's own clipboard is used too where the page is allowed to (it asks the user).
const clipboardToggle = document.getElementById('clipboard-toggle');
const clipboardPanel = document.getElementById('clipboard-panel');
const clipboardText = document.getElementById('clipboard');
let lastClipboard = '';
function fromRemote(text) {
  lastClipboard = text;
  clipboardText.value = text;
  window.rampartDesktop.clipboard = text;
  navigator.clipboard?.writeText(text).catch(() => {});
}
function toRemote(text) {
  if (clipboardToggle.hidden || text === lastClipboard) return;
  lastClipboard = text;
  send({ type: 'clipboard', text });
}
clipboardToggle.addEventListener('click', () => {
  clipboardPanel.hidden = !clipboardPanel.hidden;
  clipboardToggle.setAttribute('aria-expanded', String(!clipboardPanel.hidden));
});
let typing;
clipboardText.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => toRemote(clipboardText.value), 250);
});
// Coming back to the desktop: what was copied in another window is offered to the remote side.
canvas.addEventListener('focus', () => {
  if (clipboardToggle.hidden || !navigator.clipboard?.readText) return;
  navigator.clipboard.readText().then((text) => { if (text) { clipboardText.value = text; toRemote(text); } })
    .catch(() => {});
});
