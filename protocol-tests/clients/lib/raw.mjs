// Raw WebSocket client (npm ws) that records every frame, for exact-bytes assertions.
import WebSocket from 'ws';

export class Raw {
  constructor(url, opts = {}) {
    this.url = url;
    this.queue = [];     // unconsumed parsed frames
    this.all = [];       // every frame, parsed (or {__raw})
    this.texts = [];     // every frame as text
    this.waiters = [];
    this.pings = 0;      // WS ping control frames received
    this.pongs = 0;      // WS pong control frames received
    const wsOpts = { perMessageDeflate: false, handshakeTimeout: 3000 };
    if (opts.origin) wsOpts.origin = opts.origin;
    if (opts.autoPong === false) wsOpts.autoPong = false;
    this.ws = new WebSocket(url, wsOpts);
    this.ws.on('message', (data, isBinary) => {
      const s = data.toString();
      this.texts.push(s);
      let j;
      try { j = JSON.parse(s); } catch { j = { __raw: s }; }
      if (isBinary) j = { __binary: s };
      this.all.push(j);
      this.queue.push(j);
      this._pump();
    });
    this.ws.on('ping', () => { this.pings++; this._pump(); });
    this.ws.on('pong', () => { this.pongs++; this._pump(); });
    this.closeInfo = null;
    this.closed = new Promise((res) => this.ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      res(this.closeInfo);
      this._pump();
    }));
    this.opened = new Promise((res, rej) => {
      this.ws.on('open', res);
      this.ws.on('error', (e) => rej(e));
    });
    this.opened.catch(() => {});
  }

  _pump() {
    for (const w of [...this.waiters]) {
      const idx = this.queue.findIndex(w.pred);
      if (idx >= 0) {
        const [f] = this.queue.splice(idx, 1);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(f);
      } else if (this.closeInfo && !w.allowClosed) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${w.what}; frames: ${this.dump()}`));
      }
    }
  }

  dump(n = 6) { return this.texts.slice(-n).join(' | ') || '(none)'; }

  // Wait for (and consume) the first frame matching pred.
  next(pred = () => true, ms = 3000, what = 'a frame') {
    if (typeof pred === 'string') { const ev = pred; what = `event ${ev}`; pred = (f) => f.event === ev; }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, what };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for ${what}; frames so far: ${this.dump()}`));
      }, ms);
      this.waiters.push(w);
      this._pump();
    });
  }

  // Assert no frame matching pred arrives within ms.
  async none(pred = () => true, ms = 500, what = 'frame') {
    if (typeof pred === 'string') { const ev = pred; pred = (f) => f.event === ev; }
    const start = this.all.length;
    await new Promise((r) => setTimeout(r, ms));
    const got = this.all.slice(start).concat(this.queue).filter(pred);
    if (got.length) throw new Error(`unexpected ${what}: ${JSON.stringify(got[0])}`);
  }

  async established(ms = 3000) {
    await this.opened;
    const f = await this.next('pusher:connection_established', ms);
    this.handshake = f;
    this.socketId = JSON.parse(f.data).socket_id;
    return f;
  }

  send(o) { this.ws.send(typeof o === 'string' ? o : JSON.stringify(o)); }

  subscribe(channel, auth, channel_data) {
    const data = { channel };
    if (auth !== undefined) data.auth = auth;
    if (channel_data !== undefined) data.channel_data = channel_data;
    this.send({ event: 'pusher:subscribe', data });
  }

  async subscribeOk(channel, auth, channel_data, ms = 3000) {
    this.subscribe(channel, auth, channel_data);
    return this.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel, ms, `subscription_succeeded on ${channel}`);
  }

  async waitClose(ms = 3000) {
    let timer;
    const r = await Promise.race([this.closed, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`no close within ${ms} ms; frames: ${this.dump()}`)), ms); })]);
    clearTimeout(timer);
    return r;
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  // Round-trip a pusher:ping to prove the connection is still usable.
  async alive(ms = 2000) {
    this.send({ event: 'pusher:ping', data: {} });
    await this.next('pusher:pong', ms);
  }

  close() {
    try { if (this.ws.readyState <= 1) this.ws.terminate(); } catch { /* ignore */ }
  }
}

export const QUERY = 'protocol=7&client=js&version=8.6.0&flash=false';

export function wsUrl(port, key, { path = '', query = QUERY } = {}) {
  return `ws://127.0.0.1:${port}${path}/app/${key}${query === null ? '' : '?' + query}`;
}

// Open, wait for connection_established, register cleanup on t.
export async function connect(t, port, key, opts = {}) {
  const c = new Raw(wsUrl(port, key, opts), opts);
  if (t) t.defer(() => c.close());
  await c.established(opts.ms || 3000);
  return c;
}

export function open(t, port, key, opts = {}) {
  const c = new Raw(wsUrl(port, key, opts), opts);
  if (t) t.defer(() => c.close());
  return c;
}
