// HTTP API checks with raw signed requests (status codes, exact bodies, signature rules).
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { connect } from '../lib/raw.mjs';
import { sdk, signed, signedUrl, md5 } from '../lib/http.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main, S = apps.small;
  const signer = sdk(port, M);
  const ev = (app, body, over) => signed(port, app, 'POST', `/apps/${app.id}/events`, { body, ...over });
  const errBody = (r) => assert(r.body && typeof r.body.error === 'string' && r.body.error.length > 0, `error body must be {"error":"..."}, got ${r.text}`);

  // ---------------- trigger
  await check(R.trig, 'POST /events returns 200 {} and reaches every listed channel', async (t) => {
    const c = await connect(t, port, M.key);
    const ch1 = uniq('pub'), ch2 = uniq('pub');
    await c.subscribeOk(ch1); await c.subscribeOk(ch2);
    const r = await ev(M, { name: 'multi', data: 'd', channels: [ch1, ch2] });
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    const got = [await c.next('multi'), await c.next('multi')].map((f) => f.channel).sort();
    eq(got, [ch1, ch2].sort(), 'channels reached');
  });
  await check(R.trig, 'socket_id excludes that socket only', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('pub');
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    const r = await ev(M, { name: 'x', data: '1', channel: ch, socket_id: a.socketId });
    eq(r.status, 200, 'status');
    await b.next('x');
    await a.none('x', 400, 'event to the excluded socket');
  });
  await check(R.trig, 'info=subscription_count,user_count returns per-channel counts', async (t) => {
    const pub = uniq('pub'), pres = uniq('presence-info');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await a.subscribeOk(pub); await b.subscribeOk(pub);
    for (const [c, u] of [[a, '1'], [b, '2']]) { const x = signer.authorizeChannel(c.socketId, pres, { user_id: u }); await c.subscribeOk(pres, x.auth, x.channel_data); }
    const r = await ev(M, { name: 'i', data: '1', channels: [pub, pres], info: 'subscription_count,user_count' });
    eq(r.status, 200, 'status');
    deepEq(r.body, { channels: { [pub]: { subscription_count: 2 }, [pres]: { user_count: 2 } } }, 'body');
  });
  const bad400 = (name, body, app = M) => check(R.trig, `400: ${name}`, async () => {
    const r = await ev(app, body);
    eq(r.status, 400, `status (body ${r.text})`); errBody(r);
  });
  await bad400('body is not JSON', '{"name":');
  await bad400('missing name', { data: 'x', channel: 'c' });
  await bad400('missing data', { name: 'x', channel: 'c' });
  await bad400('data is not a string', { name: 'x', data: { a: 1 }, channel: 'c' });
  await bad400('no channels', { name: 'x', data: 'x' });
  await bad400('invalid channel name', { name: 'x', data: 'x', channel: 'bad channel' });
  await bad400('event name starting with pusher:', { name: 'pusher:fake', data: 'x', channel: 'c' });
  await bad400('event name starting with pusher_internal:', { name: 'pusher_internal:fake', data: 'x', channel: 'c' });
  await bad400('event name longer than max_event_name_length', { name: 'n'.repeat(51), data: 'x', channel: 'c' }, S);
  await bad400('several channels including a private-encrypted- one', { name: 'x', data: 'x', channels: ['private-encrypted-a', 'b'] });
  await bad400('malformed socket_id', { name: 'x', data: 'x', channel: 'c', socket_id: 'abc' });

  // ---------------- batch
  await check(R.batch, 'batch_events returns {} and delivers each item', async (t) => {
    const c = await connect(t, port, M.key);
    const ch1 = uniq('pub'), ch2 = uniq('pub');
    await c.subscribeOk(ch1); await c.subscribeOk(ch2);
    const r = await signed(port, M, 'POST', `/apps/${M.id}/batch_events`, { body: { batch: [{ name: 'b1', data: 'one', channel: ch1 }, { name: 'b2', data: 'two', channel: ch2 }] } });
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    deepEq(await c.next('b1'), { event: 'b1', channel: ch1, data: 'one' }, 'b1');
    deepEq(await c.next('b2'), { event: 'b2', channel: ch2, data: 'two' }, 'b2');
  });
  await check(R.batch, 'batch with info returns {"batch":[{...},{}]}', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch);
    const r = await signed(port, M, 'POST', `/apps/${M.id}/batch_events`, { body: { batch: [{ name: 'b', data: '1', channel: ch, info: 'subscription_count' }, { name: 'b', data: '2', channel: ch }] } });
    eq(r.status, 200, 'status');
    deepEq(r.body, { batch: [{ subscription_count: 1 }, {}] }, 'body');
  });
  await check(R.batch, 'batch socket_id excludes the sender', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('pub');
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    const r = await signed(port, M, 'POST', `/apps/${M.id}/batch_events`, { body: { batch: [{ name: 'bx', data: '1', channel: ch, socket_id: a.socketId }] } });
    eq(r.status, 200, 'status');
    await b.next('bx');
    await a.none('bx', 400, 'event to excluded socket');
  });
  await check(R.batch, 'more than max_batch_size items: 400', async () => {
    const r = await signed(port, S, 'POST', `/apps/${S.id}/batch_events`, { body: { batch: [1, 2, 3].map((i) => ({ name: 'b', data: String(i), channel: 'c' })) } });
    eq(r.status, 400, `status (${r.text})`); errBody(r);
  });

  // ---------------- channel queries
  await check(R.query, 'GET /channels lists occupied channels only', async (t) => {
    const c = await connect(t, port, M.key);
    const pre = uniq('q');
    await c.subscribeOk(`${pre}-a`); await c.subscribeOk(`${pre}-b`); await c.subscribeOk(`${pre}-gone`);
    c.send({ event: 'pusher:unsubscribe', data: { channel: `${pre}-gone` } });
    await sleep(300);
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels`, { params: { filter_by_prefix: pre } });
    eq(r.status, 200, 'status');
    deepEq(r.body, { channels: { [`${pre}-a`]: {}, [`${pre}-b`]: {} } }, 'body');
  });
  await check(R.query, 'GET /channels?filter_by_prefix=presence-&info=user_count', async (t) => {
    const ch = uniq('presence-q');
    const c = await connect(t, port, M.key);
    const x = signer.authorizeChannel(c.socketId, ch, { user_id: '1' });
    await c.subscribeOk(ch, x.auth, x.channel_data);
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels`, { params: { filter_by_prefix: 'presence-', info: 'user_count' } });
    eq(r.status, 200, 'status');
    deepEq(r.body.channels[ch], { user_count: 1 }, 'entry');
  });
  await check(R.query, 'GET /channels?info=user_count without presence- prefix: 400', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels`, { params: { info: 'user_count' } });
    eq(r.status, 400, 'status'); errBody(r);
  });
  await check(R.query, 'GET /channels/{name}?info=subscription_count', async (t) => {
    const ch = uniq('pub');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await a.subscribeOk(ch); await b.subscribeOk(ch);
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}`, { params: { info: 'subscription_count' } });
    eq(r.status, 200, 'status');
    deepEq(r.body, { occupied: true, subscription_count: 2 }, 'body');
  });
  await check(R.query, 'GET /channels/{presence}?info=user_count,subscription_count', async (t) => {
    const ch = uniq('presence-q');
    for (const u of ['1', '1', '2']) { const c = await connect(t, port, M.key); const x = signer.authorizeChannel(c.socketId, ch, { user_id: u }); await c.subscribeOk(ch, x.auth, x.channel_data); }
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}`, { params: { info: 'user_count,subscription_count' } });
    eq(r.status, 200, 'status');
    deepEq(r.body, { occupied: true, user_count: 2, subscription_count: 3 }, 'body');
  });
  await check(R.query, 'GET unoccupied channel: {"occupied":false}', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${uniq('empty')}`);
    eq(r.status, 200, 'status'); deepEq(r.body, { occupied: false }, 'body');
  });
  await check(R.query, 'user_count on a non-presence channel: 400', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${uniq('pub')}`, { params: { info: 'user_count' } });
    eq(r.status, 400, 'status'); errBody(r);
  });
  await check(R.query, 'GET /channels/{presence}/users lists distinct ids', async (t) => {
    const ch = uniq('presence-q');
    for (const u of ['1', '2', '2']) { const c = await connect(t, port, M.key); const x = signer.authorizeChannel(c.socketId, ch, { user_id: u }); await c.subscribeOk(ch, x.auth, x.channel_data); }
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}/users`);
    eq(r.status, 200, 'status');
    eq(r.body.users.map((u) => u.id).sort(), ['1', '2'], 'ids');
    deepEq(r.body.users.find((u) => u.id === '1'), { id: '1' }, 'user object shape');
  });
  await check(R.query, 'users of an empty presence channel: {"users":[]}; non-presence: 400', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${uniq('presence-empty')}/users`);
    eq(r.status, 200, 'status'); deepEq(r.body, { users: [] }, 'body');
    const r2 = await signed(port, M, 'GET', `/apps/${M.id}/channels/${uniq('pub')}/users`);
    eq(r2.status, 400, 'non-presence status'); errBody(r2);
  });

  // ---------------- terminate (raw)
  await check(R.term, 'POST /apps/{id}/users/{uid}/terminate_connections closes signed-in sockets with 4009', async (t) => {
    const c = await connect(t, port, M.key), other = await connect(t, port, M.key);
    c.send({ event: 'pusher:signin', data: signer.authenticateUser(c.socketId, { id: 'term-1' }) });
    other.send({ event: 'pusher:signin', data: signer.authenticateUser(other.socketId, { id: 'term-2' }) });
    await c.next('pusher:signin_success'); await other.next('pusher:signin_success');
    const r = await signed(port, M, 'POST', `/apps/${M.id}/users/term-1/terminate_connections`, { body: {} });
    eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
    deepEq((await c.next('pusher:error')).data, { code: 4009, message: 'You got disconnected by the app.' }, 'error');
    eq((await c.waitClose()).code, 4009, 'close code');
    await other.alive();
  });
  await check(R.term, 'terminate also closes presence members with that user_id', async (t) => {
    const ch = uniq('presence-term');
    const c = await connect(t, port, M.key), w = await connect(t, port, M.key);
    const x = signer.authorizeChannel(c.socketId, ch, { user_id: 'term-p' }); await c.subscribeOk(ch, x.auth, x.channel_data);
    const y = signer.authorizeChannel(w.socketId, ch, { user_id: 'watcher' }); await w.subscribeOk(ch, y.auth, y.channel_data);
    const r = await signed(port, M, 'POST', `/apps/${M.id}/users/term-p/terminate_connections`, { body: {} });
    eq(r.status, 200, 'status');
    eq((await c.waitClose()).code, 4009, 'close code');
    eq(JSON.parse((await w.next('pusher_internal:member_removed')).data).user_id, 'term-p', 'member_removed');
    await w.alive();
  });

  // ---------------- connections and /up
  await check(R.conn, 'GET /up is {"health":"OK"} without auth', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/up`);
    eq(r.status, 200, 'status'); deepEq(await r.json(), { health: 'OK' }, 'body');
  });
  await check(R.conn, 'GET /apps/{id}/connections counts open sockets of the app', async (t) => {
    const N = apps.noclient; // quiet app: no other check holds its sockets now
    const before = await signed(port, N, 'GET', `/apps/${N.id}/connections`);
    eq(before.status, 200, 'status');
    assert(typeof before.body.connections === 'number', `body ${before.text}`);
    const cs = [];
    for (let i = 0; i < 3; i++) cs.push(await connect(t, port, N.key));
    const mid = await signed(port, N, 'GET', `/apps/${N.id}/connections`);
    eq(mid.body.connections, before.body.connections + 3, 'connections after opening 3');
    cs.forEach((c) => c.close()); await Promise.all(cs.map((c) => c.closed)); await sleep(300);
    const after = await signed(port, N, 'GET', `/apps/${N.id}/connections`);
    eq(after.body.connections, before.body.connections, 'connections after closing');
  });

  // ---------------- signature verification
  const body = JSON.stringify({ name: 'x', data: 'x', channel: 'c' });
  const raw = async (over) => {
    const url = signedUrl(port, { method: 'POST', path: `/apps/${M.id}/events`, body, key: M.key, secret: M.secret, ...over });
    const r = await fetch(url, { method: 'POST', body: over.sendBody ?? body, headers: { 'content-type': 'application/json' } });
    const text = await r.text(); let b; try { b = JSON.parse(text); } catch { b = text; }
    return { status: r.status, body: b, text };
  };
  await check(R.sig, 'correctly signed request: 200', async () => { eq((await raw({})).status, 200, 'status'); });
  await check(R.sig, 'unknown app id: 404', async () => {
    const r = await signed(port, M, 'POST', '/apps/999999/events', { body: { name: 'x', data: 'x', channel: 'c' } });
    eq(r.status, 404, 'status');
  });
  await check(R.sig, 'wrong secret: 401 {"error":...}', async () => { const r = await raw({ secret: 'wrong' }); eq(r.status, 401, 'status'); errBody(r); });
  await check(R.sig, 'auth_key of another app: 401', async () => { eq((await raw({ key: S.key })).status, 401, 'status'); });
  await check(R.sig, 'auth_version 2.0: 401', async () => { eq((await raw({ authVersion: '2.0' })).status, 401, 'status'); });
  await check(R.sig, 'timestamp 700 s old: 401', async () => { eq((await raw({ timestamp: Math.floor(Date.now() / 1000) - 700 })).status, 401, 'status'); });
  await check(R.sig, 'timestamp 700 s in the future: 401', async () => { eq((await raw({ timestamp: Math.floor(Date.now() / 1000) + 700 })).status, 401, 'status'); });
  await check(R.sig, 'timestamp 500 s old is still accepted', async () => { eq((await raw({ timestamp: Math.floor(Date.now() / 1000) - 500 })).status, 200, 'status'); });
  await check(R.sig, 'missing body_md5 on a POST with body: 401', async () => { eq((await raw({ bodyMd5: null })).status, 401, 'status'); });
  await check(R.sig, 'body altered after signing (body_md5 mismatch): 401', async () => {
    eq((await raw({ sendBody: JSON.stringify({ name: 'y', data: 'x', channel: 'c' }) })).status, 401, 'status');
  });
  await check(R.sig, 'GET with a tampered query param: 401', async () => {
    const url = signedUrl(port, { method: 'GET', path: `/apps/${M.id}/channels`, params: { filter_by_prefix: 'a' }, key: M.key, secret: M.secret }).replace('filter_by_prefix=a', 'filter_by_prefix=b');
    eq((await fetch(url)).status, 401, 'status');
  });
  await check(R.sig, 'GET with a correct body_md5 of the empty body is accepted', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels`, { bodyMd5: md5('') });
    eq(r.status, 200, `status (${r.text})`);
  });
  await check(R.sig, 'unknown route: 404; wrong method: 405', async () => {
    eq((await signed(port, M, 'GET', `/apps/${M.id}/nothing-here`)).status, 404, 'unknown route');
    eq((await signed(port, M, 'GET', `/apps/${M.id}/events`)).status, 405, 'GET /events');
  });

  // ---------------- limits
  await check(R.lim, 'request body over server.max_request_size (10000): 413', async () => {
    const r = await ev(M, { name: 'big', data: 'b'.repeat(12000), channel: 'c' });
    eq(r.status, 413, 'status');
  });
  await check(R.lim, 'event data over app max_event_bytes (500): 413', async () => {
    const r = await ev(S, { name: 'big', data: 'b'.repeat(800), channel: 'c' });
    eq(r.status, 413, 'status'); errBody(r);
  });
  await check(R.lim, 'more channels than max_channels_per_trigger (3): 400', async () => {
    const r = await ev(S, { name: 'x', data: 'x', channels: ['a', 'b', 'c', 'd'] });
    eq(r.status, 400, 'status'); errBody(r);
  });
  await check(R.lim, 'exactly max_channels_per_trigger channels is accepted', async () => {
    eq((await ev(S, { name: 'x', data: 'x', channels: ['a', 'b', 'c'] })).status, 200, 'status');
  });
  await check(R.lim, 'data just under max_event_bytes is accepted', async () => {
    eq((await ev(S, { name: 'x', data: 'b'.repeat(400), channel: 'c' })).status, 200, 'status');
  });
}
