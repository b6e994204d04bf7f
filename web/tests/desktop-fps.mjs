// The browser desktop under full-screen change, in real Chromium (rampart-bench --desktop-only
// starts it): signs in to the portal, opens the RDP desktop at RDP_PORT through the Connect
// form as a person does (VIDEO=0: as a browser without WebCodecs, so the gateway sends
// pictures), waits for its first frame, then repaints the server's whole screen REPAINTS
// times at 40 a second with a changing plaid (xsetroot). Frames are counted in the page as
// it draws them; the gateway's and the server's CPU are read from /proc over the same window.
// Then the server shows a photo-like picture and the canvas must match a screenshot of the
// server's screen. Prints one JSON line. Nothing here leaves loopback.
import { env, launchChromium, signIn, until } from './lib.mjs';
import { matchesScreenshot, photo, screenshot, show } from './screen.mjs';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const display = env('RDP_DISPLAY');
const repaints = Number(env('REPAINTS'));
const video = env('VIDEO') === '1';
const pids = (name) => (process.env[name] || '').split(',').filter(Boolean).map(Number);
// The painter stands for the application drawing on the server's screen: with PAINTER_CPU (the
// server's core) it runs where such an application runs, not beside the browser.
const painterCpu = process.env.PAINTER_CPU;
const paint = (args) => {
  const [program, rest] = painterCpu ? ['taskset', ['-c', painterCpu, 'xsetroot', ...args]] : ['xsetroot', args];
  execFile(program, rest, { env: { ...process.env, DISPLAY: display } });
};

/// CPU seconds of processes (all their threads), from /proc.
function cpuSeconds(list) {
  let ticks = 0;
  for (const pid of list) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone */ }
  }
  return ticks / 100;
}

const browser = await launchChromium();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1920, height: 1110 } });
  const page = await signIn(context, url, 'admin', env('ADMIN_PASSWORD'));
  await page.goto(`${url}/portal`);
  await page.goto(`${url}${await page.getAttribute('.bastion a.button', 'href')}`);
  await page.check('input[name=target][value=ip]');
  await page.fill('#ip', '127.0.0.1');
  await page.selectOption('#protocol', 'rdp');
  await page.fill('#port', env('RDP_PORT'));
  await page.fill('#username', 'bench');
  await page.fill('#password', 'unused');
  await page.evaluate(() => { document.getElementById('width').value = '1920'; document.getElementById('height').value = '1080'; });
  if (video) await until('the page to find an H.264 decoder', async () => (await page.inputValue('#video')) === 'h264');
  else await page.evaluate(() => { document.getElementById('video').value = ''; });
  const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#connect')]);
  await tab.waitForLoadState();
  await until('the desktop to connect', async () => (await tab.getAttribute('#status', 'data-state').catch(() => null)) === 'connected', 30000);
  await until('the first frame', async () => (await tab.evaluate(() => window.rampartDesktop.frames)) > 0, 30000);
  await new Promise((r) => setTimeout(r, 2000));

  const gateway = pids('GATEWAY_PIDS');
  const server = pids('SERVER_PIDS');
  const [frames0, video0] = await tab.evaluate(() => [window.rampartDesktop.frames, window.rampartDesktop.videoFrames]);
  const [gw0, srv0, t0] = [cpuSeconds(gateway), cpuSeconds(server), performance.now()];
  const hex = (v) => (v % 256).toString(16).padStart(2, '0');
  for (let i = 0; i < repaints; i += 1) {
    const fg = `#${hex(i * 37)}${hex(i * 91)}${hex(i * 13)}`;
    const bg = `#${hex(i * 53)}${hex(i * 29)}${hex(i * 71)}`;
    paint(['-mod', String(2 + (i % 7)), String(3 + (i % 5)), '-fg', fg, '-bg', bg]);
    const next = t0 + (i + 1) * 25;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  const seconds = (performance.now() - t0) / 1000;
  const [frames1, video1] = await tab.evaluate(() => [window.rampartDesktop.frames, window.rampartDesktop.videoFrames]);
  const result = {
    video,
    frames: frames1 - frames0,
    videoFrames: video1 - video0,
    videoTotal: video1,
    seconds,
    fps: (frames1 - frames0) / seconds,
    gatewayCores: (cpuSeconds(gateway) - gw0) / seconds,
    serverCores: (cpuSeconds(server) - srv0) / seconds,
  };
  // The image is right: a photo-like screen, within IMAGE_TOLERANCE levels (H.264 and the
  // pictures' JPEG are lossy), shown once the repaints have settled. Right after the burst the
  // server's H.264 rate control has spent its bits, and idle seconds do not restore them: a photo
  // shown then is sent coarse (seen 17 to 33 levels off) and a screen that stops changing is
  // never refined. So a second of plain frames (cheap to encode) first, as a desktop has
  // between bursts, then the photo.
  for (let i = 0; i < 40; i += 1) {
    paint(['-solid', i % 2 ? '#303030' : '#383838']);
    await new Promise((r) => setTimeout(r, 25));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const dir = mkdtempSync(join(tmpdir(), 'rampart-desktop-fps-'));
  const closeViewer = show(display, photo(display, join(dir, 'photo.xwd')));
  try {
    await until('xwud to show the photo', () => {
      const shot = screenshot(display);
      return shot.at(Math.floor(shot.width / 2), Math.floor(shot.height / 2)).every((v) => Math.abs(v - 127) <= 2);
    }, 10000);
    const points = [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25], [0.6, 0.4], [0.1, 0.1], [0.9, 0.9]];
    const pairs = await matchesScreenshot(tab, display, {}, points, Number(env('IMAGE_TOLERANCE')), 30000);
    result.imageDiff = Math.max(...pairs.flatMap(([a, b]) => a.map((v, i) => Math.abs(v - b[i]))));
  } finally {
    closeViewer();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
