// Laravel Echo 2 (unmodified) with broadcaster 'reverb' and 'pusher', driving pusher-js.
import crypto from 'node:crypto';
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { echoClient, echoConnected, once, collector } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

const subscribed = (ch, ms = 4000) => (ch.subscription && ch.subscription.subscribed ? Promise.resolve()
  : once((cb) => ch.subscribed(cb), ms, 'Echo subscribed()'));

export default async function (env) {
  const { port, apps } = env;
  const M = apps.main;
  const signer = sdk(port, M);
  const user = (id, name) => ({ presence: { user_id: id, user_info: { id, name } }, user: { id: String(id), name } });

  for (const b of ['reverb', 'pusher']) {
    const E = (t, opts = {}) => echoClient(t, port, M.key, b, { signer, ...opts });
    const tag = `[${b}]`;

    await check(R.echo, `${tag} connects: connectionStatus "connected", socketId()`, async (t) => {
      const e = E(t);
      await echoConnected(e);
      eq(e.connectionStatus(), 'connected', 'connectionStatus');
      assert(/^\d+\.\d+$/.test(e.socketId()), `socketId ${e.socketId()}`);
      if (b === 'reverb') eq(e.connector.pusher.config.cluster, '', 'reverb connector forces cluster ""');
    });
    await check(R.echo, `${tag} public channel listen('OrderShipped') gets App\\Events\\OrderShipped`, async (t) => {
      const e = E(t);
      const name = uniq('orders');
      const ch = e.channel(name);
      await subscribed(ch);
      const got = once((cb) => ch.listen('OrderShipped', cb));
      const got2 = once((cb) => ch.listen('.status.updated', cb));
      await viaSdk(signer.trigger(name, 'App\\Events\\OrderShipped', { order: { id: 12 } }));
      await viaSdk(signer.trigger(name, 'status.updated', { s: 'ok' }));
      deepEq(await got, { order: { id: 12 } }, 'namespaced event');
      deepEq(await got2, { s: 'ok' }, 'dot-prefixed custom event name');
    });
    await check(R.echo, `${tag} Echo.private() with authorizer receives events`, async (t) => {
      const e = E(t);
      const name = uniq('orders');
      const ch = e.private(name);
      await subscribed(ch);
      const got = once((cb) => ch.listen('.paid', cb));
      await viaSdk(signer.trigger(`private-${name}`, 'paid', { amount: 5 }));
      deepEq(await got, { amount: 5 }, 'data');
    });
    await check(R.echo, `${tag} private + presence with channelAuthorization.customHandler instead of authorizer`, async (t) => {
      const e = E(t, { authStyle: 'customHandler', ...user(4, 'Dee') });
      const name = uniq('orders');
      const ch = e.private(name);
      await subscribed(ch);
      const here = await once((cb) => e.join(uniq('room')).here(cb), 4000, 'here()');
      deepEq(here, [{ id: 4, name: 'Dee' }], 'here');
      const got = once((cb) => ch.listen('.paid', cb));
      eq((await viaSdk(signer.trigger(`private-${name}`, 'paid', { amount: 6 }))).status, 200, 'status');
      deepEq(await got, { amount: 6 }, 'data');
    });
    await check(R.echo, `${tag} .notification() on private-App.Models.User.1 (BroadcastNotificationCreated)`, async (t) => {
      const e = E(t);
      const ch = e.private('App.Models.User.1');
      await subscribed(ch);
      const got = once((cb) => ch.notification(cb));
      const payload = { title: 'Invoice paid', amount: '99.00', id: crypto.randomUUID(), type: 'App\\Notifications\\InvoicePaid' };
      const r = await viaSdk(signer.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', payload));
      eq(r.status, 200, 'status');
      deepEq(await got, payload, 'notification payload');
    });
    await check(R.echo, `${tag} join(): here / joining / leaving, same user in two tabs`, async (t) => {
      const room = uniq('room');
      const a = E(t, user(1, 'Ann'));
      const joined = collector(), left = collector();
      const hereA = once((cb) => a.join(room).here(cb).joining(joined).leaving(left), 4000, 'here() for Ann');
      deepEq(await hereA, [{ id: 1, name: 'Ann' }], 'here for first member');
      const b1 = E(t, user(2, 'Bob'));
      const hereB = await once((cb) => b1.join(room).here(cb), 4000, 'here() for Bob');
      eq(hereB.map((u) => u.id).sort(), [1, 2], 'here for Bob');
      deepEq(await joined.wait(() => true, 3000, 'joining(Bob)'), { id: 2, name: 'Bob' }, 'joining');
      const b2 = E(t, user(2, 'Bob'));
      const hereB2 = await once((cb) => b2.join(room).here(cb), 4000, 'here() for Bob tab 2');
      eq(hereB2.length, 2, 'here for the second tab lists 2 distinct users');
      await sleep(400);
      eq(joined.items.length, 1, 'joining must not fire for the second tab');
      b1.leave(room);
      await sleep(500);
      eq(left.items.length, 0, 'leaving must not fire while a tab remains');
      b2.disconnect();
      deepEq(await left.wait(() => true, 3000, 'leaving(Bob)'), { id: 2, name: 'Bob' }, 'leaving');
    }, 9000);
    await check(R.echo, `${tag} whisper() / listenForWhisper() on a private channel`, async (t) => {
      const name = uniq('chat');
      const a = E(t), c = E(t);
      const ca = a.private(name), cc = c.private(name);
      await subscribed(ca); await subscribed(cc);
      const mine = collector(); ca.listenForWhisper('typing', mine);
      const got = once((cb) => cc.listenForWhisper('typing', cb));
      ca.whisper('typing', { name: 'Ann', typing: true });
      deepEq(await got, { name: 'Ann', typing: true }, 'whisper');
      await sleep(300);
      eq(mine.items.length, 0, 'whisper echoed to sender');
    });
    await check(R.echo, `${tag} whisper on a presence channel`, async (t) => {
      const room = uniq('room');
      const a = E(t, user(1, 'Ann')), c = E(t, user(3, 'Cy'));
      const pa = a.join(room), pc = c.join(room);
      const ha = once((cb) => pa.here(cb)), hc = once((cb) => pc.here(cb));
      await ha; await hc;
      const got = once((cb) => pc.listenForWhisper('wave', cb));
      pa.whisper('wave', { from: 1 });
      deepEq(await got, { from: 1 }, 'whisper');
    });
    await check(R.echo, `${tag} .error() fires on a bad signature`, async (t) => {
      const e = echoClient(t, port, M.key, b, { signer: sdk(port, { ...M, secret: 'not-the-secret' }) });
      const err = await once((cb) => e.private(uniq('guarded')).error(cb), 4000, 'error()');
      eq(err.type, 'AuthError', 'type'); eq(err.status, 401, 'status');
      await sleep(200);
      eq(e.connectionStatus(), 'connected', 'connection stays up after the auth error');
    });
    await check(R.echo, `${tag} join() over max_presence_members: .error() gets LimitReached`, async (t) => {
      const room = uniq('full');
      const S = apps.small, ssigner = sdk(port, S);
      const mk = (id) => echoClient(t, port, S.key, b, { signer: ssigner, ...user(id, `U${id}`) });
      const h1 = once((cb) => mk(1).join(room).here(cb), 4000, 'here 1'), h2 = once((cb) => mk(2).join(room).here(cb), 4000, 'here 2');
      await h1; await h2;
      const err = await once((cb) => mk(3).join(room).error(cb), 4000, 'error() for the third member');
      eq(err.type, 'LimitReached', 'type'); eq(err.status, 4100, 'status');
    });
    await check(R.echo, `${tag} toOthers(): trigger with the sender's socket_id skips the sender`, async (t) => {
      const name = uniq('orders');
      const sender = E(t), other = E(t);
      const cs = sender.private(name), co = other.private(name);
      await subscribed(cs); await subscribed(co);
      const mine = collector(); cs.listen('OrderShipped', mine);
      const got = once((cb) => co.listen('OrderShipped', cb));
      // What Laravel does for broadcast(...)->toOthers(): X-Socket-ID → socket_id.
      await viaSdk(signer.trigger(`private-${name}`, 'App\\Events\\OrderShipped', { id: 3 }, { socket_id: sender.socketId() }));
      deepEq(await got, { id: 3 }, 'other receives');
      await sleep(400);
      eq(mine.items.length, 0, 'sender received its own broadcast');
    });
    await check(R.echo, `${tag} encryptedPrivate() decrypts an SDK-encrypted event`, async (t) => {
      const name = uniq('vault');
      const e = E(t);
      const ch = e.encryptedPrivate(name);
      await subscribed(ch);
      const got = once((cb) => ch.listen('.opened', cb));
      await viaSdk(signer.trigger(`private-encrypted-${name}`, 'opened', { code: 'xyzzy' }));
      deepEq(await got, { code: 'xyzzy' }, 'decrypted');
    });
    await check(R.echo, `${tag} connector.signin() + sendToUser`, async (t) => {
      const uid = uniq('u');
      const e = E(t, { user: { id: uid } });
      await echoConnected(e);
      const p = e.connector.pusher;
      const subOk = once((cb) => p.connection.bind('message', (m) => { if (m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${uid}`) cb(); }), 4000, 'server-to-user subscription');
      e.connector.signin();
      await subOk;
      const got = once((cb) => p.user.bind('App\\Events\\Ping', cb));
      await viaSdk(signer.sendToUser(uid, 'App\\Events\\Ping', { n: 1 }));
      deepEq(await got, { n: 1 }, 'data');
    });
  }
}
