// pusher-js 8 (node build, unmodified): watchlist events (pusher.user.watchlist) and
// subscription counting (pusher:subscription_count, channel.subscriptionCount) on an app with
// watchlist_events and subscription_count on.
import { check, assert, eq, deepEq } from '../lib/harness.mjs';
import { sdk } from '../lib/http.mjs';
import { pusherClient, waitState, once, collector, signedInWatching } from '../lib/clients.mjs';
import { R, uniq } from '../lib/rows.mjs';

export default async function (env) {
  const { port, apps } = env;
  const W = apps.watch;
  const signer = sdk(port, W);
  const signedIn = (t, user) => signedInWatching(t, port, W.key, signer, user);

  await check(R.watch, 'pusher-js userAuthentication with a watchlist: pusher.user.watchlist gets offline, then online and offline as a watched user signs in and leaves', async (t) => {
    const a = uniq('wa'), b = uniq('wb'), c = uniq('wc');
    const { events } = await signedIn(t, { id: a, watchlist: [b, c] });
    const first = await events.wait((e) => e.name === 'offline', 4000, 'the sign-in snapshot');
    deepEq(first, { name: 'offline', user_ids: [b, c] }, 'snapshot');
    const { p: pb } = await signedIn(t, { id: b });
    deepEq(await events.wait((e) => e.name === 'online', 4000, 'online'), { name: 'online', user_ids: [b] }, 'online event');
    pb.disconnect();
    const off = await events.wait((e) => e.name === 'offline' && e !== first, 4000, 'offline');
    deepEq(off, { name: 'offline', user_ids: [b] }, 'offline event');
    eq(events.items.length, 3, `events: ${JSON.stringify(events.items)}`);
  });

  await check(R.subcount, 'pusher-js channel.bind("pusher:subscription_count") and channel.subscriptionCount follow subscribes and unsubscribes', async (t) => {
    const name = uniq('count');
    const p1 = pusherClient(t, port, W.key);
    const ch1 = p1.subscribe(name);
    const counts = collector();
    ch1.bind('pusher:subscription_count', (d) => counts(d));
    deepEq(await counts.wait((d) => d.subscription_count === 1, 4000, 'count 1'), { subscription_count: 1 }, 'first count');
    const p2 = pusherClient(t, port, W.key);
    const ch2 = p2.subscribe(name);
    const seen2 = once((cb) => ch2.bind('pusher:subscription_count', cb), 4000, 'count at the second subscriber');
    await counts.wait((d) => d.subscription_count === 2, 4000, 'count 2');
    eq(ch1.subscriptionCount, 2, 'channel.subscriptionCount');
    deepEq(await seen2, { subscription_count: 2 }, 'the joiner learns the count too');
    p2.unsubscribe(name);
    await counts.wait((d) => d.subscription_count === 1 && counts.items.length > 2, 4000, 'count back to 1');
    eq(ch1.subscriptionCount, 1, 'channel.subscriptionCount after the unsubscribe');
    assert(counts.items.length <= 4, `counts: ${JSON.stringify(counts.items)}`);
  });
}
