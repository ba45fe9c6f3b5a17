// Webhooks: a herald with an app whose webhooks go to a Node http receiver in this process;
// pusher-js generates the transitions and client events; every request is validated by the
// official Node SDK (`pusher.webhook(req).isValid()`) and the Python SDK (`validate_webhook`).
import http from 'node:http';
import { check, assert, eq, deepEq, sleep } from '../lib/harness.mjs';
import { Herald } from '../lib/herald.mjs';
import { sdk } from '../lib/http.mjs';
import { py } from '../lib/python.mjs';
import { pusherClient, waitState, once } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

const ALL = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'];

// A receiver recording every request (headers as Node parses them, raw body) and answering 200.
function receiver() {
  const got = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    let rawBody = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { rawBody += c; });
    req.on('end', () => {
      got.push({ headers: req.headers, rawBody, rawHeaders: req.rawHeaders });
      res.end('ok');
      for (const w of waiters.splice(0)) w();
    });
  });
  const events = () => got.flatMap((r) => JSON.parse(r.rawBody).events);
  // Resolves once `pred(events())` holds, or rejects after `ms`.
  const waitFor = (pred, ms, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms; got ${JSON.stringify(events())}`)), ms);
    const test = () => { if (pred(events())) { clearTimeout(timer); resolve(events()); } else waiters.push(test); };
    test();
  });
  return { server, got, events, waitFor };
}

export default async function (env) {
  const rx = receiver();
  await new Promise((r) => rx.server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${rx.server.address().port}/pusher/webhook`;
  const A = {
    id: '700001', key: 'wh-key', secret: 'wh-secret', accept_client_events_from: 'all',
    webhook_vacated_delay_ms: 400,
    webhooks: [{ url, event_types: ALL }],
  };
  const serverApp = (process.env.CHECK_SABOTAGE || '').split(',').includes('secret') ? { ...A, secret: 'sabotaged-secret' } : A;
  const h = new Herald(env.bin, 'webhooks', { apps: [serverApp] });
  let signer;
  // Only this check's events (channel names are unique per check).
  const on = (ch) => (evs) => evs.filter((e) => e.channel === ch);
  const connected = async (t, opts = {}) => { const p = pusherClient(t, h.port, A.key, { signer, ...opts }); await waitState(p, 'connected'); return p; };
  const subscribed = (p, name) => { const c = p.subscribe(name); return once((cb) => c.bind('pusher:subscription_succeeded', cb), 4000, `${name} subscribed`).then(() => c); };
  try {
    await check(R.wh, 'setup: herald with a webhook target, a Node http receiver', async () => {
      await h.start();
      signer = sdk(h.port, A);
    }, 25000);

    await check(R.wh, 'pusher-js subscribe: channel_occupied, accepted by the Node SDK validator', async (t) => {
      const p = await connected(t);
      const ch = uniq('wh-pub');
      await subscribed(p, ch);
      await rx.waitFor((e) => on(ch)(e).length >= 1, 3000, 'occupied');
      const req = rx.got.find((r) => r.rawBody.includes(`"${ch}"`));
      eq(req.headers['content-type'], 'application/json', 'content-type');
      eq(req.headers['x-pusher-key'], A.key, 'x-pusher-key');
      assert(req.rawHeaders.includes('X-Pusher-Signature'), `header casing: ${req.rawHeaders}`);
      const wh = signer.webhook(req);
      assert(wh.isValid(), 'Node SDK isValid()');
      deepEq(wh.getEvents(), [{ name: 'channel_occupied', channel: ch }], 'events');
      assert(Math.abs(wh.getTime().getTime() - Date.now()) < 10000, 'time_ms is now');
    }, 8000);

    await check(R.wh, 'presence join/leave with pusher-js: member_added x2, member_removed and channel_vacated after the delay', async (t) => {
      const ch = uniq('presence-wh');
      const p1 = await connected(null, { presence: { user_id: 'u1' } });
      const p2 = await connected(t, { presence: { user_id: 'u2', user_info: { n: 2 } } });
      await subscribed(p1, ch); await subscribed(p2, ch);
      await rx.waitFor((e) => on(ch)(e).length >= 3, 3000, 'joins');
      const left = Date.now();
      p1.disconnect();
      await sleep(200);
      eq(on(ch)(rx.events()).length, 3, 'nothing before the delay');
      await rx.waitFor((e) => on(ch)(e).length >= 4, 3000, 'member_removed');
      assert(Date.now() - left >= 380, 'member_removed waited the delay');
      p2.disconnect();
      await rx.waitFor((e) => on(ch)(e).length >= 6, 3000, 'vacated');
      await sleep(500);
      deepEq(on(ch)(rx.events()), [
        { name: 'channel_occupied', channel: ch },
        { name: 'member_added', channel: ch, user_id: 'u1' },
        { name: 'member_added', channel: ch, user_id: 'u2' },
        { name: 'member_removed', channel: ch, user_id: 'u1' },
        { name: 'member_removed', channel: ch, user_id: 'u2' },
        { name: 'channel_vacated', channel: ch },
      ], 'events, exactly once each');
    }, 10000);

    await check(R.wh, 'pusher-js client event: client_event with socket_id, string data and user_id on presence', async (t) => {
      const ch = uniq('presence-whc');
      const a = await connected(t, { presence: { user_id: 'ua' } });
      const b = await connected(t, { presence: { user_id: 'ub' } });
      const ca = await subscribed(a, ch); const cb_ = await subscribed(b, ch);
      const got = once((cb) => cb_.bind('client-note', cb));
      assert(ca.trigger('client-note', { text: 'hi' }), 'trigger returned false');
      await got;
      const evs = await rx.waitFor((e) => on(ch)(e).some((x) => x.name === 'client_event'), 3000, 'client_event');
      deepEq(on(ch)(evs).find((x) => x.name === 'client_event'),
        { name: 'client_event', channel: ch, event: 'client-note', data: '{"text":"hi"}', socket_id: a.connection.socket_id, user_id: 'ua' }, 'event');
    }, 8000);

    await check(R.wh, 'pusher-js cache channel with nothing cached: cache_miss', async (t) => {
      const p = await connected(t);
      const ch = uniq('cache-wh');
      await subscribed(p, ch);
      await rx.waitFor((e) => on(ch)(e).some((x) => x.name === 'cache_miss'), 3000, 'cache_miss');
    }, 8000);

    await check(R.wh, 'page reload (pusher-js reconnects within the delay): no webhook at all', async (t) => {
      const ch = uniq('presence-reload');
      const p = await connected(null, { presence: { user_id: 'reloader' } });
      await subscribed(p, ch);
      await rx.waitFor((e) => on(ch)(e).length >= 2, 3000, 'join');
      p.disconnect();
      const again = await connected(t, { presence: { user_id: 'reloader' } });
      await subscribed(again, ch);
      await sleep(900);
      eq(on(ch)(rx.events()).length, 2, `only the first occupied+added: ${JSON.stringify(on(ch)(rx.events()))}`);
    }, 8000);

    await check(R.wh, 'every request so far is valid for the Node SDK and the Python SDK validate_webhook', async () => {
      assert(rx.got.length >= 5, `requests: ${rx.got.length}`);
      for (const req of rx.got) {
        assert(signer.webhook(req).isValid(), `Node SDK rejects ${req.rawBody}`);
        const r = await py(h.port, A, 'validate_webhook', [req.headers['x-pusher-key'], req.headers['x-pusher-signature'], req.rawBody]);
        assert(r.ok, `python: ${r.error}`);
        deepEq(r.result, JSON.parse(req.rawBody), 'python returns the body');
      }
      const first = rx.got[0];
      const tampered = { ...first, rawBody: first.rawBody.replace('channel_', 'channel-') };
      assert(!signer.webhook(tampered).isValid(), 'a tampered body is rejected');
      const r = await py(h.port, A, 'validate_webhook', [A.key, first.headers['x-pusher-signature'], tampered.rawBody]);
      eq(r.result, null, 'python rejects a tampered body');
    }, 20000);
  } finally {
    await h.stop();
    rx.server.close();
  }
}
