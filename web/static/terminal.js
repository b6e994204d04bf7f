// The browser terminal: xterm.js drawing what the gateway relays from the SSH session.
// Binary WebSocket messages are terminal bytes both ways; text messages are control:
// {"type":"resize","cols":C,"rows":R} from here, {"type":"ready"|"ended"|"notice"|
// "clipboard-state",...} from the gateway. With the bastion's copy and paste off, nothing is
// pasted into the terminal or copied out of it (and the gateway drops marked pastes itself).
import { Terminal } from '/assets/xterm/lib/xterm.mjs';
import { FitAddon } from '/assets/addon-fit/lib/addon-fit.mjs';

const host = document.getElementById('terminal');
const status = document.getElementById('status');
const title = document.title.replace(/ · Rampart$/, '');
const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace' });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(host);
fit.fit();
window.rampartTerminal = term; // for tests and the curious: the buffer is readable

function setStatus(text, state) {
  status.textContent = `${title} · ${text}`;
  status.dataset.state = state;
}

const url = new URL(host.dataset.ws, location.href);
url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
url.searchParams.set('cols', term.cols);
url.searchParams.set('rows', term.rows);
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
const encoder = new TextEncoder();
let ended = false;
let clipboard = true;
const notice = (text) => { const n = document.getElementById('notice'); if (n) n.textContent = text; };
const refuseClipboard = (event) => {
  if (clipboard) return;
  event.preventDefault();
  event.stopImmediatePropagation();
  notice('Copy and paste are turned off for this bastion.');
};
// Before xterm.js's own listeners (capture, on its ancestor): pastes and copies both ways.
for (const kind of ['paste', 'copy', 'cut', 'drop']) host.addEventListener(kind, refuseClipboard, true);

ws.onmessage = (event) => {
  if (typeof event.data !== 'string') {
    term.write(new Uint8Array(event.data));
    return;
  }
  const message = JSON.parse(event.data);
  if (message.type === 'ready') {
    clipboard = message.clipboard !== false;
    setStatus('connected', 'connected');
    term.focus();
    // The file panel (files.js) works on this session.
    // (kept on the page too, should files.js load after this message)
    if (message.session) {
      document.body.dataset.session = message.session;
      document.dispatchEvent(new CustomEvent('rampart:ready', { detail: { session: message.session } }));
    }
  } else if (message.type === 'clipboard-state') {
    clipboard = message.on;
  } else if (message.type === 'notice') {
    // Someone joined (or left) this session: the user is told who and how.
    notice(message.text);
  } else if (message.type === 'ended') {
    ended = true;
    setStatus(`session ended: ${message.reason}`, 'ended');
  }
};
ws.onclose = (event) => {
  if (!ended) setStatus(`connection to the gateway closed${event.reason ? ': ' + event.reason : ''}`, 'ended');
  term.options.cursorBlink = false;
};
term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
term.onBinary((data) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
});
term.onResize(({ cols, rows }) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
});
// Copy and paste with Ctrl+Shift+C / Ctrl+Shift+V, as terminal emulators do (Ctrl+C is ^C).
term.attachCustomKeyEventHandler((e) => {
  if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
  if ((e.code === 'KeyC' || e.code === 'KeyV') && !clipboard) {
    notice('Copy and paste are turned off for this bastion.');
    return false;
  }
  if (e.code === 'KeyC' && term.hasSelection()) {
    navigator.clipboard.writeText(term.getSelection()).catch(() => {});
    return false;
  }
  if (e.code === 'KeyV') {
    navigator.clipboard.readText().then((text) => term.paste(text)).catch(() => {});
    return false;
  }
  return true;
});
let pending;
window.addEventListener('resize', () => {
  clearTimeout(pending);
  pending = setTimeout(() => fit.fit(), 50);
});
