//! The state this node holds for its own sockets: per app, channel membership, cache-channel
//! contents and signed-in users. The [`crate::adapter::Adapter`] is the only way the socket and
//! HTTP sides reach it; the cluster link (`crate::cluster`) also writes into it when messages from
//! other nodes arrive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::apps::AppRegistry;
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
    /// `cache_ttl` of the app, for events stored on behalf of other nodes.
    pub cache_ttl: Duration,
}

/// Every app's namespace on this node, fixed at start-up.
#[derive(Debug)]
pub struct LocalState {
    namespaces: HashMap<String, Namespace>,
}

impl LocalState {
    /// One namespace per configured app; `clustered` makes presence cluster-decided.
    pub fn new(apps: &AppRegistry, clustered: bool) -> Self {
        let namespaces = apps
            .all()
            .map(|a| {
                let ns = Namespace {
                    channels: ChannelRegistry::new(clustered, a.metrics.clone()),
                    cache_ttl: Duration::from_secs(a.config.cache_ttl),
                    ..Namespace::default()
                };
                (a.id().to_owned(), ns)
            })
            .collect();
        Self { namespaces }
    }

    /// The namespace of a configured app.
    pub fn ns(&self, app_id: &str) -> Option<&Namespace> {
        self.namespaces.get(app_id)
    }

    /// Every app id with its namespace.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Namespace)> {
        self.namespaces.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl Namespace {
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
