// End-to-end: RDP in the browser, in real Chromium driven by Playwright, against a live
// gateway and a real RDP server (freerdp-shadow-cli on an Xvfb display) that the Rust test
// started (tests/e2e/tests/browser_rdp.rs). The test paints the server's display with
// xsetroot and checks that the canvas shows that colour. Nothing here leaves loopback.
import { check, env, launchChromium, step, until as untilWithin, withBrowser } from './lib.mjs';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const display = env('RDP_DISPLAY');
const vmId = env('VM_ID');
mkdirSync(out, { recursive: true });
// An RDP server draws more slowly than a terminal echoes: 20 s by default.
const until = (what, fn, ms = 20000) => untilWithin(what, fn, ms);
/// Paints the RDP server's whole display one colour.
const paint = (colour, on = display) => execFileSync('xsetroot', ['-solid', colour], { env: { ...process.env, DISPLAY: on } });
/// The canvas pixel at (fx, fy) as fractions of its size.
const pixel = (tab, fx, fy) => tab.evaluate(([fx, fy]) => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data;
  return [d[0], d[1], d[2]];
}, [fx, fy]);
const near = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 8);

async function showsColour(tab, colour, rgb, on = display) {
  paint(colour, on);
  const seen = await until(`the canvas to show ${colour}`, async () => {
    const samples = [await pixel(tab, 0.5, 0.5), await pixel(tab, 0.1, 0.9), await pixel(tab, 0.9, 0.1)];
    return samples.every((s) => near(s, rgb)) ? samples : undefined;
  });
  return seen;
}

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${url}/portal`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', env('ADMIN_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  async function open(byVm, port = env('RDP_PORT'), user = 'someone', password = 'anything', expectError = false) {
    await page.goto(`${url}/portal`);
    const href = await page.getAttribute(byVm ? `tr[data-vm="${vmId}"] a` : '.bastion a.button', 'href');
    await page.goto(`${url}${href}`);
    if (!byVm) {
      await page.check('input[name=target][value=ip]');
      await page.fill('#ip', '127.0.0.1');
      await page.selectOption('#protocol', 'rdp');
      await page.fill('#port', port);
    } else {
      check((await page.inputValue('#protocol')) === 'rdp', 'a Windows VM defaults to RDP');
      check((await page.inputValue('#port')) === env('RDP_PORT'), 'with its registered RDP port');
    }
    check(await page.isHidden('#auth-choice'), 'RDP asks for a password, not a key');
    await page.fill('#username', user);
    await page.fill('#password', password);
    const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#connect')]);
    await tab.waitForLoadState();
    if (expectError) return tab;
    const state = await until('the desktop to connect', async () => {
      if (await tab.$('#reason')) return `error page: ${await tab.textContent('#reason')}`;
      const s = await tab.getAttribute('#status', 'data-state').catch(() => null);
      return s === 'connected' || s === 'ended' ? s : undefined;
    });
    check(state === 'connected', `desktop did not connect: ${state} ${await tab.textContent('body')}`);
    return tab;
  }

  let tab = await open(false);
  const seen = await showsColour(tab, '#cc6633', [204, 102, 51]);
  await tab.screenshot({ path: join(out, 'desktop.png') });
  step(`by IP: the canvas shows the server's display (${JSON.stringify(seen[0])})`);
  const again = await showsColour(tab, '#2277aa', [34, 119, 170]);
  step(`a change on the server reaches the canvas (${JSON.stringify(again[0])})`);
  const frames = await tab.evaluate(() => window.rampartDesktop.frames);
  check(frames >= 2, `frames drawn: ${frames}`);
  await tab.close();
  step('closing the tab ends the session');

  if (process.env.AUTH_PORT) {
    tab = await open(false, process.env.AUTH_PORT, process.env.AUTH_USER, 'wrong-password', true);
    const reason = await tab.textContent('#reason');
    check((await tab.getAttribute('#reason', 'data-code')) === 'TargetAuthenticationFailed', reason);
    step(`a wrong RDP password is refused: "${reason.trim()}"`);
    await tab.close();
    tab = await open(false, process.env.AUTH_PORT, process.env.AUTH_USER, process.env.AUTH_PASSWORD);
    step(`the right RDP password shows the desktop: ${JSON.stringify(await showsColour(tab, '#884422', [136, 68, 34], process.env.AUTH_DISPLAY))}`);
    await tab.close();
  }

  tab = await open(true);
  step(`by registered VM: ${JSON.stringify(await showsColour(tab, '#44aa55', [68, 170, 85]))}`);

  // Typing: a terminal window on the remote display writes the line it reads to a file.
  const typed = join(out, 'typed.txt');
  const xterm = spawn('xterm', ['-geometry', '60x8+0+0', '-e', 'bash', '-c', `read -r line; printf '%s' "$line" > ${typed}; sleep 60`],
    { env: { ...process.env, DISPLAY: display }, stdio: 'ignore', detached: true });
  try {
    await until('the xterm window to be drawn on the canvas', async () => !near(await pixel(tab, 0.05, 0.05), [68, 170, 85]));
    const box = await tab.locator('#screen').boundingBox();
    await tab.mouse.click(box.x + box.width * 0.1, box.y + box.height * 0.05);
    // As a person types it: Shift held for the capital and the exclamation mark.
    await tab.keyboard.type('hello rdp 42 ');
    await tab.keyboard.down('Shift');
    await tab.keyboard.press('KeyH');
    await tab.keyboard.press('Digit1');
    await tab.keyboard.up('Shift');
    await tab.keyboard.press('Enter');
    const line = await until('the typed line to reach the remote program', async () =>
      existsSync(typed) ? readFileSync(typed, 'utf8') : undefined);
    check(line === 'hello rdp 42 H!', `the remote program read ${JSON.stringify(line)}`);
    step(`typing reaches the remote desktop: ${JSON.stringify(line)}`);
    await tab.screenshot({ path: join(out, 'desktop-xterm.png') });

    // A click lands where it was aimed: the server's pointer is where the canvas was clicked.
    await tab.mouse.click(box.x + box.width * 0.75, box.y + box.height * 0.6);
    const want = [Math.round(1024 * 0.75), Math.round(768 * 0.6)];
    const at = await until('the pointer to move on the server', async () => {
      const shell = execFileSync('xdotool', ['getmouselocation', '--shell'], { env: { ...process.env, DISPLAY: display } }).toString();
      const x = Number(/X=(\d+)/.exec(shell)[1]);
      const y = Number(/Y=(\d+)/.exec(shell)[1]);
      return Math.abs(x - want[0]) <= 2 && Math.abs(y - want[1]) <= 2 ? [x, y] : undefined;
    });
    step(`a click lands where it was aimed: canvas ${want} -> server pointer ${at}`);
  } finally {
    try { process.kill(-xterm.pid); } catch { /* already gone */ }
  }
  await tab.close();
});
