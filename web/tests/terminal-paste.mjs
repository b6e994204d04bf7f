// End-to-end: the bastion's copy-and-paste setting in the browser terminal, in real Chromium.
// A paste reaches the target while it is on; once the Rust test turns it off (the session
// still running), a paste from the page is refused with a notice, and a marked paste sent
// anyway (xterm.js's own paste, bracketed by the shell's request) is dropped by the gateway.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const screen = (tab) => tab.evaluate(() => {
  const b = window.rampartTerminal.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
  return lines.join('\n');
});
/// A paste as the browser makes it (Ctrl+V, the context menu): a paste event on xterm's textarea.
const pasteEvent = (tab, text) => tab.evaluate((text) => {
  const data = new DataTransfer();
  data.setData('text/plain', text);
  document.querySelector('#terminal textarea').dispatchEvent(
    new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}, text);

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
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
  await until('the terminal to connect', async () => (await tab.getAttribute('#status', 'data-state')) === 'connected');
  await tab.click('#terminal');
  await until('the prompt', async () => (await screen(tab)).includes('$'));

  await pasteEvent(tab, 'echo pasted-$((1+2))');
  await tab.keyboard.press('Enter');
  await until('the pasted command to run', async () => /^pasted-3\s*$/m.test(await screen(tab)));
  step('with copy and paste on, a paste reaches the target');

  writeFileSync(join(out, 'pasted-on'), 'yes');
  await until('copy and paste to be turned off', async () => existsSync(join(out, 'turned-off')), 60000);
  // The page hears of the change while the session runs.
  await new Promise((r) => setTimeout(r, 1000));
  await pasteEvent(tab, 'echo pasted-$((2+5))');
  await tab.keyboard.press('Enter');
  await until('the refusal to show', async () => (await tab.textContent('#notice')).includes('turned off'));
  // The marked paste needs the shell's new prompt to have asked for bracketed pastes again
  // (under load its output can lag: an unmarked paste is typing, which nothing can tell apart).
  await until('the shell to ask for marked pastes', async () => tab.evaluate(() => window.rampartTerminal.modes.bracketedPasteMode));
  await tab.evaluate(() => window.rampartTerminal.paste('echo sneaked-$((3+3))'));
  await tab.keyboard.type('echo typed-$((4+4))\n');
  await until('the typed command to run', async () => /^typed-8\s*$/m.test(await screen(tab)));
  const text = await screen(tab);
  check(!/^pasted-7\s*$/m.test(text), 'a paste from the page does not reach the target');
  check(!/^sneaked-6\s*$/m.test(text), 'a marked paste sent anyway is dropped by the gateway');
  step('with copy and paste off, pastes do not reach the target; typing does');
});
