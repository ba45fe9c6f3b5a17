//! Watchlist events of one app on this node: which local sockets watch which user ids, and the
//! `pusher_internal:watchlist_events` frames they get. Whether a user is online (signed in on at
//! least one socket) is decided elsewhere: by this node's own sign-ins when it is alone
//! (`crate::local`), by Redis when clustered (`crate::cluster`). This module only fans the
//! transitions and sign-in snapshots out to the watchers.
//!
//! Everything sits behind one mutex per app, taken only when the app has `watchlist_events` on
//! and only on sign-in, sign-out and online/offline transitions (never on the broadcast path).
//! Alone, the caller holds the lock across "record the sign-in, announce it, snapshot for the
//! new watcher", so a watcher never misses or doubles a transition. Clustered, a new watcher is
//! *pending* until its snapshot arrives from Redis in order with the transitions: transitions
//! before the snapshot are skipped for it, later ones are sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::outbox::{Outbox, SocketId};
use crate::protocol::outbound;

/// Ids a watchlist may hold; more is answered with `pusher:error` 4302 and the rest ignored.
pub const MAX_WATCHLIST: usize = 100;

#[derive(Debug)]
struct Watcher {
    outbox: Outbox,
    /// The watched user ids, in the order of the sign-in's `watchlist`.
    ids: Vec<Arc<str>>,
    /// Clustered: waiting for the cluster's snapshot.
    pending: bool,
}

/// The watchers of one app on this node.
#[derive(Debug, Default)]
pub struct Watchlists {
    inner: Mutex<Inner>,
}

/// The locked state (see [`Watchlists::lock`]).
#[derive(Debug, Default)]
pub struct Inner {
    /// Watching socket → what it watches.
    by_socket: HashMap<SocketId, Watcher>,
    /// Watched user id → the sockets watching it.
    by_watched: HashMap<Arc<str>, HashSet<SocketId>>,
}

impl Watchlists {
    /// Locks the app's watchers (held across a sign-in and its announcement when alone).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }
}

impl Inner {
    /// Registers `outbox` as watching `ids`; `pending` (clustered) until [`Inner::confirm`].
    pub fn add(&mut self, outbox: &Outbox, ids: Vec<Arc<str>>, pending: bool) {
        let id = outbox.id();
        for w in &ids {
            self.by_watched.entry(w.clone()).or_default().insert(id);
        }
        let watcher = Watcher {
            outbox: outbox.clone(),
            ids,
            pending,
        };
        if let Some(old) = self.by_socket.insert(id, watcher) {
            self.unindex(id, &old.ids);
            let ids = self.by_socket[&id].ids.clone();
            for w in ids {
                self.by_watched.entry(w).or_default().insert(id);
            }
        }
    }

    /// Forgets a watching socket (signed out or disconnected).
    pub fn remove(&mut self, id: SocketId) {
        if let Some(old) = self.by_socket.remove(&id) {
            self.unindex(id, &old.ids);
        }
    }

    fn unindex(&mut self, id: SocketId, ids: &[Arc<str>]) {
        for w in ids {
            if let Some(set) = self.by_watched.get_mut(w) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_watched.remove(w);
                }
            }
        }
    }

    /// Tells every confirmed watcher of `user` that it came online or went offline; the frame
    /// is built once. Returns how many sockets were told.
    pub fn announce(&self, user: &str, online: bool) -> usize {
        let Some(set) = self.by_watched.get(user) else {
            return 0;
        };
        let ids = [user];
        let none: [&str; 0] = [];
        let frame = if online {
            outbound::watchlist_events(&ids, &none)
        } else {
            outbound::watchlist_events(&none, &ids)
        };
        let mut sent = 0;
        for s in set {
            if let Some(w) = self.by_socket.get(s).filter(|w| !w.pending) {
                w.outbox.try_send(frame.clone());
                sent += 1;
            }
        }
        sent
    }

    /// Sends a watcher its snapshot (`online(id)` says who is online now) and makes it a
    /// confirmed watcher. Returns false when the socket is not a watcher (it left meanwhile).
    pub fn confirm(&mut self, id: SocketId, online: impl Fn(usize, &str) -> bool) -> bool {
        let Some(w) = self.by_socket.get_mut(&id) else {
            return false;
        };
        w.pending = false;
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for (i, u) in w.ids.iter().enumerate() {
            if online(i, u) {
                on.push(u.as_ref());
            } else {
                off.push(u.as_ref());
            }
        }
        if !w.ids.is_empty() {
            w.outbox.try_send(outbound::watchlist_events(&on, &off));
        }
        true
    }

    /// Clustered: every watcher, made pending again (after a re-registration with Redis each
    /// gets a fresh snapshot), with its ids.
    pub fn repend_all(&mut self) -> Vec<(SocketId, Vec<Arc<str>>)> {
        self.by_socket
            .iter_mut()
            .map(|(id, w)| {
                w.pending = true;
                (*id, w.ids.clone())
            })
            .collect()
    }
}

/// The watched ids of a sign-in's `user_data`: strings only (as user ids are), duplicates
/// dropped, at most [`MAX_WATCHLIST`]; the flag says whether ids were cut off.
pub fn parse_watchlist(raw: Option<&serde_json::Value>) -> (Vec<Arc<str>>, bool) {
    let Some(serde_json::Value::Array(items)) = raw else {
        return (Vec::new(), false);
    };
    let mut seen = HashSet::new();
    let mut ids: Vec<Arc<str>> = Vec::new();
    let mut cut = false;
    for item in items {
        let id = match item {
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        if ids.len() == MAX_WATCHLIST {
            cut = true;
            break;
        }
        ids.push(Arc::from(id));
    }
    (ids, cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn drain(o: &Outbox) -> Vec<String> {
        let mut buf = VecDeque::new();
        o.drain(&mut buf);
        buf.iter().map(|f| f.as_str().to_owned()).collect()
    }

    #[test]
    fn pending_watchers_skip_transitions_until_their_snapshot() {
        let w = Watchlists::default();
        let a = Outbox::new(SocketId::generate(), 16, None);
        let ids: Vec<Arc<str>> = vec!["1".into(), "2".into()];
        let mut g = w.lock();
        g.add(&a, ids, true);
        assert_eq!(g.announce("1", true), 0, "pending");
        assert!(g.confirm(a.id(), |i, _| i == 0));
        let f = drain(&a);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains(r#"\"online\",\"user_ids\":[\"1\"]"#), "{f:?}");
        assert!(
            f[0].contains(r#"\"offline\",\"user_ids\":[\"2\"]"#),
            "{f:?}"
        );
        assert_eq!(g.announce("2", true), 1);
        assert_eq!(g.announce("3", true), 0, "not watched");
        g.remove(a.id());
        assert_eq!(g.announce("2", false), 0);
        assert!(g.by_watched.is_empty());
    }

    #[test]
    fn watchlist_parsing() {
        let v: serde_json::Value = serde_json::json!(["a", "a", 7, null, "", {"x": 1}, "b"]);
        let (ids, cut) = parse_watchlist(Some(&v));
        let ids: Vec<&str> = ids.iter().map(|s| s.as_ref()).collect();
        assert_eq!(ids, ["a", "7", "b"]);
        assert!(!cut);
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let (ids, cut) = parse_watchlist(Some(&serde_json::json!(many)));
        assert_eq!(ids.len(), 100);
        assert!(cut);
        assert_eq!(parse_watchlist(None).0.len(), 0);
    }
}
