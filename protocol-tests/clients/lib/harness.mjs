// Minimal sequential check runner: one line per check, independent checks, per-check timeout.
const results = [];
let beforeEach = null;
export function setBeforeEach(f) { beforeEach = f; }
let filter = process.env.CHECK_FILTER ? new RegExp(process.env.CHECK_FILTER, 'i') : null;

export function fail(msg) { throw new Error(msg); }
export function assert(cond, msg) { if (!cond) throw new Error(msg); }
export function eq(actual, expected, what = 'value') {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
export function deepEq(actual, expected, what = 'value') {
  const norm = (v) => JSON.stringify(sortKeys(v));
  if (norm(actual) !== norm(expected)) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Run one check. `fn(t)` gets a context with t.defer(cleanup). Cleanups always run,
// even on timeout, so one failing check does not leak sockets into the next.
export async function check(area, name, fn, timeoutMs = 5000) {
  const label = `${area}: ${name}`;
  if (filter && !filter.test(label)) return;
  const cleanups = [];
  const t = { defer: (f) => cleanups.push(f) };
  let timer;
  const started = Date.now();
  try {
    if (beforeEach) await beforeEach();
    await Promise.race([
      Promise.resolve().then(() => fn(t)),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs); }),
    ]);
    results.push({ label, ok: true });
    console.log(`PASS ${label}`);
  } catch (e) {
    const reason = String(e && e.message ? e.message : e).replace(/\s+/g, ' ').slice(0, 600);
    results.push({ label, ok: false, reason });
    console.log(`FAIL ${label}: ${reason}`);
  } finally {
    clearTimeout(timer);
    for (const c of cleanups.reverse()) {
      try { await Promise.race([Promise.resolve().then(c), sleep(2000)]); } catch { /* ignore */ }
    }
    if (process.env.CHECK_VERBOSE) console.error(`  (${Date.now() - started} ms)`);
  }
}

export function summary() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  return { passed, failed, results };
}
