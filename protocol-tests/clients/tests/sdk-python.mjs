// Official Python server SDK (PyPI pusher): each call runs in py/sdk_op.py; we assert its
// HTTP status and body and what real WebSocket subscribers received.
import { check, assert, eq, deepEq } from '../lib/harness.mjs';
import { connect } from '../lib/raw.mjs';
import { sdk } from '../lib/http.mjs';
import { py, pyOk as ok } from '../lib/python.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main;
  const p = sdk(port, M);
  const presenceSub = async (c, ch, user_id) => { const x = p.authorizeChannel(c.socketId, ch, { user_id }); return c.subscribeOk(ch, x.auth, x.channel_data); };

  await check(R.trig, 'python SDK trigger: 200 {} and delivered', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('py-pub');
    await c.subscribeOk(ch);
    deepEq(ok(await py(port, M, 'trigger', [ch, 'py-event', { from: 'python', n: 3 }])), {}, 'body');
    deepEq(JSON.parse((await c.next('py-event')).data), { from: 'python', n: 3 }, 'data');
  }, 8000);
  await check(R.trig, 'python SDK trigger with socket_id excludes that socket', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('py-pub');
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    ok(await py(port, M, 'trigger', [[ch], 'py-x', 'd', a.socketId]));
    await b.next('py-x');
    await a.none('py-x', 400, 'event to excluded socket');
  }, 8000);
  await check(R.enc, 'python SDK trigger on private-encrypted-: ciphertext relayed, nonce+ciphertext shape', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-encrypted-py');
    await c.subscribeOk(ch, p.authorizeChannel(c.socketId, ch).auth);
    ok(await py(port, M, 'trigger', [ch, 'sec', { secret: 'value' }]));
    const d = JSON.parse((await c.next('sec')).data);
    assert(typeof d.nonce === 'string' && typeof d.ciphertext === 'string', `data ${JSON.stringify(d)}`);
    assert(!JSON.stringify(d).includes('value'), 'plaintext leaked');
  }, 8000);
  await check(R.batch, 'python SDK trigger_batch: 200 {} and delivered', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('py-b');
    await c.subscribeOk(ch);
    deepEq(ok(await py(port, M, 'trigger_batch', [[{ channel: ch, name: 'pb1', data: { a: 1 } }, { channel: ch, name: 'pb2', data: 'two' }]])), {}, 'body');
    deepEq(JSON.parse((await c.next('pb1')).data), { a: 1 }, 'pb1');
    eq((await c.next('pb2')).data, 'two', 'pb2');
  }, 8000);
  await check(R.query, 'python SDK channels_info(prefix, [user_count])', async (t) => {
    const pre = uniq('presence-py');
    const c = await connect(t, port, M.key);
    await presenceSub(c, `${pre}-1`, '1');
    const res = ok(await py(port, M, 'channels_info', [pre, ['user_count']]));
    deepEq(res, { channels: { [`${pre}-1`]: { user_count: 1 } } }, 'body');
  }, 8000);
  await check(R.query, 'python SDK channel_info(ch, [subscription_count])', async (t) => {
    const ch = uniq('py-pub');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    deepEq(ok(await py(port, M, 'channel_info', [ch, ['subscription_count']])), { occupied: true, subscription_count: 2 }, 'body');
  }, 8000);
  await check(R.query, 'python SDK users_info(presence channel)', async (t) => {
    const ch = uniq('presence-py');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await presenceSub(a, ch, 'u1'); await presenceSub(b, ch, 'u2');
    const res = ok(await py(port, M, 'users_info', [ch]));
    eq(res.users.map((u) => u.id).sort(), ['u1', 'u2'], 'ids');
  }, 8000);
  await check(R.term, 'python SDK terminate_user_connections (POST /users/{id}/terminate_connections, no /apps prefix)', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    a.send({ event: 'pusher:signin', data: p.authenticateUser(a.socketId, { id: 'py-term' }) });
    b.send({ event: 'pusher:signin', data: p.authenticateUser(b.socketId, { id: 'py-keep' }) });
    await a.next('pusher:signin_success'); await b.next('pusher:signin_success');
    deepEq(ok(await py(port, M, 'terminate_user_connections', ['py-term'])), {}, 'body');
    deepEq((await a.next('pusher:error')).data, { code: 4009, message: 'You got disconnected by the app.' }, 'error');
    eq((await a.waitClose()).code, 4009, 'close');
    await b.alive();
  }, 8000);
  await check(R.sig, 'python SDK with a wrong secret gets 401', async () => {
    const r = await py(port, { ...M, secret: 'wrong' }, 'trigger', ['c', 'e', 'x']);
    assert(!r.ok, 'call should fail');
    eq(r.status, 401, 'status');
  }, 8000);
}
