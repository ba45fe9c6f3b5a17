//! The state this node holds for its own sockets: per app, channel membership, cache-channel
//! contents, signed-in users, watchlist watchers and the channels whose subscription count
//! changed (for `crate::counting`). The [`crate::adapter::Adapter`] is the only way the socket and
//! HTTP sides reach it; the cluster link (`crate::cluster`) also writes into it when messages from
//! other nodes arrive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::apps::{App, AppRegistry};
use crate::channels::cache::CacheStore;
use crate::channels::ChannelRegistry;
use crate::outbox::{Outbox, SocketId};
use crate::protocol::{ChannelKind, PusherError};
use crate::watchlist::Watchlists;

/// The state of one app on this node.
#[derive(Debug, Default)]
pub struct Namespace {
    /// Channel → local subscribers, presence members.
    pub channels: ChannelRegistry,
    /// Cache channels' last events (every node keeps them: every node sees every broadcast).
    pub cache: CacheStore,
    /// Signed-in users → their sockets (for terminate_connections).
    users: DashMap<String, HashMap<SocketId, Outbox>>,
    /// `cache_ttl` of the app in seconds, for events stored on behalf of other nodes (a reload
    /// may change it).
    cache_ttl: AtomicU64,
    /// Watchlist events: who watches whom (apps with `watchlist_events` only).
    pub watchlists: Watchlists,
    /// Channels whose subscription count changed since `crate::counting` last looked (apps
    /// with `subscription_count` only).
    /// The value says whether a change was this node's own (its subscribe or unsubscribe),
    /// which makes this node the one to send the `subscription_count` webhook.
    count_marks: Mutex<HashMap<String, bool>>,
}

/// Every app's namespace on this node. Built at start-up; a reload adds the namespaces of new
/// apps ([`LocalState::add_apps`]). A removed app's namespace stays (its sockets leave it as they
/// close, and an app added back under the same id finds it again).
#[derive(Debug)]
pub struct LocalState {
    namespaces: ArcSwap<HashMap<String, Arc<Namespace>>>,
    clustered: bool,
    /// Wakes `crate::counting` when a channel's count was marked.
    count_wake: Notify,
}

impl LocalState {
    /// One namespace per configured app; `clustered` makes presence cluster-decided.
    pub fn new(apps: &AppRegistry, clustered: bool) -> Self {
        let state = Self {
            namespaces: ArcSwap::default(),
            clustered,
            count_wake: Notify::new(),
        };
        state.add_apps(&apps.all());
        state
    }

    /// Creates the namespaces `apps` do not have yet (on start-up and reload) and refreshes the
    /// `cache_ttl` of those that exist.
    pub fn add_apps(&self, apps: &[Arc<App>]) {
        let current = self.namespaces.load();
        let missing: Vec<&Arc<App>> = apps
            .iter()
            .filter(|a| !current.contains_key(a.id()))
            .collect();
        if !missing.is_empty() {
            let mut map = HashMap::clone(&current);
            for a in missing {
                let ns = Namespace {
                    channels: ChannelRegistry::new(self.clustered, a.metrics.clone()),
                    ..Namespace::default()
                };
                map.insert(a.id().to_owned(), Arc::new(ns));
            }
            // Only reloads (one at a time) and start-up write this map.
            self.namespaces.store(Arc::new(map));
        }
        let map = self.namespaces.load();
        for a in apps {
            if let Some(ns) = map.get(a.id()) {
                ns.cache_ttl.store(a.config().cache_ttl, Ordering::Relaxed);
            }
        }
    }

    /// Marks a channel whose subscription count (local or cluster-wide) changed, for
    /// `crate::counting` to send `pusher_internal:subscription_count` to its local subscribers.
    /// `own`: the change was one of this node's sockets (not a notice from another node).
    pub fn mark_count(&self, app_id: &str, channel: &str, own: bool) {
        if let Some(ns) = self.ns(app_id) {
            let mut marks = ns.count_marks.lock();
            let new = !marks.contains_key(channel);
            *marks.entry(channel.to_owned()).or_default() |= own;
            drop(marks);
            if new {
                self.count_wake.notify_one();
            }
        }
    }

    /// Marks every occupied non-presence channel of an app (a node died: the cluster-wide
    /// counts changed).
    pub fn mark_all_counts(&self, app_id: &str) {
        if let Some(ns) = self.ns(app_id) {
            let names = ns.channels.list("");
            let mut marks = ns.count_marks.lock();
            for (name, _) in names {
                if !ChannelKind::of(&name).is_presence() {
                    marks.entry(name).or_default();
                }
            }
            drop(marks);
            self.count_wake.notify_one();
        }
    }

    /// Waits until a channel is marked.
    pub async fn count_marked(&self) {
        self.count_wake.notified().await;
    }

    /// Takes the marked channels of an app, each with whether a change was this node's own.
    pub fn take_count_marks(&self, app_id: &str) -> HashMap<String, bool> {
        self.ns(app_id)
            .map(|ns| std::mem::take(&mut *ns.count_marks.lock()))
            .unwrap_or_default()
    }

    /// The namespace of a configured app.
    pub fn ns(&self, app_id: &str) -> Option<Arc<Namespace>> {
        self.namespaces.load().get(app_id).cloned()
    }

    /// Every app id with its namespace.
    pub fn all(&self) -> Vec<(String, Arc<Namespace>)> {
        let map = self.namespaces.load();
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl Namespace {
    /// The app's `cache_ttl`, for events stored on behalf of other nodes.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl.load(Ordering::Relaxed))
    }

    /// Records that a socket signed in as `user`; true when it is the user's first signed-in
    /// socket on this node (the user came online here).
    pub fn sign_in(&self, user: &str, outbox: &Outbox) -> bool {
        let mut sockets = self.users.entry(user.to_owned()).or_default();
        let first = sockets.is_empty();
        sockets.insert(outbox.id(), outbox.clone());
        first
    }

    /// Forgets a signed-in socket (on disconnect); true when it was the user's last signed-in
    /// socket on this node (the user went offline here).
    pub fn sign_out(&self, user: &str, id: SocketId) -> bool {
        let removed = match self.users.get_mut(user) {
            Some(mut sockets) => sockets.remove(&id).is_some(),
            None => false,
        };
        removed && self.users.remove_if(user, |_, s| s.is_empty()).is_some()
    }

    /// Whether `user` is signed in on at least one of this node's sockets.
    pub fn is_online(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The users signed in on this node (for re-registering with the cluster).
    pub fn online_users(&self) -> Vec<String> {
        self.users.iter().map(|e| e.key().clone()).collect()
    }

    /// Alone, with watchlist events on: records the sign-in, tells the user's watchers when it
    /// came online, then registers the socket as a watcher of `watchlist` and sends it who of
    /// those is online, all under the app's watchlist lock so no transition slips between.
    pub fn sign_in_watching(&self, user: &str, outbox: &Outbox, watchlist: Vec<Arc<str>>) {
        let mut w = self.watchlists.lock();
        if self.sign_in(user, outbox) {
            w.announce(user, true);
        }
        if !watchlist.is_empty() {
            w.add(outbox, watchlist, true);
            w.confirm(outbox.id(), |_, u| self.is_online(u));
        }
    }

    /// Alone, with watchlist events on: forgets the socket as a watcher and a sign-in, and tells
    /// the user's watchers when it was their last socket.
    pub fn sign_out_watching(&self, user: &str, id: SocketId) {
        let mut w = self.watchlists.lock();
        w.remove(id);
        if self.sign_out(user, id) {
            w.announce(user, false);
        }
    }

    /// Closes (4009) every local socket signed in as `user` or joined to a presence channel as
    /// `user`; returns how many were asked to close.
    pub fn terminate_user(&self, user: &str) -> usize {
        let mut targets: HashMap<SocketId, Outbox> =
            self.users.get(user).map(|s| s.clone()).unwrap_or_default();
        for o in self.channels.presence_sockets(user) {
            targets.insert(o.id(), o);
        }
        for o in targets.values() {
            o.close(PusherError::Terminated);
        }
        targets.len()
    }
}

/// Shared handle, as the adapter and the cluster link hold it.
pub type Local = Arc<LocalState>;
