// pusher-js 8 (node build, unmodified) against Herald.
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { pusherClient, echoClient, waitState, once, collector } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

// Resolves at once when the channel is already subscribed (the event may have fired while
// the check was awaiting something else).
const subscribed = (ch, ms = 4000) => (ch.subscribed ? Promise.resolve(ch.members)
  : once((cb) => ch.bind('pusher:subscription_succeeded', cb), ms, `subscription_succeeded on ${ch.name}`));

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main;
  const signer = sdk(port, M);

  await check(R.handshake, 'pusher-js connects (state connected, socket_id format)', async (t) => {
    const p = pusherClient(t, port, M.key);
    await waitState(p, 'connected');
    assert(/^\d+\.\d+$/.test(p.connection.socket_id), `socket_id ${p.connection.socket_id}`);
  });
  await check(R.app4001, 'pusher-js with an unknown key gets error 4001 and does not connect', async (t) => {
    const p = pusherClient(t, port, 'unknown-key');
    const errs = collector();
    p.connection.bind('error', errs);
    // pusher-js wraps the server's pusher:error: {type:'WebSocketError', error:{type:'PusherError', data:{code,message}}}
    const code = (x) => x && ((x.data && x.data.code) || (x.error && x.error.data && x.error.data.code));
    const e = await errs.wait((x) => code(x) === 4001, 4000, 'error 4001');
    const inner = e.data ? e : e.error;
    eq(inner.type, 'PusherError', 'error type');
    eq(inner.data.message, 'Application does not exist', 'message');
    await sleep(500);
    assert(p.connection.state !== 'connected', `state ${p.connection.state}`);
  });
  await check(R.app4001, 'Echo (reverb) with an unknown key never reaches "connected"', async (t) => {
    const e = echoClient(t, port, 'unknown-key', 'reverb');
    const states = collector(); e.connector.pusher.connection.bind('state_change', (s) => states(s.current));
    await states.wait((s) => s === 'disconnected' || s === 'failed', 4000, 'disconnected');
    await sleep(1000);
    assert(!states.items.includes('connected'), `states ${states.items.join(' → ')}`);
    assert(e.connectionStatus() !== 'connected', `connectionStatus ${e.connectionStatus()}`);
  });
  await check(R.pub, 'pusher-js public channel receives the event with JSON-parsed data', async (t) => {
    const p = pusherClient(t, port, M.key);
    const ch = p.subscribe(uniq('pjs-pub'));
    await subscribed(ch);
    const got = once((cb) => ch.bind('order', cb));
    await viaSdk(signer.trigger(ch.name, 'order', { id: 1, items: ['a'] }));
    deepEq(await got, { id: 1, items: ['a'] }, 'data');
  });
  await check(R.priv, 'pusher-js private channel via channelAuthorization.customHandler', async (t) => {
    const p = pusherClient(t, port, M.key, { signer });
    const ch = p.subscribe(uniq('private-pjs'));
    await subscribed(ch);
    const got = once((cb) => ch.bind('secret-ish', cb));
    await viaSdk(signer.trigger(ch.name, 'secret-ish', { ok: true }));
    deepEq(await got, { ok: true }, 'data');
  });
  await check(R.suberr, 'pusher-js gets pusher:subscription_error {type:"AuthError",status:401} on a bad signature', async (t) => {
    const p = pusherClient(t, port, M.key, { signer: sdk(port, { ...M, secret: 'bad' }) });
    const ch = p.subscribe(uniq('private-pjs'));
    const e = await once((cb) => ch.bind('pusher:subscription_error', cb), 4000, 'subscription_error');
    assert(e && e.type === 'AuthError' && e.status === 401, `subscription_error data ${JSON.stringify(e)}`);
    assert(!ch.subscribed, 'channel must not be subscribed');
    eq(p.connection.state, 'connected', 'connection state');
  });
  await check(R.pres, 'pusher-js presence: members, me, member_added / member_removed', async (t) => {
    const name = uniq('presence-pjs');
    const a = pusherClient(t, port, M.key, { signer, presence: { user_id: '1', user_info: { name: 'Ann' } } });
    const ca = a.subscribe(name);
    await subscribed(ca);
    eq(ca.members.count, 1, 'count'); eq(ca.members.me.id, '1', 'me.id'); deepEq(ca.members.me.info, { name: 'Ann' }, 'me.info');
    const added = once((cb) => ca.bind('pusher:member_added', cb));
    const b = pusherClient(null, port, M.key, { signer, presence: { user_id: '2', user_info: { name: 'Bob' } } });
    t.defer(() => b.disconnect());
    const cb_ = b.subscribe(name);
    const members = await subscribed(cb_);
    eq(members.count, 2, 'count seen by b');
    const m = await added;
    eq(m.id, '2', 'added id'); deepEq(m.info, { name: 'Bob' }, 'added info');
    const removed = once((cb) => ca.bind('pusher:member_removed', cb));
    b.disconnect();
    eq((await removed).id, '2', 'removed id');
    eq(ca.members.count, 1, 'count after removal');
  });
  await check(R.enc, 'pusher-js decrypts what the Node SDK encrypted (private-encrypted-)', async (t) => {
    const p = pusherClient(t, port, M.key, { signer });
    const ch = p.subscribe(uniq('private-encrypted-pjs'));
    await subscribed(ch);
    const got = once((cb) => ch.bind('enc', cb));
    const r = await viaSdk(signer.trigger(ch.name, 'enc', { card: '4111', note: 'top secret' }));
    eq(r.status, 200, 'status');
    deepEq(await got, { card: '4111', note: 'top secret' }, 'decrypted data');
  });
  await check(R.enc, 'pusher-js decrypts a Node SDK triggerBatch item on an encrypted channel', async (t) => {
    const p = pusherClient(t, port, M.key, { signer });
    const ch = p.subscribe(uniq('private-encrypted-pjs'));
    await subscribed(ch);
    const got = once((cb) => ch.bind('encb', cb));
    eq((await viaSdk(signer.triggerBatch([{ channel: ch.name, name: 'encb', data: { n: 42 } }]))).status, 200, 'status');
    deepEq(await got, { n: 42 }, 'decrypted data');
  });
  await check(R.enc, 'pusher-js decrypts a replayed private-encrypted-cache- event', async (t) => {
    const name = uniq('private-encrypted-cache-pjs');
    eq((await viaSdk(signer.trigger(name, 'last', { secret: 'cached' }))).status, 200, 'status');
    const p = pusherClient(t, port, M.key, { signer });
    const ch = p.subscribe(name);
    deepEq(await once((cb) => ch.bind('last', cb), 4000, 'replayed event'), { secret: 'cached' }, 'decrypted replay');
  });
  await check(R.cev, 'pusher-js client event on private channel reaches the other client, not the sender', async (t) => {
    const name = uniq('private-pjs');
    const a = pusherClient(t, port, M.key, { signer }), b = pusherClient(t, port, M.key, { signer });
    const ca = a.subscribe(name), cb_ = b.subscribe(name);
    await subscribed(ca); await subscribed(cb_);
    const mine = collector(); ca.bind('client-note', mine);
    const got = once((cb) => cb_.bind('client-note', cb));
    assert(ca.trigger('client-note', { text: 'hi' }), 'trigger returned false');
    deepEq(await got, { text: 'hi' }, 'data');
    await sleep(300);
    eq(mine.items.length, 0, 'events echoed to sender');
  });
  await check(R.signin, 'pusher-js signin() + Node SDK sendToUser → pusher.user.bind', async (t) => {
    const p = pusherClient(t, port, M.key, { signer, user: { id: 'pjs-user', name: 'P' } });
    await waitState(p, 'connected');
    const subOk = once((cb) => p.connection.bind('message', (m) => { if (m.event === 'pusher_internal:subscription_succeeded' && m.channel === '#server-to-user-pjs-user') cb(); }), 4000, 'server-to-user subscription');
    p.signin();
    await subOk;
    const got = once((cb) => p.user.bind('welcome', cb));
    await sleep(100);
    eq((await viaSdk(signer.sendToUser('pjs-user', 'welcome', { msg: 'hello you' }))).status, 200, 'status');
    deepEq(await got, { msg: 'hello you' }, 'data');
  });
  await check(R.term, 'pusher-js closed by terminateUserConnections (4009) does not reconnect', async (t) => {
    const uid = uniq('pjs-term');
    const p = pusherClient(t, port, M.key, { signer, user: { id: uid } });
    await waitState(p, 'connected');
    const subOk = once((cb) => p.connection.bind('message', (m) => { if (m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${uid}`) cb(); }), 4000, 'signed in');
    p.signin();
    await subOk;
    const states = collector(); p.connection.bind('state_change', (s) => states(s.current));
    eq((await viaSdk(signer.terminateUserConnections(uid))).status, 200, 'status');
    await states.wait((s) => s === 'disconnected', 3000, 'disconnected');
    await sleep(1500);
    assert(!states.items.includes('connected'), `reconnected after termination: ${states.items.join(' → ')}`);
  });
  await check(R.cache, 'pusher-js cache channel: pusher:cache_miss then replay for a later subscriber', async (t) => {
    const name = uniq('cache-pjs');
    const a = pusherClient(t, port, M.key);
    const ca = a.subscribe(name);
    await once((cb) => ca.bind('pusher:cache_miss', cb), 4000, 'cache_miss');
    await viaSdk(signer.trigger(name, 'price', { v: 10 }));
    const b = pusherClient(t, port, M.key);
    const cb_ = b.subscribe(name);
    deepEq(await once((cb) => cb_.bind('price', cb), 4000, 'replayed price'), { v: 10 }, 'replayed data');
  });
  await check(R.unsub, 'pusher-js unsubscribe stops delivery', async (t) => {
    const p = pusherClient(t, port, M.key);
    const name = uniq('pjs-pub');
    const ch = p.subscribe(name);
    await subscribed(ch);
    const got = collector(); ch.bind('after', got);
    p.unsubscribe(name);
    await sleep(300);
    eq((await viaSdk(signer.trigger(name, 'after', {}))).status, 200, 'trigger status');
    await sleep(400);
    eq(got.items.length, 0, 'events after unsubscribe');
  });
  await check(R.size, 'pusher-js closed with 1009 for an oversized client event reconnects and resubscribes', async (t) => {
    const S = apps.small;
    const p = pusherClient(t, port, S.key, { signer: sdk(port, S) });
    const name = uniq('private-big');
    const ch = p.subscribe(name);
    await subscribed(ch);
    const sid = p.connection.socket_id;
    const closed = once((cb) => p.connection.bind('state_change', (s) => { if (s.current !== 'connected') cb(s.current); }), 3000, 'leaving connected state');
    ch.trigger('client-big', { pad: 'z'.repeat(1500) });
    await closed;
    await waitState(p, 'connected', 8000);
    assert(p.connection.socket_id !== sid, 'socket_id unchanged');
    const deadline = Date.now() + 3000;
    while (!p.channel(name).subscribed && Date.now() < deadline) await sleep(50);
    assert(p.channel(name).subscribed, 'not resubscribed');
  }, 12000);
  await check(R.ping, 'pusher-js on a ping_interval=1 app stays connected (answers server pings)', async (t) => {
    const P = apps.ping;
    const p = pusherClient(t, port, P.key);
    await waitState(p, 'connected');
    const sid = p.connection.socket_id;
    const changes = collector(); p.connection.bind('state_change', changes);
    const pings = collector(); p.connection.bind('message', (m) => { if (m.event === 'pusher:ping') pings(m); });
    await sleep(3500);
    assert(pings.items.length >= 1, 'server sent no pusher:ping within 3.5 s');
    eq(p.connection.state, 'connected', 'state');
    eq(p.connection.socket_id, sid, 'socket_id unchanged (no reconnect)');
    eq(changes.items.length, 0, `state changes ${JSON.stringify(changes.items)}`);
  }, 6000);
}
