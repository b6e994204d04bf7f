// End-to-end: single sign-on through a real OpenID provider (oidc-provider, started by the
// Rust test in tests/e2e/tests/single_sign_on.rs), in Debian's Chromium. The provider's own
// pages are used: its login form, its consent page, its device-code pages. Requests to
// anything but loopback are refused (the provider's pages ask for a web font).
//
// MODE=approve: open START_URL (a device verification page or the gateway's sign-in URL the
//   CLI printed) and sign in at the provider as IDP_USER (entering DEVICE_CODE if asked);
//   writes OUT/replay.json with the callback URL and the flow cookie it carried.
// MODE=portal: "Sign in with corp" on the portal as IDP_USER, then either open an SSH terminal
//   to VM_ID with SSH_USER/SSH_PASSWORD, or (EXPECT=refused) be refused at CONNECT_PATH.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const mode = env('MODE');
const idp = env('IDP_URL');
const user = env('IDP_USER');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

async function loopbackOnly(context) {
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' || host === 'localhost' ? route.continue() : route.abort();
  });
}

/// Walks the provider's pages (user code, login, consent, confirm) until the browser leaves
/// the provider or a page has nothing left to submit.
async function walkProvider(page, code) {
  for (let i = 0; i < 10; i += 1) {
    await page.waitForLoadState();
    if (!page.url().startsWith(idp)) return;
    if (await page.$('input[name=user_code]')) {
      if (!(await page.inputValue('input[name=user_code]'))) await page.fill('input[name=user_code]', code);
    }
    if (await page.$('input[name=login]')) {
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', 'any-password');
    }
    const button = await page.$('button[type=submit]:not([name=abort])');
    if (!button) return;
    await Promise.all([page.waitForNavigation({ timeout: 15000 }).catch(() => {}), button.click()]);
  }
  throw new Error(`still at the provider after 10 pages: ${page.url()}`);
}

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
  await loopbackOnly(context);
  const page = await context.newPage();

  if (mode === 'approve') {
    let callback = null;
    let flowCookie = null;
    page.on('request', async (r) => {
      if (r.url().includes('/callback?')) {
        callback = r.url();
        const all = await r.allHeaders();
        const m = /__Host-rampart-oidc=([^;]+)/.exec(all.cookie || '');
        if (m) flowCookie = m[1];
      }
    });
    await page.goto(env('START_URL'));
    await walkProvider(page, process.env.DEVICE_CODE || '');
    const text = await until('the end of the sign-in', async () => {
      const t = (await page.textContent('body').catch(() => '')) || '';
      return /Signed in to Rampart|Sign-in Success|success/i.test(t) ? t : undefined;
    });
    writeFileSync(join(out, 'replay.json'), JSON.stringify({ callback, flowCookie }));
    step(`approved at the provider as ${user}: ${text.trim().slice(0, 80)}`);
  } else if (mode === 'portal') {
    const url = env('RAMPART_URL');
    await page.goto(`${url}/portal`);
    check(page.url().includes('/portal/signin'), `an anonymous visit goes to the sign-in page, not ${page.url()}`);
    await Promise.all([page.waitForNavigation(), page.click('#sso-corp')]);
    check(page.url().startsWith(idp), `"Sign in with corp" goes to the provider, not ${page.url()}`);
    step('"Sign in with corp" opens the provider\'s own login page');
    await walkProvider(page, '');
    await until('the portal after the provider', async () => page.url().endsWith('/portal') && (await page.$('.who')));
    const who = (await page.textContent('.who')).trim();
    check(who === `${user}@corp`, `signed in as ${user}@corp, not ${who}`);
    step(`back on the portal as ${who}`);
    if (process.env.EXPECT === 'refused') {
      const answer = await page.goto(`${url}${env('CONNECT_PATH')}`);
      check(answer.status() === 403 || answer.status() === 404, `refused, not ${answer.status()}`);
      const reason = await page.textContent('#reason');
      check(/role/i.test(reason), `the refusal names the missing role: ${reason}`);
      step(`a user of another group is refused: ${reason.trim()}`);
    } else {
      const vmId = env('VM_ID');
      check(await page.isVisible(`tr[data-vm="${vmId}"]`), 'the VM the group may reach is listed');
      await page.goto(`${url}${await page.getAttribute(`tr[data-vm="${vmId}"] a`, 'href')}`);
      await page.fill('#username', env('SSH_USER'));
      await page.fill('#password', env('SSH_PASSWORD'));
      const [tab] = await Promise.all([page.context().waitForEvent('page'), page.click('#connect')]);
      await tab.waitForLoadState();
      const state = await until('the terminal to connect', async () => {
        if (await tab.$('#reason')) return 'error page';
        const s = await tab.getAttribute('#status', 'data-state').catch(() => null);
        return s === 'connected' || s === 'ended' ? s : undefined;
      });
      check(state === 'connected', `terminal did not connect: ${await tab.textContent('body')}`);
      await tab.click('#terminal');
      await tab.keyboard.type('echo sso-$((6*7))\n');
      await until('the echoed output', async () => {
        const t = await tab.evaluate(() => {
          const b = window.rampartTerminal.buffer.active;
          const lines = [];
          for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
          return lines.join('\n');
        });
        return /^sso-42\s*$/m.test(t);
      });
      step('the federated user opened an SSH terminal to the VM and ran a command');
      await tab.close();
    }
    // Sign-out ends the portal session.
    await page.goto(`${url}/portal`);
    await Promise.all([page.waitForNavigation(), page.click('.signout button')]);
    await page.goto(`${url}/portal`);
    check(page.url().includes('/portal/signin'), 'after sign-out the portal asks to sign in again');
    step('sign-out ends the portal session');
  } else {
    throw new Error(`unknown MODE ${mode}`);
  }
});
