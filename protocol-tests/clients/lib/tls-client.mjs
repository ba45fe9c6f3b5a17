// Child process of tests/tls.mjs, started with NODE_EXTRA_CA_CERTS=<test CA>, so the unmodified
// clients trust the test certificate the way a deployment trusts a real one: pusher-js with
// forceTLS (wss://) and the Node SDK with useTLS (https://), nothing disabled.
// Env: PORT, APP (JSON {id,key,secret}), CHANNEL. Prints one line per step:
//   STEP <name> ok | STEP <name> fail <reason>
import Pusher from 'pusher';
import PusherJS from 'pusher-js';

PusherJS.logToConsole = false;
const port = Number(process.env.PORT);
const app = JSON.parse(process.env.APP);
const channel = process.env.CHANNEL;

async function step(name, fn, ms = 6000) {
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms`)), ms); })]);
    console.log(`STEP ${name} ok`);
    return true;
  } catch (e) {
    console.log(`STEP ${name} fail ${String(e && e.message || e).replace(/\s+/g, ' ').slice(0, 300)}`);
    return false;
  } finally { clearTimeout(timer); }
}

const p = new PusherJS(app.key, {
  wsHost: 'localhost', wsPort: port, wssPort: port, forceTLS: true,
  enabledTransports: ['ws'], disableStats: true, cluster: 'mt1',
});
const server = new Pusher({
  appId: app.id, key: app.key, secret: app.secret,
  host: 'localhost', port: String(port), useTLS: true, timeout: 4000,
});

let ch;
await step('pusher-js forceTLS connects over wss', () => new Promise((resolve, reject) => {
  p.connection.bind('state_change', ({ current }) => { if (current === 'connected') resolve(); });
  p.connection.bind('error', (e) => reject(new Error(JSON.stringify(e && (e.error || e)).slice(0, 200))));
}));
await step('pusher-js subscribes over wss', () => new Promise((resolve) => {
  ch = p.subscribe(channel);
  ch.bind('pusher:subscription_succeeded', resolve);
}));
await step('Node SDK useTLS triggers over https and pusher-js receives it', async () => {
  const got = new Promise((resolve) => ch.bind('secure-event', resolve));
  const res = await server.trigger(channel, 'secure-event', { over: 'tls' });
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  const data = await got;
  if (JSON.stringify(data) !== JSON.stringify({ over: 'tls' })) throw new Error(`data ${JSON.stringify(data)}`);
});
await step('Node SDK useTLS queries the channel over https', async () => {
  const res = await server.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } });
  const body = await res.json();
  if (res.status !== 200 || body.occupied !== true || body.subscription_count !== 1) throw new Error(`${res.status} ${JSON.stringify(body)}`);
});
p.disconnect();
process.exit(0);
