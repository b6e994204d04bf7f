// The Connect page: shows the fields that apply, fills the port from the protocol and the
// chosen VM, and reads a key file into the form (it is sent once, never stored).
const form = document.getElementById('connect-form');
const port = document.getElementById('port');
const protocol = document.getElementById('protocol');
const vm = document.getElementById('vm');

function defaultPort() {
  const chosen = vm && vm.selectedOptions[0];
  const byIp = form.target.value === 'ip';
  if (!byIp && chosen) return protocol.value === 'rdp' ? chosen.dataset.portRdp : chosen.dataset.portSsh;
  return protocol.value === 'rdp' ? '3389' : '22';
}

function showAuth() {
  const rdp = protocol.value === 'rdp';
  document.getElementById('auth-choice').hidden = rdp;
  document.getElementById('rdp-domain').hidden = !rdp;
  // An .rdp file is for a remote desktop: offered only with RDP chosen (a shareable link's
  // page, which shares this script, has none).
  const rdpFile = document.getElementById('rdp-file-row');
  if (rdpFile) rdpFile.hidden = !rdp;
  document.getElementById('video-row').hidden = !(rdp && video);
  if (rdp) form.querySelector('input[name=auth][value=password]').checked = true;
  const key = form.auth.value === 'key';
  document.getElementById('auth-password').hidden = key;
  document.getElementById('auth-key').hidden = !key;
}

protocol.addEventListener('change', () => { port.value = defaultPort(); showAuth(); });
// A remote desktop the size of this window (the tab it opens in has the same size).
document.getElementById('width').value = Math.max(640, Math.min(3840, window.innerWidth));
document.getElementById('height').value = Math.max(480, Math.min(2160, window.innerHeight - 28));
// A browser that decodes H.264 (WebCodecs) may take the server's video as it is (on by
// default: far less work for the gateway, smoother motion); others get pictures.
let video = false;
if (window.VideoDecoder) {
  VideoDecoder.isConfigSupported({ codec: 'avc1.64002a', optimizeForLatency: true })
    .then((r) => {
      video = r.supported;
      if (video) document.getElementById('video').value = 'h264';
      showAuth();
    })
    .catch(() => {});
}
vm && vm.addEventListener('change', () => {
  const os = vm.selectedOptions[0] && vm.selectedOptions[0].dataset.os;
  protocol.value = os === 'Windows' ? 'rdp' : 'ssh';
  port.value = defaultPort();
  showAuth();
  form.querySelector('input[name=target][value=vm]').checked = true;
});
const ip = document.getElementById('ip');
ip && ip.addEventListener('input', () => { form.querySelector('input[name=target][value=ip]').checked = true; });
for (const r of form.querySelectorAll('input[name=auth]')) r.addEventListener('change', showAuth);
document.getElementById('key-file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (file) document.getElementById('private-key').value = await file.text();
});
showAuth();
