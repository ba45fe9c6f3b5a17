//! The adapter seam: every cross-socket operation (subscribe, publish, presence, queries,
//! terminate) goes through [`Adapter`], so the socket and HTTP layers never touch channel state
//! and never learn whether the node is clustered.
//!
//! Alone, a node answers from its [`LocalState`]. Clustered, it still delivers to its own
//! sockets directly (never through a round trip to Redis) and additionally hands each write to
//! the [`Cluster`] link, which shares it with the other nodes; queries add the other nodes'
//! shares read from Redis, and fall back to this node's own view when Redis does not answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::apps::App;
use crate::channels::cache::CachedEvent;
use crate::channels::{ChannelCounts, Joined, Left, MemberData};
use crate::cluster::Cluster;
use crate::local::{Local, Namespace};
use crate::outbox::{Outbox, SocketId};
use crate::protocol::outbound::{self, Frame};
use crate::protocol::{ChannelKind, PusherError};
use crate::webhooks::{ClientEvent, Webhooks};

pub use crate::local::LocalState;

/// The one place cross-socket state is read and written.
#[derive(Debug)]
pub struct Adapter {
    local: Local,
    cluster: Option<Cluster>,
    /// Present only when some app has a webhook target.
    webhooks: Option<Webhooks>,
}

impl Adapter {
    /// A node-local adapter.
    pub fn local(local: Local) -> Self {
        Self {
            local,
            cluster: None,
            webhooks: None,
        }
    }

    /// A clustered adapter: `local` must have been built clustered.
    pub fn clustered(local: Local, cluster: Cluster) -> Self {
        Self {
            local,
            cluster: Some(cluster),
            webhooks: None,
        }
    }

    /// Reports transitions, client events and cache misses to `webhooks` (when some app has a
    /// target).
    pub fn with_webhooks(mut self, webhooks: Option<Webhooks>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The webhooks, when some app has a target (also where subscription counts are reported:
    /// [`Webhooks::subscription_count`]).
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.webhooks.as_ref()
    }

    /// The cluster link, when scaling is on.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    fn ns(&self, app: &App) -> Arc<Namespace> {
        self.local
            .ns(app.id())
            .expect("every app has a namespace from start-up")
    }

    /// Subscribes a socket; queues subscription_succeeded, then the cache replay or cache_miss
    /// for cache channels, then member_added to the other members. Clustered presence joins
    /// get those from the cluster instead, in cluster order.
    pub fn subscribe(
        &self,
        app: &App,
        channel: &str,
        kind: ChannelKind,
        outbox: &Outbox,
        member: Option<&MemberData>,
    ) -> Result<Joined, PusherError> {
        let ns = self.ns(app);
        let (after, hit) = match kind.cache {
            true => {
                let (frame, hit) = ns.cache.replay_frame(channel);
                (Some(frame), hit)
            }
            false => (None, true),
        };
        let max = app.config().max_presence_members;
        let joined = ns.channels.subscribe(channel, outbox, member, max, after)?;
        if !joined.already {
            self.subscription_count_changed(app, channel, kind);
        }
        if let Some(w) = &self.webhooks {
            w.joined(app, channel, &joined, member, !hit);
        }
        if let Some(c) = &self.cluster {
            c.touch(app.id(), channel);
            if joined.occupied {
                c.occupied(app.id(), channel);
            }
            if let (true, Some(m)) = (joined.pending, member) {
                c.join(app, channel, outbox.id(), m, joined.member_added);
            }
        }
        Ok(joined)
    }

    /// Unsubscribes a socket; member_removed goes out when its user left (cluster-wide when
    /// clustered).
    pub fn unsubscribe(&self, app: &App, channel: &str, id: SocketId) -> Option<Left> {
        let left = self.ns(app).channels.unsubscribe(channel, id);
        if left.is_some() {
            self.subscription_count_changed(app, channel, ChannelKind::of(channel));
        }
        if let (Some(w), Some(l)) = (&self.webhooks, &left) {
            w.left(app, channel, l);
        }
        if let (Some(c), Some(l)) = (&self.cluster, &left) {
            c.touch(app.id(), channel);
            if let Some(user) = &l.user {
                c.leave(app.id(), channel, user.clone());
            }
            if l.vacated {
                c.vacated(app.id(), channel);
            }
        }
        left
    }

    /// THE place where a channel's subscription count on this node changes (every subscribe
    /// that added a socket, every unsubscribe that removed one, disconnects included). With
    /// the app's `subscription_count` on, non-presence channels are marked here for
    /// `crate::counting`, which sends the (cluster-wide) count to their subscribers, coalesced
    /// and throttled. Clustered, the link also tells the other nodes (`Cluster::touch`, then a
    /// count notice after the new count is in Redis). A `subscription_count` webhook belongs here.
    fn subscription_count_changed(&self, app: &App, channel: &str, kind: ChannelKind) {
        if app.config().subscription_count && !kind.is_presence() {
            self.local.mark_count(app.id(), channel, true);
        }
    }

    /// Sends `pusher_internal:subscription_count` with `count` to this node's subscribers of a
    /// channel (serialised once); see `crate::counting`.
    pub fn send_subscription_count(&self, app: &App, channel: &str, count: usize) {
        let frame = outbound::subscription_count(channel, count);
        self.ns(app).channels.publish(channel, &frame, None);
    }

    /// The `subscription_count` webhook, from the node whose own socket changed the count
    /// (see `crate::counting`, which throttles it as Pusher does).
    pub fn subscription_count_webhook(&self, app: &App, channel: &str, count: usize) {
        if let Some(w) = &self.webhooks {
            w.subscription_count(app, channel, count);
        }
    }

    /// This node's state (for `crate::counting`).
    pub fn local_state(&self) -> &LocalState {
        &self.local
    }

    /// Whether a socket is subscribed to a channel.
    pub fn is_subscribed(&self, app: &App, channel: &str, id: SocketId) -> bool {
        self.ns(app).channels.is_subscribed(channel, id)
    }

    /// Sends an event to a channel: serialised once, stored for cache channels (even with no
    /// subscribers, even with an exclusion), queued for every subscriber but `except`.
    pub fn trigger(
        &self,
        app: &App,
        channel: &str,
        event: &str,
        data: &str,
        except: Option<SocketId>,
    ) {
        let ns = self.ns(app);
        let cache = ChannelKind::of(channel).cache;
        if cache {
            let ttl = Duration::from_secs(app.config().cache_ttl);
            ns.cache.store(channel, event, data, ttl);
            if let Some(w) = &self.webhooks {
                w.cache_filled(app, channel);
            }
        }
        let frame = outbound::event(event, channel, Some(data), None);
        ns.channels.publish(channel, &frame, except);
        if let Some(c) = &self.cluster {
            c.publish_event(app, channel, &frame, except, cache.then_some((event, data)));
        }
    }

    /// Relays an already-built client-event frame to everyone on the channel but the sender
    /// (`hook` describes it for the client_event webhook).
    /// Clustered, a sender whose presence join the cluster refused (member limit) is no longer
    /// subscribed, although its session recorded the subscribe: it is refused here.
    pub fn relay(
        &self,
        app: &App,
        channel: &str,
        frame: &Frame,
        sender: SocketId,
        hook: ClientEvent<'_>,
    ) -> Result<(), PusherError> {
        let ns = self.ns(app);
        if self.cluster.is_some() && !ns.channels.is_subscribed(channel, sender) {
            return Err(PusherError::NotAMember);
        }
        ns.channels.publish(channel, frame, Some(sender));
        if let Some(c) = &self.cluster {
            c.publish_event(app, channel, frame, Some(sender), None);
        }
        if let Some(w) = &self.webhooks {
            w.client_event(app, channel, &hook);
        }
        Ok(())
    }

    /// Records that a socket signed in as `user`. With the app's `watchlist_events` on, the
    /// user's watchers learn it came online (its first signed-in socket, cluster-wide when
    /// clustered), and the socket watches `watchlist`: it is sent who of those is online now
    /// (alone: at once; clustered: when Redis answers, in order with the transitions).
    pub fn sign_in(&self, app: &App, user: &str, outbox: &Outbox, watchlist: Vec<Arc<str>>) {
        let ns = self.ns(app);
        if !app.config().watchlist_events {
            ns.sign_in(user, outbox);
            return;
        }
        let Some(c) = &self.cluster else {
            return ns.sign_in_watching(user, outbox, watchlist);
        };
        // The lock orders this node's online/offline writes as its sign-ins happened.
        let mut w = ns.watchlists.lock();
        if ns.sign_in(user, outbox) {
            c.online(app.id(), user);
        }
        if !watchlist.is_empty() {
            c.watch(app.id(), outbox.id(), &watchlist);
            w.add(outbox, watchlist, true);
        }
    }

    /// Forgets a signed-in socket (on disconnect); its user goes offline for the watchers when
    /// it was the last one.
    pub fn sign_out(&self, app: &App, user: &str, id: SocketId) {
        let ns = self.ns(app);
        if !app.config().watchlist_events {
            ns.sign_out(user, id);
            return;
        }
        let Some(c) = &self.cluster else {
            return ns.sign_out_watching(user, id);
        };
        let mut w = ns.watchlists.lock();
        w.remove(id);
        if ns.sign_out(user, id) {
            c.offline(app.id(), user);
        }
    }

    /// Closes (4009) every socket signed in as `user` or joined to a presence channel as
    /// `user`, on every node; returns how many of this node's sockets were asked to close.
    pub async fn terminate_user(&self, app: &App, user: &str) -> usize {
        if let Some(c) = &self.cluster {
            c.terminate(app, user);
        }
        self.ns(app).terminate_user(user)
    }

    /// Counts of one channel.
    pub async fn channel_counts(&self, app: &App, channel: &str) -> ChannelCounts {
        let local = self.ns(app).channels.counts(channel);
        let Some(c) = &self.cluster else { return local };
        match c.remote_counts(app.id(), channel).await {
            Ok(remote) => ChannelCounts {
                subscriptions: local.subscriptions + remote.subscriptions,
                users: ChannelKind::of(channel)
                    .is_presence()
                    .then_some(remote.users),
            },
            Err(e) => local_answer(local, &e),
        }
    }

    /// Occupied channels with a name prefix.
    pub async fn channels(&self, app: &App, prefix: &str) -> Vec<(String, ChannelCounts)> {
        let local = self.ns(app).channels.list(prefix);
        let Some(c) = &self.cluster else { return local };
        let remote = match c.remote_channels(app.id(), prefix).await {
            Ok(r) => r,
            Err(e) => return local_answer(local, &e),
        };
        let mut all: HashMap<String, ChannelCounts> = local.into_iter().collect();
        for (name, n) in remote {
            all.entry(name).or_default().subscriptions += n;
        }
        let presence: Vec<String> = all
            .keys()
            .filter(|n| ChannelKind::of(n).is_presence())
            .cloned()
            .collect();
        let names: Vec<&str> = presence.iter().map(String::as_str).collect();
        match c.user_counts(app.id(), &names).await {
            Ok(users) => {
                for (name, n) in presence.iter().zip(users) {
                    if let Some(counts) = all.get_mut(name) {
                        counts.users = Some(n);
                    }
                }
            }
            Err(e) => tracing::warn!("cluster: presence counts from this node only: {e}"),
        }
        all.into_iter().collect()
    }

    /// Distinct users of a presence channel (ids in string form).
    pub async fn user_ids(&self, app: &App, channel: &str) -> Vec<Arc<str>> {
        let local = self.ns(app).channels.user_ids(channel);
        let Some(c) = &self.cluster else { return local };
        match c.user_ids(app.id(), channel).await {
            Ok(ids) => ids.into_iter().map(Arc::from).collect(),
            Err(e) => local_answer(local, &e),
        }
    }

    /// The live cached event of a cache channel (every node keeps every cache channel).
    pub async fn cached(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        self.ns(app).cache.get(channel)
    }

    /// Open connections of the app.
    pub async fn connections(&self, app: &App) -> usize {
        let local = app.connection_count();
        let Some(c) = &self.cluster else { return local };
        match c.remote_connections(app.id()).await {
            Ok(n) => {
                // The freshest figure also serves the max_connections check.
                app.set_remote_connections(n);
                local + n
            }
            Err(e) => local_answer(local, &e),
        }
    }

    /// Drops expired cache entries of every app.
    pub fn sweep(&self) {
        for (_, ns) in self.local.all() {
            ns.cache.sweep();
        }
    }

    /// Sends every queued and delayed webhook within `deadline` (at shutdown, once the sockets
    /// are gone); what is still unsent then is counted as given up.
    pub async fn flush_webhooks(&self, deadline: Duration) {
        if let Some(w) = &self.webhooks {
            w.stop(deadline).await;
        }
    }

    /// Leaves the cluster (if any) within `deadline`: queued messages go out, then this node's
    /// state is removed from Redis.
    pub async fn stop(&self, deadline: Duration) {
        if let Some(c) = &self.cluster {
            c.stop(deadline).await;
        }
    }
}

/// A query answered from this node alone because Redis did not answer (logged for the first
/// ten, then every power of two, so an outage under query load does not flood the log).
fn local_answer<T>(local: T, err: &redis::RedisError) -> T {
    static FAILED: AtomicU64 = AtomicU64::new(0);
    let n = FAILED.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 10 || n.is_power_of_two() {
        tracing::warn!(
            total = n,
            "cluster: Redis did not answer a query ({err}); answering for this node only"
        );
    }
    local
}
