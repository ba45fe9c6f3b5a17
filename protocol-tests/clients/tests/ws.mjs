// Raw-frame checks (npm ws): exact bytes, close codes, malformed input.
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { Raw, connect, open, wsUrl } from '../lib/raw.mjs';
import { sdk, signed } from '../lib/http.mjs';
import { R, uniq } from '../lib/rows.mjs';

const isErr = (code) => (f) => f.event === 'pusher:error' && f.data && f.data.code === code;

async function expectErrorThenClose(c, code, message, what) {
  const f = await c.next((x) => x.event === 'pusher:error', 3000, `pusher:error ${code}`);
  assert(typeof f.data === 'object' && f.data !== null, `pusher:error data must be an object, got ${JSON.stringify(f.data)}`);
  eq(f.data.code, code, `${what} error code`);
  if (message) eq(f.data.message, message, `${what} error message`);
  const cl = await c.waitClose(3000);
  eq(cl.code, code, `${what} close code`);
}

async function expectSubError(c, channel, type, status, code, message) {
  const f1 = await c.next((f) => f.event === 'pusher:subscription_error' || f.event === 'pusher:error' || f.event === 'pusher_internal:subscription_succeeded', 3000, 'subscription_error');
  eq(f1.event, 'pusher:subscription_error', 'first frame event');
  eq(f1.channel, channel, 'subscription_error channel');
  assert(f1.data && typeof f1.data === 'object', `subscription_error data must be an object: ${JSON.stringify(f1.data)}`);
  eq(f1.data.type, type, 'subscription_error type');
  eq(f1.data.status, status, 'subscription_error status');
  assert(typeof f1.data.error === 'string' && f1.data.error.length > 0, 'subscription_error.error must be a non-empty string');
  const f2 = await c.next(() => true, 3000, 'pusher:error after subscription_error');
  eq(f2.event, 'pusher:error', 'second frame event');
  eq(f2.data.code, code, 'pusher:error code');
  if (message) eq(f2.data.message, message, 'pusher:error message');
  await c.none((f) => f.event === 'pusher_internal:subscription_succeeded', 300, 'subscription_succeeded after error');
  await c.alive();
}

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main, S = apps.small;
  const signer = sdk(port, M);
  const ssigner = sdk(port, S);
  const presence = (c, ch, user_id, user_info, s = signer) => {
    const a = s.authorizeChannel(c.socketId, ch, user_info === undefined ? { user_id } : { user_id, user_info });
    return c.subscribeOk(ch, a.auth, a.channel_data);
  };
  const trigger = (app, body) => signed(port, app, 'POST', `/apps/${app.id}/events`, { body });

  // ---------------- connection handshake
  await check(R.handshake, 'connection_established exact shape (data is a JSON string, socket_id, activity_timeout)', async (t) => {
    const c = await connect(t, port, M.key);
    const f = c.all[0];
    eq(Object.keys(f).sort(), ['data', 'event'], 'frame keys');
    eq(f.event, 'pusher:connection_established', 'first frame');
    assert(typeof f.data === 'string', `data must be a JSON string, got ${typeof f.data}`);
    const d = JSON.parse(f.data);
    assert(/^\d+\.\d+$/.test(d.socket_id), `socket_id ${d.socket_id} does not match ^\\d+\\.\\d+$`);
    eq(d.activity_timeout, 30, 'activity_timeout');
  });
  await check(R.handshake, 'activity_timeout reflects the app setting (7)', async (t) => {
    const c = await connect(t, port, apps.ping.key);
    eq(JSON.parse(c.handshake.data).activity_timeout, 7, 'activity_timeout');
  });
  await check(R.handshake, 'socket_ids are unique across connections', async (t) => {
    const ids = new Set();
    for (let i = 0; i < 5; i++) ids.add((await connect(t, port, M.key)).socketId);
    eq(ids.size, 5, 'distinct socket ids');
  });

  // ---------------- unknown app
  await check(R.app4001, 'unknown key: pusher:error 4001 then close 4001', async (t) => {
    const c = open(t, port, 'no-such-key');
    await expectErrorThenClose(c, 4001, 'Application does not exist', 'unknown app');
    assert(!c.all.some((f) => f.event === 'pusher:connection_established'), 'must not send connection_established');
  });

  // ---------------- origins
  const O = apps.origins;
  await check(R.origin, 'disallowed Origin: pusher:error 4009 "Origin not allowed", close 4009', async (t) => {
    await expectErrorThenClose(open(t, port, O.key, { origin: 'https://evil.test' }), 4009, 'Origin not allowed', 'origin');
  });
  await check(R.origin, 'exact host in allowlist connects', async (t) => {
    await connect(t, port, O.key, { origin: 'https://example.com' });
  });
  await check(R.origin, 'wildcard *.allowed.test matches a subdomain', async (t) => {
    await connect(t, port, O.key, { origin: 'http://app.allowed.test:3000' });
  });
  await check(R.origin, 'missing Origin header refused when allowlist is not *', async (t) => {
    await expectErrorThenClose(open(t, port, O.key), 4009, 'Origin not allowed', 'no origin');
  });
  await check(R.origin, 'missing Origin header accepted with allowed_origins ["*"]', async (t) => {
    await connect(t, port, M.key);
  });

  // ---------------- quota
  const Q = apps.quota;
  await check(R.quota, 'connection over app max_connections: pusher:error 4004, close 4004', async (t) => {
    await connect(t, port, Q.key); await connect(t, port, Q.key);
    await expectErrorThenClose(open(t, port, Q.key), 4004, 'Application is over connection quota', 'quota');
  });
  await check(R.quota, 'a freed slot can be reused', async (t) => {
    const a = await connect(t, port, Q.key); await connect(t, port, Q.key);
    a.close(); await a.closed; await sleep(300);
    await connect(t, port, Q.key);
  });

  // ---------------- protocol
  await check(R.proto, 'protocol=abc: pusher:error + close 4006', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=abc&client=js' }), 4006, null, 'protocol abc');
  });
  await check(R.proto, 'protocol=3: pusher:error + close 4007', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=3' }), 4007, null, 'protocol 3');
  });
  await check(R.proto, 'protocol=8: pusher:error + close 4007', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=8' }), 4007, null, 'protocol 8');
  });
  await check(R.proto, 'protocol=-1: pusher:error + close 4007', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=-1' }), 4007, null, 'protocol -1');
  });
  await check(R.proto, 'protocol=99999999999999999999 (huge integer): 4007', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=99999999999999999999' }), 4007, null, 'huge protocol');
  });
  await check(R.proto, 'protocol=7.5 (not an integer): 4006', async (t) => {
    await expectErrorThenClose(open(t, port, M.key, { query: 'protocol=7.5' }), 4006, null, 'protocol 7.5');
  });
  await check(R.proto, 'missing protocol means 7 (connects)', async (t) => { await connect(t, port, M.key, { query: null }); });
  await check(R.proto, 'protocol=4 connects', async (t) => { await connect(t, port, M.key, { query: 'protocol=4' }); });

  // ---------------- public channels
  await check(R.pub, 'subscribe: exact subscription_succeeded frame', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    const f = await c.subscribeOk(ch);
    deepEq(f, { event: 'pusher_internal:subscription_succeeded', channel: ch, data: '{}' }, 'frame');
  });
  await check(R.pub, 'subscribe with data given as a JSON string', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    c.send({ event: 'pusher:subscribe', data: JSON.stringify({ channel: ch }) });
    await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === ch);
  });
  await check(R.pub, 'HTTP event delivered as {"event","channel","data":"<string verbatim>"}', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch);
    const data = '{"x":1, "y" : "é"}';
    const r = await trigger(M, { name: 'my-event', data, channel: ch });
    eq(r.status, 200, 'status');
    const f = await c.next('my-event');
    deepEq(f, { event: 'my-event', channel: ch, data }, 'frame');
  });
  await check(R.pub, 'every allowed name character [-a-zA-Z0-9_=@,.;] and a 200-char name subscribe', async (t) => {
    const c = await connect(t, port, M.key);
    await c.subscribeOk(`${uniq('chars')}-_=@,.;AZaz09`);
    const long = `${uniq('long')}-`.padEnd(200, 'x');
    eq(long.length, 200, 'name length');
    await c.subscribeOk(long);
  });
  await check(R.pub, 're-subscribing re-sends subscription_succeeded, events not duplicated', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch); await c.subscribeOk(ch);
    eq((await trigger(M, { name: 'once', data: '1', channel: ch })).status, 200, 'trigger status');
    await c.next('once');
    await c.none('once', 400, 'duplicate event');
  });

  // ---------------- private
  await check(R.priv, 'valid auth (SDK authorizeChannel) subscribes', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-raw');
    const f = await c.subscribeOk(ch, signer.authorizeChannel(c.socketId, ch).auth);
    deepEq(f, { event: 'pusher_internal:subscription_succeeded', channel: ch, data: '{}' }, 'frame');
    await trigger(M, { name: 'p', data: 'hello', channel: ch });
    deepEq(await c.next('p'), { event: 'p', channel: ch, data: 'hello' }, 'event frame');
  });
  await check(R.priv, 'auth signed for another socket_id is refused', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-raw');
    c.subscribe(ch, signer.authorizeChannel('1234.5678', ch).auth);
    await expectSubError(c, ch, 'AuthError', 401, 4009, 'Connection is unauthorized');
  });
  await check(R.priv, 'auth signed with the wrong secret is refused', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-raw');
    const bad = sdk(port, { ...M, secret: 'wrong' });
    c.subscribe(ch, bad.authorizeChannel(c.socketId, ch).auth);
    await expectSubError(c, ch, 'AuthError', 401, 4009, 'Connection is unauthorized');
  });

  // ---------------- presence
  await check(R.pres, 'subscription_succeeded carries {presence:{ids,hash,count}} as a JSON string', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1', { name: 'Ann' });
    const f = await presence(b, ch, '2');
    assert(typeof f.data === 'string', 'data must be a string');
    const d = JSON.parse(f.data);
    eq(Object.keys(d), ['presence'], 'data keys');
    eq([...d.presence.ids].sort(), ['1', '2'], 'ids');
    deepEq(d.presence.hash, { 1: { name: 'Ann' }, 2: null }, 'hash (user_info null when absent)');
    eq(d.presence.count, 2, 'count');
  });
  await check(R.pres, 'channel_data is verified byte-exact (odd spacing, unicode) and user_info parsed from it', async (t) => {
    const { hmac } = await import('../lib/http.mjs');
    const a = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    const channel_data = '{ "user_id" : "u-1",  "user_info" : {"name":"Zoë"} }';
    const f = await a.subscribeOk(ch, `${M.key}:${hmac(M.secret, `${a.socketId}:${ch}:${channel_data}`)}`, channel_data);
    deepEq(JSON.parse(f.data).presence.hash, { 'u-1': { name: 'Zoë' } }, 'hash');
    const b = await connect(t, port, M.key);
    const reformatted = JSON.stringify(JSON.parse(channel_data));
    b.subscribe(ch, `${M.key}:${hmac(M.secret, `${b.socketId}:${ch}:${channel_data}`)}`, reformatted);
    await expectSubError(b, ch, 'AuthError', 401, 4009, 'Connection is unauthorized');
  });
  await check(R.pres, 'member_added exact frame to others, not to the joiner', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1');
    await presence(b, ch, '2', { name: 'Bo' });
    const f = await a.next('pusher_internal:member_added');
    eq(f.channel, ch, 'channel');
    deepEq(JSON.parse(f.data), { user_id: '2', user_info: { name: 'Bo' } }, 'member_added data');
    assert(typeof f.data === 'string', 'member_added data must be a string');
    await b.none('pusher_internal:member_added', 300, 'member_added to self');
  });
  await check(R.pres, 'integer user_id stays an integer in ids and member_added', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, 7);
    const f = await presence(b, ch, 8);
    const d = JSON.parse(f.data);
    assert(d.presence.ids.includes(7) && d.presence.ids.includes(8), `ids should be ints: ${JSON.stringify(d.presence.ids)}`);
    assert(Object.keys(d.presence.hash).sort().join() === '7,8', 'hash keys are strings 7,8');
    const added = JSON.parse((await a.next('pusher_internal:member_added')).data);
    eq(added.user_id, 8, 'member_added user_id');
  });
  await check(R.pres, 'member_removed exact frame when the member disconnects', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1'); await presence(b, ch, '2');
    await a.next('pusher_internal:member_added');
    b.close();
    const f = await a.next('pusher_internal:member_removed');
    deepEq(f, { event: 'pusher_internal:member_removed', channel: ch, data: '{"user_id":"2"}' }, 'frame');
  });
  await check(R.pres, 'same user on two sockets: one member, removed only when the last socket leaves', async (t) => {
    const a = await connect(t, port, M.key), b1 = await connect(t, port, M.key), b2 = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1');
    await presence(b1, ch, '2');
    await a.next('pusher_internal:member_added');
    const f = await presence(b2, ch, '2');
    eq(JSON.parse(f.data).presence.count, 2, 'count with two tabs of user 2');
    await a.none('pusher_internal:member_added', 400, 'second member_added');
    b1.close();
    await a.none('pusher_internal:member_removed', 500, 'member_removed while a tab remains');
    b2.close();
    await a.next('pusher_internal:member_removed');
  });
  await check(R.pres, 'user_id 5 (number) and "5" (string) are the same member', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, 5);
    const f = await presence(b, ch, '5');
    eq(JSON.parse(f.data).presence.count, 1, 'count');
    await a.none('pusher_internal:member_added', 400, 'member_added for the same user');
  });
  await check(R.pres, 're-subscribing a presence channel does not duplicate membership', async (t) => {
    const a = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1');
    const f = await presence(a, ch, '1');
    eq(JSON.parse(f.data).presence.count, 1, 'count');
    const u = await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}/users`);
    deepEq(u.body, { users: [{ id: '1' }] }, 'users');
  });

  // ---------------- encrypted (raw: server relays ciphertext untouched)
  await check(R.enc, 'server relays the SDK ciphertext untouched ({nonce,ciphertext})', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-encrypted-raw');
    await c.subscribeOk(ch, signer.authorizeChannel(c.socketId, ch).auth);
    const r = await signed(port, M, 'POST', `/apps/${M.id}/events`, { body: { name: 'secret', channel: ch, data: JSON.stringify({ nonce: 'bm9uY2U=', ciphertext: 'Y2lwaGVy' }) } });
    eq(r.status, 200, 'status');
    const f = await c.next('secret');
    deepEq(JSON.parse(f.data), { nonce: 'bm9uY2U=', ciphertext: 'Y2lwaGVy' }, 'data');
  });
  await check(R.enc, 'encrypted channel needs a valid auth', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-encrypted-raw');
    c.subscribe(ch, 'main-key:deadbeef');
    await expectSubError(c, ch, 'AuthError', 401, 4009, 'Connection is unauthorized');
  });
  await check(R.enc, 'client event on an encrypted channel: pusher:error 4301', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-encrypted-raw');
    await c.subscribeOk(ch, signer.authorizeChannel(c.socketId, ch).auth);
    c.send({ event: 'client-x', channel: ch, data: {} });
    const f = await c.next('pusher:error');
    eq(f.data.code, 4301, 'code');
    eq(f.data.message, 'Client events are only allowed on private and presence channels', 'message');
  });

  // ---------------- cache channels
  await check(R.cache, 'empty cache channel: exact pusher:cache_miss after subscription_succeeded', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('cache-raw');
    c.subscribe(ch);
    const f1 = await c.next();
    eq(f1.event, 'pusher_internal:subscription_succeeded', 'first');
    deepEq(await c.next(), { event: 'pusher:cache_miss', channel: ch }, 'second frame');
  });
  await check(R.cache, 'last event (triggered with no subscribers) replayed on subscribe', async (t) => {
    const ch = uniq('cache-raw');
    eq((await trigger(M, { name: 'old', data: 'one', channel: ch })).status, 200, 'status 1');
    eq((await trigger(M, { name: 'last', data: 'two', channel: ch })).status, 200, 'status 2');
    const c = await connect(t, port, M.key);
    c.subscribe(ch);
    eq((await c.next()).event, 'pusher_internal:subscription_succeeded', 'first');
    deepEq(await c.next(), { event: 'last', channel: ch, data: 'two' }, 'replayed frame');
    await c.none((f) => f.event === 'old' || f.event === 'last', 300, 'extra replay');
  });
  await check(R.cache, 'private-cache- replay after auth', async (t) => {
    const ch = uniq('private-cache-raw');
    await trigger(M, { name: 'pc', data: 'priv', channel: ch });
    const c = await connect(t, port, M.key);
    await c.subscribeOk(ch, signer.authorizeChannel(c.socketId, ch).auth);
    deepEq(await c.next(), { event: 'pc', channel: ch, data: 'priv' }, 'replayed frame');
  });
  await check(R.cache, 'presence-cache- replay after presence subscription', async (t) => {
    const ch = uniq('presence-cache-raw');
    await trigger(M, { name: 'prc', data: 'pres', channel: ch });
    const c = await connect(t, port, M.key);
    await presence(c, ch, '1');
    deepEq(await c.next(), { event: 'prc', channel: ch, data: 'pres' }, 'replayed frame');
  });
  await check(R.cache, 'cached event expires after cache_ttl (1 s on small app): cache_miss', async (t) => {
    const ch = uniq('cache-ttl');
    eq((await trigger(S, { name: 'short', data: 'lived', channel: ch })).status, 200, 'status');
    const a = await connect(t, port, S.key);
    a.subscribe(ch);
    eq((await a.next()).event, 'pusher_internal:subscription_succeeded', 'first');
    deepEq(await a.next(), { event: 'short', channel: ch, data: 'lived' }, 'replay while fresh');
    await sleep(2200);
    const b = await connect(t, port, S.key);
    b.subscribe(ch);
    eq((await b.next()).event, 'pusher_internal:subscription_succeeded', 'first');
    deepEq(await b.next(), { event: 'pusher:cache_miss', channel: ch }, 'after the TTL');
  }, 6000);
  await check(R.cache, 'GET cache channel with nothing stored: "cache": null', async () => {
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${uniq('cache-none')}`, { params: { info: 'cache' } });
    eq(r.status, 200, 'status');
    assert('cache' in r.body && r.body.cache === null, `body ${r.text}`);
  });
  await check(R.cache, 'private-encrypted-cache-: ciphertext stored and replayed untouched', async (t) => {
    const ch = uniq('private-encrypted-cache-raw');
    const data = JSON.stringify({ nonce: 'bm9uY2U=', ciphertext: 'Y2lwaGVy' });
    eq((await trigger(M, { name: 'sealed', data, channel: ch })).status, 200, 'status');
    const c = await connect(t, port, M.key);
    await c.subscribeOk(ch, signer.authorizeChannel(c.socketId, ch).auth);
    deepEq(await c.next(), { event: 'sealed', channel: ch, data }, 'replayed frame');
    c.send({ event: 'client-x', channel: ch, data: {} });
    eq((await c.next('pusher:error')).data.code, 4301, 'client event on encrypted cache channel');
  });
  await check(R.cache, 'GET channel ?info=cache returns {data, ttl}', async (t) => {
    const ch = uniq('cache-raw');
    await trigger(M, { name: 'cached', data: 'payload', channel: ch });
    const r = await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}`, { params: { info: 'cache' } });
    eq(r.status, 200, 'status');
    assert(r.body.cache && r.body.cache.data !== undefined, `cache missing: ${r.text}`);
    assert(typeof r.body.cache.ttl === 'number' && r.body.cache.ttl > 0 && r.body.cache.ttl <= 1800, `ttl ${r.body.cache.ttl}`);
    assert(r.body.cache.data === 'payload' || (typeof r.body.cache.data === 'string' && r.body.cache.data.includes('payload')), `cache.data ${JSON.stringify(r.body.cache.data)}`);
  });

  // ---------------- subscription errors
  await check(R.suberr, 'missing auth on private channel: AuthError/401 then pusher:error 4009', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('private-raw');
    c.subscribe(ch);
    await expectSubError(c, ch, 'AuthError', 401, 4009, 'Connection is unauthorized');
  });
  await check(R.suberr, 'invalid channel name characters: InvalidChannel/400 then 4200', async (t) => {
    const c = await connect(t, port, M.key);
    c.subscribe('bad channel!');
    await expectSubError(c, 'bad channel!', 'InvalidChannel', 400, 4200);
  });
  await check(R.suberr, '201-char name on default app: InvalidChannel/400', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = 'y'.repeat(201);
    c.subscribe(ch);
    await expectSubError(c, ch, 'InvalidChannel', 400, 4200);
  });
  await check(R.suberr, 'channel name over max_channel_name_length: InvalidChannel/400', async (t) => {
    const c = await connect(t, port, S.key);
    const ch = 'x'.repeat(51);
    c.subscribe(ch);
    await expectSubError(c, ch, 'InvalidChannel', 400, 4200);
  });
  await check(R.suberr, 'presence member limit: LimitReached/4100 then pusher:error 4100', async (t) => {
    const ch = uniq('presence-lim');
    for (const u of ['1', '2']) { const c = await connect(t, port, S.key); await presence(c, ch, u, undefined, ssigner); }
    const c = await connect(t, port, S.key);
    const a = ssigner.authorizeChannel(c.socketId, ch, { user_id: '3' });
    c.subscribe(ch, a.auth, a.channel_data);
    await expectSubError(c, ch, 'LimitReached', 4100, 4100);
  });
  await check(R.suberr, 'presence user_info too large: LimitReached/4301', async (t) => {
    const ch = uniq('presence-lim');
    const c = await connect(t, port, S.key);
    const a = ssigner.authorizeChannel(c.socketId, ch, { user_id: '1', user_info: { bio: 'x'.repeat(200) } });
    c.subscribe(ch, a.auth, a.channel_data);
    await expectSubError(c, ch, 'LimitReached', 4301, 4301);
  });
  await check(R.suberr, 'presence user_id longer than 128 chars: LimitReached/4301', async (t) => {
    const ch = uniq('presence-lim');
    const c = await connect(t, port, M.key);
    const a = signer.authorizeChannel(c.socketId, ch, { user_id: 'u'.repeat(129) });
    c.subscribe(ch, a.auth, a.channel_data);
    await expectSubError(c, ch, 'LimitReached', 4301, 4301);
  });
  await check(R.suberr, 'presence without channel_data (not signed in): AuthError + 4009', async (t) => {
    const ch = uniq('presence-raw');
    const c = await connect(t, port, M.key);
    c.subscribe(ch, signer.authorizeChannel(c.socketId, ch).auth);
    await expectSubError(c, ch, 'AuthError', 401, 4009);
  });
  await check(R.suberr, '#server-to-user-X when not signed in: AuthError + 4009', async (t) => {
    const c = await connect(t, port, M.key);
    c.subscribe('#server-to-user-42', '');
    await expectSubError(c, '#server-to-user-42', 'AuthError', 401, 4009);
  });

  // ---------------- unsubscribe
  await check(R.unsub, 'unsubscribe: no reply, no further events', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch);
    c.send({ event: 'pusher:unsubscribe', data: { channel: ch } });
    await c.none(() => true, 400, 'reply to unsubscribe');
    eq((await trigger(M, { name: 'after', data: 'x', channel: ch })).status, 200, 'trigger status');
    await c.none('after', 400, 'event after unsubscribe');
    await c.alive();
  });
  await check(R.unsub, 'presence unsubscribe sends member_removed to others', async (t) => {
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    const ch = uniq('presence-raw');
    await presence(a, ch, '1'); await presence(b, ch, '2');
    b.send({ event: 'pusher:unsubscribe', data: { channel: ch } });
    const f = await a.next('pusher_internal:member_removed');
    eq(JSON.parse(f.data).user_id, '2', 'user_id');
  });
  await check(R.unsub, 'channel becomes unoccupied after the last unsubscribe', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch);
    eq((await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}`)).body.occupied, true, 'occupied before');
    c.send({ event: 'pusher:unsubscribe', data: { channel: ch } });
    await sleep(300);
    eq((await signed(port, M, 'GET', `/apps/${M.id}/channels/${ch}`)).body.occupied, false, 'occupied after');
  });

  // ---------------- client events
  const privPair = async (t, app = M, s = signer) => {
    const ch = uniq('private-cev');
    const a = await connect(t, port, app.key), b = await connect(t, port, app.key);
    await a.subscribeOk(ch, s.authorizeChannel(a.socketId, ch).auth);
    await b.subscribeOk(ch, s.authorizeChannel(b.socketId, ch).auth);
    return { ch, a, b };
  };
  await check(R.cev, 'object data relayed compact-serialised as a string, not echoed to sender', async (t) => {
    const { ch, a, b } = await privPair(t);
    a.send({ event: 'client-typing', channel: ch, data: { user: 'ann', n: 1 } });
    const f = await b.next('client-typing');
    deepEq(f, { event: 'client-typing', channel: ch, data: '{"user":"ann","n":1}' }, 'relayed frame');
    await a.none('client-typing', 400, 'echo to sender');
  });
  await check(R.cev, 'string data relayed verbatim', async (t) => {
    const { ch, a, b } = await privPair(t);
    a.send({ event: 'client-s', channel: ch, data: '{"already":"a string"}' });
    eq((await b.next('client-s')).data, '{"already":"a string"}', 'data');
  });
  await check(R.cev, 'presence client event carries user_id (string form)', async (t) => {
    const ch = uniq('presence-cev');
    const a = await connect(t, port, M.key), b = await connect(t, port, M.key);
    await presence(a, ch, 5); await presence(b, ch, '6');
    a.send({ event: 'client-hi', channel: ch, data: {} });
    deepEq(await b.next('client-hi'), { event: 'client-hi', channel: ch, data: '{}', user_id: '5' }, 'frame');
  });
  await check(R.cev, 'not subscribed: pusher:error 4009, connection kept', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'client-x', channel: uniq('private-cev'), data: {} });
    const f = await c.next('pusher:error');
    deepEq(f.data, { code: 4009, message: 'The client is not a member of the specified channel.' }, 'error data');
    await c.alive();
  });
  await check(R.cev, 'public channel: pusher:error 4301', async (t) => {
    const c = await connect(t, port, M.key);
    const ch = uniq('pub');
    await c.subscribeOk(ch);
    c.send({ event: 'client-x', channel: ch, data: {} });
    deepEq((await c.next('pusher:error')).data, { code: 4301, message: 'Client events are only allowed on private and presence channels' }, 'error data');
    await c.alive();
  });
  await check(R.cev, 'accept_client_events_from = "none": pusher:error 4301', async (t) => {
    const N = apps.noclient, ns = sdk(port, N);
    const ch = uniq('private-cev');
    const a = await connect(t, port, N.key), b = await connect(t, port, N.key);
    await a.subscribeOk(ch, ns.authorizeChannel(a.socketId, ch).auth);
    await b.subscribeOk(ch, ns.authorizeChannel(b.socketId, ch).auth);
    a.send({ event: 'client-x', channel: ch, data: {} });
    deepEq((await a.next('pusher:error')).data, { code: 4301, message: 'The app does not have client messaging enabled.' }, 'error data');
    await b.none('client-x', 300, 'relayed event');
    await a.alive();
  });
  await check(R.cev, 'rate limit (3/s on small app): 4301 "Client event rejected due to rate limit", no close', async (t) => {
    const { ch, a, b } = await privPair(t, S, ssigner);
    for (let i = 0; i < 8; i++) a.send({ event: 'client-burst', channel: ch, data: { i } });
    deepEq((await a.next('pusher:error')).data, { code: 4301, message: 'Client event rejected due to rate limit' }, 'error data');
    await sleep(300);
    const got = b.all.filter((f) => f.event === 'client-burst').length;
    assert(got >= 1 && got <= 4, `expected 1..4 relayed events under a 3/s limit, got ${got}`);
    await a.alive();
  });
  await check(R.cev, 'data larger than max_event_bytes: pusher:error 4301', async (t) => {
    const { ch, a, b } = await privPair(t, S, ssigner);
    a.send({ event: 'client-big', channel: ch, data: 'y'.repeat(700) });
    eq((await a.next('pusher:error')).data.code, 4301, 'code');
    await b.none('client-big', 300, 'relayed big event');
    await a.alive();
  });

  // ---------------- ping / pong
  await check(R.ping, 'pusher:ping gets exact {"event":"pusher:pong","data":"{}"}', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'pusher:ping', data: {} });
    await c.next('pusher:pong');
    eq(c.texts[c.texts.length - 1], '{"event":"pusher:pong","data":"{}"}', 'exact bytes');
  });
  await check(R.ping, 'WebSocket ping frame gets a pong frame', async (t) => {
    const c = await connect(t, port, M.key);
    c.ws.ping();
    const deadline = Date.now() + 2000;
    while (c.pongs === 0 && Date.now() < deadline) await sleep(20);
    assert(c.pongs > 0, 'no pong frame');
  });
  const P = apps.ping;
  await check(R.ping, 'silent connection gets {"event":"pusher:ping","data":"{}"} after ping_interval', async (t) => {
    const c = await connect(t, port, P.key);
    const f = await c.next('pusher:ping', 2500);
    deepEq(f, { event: 'pusher:ping', data: '{}' }, 'server ping frame');
  }, 4000);
  await check(R.ping, 'no reply: pusher:error 4201 "Pong reply not received in time", close 4201', async (t) => {
    const c = await connect(t, port, P.key);
    const f = await c.next('pusher:error', 3500);
    deepEq(f.data, { code: 4201, message: 'Pong reply not received in time' }, 'error data');
    eq((await c.waitClose(1500)).code, 4201, 'close code');
  }, 6000);
  await check(R.ping, 'answering with pusher:pong keeps the connection open', async (t) => {
    const c = await connect(t, port, P.key);
    const until = Date.now() + 3500;
    let pings = 0;
    while (Date.now() < until) {
      try { await c.next('pusher:ping', 500); pings++; c.send({ event: 'pusher:pong', data: {} }); } catch { /* no ping yet */ }
      assert(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)} frames ${c.dump()}`);
    }
    assert(pings >= 1, 'server never pinged within 3.5 s (ping_interval 1)');
    await c.alive();
  }, 6000);
  await check(R.ping, 'any inbound frame counts as activity (subscribed connection sending events)', async (t) => {
    const c = await connect(t, port, P.key);
    await c.subscribeOk(uniq('pub'));
    const until = Date.now() + 3000;
    while (Date.now() < until) { c.send({ event: 'app-noise', data: {} }); await sleep(300); }
    assert(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
    assert(!c.all.some(isErr(4201)), 'got 4201');
  }, 6000);
  await check(R.ping, 'client that used WS pings is pinged with a WS ping frame', async (t) => {
    const c = await connect(t, port, P.key);
    c.ws.ping();
    const deadline = Date.now() + 2500;
    while (c.pings === 0 && Date.now() < deadline) await sleep(50);
    assert(c.pings > 0, `no WS ping frame from server; frames: ${c.dump()}`);
    await sleep(1500); // ws auto-answers pings with pongs: must still be open
    assert(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
  }, 6000);

  // ---------------- sign-in
  await check(R.signin, 'signin: exact signin_success with the same user_data string', async (t) => {
    const c = await connect(t, port, M.key);
    const a = signer.authenticateUser(c.socketId, { id: '77', name: 'Zed' });
    c.send({ event: 'pusher:signin', data: a });
    const f = await c.next('pusher:signin_success');
    deepEq(f, { event: 'pusher:signin_success', data: { user_data: a.user_data } }, 'frame');
  });
  await check(R.signin, 'bad signin signature: pusher:error 4009, connection kept', async (t) => {
    const c = await connect(t, port, M.key);
    const a = sdk(port, { ...M, secret: 'nope' }).authenticateUser(c.socketId, { id: '77' });
    c.send({ event: 'pusher:signin', data: a });
    eq((await c.next('pusher:error')).data.code, 4009, 'code');
    await c.alive();
  });
  await check(R.signin, 'user_data without a string id: pusher:error 4009', async (t) => {
    const c = await connect(t, port, M.key);
    const user_data = JSON.stringify({ name: 'no id' });
    const auth = `${M.key}:${(await import('../lib/http.mjs')).hmac(M.secret, `${c.socketId}::user::${user_data}`)}`;
    c.send({ event: 'pusher:signin', data: { auth, user_data } });
    eq((await c.next('pusher:error')).data.code, 4009, 'code');
    await c.alive();
  });
  await check(R.signin, 'user_data with a numeric id: pusher:error 4009', async (t) => {
    const c = await connect(t, port, M.key);
    const user_data = JSON.stringify({ id: 5 });
    const { hmac } = await import('../lib/http.mjs');
    c.send({ event: 'pusher:signin', data: { auth: `${M.key}:${hmac(M.secret, `${c.socketId}::user::${user_data}`)}`, user_data } });
    eq((await c.next('pusher:error')).data.code, 4009, 'code');
    await c.none('pusher:signin_success', 200, 'signin_success');
  });
  await check(R.signin, 'signed-in socket subscribes #server-to-user-<id> and receives sendToUser', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'pusher:signin', data: signer.authenticateUser(c.socketId, { id: '88' }) });
    await c.next('pusher:signin_success');
    await c.subscribeOk('#server-to-user-88', '');
    const r = await signed(port, M, 'POST', `/apps/${M.id}/events`, { body: { name: 'dm', data: 'hi 88', channel: '#server-to-user-88' } });
    eq(r.status, 200, 'status');
    deepEq(await c.next('dm'), { event: 'dm', channel: '#server-to-user-88', data: 'hi 88' }, 'frame');
  });
  await check(R.signin, 'signed in as 88, #server-to-user-89 is refused', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'pusher:signin', data: signer.authenticateUser(c.socketId, { id: '88' }) });
    await c.next('pusher:signin_success');
    c.subscribe('#server-to-user-89', '');
    await expectSubError(c, '#server-to-user-89', 'AuthError', 401, 4009);
  });

  // ---------------- message size
  await check(R.size, 'frame over max_message_size (1000): close 1009 "Maximum message size exceeded"', async (t) => {
    const c = await connect(t, port, S.key);
    c.send({ event: 'pusher:ping', data: { pad: 'z'.repeat(1200) } });
    const cl = await c.waitClose(3000);
    eq(cl.code, 1009, 'close code');
    eq(cl.reason, 'Maximum message size exceeded', 'close reason');
  });
  await check(R.size, 'frame just under max_message_size is accepted', async (t) => {
    const c = await connect(t, port, S.key);
    const msg = JSON.stringify({ event: 'pusher:ping', data: { pad: 'z'.repeat(900) } });
    assert(msg.length < 1000, 'test frame too big');
    c.send(msg);
    await c.next('pusher:pong');
  });
  await check(R.size, 'default limit 10000: an 11000-byte frame closes with 1009', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'client-x', channel: 'private-x', data: 'q'.repeat(11000) });
    eq((await c.waitClose(3000)).code, 1009, 'close code');
  });

  // ---------------- bad input
  const bad = async (t, payload, what) => {
    const c = await connect(t, port, M.key);
    c.send(payload);
    const f = await c.next('pusher:error', 3000, `4200 for ${what}`);
    eq(f.data.code, 4200, 'code');
    assert(typeof f.data.message === 'string' && f.data.message.startsWith('Invalid message format'), `message ${JSON.stringify(f.data.message)}`);
    await c.alive();
  };
  await check(R.bad, 'invalid JSON: 4200 "Invalid message format", connection kept', (t) => bad(t, '{"event":', 'invalid json'));
  await check(R.bad, 'missing event: 4200', (t) => bad(t, '{"data":{}}', 'missing event'));
  await check(R.bad, 'non-string event: 4200', (t) => bad(t, '{"event":42,"data":{}}', 'numeric event'));
  await check(R.bad, 'unknown pusher:* event: 4200', (t) => bad(t, '{"event":"pusher:frobnicate","data":{}}', 'unknown pusher event'));
  await check(R.bad, 'subscribe without channel: 4200', (t) => bad(t, '{"event":"pusher:subscribe","data":{}}', 'subscribe no channel'));
  await check(R.bad, 'subscribe data is a string that is not JSON: 4200', (t) => bad(t, '{"event":"pusher:subscribe","data":"not json"}', 'subscribe bad string'));
  await check(R.bad, 'JSON array instead of object: 4200', (t) => bad(t, '[1,2,3]', 'array'));
  await check(R.bad, 'non-pusher, non-client event is ignored (no reply, kept open)', async (t) => {
    const c = await connect(t, port, M.key);
    c.send({ event: 'something-else', data: {} });
    await c.none(() => true, 400, 'reply');
    await c.alive();
  });
}
