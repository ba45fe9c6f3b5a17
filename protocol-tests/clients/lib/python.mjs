// Runs one call of the official Python server SDK (py/sdk_op.py in the venv) against a port.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { assert, eq } from './harness.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const PY = process.env.HERALD_PYTHON || path.join(here, '..', '.venv', 'bin', 'python');
const SCRIPT = path.join(here, '..', 'py', 'sdk_op.py');

// Resolves with {ok, status, result} or {ok: false, status, error}.
export function py(port, app, op, args = []) {
  const req = { port, app_id: app.id, key: app.key, secret: app.secret, master_key: app.masterKey, op, args };
  return new Promise((resolve, reject) => {
    execFile(PY, [SCRIPT, JSON.stringify(req)], { timeout: 6000 }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`python failed: ${err.message} ${stderr}`));
      try { resolve(JSON.parse(stdout.trim().split('\n').pop())); } catch (e) { reject(new Error(`bad python output: ${stdout} ${stderr}`)); }
    });
  });
}

// The parsed body of a successful (200) call; throws otherwise.
export const pyOk = (r) => { assert(r.ok, `python SDK error: ${r.error}`); eq(r.status, 200, 'HTTP status'); return r.result; };
