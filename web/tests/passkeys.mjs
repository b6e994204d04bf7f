// End-to-end: a passkey in real Chromium, with its virtual authenticator (DevTools protocol's
// WebAuthn domain: a platform authenticator with user verification, no hardware). The user
// signs in with a password, adds a passkey on the Security page, signs out, and signs in
// with the passkey alone. The gateway is reached as https://localhost (WebAuthn needs a name,
// not an IP address).
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const url = env('RAMPART_URL');
const user = env('PORTAL_USER');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', env('PORTAL_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(page.url().endsWith('/portal'), `signed in with the password, not ${page.url()}`);

  await page.goto(`${url}/portal/mfa`);
  check(await page.isVisible('#no-passkeys'), 'no passkey at first');
  await page.click('#add-passkey');
  const added = await until('the passkey to be added', async () => {
    const t = (await page.textContent('#passkey-status')) || '';
    return t.trim() ? t : undefined;
  });
  check(added.startsWith('Added'), `the passkey is added: ${added}`);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1, `the authenticator holds one credential, not ${credentials.length}`);
  step(`a passkey is added on the Security page (${added.trim()})`);

  await page.goto(`${url}/portal`);
  await Promise.all([page.waitForNavigation(), page.click('.signout button')]);
  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', user);
  await page.click('#passkey-signin');
  await until('the portal after the passkey', async () => page.url().endsWith('/portal') && (await page.$('.who')), 20000);
  const who = (await page.textContent('.who')).trim();
  check(who === user, `signed in as ${user}, not ${who}`);
  step('signed in with the passkey alone (no password, no code)');
});
