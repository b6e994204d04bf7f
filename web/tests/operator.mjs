// End-to-end: an operator sets up access entirely in the portal, in real Chromium. The Owner
// registers a VM with its network interface and a scale set (Inventory), assigns "Virtual Machine User Login"
// at the VM's scope and Reader at its resource group to a user (Roles); the user signs in,
// connects to the VM from the Connect page and runs a command; the Owner finds the connection
// on the Audit page. A Reader sees the inventory with no control that changes it.
import { check, env, launchChromium, step, until, withBrowser, signIn as portalSignIn } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = env('RAMPART_URL');
const out = env('ARTIFACTS');
mkdirSync(out, { recursive: true });

const signIn = (context, user, password) => portalSignIn(context, url, user, password);
async function submit(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
  const error = await page.$('#error');
  if (error) throw new Error(`refused: ${await error.textContent()}`);
}
const screen = (tab) => tab.evaluate(() => {
  const b = window.rampartTerminal.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i += 1) lines.push(b.getLine(i).translateToString(true));
  return lines.join('\n');
});

const browser = await launchChromium();
await withBrowser(browser, out, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
  const owner = await signIn(context, 'admin', env('ADMIN_PASSWORD'));
  await owner.click('header a.inventory');
  await owner.waitForURL(/\/portal\/inventory/);
  await owner.fill('#register input[name=name]', 'web1');
  // First with the wrong address and port, put right in place below.
  await owner.fill('#register input[name=private_ip_address]', '127.0.0.9');
  await owner.fill('#register input[name=nic_name]', 'web1-nic');
  await submit(owner, '#register button[type=submit]');
  const vmId = await owner.getAttribute('#vms tr[data-vm="web1"]', 'data-id');
  check(vmId && vmId.endsWith('/virtualMachines/web1'), `the VM is listed: ${vmId}`);
  check((await owner.textContent('#nics tr[data-nic="web1-nic"] td:last-child')).trim() === 'web1', 'its network interface, attached to it');
  step('the Owner registers a VM and its network interface');

  await owner.click('#vms tr[data-vm="web1"] details.edit summary');
  await owner.fill('#vms tr[data-vm="web1"] input[name=private_ip_address]', '127.0.0.1');
  await owner.fill('#vms tr[data-vm="web1"] input[name=port_ssh]', env('SSH_PORT'));
  await submit(owner, '#vms tr[data-vm="web1"] form.edit-vm button[type=submit]');
  const row = (await owner.textContent('#vms tr[data-vm="web1"]')).replace(/\s+/g, ' ');
  check(row.includes('127.0.0.1') && row.includes(`${env('SSH_PORT')} / 3389`), `the VM is changed in place: ${row}`);
  check((await owner.textContent('#nics tr[data-nic="web1-nic"]')).includes('127.0.0.1'), 'its interface has the new address');
  step('the Owner edits the VM in place (address and SSH port)');

  await owner.fill('#register-set input[name=name]', 'pool');
  await owner.fill('#register-set input[name=instances]', '127.0.0.2, 127.0.0.3');
  await submit(owner, '#register-set button[type=submit]');
  check((await owner.textContent('#scale-sets tr[data-set="pool"]')).includes('2'), 'the scale set has two instances');
  check(await owner.$('#vms tr[data-vm="1"]'), 'its instances are listed');
  await submit(owner, '#scale-sets tr[data-set="pool"] button');
  check(!(await owner.$('#scale-sets tr[data-set="pool"]')) && !(await owner.$('#vms tr[data-vm="1"]')), 'the scale set is gone');
  step('the Owner registers a scale set of two instances and unregisters it');

  const group = vmId.split('/providers/')[0];
  for (const [role, scope] of [['Virtual Machine User Login', vmId], ['Reader', group]]) {
    await owner.goto(`${url}/portal/roles`);
    await owner.fill('#assign input[name=assignee]', 'alice');
    await owner.selectOption('#assign select[name=role]', role);
    await owner.fill('#assign input[name=scope]', scope);
    await submit(owner, '#assign button[type=submit]');
    check(await owner.$(`#assignments tr[data-assignee="alice"][data-role="${role}"]`), `${role} is assigned`);
  }
  step('the Owner assigns Virtual Machine User Login at the VM and Reader at its group');

  const aliceContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
  const alice = await signIn(aliceContext, 'alice', env('ALICE_PASSWORD'));
  await alice.goto(`${url}/portal/connect?bastion=${encodeURIComponent(env('BASTION_ID'))}`);
  await alice.check('input[name=target][value=vm]');
  await alice.selectOption('#vm', vmId);
  await alice.fill('#username', env('SSH_USER'));
  await alice.fill('#password', env('SSH_PASSWORD'));
  const [tab] = await Promise.all([aliceContext.waitForEvent('page'), alice.click('#connect')]);
  await tab.waitForLoadState();
  await until('the terminal to connect', async () => (await tab.getAttribute('#status', 'data-state')) === 'connected', 30000);
  await tab.click('#terminal');
  await tab.keyboard.type('echo portal-$((6*7))\n');
  await until('the command to run', async () => /^portal-42\s*$/m.test(await screen(tab)));
  await tab.close();
  step('the user connects to the VM in the browser and runs a command');

  await owner.goto(`${url}/portal/audit?user=alice`);
  const rows = await owner.$$eval('#audit tbody tr', (trs) => trs.map((tr) => tr.textContent.replace(/\s+/g, ' ')));
  check(rows.some((r) => r.includes('web1') && r.includes('allowed')), JSON.stringify(rows.slice(0, 6)));
  step('the Audit page shows the connection');

  const readerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  const reader = await signIn(readerContext, env('READER'), env('READER_PASSWORD'));
  await reader.goto(`${url}/portal/inventory`);
  check(await reader.$('#vms tr[data-vm="web1"]'), 'the Reader sees the VM');
  check(!(await reader.$('#register')), 'no register form for a Reader');
  check((await reader.$$('#vms button')).length === 0, 'no Unregister button for a Reader');
  check((await reader.$$('#vms details.edit')).length === 0, 'no Edit control for a Reader');
  const sideways = await reader.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(sideways <= 1, `the page scrolls sideways by ${sideways}px on a phone`);
  await reader.screenshot({ path: join(out, 'inventory-phone.png') });
  step('a Reader sees the inventory on a phone and nothing that changes it');
});
