// Official Node server SDK (npm pusher 5): every call checks status, body shape and delivery.
import { check, assert, eq, deepEq } from '../lib/harness.mjs';
import { connect } from '../lib/raw.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main;
  const p = sdk(port, M);
  const presenceSub = async (c, ch, user_id) => { const x = p.authorizeChannel(c.socketId, ch, { user_id, user_info: { name: `user ${user_id}` } }); return c.subscribeOk(ch, x.auth, x.channel_data); };

  await check(R.trig, 'node SDK trigger: 200 {} and the subscriber gets the JSON-encoded object', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('sdk-pub');
    await c.subscribeOk(ch);
    const r = await viaSdk(p.trigger(ch, 'App\\Events\\OrderShipped', { order: { id: 5 }, note: 'ünïcode' }));
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    const f = await c.next('App\\Events\\OrderShipped');
    deepEq(JSON.parse(f.data), { order: { id: 5 }, note: 'ünïcode' }, 'data');
  });
  await check(R.trig, 'node SDK trigger with socket_id and info', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('sdk-pub');
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    const r = await viaSdk(p.trigger([ch], 'ev', 'x', { socket_id: a.socketId, info: 'subscription_count' }));
    eq(r.status, 200, 'status');
    deepEq(r.body, { channels: { [ch]: { subscription_count: 2 } } }, 'body');
    await b.next('ev');
    await a.none('ev', 400, 'event to excluded socket');
  });
  await check(R.trig, 'node SDK trigger error surfaces 400 with {"error"} for a too-long event name (small app)', async () => {
    const s = sdk(port, apps.small);
    const r = await viaSdk(s.trigger('c', 'e'.repeat(60), 'x'));
    eq(r.status, 400, 'status');
    assert(r.body && typeof r.body.error === 'string', `body ${JSON.stringify(r.body)}`);
  });
  await check(R.batch, 'node SDK triggerBatch: 200 {} and both events delivered', async (t) => {
    const c = await connect(t, port, M.key);
    const ch1 = uniq('sdk-b'), ch2 = uniq('sdk-b');
    await c.subscribeOk(ch1); await c.subscribeOk(ch2);
    const r = await viaSdk(p.triggerBatch([{ channel: ch1, name: 'b1', data: { n: 1 } }, { channel: ch2, name: 'b2', data: 'plain' }]));
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    deepEq(JSON.parse((await c.next('b1')).data), { n: 1 }, 'b1 data');
    eq((await c.next('b2')).data, 'plain', 'b2 data');
  });
  await check(R.batch, 'node SDK triggerBatch with info', async (t) => {
    const ch = uniq('presence-sdkb');
    const c = await connect(t, port, M.key);
    await presenceSub(c, ch, '1');
    const r = await viaSdk(p.triggerBatch([{ channel: ch, name: 'b', data: {}, info: 'user_count,subscription_count' }]));
    eq(r.status, 200, 'status');
    // Decisions: user_count only for presence channels, subscription_count only for non-presence.
    deepEq(r.body, { batch: [{ user_count: 1 }] }, 'body');
    await c.next('b');
  });
  await check(R.query, 'node SDK get /channels with filter_by_prefix and info=user_count', async (t) => {
    const pre = uniq('presence-sdkq');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await presenceSub(a, `${pre}-x`, '1'); await presenceSub(b, `${pre}-x`, '2'); await presenceSub(b, `${pre}-y`, '2');
    const r = await viaSdk(p.get({ path: '/channels', params: { filter_by_prefix: pre, info: 'user_count' } }));
    eq(r.status, 200, 'status');
    deepEq(r.body, { channels: { [`${pre}-x`]: { user_count: 2 }, [`${pre}-y`]: { user_count: 1 } } }, 'body');
  });
  await check(R.query, 'node SDK get /channels/{name} with info', async (t) => {
    const ch = uniq('presence-sdkq');
    const a = await connect(t, port, M.key);
    await presenceSub(a, ch, '9');
    const r = await viaSdk(p.get({ path: `/channels/${ch}`, params: { info: 'user_count,subscription_count' } }));
    eq(r.status, 200, 'status');
    deepEq(r.body, { occupied: true, user_count: 1, subscription_count: 1 }, 'body');
  });
  await check(R.query, 'node SDK get /channels/{name}/users', async (t) => {
    const ch = uniq('presence-sdkq');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await presenceSub(a, ch, '1'); await presenceSub(b, ch, '2');
    const r = await viaSdk(p.get({ path: `/channels/${ch}/users` }));
    eq(r.status, 200, 'status');
    eq(r.body.users.map((u) => u.id).sort(), ['1', '2'], 'ids');
  });
  await check(R.conn, 'node SDK get /connections reflects newly opened sockets', async (t) => {
    const N = apps.noclient, np = sdk(port, N);
    const before = await viaSdk(np.get({ path: '/connections' }));
    eq(before.status, 200, 'status');
    await connect(t, port, N.key); await connect(t, port, N.key);
    const after = await viaSdk(np.get({ path: '/connections' }));
    deepEq(after.body, { connections: before.body.connections + 2 }, 'body');
  });
  await check(R.term, 'node SDK terminateUserConnections: {} and the user\'s sockets close 4009', async (t) => {
    const a = await connect(t, port, M.key), a2 = await connect(t, port, M.key), b = await connect(t, port, M.key);
    for (const [c, id] of [[a, 'sdk-term'], [a2, 'sdk-term'], [b, 'sdk-keep']]) { c.send({ event: 'pusher:signin', data: p.authenticateUser(c.socketId, { id }) }); await c.next('pusher:signin_success'); }
    const r = await viaSdk(p.terminateUserConnections('sdk-term'));
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    for (const c of [a, a2]) {
      deepEq((await c.next('pusher:error')).data, { code: 4009, message: 'You got disconnected by the app.' }, 'error');
      eq((await c.waitClose()).code, 4009, 'close');
    }
    await b.alive();
  });
  await check(R.signin, 'node SDK sendToUser reaches every socket of that user', async (t) => {
    const a = await connect(t, port, M.key), a2 = await connect(t, port, M.key);
    for (const c of [a, a2]) {
      c.send({ event: 'pusher:signin', data: p.authenticateUser(c.socketId, { id: 'multi-tab' }) });
      await c.next('pusher:signin_success');
      await c.subscribeOk('#server-to-user-multi-tab', '');
    }
    const r = await viaSdk(p.sendToUser('multi-tab', 'dm', { hi: true }));
    eq(r.status, 200, 'status');
    for (const c of [a, a2]) deepEq(JSON.parse((await c.next('dm')).data), { hi: true }, 'dm data');
  });
}
