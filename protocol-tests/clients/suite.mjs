// Herald real-client conformance suite. Usage: HERALD_BIN=/path/to/herald node suite.mjs
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Herald, ARTIFACTS } from './lib/herald.mjs';
import { summary, setBeforeEach } from './lib/harness.mjs';

const bin = process.env.HERALD_BIN;
if (!bin || !fs.existsSync(bin)) { console.error(`HERALD_BIN not set or missing: ${bin}`); process.exit(2); }

const started = Date.now();
// Fresh server logs each run (a restarted server appends to its own log within the run).
for (const f of fs.readdirSync(ARTIFACTS)) if (/^herald-.*\.log$/.test(f)) fs.rmSync(path.join(ARTIFACTS, f), { force: true });
// A promise abandoned by a failed check must not kill the run.
process.on('unhandledRejection', (e) => { if (process.env.CHECK_VERBOSE) console.error('(unhandled rejection)', e && e.message); });
const masterKey = crypto.randomBytes(32).toString('base64');
const appSettings = (a) => Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'masterKey'));

export const apps = {
  main: { id: '100001', key: 'main-key', secret: 'main-secret', masterKey, allowed_origins: ['*'], activity_timeout: 30 },
  small: {
    id: '100002', key: 'small-key', secret: 'small-secret', masterKey,
    max_message_size: 1000, max_presence_members: 2, max_presence_user_bytes: 100, max_event_bytes: 500,
    max_channels_per_trigger: 3, max_batch_size: 2, max_channel_name_length: 50, max_event_name_length: 50,
    client_events_per_second: 3, cache_ttl: 1,
  },
  quota: { id: '100003', key: 'quota-key', secret: 'quota-secret', max_connections: 2 },
  ping: { id: '100004', key: 'ping-key', secret: 'ping-secret', ping_interval: 1, activity_timeout: 7 },
  origins: { id: '100005', key: 'origins-key', secret: 'origins-secret', allowed_origins: ['example.com', '*.allowed.test'] },
  noclient: { id: '100006', key: 'noclient-key', secret: 'noclient-secret', accept_client_events_from: 'none' },
  watch: { id: '100007', key: 'watch-key', secret: 'watch-secret', watchlist_events: true, subscription_count: true },
};

// Self-test of the suite: CHECK_SABOTAGE=secret gives the main app a different secret in the
// server config than the one the clients/SDKs sign with; CHECK_SABOTAGE=ping gives the ping app
// a 30 s ping_interval; =limits gives the small app the default limits; =origins allows any
// origin on the origins app; =cluster gives the cluster nodes no [scaling] (tests/cluster.mjs).
// Each must make the matching checks FAIL (comma-separate several).
const sabotage = (process.env.CHECK_SABOTAGE || '').split(',');
const serverApps = Object.values(apps).map(appSettings).map((a) => {
  if (sabotage.includes('secret') && a.id === apps.main.id) return { ...a, secret: 'sabotaged-secret' };
  if (sabotage.includes('ping') && a.id === apps.ping.id) return { ...a, ping_interval: 30 };
  if (sabotage.includes('limits') && a.id === apps.small.id) return { id: a.id, key: a.key, secret: a.secret };
  if (sabotage.includes('origins') && a.id === apps.origins.id) return { ...a, allowed_origins: ['*'] };
  return a;
});
if (sabotage[0]) console.error(`(CHECK_SABOTAGE=${sabotage.join(',')}: failures expected)`);
const mainServer = new Herald(bin, 'main', { server: { max_request_size: 10000 }, apps: serverApps });
const env = { bin, apps, masterKey, main: mainServer, port: 0, ARTIFACTS };

// Names of tests/*.mjs, with or without the .mjs suffix.
const modules = (process.env.CHECK_MODULES || 'ws,http,sdk-node,sdk-python,pusherjs,watchlist,echo,browser,prefix,envfile,shutdown,webhooks,tls,restart,cluster')
  .split(',').map((m) => m.trim().replace(/\.mjs$/, '')).filter(Boolean);

// If the main server died (a crash), restart it before the next check so one crash does
// not fail every later check; the crash itself is reported as a failing line at the end.
const crashes = [];
setBeforeEach(async () => {
  if (mainServer.exitInfo) {
    crashes.push(mainServer.exitInfo);
    mainServer.reset();
    await mainServer.start(mainServer.port);
  }
});

try {
  await mainServer.start();
  env.port = mainServer.port;
  for (const m of modules) {
    const mod = await import(`./tests/${m}.mjs`);
    await mod.default(env);
  }
} catch (e) {
  console.log(`FAIL suite: setup: ${String(e && e.stack || e).replace(/\s+/g, ' ').slice(0, 500)}`);
  summary().results.push({ ok: false });
} finally {
  setBeforeEach(null);
  if (mainServer.exitInfo) crashes.push(mainServer.exitInfo);
  await mainServer.stop();
}
if (crashes.length) {
  console.log(`FAIL suite: herald (main) exited unexpectedly ${crashes.length} time(s) during the run: ${JSON.stringify(crashes)}; see artifacts/herald-main.log`);
  summary().results.push({ ok: false });
}
const { passed, failed } = summary();
const secs = ((Date.now() - started) / 1000).toFixed(1);
fs.writeFileSync(path.join(ARTIFACTS, 'last-run.txt'), `${passed} passed, ${failed} failed in ${secs} s\n`);
console.error(`(suite took ${secs} s; server logs in ${ARTIFACTS})`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
