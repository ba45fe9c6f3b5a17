// A private redis-server (Debian's binary) on a free 127.0.0.1 port, and N herald nodes sharing
// it through `[scaling]`. A node is ready when GET /up is 200 and its log says "cluster link up".
// Everything is torn down by stop(), and killed on process exit / SIGINT / SIGTERM as a last resort.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Herald, ARTIFACTS, freePort } from './herald.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const LINK_UP = 'cluster link up';

// Children still running when the process goes away are killed (SIGKILL, synchronous).
const live = new Set();
let hooked = false;
function track(proc) {
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  if (hooked) return;
  hooked = true;
  process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function tail(file, from = 0, lines = 8) {
  try {
    const text = fs.readFileSync(file).subarray(from).toString();
    return text.trim().split('\n').slice(-lines).join(' | ') || '(empty)';
  } catch { return '(no log)'; }
}

// One PING on a fresh TCP connection; true when the answer is +PONG.
function redisPing(port, ms = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok) => { clearTimeout(timer); s.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), ms);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    s.on('error', () => done(false));
  });
}

export class Redis {
  constructor(name = 'redis') {
    this.bin = process.env.REDIS_SERVER_BIN || 'redis-server';
    this.logPath = path.join(ARTIFACTS, `${name}.log`);
    this.proc = null; this.port = null; this.exitInfo = null;
    fs.rmSync(this.logPath, { force: true }); // one log per run; a restart appends
  }

  url(db = 0) { return `redis://127.0.0.1:${this.port}/${db}`; }

  // port: to start again on the port it had (a restart; it comes back empty).
  async start(port) {
    this.port = port || await freePort();
    this.exitInfo = null;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-'));
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no', '--logfile', ''];
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `===== ${new Date().toISOString()} ${this.bin} ${args.map((a) => (a === '' ? '""' : a)).join(' ')} =====\n`);
    this.proc = spawn(this.bin, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    track(this.proc);
    this.exited = new Promise((res) => {
      this.proc.on('error', (e) => { this.exitInfo = { error: e.message }; res(this.exitInfo); });
      this.proc.on('exit', (code, signal) => { this.exitInfo = { code, signal }; res(this.exitInfo); });
    });
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (this.exitInfo) throw new Error(`${this.bin} exited at start (${JSON.stringify(this.exitInfo)}): ${tail(this.logPath)}`);
      if (await redisPing(this.port)) return this;
      await sleep(50);
    }
    throw new Error(`${this.bin} did not answer PING on ${this.port} within 10 s: ${tail(this.logPath)}`);
  }

  async stop() {
    if (this.proc && !this.exitInfo) {
      this.proc.kill('SIGTERM');
      const r = await Promise.race([this.exited, sleep(5000).then(() => null)]);
      if (!r) { this.proc.kill('SIGKILL'); await this.exited; }
    }
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    return this.exitInfo;
  }
}

// n herald nodes, one Redis. apps: the [[apps]] of every node (identical on all nodes).
// Self-tests of the checks themselves:
//   single: one plain herald (no Redis, no [scaling]) stands for all n nodes, so every check that
//     does not stop a node must pass (CHECK_CLUSTER_SINGLE=1);
//   unlinked: n plain heralds sharing nothing, ready on /up alone, so every check must fail
//     (CHECK_SABOTAGE=cluster).
export class Cluster {
  constructor(bin, n, { apps, name = 'cluster', scaling = {}, single = false, unlinked = false }) {
    this.single = single; this.unlinked = unlinked;
    this.redis = new Redis(`redis-${name}`);
    this.prefix = `herald-clients-${process.pid}-${crypto.randomBytes(3).toString('hex')}:`;
    this.scaling = { heartbeat_interval: 0.5, node_timeout: 2.0, ...scaling };
    this.nodes = Array.from({ length: single ? 1 : n }, (_, i) => new Herald(bin, `${name}-${i}`, { server: {}, apps, tables: {} }));
    this.expectedExit = new Set(); // nodes stopped on purpose
    this.crashes = [];             // unexpected exits seen by heal()
    this.started = false;
  }

  port(i) { return this.nodes[this.single ? 0 : i].port; }

  async start() {
    if (this.single) {
      await this.nodes[0].start();
      track(this.nodes[0].proc);
      this.started = true;
      return this;
    }
    if (!this.unlinked) await this.redis.start();
    for (const node of this.nodes) {
      if (this.unlinked) continue;
      node.config.tables.scaling = { enabled: true, url: this.redis.url(0), prefix: this.prefix, ...this.scaling };
    }
    await Promise.all(this.nodes.map((_, i) => this.startNode(i)));
    this.started = true;
    return this;
  }

  // Starts node i (again, on its previous port if it had one) and waits until it is linked.
  async startNode(i, ms = 15000) {
    const node = this.nodes[i];
    const from = fs.existsSync(node.logPath) ? fs.statSync(node.logPath).size : 0;
    node.logFrom = from;
    node.reset();
    this.expectedExit.delete(i);
    await node.start(node.port || undefined);
    track(node.proc);
    const deadline = Date.now() + ms;
    let up = null, linked = false;
    while (Date.now() < deadline) {
      if (node.exitInfo) throw new Error(`node ${i} exited (${JSON.stringify(node.exitInfo)}): ${tail(node.logPath, from)}`);
      try {
        const r = await fetch(`http://127.0.0.1:${node.port}/up`, { signal: AbortSignal.timeout(1000) });
        up = r.status; await r.text();
      } catch (e) { up = `error ${e.message}`; }
      linked = fs.readFileSync(node.logPath).subarray(from).toString().includes(LINK_UP);
      if (up === 200 && (linked || this.unlinked)) return node;
      await sleep(100);
    }
    throw new Error(`node ${i} (port ${node.port}) not ready within ${ms} ms: GET /up ${up}, "${LINK_UP}" ${linked ? '' : 'not '}in its log; log tail: ${tail(node.logPath, from)}`);
  }

  // Whether node i logged "cluster link up" since it was last started.
  linked(i) {
    const node = this.nodes[this.single ? 0 : i];
    try { return fs.readFileSync(node.logPath).subarray(node.logFrom || 0).toString().includes(LINK_UP); } catch { return false; }
  }

  // Stops node i on purpose: 'SIGTERM' (graceful, waits) or 'SIGKILL'.
  async stopNode(i, signal = 'SIGTERM') {
    if (this.single) throw new Error('stopping a node means nothing with CHECK_CLUSTER_SINGLE');
    const node = this.nodes[i];
    this.expectedExit.add(i);
    if (signal === 'SIGTERM') return node.stop();
    if (node.proc && !node.exitInfo) node.proc.kill(signal);
    return node.exited;
  }

  // Restarts nodes that exited without being asked to (a crash); returns the crashes seen now.
  async heal() {
    const seen = [];
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[i];
      if (node.exitInfo && !this.expectedExit.has(i)) {
        seen.push({ node: i, ...node.exitInfo });
        if (this.single) { node.reset(); await node.start(node.port); track(node.proc); continue; }
        await this.startNode(i);
      }
    }
    this.crashes.push(...seen);
    return seen;
  }

  async stop() {
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[i];
      if (node.exitInfo && !this.expectedExit.has(i)) this.crashes.push({ node: i, ...node.exitInfo });
      this.expectedExit.add(i);
    }
    for (const n of this.nodes) { try { if (n.proc && !n.exitInfo) n.proc.kill('SIGCONT'); } catch { /* gone */ } }
    await Promise.all(this.nodes.map((n) => n.stop().catch(() => {})));
    await this.redis.stop();
  }
}
