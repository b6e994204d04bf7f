// What the browser tests share: their settings from the Rust test, TAP-like steps, polling,
// Debian's Chromium launched with no network of its own, and what a failure leaves behind.
import { chromium } from 'playwright-core';
import { join } from 'node:path';

export const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set (run through cargo test -p rampart-e2e)`);
  return value;
};
export const step = (name) => console.log(`ok - ${name}`);
export const check = (cond, what) => { if (!cond) throw new Error(what); };

/// Polls `fn` every 100 ms until it returns something truthy (returned), for at most `ms`
/// (30 s unless told: a loaded 2-core CI machine runs Chromium, the gateway and sshd at once).
export async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${JSON.stringify(last)}`}`);
}

/// Debian's Chromium (never a downloaded browser), without its background network traffic.
export const launchChromium = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

/// Runs `body`; on failure leaves a screenshot and the text of every open tab in `out`.
export async function withBrowser(browser, out, body) {
  try {
    await body();
  } catch (error) {
    let n = 0;
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        n += 1;
        await page.screenshot({ path: join(out, `failure-${n}.png`) }).catch(() => {});
        const text = await page.textContent('body').catch(() => '');
        console.error(`tab ${n}: ${page.url()}\n${(text || '').trim().slice(0, 600)}`);
      }
    }
    throw error;
  } finally {
    await browser.close();
  }
}

/// Signs `user` in to the portal at `url` in a new tab of `context`; returns the tab.
export async function signIn(context, url, user, password) {
  const page = await context.newPage();
  await page.goto(`${url}/portal/signin`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}
