// End-to-end: a recorded browser terminal, in real Chromium. The admin opens an SSH terminal
// on a bastion whose session recording is on, runs a command, and exits; the Rust test then
// finds, exports and verifies the recording.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', env('ADMIN_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.goto(`${url}/portal/connect?bastion=${encodeURIComponent(env('BASTION_ID'))}`);
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
  await tab.click('#terminal');
  await tab.keyboard.type('echo rec-$((6*7)) marmalade\n');
  await until('the command to print', async () => {
    const text = await tab.evaluate(() => {
      const b = window.rampartTerminal.buffer.active;
      const lines = [];
      for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
      return lines.join('\n');
    });
    return /^rec-42 marmalade\s*$/m.test(text);
  });
  await tab.keyboard.type('exit\n');
  await until('the session to end', async () => (await tab.textContent('#status')).includes('session ended'));
  step('a recorded browser terminal ran a command and ended');
});
