//! The listener task: one pub/sub connection, subscribed to the cluster channel and to this
//! node's own channel, applying each message to this node's sockets in the order Redis
//! delivered it. Anything that is not a well-formed Herald message is logged and skipped.
//! After every (re)subscription it asks the link task to re-register this node's state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Message, WireError};
use super::{Op, Shared};
use crate::channels::MemberData;
use crate::local::Namespace;
use crate::protocol::outbound;
use crate::protocol::{ChannelKind, PusherError};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn run(shared: Arc<Shared>, client: redis::Client, stop: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    let mut down_logged = false;
    let mut first = true;
    loop {
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&client, &shared)).await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                tracing::info!(node = %shared.node, "cluster link up");
                if !std::mem::take(&mut first) {
                    shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                backoff = MIN_BACKOFF;
                down_logged = false;
                shared.resync.store(true, Ordering::Release);
                shared.subscribed.store(true, Ordering::Release);
                shared.wake.notify_one();
                shared.relinked.notify_one();
                let mut stream = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => dispatch(&shared, msg.get_payload_bytes()),
                            None => break,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                shared.subscribed.store(false, Ordering::Release);
                tracing::warn!("cluster: pub/sub connection to Redis lost; reconnecting");
            }
            Ok(Err(e)) if !down_logged => {
                tracing::warn!("cluster: cannot subscribe on Redis ({e}); retrying");
                down_logged = true;
            }
            Err(_) if !down_logged => {
                tracing::warn!("cluster: Redis did not answer the subscription; retrying");
                down_logged = true;
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    shared: &Shared,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&shared.bus).await?;
    pubsub.subscribe(&shared.inbox).await?;
    Ok(pubsub)
}

/// Applies one message to this node's sockets.
fn dispatch(shared: &Shared, payload: &[u8]) {
    let msg = match wire::decode(payload) {
        Ok(msg) => {
            tracing::trace!(?msg, "cluster: message");
            msg
        }
        Err(e) => return skip(shared, &e, payload),
    };
    match msg {
        Message::Event {
            node,
            app,
            channel,
            except,
            frame,
        } => {
            if node == shared.node {
                return;
            }
            let Some(ns) = shared.local.ns(app) else {
                return;
            };
            if ChannelKind::of(channel).cache {
                store_cached(&ns, channel, frame.as_str());
            }
            ns.channels.publish(channel, &frame, except);
        }
        Message::MemberAdded {
            app,
            channel,
            except,
            member,
        } => {
            let (Some(ns), Some(m)) = (shared.local.ns(app), MemberData::from_wire(member)) else {
                return skip(shared, &WireError::Malformed("member_added"), payload);
            };
            ns.channels.member_added(channel, &m, except);
        }
        Message::MemberRemoved {
            app,
            channel,
            member,
        } => {
            let (Some(ns), Some(m)) = (shared.local.ns(app), MemberData::from_wire(member)) else {
                return skip(shared, &WireError::Malformed("member_removed"), payload);
            };
            ns.channels.member_removed(channel, &m);
        }
        Message::Joined {
            app,
            channel,
            socket,
            ok,
            members,
        } => {
            let Some(ns) = shared.local.ns(app) else {
                return;
            };
            if ok {
                let list = member_list(members);
                let after = ChannelKind::of(channel)
                    .cache
                    .then(|| ns.cache.replay_frame(channel).0);
                ns.channels.confirm(channel, socket, &list, after);
            } else if let Some(outbox) = ns.channels.pending_outbox(channel, socket) {
                let err = PusherError::MemberLimit;
                let left = ns.channels.unsubscribe(channel, socket);
                outbox.try_send(outbound::subscription_error(
                    channel,
                    &err,
                    &err.to_string(),
                ));
                outbox.try_send(outbound::error(&err));
                let vacated = left.as_ref().is_some_and(|l| l.vacated);
                if let Some(user) = left.and_then(|l| l.user) {
                    shared.push(Op::Leave {
                        app: app.to_owned(),
                        channel: channel.to_owned(),
                        user,
                        delay: shared.member_delay(app),
                    });
                }
                if let (true, Some(delay)) = (vacated, shared.channel_delay(app)) {
                    shared.push(Op::Vacate {
                        app: app.to_owned(),
                        channel: channel.to_owned(),
                        delay,
                    });
                }
            }
        }
        Message::Members {
            app,
            channel,
            members,
        } => {
            if let Some(ns) = shared.local.ns(app) {
                ns.channels.reconcile(channel, &member_list(members));
            }
        }
        Message::Hello { node } => {
            if node != shared.node && !shared.peers.read().iter().any(|p| p == node) {
                let mut peers = shared.peers.write();
                let mut list = (**peers).clone();
                list.push(node.to_owned());
                *peers = std::sync::Arc::new(list);
            }
        }
        Message::Presence { app, user, online } => {
            if let Some(ns) = shared.local.ns(app) {
                ns.watchlists.lock().announce(user, online);
            }
        }
        Message::Watched { app, socket, flags } => {
            if let Some(ns) = shared.local.ns(app) {
                let flags = flags.as_bytes();
                ns.watchlists
                    .lock()
                    .confirm(socket, |i, _| flags.get(i) == Some(&b'1'));
            }
        }
        Message::Count { node, app, channel } => {
            if node == shared.node {
                return;
            }
            if app.is_empty() {
                for a in shared
                    .apps
                    .all()
                    .into_iter()
                    .filter(|a| a.config().subscription_count)
                {
                    shared.local.mark_all_counts(a.id());
                }
            } else if shared
                .apps
                .by_id(app)
                .is_some_and(|a| a.config().subscription_count)
                && shared
                    .local
                    .ns(app)
                    .is_some_and(|ns| ns.channels.counts(channel).subscriptions > 0)
            {
                shared.local.mark_count(app, channel, false);
            }
        }
        Message::Webhook {
            kind,
            app,
            channel,
            user,
        } => {
            if let (Some(sink), Some(kind)) = (shared.webhooks.get(), super::hooks::kind(kind)) {
                sink.fire(app, kind, channel, user);
            }
        }
        Message::Terminate { node, app, user } => {
            if node != shared.node {
                if let Some(ns) = shared.local.ns(app) {
                    ns.terminate_user(user);
                }
            }
        }
    }
}

/// Newline-separated wire members (malformed lines are skipped).
fn member_list(members: &str) -> Vec<MemberData> {
    members.lines().filter_map(MemberData::from_wire).collect()
}

/// Keeps another node's cache-channel event, so this node replays it too.
fn store_cached(ns: &Namespace, channel: &str, frame: &str) {
    #[derive(serde::Deserialize)]
    struct Cached {
        event: String,
        #[serde(default)]
        data: Option<String>,
    }
    if let Ok(c) = serde_json::from_str::<Cached>(frame) {
        ns.cache.store(
            channel,
            &c.event,
            c.data.as_deref().unwrap_or(""),
            ns.cache_ttl(),
        );
    }
}

/// Logs (the first ten, then every power of two) and counts a skipped message.
fn skip(shared: &Shared, why: &WireError, payload: &[u8]) {
    let n = shared.stats.skipped_foreign.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 10 || n.is_power_of_two() {
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(80)]);
        tracing::warn!(
            total = n,
            "cluster: skipped a message on the Redis channel ({why}): {shown:?}"
        );
    }
}
