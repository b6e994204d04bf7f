// The browser terminal's file panel: browse the target (SFTP on the terminal's own SSH
// connection), upload files (picked or dropped, several at once, a progress bar each; each is
// streamed, never held whole) and download them, a folder as one tar archive. The gateway decides and audits each
// transfer; a refusal is shown here with its reason.
const panel = document.getElementById('files');
const toggle = document.getElementById('files-toggle');
const list = document.getElementById('files-list');
const where = document.getElementById('files-path');
const error = document.getElementById('files-error');
const transfers = document.getElementById('files-transfers');
const picker = document.getElementById('files-upload');
const note = document.getElementById('files-note');
let session = null;
let cwd = '.';

const api = (what, params) => `/portal/files/${encodeURIComponent(session)}${what}?${new URLSearchParams(params)}`;
const size = (n) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB`
  : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / (1 << 30)).toFixed(2)} GiB`);
const say = (text) => { error.textContent = text || ''; error.hidden = !text; };
const message = async (response) => {
  try { return (await response.json()).error.message; } catch { return `the gateway answered ${response.status}`; }
};

async function show(path) {
  const response = await fetch(api('', { path }));
  if (!response.ok) { say(await message(response)); return; }
  const listing = await response.json();
  say(listing.upload && listing.download ? `Files are not available: ${listing.download}` : '');
  panel.dataset.upload = listing.upload ? 'off' : 'on';
  panel.dataset.download = listing.download ? 'off' : 'on';
  // What is off, before anyone tries it.
  const off = [listing.upload, listing.download].filter(Boolean);
  note.textContent = off.join(' ');
  note.hidden = off.length === 0 || off.length === 2;
  picker.disabled = false; // a refusal is shown when it comes, with its reason
  if (!listing.path) return;
  cwd = listing.path;
  where.textContent = cwd;
  list.replaceChildren(...listing.entries.map((entry) => {
    const li = document.createElement('li');
    li.dataset.name = entry.name;
    li.dataset.dir = entry.dir;
    const full = `${cwd.replace(/\/$/, '')}/${entry.name}`;
    if (entry.dir) {
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'link';
      open.textContent = `${entry.name}/`;
      open.addEventListener('click', () => show(full));
      // The whole folder, as one tar archive.
      const archive = document.createElement('a');
      archive.href = api('/download', { path: full });
      archive.download = `${entry.name}.tar`;
      archive.className = 'archive';
      archive.textContent = '.tar';
      archive.setAttribute('aria-label', `Download ${entry.name} as a tar archive`);
      li.append(open, archive);
    } else if (!entry.file) {
      const other = document.createElement('span');
      other.textContent = entry.name;
      other.title = 'not a regular file';
      li.append(other);
    } else {
      const link = document.createElement('a');
      link.href = api('/download', { path: full });
      link.download = entry.name;
      link.textContent = entry.name;
      const bytes = document.createElement('span');
      bytes.className = 'size';
      bytes.textContent = size(entry.size);
      li.append(link, bytes);
    }
    return li;
  }));
}

// Uploads one file; resolves to the refusal's words, or nothing when it went up.
function upload(file) {
  const li = document.createElement('li');
  li.dataset.file = file.name;
  li.dataset.state = 'sending';
  const label = document.createElement('span');
  label.textContent = `${file.name} (${size(file.size)})`;
  const bar = document.createElement('progress');
  bar.max = file.size || 1;
  bar.value = 0;
  const state = document.createElement('span');
  state.className = 'state';
  li.append(label, bar, state);
  transfers.append(li);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', api('/upload', { dir: cwd, name: file.name }));
    xhr.upload.onprogress = (e) => { bar.value = e.loaded; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 200) {
        bar.value = bar.max;
        li.dataset.state = 'done';
        li.dataset.sha256 = body.sha256;
        state.textContent = 'uploaded';
      } else {
        li.dataset.state = 'refused';
        const why = (body.error && body.error.message) || `the gateway answered ${xhr.status}`;
        state.textContent = why;
        resolve(`${file.name}: ${why}`);
        return;
      }
      resolve();
    };
    xhr.onerror = () => {
      li.dataset.state = 'failed';
      state.textContent = 'the connection broke';
      resolve(`${file.name}: the connection to the gateway broke`);
    };
    xhr.send(file);
  });
}

async function uploadAll(files) {
  say('');
  const refused = (await Promise.all([...files].map(upload))).filter(Boolean);
  await show(cwd);
  if (refused.length) say(refused.join('\n'));
}

const ready = (id) => { session = id; toggle.hidden = false; };
document.addEventListener('rampart:ready', (event) => ready(event.detail.session));
if (document.body.dataset.session) ready(document.body.dataset.session);
toggle.addEventListener('click', () => {
  panel.hidden = !panel.hidden;
  toggle.setAttribute('aria-expanded', String(!panel.hidden));
  window.dispatchEvent(new Event('resize')); // the terminal refits beside the panel
  if (!panel.hidden) show(cwd);
});
document.getElementById('files-up').addEventListener('click', () => show(`${cwd.replace(/\/$/, '')}/..`));
picker.addEventListener('change', () => { uploadAll(picker.files); picker.value = ''; });
panel.addEventListener('dragover', (e) => { e.preventDefault(); panel.dataset.drop = 'on'; });
panel.addEventListener('dragleave', () => { delete panel.dataset.drop; });
panel.addEventListener('drop', (e) => {
  e.preventDefault();
  delete panel.dataset.drop;
  uploadAll(e.dataTransfer.files);
});
