// Zero-downtime restart with real clients: pusher-js clients connected and the Node SDK
// triggering in a loop while a second herald binds the same port (SO_REUSEPORT) and the first
// gets SIGTERM. No client may stay disconnected longer than pusher-js's shortest reconnect delay,
// and no HTTP trigger may fail. Then config reload (SIGHUP via `herald reload`) with connected
// pusher-js clients: the unchanged app's clients stay connected, the removed app's get 4001.
import { spawnSync } from 'node:child_process';
import { check, assert, eq, sleep } from '../lib/harness.mjs';
import { Herald } from '../lib/herald.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { pusherClient, waitState, once } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

// pusher-js's delay before reconnecting after a 4100-4199 close ('backoff'); after 4200 it
// reconnects at once ('retry'). A client down for longer than this did not reconnect promptly.
const RECONNECT_DELAY_MS = 1000;

// Records, per client, how long it spent away from 'connected' and its socket ids.
function watch(p) {
  const w = { downSince: null, longestDown: 0, ids: [p.connection.socket_id], events: 0, log: [] };
  const t0 = Date.now();
  p.connection.bind('error', (e) => w.log.push(`${Date.now() - t0}ms error ${JSON.stringify(e).slice(0, 120)}`));
  p.connection.bind('state_change', ({ current }) => {
    w.log.push(`${Date.now() - t0}ms ${current}`);
    if (current === 'connected') {
      if (w.downSince !== null) w.longestDown = Math.max(w.longestDown, Date.now() - w.downSince);
      w.downSince = null;
      w.ids.push(p.connection.socket_id);
    } else if (w.downSince === null) w.downSince = Date.now();
  });
  return w;
}

export default async function (env) {
  const A = { id: '600001', key: 'zd-key', secret: 'zd-secret' };
  const B = { id: '600002', key: 'zd-new-key', secret: 'zd-new-secret' };
  const C = { id: '600003', key: 'zd-gone-key', secret: 'zd-gone-secret' };
  const config = (apps, name) => ({ server: { shutdown_timeout: 5, pid_file: `${env.ARTIFACTS}/${name}.pid` }, apps });
  const old = new Herald(env.bin, 'zd-old', config([A], 'zd-old'));
  let next, clients = [], watches = [], trig = null;
  const channel = uniq('zd');
  try {
    await check(R.restart, 'setup: herald, 5 pusher-js clients subscribed, the Node SDK triggering every 20 ms', async () => {
      await old.start();
      for (let i = 0; i < 5; i++) {
        const p = pusherClient(null, old.port, A.key);
        clients.push(p);
        await waitState(p, 'connected');
        const ch = p.subscribe(channel);
        await once((cb) => ch.bind('pusher:subscription_succeeded', cb), 4000, 'subscribed');
        const w = watch(p);
        ch.bind('tick', () => { w.events++; });
        watches.push(w);
      }
      const signer = sdk(old.port, A);
      trig = { sent: 0, failed: [], stop: false };
      trig.done = (async () => {
        while (!trig.stop) {
          try {
            const r = await viaSdk(signer.trigger(channel, 'tick', { n: trig.sent }));
            if (r.status !== 200) trig.failed.push(`status ${r.status}`);
          } catch (e) { trig.failed.push(String(e && e.message || e)); }
          trig.sent++;
          await sleep(20);
        }
      })();
      await sleep(300);
      assert(trig.sent > 5 && trig.failed.length === 0, `triggers before the switch: ${trig.sent} sent, failures ${trig.failed}`);
    }, 25000);

    await check(R.restart, 'a second herald binds the same port while the first runs', async () => {
      assert(trig, 'no setup');
      next = new Herald(env.bin, 'zd-new', config([A], 'zd-new'));
      await next.start(old.port);
    }, 25000);

    await check(R.restart, 'SIGTERM to the first: every client is back within the reconnect delay, on the new process', async () => {
      assert(next, 'no second server');
      const before = trig.sent;
      old.proc.kill('SIGTERM');
      const exit = await old.exited;
      eq(exit, { code: 0, signal: null }, 'old process exit');
      for (const [i, p] of clients.entries()) {
        try { await waitState(p, 'connected', 5000); } catch (e) { throw new Error(`client ${i}: ${e.message}; ${watches[i].log.join(', ')}`); }
      }
      await sleep(500);
      for (const [i, w] of watches.entries()) {
        assert(w.ids.length >= 2, `client ${i} never reconnected (ids ${w.ids})`);
        assert(w.longestDown < RECONNECT_DELAY_MS, `client ${i} was disconnected ${w.longestDown} ms`);
      }
      assert(trig.sent > before + 10, `triggers kept going: ${trig.sent - before} during the switch`);
    }, 20000);

    await check(R.restart, 'no HTTP trigger failed during the switch, and events reach the clients on the new process', async () => {
      assert(trig, 'no setup');
      const seen = watches.map((w) => w.events);
      await sleep(300);
      trig.stop = true;
      await trig.done;
      eq(trig.failed, [], `failed triggers (of ${trig.sent})`);
      for (const [i, w] of watches.entries()) assert(w.events > seen[i], `client ${i} got no event after the switch`);
    }, 10000);

    // Config reload with connected pusher-js clients, on the new process.
    let pa, pc, channelA;
    await check(R.reload, 'setup: the new herald hosts apps A and C, a pusher-js client on each', async () => {
      assert(next && !next.exitInfo, 'no server');
      trig && (trig.stop = true);
      for (const p of clients) p.disconnect();
      clients = [];
      next.config = config([A, C], 'zd-new');
      // Rewrite the config file and reload instead of restarting.
      await reloadWith(env, next, config([A, C], 'zd-new'));
      pa = pusherClient(null, next.port, A.key); pc = pusherClient(null, next.port, C.key);
      await waitState(pa, 'connected'); await waitState(pc, 'connected');
      channelA = uniq('rl');
      const ch = pa.subscribe(channelA);
      await once((cb) => ch.bind('pusher:subscription_succeeded', cb), 4000, 'subscribed');
    }, 20000);

    await check(R.reload, 'herald reload: C removed, B added; A\'s pusher-js stays connected, C\'s gets error 4001', async () => {
      assert(pa && pc, 'no setup');
      const idA = pa.connection.socket_id;
      const states = [];
      pa.connection.bind('state_change', ({ current }) => states.push(current));
      const cErr = once((cb) => pc.connection.bind('error', cb), 5000, 'error on C');
      await reloadWith(env, next, config([A, B], 'zd-new'));
      const e = await cErr;
      eq(e && e.data && e.data.code, 4001, 'C error code');
      await sleep(300);
      eq(states, [], 'A state changes');
      eq(pa.connection.socket_id, idA, 'A socket id');
      const got = once((cb) => pa.channel(channelA).bind('after-reload', cb), 4000, 'event on A');
      eq((await viaSdk(sdk(next.port, A).trigger(channelA, 'after-reload', { ok: 1 }))).status, 200, 'trigger A');
      eq(await got, { ok: 1 }, 'A event');
      const pb = pusherClient(null, next.port, B.key);
      try { await waitState(pb, 'connected'); } finally { pb.disconnect(); }
    }, 20000);
  } finally {
    if (trig) { trig.stop = true; await trig.done; }
    for (const p of clients) p.disconnect();
    await old.stop();
    if (next) await next.stop();
  }
}

// Writes the server's config file and runs `herald reload --pid-file`; waits until the log shows
// the reload was applied.
async function reloadWith(env, h, cfg) {
  const { toToml } = await import('../lib/herald.mjs');
  const fs = await import('node:fs');
  const logBefore = fs.readFileSync(h.logPath, 'utf8').split('reload done').length;
  fs.writeFileSync(h.configPath, toToml({ server: { host: '127.0.0.1', port: h.port, ...cfg.server }, apps: cfg.apps }));
  const r = spawnSync(env.bin, ['reload', '--pid-file', cfg.server.pid_file], { encoding: 'utf8' });
  eq(r.status, 0, `herald reload: ${r.stderr}`);
  const deadline = Date.now() + 5000;
  while (fs.readFileSync(h.logPath, 'utf8').split('reload done').length <= logBefore) {
    assert(Date.now() < deadline, 'reload not logged as done');
    await sleep(50);
  }
}
