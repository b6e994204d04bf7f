// End-to-end: just-in-time access in the portal, in real Chromium. An eligible user is
// refused on the Connect page with a "Request access" button; activates there; opens an SSH
// terminal; then the Rust test revokes the activation and the terminal shows, within a
// second, that the session ended and why (the activation).
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', env('PORTAL_USER'));
  await page.fill('input[name=password]', env('PORTAL_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  const connect = `${url}/portal/connect?bastion=${encodeURIComponent(env('BASTION_ID'))}`;
  await page.goto(connect);
  const code = await page.getAttribute('#reason', 'data-code');
  check(code.includes('ActivationRequired'), `refused for want of an activation, not ${code}`);
  check((await page.textContent('#reason')).includes('rampart role activate'), 'the refusal says how to activate');
  await Promise.all([page.waitForNavigation(), page.click('#request-access')]);
  const form = 'form.eligible[data-role="Reader"]';
  await page.fill(`${form} input[name=duration]`, 'PT1H');
  await page.fill(`${form} input[name=justification]`, 'browser test');
  await Promise.all([page.waitForNavigation(), page.click(`${form} button[type=submit]`)]);
  check(await page.isVisible('#mine tr[data-state="active"]'), 'the activation is active');
  step('refused with "Request access", then activated in the portal');

  await page.goto(connect);
  await page.check('input[name=target][value=ip]');
  await page.fill('#ip', '127.0.0.1');
  await page.fill('#port', env('SSH_PORT'));
  await page.fill('#username', env('SSH_USER'));
  await page.fill('#password', env('SSH_PASSWORD'));
  const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#connect')]);
  await tab.waitForLoadState();
  const state = await until('the terminal to connect', async () => {
    if (await tab.$('#reason')) return 'error page';
    const s = await tab.getAttribute('#status', 'data-state').catch(() => null);
    return s === 'connected' || s === 'ended' ? s : undefined;
  });
  check(state === 'connected', `terminal did not connect: ${await tab.textContent('body')}`);
  step('the activation admits a browser terminal');

  writeFileSync(join(out, 'terminal-open'), 'yes');
  await until('the activation to be revoked', async () => existsSync(join(out, 'revoked')), 60000);
  const ended = await until('the terminal to show the session ended', async () => {
    const s = await tab.textContent('#status');
    return s.includes('session ended') ? s : undefined;
  }, 10000);
  writeFileSync(join(out, 'ended-at'), String(Date.now()));
  const revokedAt = Number(readFileSync(join(out, 'revoked'), 'utf8'));
  check(ended.includes('activation'), `the user is told the activation ended it: ${ended}`);
  step(`the terminal ended ${Date.now() - revokedAt} ms after the revocation: ${ended.trim()}`);
});
