// A Laravel app's .env (REVERB_* only, no TOML) is enough to run herald for Echo.
import fs from 'node:fs';
import path from 'node:path';
import { check, assert, eq, deepEq } from '../lib/harness.mjs';
import { Herald, freePort } from '../lib/herald.mjs';
import { sdk, viaSdk } from '../lib/http.mjs';
import { echoClient, echoConnected, once } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const A = { id: '500001', key: 'laravel-env-key', secret: 'laravel-env-secret' };
  const port = await freePort();
  const envFile = path.join(env.ARTIFACTS, 'laravel.env');
  fs.writeFileSync(envFile, [
    '# the Reverb part of a Laravel .env',
    'BROADCAST_CONNECTION=reverb',
    `REVERB_APP_ID=${A.id}`,
    `REVERB_APP_KEY=${A.key}`,
    `REVERB_APP_SECRET="${A.secret}"`,
    'REVERB_HOST="localhost"',
    'REVERB_PORT=8080',
    'REVERB_SCHEME=http',
    'REVERB_SERVER_HOST=127.0.0.1',
    `REVERB_SERVER_PORT=${port}`,
    '',
  ].join('\n'));
  const h = new Herald(env.bin, 'envfile', null, ['--env-file', envFile]);
  h.port = port;
  let up = false;
  try {
    await check(R.echo, '[.env] herald start --env-file <Laravel .env> serves REVERB_SERVER_PORT', async () => {
      await h.start(port);
      up = true;
    }, 25000);
    await check(R.echo, '[.env] Echo (reverb) with REVERB_APP_KEY gets a private event signed with REVERB_APP_SECRET', async (t) => {
      assert(up, 'server not started');
      const signer = sdk(port, A);
      const e = echoClient(t, port, A.key, 'reverb', { signer });
      await echoConnected(e);
      const name = uniq('env');
      const ch = e.private(name);
      await once((cb) => ch.subscribed(cb), 4000, 'subscribed');
      const got = once((cb) => ch.listen('.hello', cb));
      eq((await viaSdk(signer.trigger(`private-${name}`, 'hello', { from: '.env' }))).status, 200, 'status');
      deepEq(await got, { from: '.env' }, 'data');
    });
  } finally {
    await h.stop();
  }
}
