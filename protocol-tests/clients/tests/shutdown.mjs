// Graceful shutdown (SIGTERM → 4200) and reconnection of real clients after a restart.
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { Herald } from '../lib/herald.mjs';
import { Raw, wsUrl } from '../lib/raw.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { pusherClient, echoClient, waitState, once, collector } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const A = { id: '400001', key: 'restart-key', secret: 'restart-secret' };
  const h = new Herald(env.bin, 'restart', { server: { shutdown_timeout: 5 }, apps: [A] });
  const cleanup = [];
  let raw, p, echo, exitInfo, oldId;
  const pub = uniq('rs-pub'), priv = uniq('private-rs'), room = uniq('rs-room');
  try {
    await check(R.shut, 'setup: herald, a raw socket, pusher-js (public+private) and Echo (presence) connected', async () => {
      await h.start();
      const signer = sdk(h.port, A);
      raw = new Raw(wsUrl(h.port, A.key)); cleanup.push(() => raw.close());
      await raw.established();
      p = pusherClient(null, h.port, A.key, { signer }); cleanup.push(() => p.disconnect());
      await waitState(p, 'connected');
      oldId = p.connection.socket_id;
      const c1 = p.subscribe(pub), c2 = p.subscribe(priv);
      const s1 = once((cb) => c1.bind('pusher:subscription_succeeded', cb), 4000, 'public subscribed');
      const s2 = once((cb) => c2.bind('pusher:subscription_succeeded', cb), 4000, 'private subscribed');
      await s1; await s2;
      echo = echoClient(null, h.port, A.key, 'reverb', { signer, presence: { user_id: 5, user_info: { id: 5, name: 'Eve' } } }); cleanup.push(() => echo.disconnect());
      echo.here = collector();
      echo.join(room).here(echo.here);
      await echo.here.wait(() => true, 4000, 'here()');
    }, 25000);

    await check(R.shut, 'SIGTERM: sockets get pusher:error 4200 "Server is shutting down" then close 4200', async () => {
      assert(raw, 'no setup');
      h.proc.kill('SIGTERM');
      const f = await raw.next('pusher:error', 4000);
      deepEq(f.data, { code: 4200, message: 'Server is shutting down' }, 'error data');
      eq((await raw.waitClose(4000)).code, 4200, 'close code');
    }, 8000);

    await check(R.shut, 'herald exits 0 after SIGTERM', async () => {
      let timer;
      exitInfo = await Promise.race([h.exited, new Promise((r) => { timer = setTimeout(() => r(null), 12000); })]);
      clearTimeout(timer);
      assert(exitInfo, 'did not exit within 12 s');
      deepEq(exitInfo, { code: 0, signal: null }, 'exit');
    }, 14000);

    await check(R.shut, 'herald starts again on the same port', async () => {
      if (!exitInfo) await h.stop(3000);
      h.reset();
      await h.start(h.port);
    }, 25000);

    await check(R.shut, 'pusher-js reconnects by itself with a new socket_id and gets events on restored subscriptions', async () => {
      assert(p, 'no setup');
      await waitState(p, 'connected', 20000);
      const deadline = Date.now() + 15000;
      while (p.connection.socket_id === oldId && Date.now() < deadline) await sleep(100);
      assert(p.connection.socket_id !== oldId, 'socket_id did not change');
      const signer = sdk(h.port, A);
      const c1 = p.channel(pub), c2 = p.channel(priv);
      const deadline2 = Date.now() + 5000;
      while (!(c1.subscribed && c2.subscribed) && Date.now() < deadline2) await sleep(100);
      assert(c1.subscribed && c2.subscribed, `resubscribed? public ${c1.subscribed} private ${c2.subscribed}`);
      const g1 = once((cb) => c1.bind('back', cb)), g2 = once((cb) => c2.bind('back', cb));
      eq((await viaSdk(signer.trigger([pub, priv], 'back', { again: true }))).status, 200, 'status');
      deepEq(await g1, { again: true }, 'public event'); deepEq(await g2, { again: true }, 'private event');
    }, 40000);

    await check(R.shut, 'Echo presence re-joins after the restart (here() fires again, member listed)', async () => {
      assert(echo, 'no setup');
      await echo.here.wait((u) => echo.here.items.length >= 2, 20000, 'second here()');
      const users = echo.here.items[echo.here.items.length - 1];
      deepEq(users, [{ id: 5, name: 'Eve' }], 'here after restart');
      const r = await viaSdk(sdk(h.port, A).get({ path: `/channels/presence-${room}/users` }));
      eq((r.body.users || []).map((u) => String(u.id)), ['5'], 'users via HTTP');
    }, 25000);
  } finally {
    for (const c of cleanup) { try { c(); } catch { /* ignore */ } }
    await h.stop();
  }
}
