// End-to-end: approving `az login --use-device-code` in real Chromium. The user signs in to the
// portal, a mistyped code is refused with a reason, the code az printed (through the link az
// shows) is approved with the keyboard, and the page says the device is signed in.
import { check, env, launchChromium, step, withBrowser, signIn } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const code = env('USER_CODE');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 760 } });
  const page = await signIn(context, url, env('USER_NAME'), env('USER_PASSWORD'));

  // One character changed: the check characters catch it.
  const last = code.slice(-1) === 'B' ? 'C' : 'B';
  await page.goto(`${url}/portal/device?code=${code.slice(0, -1)}${last}`);
  await Promise.all([page.waitForNavigation(), page.click('#approve')]);
  check((await page.textContent('#error')).includes('not a code this gateway gave out'), await page.textContent('body'));
  step('a mistyped code is refused, saying why');

  await page.goto(`${url}/portal/device?code=${encodeURIComponent(code)}`);
  check((await page.inputValue('#code')) === code, 'the link fills the code in');
  check((await page.textContent('main')).includes(env('USER_NAME')), 'the page names who approves');
  await page.focus('#code');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  check((await page.textContent('#approved')).includes('signed in as you'), await page.textContent('body'));
  await page.screenshot({ path: `${out}/approved.png` });
  step('the code az showed is approved with the keyboard');
});
