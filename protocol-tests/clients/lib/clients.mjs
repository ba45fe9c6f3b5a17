// Factories for the unmodified published clients: pusher-js 8 (node build) and laravel-echo 2.
import PusherJS from 'pusher-js';
import Echo from 'laravel-echo';

PusherJS.logToConsole = false;

export { PusherJS, Echo };

// users: { [socketIdOrChannel]: ... } -- presence data is chosen per client.
// opts.signer: Node SDK instance used to authorise channels / authenticate users.
// opts.presence: {user_id, user_info} for presence channels.
// opts.user: {id, ...} for pusher.signin().
export function pusherOptions(port, key, opts = {}) {
  const o = {
    wsHost: '127.0.0.1', wsPort: port, wssPort: port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true, cluster: opts.cluster ?? 'mt1',
    activityTimeout: opts.activityTimeout, pongTimeout: opts.pongTimeout,
  };
  if (opts.wsPath) o.wsPath = opts.wsPath;
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  if (opts.signer) {
    o.channelAuthorization = {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const data = channelName.startsWith('presence-') ? (opts.presence || { user_id: 'anon' }) : undefined;
          callback(null, opts.signer.authorizeChannel(socketId, channelName, data));
        } catch (e) { callback(e, null); }
      },
    };
    o.userAuthentication = {
      customHandler: ({ socketId }, callback) => {
        try { callback(null, opts.signer.authenticateUser(socketId, opts.user || { id: 'anon' })); } catch (e) { callback(e, null); }
      },
    };
  }
  return o;
}

export function pusherClient(t, port, key, opts = {}) {
  const p = new PusherJS(key, pusherOptions(port, key, opts));
  if (t) t.defer(() => p.disconnect());
  return p;
}

export function waitState(p, state, ms = 4000) {
  return new Promise((resolve, reject) => {
    if (p.connection.state === state) return resolve();
    const timer = setTimeout(() => { p.connection.unbind('state_change', h); reject(new Error(`pusher-js state ${p.connection.state}, wanted ${state} within ${ms} ms`)); }, ms);
    const h = ({ current }) => { if (current === state) { clearTimeout(timer); p.connection.unbind('state_change', h); resolve(); } };
    p.connection.bind('state_change', h);
  });
}

// Echo using the deprecated-but-supported `authorizer` option (what many Laravel apps do),
// signing with the Node SDK exactly as a Laravel /broadcasting/auth endpoint would.
export function echoClient(t, port, key, broadcaster, opts = {}) {
  const signer = opts.signer;
  const base = {
    broadcaster, key, Pusher: PusherJS,
    wsHost: '127.0.0.1', wsPort: port, wssPort: port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    cluster: broadcaster === 'pusher' ? 'mt1' : '',
  };
  if (signer && opts.authStyle === 'customHandler') {
    // pusher-js 8's non-deprecated option, passed straight through Echo's options.
    base.channelAuthorization = {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const data = channelName.startsWith('presence-') ? (opts.presence || { user_id: 'anon' }) : undefined;
          callback(null, signer.authorizeChannel(socketId, channelName, data));
        } catch (e) { callback(e, null); }
      },
    };
  } else if (signer) {
    base.authorizer = (channel) => ({
      authorize: (socketId, callback) => {
        try {
          const data = channel.name.startsWith('presence-') ? (opts.presence || { user_id: 'anon' }) : undefined;
          callback(null, signer.authorizeChannel(socketId, channel.name, data));
        } catch (e) { callback(e, null); }
      },
    });
  }
  if (signer) {
    base.userAuthentication = {
      customHandler: ({ socketId }, callback) => {
        try { callback(null, signer.authenticateUser(socketId, opts.user || { id: 'anon' })); } catch (e) { callback(e, null); }
      },
    };
  }
  const echo = new Echo(base);
  if (t) t.defer(() => echo.disconnect());
  return echo;
}

export function echoConnected(echo, ms = 4000) { return waitState(echo.connector.pusher, 'connected', ms); }

// Promise that resolves with the next callback value; `register(cb)` installs the callback.
export function once(register, ms = 3000, what = 'callback') {
  const p = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), ms);
    register((v) => { clearTimeout(timer); resolve(v); });
  });
  p.catch(() => {}); // may be abandoned when an earlier step of the check fails
  return p;
}

// Collects every value passed to a callback.
export function collector() {
  const items = [];
  const waiters = [];
  const cb = (v) => { items.push(v); for (const w of [...waiters]) if (w.pred(v)) { waiters.splice(waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(v); } };
  cb.items = items;
  cb.wait = (pred = () => true, ms = 3000, what = 'value') => new Promise((resolve, reject) => {
    const hit = items.find(pred);
    if (hit !== undefined) return resolve(hit);
    const w = { pred, resolve };
    w.timer = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`timeout waiting for ${what}; got ${JSON.stringify(items).slice(0, 300)}`)); }, ms);
    waiters.push(w);
  });
  return cb;
}

// A pusher-js client signed in as `user` (through `signer`), with every watchlist event
// (`online` / `offline`) collected in `events`.
export async function signedInWatching(t, port, key, signer, user) {
  const p = pusherClient(t, port, key, { signer, user });
  const events = collector();
  p.user.watchlist.bind('online', (e) => events(e));
  p.user.watchlist.bind('offline', (e) => events(e));
  await waitState(p, 'connected');
  p.signin();
  await p.user.signinDonePromise;
  return { p, events };
}
