//! Subscription counting (the app's `subscription_count`): sends
//! `pusher_internal:subscription_count` to the subscribers of a non-presence channel when its
//! count changes. pusher-js stores it as `channel.subscriptionCount` and emits
//! `pusher:subscription_count`.
//!
//! The adapter marks a channel whenever a local subscribe or unsubscribe changes its count
//! (`Adapter::subscription_count_changed`); clustered, the listener also marks the channels
//! another node announced a change for, and every channel when a node died. This task wakes on
//! a mark, waits [`COALESCE`] so a burst (a thousand sockets joining at once) becomes one frame
//! per subscriber rather than one per join, then reads each marked channel's count (cluster-wide
//! when clustered, one Redis round trip per channel) and sends it, serialised once, to this
//! node's subscribers. Every node does so for its own subscribers, so all of them get the same
//! cluster-wide figure.
//!
//! The `subscription_count` webhook goes out with the same count, from the node whose own socket
//! changed it (a mark from another node's notice does not send it), so a cluster sends it once
//! per change.
//!
//! Throttling, as Pusher documents it for the `subscription_count` webhook: a channel of more
//! than [`LARGE`] subscribers gets at most one count per [`LARGE_INTERVAL`]; a later change is
//! sent when that interval is over. Smaller channels get every (coalesced) change.
//!
//! Nothing is marked for apps without `subscription_count`, so the task stays asleep and the
//! feature costs nothing when it is off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::adapter::Adapter;
use crate::apps::AppRegistry;

/// How long marks gather before counts are sent.
pub const COALESCE: Duration = Duration::from_millis(50);
/// Above this many subscribers a channel's count is throttled.
pub const LARGE: usize = 100;
/// The least time between two counts sent to a large channel.
pub const LARGE_INTERVAL: Duration = Duration::from_secs(5);

/// Sends subscription counts until `stop`. It always runs (a reload may turn counting on for an
/// app) but only wakes when a channel of a counting app was marked.
pub async fn run(adapter: Arc<Adapter>, apps: Arc<AppRegistry>, stop: CancellationToken) {
    // (app id, channel) → when its last count was sent (kept for LARGE_INTERVAL).
    let mut sent: HashMap<(String, String), Instant> = HashMap::new();
    // Large channels whose change waits for its interval to end (and whether one of the
    // changes was this node's own, for the webhook).
    let mut deferred: HashMap<(String, String), (Instant, bool)> = HashMap::new();
    loop {
        let next_due = deferred.values().map(|(at, _)| *at).min();
        tokio::select! {
            _ = adapter.local_state().count_marked() => {}
            _ = sleep_until(next_due) => {}
            _ = stop.cancelled() => return,
        }
        tokio::time::sleep(COALESCE).await;
        let now = Instant::now();
        sent.retain(|_, at| now.duration_since(*at) < LARGE_INTERVAL);
        let mut due: Vec<((String, String), bool)> = Vec::new();
        deferred.retain(|k, (at, own)| {
            let ready = *at <= now;
            if ready {
                due.push((k.clone(), *own));
            }
            !ready
        });
        for app in apps.all() {
            let marks = adapter.local_state().take_count_marks(app.id());
            if app.config().subscription_count {
                due.extend(
                    marks
                        .into_iter()
                        .map(|(c, own)| ((app.id().to_owned(), c), own)),
                );
            }
        }
        for (key, own) in due {
            if let Some((_, was_own)) = deferred.get_mut(&key) {
                *was_own |= own;
                continue;
            }
            let Some(app) = apps.by_id(&key.0) else {
                continue;
            };
            let here = adapter
                .local_state()
                .ns(app.id())
                .map_or(0, |ns| ns.channels.counts(&key.1).subscriptions);
            if here == 0 {
                continue;
            }
            let n = adapter.channel_counts(&app, &key.1).await.subscriptions;
            let now = Instant::now();
            if n > LARGE {
                if let Some(at) = sent.get(&key) {
                    deferred.insert(key, (*at + LARGE_INTERVAL, own));
                    continue;
                }
            }
            if n > 0 {
                adapter.send_subscription_count(&app, &key.1, n);
                if own {
                    adapter.subscription_count_webhook(&app, &key.1, n);
                }
                sent.insert(key, now);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
