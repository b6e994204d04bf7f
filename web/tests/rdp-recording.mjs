// End-to-end: a recorded browser desktop, in real Chromium. The admin opens an RDP desktop
// (freerdp-shadow-cli on an Xvfb display the Rust test started) on a recording bastion, sees
// the display painted one colour and then another, and closes it; then the portal's player
// plays the recording: at its start the first colour, at its end the second. Meanwhile an
// operator watches the desktop live from the bastion's page, and the user is told.
import { check, env, launchChromium, step, until as untilWithin, withBrowser } from './lib.mjs';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const display = env('RDP_DISPLAY');
const bastion = env('BASTION_ID');
mkdirSync(out, { recursive: true });
const until = (what, fn, ms = 20000) => untilWithin(what, fn, ms);
const paint = (colour) => execFileSync('xsetroot', ['-solid', colour], { env: { ...process.env, DISPLAY: display } });
const pixel = (tab, fx, fy) => tab.evaluate(([fx, fy]) => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data;
  return [d[0], d[1], d[2]];
}, [fx, fy]);
const near = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 8);
const shows = (tab, rgb) => until(`the canvas to show ${rgb}`, async () => {
  const samples = [await pixel(tab, 0.5, 0.5), await pixel(tab, 0.1, 0.9), await pixel(tab, 0.9, 0.1)];
  return samples.every((s) => near(s, rgb)) ? samples : undefined;
});
const GREEN = [0x2a, 0x7f, 0x3c];
const PLUM = [0x8c, 0x3d, 0x5a];

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', env('ADMIN_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  /// One recorded desktop: as a browser with WebCodecs (the server's H.264 passed through and
  /// recorded) or without (pictures).
  async function recorded(video) {
    const mode = video ? 'H.264 video' : 'pictures';
    paint('#2a7f3c');
    await page.goto(`${url}/portal/connect?bastion=${encodeURIComponent(bastion)}`);
    await page.check('input[name=target][value=ip]');
    await page.fill('#ip', '127.0.0.1');
    await page.selectOption('#protocol', 'rdp');
    await page.fill('#port', env('RDP_PORT'));
    await page.fill('#username', 'someone');
    await page.fill('#password', 'anything');
    // Chromium decodes H.264: the page offers the video, on; a person may turn it off.
    await until('the page to find an H.264 decoder', async () => (await page.inputValue('#video')) === 'h264');
    check(await page.isVisible('#video') && await page.isChecked('#video'), 'RDP offers the video, on');
    if (!video) await page.uncheck('#video');
    const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#connect')]);
    await tab.waitForLoadState();
    const state = await until('the desktop to connect', async () => {
      if (await tab.$('#reason')) return `error page: ${await tab.textContent('#reason')}`;
      const s = await tab.getAttribute('#status', 'data-state').catch(() => null);
      return s === 'connected' || s === 'ended' ? s : undefined;
    });
    check(state === 'connected', `desktop did not connect: ${state}`);
    await shows(tab, GREEN);

    // An operator watches the desktop live from the bastion's page; the user is told.
    const operator = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const ops = await operator.newPage();
    await ops.goto(`${url}/portal/signin`);
    await ops.fill('input[name=username]', 'admin');
    await ops.fill('input[name=password]', env('ADMIN_PASSWORD'));
    await Promise.all([ops.waitForNavigation(), ops.click('button[type=submit]')]);
    await ops.goto(`${url}/portal/bastion?id=${encodeURIComponent(bastion)}`);
    check(!(await ops.$('tr[data-session] a.join-interact')), 'a desktop offers Watch, not Join');
    await Promise.all([ops.waitForNavigation(), ops.click('tr[data-session] a.join')]);
    await until('the watcher to connect', async () => (await ops.getAttribute('#status', 'data-state')) === 'connected');
    await shows(ops, GREEN);
    const told = await until('the user to be told', async () => {
      const t = await tab.textContent('#notice');
      return t.includes('watching') ? t : undefined;
    });
    step(`an operator watches the live desktop; the user sees "${told}"`);

    await new Promise((r) => setTimeout(r, 1500));
    paint('#8c3d5a');
    await shows(tab, PLUM);
    await shows(ops, PLUM);
    await ops.screenshot({ path: join(out, 'desktop-watched.png') });
    const drawnAs = await tab.evaluate(() => window.rampartDesktop);
    check(video ? drawnAs.videoFrames > 0 : drawnAs.videoFrames === 0, `${mode}: ${JSON.stringify(drawnAs)}`);
    step(`a change on the desktop reaches the watcher too (${mode})`);
    await operator.close();
    await new Promise((r) => setTimeout(r, 1500));
    await tab.close();
    step('a recorded browser desktop showed green, then plum, and closed');

    const list = `${url}/portal/recordings?bastion=${encodeURIComponent(bastion)}`;
    await until('the recording to be listed as complete', async () => {
      await page.goto(list);
      // (The second desktop's recording is the newest, listed first.)
      return (await page.$$('tr[data-recording][data-complete="true"]')).length >= (video ? 1 : 2);
    });
    await Promise.all([page.waitForNavigation(), page.click('tr[data-recording] a.play')]);
    await until('the player to load', async () => page.evaluate(() => window.rampartPlayer?.ready));
    const pictures = await page.evaluate(() => window.rampartPlayer.pictures);
    check(pictures >= 2, `the recording holds pictures: ${pictures}`);
    // Seeking through it: green shows, and later plum, which is also the last screen.
    const duration = await page.evaluate(() => window.rampartPlayer.duration);
    let greenAt = null;
    let plumAt = null;
    for (let step = 0; step <= Math.ceil(duration / 0.25) && plumAt === null; step += 1) {
      const t = Math.min(step * 0.25, duration);
      await page.evaluate((t) => window.rampartPlayer.seekTo(t), t);
      const seen = await pixel(page, 0.5, 0.5);
      if (greenAt === null && near(seen, GREEN)) greenAt = t;
      if (greenAt !== null && near(seen, PLUM)) plumAt = t;
    }
    check(greenAt !== null && plumAt !== null, `seeking shows green (${greenAt} s), then plum (${plumAt} s) of ${duration} s`);
    await page.evaluate(() => window.rampartPlayer.seekTo(window.rampartPlayer.duration));
    const end = await pixel(page, 0.5, 0.5);
    check(near(end, PLUM), `at its end the player shows plum: ${end}`);
    await page.screenshot({ path: join(out, video ? 'desktop-player-video.png' : 'desktop-player.png') });
    step(`the portal's player plays the desktop: green at ${greenAt} s, plum from ${plumAt} s to the end (${pictures} pictures; ${mode})`);
    await page.evaluate(() => window.rampartPlayer.seekTo(0));
    await page.click('#play');
    await until('playing to reach the end', async () => (await page.textContent('#play')) === 'Play', 30000);
    check(near(await pixel(page, 0.5, 0.5), PLUM), 'playing it through ends on plum');
    step(`playing it through ends on the last screen (${mode})`);
  }
  await recorded(true);
  await recorded(false);
});
