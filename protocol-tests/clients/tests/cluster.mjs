// Horizontal scaling: 3 herald nodes sharing one private redis-server ([scaling]), with the real
// clients spread over them. Everything one node does must be seen by the others as if they were
// one server: presence, client events, HTTP triggers and queries, terminate, sign-in, cache.
//
// Timing rules: something done on one node has PROPAGATION ms to show on another (waits poll with
// that deadline); "exactly once" / "nothing" is judged after a QUIET window, or, where the server
// guarantees per-publisher order, by a later sentinel event from the same publisher.
// Before a client joins a presence channel on node k, `settle` gives node k up to PROPAGATION ms to
// report (GET /channels/{name}/users) the members that joined elsewhere, without asserting on it;
// the snapshot the joining client gets (subscription_succeeded, Echo here()) is then asserted exactly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { check, assert, eq, deepEq, sleep, fail, summary } from '../lib/harness.mjs';
import { connect, open } from '../lib/raw.mjs';
import { sdk, viaSdk, signed } from '../lib/http.mjs';
import { pusherClient, echoClient, waitState, once, collector, signedInWatching } from '../lib/clients.mjs';
import { py, pyOk } from '../lib/python.mjs';
import { Cluster } from '../lib/cluster.mjs';
import { R, uniq } from '../lib/rows.mjs';
import { createDemoServer } from '../../../examples/browser/serve.mjs';

const NODES = 3;
const PROPAGATION = 1500;
const QUIET = 1000;
const REDIS_BACK = 5000; // after redis-server restarts: nodes reconnect, resync, flush held writes
const here = path.dirname(new URL(import.meta.url).pathname);
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Calls fn() until pred(value) holds; throws with the last value after ms.
async function until(fn, pred, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (pred(last)) return last; } catch (e) { last = `error: ${e.message}`; }
    if (Date.now() >= deadline) fail(`${what}: not within ${ms} ms; last: ${JSON.stringify(last)?.slice(0, 300)}`);
    await sleep(50);
  }
}

const subscribedPjs = (ch, ms = 4000) => (ch.subscribed ? Promise.resolve(ch.members)
  : once((cb) => ch.bind('pusher:subscription_succeeded', cb), ms, `subscription_succeeded on ${ch.name}`));
const subscribedEcho = (ch, ms = 4000) => (ch.subscription && ch.subscription.subscribed ? Promise.resolve()
  : once((cb) => ch.subscribed(cb), ms, 'Echo subscribed()'));
const memberIds = (ch) => Object.keys(ch.members.members).sort();
const byId = (users) => [...users].sort((a, b) => String(a.id).localeCompare(String(b.id)));
// JSON with sorted keys, for comparing answers whose key order is not part of the contract.
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((y) => [y, x[y]])) : x));
const same = (want) => (got) => canon(got) === canon(want);
const frameData = (m) => (typeof m.data === 'string' ? JSON.parse(m.data) : m.data);

// Every pusher_internal:member_added / member_removed frame a pusher-js client receives on `name`,
// as "+id" / "-id" (pusher-js itself hides a duplicate member_removed, the raw frames do not).
function memberFrames(p, name) {
  const c = collector();
  p.connection.bind('message', (m) => {
    if (m.channel !== name) return;
    if (m.event === 'pusher_internal:member_added') c(`+${frameData(m).user_id}`);
    if (m.event === 'pusher_internal:member_removed') c(`-${frameData(m).user_id}`);
  });
  return c;
}

export default async function (env) {
  const { bin, apps } = env;
  const M = apps.main, Q = apps.noclient; // Q: only the connection-count check opens sockets of it
  const S = apps.small, QA = apps.quota;  // 2 presence members; 2 connections
  const W = apps.watch; // watchlist_events and subscription_count on
  const serverApp = (a) => Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'masterKey'));
  // Self-tests of these checks: CHECK_CLUSTER_SINGLE=1 (one plain herald stands for the 3 nodes:
  // every check must pass except the 7 that need Redis or stop a node) and CHECK_SABOTAGE=cluster
  // (3 plain heralds sharing nothing: every check must fail).
  const unlinked = (process.env.CHECK_SABOTAGE || '').split(',').includes('cluster');
  const cl = new Cluster(bin, NODES, { apps: [M, Q, S, QA, W].map(serverApp), name: 'cluster', single: !!process.env.CHECK_CLUSTER_SINGLE, unlinked });
  if (cl.single) console.error('(CHECK_CLUSTER_SINGLE: one plain herald stands for the 3 nodes; the 7 checks that need Redis or stop a node fail by design)');
  const signer = sdk(0, M); // signs only (channel auth, user auth): no HTTP
  const api = (i, app = M) => sdk(cl.port(i), app);
  let starting = null;
  // Each check starts the cluster if no check did yet (so CHECK_FILTER works), and restarts a
  // node that crashed since the last check (the crash is reported at the end).
  const C = (area, name, fn, ms = 6000) => check(area, `[cluster] ${name}`, async (t) => {
    starting ||= cl.start();
    await starting;
    await cl.heal();
    return fn(t);
  }, ms + (cl.started ? 0 : 30000));

  const usersOn = async (i, ch) => {
    const r = await viaSdk(api(i).get({ path: `/channels/${ch}/users` }));
    return r.status === 200 ? r.body.users.map((u) => u.id).sort() : r;
  };
  const settle = async (i, ch, ids) => {
    const want = JSON.stringify([...ids].map(String).sort());
    const deadline = Date.now() + PROPAGATION;
    while (Date.now() < deadline) {
      try { const got = await usersOn(i, ch); if (Array.isArray(got) && JSON.stringify(got.map(String)) === want) return; } catch { /* retry */ }
      await sleep(50);
    }
  };
  const userOpts = (id, name) => ({ presence: { user_id: id, user_info: { id, name } }, user: { id: String(id), name } });
  const pjs = (t, node, id, name) => pusherClient(t, cl.port(node), M.key, { signer, presence: { user_id: id, user_info: { name } }, user: { id } });
  const echo = (t, node, opts = {}) => echoClient(t, cl.port(node), M.key, 'reverb', { signer, ...opts });
  const rawPresence = async (c, ch, user_id) => { const x = signer.authorizeChannel(c.socketId, ch, { user_id, user_info: { name: `user ${user_id}` } }); return c.subscribeOk(ch, x.auth, x.channel_data); };
  const rawSignin = async (c, id) => { c.send({ event: 'pusher:signin', data: signer.authenticateUser(c.socketId, { id }) }); await c.next('pusher:signin_success'); };

  try {
    await C(R.conn, `redis-server + ${NODES} nodes sharing it: each GET /up 200 and "cluster link up" in its log`, async () => {
      assert(!cl.single, 'CHECK_CLUSTER_SINGLE: no cluster');
      for (let i = 0; i < NODES; i++) {
        assert(cl.linked(i), `node ${i} did not log "cluster link up"`);
        const r = await fetch(`http://127.0.0.1:${cl.port(i)}/up`, { signal: AbortSignal.timeout(2000) });
        eq(r.status, 200, `node ${i} GET /up`);
      }
    });

    // ---------------- broadcasts without presence first: a fresh cluster must relay before any presence state exists
    await C(R.trig, 'node SDK trigger on node 1: subscribers on all 3 nodes get it exactly once; info subscription_count counts every node', async (t) => {
      const ch = uniq('cl-pub');
      const subs = [];
      for (const n of [0, 1, 1, 2]) { const c = await connect(t, cl.port(n), M.key); await c.subscribeOk(ch); subs.push(c); }
      const count = async () => (await viaSdk(api(1).get({ path: `/channels/${ch}`, params: { info: 'subscription_count' } }))).body;
      await until(count, (b) => b && b.subscription_count === 4, PROPAGATION, 'GET /channels/{name} on node 1 counting 4 subscribers');
      const r = await viaSdk(api(1).trigger([ch], 'ev', { n: 1 }, { info: 'subscription_count' }));
      eq(r.status, 200, 'status');
      deepEq(r.body, { channels: { [ch]: { subscription_count: 4 } } }, 'body');
      for (const c of subs) deepEq(JSON.parse((await c.next('ev', PROPAGATION)).data), { n: 1 }, 'data');
      await sleep(QUIET);
      subs.forEach((c, i) => eq(c.all.filter((f) => f.event === 'ev').length, 1, `copies at subscriber #${i} (node ${[0, 1, 1, 2][i]})`));
    });
    await C(R.trig, 'python SDK trigger on node 2 with socket_id of a node-0 socket: only that socket skipped', async (t) => {
      const ch = uniq('cl-py');
      const subs = [];
      for (const n of [0, 0, 1, 2]) { const c = await connect(t, cl.port(n), M.key); await c.subscribeOk(ch); subs.push(c); }
      deepEq(pyOk(await py(cl.port(2), M, 'trigger', [[ch], 'py-x', { from: 'python' }, subs[0].socketId])), {}, 'body');
      for (const c of subs.slice(1)) deepEq(JSON.parse((await c.next('py-x', PROPAGATION)).data), { from: 'python' }, 'data');
      pyOk(await py(cl.port(2), M, 'trigger', [[ch], 'py-end', 'sentinel'])); // same publisher: arrives after py-x
      for (const c of subs) await c.next('py-end', PROPAGATION);
      eq(subs[0].all.filter((f) => f.event === 'py-x').length, 0, 'events at the excluded socket');
      subs.forEach((c, i) => i && eq(c.all.filter((f) => f.event === 'py-x').length, 1, `copies at subscriber #${i}`));
    }, 10000);
    await C(R.batch, 'node SDK triggerBatch on node 2 with info: delivered on nodes 0 and 1, subscription_count counts both', async (t) => {
      const ch1 = uniq('cl-b'), ch2 = uniq('cl-b');
      const a = await connect(t, cl.port(0), M.key), b = await connect(t, cl.port(1), M.key);
      for (const c of [a, b]) { await c.subscribeOk(ch1); await c.subscribeOk(ch2); }
      await until(async () => (await viaSdk(api(2).get({ path: `/channels/${ch1}`, params: { info: 'subscription_count' } }))).body, (x) => x && x.subscription_count === 2, PROPAGATION, 'GET /channels/{name} on node 2 counting 2');
      const r = await viaSdk(api(2).triggerBatch([{ channel: ch1, name: 'b1', data: { n: 1 }, info: 'subscription_count' }, { channel: ch2, name: 'b2', data: 'two' }]));
      eq(r.status, 200, 'status');
      deepEq(r.body, { batch: [{ subscription_count: 2 }, {}] }, 'body');
      for (const c of [a, b]) {
        deepEq(JSON.parse((await c.next('b1', PROPAGATION)).data), { n: 1 }, 'b1');
        eq((await c.next('b2', PROPAGATION)).data, 'two', 'b2');
      }
    });
    await C(R.echo, '[reverb] private().listen() on node 0 gets events triggered through the Node SDK on nodes 1 and 2', async (t) => {
      const name = uniq('orders-cl');
      const e = echo(t, 0);
      const ch = e.private(name);
      await subscribedEcho(ch);
      const paid = once((cb) => ch.listen('.paid', cb), PROPAGATION, 'paid');
      const shipped = once((cb) => ch.listen('OrderShipped', cb), PROPAGATION, 'OrderShipped');
      eq((await viaSdk(api(1).trigger(`private-${name}`, 'paid', { amount: 7 }))).status, 200, 'trigger status (node 1)');
      eq((await viaSdk(api(2).trigger(`private-${name}`, 'App\\Events\\OrderShipped', { order: { id: 8 } }))).status, 200, 'trigger status (node 2)');
      deepEq(await paid, { amount: 7 }, 'event triggered on node 1');
      deepEq(await shipped, { order: { id: 8 } }, 'event triggered on node 2');
    });
    await C(R.echo, "[reverb] toOthers(): the Node SDK on node 1 with socket_id of a node-0 socket skips only that socket", async (t) => {
      const name = uniq('orders-cl');
      const sender = echo(t, 0);
      const others = [echo(t, 0), echo(t, 1), echo(t, 2)]; // one on the sender's node too
      const chans = [sender, ...others].map((e) => e.private(name));
      await Promise.all(chans.map((ch) => subscribedEcho(ch)));
      const got = chans.map((ch) => { const c = collector(); ch.listen('OrderShipped', c); return c; });
      // What Laravel does for broadcast(...)->toOthers(): X-Socket-ID → socket_id.
      eq((await viaSdk(api(1).trigger(`private-${name}`, 'App\\Events\\OrderShipped', { id: 3 }, { socket_id: sender.socketId() }))).status, 200, 'status');
      for (let i = 1; i < 4; i++) await got[i].wait((d) => d.id === 3, PROPAGATION, `event at the other socket #${i} (node ${i - 1})`);
      // Sentinel from the same publisher: once it arrives, the excluded event would have too.
      eq((await viaSdk(api(1).trigger(`private-${name}`, 'App\\Events\\OrderShipped', { id: 4 }))).status, 200, 'status (sentinel)');
      for (let i = 0; i < 4; i++) await got[i].wait((d) => d.id === 4, PROPAGATION, `sentinel at socket #${i}`);
      deepEq(got[0].items, [{ id: 4 }], 'events at the excluded sender (node 0)');
      for (let i = 1; i < 4; i++) deepEq(got[i].items, [{ id: 3 }, { id: 4 }], `events at the other socket #${i} (node ${i - 1}), in order`);
    });
    await C(R.signin, 'node SDK sendToUser on node 2 reaches both tabs of the user (nodes 0 and 1) exactly once', async (t) => {
      const uid = uniq('cl-user');
      const tabs = [await connect(t, cl.port(0), M.key), await connect(t, cl.port(1), M.key)];
      // What pusher-js does after pusher:signin_success: subscribe #server-to-user-<id> (no auth).
      for (const c of tabs) { await rawSignin(c, uid); await c.subscribeOk(`#server-to-user-${uid}`, ''); }
      const oid = uniq('cl-other');
      const other = await connect(t, cl.port(2), M.key); await rawSignin(other, oid); await other.subscribeOk(`#server-to-user-${oid}`, '');
      eq((await viaSdk(api(2).sendToUser(uid, 'welcome', { hi: 1 }))).status, 200, 'status');
      eq((await viaSdk(api(2).sendToUser(uid, 'end', 'sentinel'))).status, 200, 'status (sentinel)');
      for (const [i, c] of tabs.entries()) {
        const f = await c.next('welcome', PROPAGATION);
        deepEq({ channel: f.channel, data: JSON.parse(f.data) }, { channel: `#server-to-user-${uid}`, data: { hi: 1 } }, `frame on node ${i}`);
        await c.next('end', PROPAGATION);
        eq(c.all.filter((x) => x.event === 'welcome').length, 1, `copies on node ${i}`);
      }
      eq(other.all.filter((x) => x.event === 'welcome').length, 0, 'events at another user');
    });
    await C(R.watch, 'pusher-js watchlist on node 0: a watched user signing in on node 1 and on node 2 is online once; offline once when both have gone', async (t) => {
      const wsigner = sdk(0, W);
      const a = uniq('cl-wa'), b = uniq('cl-wb');
      const signedIn = (node, user) => signedInWatching(t, cl.port(node), W.key, wsigner, user);
      const { events } = await signedIn(0, { id: a, watchlist: [b] });
      deepEq(await events.wait(() => true, PROPAGATION, 'snapshot'), { name: 'offline', user_ids: [b] }, 'snapshot');
      const b1 = await signedIn(1, { id: b }), b2 = await signedIn(2, { id: b });
      deepEq(await events.wait((e) => e.name === 'online', PROPAGATION, 'online'), { name: 'online', user_ids: [b] }, 'online');
      // signin_success does not wait for Redis: let node 2's hold of the user reach it before
      // node 1's socket leaves (transitions follow Redis's order, see docs/protocol.md).
      await sleep(QUIET);
      eq(events.items.length, 2, `a second node signing the user in announces nothing: ${JSON.stringify(events.items)}`);
      b1.p.disconnect();
      await sleep(QUIET);
      eq(events.items.length, 2, `events while node 2 still holds the user: ${JSON.stringify(events.items)}`);
      b2.p.disconnect();
      await events.wait((e) => e.name === 'offline' && events.items.length === 3, PROPAGATION, 'offline');
      deepEq(events.items[2], { name: 'offline', user_ids: [b] }, 'offline');
    });
    await C(R.subcount, 'pusher-js subscribers on nodes 0, 1 and 2: channel.subscriptionCount counts every node', async (t) => {
      const name = uniq('cl-count');
      const chans = [];
      for (const n of [0, 1, 2]) { const p = pusherClient(t, cl.port(n), W.key); const ch = p.subscribe(name); const counts = collector(); ch.bind('pusher:subscription_count', (d) => counts(d)); chans.push({ ch, counts }); }
      for (const [i, { ch, counts }] of chans.entries()) {
        await counts.wait((d) => d.subscription_count === 3, PROPAGATION, `count 3 on node ${i}`);
        eq(ch.subscriptionCount, 3, `channel.subscriptionCount on node ${i}`);
      }
    });
    await C(R.term, 'node SDK terminateUserConnections on node 0 closes the user\'s sockets on nodes 1 and 2 (4009); other users stay', async (t) => {
      const uid = uniq('cl-term'), keep = uniq('cl-keep');
      const v1 = await connect(t, cl.port(1), M.key), v2 = await connect(t, cl.port(2), M.key);
      const k0 = await connect(t, cl.port(0), M.key), k1 = await connect(t, cl.port(1), M.key);
      await rawSignin(v1, uid); await rawSignin(v2, uid); await rawSignin(k0, keep); await rawSignin(k1, keep);
      const r = await viaSdk(api(0).terminateUserConnections(uid));
      eq(r.status, 200, 'status'); deepEq(r.body, {}, 'body');
      for (const [w, c] of [['node 1', v1], ['node 2', v2]]) {
        deepEq((await c.next('pusher:error', PROPAGATION)).data, { code: 4009, message: 'You got disconnected by the app.' }, `pusher:error on ${w}`);
        eq((await c.waitClose(PROPAGATION)).code, 4009, `close code on ${w}`);
      }
      await k0.alive(); await k1.alive();
    });
    await C(R.term, 'python SDK terminate_user_connections on node 1: pusher-js signed in on nodes 0 and 2 disconnected; a node-1 user stays', async (t) => {
      const uid = uniq('cl-pyterm');
      const signIn = async (node, id) => {
        const p = pusherClient(t, cl.port(node), M.key, { signer, user: { id } });
        await waitState(p, 'connected');
        const ok = once((cb) => p.connection.bind('message', (m) => { if (m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${id}`) cb(); }), 4000, `signed in on node ${node}`);
        p.signin();
        await ok;
        const states = collector(); p.connection.bind('state_change', (s) => states(s.current));
        return { p, states };
      };
      const a = await signIn(0, uid), c = await signIn(2, uid), k = await signIn(1, uniq('cl-pykeep'));
      const keepSid = k.p.connection.socket_id;
      deepEq(pyOk(await py(cl.port(1), M, 'terminate_user_connections', [uid])), {}, 'body');
      await a.states.wait((s) => s === 'disconnected', PROPAGATION, 'node 0 socket disconnected');
      await c.states.wait((s) => s === 'disconnected', PROPAGATION, 'node 2 socket disconnected');
      eq(k.p.connection.state, 'connected', 'other user on node 1');
      eq(k.p.connection.socket_id, keepSid, 'other user kept its socket');
    }, 8000);
    await C(R.cache, 'cache channel: the last event triggered on node 0 (no subscribers anywhere) is replayed to subscribers on nodes 1 and 2', async (t) => {
      const ch = uniq('cache-cl');
      eq((await viaSdk(api(0).trigger(ch, 'price', { v: 10 }))).status, 200, 'status');
      for (const n of [1, 2]) {
        // A cache_miss within the propagation window is retried on a fresh socket.
        const second = await until(async () => {
          const c = await connect(null, cl.port(n), M.key);
          try {
            await c.subscribeOk(ch);
            return await c.next((f) => f.channel === ch, 2000, 'frame after subscription_succeeded');
          } finally { c.close(); }
        }, (f) => f.event !== 'pusher:cache_miss', PROPAGATION, `replay on node ${n}`);
        deepEq({ event: second.event, data: JSON.parse(second.data) }, { event: 'price', data: { v: 10 } }, `replayed frame on node ${n}`);
      }
    });
    await C(R.conn, 'GET /apps/{id}/connections on every node counts the sockets of all nodes', async (t) => {
      const socks = [];
      for (const n of [0, 1, 2]) socks.push(await connect(t, cl.port(n), Q.key));
      const count = (n) => async () => (await signed(cl.port(n), Q, 'GET', `/apps/${Q.id}/connections`)).body;
      for (const n of [0, 1, 2]) await until(count(n), (b) => b && b.connections === 3, PROPAGATION, `connections on node ${n}`);
      socks[1].close();
      for (const n of [0, 1, 2]) await until(count(n), (b) => b && b.connections === 2, PROPAGATION, `connections on node ${n} after the node-1 socket closed`);
    });
    await C(R.quota, 'max_connections counts the whole cluster (quota app, 2): sockets on nodes 0 and 1, node 2 refuses with 4004; a slot freed on node 0 is usable on node 2', async (t) => {
      const a = await connect(t, cl.port(0), QA.key);
      await connect(t, cl.port(1), QA.key);
      // Node 2 learns the other nodes' counts within a heartbeat; an attempt it still accepts is closed and retried.
      const tryNode2 = async () => {
        const c = open(null, cl.port(2), QA.key);
        try {
          const f = await c.next((x) => x.event === 'pusher:error' || x.event === 'pusher:connection_established', 2000, 'first frame');
          if (f.event === 'pusher:error') return { refused: f.data, close: (await c.waitClose(2000)).code };
          return { accepted: true };
        } finally { c.close(); }
      };
      deepEq(await until(tryNode2, (r) => !r.accepted, PROPAGATION, 'node 2 refusing a third connection'),
        { refused: { code: 4004, message: 'Application is over connection quota' }, close: 4004 }, 'refusal on node 2');
      a.close();
      await until(tryNode2, (r) => r.accepted, PROPAGATION, 'node 2 accepting once a node-0 socket closed');
    }, 8000);

    // ---------------- Redis restarts (empty): held writes flushed
    await C(R.trig, 'redis-server restarted: an event triggered on node 0 while Redis is down reaches node 1 once it is back, once', async (t) => {
      assert(!cl.single, 'CHECK_CLUSTER_SINGLE: no Redis');
      const ch = uniq('cl-outage');
      const local = await connect(t, cl.port(0), M.key), remote = await connect(t, cl.port(1), M.key);
      await local.subscribeOk(ch); await remote.subscribeOk(ch);
      await cl.redis.stop();
      eq((await viaSdk(api(0).trigger(ch, 'held', { n: 1 }))).status, 200, 'trigger status while Redis is down');
      deepEq(JSON.parse((await local.next('held', PROPAGATION)).data), { n: 1 }, 'local delivery during the outage');
      await cl.redis.start(cl.redis.port);
      deepEq(JSON.parse((await remote.next('held', REDIS_BACK)).data), { n: 1 }, 'delivery on node 1 after Redis came back');
      eq((await viaSdk(api(1).trigger(ch, 'after', { n: 2 }))).status, 200, 'trigger status after the outage');
      for (const c of [local, remote]) await c.next('after', PROPAGATION);
      await sleep(QUIET);
      eq(local.all.filter((f) => f.event === 'held').length, 1, 'copies on node 0');
      eq(remote.all.filter((f) => f.event === 'held').length, 1, 'copies on node 1');
    }, 15000);

    // ---------------- presence
    await C(R.pres, 'pusher-js presence over 3 nodes: snapshots cluster-wide, member_added/removed once per user change everywhere, a second tab on another node fires nothing', async (t) => {
      const name = uniq('presence-cl');
      const join = async (node, id, who) => {
        const p = pjs(t, node, id, who);
        const frames = memberFrames(p, name);
        const ch = p.subscribe(name);
        await subscribedPjs(ch);
        return { p, ch, frames };
      };
      const ann = await join(0, '1', 'Ann');
      deepEq(memberIds(ann.ch), ['1'], "Ann's (node 0) members"); eq(ann.ch.members.me.id, '1', 'me.id');
      await settle(1, name, ['1']);
      const bob = await join(1, '2', 'Bob');
      deepEq(memberIds(bob.ch), ['1', '2'], "Bob's (node 1) subscription_succeeded members");
      eq(bob.ch.members.count, 2, "Bob's count");
      deepEq(bob.ch.members.get('1').info, { name: 'Ann' }, "Ann's user_info as seen on node 1");
      await ann.frames.wait((f) => f === '+2', PROPAGATION, 'member_added(Bob) at Ann (node 0)');
      await settle(2, name, ['1', '2']);
      const cy = await join(2, '3', 'Cy');
      deepEq(memberIds(cy.ch), ['1', '2', '3'], "Cy's (node 2) subscription_succeeded members");
      deepEq(cy.ch.members.get('2').info, { name: 'Bob' }, "Bob's user_info as seen on node 2");
      await ann.frames.wait((f) => f === '+3', PROPAGATION, 'member_added(Cy) at Ann (node 0)');
      await bob.frames.wait((f) => f === '+3', PROPAGATION, 'member_added(Cy) at Bob (node 1)');
      for (const [w, x] of [['Ann', ann], ['Bob', bob], ['Cy', cy]]) eq(x.ch.members.count, 3, `${w}'s count after 3 joins`);
      // Bob's second tab, on node 2 (his first is on node 1): a snapshot of 3, and no event anywhere.
      const bob2 = await join(2, '2', 'Bob');
      deepEq(memberIds(bob2.ch), ['1', '2', '3'], "Bob's second tab's (node 2) members");
      // Bob's first tab leaves: he is still present through the second one.
      bob.p.disconnect();
      await sleep(QUIET);
      deepEq(ann.frames.items, ['+2', '+3'], 'member frames at Ann after the second tab and the first tab leaving');
      deepEq(cy.frames.items, [], 'member frames at Cy after the second tab and the first tab leaving');
      deepEq(bob2.frames.items, [], "member frames at Bob's second tab");
      for (const [w, x] of [['Ann', ann], ['Cy', cy], ['Bob tab 2', bob2]]) eq(x.ch.members.count, 3, `${w}'s count while Bob keeps one tab`);
      bob2.p.disconnect();
      await ann.frames.wait((f) => f === '-2', PROPAGATION, 'member_removed(Bob) at Ann (node 0)');
      await cy.frames.wait((f) => f === '-2', PROPAGATION, 'member_removed(Bob) at Cy (node 2)');
      eq(ann.ch.members.count, 2, "Ann's count after Bob's last tab"); eq(cy.ch.members.count, 2, "Cy's count after Bob's last tab");
      cy.p.disconnect();
      await ann.frames.wait((f) => f === '-3', PROPAGATION, 'member_removed(Cy) at Ann (node 0)');
      await sleep(QUIET);
      deepEq(ann.frames.items, ['+2', '+3', '-2', '-3'], 'every member frame Ann got');
      deepEq(bob.frames.items, ['+3'], 'every member frame Bob (tab 1) got');
      deepEq(cy.frames.items, ['-2'], 'every member frame Cy got');
      eq(ann.ch.members.count, 1, "Ann's final count"); deepEq(memberIds(ann.ch), ['1'], "Ann's final members");
    }, 16000);
    await C(R.pres, 'simultaneous joins on 3 nodes (one user in two tabs on nodes 0 and 2): every client ends with the same 3 members, each user announced to it once; both tabs closing at once: one member_removed', async (t) => {
      const name = uniq('presence-clrace');
      const cs = [[0, 'r1'], [1, 'r2'], [2, 'r3'], [2, 'r1']].map(([n, id]) => {
        const p = pjs(t, n, id, id.toUpperCase());
        const x = { p, n, id, frames: memberFrames(p, name), snap: null };
        x.ch = p.subscribe(name);
        x.ch.bind('pusher:subscription_succeeded', (m) => { x.snap = Object.keys(m.members).sort(); });
        return x;
      });
      const all = ['r1', 'r2', 'r3'];
      for (const x of cs) await until(async () => (x.ch.subscribed ? memberIds(x.ch) : null), same(all), PROPAGATION + 2000, `members of ${x.id} on node ${x.n}`);
      await sleep(QUIET);
      for (const x of cs) {
        const seen = [...x.snap, ...x.frames.items.filter((f) => f[0] === '+').map((f) => f.slice(1))].sort();
        deepEq(seen, all, `${x.id} on node ${x.n}: snapshot ${JSON.stringify(x.snap)} + member frames ${JSON.stringify(x.frames.items)} must name each user once`);
        eq(x.frames.items.filter((f) => f[0] === '-').length, 0, `member_removed frames at ${x.id} on node ${x.n}`);
        eq(x.ch.members.count, 3, `count at ${x.id} on node ${x.n}`);
      }
      cs[0].p.disconnect(); cs[3].p.disconnect(); // both tabs of r1, on nodes 0 and 2
      for (const x of [cs[1], cs[2]]) await x.frames.wait((f) => f === '-r1', PROPAGATION, `member_removed(r1) at ${x.id} on node ${x.n}`);
      await sleep(QUIET);
      for (const x of [cs[1], cs[2]]) {
        eq(x.frames.items.filter((f) => f === '-r1').length, 1, `member_removed(r1) frames at ${x.id} on node ${x.n}`);
        deepEq(memberIds(x.ch), ['r2', 'r3'], `members at ${x.id} on node ${x.n}`);
      }
    }, 12000);
    await C(R.pres, 'max_presence_members counts the whole cluster (small app, 2): members on nodes 0 and 1, a third user on node 2 gets LimitReached/4100 (and its client events 4009); a second tab of a member still joins there', async (t) => {
      const ch = uniq('presence-cllim');
      const ssigner = sdk(0, S);
      const join = (c, u) => { const a = ssigner.authorizeChannel(c.socketId, ch, { user_id: u }); c.subscribe(ch, a.auth, a.channel_data); };
      const members = [];
      for (const [n, u] of [[0, 'l1'], [1, 'l2']]) {
        const c = await connect(t, cl.port(n), S.key); join(c, u);
        await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === ch, PROPAGATION + 2000, `subscription_succeeded for ${u} on node ${n}`);
        members.push(c);
      }
      const c3 = await connect(t, cl.port(2), S.key); join(c3, 'l3');
      const f1 = await c3.next((f) => f.channel === ch || f.event === 'pusher:error', PROPAGATION + 2000, 'answer to the third user');
      eq(f1.event, 'pusher:subscription_error', 'first frame for the third user');
      eq(f1.data && f1.data.type, 'LimitReached', 'subscription_error type'); eq(f1.data && f1.data.status, 4100, 'subscription_error status');
      eq((await c3.next('pusher:error')).data.code, 4100, 'pusher:error code');
      // The refused socket is not a member: its client event is refused and reaches nobody.
      c3.send({ event: 'client-x', channel: ch, data: { from: 'l3' } });
      deepEq((await c3.next('pusher:error')).data, { code: 4009, message: 'The client is not a member of the specified channel.' }, 'client event from the refused socket');
      const c4 = await connect(t, cl.port(2), S.key); join(c4, 'l1');
      const ok = await c4.next((f) => f.channel === ch, PROPAGATION + 2000, "answer to l1's second tab");
      eq(ok.event, 'pusher_internal:subscription_succeeded', "l1's second tab on node 2");
      deepEq([...JSON.parse(ok.data).presence.ids].sort(), ['l1', 'l2'], 'presence ids');
      for (const c of members) eq(c.all.filter((f) => f.event === 'client-x').length, 0, 'client event from the refused socket delivered');
    }, 10000);
    await C(R.pres, 'joins abandoned at once (sockets on node 0 closed, or unsubscribed, right after pusher:subscribe) leave no ghost: on node 1 each is announced joined-then-left or not at all; /users unchanged', async (t) => {
      const ch = uniq('presence-clghost');
      const w = await connect(t, cl.port(1), M.key); await rawPresence(w, ch, 'w');
      const sub = (c, u) => { const x = signer.authorizeChannel(c.socketId, ch, { user_id: u }); c.subscribe(ch, x.auth, x.channel_data); };
      for (let i = 0; i < 8; i++) { const c = await connect(t, cl.port(0), M.key); sub(c, `g${i}`); c.close(); }
      const us = [];
      for (let i = 0; i < 4; i++) { const u = await connect(t, cl.port(0), M.key); sub(u, `h${i}`); u.send({ event: 'pusher:unsubscribe', data: { channel: ch } }); us.push(u); }
      // Sentinel: node 0's writes go out in order, so once z's join is answered the abandoned ones were decided.
      const z = await connect(t, cl.port(0), M.key); await rawPresence(z, ch, 'z');
      for (const n of [0, 1, 2]) await until(() => usersOn(n, ch), same(['w', 'z']), PROPAGATION, `users on node ${n}`);
      await w.next((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'z', PROPAGATION, 'member_added(z) on node 1');
      await sleep(QUIET);
      // A single server would announce each as joined then left (it handles the subscribe before
      // the close); a cluster may also decide the join never happened. Anything else is a ghost.
      const seen = w.all.filter((f) => /^pusher_internal:member_/.test(f.event || '')).map((f) => `${f.event.endsWith('added') ? '+' : '-'}${JSON.parse(f.data).user_id}`);
      for (const id of [...Array(8).keys()].map((i) => `g${i}`).concat([...Array(4).keys()].map((i) => `h${i}`))) {
        const mine = seen.filter((f) => f.slice(1) === id);
        assert(mine.length === 0 || canon(mine) === canon([`+${id}`, `-${id}`]), `member frames for ${id} on node 1: ${JSON.stringify(mine)} (all: ${JSON.stringify(seen)})`);
      }
      deepEq(seen.filter((f) => f.slice(1) === 'z'), ['+z'], 'member frames for z on node 1');
      // A socket that unsubscribed at once may hear about g* leaving (node 0 may notice those closes
      // after its subscribe), never about h* (itself included) nor about z, who joined after.
      for (const [i, u] of us.entries()) {
        const atU = u.all.filter((f) => /^pusher_internal:member_/.test(f.event || '')).map((f) => `${f.event.endsWith('added') ? '+' : '-'}${JSON.parse(f.data).user_id}`);
        eq(atU.filter((f) => f[1] !== 'g').length, 0, `member frames at the socket that subscribed as h${i} and unsubscribed at once: ${JSON.stringify(atU)}`);
      }
    }, 8000);
    await C(R.cev, 'pusher-js client event on a presence channel reaches nodes 1 and 2 once, with user_id, not the sender on node 0', async (t) => {
      const name = uniq('presence-clev');
      const clients = [0, 1, 2].map((n) => pjs(t, n, `ce${n}`, `CE ${n}`));
      const chans = clients.map((p) => p.subscribe(name));
      await Promise.all(chans.map((ch) => subscribedPjs(ch)));
      const got = chans.map((ch) => { const c = collector(); ch.bind('client-move', (data, meta) => c({ data, user_id: meta && meta.user_id })); return c; });
      assert(chans[0].trigger('client-move', { x: 1 }), 'trigger returned false');
      for (const i of [1, 2]) deepEq(await got[i].wait(() => true, PROPAGATION, `client-move on node ${i}`), { data: { x: 1 }, user_id: 'ce0' }, `client event on node ${i}`);
      await sleep(QUIET);
      eq(got[0].items.length, 0, 'client event echoed to the sender');
      for (const i of [1, 2]) eq(got[i].items.length, 1, `client events on node ${i}`);
    });

    // ---------------- Laravel Echo presence and whispers, Chromium
    await C(R.echo, '[reverb] join() across nodes: here() lists members of every node, joining/leaving (leave() on node 1) once each', async (t) => {
      const room = uniq('room-cl');
      const ch = `presence-${room}`;
      const U = { 1: { id: 1, name: 'Ann' }, 2: { id: 2, name: 'Bob' }, 3: { id: 3, name: 'Cy' } };
      const member = async (node, id) => {
        const e = echo(t, node, userOpts(id, U[id].name));
        const joined = collector(), left = collector();
        const hereList = await once((cb) => e.join(room).here(cb).joining(joined).leaving(left), 4000, `here() for ${U[id].name}`);
        return { e, joined, left, here: hereList };
      };
      const a = await member(0, 1);
      deepEq(a.here, [U[1]], 'here() for Ann (node 0)');
      await settle(1, ch, ['1']);
      const b = await member(1, 2);
      deepEq(byId(b.here), [U[1], U[2]], 'here() for Bob (node 1)');
      deepEq(await a.joined.wait(() => true, PROPAGATION, 'joining(Bob) at Ann'), U[2], 'joining at Ann');
      await settle(2, ch, ['1', '2']);
      const c = await member(2, 3);
      deepEq(byId(c.here), [U[1], U[2], U[3]], 'here() for Cy (node 2)');
      await a.joined.wait((u) => u.id === 3, PROPAGATION, 'joining(Cy) at Ann');
      await b.joined.wait((u) => u.id === 3, PROPAGATION, 'joining(Cy) at Bob');
      b.e.leave(room); // unsubscribes (the socket stays open)
      deepEq(await a.left.wait(() => true, PROPAGATION, 'leaving(Bob) at Ann'), U[2], 'leaving at Ann');
      deepEq(await c.left.wait(() => true, PROPAGATION, 'leaving(Bob) at Cy'), U[2], 'leaving at Cy');
      await sleep(QUIET);
      deepEq(a.joined.items, [U[2], U[3]], 'every joining() at Ann'); deepEq(a.left.items, [U[2]], 'every leaving() at Ann');
      deepEq(b.joined.items, [U[3]], 'every joining() at Bob'); deepEq(b.left.items, [], 'every leaving() at Bob');
      deepEq(c.joined.items, [], 'every joining() at Cy'); deepEq(c.left.items, [U[2]], 'every leaving() at Cy');
    }, 12000);
    await C(R.echo, '[reverb] whisper()/listenForWhisper() across nodes, on a private and a presence channel, never echoed', async (t) => {
      const name = uniq('chat-cl'), room = uniq('room-clw');
      const es = [0, 1, 2].map((n) => echo(t, n, userOpts(10 + n, `W${n}`)));
      const privs = es.map((e) => e.private(name));
      await Promise.all(privs.map((ch) => subscribedEcho(ch)));
      const typing = privs.map((ch) => { const c = collector(); ch.listenForWhisper('typing', c); return c; });
      const pres = es.map((e) => e.join(room));
      await Promise.all(pres.map((ch) => once((cb) => ch.here(cb), 4000, 'here()')));
      const waves = pres.map((ch) => { const c = collector(); ch.listenForWhisper('wave', c); return c; });
      privs[0].whisper('typing', { name: 'W0', typing: true });
      pres[2].whisper('wave', { from: 12 });
      for (const i of [1, 2]) deepEq(await typing[i].wait(() => true, PROPAGATION, `typing whisper on node ${i}`), { name: 'W0', typing: true }, `private whisper at node ${i}`);
      for (const i of [0, 1]) deepEq(await waves[i].wait(() => true, PROPAGATION, `wave whisper on node ${i}`), { from: 12 }, `presence whisper at node ${i}`);
      await sleep(QUIET);
      eq(typing[0].items.length, 0, 'private whisper echoed to the sender (node 0)');
      eq(waves[2].items.length, 0, 'presence whisper echoed to the sender (node 2)');
      for (const i of [1, 2]) eq(typing[i].items.length, 1, `private whispers at node ${i}`);
      for (const i of [0, 1]) eq(waves[i].items.length, 1, `presence whispers at node ${i}`);
    }, 8000);
    await C(R.echo, '[browser] a Chromium tab on node 2 and Echo in Node on nodes 0 and 1: presence list, joining/leaving, notification triggered on node 0', async (t) => {
      assert(fs.existsSync(CHROMIUM), `${CHROMIUM} missing`);
      const demo = createDemoServer({ signer, nodeModules: path.join(here, '..', 'node_modules') });
      await new Promise((r) => demo.listen(0, '127.0.0.1', r));
      t.defer(() => demo.close());
      const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-cl-'));
      t.defer(() => fs.rmSync(profile, { recursive: true, force: true }));
      const room = uniq('lobby-cl');
      const bob = echo(t, 0, userOpts(2, 'Bob'));
      const bobJoined = collector();
      await once((cb) => bob.join(room).here(cb).joining(bobJoined), 4000, 'here() for Bob');
      await settle(2, `presence-${room}`, ['2']);
      const ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, viewport: { width: 1000, height: 560 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      t.defer(() => ctx.close());
      const ann = await ctx.newPage();
      const log = [];
      ann.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
      t.defer(() => fs.writeFileSync(path.join(env.ARTIFACTS, 'cluster-browser-console.log'), log.join('\n') + '\n'));
      await ann.goto(`http://127.0.0.1:${demo.address().port}/?host=127.0.0.1&port=${cl.port(2)}&key=${M.key}&user=1&name=Ann&room=${room}`, { waitUntil: 'load', timeout: 8000 });
      await ann.waitForFunction(() => document.body.dataset.state === 'connected', null, { timeout: 8000 });
      await ann.waitForSelector('#members li[data-user-id="1"]', { timeout: 4000 });
      await ann.waitForSelector('#members li[data-user-id="2"]', { timeout: PROPAGATION }).catch(() => fail("Bob (node 0) not in the here() list of Ann's tab (node 2)"));
      eq(await ann.textContent('#members li[data-user-id="2"]'), 'Bob', "Bob's name in Ann's tab");
      deepEq(await bobJoined.wait(() => true, PROPAGATION, 'joining(Ann) at Bob'), { id: '1', name: 'Ann' }, 'joining at Bob (node 0)');
      const cy = echo(t, 1, userOpts(3, 'Cy'));
      await once((cb) => cy.join(room).here(cb), 4000, 'here() for Cy');
      await ann.waitForSelector('#members li[data-user-id="3"]', { timeout: PROPAGATION });
      eq(await ann.textContent('#member-count'), '3', 'member count in the tab');
      await ann.waitForFunction(() => window.herald && window.herald.echo.connector.channels['private-App.Models.User.1'] && window.herald.echo.connector.channels['private-App.Models.User.1'].subscription.subscribed, null, { timeout: 4000 });
      const r = await viaSdk(api(0).trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
        title: 'Paid on another node', id: 'b1b2b3b4-0000-4000-8000-000000000001', type: 'App\\Notifications\\InvoicePaid',
      }));
      eq(r.status, 200, 'trigger status (node 0)');
      await ann.waitForSelector('#notifications li.notification', { timeout: PROPAGATION });
      eq(await ann.textContent('#bell-count'), '1', 'bell count');
      cy.disconnect();
      await ann.waitForSelector('#members li[data-user-id="3"]', { state: 'detached', timeout: PROPAGATION });
      eq(await ann.textContent('#member-count'), '2', 'member count after Cy (node 1) left');
      await ann.screenshot({ path: path.join(env.ARTIFACTS, 'cluster-browser.png') });
    }, 25000);

    // ---------------- HTTP channel queries
    await C(R.query, 'GET /channels with filter_by_prefix + info=user_count: the same cluster-wide answer from node 0, node 1 (node SDK) and node 2 (python SDK)', async (t) => {
      const pre = uniq('presence-clq');
      for (const [n, ch, u] of [[0, 'x', '1'], [1, 'x', '2'], [2, 'x', '2'], [2, 'y', '3']]) {
        const c = await connect(t, cl.port(n), M.key); await rawPresence(c, `${pre}-${ch}`, u);
      }
      const want = { channels: { [`${pre}-x`]: { user_count: 2 }, [`${pre}-y`]: { user_count: 1 } } };
      for (const n of [0, 1]) {
        await until(async () => (await viaSdk(api(n).get({ path: '/channels', params: { filter_by_prefix: pre, info: 'user_count' } }))).body, same(want), PROPAGATION, `node SDK GET /channels on node ${n}`);
      }
      await until(async () => pyOk(await py(cl.port(2), M, 'channels_info', [pre, ['user_count']])), same(want), PROPAGATION + 2000, 'python channels_info on node 2');
      const pub = uniq('cl-qpub');
      const c = await connect(t, cl.port(2), M.key); await c.subscribeOk(pub);
      await until(async () => (await viaSdk(api(0).get({ path: '/channels', params: { filter_by_prefix: pub } }))).body, same({ channels: { [pub]: {} } }), PROPAGATION, 'GET /channels on node 0 listing a public channel occupied only on node 2');
    }, 10000);
    await C(R.query, 'GET /channels/{name}: subscription_count / user_count summed over the nodes (node SDK on 0 and 1, python on 2), then unoccupied everywhere', async (t) => {
      const pub = uniq('cl-cpub'), pres = uniq('presence-clc');
      const socks = [];
      for (const n of [0, 1, 2, 2]) { const c = await connect(t, cl.port(n), M.key); await c.subscribeOk(pub); socks.push(c); }
      for (const [n, u] of [[0, '5'], [1, '5'], [2, '6']]) { const c = await connect(t, cl.port(n), M.key); await rawPresence(c, pres, u); socks.push(c); }
      const wantPub = { occupied: true, subscription_count: 4 };
      const wantPres = { occupied: true, user_count: 2, subscription_count: 3 };
      const is = same;
      for (const n of [0, 1]) {
        await until(async () => (await viaSdk(api(n).get({ path: `/channels/${pub}`, params: { info: 'subscription_count' } }))).body, is(wantPub), PROPAGATION, `public channel on node ${n}`);
        await until(async () => (await viaSdk(api(n).get({ path: `/channels/${pres}`, params: { info: 'user_count,subscription_count' } }))).body, is(wantPres), PROPAGATION, `presence channel on node ${n}`);
      }
      await until(async () => pyOk(await py(cl.port(2), M, 'channel_info', [pub, ['subscription_count']])), is(wantPub), PROPAGATION + 2000, 'python channel_info (public) on node 2');
      await until(async () => pyOk(await py(cl.port(2), M, 'channel_info', [pres, ['user_count', 'subscription_count']])), is(wantPres), PROPAGATION + 2000, 'python channel_info (presence) on node 2');
      socks.forEach((c) => c.close());
      for (const n of [0, 1, 2]) {
        for (const ch of [pub, pres]) {
          await until(async () => (await viaSdk(api(n).get({ path: `/channels/${ch}` }))).body, is({ occupied: false }), PROPAGATION, `${ch} unoccupied on node ${n} after every socket closed`);
        }
      }
    }, 14000);
    await C(R.query, 'GET /channels/{presence}/users: one list from every node, a user with tabs on two nodes once, a leaver dropped', async (t) => {
      const ch = uniq('presence-clu');
      const socks = {};
      for (const [n, u, k] of [[0, 'u1', 'a'], [1, 'u2', 'b'], [2, 'u2', 'b2'], [2, 'u3', 'c']]) { socks[k] = await connect(t, cl.port(n), M.key); await rawPresence(socks[k], ch, u); }
      const want = same;
      for (const n of [0, 1]) await until(() => usersOn(n, ch), want(['u1', 'u2', 'u3']), PROPAGATION, `node SDK users on node ${n}`);
      await until(async () => pyOk(await py(cl.port(2), M, 'users_info', [ch])).users.map((u) => u.id).sort(), want(['u1', 'u2', 'u3']), PROPAGATION + 2000, 'python users_info on node 2');
      socks.c.close(); socks.b.close(); // u3 gone; u2 keeps the tab on node 2
      for (const n of [0, 1, 2]) await until(() => usersOn(n, ch), want(['u1', 'u2']), PROPAGATION, `users on node ${n} after u3 left and u2 closed one tab`);
    }, 12000);

    // ---------------- Redis restart (empty): presence state re-registered
    await C(R.pres, 'redis-server restarted empty: presence re-registered (users from every node), no member_removed/added for it, a new member on node 2 gets the full snapshot', async (t) => {
      assert(!cl.single, 'CHECK_CLUSTER_SINGLE: no Redis');
      const name = uniq('presence-clresync');
      const a = pjs(t, 0, 'q1', 'Q1'), b = pjs(t, 1, 'q2', 'Q2');
      const fa = memberFrames(a, name), fb = memberFrames(b, name);
      await subscribedPjs(a.subscribe(name));
      await subscribedPjs(b.subscribe(name));
      await fa.wait((f) => f === '+q2', PROPAGATION, 'member_added(q2) at node 0');
      await cl.redis.stop();
      await cl.redis.start(cl.redis.port);
      for (const n of [0, 1, 2]) await until(() => usersOn(n, name), same(['q1', 'q2']), REDIS_BACK, `users on node ${n} after the Redis restart`);
      const c = pjs(t, 2, 'q3', 'Q3');
      const cc = c.subscribe(name);
      await subscribedPjs(cc);
      deepEq(memberIds(cc), ['q1', 'q2', 'q3'], 'snapshot of a new member on node 2');
      await fa.wait((f) => f === '+q3', PROPAGATION, 'member_added(q3) at node 0');
      await fb.wait((f) => f === '+q3', PROPAGATION, 'member_added(q3) at node 1');
      await sleep(QUIET);
      deepEq(fa.items, ['+q2', '+q3'], 'every member frame at node 0');
      deepEq(fb.items, ['+q3'], 'every member frame at node 1');
    }, 15000);

    await C(R.pres, 'presence changes while redis-server is down and restarted empty: a join on node 1 gets its snapshot and is announced, a leave on node 2 is announced as removed, once Redis is back', async (t) => {
      assert(!cl.single, 'CHECK_CLUSTER_SINGLE: no Redis');
      const ch = uniq('presence-clgone');
      const w = await connect(t, cl.port(0), M.key); await rawPresence(w, ch, 'w');
      const gone = await connect(t, cl.port(2), M.key); await rawPresence(gone, ch, 'gone');
      await w.next((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'gone', PROPAGATION, 'member_added(gone) on node 0');
      await cl.redis.stop();
      gone.close(); await gone.closed;
      const late = await connect(t, cl.port(1), M.key);
      const x = signer.authorizeChannel(late.socketId, ch, { user_id: 'late' });
      late.subscribe(ch, x.auth, x.channel_data);
      await cl.redis.start(cl.redis.port);
      // Documented (docs/operations.md, Failures): joins made during the outage get their snapshot
      // when Redis returns; a member who left during the outage is announced as removed.
      const problems = [];
      const part = async (what, f) => { try { await f(); } catch (e) { problems.push(`${what}: ${e.message}`); } };
      await part('join during the outage', async () => {
        const ok = await late.next((f) => f.channel === ch, REDIS_BACK, 'answer to the join made during the outage');
        eq(ok.event, 'pusher_internal:subscription_succeeded', 'answer');
        deepEq([...JSON.parse(ok.data).presence.ids].sort(), ['late', 'w'], 'snapshot ids');
        await w.next((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'late', PROPAGATION, 'member_added(late) on node 0');
      });
      await part('leave during the outage', async () => {
        await w.next((f) => f.event === 'pusher_internal:member_removed' && JSON.parse(f.data).user_id === 'gone', REDIS_BACK, 'member_removed(gone) on node 0');
        await late.none((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'gone', 0, 'member_added(gone) on node 1');
      });
      await part('GET /users', async () => {
        for (const n of [0, 1, 2]) await until(() => usersOn(n, ch), same(['late', 'w']), PROPAGATION, `users on node ${n}`);
      });
      if (problems.length) fail(problems.join(' || '));
    }, 20000);

    // ---------------- node loss (these stop nodes; the last one leaves node 1 restarted)
    await C(R.pres, 'node 1 frozen (SIGSTOP) past node_timeout: its member leaves on nodes 0 and 2; once it resumes, every client is subscribed and its member list equals GET /users again', async (t) => {
      assert(!cl.single, 'CHECK_CLUSTER_SINGLE: no nodes to freeze');
      const name = uniq('presence-clfreeze');
      const cs = [];
      for (const n of [0, 1, 2]) {
        if (n) await settle(n, name, cs.map((x) => x.id));
        const p = pjs(t, n, `f${n}`, `F${n}`);
        const ch = p.subscribe(name);
        await subscribedPjs(ch);
        cs.push({ p, ch, n, id: `f${n}` });
      }
      const all = ['f0', 'f1', 'f2'];
      for (const x of cs) await until(async () => memberIds(x.ch), same(all), PROPAGATION, `members at node ${x.n} before the freeze`);
      const proc = cl.nodes[1].proc;
      proc.kill('SIGSTOP');
      t.defer(() => proc.kill('SIGCONT'));
      for (const x of [cs[0], cs[2]]) await until(async () => memberIds(x.ch), same(['f0', 'f2']), 2000 + PROPAGATION + 500, `f1 gone at node ${x.n} (node_timeout 2 s)`);
      proc.kill('SIGCONT');
      const view = async () => {
        const out = {};
        for (const x of cs) out[`node ${x.n}`] = { state: x.p.connection.state, subscribed: x.p.channel(name)?.subscribed, members: memberIds(x.p.channel(name)), users: await usersOn(x.n, name) };
        return out;
      };
      await until(view, (v) => Object.values(v).every((o) => o.state === 'connected' && o.subscribed && canon(o.members) === canon(all) && canon(o.users) === canon(all)),
        REDIS_BACK, 'after node 1 resumed: every client connected, subscribed, members = GET /users = all three');
    }, 20000);
    await C(R.shut, 'SIGTERM on node 2: its presence member leaves on nodes 0 and 1 at once; node 2 restarted, the pusher-js client rejoins through it', async (t) => {
      const name = uniq('presence-clshut');
      const a = pjs(t, 0, 'sa', 'SA'), b = pjs(t, 1, 'sb', 'SB');
      const fa = memberFrames(a, name), fb = memberFrames(b, name);
      await subscribedPjs(a.subscribe(name));
      await settle(1, name, ['sa']);
      await subscribedPjs(b.subscribe(name));
      await fa.wait((f) => f === '+sb', PROPAGATION, 'member_added(sb) at node 0');
      await settle(2, name, ['sa', 'sb']);
      const c = pjs(t, 2, 'sc', 'SC');
      const cc = c.subscribe(name);
      await subscribedPjs(cc);
      await fa.wait((f) => f === '+sc', PROPAGATION, 'member_added(sc) at node 0');
      await fb.wait((f) => f === '+sc', PROPAGATION, 'member_added(sc) at node 1');
      const exit = await cl.stopNode(2, 'SIGTERM');
      eq(exit && exit.code, 0, 'node 2 exit code');
      await fa.wait((f) => f === '-sc', PROPAGATION, 'member_removed(sc) at node 0 after the SIGTERM');
      await fb.wait((f) => f === '-sc', PROPAGATION, 'member_removed(sc) at node 1 after the SIGTERM');
      await until(() => usersOn(0, name), same(['sa', 'sb']), PROPAGATION, 'users on node 0');
      await cl.startNode(2);
      // pusher-js retries by itself, but after refused connects its backoff takes ~15 s (the
      // shutdown module covers that); here the point is the rejoin, so reconnect it at once.
      // pusher-js keeps its channels across disconnect()/connect() and resubscribes them.
      c.disconnect(); c.connect();
      await waitState(c, 'connected', 4000);
      await until(async () => c.channel(name).subscribed, Boolean, 4000, 'pusher-js resubscribed on the restarted node 2');
      deepEq(memberIds(c.channel(name)), ['sa', 'sb', 'sc'], 'members seen by the rejoined client on node 2');
      await until(async () => fa.items, (items) => items.filter((x) => x === '+sc').length === 2, PROPAGATION, 'member_added(sc) again at node 0');
      await until(async () => fb.items, (items) => items.filter((x) => x === '+sc').length === 2, PROPAGATION, 'member_added(sc) again at node 1');
      await sleep(QUIET);
      deepEq(fa.items, ['+sb', '+sc', '-sc', '+sc'], 'every member frame at node 0');
      deepEq(fb.items, ['+sc', '-sc', '+sc'], 'every member frame at node 1');
    }, 15000);
    await C(R.pres, 'SIGKILL on node 1: its member leaves on nodes 0 and 2 within node_timeout (2 s); restarted, a new node-1 member sees no ghost', async (t) => {
      const name = uniq('presence-clkill');
      const a = pjs(t, 0, 'ka', 'KA'), b = pjs(t, 1, 'kb', 'KB'), c = pjs(t, 2, 'kc', 'KC');
      const fa = memberFrames(a, name), fc = memberFrames(c, name);
      await subscribedPjs(a.subscribe(name));
      await settle(1, name, ['ka']);
      await subscribedPjs(b.subscribe(name));
      await settle(2, name, ['ka', 'kb']);
      const cc = c.subscribe(name);
      await subscribedPjs(cc);
      deepEq(memberIds(cc), ['ka', 'kb', 'kc'], 'members seen on node 2');
      for (const n of [0, 2]) await until(() => usersOn(n, name), same(['ka', 'kb', 'kc']), PROPAGATION, `users on node ${n} before the kill`);
      const killedAt = Date.now();
      await cl.stopNode(1, 'SIGKILL');
      b.disconnect(); // no reconnect to the restarted node: kb must stay gone
      const limit = 2000 + PROPAGATION;
      await fa.wait((f) => f === '-kb', limit, `member_removed(kb) at node 0 within ${limit} ms of the kill`);
      await fc.wait((f) => f === '-kb', Math.max(100, limit - (Date.now() - killedAt)), `member_removed(kb) at node 2 within ${limit} ms of the kill`);
      for (const n of [0, 2]) await until(() => usersOn(n, name), same(['ka', 'kc']), PROPAGATION, `users on node ${n} after the kill`);
      await cl.startNode(1);
      await settle(1, name, ['ka', 'kc']);
      const d = pjs(t, 1, 'kd', 'KD');
      const cd = d.subscribe(name);
      await subscribedPjs(cd);
      deepEq(memberIds(cd), ['ka', 'kc', 'kd'], 'members seen by a new client on the restarted node 1');
      await fa.wait((f) => f === '+kd', PROPAGATION, 'member_added(kd) at node 0');
      await fc.wait((f) => f === '+kd', PROPAGATION, 'member_added(kd) at node 2');
      await sleep(QUIET);
      deepEq(fa.items, ['+kb', '+kc', '-kb', '+kd'], 'every member frame at node 0');
      deepEq(fc.items, ['-kb', '+kd'], 'every member frame at node 2');
    }, 25000);
  } finally {
    await cl.stop();
    if (cl.crashes.length) {
      const { results } = summary();
      console.log(`FAIL suite: herald cluster node(s) exited unexpectedly: ${JSON.stringify(cl.crashes)}; see artifacts/herald-cluster-*.log`);
      results.push({ ok: false });
    }
  }
}
