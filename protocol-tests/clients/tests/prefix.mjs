// A second herald started with --path /ws, and a third with server.max_connections = 2.
import { check, assert, eq, deepEq } from '../lib/harness.mjs';
import { Herald } from '../lib/herald.mjs';
import { connect, open } from '../lib/raw.mjs';
import { signed } from '../lib/http.mjs';
import { pusherClient, waitState, once } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const A = { id: '200001', key: 'prefix-key', secret: 'prefix-secret' };
  const h = new Herald(env.bin, 'prefix', { server: {}, apps: [A] }, ['--path', '/ws']);
  let started = false;
  await check(R.prefix, 'herald start --path /ws answers GET /ws/up', async () => {
    await h.start();
    started = true;
    const r = await fetch(`http://127.0.0.1:${h.port}/ws/up`);
    eq(r.status, 200, 'status'); deepEq(await r.json(), { health: 'OK' }, 'body');
  }, 25000);
  try {
    const port = h.port;
    await check(R.prefix, 'WebSocket at /ws/app/{key} connects', async (t) => {
      assert(started, 'server not started');
      await connect(t, port, A.key, { path: '/ws' });
    });
    await check(R.prefix, 'WebSocket at /app/{key} (no prefix) is not served', async (t) => {
      assert(started, 'server not started');
      const c = open(t, port, A.key);
      const outcome = await Promise.race([
        c.opened.then(() => c.next('pusher:connection_established', 1500).then(() => 'established', () => 'no handshake'), () => 'refused'),
        c.closed.then(() => 'closed'),
      ]);
      assert(outcome !== 'established', 'unprefixed path must not be served');
    });
    await check(R.prefix, 'signed POST /ws/apps/{id}/events (signature over the unprefixed path) delivers', async (t) => {
      const c = await connect(t, port, A.key, { path: '/ws' });
      const ch = uniq('pfx');
      await c.subscribeOk(ch);
      const r = await signed(port, A, 'POST', `/apps/${A.id}/events`, { prefix: '/ws', body: { name: 'via-prefix', data: 'ok', channel: ch } });
      eq(r.status, 200, `status (${r.text})`); deepEq(r.body, {}, 'body');
      deepEq(await c.next('via-prefix'), { event: 'via-prefix', channel: ch, data: 'ok' }, 'frame');
    });
    await check(R.prefix, 'signed GET /ws/apps/{id}/channels works; signing the prefixed path is 401', async (t) => {
      const c = await connect(t, port, A.key, { path: '/ws' });
      const ch = uniq('pfx');
      await c.subscribeOk(ch);
      const r = await signed(port, A, 'GET', `/apps/${A.id}/channels`, { prefix: '/ws' });
      eq(r.status, 200, 'status'); assert(r.body.channels && r.body.channels[ch], `body ${r.text}`);
      // Sign "/ws/apps/.../channels" and send it to the same URL: must be refused.
      const bad = await signed(port, A, 'GET', `/ws/apps/${A.id}/channels`);
      eq(bad.status, 401, 'status when the prefix is part of the signed path');
    });
    await check(R.prefix, 'pusher-js with wsPath "/ws" connects and receives', async (t) => {
      const p = pusherClient(t, port, A.key, { wsPath: '/ws' });
      const ch = p.subscribe(uniq('pfx'));
      await once((cb) => ch.bind('pusher:subscription_succeeded', cb), 4000, 'subscribed');
      const got = once((cb) => ch.bind('hi', cb));
      eq((await signed(port, A, 'POST', `/apps/${A.id}/events`, { prefix: '/ws', body: { name: 'hi', data: '{"a":1}', channel: ch.name } })).status, 200, 'status');
      deepEq(await got, { a: 1 }, 'data');
    });
  } finally {
    await h.stop();
  }

  const C = { id: '300001', key: 'cap-key', secret: 'cap-secret' };
  const cap = new Herald(env.bin, 'cap', { server: { max_connections: 2, max_queued_frames: 8, max_request_size: 2000000 }, apps: [C] });
  try {
    await check(R.quota, 'server.max_connections reached: close 4100', async (t) => {
      await cap.start();
      await connect(t, cap.port, C.key); await connect(t, cap.port, C.key);
      const c = open(t, cap.port, C.key);
      eq((await c.waitClose(3000)).code, 4100, 'close code');
    }, 25000);
    await check(R.quota, 'slow reader (outbox over server.max_queued_frames = 8): close 4100', async (t) => {
      assert(cap.port && !cap.exitInfo, 'cap server not running');
      const c = await connect(t, cap.port, C.key);
      const ch = uniq('flood');
      await c.subscribeOk(ch);
      c.ws._socket.pause(); // stop reading: kernel buffers fill, then the server's outbox
      const item = { name: 'flood', data: 'x'.repeat(90000), channel: ch };
      for (let i = 0; i < 40 && c.isOpen; i++) {
        const r = await signed(cap.port, C, 'POST', `/apps/${C.id}/batch_events`, { body: { batch: Array(10).fill(item) } });
        eq(r.status, 200, `batch ${i} status`);
      }
      c.ws._socket.resume();
      eq((await c.waitClose(8000)).code, 4100, 'close code');
    }, 20000);
  } finally {
    await cap.stop();
  }
}
