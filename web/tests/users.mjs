// End-to-end: users in the portal, in real Chromium. An Owner creates a user (who can then
// sign in), is told when the name is taken, cannot delete themself, adds an identity
// provider's group (when the test names a provider), and deletes the user (who
// then cannot sign in); a user without roles is refused the page with the reason; a Reader
// sees the users with no control that changes them.
import { check, env, launchChromium, step, withBrowser, signIn as portalSignIn } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });
const carolPassword = 'carol-Passw0rd-long';

const signIn = (context, user, password) => portalSignIn(context, url, user, password);
const signedIn = async (page) => !(new URL(page.url())).pathname.startsWith('/portal/signin');

async function create(page, name) {
  await page.fill('#create-user input[name=user_principal_name]', name);
  await page.fill('#create-user input[name=display_name]', 'Carol C.');
  await page.fill('#create-user input[name=password]', carolPassword);
  await Promise.all([page.waitForNavigation(), page.click('#create-user button[type=submit]')]);
}

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const owner = await signIn(context, 'admin', env('ADMIN_PASSWORD'));
  await owner.click('header a.users');
  await owner.waitForURL(/\/portal\/users/);
  await create(owner, 'carol');
  check((await owner.textContent('#users tr[data-user="carol"]')).includes('Carol C.'), 'carol is listed');
  check(!(await owner.$('#users tr[data-user="admin"] button')), 'no Delete for oneself');
  await create(owner, 'carol');
  check((await owner.textContent('#error')).includes('already exists'), await owner.textContent('#error'));
  step('an Owner creates a user; a taken name is refused, saying so');

  const carolContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const carol = await signIn(carolContext, 'carol', carolPassword);
  check(await signedIn(carol), 'carol signs in');
  const refused = await carol.goto(`${url}/portal/users`);
  const text = await carol.textContent('main');
  check(refused.status() === 403 && text.includes('users/read'), `${refused.status()} ${text}`);
  step('the new user signs in, and is refused the users page naming the permission');

  const readerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  const reader = await signIn(readerContext, env('READER'), env('READER_PASSWORD'));
  await reader.goto(`${url}/portal/users`);
  check(await reader.$('#users tr[data-user="carol"]'), 'the Reader sees the users');
  check(!(await reader.$('#create-user')) && (await reader.$$('#users button')).length === 0, 'no control for a Reader');
  const sideways = await reader.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(sideways <= 1, `the page scrolls sideways by ${sideways}px on a phone`);
  step('a Reader sees the users on a phone and nothing that changes them');

  if (process.env.PROVIDER) {
    await owner.selectOption('#create-group select[name=identity_provider]', process.env.PROVIDER);
    await owner.fill('#create-group input[name=external_id]', 'ops');
    await Promise.all([owner.waitForNavigation(), owner.click('#create-group button[type=submit]')]);
    check(await owner.$(`#groups tr[data-group="ops@${process.env.PROVIDER}"]`), 'the group is listed');
    step("an Owner adds an identity provider's group");
  }

  await Promise.all([owner.waitForNavigation(), owner.click('#users tr[data-user="carol"] button')]);
  check(!(await owner.$('#users tr[data-user="carol"]')), 'carol is gone');
  const again = await signIn(await browser.newContext({ ignoreHTTPSErrors: true }), 'carol', carolPassword);
  check(!(await signedIn(again)), 'a deleted user cannot sign in');
  step('the Owner deletes the user, who can no longer sign in');
});
