// TLS on the main listener ([server.tls]) with real clients: a CA and a certificate generated for
// this run with the openssl CLI; pusher-js (forceTLS) and the Node SDK (useTLS) run in a child
// node that trusts the CA through NODE_EXTRA_CA_CERTS (lib/tls-client.mjs).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, assert, eq } from '../lib/harness.mjs';
import { Herald, httpsStatus } from '../lib/herald.mjs';
import { R, uniq } from '../lib/rows.mjs';

// A CA and a leaf for localhost / 127.0.0.1 signed by it, in `dir`.
export function makeCerts(dir) {
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Herald test CA');
  ssl('req', ...ec, '-keyout', 'key.pem', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '2', '-extfile', 'leaf.ext');
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

function runChild(env, vars) {
  return new Promise((resolve) => {
    const here = path.dirname(new URL(import.meta.url).pathname);
    const child = spawn(process.execPath, [path.join(here, '..', 'lib', 'tls-client.mjs')], {
      env: { ...process.env, ...vars }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

export default async function (env) {
  const A = { id: '500001', key: 'tls-key', secret: 'tls-secret' };
  const dir = fs.mkdtempSync(path.join(env.ARTIFACTS, 'tls-'));
  let files, h, child;
  try {
    await check(R.tls, 'setup: openssl makes a CA and a certificate; herald starts with [server.tls]', async () => {
      files = makeCerts(dir);
      h = new Herald(env.bin, 'tls', { server: {}, apps: [A], tables: { 'server.tls': { cert: files.cert, key: files.key } } }, [], { ca: fs.readFileSync(files.ca) });
      await h.start();
      eq(await httpsStatus(h.port, '/up', fs.readFileSync(files.ca)), 200, 'GET /up over https');
    }, 25000);

    await check(R.tls, 'plain http:// on the TLS port is not served', async () => {
      assert(h, 'no setup');
      let status = 0;
      try { status = (await fetch(`http://127.0.0.1:${h.port}/up`, { signal: AbortSignal.timeout(2000) })).status; } catch { /* expected */ }
      eq(status, 0, 'plain HTTP status');
    }, 5000);

    const steps = [
      'pusher-js forceTLS connects over wss',
      'pusher-js subscribes over wss',
      'Node SDK useTLS triggers over https and pusher-js receives it',
      'Node SDK useTLS queries the channel over https',
    ];
    for (const name of steps) {
      await check(R.tls, name, async () => {
        assert(h, 'no setup');
        child ??= await runChild(env, { PORT: String(h.port), APP: JSON.stringify(A), CHANNEL: uniq('tls-room'), NODE_EXTRA_CA_CERTS: files.ca });
        const line = child.out.split('\n').find((l) => l.startsWith(`STEP ${name} `));
        assert(line, `step did not run (exit ${child.code}): ${child.out.slice(-300)} ${child.err.slice(-300)}`);
        assert(line === `STEP ${name} ok`, line);
      }, 35000);
    }
  } finally {
    if (h) await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
