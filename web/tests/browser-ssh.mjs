// End-to-end: SSH in the browser, in real Chromium (Debian's /usr/bin/chromium), driven by
// Playwright, against a live gateway and a real sshd that the Rust test started
// (tests/e2e/tests/browser_ssh.rs). Each step prints "ok - NAME" or throws; the Rust test
// checks the exit status and that every step ran. Nothing here leaves loopback.
import { check, env, launchChromium, step, until, withBrowser } from './lib.mjs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
const sshPort = env('SSH_PORT');
const vmId = env('VM_ID');
mkdirSync(out, { recursive: true });


const browser = await launchChromium();
// Every request the pages make must go to the gateway: no CDN, no fonts, nothing else.
const foreign = [];
function watch(context) {
  context.on('request', (r) => { if (!r.url().startsWith(url) && !r.url().startsWith('data:')) foreign.push(r.url()); });
}

async function signIn(context, user, password) {
  const page = await context.newPage();
  await page.goto(`${url}/portal`);
  check(page.url().includes('/portal/signin'), `an anonymous visit goes to the sign-in page, not ${page.url()}`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}

/// The terminal's text, as xterm.js holds it (what the user sees, scrollback included).
async function screenText(term) {
  return term.evaluate(() => {
    const b = window.rampartTerminal.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

/// Submits the Connect form (it opens a new tab) and returns that tab.
async function submitConnect(page) {
  const [tab] = await Promise.all([page.context().waitForEvent('page'), page.click('#connect')]);
  await tab.waitForLoadState();
  return tab;
}

async function connected(tab) {
  // Connected, ended, or an error page instead of a terminal: whichever comes first.
  const state = await until('the terminal to connect', async () => {
    if (await tab.$('#reason')) return 'error page';
    const s = await tab.getAttribute('#status', 'data-state').catch(() => null);
    return s === 'connected' || s === 'ended' ? s : undefined;
  });
  check(state === 'connected', `terminal did not connect: ${await tab.textContent('body')}`);
}

/// Types `echo hello-$RANDOM` and waits for the shell's answer: a line of hello- and digits.
async function echoRoundTrip(tab) {
  await tab.click('#terminal');
  await tab.keyboard.type('echo hello-$RANDOM\n');
  const text = await until('the echoed output', async () => {
    const t = await screenText(tab);
    return /^hello-\d+\s*$/m.test(t) ? t : undefined;
  });
  check(text.includes('echo hello-$RANDOM'), 'the typed command is echoed');
  return text.match(/^hello-\d+/m)[0];
}

async function sttySize(tab, marker) {
  await tab.keyboard.type(`echo ${marker} $(stty size)\n`);
  const line = await until(`stty size (${marker})`, async () => {
    const m = (await screenText(tab)).match(new RegExp(`^${marker} (\\d+) (\\d+)\\s*$`, 'm'));
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  });
  return line;
}

async function connectPage(page, query) {
  await page.goto(`${url}/portal`);
  const href = await page.getAttribute(query ? `tr[data-vm="${vmId}"] a` : '.bastion a.button', 'href');
  await page.goto(`${url}${href}`);
  return page;
}

await withBrowser(browser, out, async () => {
  // Sign-in: a wrong password is refused with a message; the right one lands on home.
  const admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } });
  watch(admin);
  const wrong = await signIn(admin, 'admin', 'not-the-password');
  check((await wrong.textContent('#error')).includes('wrong user name or password'), 'bad sign-in says why');
  await wrong.screenshot({ path: join(out, 'sign-in.png') });
  await wrong.close();
  step('a wrong portal password is refused with its reason');
  const home = await signIn(admin, 'admin', env('ADMIN_PASSWORD'));
  check(home.url().endsWith('/portal'), `signed in to home, not ${home.url()}`);
  check(await home.isVisible(`tr[data-vm="${vmId}"]`), 'the registered VM is listed for the admin');
  step('sign in and see the registered VM');

  // By IP with a password.
  await connectPage(home, null);
  await home.screenshot({ path: join(out, 'connect.png') });
  await home.check('input[name=target][value=ip]');
  await home.fill('#ip', '127.0.0.1');
  await home.fill('#port', sshPort);
  await home.fill('#username', env('SSH_USER'));
  await home.fill('#password', env('SSH_PASSWORD'));
  let tab = await submitConnect(home);
  await connected(tab);
  const hello = await echoRoundTrip(tab);
  await tab.screenshot({ path: join(out, 'terminal.png') });
  step(`IP address and password: typed echo, saw ${hello}`);

  // Resizing the window changes the PTY size on the target.
  const before = await sttySize(tab, 'size-before');
  const cols = await tab.evaluate(() => [window.rampartTerminal.rows, window.rampartTerminal.cols]);
  check(before[0] === cols[0] && before[1] === cols[1], `stty ${before} matches xterm ${cols}`);
  await tab.setViewportSize({ width: 700, height: 420 });
  await until('xterm to refit', async () => (await tab.evaluate(() => window.rampartTerminal.cols)) < cols[1]);
  const after = await sttySize(tab, 'size-after');
  const now = await tab.evaluate(() => [window.rampartTerminal.rows, window.rampartTerminal.cols]);
  check(after[0] === now[0] && after[1] === now[1], `after resize stty ${after} matches xterm ${now}`);
  check(after[1] < before[1] && after[0] < before[0], `smaller window, smaller PTY: ${before} -> ${after}`);
  step(`resize: stty size ${before.join('x')} -> ${after.join('x')}`);

  // While it runs, the operator sees it on the bastion page; the CLI checks happen in Rust.
  await tab.keyboard.type('for i in $(seq 1 600); do echo tick $i; sleep 0.1; done\n');
  const ops = await admin.newPage();
  await ops.goto(`${url}/portal`);
  await ops.goto(`${url}${await ops.getAttribute('.bastion .actions a:not(.button)', 'href')}`);
  const row = await until('the browser session on the operator page', async () => {
    await ops.reload();
    return (await ops.$$eval('tr[data-session]', (rows) => rows.map((r) => r.textContent))).find((t) => t.includes('ssh'));
  });
  check(row.includes('admin') && row.includes(`127.0.0.1:${sshPort}`), `session row names user and target: ${row}`);
  step('the live browser session is on the operator page');
  writeFileSync(join(out, 'browser-session-open'), 'yes');
  await until('the CLI side of the session checks', async () => existsSync(join(out, 'cli-checked')), 60000);
  const ended = await until('the terminal to show it was disconnected', async () => {
    const s = await tab.textContent('#status');
    return s.includes('session ended') ? s : undefined;
  }, 15000);
  check(ended.includes('disconnected by admin'), `the user is told who ended it: ${ended}`);
  step('a session deleted with the CLI ends in the browser with the reason');

  // With a private key (pasted), by IP.
  await connectPage(home, null);
  await home.check('input[name=target][value=ip]');
  await home.fill('#ip', '127.0.0.1');
  await home.fill('#port', sshPort);
  await home.fill('#username', env('KEY_USER'));
  await home.check('input[name=auth][value=key]');
  await home.setInputFiles('#key-file', env('KEY_FILE'));
  await until('the key file to be read', async () => (await home.inputValue('#private-key')).includes('PRIVATE KEY'));
  tab = await submitConnect(home);
  await connected(tab);
  step(`private key: typed echo, saw ${await echoRoundTrip(tab)}`);
  // The operator page's Disconnect button ends it too, and the user is told who did it.
  await ops.goto(ops.url().split('&notice')[0]);
  await until('the key session on the operator page', async () => {
    await ops.reload();
    return ops.isVisible('tr[data-session] button.danger');
  });
  await Promise.all([ops.waitForNavigation(), ops.click('tr[data-session] button.danger')]);
  check((await ops.textContent('#notice')).includes('disconnected'), 'the operator is told it was disconnected');
  const cut = await until('the terminal to show the disconnect', async () => {
    const s = await tab.textContent('#status');
    return s.includes('session ended') ? s : undefined;
  }, 15000);
  check(cut.includes('disconnected by admin'), cut);
  step('the operator page\'s Disconnect button ends a browser session');
  await tab.close();

  // By picking the registered VM (its port comes from the registration).
  await connectPage(home, vmId);
  check((await home.inputValue('#port')) === sshPort, 'the VM\'s registered SSH port is the default');
  await home.fill('#username', env('SSH_USER'));
  await home.fill('#password', env('SSH_PASSWORD'));
  tab = await submitConnect(home);
  await connected(tab);
  step(`registered VM: typed echo, saw ${await echoRoundTrip(tab)}`);
  // Closing the tab ends the session (the Rust test checks the audit record).
  await tab.close();

  // A wrong password for the target.
  await connectPage(home, vmId);
  await home.fill('#username', env('SSH_USER'));
  await home.fill('#password', 'wrong-password');
  tab = await submitConnect(home);
  let reason = await tab.textContent('#reason');
  check((await tab.getAttribute('#reason', 'data-code')) === 'TargetAuthenticationFailed', reason);
  check(reason.includes('authentication failed'), reason);
  await tab.close();
  step(`wrong target password: "${reason.trim()}"`);

  // An address outside the bastion's reachable networks (refused before any packet).
  await connectPage(home, null);
  await home.check('input[name=target][value=ip]');
  await home.fill('#ip', '10.9.9.9');
  await home.fill('#port', '22');
  await home.fill('#username', 'nobody');
  await home.fill('#password', 'x');
  tab = await submitConnect(home);
  reason = await tab.textContent('#reason');
  check((await tab.getAttribute('#reason', 'data-code')).includes('OutsideReachableNetworks'), reason);
  check(reason.includes('10.9.9.9'), reason);
  await tab.close();
  step(`outside the reachable networks: "${reason.trim()}"`);

  // IP-based connection turned off on the operator page while a Connect form is open.
  await connectPage(home, null);
  await home.check('input[name=target][value=ip]');
  await home.fill('#ip', '127.0.0.1');
  await home.fill('#port', sshPort);
  await home.fill('#username', env('SSH_USER'));
  await home.fill('#password', env('SSH_PASSWORD'));
  await ops.goto(ops.url().split('&notice')[0]);
  await ops.uncheck('input[name=enable_ip_connect]');
  await Promise.all([ops.waitForNavigation(), ops.click('#settings button[type=submit]')]);
  check((await ops.textContent('#notice')).includes('applied'), 'the operator is told the change applied');
  tab = await submitConnect(home);
  reason = await tab.textContent('#reason');
  check((await tab.getAttribute('#reason', 'data-code')).includes('IpConnectDisabled'), reason);
  await tab.close();
  await connectPage(home, null);
  check((await home.textContent('#ip-connect-off')).includes('turned off'), 'the Connect page says IP connect is off');
  step(`IP-based connection off: "${reason.trim()}"`);

  // A user with Reader on the bastion but not on the VM: not listed, and not by URL either.
  const reader = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  watch(reader);
  const readerHome = await signIn(reader, env('READER_USER'), env('READER_PASSWORD'));
  check(await readerHome.isVisible('.bastion'), 'the reader sees the bastion');
  check(!(await readerHome.isVisible(`tr[data-vm="${vmId}"]`)), 'the reader does not see the VM');
  await readerHome.screenshot({ path: join(out, 'home-phone-width.png'), fullPage: true });
  const bastionHref = await readerHome.getAttribute('.bastion a.button', 'href');
  const byUrl = await readerHome.goto(`${url}${bastionHref}&vm=${encodeURIComponent(vmId)}`);
  check(byUrl.status() === 404 || byUrl.status() === 403, `opening the VM by URL is refused, not ${byUrl.status()}`);
  check((await readerHome.getAttribute('#reason', 'data-code')).includes('TargetNotFound'), 'names the reason');
  step('a user without Reader on the VM neither sees it nor opens it by URL');

  check(foreign.length === 0, `requests left the gateway: ${foreign.join(', ')}`);
  step('no request went anywhere but the gateway');
});
