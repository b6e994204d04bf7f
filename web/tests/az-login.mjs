// The browser of plain `az login` (az starts it through $BROWSER with the authorize URL): the
// portal's sign-in, the approval page, then the redirect to az's listener on localhost.
// Real Chromium; the Rust test waits for az to finish.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const start = process.argv[2];
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(start);
  await page.waitForURL(/\/portal\/signin/);
  await page.fill('input[name=username]', env('USER_NAME'));
  await page.fill('input[name=password]', env('USER_PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.waitForURL(/\/portal\/authorize/);
  check((await page.textContent('main')).includes(env('USER_NAME')), 'the page names who signs in');
  step('az login: the portal asks the signed-in user to approve');
  await page.click('#approve');
  await until('the redirect to az', async () => page.url().startsWith('http://localhost'), 20000);
  // az takes the code once its answer page is sent: read that page before closing.
  await page.waitForLoadState('load');
  await until('az\'s answer page', async () => ((await page.textContent('body').catch(() => '')) || '').trim(), 20000);
  step('az login: approved, the browser went on to az on localhost');
});
