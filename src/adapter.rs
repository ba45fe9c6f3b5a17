//! The adapter seam: every cross-socket operation (subscribe, publish, presence, queries,
//! terminate) goes through [`Adapter`], so the socket and HTTP layers never touch channel state
//! directly. Today it is node-local; a Redis-backed variant can join here (publishing to other
//! nodes and merging their answers) without changing its callers, which is why the query methods
//! are already `async`.

use std::collections::HashMap;
use std::time::Duration;

use dashmap::DashMap;

use crate::apps::{App, AppRegistry};
use crate::channels::cache::{CacheStore, CachedEvent};
use crate::channels::{ChannelCounts, ChannelRegistry, Joined, Left, MemberData};
use crate::outbox::{Outbox, SocketId};
use crate::protocol::outbound::{self, Frame};
use crate::protocol::{ChannelKind, PusherError};

/// The state of one app on this node.
#[derive(Debug, Default)]
struct Namespace {
    channels: ChannelRegistry,
    cache: CacheStore,
    /// Signed-in users → their sockets (for terminate_connections).
    users: DashMap<String, HashMap<SocketId, Outbox>>,
}

/// The one place cross-socket state is read and written.
#[derive(Debug)]
pub struct Adapter {
    namespaces: HashMap<String, Namespace>,
}

impl Adapter {
    /// A node-local adapter with one namespace per configured app.
    pub fn local(apps: &AppRegistry) -> Self {
        let namespaces = apps
            .all()
            .map(|a| (a.id().to_owned(), Namespace::default()))
            .collect();
        Self { namespaces }
    }

    fn ns(&self, app: &App) -> &Namespace {
        self.namespaces
            .get(app.id())
            .expect("every app has a namespace from start-up")
    }

    /// Subscribes a socket; queues subscription_succeeded, then the cache replay or cache_miss
    /// for cache channels, then member_added to the other members.
    pub fn subscribe(
        &self,
        app: &App,
        channel: &str,
        kind: ChannelKind,
        outbox: &Outbox,
        member: Option<&MemberData>,
    ) -> Result<Joined, PusherError> {
        let ns = self.ns(app);
        let after = kind.cache.then(|| ns.cache.replay_frame(channel).0);
        let max = app.config.max_presence_members;
        ns.channels.subscribe(channel, outbox, member, max, after)
    }

    /// Unsubscribes a socket; queues member_removed for the others when its user left.
    pub fn unsubscribe(&self, app: &App, channel: &str, id: SocketId) -> Option<Left> {
        self.ns(app).channels.unsubscribe(channel, id)
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
        if ChannelKind::of(channel).cache {
            let ttl = Duration::from_secs(app.config.cache_ttl);
            ns.cache.store(channel, event, data, ttl);
        }
        let frame = outbound::event(event, channel, Some(data), None);
        ns.channels.publish(channel, &frame, except);
    }

    /// Relays an already-built client-event frame to everyone on the channel but the sender.
    pub fn relay(&self, app: &App, channel: &str, frame: &Frame, sender: SocketId) {
        self.ns(app).channels.publish(channel, frame, Some(sender));
    }

    /// Records that a socket signed in as `user`.
    pub fn sign_in(&self, app: &App, user: &str, outbox: &Outbox) {
        self.ns(app)
            .users
            .entry(user.to_owned())
            .or_default()
            .insert(outbox.id(), outbox.clone());
    }

    /// Forgets a signed-in socket (on disconnect).
    pub fn sign_out(&self, app: &App, user: &str, id: SocketId) {
        let users = &self.ns(app).users;
        if let Some(mut sockets) = users.get_mut(user) {
            sockets.remove(&id);
        }
        users.remove_if(user, |_, s| s.is_empty());
    }

    /// Closes (4009) every socket signed in as `user` or joined to a presence channel as
    /// `user`; returns how many were asked to close.
    pub async fn terminate_user(&self, app: &App, user: &str) -> usize {
        let ns = self.ns(app);
        let mut targets: HashMap<SocketId, Outbox> =
            ns.users.get(user).map(|s| s.clone()).unwrap_or_default();
        for o in ns.channels.presence_sockets(user) {
            targets.insert(o.id(), o);
        }
        for o in targets.values() {
            o.close(PusherError::Terminated);
        }
        targets.len()
    }

    /// Counts of one channel.
    pub async fn channel_counts(&self, app: &App, channel: &str) -> ChannelCounts {
        self.ns(app).channels.counts(channel)
    }

    /// Occupied channels with a name prefix.
    pub async fn channels(&self, app: &App, prefix: &str) -> Vec<(String, ChannelCounts)> {
        self.ns(app).channels.list(prefix)
    }

    /// Distinct users of a presence channel (ids in string form).
    pub async fn user_ids(&self, app: &App, channel: &str) -> Vec<std::sync::Arc<str>> {
        self.ns(app).channels.user_ids(channel)
    }

    /// The live cached event of a cache channel.
    pub async fn cached(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        self.ns(app).cache.get(channel)
    }

    /// Open connections of the app.
    pub async fn connections(&self, app: &App) -> usize {
        app.connection_count()
    }

    /// Drops expired cache entries of every app.
    pub fn sweep(&self) {
        for ns in self.namespaces.values() {
            ns.cache.sweep();
        }
    }
}
