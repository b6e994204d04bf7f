// End-to-end: a shareable link in real Chromium, with no Rampart account. The link's page
// asks for the machine's own credentials and opens a terminal on the link's VM (a target
// slipped into the form is ignored); the Rust test then deletes the link, and the live
// terminal ends and the link's page says it is gone. An expired link is refused naming it.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });
const link = env('LINK');

const screen = (tab) => tab.evaluate(() => {
  const b = window.rampartTerminal.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
  return lines.join('\n');
});

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  // A phone-sized window: the form is used there too.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 740 } });
  const page = await context.newPage();
  page.on('console', (m) => console.log(`console: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(link);
  check((await page.textContent('h1')).includes(env('VM_NAME')), 'the page names the linked VM');
  check(await page.locator('form[action="/portal/signout"]').count() === 0, 'nobody is signed in');
  await page.fill('#username', env('SSH_USER'));
  await page.fill('#password', env('SSH_PASSWORD'));
  // Another VM slipped into the form: the link decides the target, not the form.
  await page.evaluate((other) => {
    const form = document.getElementById('connect-form');
    for (const [name, value] of [['vm', other], ['target', 'ip'], ['ip', '127.0.0.3'], ['bastion', 'x']]) {
      const input = document.createElement('input');
      input.type = 'hidden'; input.name = name; input.value = value;
      form.appendChild(input);
    }
  }, env('OTHER_VM_ID'));
  await Promise.all([page.waitForNavigation(), page.press('#password', 'Enter')]);
  await until('the terminal to connect', async () => (await page.getAttribute('#status', 'data-state')) === 'connected');
  await page.click('#terminal');
  await until('the prompt', async () => (await screen(page)).includes('$'));
  await page.keyboard.type('echo shared-$((6*7))\n');
  await until('the command to run', async () => /^shared-42\s*$/m.test(await screen(page)));
  step('a shareable link opens a terminal to its VM without signing in');

  const portal = await context.newPage();
  await portal.goto(new URL('/portal/connect', link).href);
  check(portal.url().includes('/portal/signin'), `the link signs nobody in to the portal: ${portal.url()}`);
  await portal.close();

  writeFileSync(join(out, 'connected'), 'yes');
  await until('the link to be deleted', async () => existsSync(join(out, 'deleted')), 60000);
  await until('the live terminal to end', async () => (await page.getAttribute('#status', 'data-state')) === 'ended');
  const status = await page.textContent('#status');
  check(/shareable link/.test(status), `the terminal says why it ended: ${status}`);
  const again = await context.newPage();
  const answer = await again.goto(link);
  check(answer.status() === 404, `a deleted link answers 404, not ${answer.status()}`);
  check((await again.textContent('body')).includes('does not exist'), 'and says the link is gone');
  step('a deleted link stops working, and its live terminal ends');

  const expired = await again.goto(env('EXPIRED_LINK'));
  check(expired.status() === 403, `an expired link is refused, not ${expired.status()}`);
  check((await again.textContent('body')).includes('expired at'), 'naming its expiry');
  step('an expired link stops working');
});
