//! The state this node holds for its own sockets: per app, channel membership, cache-channel
//! contents and signed-in users. The [`crate::adapter::Adapter`] is the only way the socket and
//! HTTP sides reach it; the cluster link (`crate::cluster`) also writes into it when messages from
//! other nodes arrive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::apps::{App, AppRegistry};
use crate::channels::cache::CacheStore;
use crate::channels::ChannelRegistry;
use crate::outbox::{Outbox, SocketId};
use crate::protocol::PusherError;

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
}

/// Every app's namespace on this node. Built at start-up; a reload adds the namespaces of new
/// apps ([`LocalState::add_apps`]). A removed app's namespace stays (its sockets leave it as they
/// close, and an app added back under the same id finds it again).
#[derive(Debug)]
pub struct LocalState {
    namespaces: ArcSwap<HashMap<String, Arc<Namespace>>>,
    clustered: bool,
}

impl LocalState {
    /// One namespace per configured app; `clustered` makes presence cluster-decided.
    pub fn new(apps: &AppRegistry, clustered: bool) -> Self {
        let state = Self {
            namespaces: ArcSwap::default(),
            clustered,
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
                    channels: self.new_channels(),
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

    fn new_channels(&self) -> ChannelRegistry {
        if self.clustered {
            ChannelRegistry::clustered()
        } else {
            ChannelRegistry::default()
        }
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

    /// Records that a socket signed in as `user`.
    pub fn sign_in(&self, user: &str, outbox: &Outbox) {
        self.users
            .entry(user.to_owned())
            .or_default()
            .insert(outbox.id(), outbox.clone());
    }

    /// Forgets a signed-in socket (on disconnect).
    pub fn sign_out(&self, user: &str, id: SocketId) {
        if let Some(mut sockets) = self.users.get_mut(user) {
            sockets.remove(&id);
        }
        self.users.remove_if(user, |_, s| s.is_empty());
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
