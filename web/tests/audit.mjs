// End-to-end: the audit log page in real Chromium. An operator filters by result and user, sees
// that the hash chain verifies, exports the selection as CSV and JSON (downloads read back);
// a Reader sees the page and nothing on it changes anything; on a phone the page does not
// scroll sideways; once the Rust test edits a record in the store, the page says the chain is broken.
import { check, env, launchChromium, step, until, withBrowser, signIn as portalSignIn } from './lib.mjs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const signIn = (context, user, password) => portalSignIn(context, url, user, password);

const rows = (page) => page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => ({
  event: tr.dataset.event, result: tr.dataset.result, text: tr.textContent.replace(/\s+/g, ' ').trim(),
})));

async function download(page, selector) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const path = join(out, file.suggestedFilename());
  await file.saveAs(path);
  return readFileSync(path, 'utf8');
}

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  const page = await signIn(context, 'admin', env('ADMIN_PASSWORD'));
  await page.click('header a.audit');
  await page.waitForURL(/\/portal\/audit/);
  check((await page.getAttribute('#chain', 'class')).includes('verified'), 'the chain verifies');
  check((await page.textContent('#chain')).includes('verifies'), await page.textContent('#chain'));
  const all = await rows(page);
  check(all.some((r) => r.event === 'sign-in' && r.result === 'refused' && r.text.includes('mallory')), JSON.stringify(all.slice(0, 5)));
  step('the audit page lists sign-ins, refused ones too, and says the chain verifies');

  // Keyboard only: the filters are reachable and submit with Enter.
  await page.selectOption('select[name=result]', 'refused');
  await page.focus('input[name=user]');
  await page.keyboard.type('mallory');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  const refused = await rows(page);
  check(refused.length > 0 && refused.every((r) => r.result === 'refused' && r.text.includes('mallory')), JSON.stringify(refused));
  step('filtering by result and user narrows the table');

  const csv = await download(page, '#export-csv');
  const lines = csv.trim().split(/\r?\n/);
  check(lines[0].startsWith('id,time,event,user'), lines[0]);
  check(lines.length - 1 === refused.length && lines.slice(1).every((l) => l.includes('"mallory"') && l.includes('"refused"')), csv);
  const json = JSON.parse(await download(page, '#export-json'));
  check(json.length === refused.length && json.every((r) => r.user === 'mallory' && r.result === 'refused'), JSON.stringify(json));
  step('the selection exports as CSV and JSON');

  // A Reader reads the log; nothing on the page changes anything.
  const readerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  const reader = await signIn(readerContext, env('READER'), env('READER_PASSWORD'));
  await reader.goto(`${url}/portal/audit`);
  check((await reader.$$('#audit tbody tr')).length > 0, 'the Reader sees records');
  const posts = await reader.$$eval('main form[method=post], main button[type=submit]:not(form.filters button)', (els) => els.length);
  check(posts === 0, `no form that changes anything (${posts})`);
  const sideways = await reader.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(sideways <= 1, `the page scrolls sideways by ${sideways}px on a phone`);
  await reader.screenshot({ path: join(out, 'audit-phone.png'), fullPage: false });
  step('a Reader reads it on a phone, with nothing that changes anything');

  writeFileSync(join(out, 'read'), 'yes');
  await until('the record to be edited', async () => existsSync(join(out, 'tampered')), 60000);
  await page.goto(`${url}/portal/audit`);
  check((await page.getAttribute('#chain', 'class')).includes('broken'), await page.textContent('#chain'));
  check((await page.textContent('#chain')).includes('tampered'), await page.textContent('#chain'));
  step('an edited record shows the chain broken');
});
