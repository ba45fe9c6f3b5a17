// Feature rows of docs/protocol.md; every check is tagged with one of these.
export const R = {
  handshake: 'connection handshake',
  app4001: 'unknown app 4001',
  origin: 'origin allowlist 4009',
  quota: 'connection quota 4004',
  proto: 'protocol version 4006/4007',
  pub: 'public channels',
  priv: 'private channels',
  pres: 'presence channels',
  enc: 'encrypted channels',
  cache: 'cache channels',
  suberr: 'subscription errors',
  unsub: 'unsubscribe',
  cev: 'client events',
  ping: 'ping/pong and activity timeout',
  signin: 'user sign-in and server-to-user',
  size: 'message size limit 1009',
  bad: 'bad input 4200',
  trig: 'HTTP trigger events',
  batch: 'HTTP batch events',
  query: 'HTTP channel queries',
  term: 'HTTP terminate_connections',
  conn: 'HTTP connections and /up',
  sig: 'HTTP signature verification',
  lim: 'HTTP limits',
  prefix: 'path prefix',
  shut: 'graceful shutdown and reconnect',
  echo: 'Laravel Echo flows',
  wh: 'webhooks',
};

let n = 0;
export const uniq = (p) => `${p}-${process.pid}-${++n}-${Math.random().toString(36).slice(2, 7)}`;
