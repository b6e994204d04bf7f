// Passkeys (WebAuthn) in the portal: the browser's own JSON forms of the options and answers
// (PublicKeyCredential.parse*OptionsFromJSON, credential.toJSON()), posted to the gateway.

const status = (text, isError) => {
  const el = document.getElementById('passkey-status');
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('error', Boolean(isError));
};

async function post(url, body, csrf) {
  const headers = { 'content-type': 'application/json' };
  if (csrf) headers['x-rampart-csrf'] = csrf;
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin' });
  const json = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(json.error?.message || `the gateway answered ${r.status}`);
  return json;
}

const supported = () => typeof PublicKeyCredential !== 'undefined'
  && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function';

const add = document.getElementById('add-passkey');
if (add) {
  add.addEventListener('click', async () => {
    if (!supported()) return status('This browser does not support passkeys.', true);
    try {
      const csrf = add.dataset.csrf;
      const options = await post('/portal/passkeys/register/start', {}, csrf);
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
      });
      const added = await post('/portal/passkeys/register/finish', credential.toJSON(), csrf);
      status(`Added ${added.name}.`);
    } catch (e) {
      status(`No passkey was added: ${e.message}`, true);
    }
  });
}

const signIn = document.getElementById('passkey-signin');
if (signIn) {
  signIn.addEventListener('click', async () => {
    if (!supported()) return status('This browser does not support passkeys.', true);
    const username = document.querySelector('input[name=username]').value.trim();
    if (!username) return status('Enter your user name first.', true);
    try {
      const options = await post('/portal/passkeys/login/start', { username });
      const credential = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
      });
      const done = await post('/portal/passkeys/login/finish', credential.toJSON());
      window.location.assign(done.next);
    } catch (e) {
      status(`Not signed in: ${e.message}`, true);
    }
  });
}
