// A real browser (Debian chromium, headless, via playwright-core) loads examples/browser/,
// which uses the browser builds of pusher-js and Echo against Herald.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { check, assert, eq, sleep } from '../lib/harness.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { R, uniq } from '../lib/rows.mjs';
import { createDemoServer } from '../../../examples/browser/serve.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export default async function (env) {
  const { port, apps, ARTIFACTS } = env;
  const M = apps.main;
  const signer = sdk(port, M);
  const demo = createDemoServer({ signer, nodeModules: path.join(here, '..', 'node_modules') });
  await new Promise((r) => demo.listen(0, '127.0.0.1', r));
  const demoPort = demo.address().port;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
  const room = uniq('lobby');
  const pageUrl = (user, name) => `http://127.0.0.1:${demoPort}/?host=127.0.0.1&port=${port}&key=${M.key}&user=${user}&name=${encodeURIComponent(name)}&room=${room}`;
  const tag = '[browser]';
  let ctx, ann, bob;
  const consoleLog = [];

  try {
    await check(R.echo, `${tag} headless chromium loads the demo page and Echo connects`, async () => {
      assert(fs.existsSync(CHROMIUM), `${CHROMIUM} missing`);
      ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, viewport: { width: 1000, height: 560 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      ann = await ctx.newPage();
      ann.on('console', (m) => consoleLog.push(`ann: ${m.type()}: ${m.text()}`));
      ann.on('pageerror', (e) => consoleLog.push(`ann: pageerror: ${e.message}`));
      await ann.goto(pageUrl(1, 'Ann'), { waitUntil: 'load', timeout: 8000 });
      await ann.waitForFunction(() => document.body.dataset.state === 'connected', null, { timeout: 8000 });
    }, 25000);

    await check(R.echo, `${tag} presence list shows the user after auth via /broadcasting/auth`, async () => {
      assert(ann, 'no page');
      await ann.waitForSelector('#members li[data-user-id="1"]', { timeout: 4000 });
      eq(await ann.textContent('#member-count'), '1', 'member count');
    }, 6000);

    await check(R.echo, `${tag} a second browser tab (Bob) appears in Ann's presence list`, async () => {
      assert(ctx && ann, 'no browser');
      bob = await ctx.newPage();
      await bob.goto(pageUrl(2, 'Bob'), { waitUntil: 'load', timeout: 5000 });
      await bob.waitForSelector('#members li[data-user-id="1"]', { timeout: 5000 });
      await ann.waitForSelector('#members li[data-user-id="2"]', { timeout: 4000 });
      eq(await ann.textContent('#members li[data-user-id="2"]'), 'Bob', 'name');
    }, 12000);

    await check(R.echo, `${tag} notification triggered through the HTTP API rings Ann's bell`, async () => {
      assert(ann, 'no page');
      await ann.waitForFunction(() => window.herald && window.herald.echo.connector.channels['private-App.Models.User.1'] && window.herald.echo.connector.channels['private-App.Models.User.1'].subscription.subscribed, null, { timeout: 4000 });
      const r = await viaSdk(signer.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
        title: 'Your invoice #1042 was paid', id: '7c9a3c1e-3f0b-4e8e-9b7e-1b2f1c7d9e10', type: 'App\\Notifications\\InvoicePaid',
      }));
      eq(r.status, 200, 'trigger status');
      await ann.waitForSelector('#notifications li.notification', { timeout: 4000 });
      assert((await ann.textContent('#notifications li.notification')).includes('Your invoice #1042 was paid'), 'notification text');
      eq(await ann.textContent('#bell-count'), '1', 'bell count');
    }, 8000);

    await check(R.echo, `${tag} the notification is private: Bob's bell stays at 0`, async () => {
      assert(bob, 'no page');
      await sleep(300);
      eq(await bob.textContent('#bell-count'), '0', 'bob bell count');
    }, 4000);

    await check(R.echo, `${tag} screenshot saved as proof (artifacts/browser-notification.png)`, async () => {
      assert(ann, 'no page');
      const file = path.join(ARTIFACTS, 'browser-notification.png');
      fs.rmSync(file, { force: true });
      await ann.screenshot({ path: file });
      const st = fs.statSync(file);
      assert(st.size > 5000, `screenshot too small: ${st.size}`);
      const sig = fs.readFileSync(file).subarray(0, 8).toString('hex');
      eq(sig, '89504e470d0a1a0a', 'PNG signature');
    }, 6000);

    await check(R.echo, `${tag} a tab using broadcaster 'pusher' (Cy) joins the same presence list`, async () => {
      assert(ctx && ann, 'no browser');
      const cy = await ctx.newPage();
      try {
        await cy.goto(pageUrl(3, 'Cy') + '&broadcaster=pusher', { waitUntil: 'load', timeout: 5000 });
        await cy.waitForFunction(() => document.body.dataset.state === 'connected', null, { timeout: 5000 });
        await cy.waitForSelector('#members li[data-user-id="1"]', { timeout: 5000 });
        await ann.waitForSelector('#members li[data-user-id="3"]', { timeout: 4000 });
      } finally {
        await cy.close();
      }
      await ann.waitForSelector('#members li[data-user-id="3"]', { state: 'detached', timeout: 5000 });
    }, 15000);

    await check(R.echo, `${tag} closing Bob's tab removes him from Ann's list (leaving)`, async () => {
      assert(bob && ann, 'no pages');
      await bob.close(); bob = null;
      await ann.waitForSelector('#members li[data-user-id="2"]', { state: 'detached', timeout: 5000 });
      eq(await ann.textContent('#member-count'), '1', 'member count');
    }, 8000);
  } finally {
    if (consoleLog.length) fs.writeFileSync(path.join(ARTIFACTS, 'browser-console.log'), consoleLog.join('\n') + '\n');
    try { if (ctx) await Promise.race([ctx.close(), sleep(5000)]); } catch { /* ignore */ }
    demo.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
