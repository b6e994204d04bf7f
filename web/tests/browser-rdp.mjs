// End-to-end: RDP in the browser, in real Chromium driven by Playwright, against a live
// gateway and a real RDP server (freerdp-shadow-cli on an Xvfb display) that the Rust test
// started (tests/e2e/tests/browser_rdp.rs). The test paints the server's display with
// xsetroot and checks that the canvas shows that colour. Nothing here leaves loopback.
import { check, env, launchChromium, step, until as untilWithin, withBrowser } from './lib.mjs';
import { matchesScreenshot, photo, pixel, screenshot, show } from './screen.mjs';
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
const near = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 8);
/// A digest of a region of the canvas (desktop pixels), to see it change.
const regionDigest = (tab, x, y, w, h) => tab.evaluate(([x, y, w, h]) => {
  const d = document.getElementById('screen').getContext('2d').getImageData(x, y, w, h).data;
  let hash = 2166136261;
  for (let i = 0; i < d.length; i++) hash = Math.imul(hash ^ d[i], 16777619);
  return hash >>> 0;
}, [x, y, w, h]);

async function showsColour(tab, colour, rgb, on = display, tolerance = 8) {
  paint(colour, on);
  let last;
  const seen = await until(`the canvas to show ${colour}`, async () => {
    const samples = [await pixel(tab, 0.5, 0.5), await pixel(tab, 0.1, 0.9), await pixel(tab, 0.9, 0.1)];
    last = samples;
    return samples.every((s) => s.every((v, i) => Math.abs(v - rgb[i]) <= tolerance)) ? samples : undefined;
  }).catch(async (e) => {
    const drawn = await tab.evaluate(() => window.rampartDesktop).catch(() => ({}));
    throw new Error(`${e.message}; the canvas shows ${JSON.stringify(last)}; drawn: ${JSON.stringify(drawn)}`);
  });
  return seen;
}

const browser = await launchChromium();
let open;

/// xrdp: a whole Xorg session of a local user, a terminal in it, and the text clipboard.
async function xrdpSteps() {
  const user = env('AUTH_USER');
  // xrdp-sesman takes the first display from XRDP_DISPLAY on whose X socket and probe ports
  // (6000 + n, 59000 + n, …) are free; a client's random port can hold one of them at that
  // moment, so the display it really chose is read from its log once the session starts.
  let xd = env('XRDP_DISPLAY');
  const sesmanLog = join(env('XRDP_LOG_DIR'), 'sesman.log');
  const chosenDisplay = () => untilWithin('xrdp-sesman to start the session', async () => {
    const log = existsSync(sesmanLog) ? readFileSync(sesmanLog, 'utf8') : '';
    const found = [...log.matchAll(/Session started successfully for user (\S+) on display (\d+)/g)]
      .filter((m) => m[1] === user);
    return found.length ? `:${found[found.length - 1][2]}` : undefined;
  }, 60000);
  const xenv = { XAUTHORITY: `/home/${user}/.Xauthority` };
  const asUser = (args, input) => execFileSync('runuser',
    ['-u', user, '--', 'env', `DISPLAY=${xd}`, `XAUTHORITY=${xenv.XAUTHORITY}`, ...args],
    { input, stdio: [input === undefined ? 'ignore' : 'pipe', input === undefined ? 'pipe' : 'ignore', 'ignore'], timeout: 5000 });
  const copyOnRemote = (text) => asUser(['xclip', '-selection', 'clipboard', '-i'], text);
  const pasteOnRemote = () => { try { return asUser(['xclip', '-selection', 'clipboard', '-o']).toString(); } catch { return ''; } };
  const nonce = Math.random().toString(36).slice(2, 8);

  let tab = await open(false, env('XRDP_PORT'), user, env('AUTH_PASSWORD'));
  xd = await chosenDisplay();
  const pairs = await matchesScreenshot(tab, xd, xenv, [[0.5, 0.5], [0.9, 0.9], [0.05, 0.95], [0.95, 0.05], [0.2, 0.1]], 8, 60000);
  // This xrdp has no graphics pipeline: the browser that asked for video gets pictures.
  check((await tab.evaluate(() => window.rampartDesktop.videoFrames)) === 0, 'xrdp without the graphics pipeline sends no video');
  await tab.screenshot({ path: join(out, 'xrdp-desktop.png') });
  step(`xrdp: the canvas matches a screenshot of the server's display (${JSON.stringify(pairs.map((p) => p[0]))})`);

  // The terminal at +20+20 takes what is typed into it once it has the focus.
  const box = await tab.locator('#screen').boundingBox();
  const size = await tab.evaluate(() => [document.getElementById('screen').width, document.getElementById('screen').height]);
  await tab.mouse.click(box.x + (60 * box.width) / size[0], box.y + (40 * box.height) / size[1]);
  // (After the focus change has been drawn, so only the typing can change the region.)
  await new Promise((r) => setTimeout(r, 1000));
  const before = await regionDigest(tab, 20, 20, 360, 100);
  await tab.keyboard.type(`xrdp typed ${nonce}`);
  await until('the typed text to show on the canvas', async () => (await regionDigest(tab, 20, 20, 360, 100)) !== before);
  await tab.keyboard.press('Enter');
  const typedFile = `/home/${user}/typed.txt`;
  const line = await until('the typed line to reach the xrdp terminal', async () =>
    existsSync(typedFile) ? readFileSync(typedFile, 'utf8') : undefined);
  check(line === `xrdp typed ${nonce}`, `the terminal read ${JSON.stringify(line)}`);
  step(`xrdp: typing reaches the terminal and changes the canvas: ${JSON.stringify(line)}`);

  // Copied there, it shows in the page's clipboard panel (and the browser's clipboard).
  const copied = `copied on xrdp ${nonce}\nsecond line`;
  copyOnRemote(copied);
  await until('the remote clipboard text in the browser', async () =>
    (await tab.evaluate(() => window.rampartDesktop.clipboard)) === copied);
  check(await tab.isVisible('#clipboard-toggle'), 'the page offers its clipboard panel');
  await tab.click('#clipboard-toggle');
  check((await tab.inputValue('#clipboard')) === copied, 'the panel shows the copied text');
  step(`xrdp: text copied on the remote desktop reaches the browser: ${JSON.stringify(copied)}`);

  const given = `pasted from the browser ${nonce} ✓\nline two`;
  await tab.fill('#clipboard', given);
  // RDP carries text with Windows line ends (as FreeRDP's client sends it too); xrdp passes
  // them on to X as they are.
  const pasted = await until('the browser text to be pasted on the remote desktop', async () => {
    const text = pasteOnRemote();
    return text === given.replace(/\n/g, '\r\n') ? text : undefined;
  }).catch((e) => { throw new Error(`${e.message}; the remote desktop pastes ${JSON.stringify(pasteOnRemote())}`); });
  step(`xrdp: text from the browser is pasted on the remote desktop: ${JSON.stringify(pasted)}`);

  // Turned off on the operator page: the live session stops carrying text at once.
  const ops = await tab.context().newPage();
  await ops.goto(`${url}/portal`);
  await ops.click('.bastion a[href^="/portal/bastion"]');
  await ops.uncheck('input[name=copy_paste]');
  await Promise.all([ops.waitForNavigation(), ops.click('#settings button[type=submit]')]);
  check((await ops.textContent('#notice')).includes('applied'), 'the operator is told the change applied');
  await until('the clipboard panel to go away', async () => !(await tab.isVisible('#clipboard-toggle')));
  copyOnRemote(`after off ${nonce}`);
  const blocked = `blocked ${nonce}`;
  // As a page that ignored the change would: the gateway itself must drop the text.
  await tab.evaluate((text) => {
    document.getElementById('clipboard-toggle').hidden = false;
    const t = document.getElementById('clipboard');
    t.value = text;
    t.dispatchEvent(new Event('input'));
  }, blocked);
  await new Promise((r) => setTimeout(r, 3000));
  const inBrowser = await tab.evaluate(() => window.rampartDesktop.clipboard);
  check(inBrowser === copied, `the browser got ${JSON.stringify(inBrowser)} with copy and paste off`);
  const onRemote = pasteOnRemote();
  check(onRemote === `after off ${nonce}`, `the remote desktop pasted ${JSON.stringify(onRemote)} with copy and paste off`);
  step(`xrdp: with copy and paste turned off, no text crosses either way (remote pastes ${JSON.stringify(onRemote)})`);
  await tab.close();

  tab = await open(env('XRDP_VM_ID'), env('XRDP_PORT'), user, env('AUTH_PASSWORD'));
  const byVm = await matchesScreenshot(tab, xd, xenv, [[0.5, 0.5], [0.9, 0.9], [0.2, 0.1]]);
  step(`xrdp by registered VM: the canvas matches a screenshot of the server's display (${JSON.stringify(byVm.map((p) => p[0]))})`);
  check(!(await tab.isVisible('#clipboard-toggle')), 'a new session offers no clipboard panel');
  copyOnRemote(`new session ${nonce}`);
  await new Promise((r) => setTimeout(r, 2000));
  check((await tab.evaluate(() => window.rampartDesktop.clipboard)) === undefined, 'no text reaches a new session');
  step('xrdp: a new session with copy and paste off offers no clipboard');
  await tab.close();
  // Back on, for what follows.
  await ops.goto(ops.url().split('&notice')[0]);
  await ops.check('input[name=copy_paste]');
  await Promise.all([ops.waitForNavigation(), ops.click('#settings button[type=submit]')]);
  await ops.close();
}

await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${url}/portal`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', env('ADMIN_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  // byVm: false (by IP address) or the registered VM's resource ID (true: the Windows VM).
  // pictures: as a browser without WebCodecs (the gateway then sends pictures, never video).
  open = async function (byVm, port = env('RDP_PORT'), user = 'someone', password = 'anything', expectError = false, pictures = false) {
    if (byVm === true) byVm = vmId;
    await page.goto(`${url}/portal`);
    const href = await page.getAttribute(byVm ? `tr[data-vm="${byVm}"] a` : '.bastion a.button', 'href');
    await page.goto(`${url}${href}`);
    if (!byVm) {
      await page.check('input[name=target][value=ip]');
      await page.fill('#ip', '127.0.0.1');
      await page.selectOption('#protocol', 'rdp');
      await page.fill('#port', port);
    } else {
      if (byVm === vmId) check((await page.inputValue('#protocol')) === 'rdp', 'a Windows VM defaults to RDP');
      else await page.selectOption('#protocol', 'rdp');
      check((await page.inputValue('#port')) === port, 'with its registered RDP port');
    }
    check(await page.isHidden('#auth-choice'), 'RDP asks for a password, not a key');
    await page.fill('#username', user);
    await page.fill('#password', password);
    if (pictures) await page.evaluate(() => { document.getElementById('video').value = ''; });
    else await until('the page to find an H.264 decoder (WebCodecs)', async () => (await page.inputValue('#video')) === 'h264');
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
  };

  let tab = await open(false, env('RDP_PORT'), 'someone', 'anything', false, true);
  const seen = await showsColour(tab, '#cc6633', [204, 102, 51]);
  await matchesScreenshot(tab, display, {}, [[0.5, 0.5], [0.02, 0.98], [0.98, 0.02]]);
  await tab.screenshot({ path: join(out, 'desktop.png') });
  step(`by IP: the canvas shows the server's display (${JSON.stringify(seen[0])})`);
  const again = await showsColour(tab, '#2277aa', [34, 119, 170]);
  step(`a change on the server reaches the canvas (${JSON.stringify(again[0])})`);
  const frames = await tab.evaluate(() => window.rampartDesktop.frames);
  check(frames >= 2, `frames drawn: ${frames}`);
  check((await tab.evaluate(() => window.rampartDesktop.jpegFrames)) === 0, 'flat colours travel as PNG');
  check((await tab.evaluate(() => window.rampartDesktop.videoFrames)) === 0, 'a browser without WebCodecs gets no video');

  // A photo-like picture over the whole screen (smooth colour fields, shown by xwud): it
  // travels as JPEG, and the canvas still shows what the server's screen shows.
  const picture = photo(display, join(out, 'photo.xwd'));
  const closeViewer = show(display, picture);
  try {
    const jpegs = await until('JPEG frames', async () => (await tab.evaluate(() => window.rampartDesktop.jpegFrames)) || undefined);
    const matched = await matchesScreenshot(tab, display, {}, [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25], [0.6, 0.4]], 24);
    await tab.screenshot({ path: join(out, 'desktop-photo.png') });
    step(`a photo-like screen travels as JPEG and matches the server's screen (${jpegs} JPEG frames; ${JSON.stringify(matched)})`);
  } finally {
    closeViewer();
  }
  await tab.close();
  step('closing the tab ends the session');

  // A browser with WebCodecs: the server's H.264 passed through (the graphics pipeline), and
  // the canvas still shows what the server's screen shows, flat colours and a photo alike.
  // (H.264 is lossy; with the colours read as RDP means them, flat ones stay within 8 levels.)
  tab = await open(false);
  // The server may draw its first picture before it confirms the pipeline, and then nothing
  // until its screen changes: changed until the first video frame; after it, all is video.
  let shade = 0;
  await until('the first video frame', async () => {
    shade += 1;
    paint(shade % 2 ? '#203040' : '#304020');
    await new Promise((r) => setTimeout(r, 300));
    return (await tab.evaluate(() => window.rampartDesktop.videoFrames)) > 0;
  });
  const before = await tab.evaluate(() => ({ ...window.rampartDesktop }));
  const videoSeen = await showsColour(tab, '#3366cc', [51, 102, 204]);
  await matchesScreenshot(tab, display, {}, [[0.5, 0.5], [0.02, 0.98], [0.98, 0.02]]);
  const closeVideoViewer = show(display, picture);
  try {
    // Compared once the server's own screen shows the photo (else both would show blue).
    await until('xwud to show the photo', async () => {
      const shot = screenshot(display);
      const at = shot.at(Math.floor(shot.width * 0.25), Math.floor(shot.height * 0.75));
      return !near(at, [51, 102, 204]) && !near(at, [0, 0, 0]);
    });
    const matched = await matchesScreenshot(tab, display, {}, [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25], [0.6, 0.4]], 12);
    await tab.screenshot({ path: join(out, 'desktop-video.png') });
    const counts = await tab.evaluate(() => window.rampartDesktop);
    const [drawn, video] = [counts.frames - before.frames, counts.videoFrames - before.videoFrames];
    check(video > 0 && video === drawn, `video ${video} of ${drawn} frames drawn since the desktop connected`);
    step(`video: H.264 passed through, the canvas matches the server's screen (${video} video frames; ${JSON.stringify(videoSeen[0])}, ${JSON.stringify(matched)})`);
  } finally {
    closeVideoViewer();
  }
  await tab.close();

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

  if (process.env.XRDP_PORT) await xrdpSteps();

  // The Connect page's .rdp file (the Rust test opens it in xfreerdp, through the RD Gateway).
  await page.goto(`${url}/portal`);
  await page.goto(`${url}${await page.getAttribute(`tr[data-vm="${vmId}"] a`, 'href')}`);
  check(await page.isVisible('#rdp-file'), 'a Windows VM offers an .rdp file');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#rdp-file')]);
  await download.saveAs(join(out, 'portal.rdp'));
  const rdpText = readFileSync(join(out, 'portal.rdp'), 'utf8');
  check(/gatewayaccesstoken:s:\S+/.test(rdpText) && rdpText.includes(`gatewayhostname:s:${new URL(url).host}`), rdpText);
  await page.selectOption('#protocol', 'ssh');
  check(await page.isHidden('#rdp-file'), 'SSH offers no .rdp file');
  step(`the Connect page downloads an .rdp file for the VM (${download.suggestedFilename()})`);

  tab = await open(true);
  const green = await showsColour(tab, '#44aa55', [68, 170, 85]);
  await matchesScreenshot(tab, display, {}, [[0.5, 0.5], [0.02, 0.98], [0.98, 0.02]]);
  step(`by registered VM: the canvas matches the server's screen ${JSON.stringify(green)}`);

  // Typing: a terminal window on the remote display writes the line it reads to a file.
  const typed = join(out, 'typed.txt');
  const xterm = spawn('xterm', ['-geometry', '60x8+0+0', '-e', 'bash', '-c', `read -r line; printf '%s' "$line" > ${typed}; sleep 60`],
    { env: { ...process.env, DISPLAY: display }, stdio: 'ignore', detached: true });
  try {
    await until('the xterm window to be drawn on the canvas', async () => !near(await pixel(tab, 0.05, 0.05), [68, 170, 85]));
    const box = await tab.locator('#screen').boundingBox();
    await tab.mouse.click(box.x + box.width * 0.1, box.y + box.height * 0.05);
    await new Promise((r) => setTimeout(r, 1000));
    const before = await regionDigest(tab, 0, 0, 360, 100);
    // As a person types it: Shift held for the capital and the exclamation mark.
    await tab.keyboard.type('hello rdp 42 ');
    await until('the typed text to show on the canvas', async () => (await regionDigest(tab, 0, 0, 360, 100)) !== before);
    await tab.keyboard.down('Shift');
    await tab.keyboard.press('KeyH');
    await tab.keyboard.press('Digit1');
    await tab.keyboard.up('Shift');
    await tab.keyboard.press('Enter');
    const line = await until('the typed line to reach the remote program', async () =>
      existsSync(typed) ? readFileSync(typed, 'utf8') : undefined);
    check(line === 'hello rdp 42 H!', `the remote program read ${JSON.stringify(line)}`);
    step(`typing reaches the remote desktop and changes the canvas: ${JSON.stringify(line)}`);
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
