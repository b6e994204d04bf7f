// End-to-end: live join, in real Chromium. A user runs a browser terminal; an operator watches
// it from the bastion's page (the user is told), sees the user's typing, cannot type in view
// mode, then joins to interact and types a command the user sees.
import { check, env, launchChromium, step, until, withBrowser, signIn as portalSignIn } from './lib.mjs';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const bastion = env('BASTION_ID');
mkdirSync(out, { recursive: true });

const signIn = (context, user, password) => portalSignIn(context, url, user, password);

const screen = (tab) => tab.evaluate(() => {
  const b = window.rampartTerminal.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
  return lines.join('\n');
});

const connected = (tab) => until('the terminal to connect', async () => {
  if (await tab.$('#reason')) throw new Error(await tab.textContent('#reason'));
  return (await tab.getAttribute('#status', 'data-state').catch(() => null)) === 'connected';
});

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const user = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
  const page = await signIn(user, env('PORTAL_USER'), env('PORTAL_PASSWORD'));
  await page.goto(`${url}/portal/connect?bastion=${encodeURIComponent(bastion)}`);
  await page.check('input[name=target][value=ip]');
  await page.fill('#ip', '127.0.0.1');
  await page.fill('#port', env('SSH_PORT'));
  await page.fill('#username', env('SSH_USER'));
  await page.fill('#password', env('SSH_PASSWORD'));
  const [tab] = await Promise.all([user.waitForEvent('page'), page.click('#connect')]);
  await tab.waitForLoadState();
  await connected(tab);
  step('the user runs a browser terminal');

  const operator = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
  const ops = await signIn(operator, 'admin', env('ADMIN_PASSWORD'));
  await ops.goto(`${url}/portal/bastion?id=${encodeURIComponent(bastion)}`);
  await until('the session on the operator page', async () => {
    await ops.reload();
    return ops.$('tr[data-session] a.join');
  });
  await Promise.all([ops.waitForNavigation(), ops.click('tr[data-session] a.join')]);
  await connected(ops);
  const told = await until('the user to be told', async () => {
    const t = await tab.textContent('#notice');
    return t.includes('admin') ? t : undefined;
  });
  check(told.includes('admin is watching (view only)'), `the user is told of the watcher: ${told}`);
  step(`the user sees: "${told}"`);

  await tab.click('#terminal');
  await tab.keyboard.type('echo seen-by-op-$((2+3))\n');
  await until('the operator to see the user\'s typing', async () => (await screen(ops)).includes('seen-by-op-5'));
  step('the watcher sees what the user types and gets');
  await ops.click('#terminal');
  await ops.keyboard.type('echo should-not-run-$((1+1))\n');
  await new Promise((r) => setTimeout(r, 1000));
  check(!(await screen(tab)).includes('should-not-run-2'), 'a watcher in view mode cannot type');
  step('in view mode the watcher cannot type');

  await ops.goto(`${url}/portal/bastion?id=${encodeURIComponent(bastion)}`);
  await Promise.all([ops.waitForNavigation(), ops.click('tr[data-session] a.join-interact')]);
  await connected(ops);
  await until('the user to be told of the interaction', async () => (await tab.textContent('#notice')).includes('may type'));
  await ops.click('#terminal');
  await ops.keyboard.type('echo typed-by-op-$((3+4))\n');
  await until('the user to see the operator\'s command', async () => (await screen(tab)).includes('typed-by-op-7'));
  step('in interact mode the operator types a command the user sees');

  if (process.env.CLI_JOIN) {
    // The Rust test joins with `rampart network bastion session join --mode interact` now.
    writeFileSync(join(out, 'cli-ready'), 'yes');
    await until('the CLI operator\'s command on the user\'s screen', async () => (await screen(tab)).includes('typed-by-cli-9'), 60000);
    step('an operator on the command line types a command the user sees');
    await tab.click('#terminal');
    await tab.keyboard.type('echo seen-by-cli-$((4+4))\n');
    await until('the CLI operator to have seen it', async () => existsSync(join(out, 'cli-done')), 60000);
    step('the command-line operator sees what the user types');
  }
});
