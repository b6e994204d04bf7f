// End-to-end: the browser terminal's file panel in real Chromium. Two files (one of 200 MiB)
// are uploaded at once through the panel and downloaded back (the Rust test compares their
// SHA-256); once the bastion allows downloads only, an upload is refused and the panel says why.
import { check, env, launchChromium, signIn, step, until, withBrowser } from './lib.mjs';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  const page = await signIn(context, url, 'admin', env('ADMIN_PASSWORD'));
  await page.goto(`${url}/portal/connect?bastion=${encodeURIComponent(env('BASTION_ID'))}`);
  await page.check('input[name=target][value=ip]');
  await page.fill('#ip', '127.0.0.1');
  await page.fill('#port', env('SSH_PORT'));
  await page.fill('#username', env('SSH_USER'));
  await page.fill('#password', env('SSH_PASSWORD'));
  const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#connect')]);
  await tab.waitForLoadState();
  await until('the terminal to connect', async () => (await tab.getAttribute('#status', 'data-state')) === 'connected', 30000);
  await until('the Files button', async () => tab.isVisible('#files-toggle'));
  await tab.click('#files-toggle');
  await until('the home folder to be listed', async () => (await tab.textContent('#files-path')).includes(env('SSH_USER')));

  const files = [env('BIG'), env('SMALL')];
  await tab.setInputFiles('#files-upload', files);
  for (const file of files) {
    const name = basename(file);
    await until(`${name} to upload`, async () => {
      const state = await tab.getAttribute(`#files-transfers li[data-file="${name}"]`, 'data-state');
      if (state === 'refused' || state === 'failed') throw new Error(`${name}: ${await tab.textContent('#files-transfers')}`);
      return state === 'done';
    }, 180000);
    await until(`${name} to be listed`, async () => (await tab.$(`#files-list li[data-name="${name}"]`)) !== null);
  }
  step('two files, one of 200 MiB, are uploaded through the panel');

  for (const file of files) {
    const name = basename(file);
    const [download] = await Promise.all([
      tab.waitForEvent('download', { timeout: 180000 }),
      tab.click(`#files-list li[data-name="${name}"] a`),
    ]);
    await download.saveAs(join(out, `downloaded-${name}`));
    check(!(await download.failure()), `${name} downloaded`);
  }
  step('and downloaded back');

  // A folder, made in the terminal, comes down as one tar archive of what it holds.
  await tab.click('#terminal');
  await tab.keyboard.type('mkdir -p box/inner && echo one > box/a.txt && echo two > box/inner/b.txt && echo made-$((2*3))\n');
  await until('the folder to be made', async () => (await tab.evaluate(() => {
    const b = window.rampartTerminal.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
    return lines.join('\n');
  })).includes('made-6'));
  await tab.click('#files-up');
  await tab.click(`#files-list li[data-name="${env('SSH_USER')}"] button`);
  await until('the folder to be listed', async () => (await tab.$('#files-list li[data-name="box"] a.archive')) !== null);
  const [archive] = await Promise.all([
    tab.waitForEvent('download', { timeout: 60000 }),
    tab.click('#files-list li[data-name="box"] a.archive'),
  ]);
  await archive.saveAs(join(out, 'box.tar'));
  check(archive.suggestedFilename() === 'box.tar', `saved as ${archive.suggestedFilename()}`);
  step('a folder comes down as one tar archive');
  writeFileSync(join(out, 'transferred'), 'yes');

  await until('uploads to be turned off', async () => existsSync(join(out, 'download-only')), 60000);
  await tab.setInputFiles('#files-upload', [env('SMALL')]);
  await until('the refusal to show', async () => (await tab.textContent('#files-error')).includes('upload is turned off'));
  const text = await tab.textContent('#files-error');
  check(text.includes('--file-transfer'), `the panel names the setting: ${text}`);
  step('with --file-transfer download, an upload is refused with the reason shown');
});
