// The live debug console (issue 11) in a real browser: headless Debian chromium (playwright-core)
// opens /console on the main server (the suite enables [console] there), is refused with a wrong
// secret, signs in with the app's secret (an HttpOnly SameSite=Strict session cookie that
// survives a reload), and sees a pusher-js subscription and an HTTP API
// event (sent with the official `pusher` SDK) appear live; the event creator reaches pusher-js.
// A screenshot is kept in artifacts/console.png.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { check, assert, eq } from '../lib/harness.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { pusherClient, waitState } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const tag = '[console]';

export default async function (env) {
  const { port, apps, ARTIFACTS } = env;
  const M = apps.main;
  const signer = sdk(port, M);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-'));
  const channel = uniq('console-news');
  const log = [];
  let ctx, page;
  const rowWith = (text, ms = 5000) => page.waitForFunction(
    (t) => [...document.querySelectorAll('#events tr')].some((tr) => tr.textContent.includes(t)), text, { timeout: ms });

  try {
    await check(R.console, `${tag} a wrong secret is refused and the console stays closed`, async () => {
      assert(fs.existsSync(CHROMIUM), `${CHROMIUM} missing`);
      ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, viewport: { width: 1200, height: 700 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      page = await ctx.newPage();
      page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
      await page.goto(`http://127.0.0.1:${port}/console`, { waitUntil: 'load', timeout: 8000 });
      await page.fill('#app', M.id);
      await page.fill('#secret', 'not-the-secret');
      await page.click('#signin button');
      await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 4000 });
      assert(await page.isHidden('#console'), 'console shown after a wrong secret');
    }, 20000);

    await check(R.console, `${tag} signs in with the app secret: an HttpOnly SameSite=Strict cookie, no secret in the page`, async () => {
      assert(page, 'no page');
      await page.fill('#secret', M.secret);
      await page.click('#signin button');
      await page.waitForFunction(() => document.getElementById('status').textContent.includes('live'), null, { timeout: 5000 });
      assert(!(await page.content()).includes(M.secret), 'secret in the page');
      const cookie = (await ctx.cookies(`http://127.0.0.1:${port}/console`)).find((c) => c.name === 'herald_console');
      assert(cookie, 'no session cookie');
      assert(cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.path === '/console', `cookie ${JSON.stringify(cookie)}`);
      assert(!(await page.evaluate(() => document.cookie)).includes('herald_console'), 'session readable by the page script');
      // A reload keeps the session (the page asks GET console/session).
      await page.reload({ waitUntil: 'load', timeout: 8000 });
      await page.waitForFunction(() => document.getElementById('status').textContent.includes('live'), null, { timeout: 5000 });
      assert(await page.isHidden('#signin'), 'sign-in form shown after a reload');
    }, 15000);

    await check(R.console, `${tag} a pusher-js subscription and an API event appear live`, async (t) => {
      assert(page, 'no page');
      const p = pusherClient(t, port, M.key);
      await waitState(p, 'connected');
      const got = new Promise((resolve) => p.subscribe(channel).bind('headline', resolve));
      await rowWith(p.connection.socket_id);
      await rowWith(channel);
      const r = await viaSdk(signer.trigger(channel, 'headline', { text: 'hello console' }));
      eq(r.status, 200, 'trigger status');
      await got;
      await page.waitForFunction((c) => [...document.querySelectorAll('#events tr.api_event')].some((tr) => tr.textContent.includes(c) && tr.textContent.includes('headline')), channel, { timeout: 5000 });

      // The event creator reaches the same pusher-js subscriber.
      const fromConsole = new Promise((resolve) => p.channel(channel).bind('from-console', resolve));
      await page.fill('#cchannel', channel);
      await page.fill('#cevent', 'from-console');
      await page.fill('#cdata', '{"n":1}');
      await page.click('#creator button');
      const data = await fromConsole;
      eq(JSON.stringify(data), '{"n":1}', 'event creator data');

      // Two chart ticks (one per second), so the screenshot shows the per-second chart too.
      await page.waitForTimeout(2200);
      const file = path.join(ARTIFACTS, 'console.png');
      fs.rmSync(file, { force: true });
      await page.screenshot({ path: file, fullPage: true });
      assert(fs.statSync(file).size > 5000, 'screenshot too small');
    }, 20000);
  } finally {
    if (log.length) fs.writeFileSync(path.join(ARTIFACTS, 'console-browser.log'), log.join('\n') + '\n');
    try { if (ctx) await Promise.race([ctx.close(), new Promise((r) => setTimeout(r, 5000))]); } catch { /* ignore */ }
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
