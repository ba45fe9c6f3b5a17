// HTTP API helpers: the official Node SDK, plus raw signed requests for negative cases.
import Pusher from 'pusher';
import crypto from 'node:crypto';

export function sdk(port, app, extra = {}) {
  return new Pusher({
    appId: app.id, key: app.key, secret: app.secret,
    host: '127.0.0.1', port: String(port), useTLS: false, timeout: 4000,
    ...(app.masterKey ? { encryptionMasterKeyBase64: app.masterKey } : {}),
    ...extra,
  });
}

export const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');
export const hmac = (secret, s) => crypto.createHmac('sha256', secret).update(s).digest('hex');

// Build a signed URL by hand (so tests can tamper with each part).
// opts: method, path (without prefix, e.g. /apps/1/events), params, body (string),
//       key, secret, timestamp, authVersion, bodyMd5 (override; null to omit), signature (override), prefix
export function signedUrl(port, opts) {
  const params = { ...(opts.params || {}) };
  params.auth_key = opts.key;
  params.auth_timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  params.auth_version = opts.authVersion ?? '1.0';
  if (opts.bodyMd5 !== null && (opts.bodyMd5 !== undefined || (opts.body && opts.body.length))) {
    params.body_md5 = opts.bodyMd5 ?? md5(opts.body);
  }
  const keys = Object.keys(params).sort();
  const toSign = [opts.method, opts.path, keys.map((k) => `${k.toLowerCase()}=${params[k]}`).join('&')].join('\n');
  const sig = opts.signature ?? hmac(opts.secret, toSign);
  const qs = keys.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(params[k])}`).join('&') + `&auth_signature=${sig}`;
  return `http://127.0.0.1:${port}${opts.prefix || ''}${opts.path}?${qs}`;
}

// Perform a signed request; returns {status, body (parsed JSON or text), text, headers}.
export async function signed(port, app, method, path, { body, params, ...over } = {}) {
  const bodyStr = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
  const url = signedUrl(port, { method, path, params, body: bodyStr, key: app.key, secret: app.secret, ...over });
  const r = await fetch(url, {
    method, body: bodyStr,
    headers: bodyStr !== undefined ? { 'content-type': 'application/json' } : {},
    signal: AbortSignal.timeout(4000),
  });
  const text = await r.text();
  let parsed; try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: r.status, body: parsed, text, headers: r.headers };
}

// Call an SDK method returning a node-fetch Response (or rejecting with RequestError);
// normalise to {status, body}.
export async function viaSdk(promise) {
  try {
    const res = await promise;
    const text = await res.text();
    let body; try { body = JSON.parse(text); } catch { body = text; }
    return { status: res.status, body };
  } catch (e) {
    if (e && e.status) { let body; try { body = JSON.parse(e.body); } catch { body = e.body; } return { status: e.status, body }; }
    throw e;
  }
}
