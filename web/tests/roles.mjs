// End-to-end: role assignments in the portal, in real Chromium. An Owner assigns "Virtual
// Machine User Login" to a user at a resource group and removes it again; an unknown assignee
// and removing the last Owner are refused with the reason on the page; a Reader on a phone
// sees the assignments and no control that changes them.
import { check, env, launchChromium, step, until, withBrowser, signIn as portalSignIn } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const scope = env('SCOPE');
mkdirSync(out, { recursive: true });

const signIn = (context, user, password) => portalSignIn(context, url, user, password);
const rowOf = (page, assignee, role) => page.$(`#assignments tr[data-assignee="${assignee}"][data-role="${role}"]`);

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const page = await signIn(context, 'admin', env('ADMIN_PASSWORD'));
  await page.click('header a.roles');
  await page.waitForURL(/\/portal\/roles/);
  check(await rowOf(page, 'admin', 'Owner'), 'the admin sees their own Owner assignment');

  // Keyboard only: fill the form and submit with Enter.
  await page.focus('#assign input[name=assignee]');
  await page.keyboard.type('alice');
  await page.selectOption('#assign select[name=role]', 'Virtual Machine User Login');
  await page.fill('#assign input[name=scope]', scope);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await until('the new assignment', () => rowOf(page, 'alice', 'Virtual Machine User Login'));
  step('an Owner assigns Virtual Machine User Login to a user at a resource group');

  await page.fill('#assign input[name=assignee]', 'nobody-here');
  await page.fill('#assign input[name=scope]', scope);
  await Promise.all([page.waitForNavigation(), page.click('#assign button[type=submit]')]);
  check((await page.textContent('#error')).includes('nobody-here'), await page.textContent('#error'));
  const owner = await rowOf(page, 'admin', 'Owner');
  await Promise.all([page.waitForNavigation(), (await owner.$('button')).click()]);
  check((await page.textContent('#error')).includes('last assignment'), await page.textContent('#error'));
  check(await rowOf(page, 'admin', 'Owner'), 'the last Owner stays');
  step('an unknown assignee and removing the last Owner are refused, saying why');

  const readerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  const reader = await signIn(readerContext, env('READER'), env('READER_PASSWORD'));
  await reader.goto(`${url}/portal/roles`);
  check(await rowOf(reader, 'alice', 'Virtual Machine User Login'), 'the Reader sees the assignment');
  check(!(await reader.$('#assign')), 'no assign form for a Reader');
  check((await reader.$$('#assignments button')).length === 0, 'no Remove button for a Reader');
  const sideways = await reader.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(sideways <= 1, `the page scrolls sideways by ${sideways}px on a phone`);
  await reader.screenshot({ path: join(out, 'roles-phone.png') });
  step('a Reader sees the assignments on a phone and nothing that changes them');

  await page.goto(`${url}/portal/roles`);
  const alice = await rowOf(page, 'alice', 'Virtual Machine User Login');
  await Promise.all([page.waitForNavigation(), (await alice.$('button')).click()]);
  check(!(await rowOf(page, 'alice', 'Virtual Machine User Login')), 'the assignment is gone');
  step('the Owner removes the assignment');
});
