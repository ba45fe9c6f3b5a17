//! Clustered presence: what this node's sockets in one presence channel believe the member list
//! is. Every confirmed socket got a snapshot and then the same member events, so normally they
//! all agree and one list serves them all; a socket whose snapshot disagreed (only around a Redis
//! outage or restart) keeps its own list until the next reconciliation.
//!
//! The view makes member events idempotent (a member_added for someone a socket already lists is
//! not sent to it, nor a member_removed for someone it does not), and lets a node reconcile its
//! sockets with the cluster's list after a failure: each socket is sent exactly the difference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::presence::MemberData;
use crate::outbox::SocketId;

/// One change a socket must be told about.
#[derive(Debug)]
pub enum Change {
    /// Send member_added.
    Added(MemberData),
    /// Send member_removed.
    Removed(MemberData),
}

/// The member lists of one channel as this node's sockets know them.
#[derive(Debug, Default)]
pub struct View {
    /// The list shared by every confirmed socket not in `diverged`.
    members: HashMap<Arc<str>, MemberData>,
    /// Sockets whose snapshot disagreed with `members`: their own list of user keys.
    diverged: HashMap<SocketId, HashSet<Arc<str>>>,
}

impl View {
    /// A socket was confirmed with `snapshot`; `first` when no other socket is confirmed here.
    pub fn confirmed(&mut self, id: SocketId, snapshot: &[MemberData], first: bool) {
        if first {
            self.members = snapshot
                .iter()
                .map(|m| (m.key.clone(), m.clone()))
                .collect();
            self.diverged.clear();
            return;
        }
        let agrees = snapshot.len() == self.members.len()
            && snapshot.iter().all(|m| self.members.contains_key(&m.key));
        if agrees {
            self.diverged.remove(&id);
        } else {
            let keys = snapshot.iter().map(|m| m.key.clone()).collect();
            self.diverged.insert(id, keys);
        }
    }

    /// Whether a socket keeps its own list.
    pub fn is_diverged(&self, id: SocketId) -> bool {
        self.diverged.contains_key(&id)
    }

    /// A socket left.
    pub fn forget(&mut self, id: SocketId) {
        self.diverged.remove(&id);
    }

    /// Applies member_added; returns whether the sockets on the shared list need it, and
    /// which diverged sockets do.
    pub fn add(&mut self, m: &MemberData) -> (bool, Vec<SocketId>) {
        let shared = self.members.insert(m.key.clone(), m.clone()).is_none();
        let mut also = Vec::new();
        for (id, keys) in &mut self.diverged {
            if keys.insert(m.key.clone()) {
                also.push(*id);
            }
        }
        (shared, also)
    }

    /// Applies member_removed; as [`View::add`].
    pub fn remove(&mut self, key: &str) -> (bool, Vec<SocketId>) {
        let shared = self.members.remove(key).is_some();
        let mut also = Vec::new();
        for (id, keys) in &mut self.diverged {
            if keys.remove(key) {
                also.push(*id);
            }
        }
        (shared, also)
    }

    /// Makes every socket's list `truth`; returns the changes for the shared list and for each
    /// diverged socket.
    pub fn reconcile(
        &mut self,
        truth: &[MemberData],
    ) -> (Vec<Change>, Vec<(SocketId, Vec<Change>)>) {
        let truth_keys: HashSet<&str> = truth.iter().map(|m| &*m.key).collect();
        let shared_keys: HashSet<&str> = self.members.keys().map(|k| &**k).collect();
        let lookup = |k: &str| self.members.get(k).cloned().or_else(|| placeholder(k));
        let shared = diff(truth, &truth_keys, &shared_keys, lookup);
        let mut per_socket = Vec::new();
        for (id, keys) in &self.diverged {
            let known: HashSet<&str> = keys.iter().map(|k| &**k).collect();
            let changes = diff(truth, &truth_keys, &known, lookup);
            if !changes.is_empty() {
                per_socket.push((*id, changes));
            }
        }
        self.members = truth.iter().map(|m| (m.key.clone(), m.clone())).collect();
        self.diverged.clear();
        (shared, per_socket)
    }
}

/// The changes from `known` to `truth` (`data` gives the removed members' ids).
fn diff(
    truth: &[MemberData],
    truth_keys: &HashSet<&str>,
    known: &HashSet<&str>,
    data: impl Fn(&str) -> Option<MemberData>,
) -> Vec<Change> {
    let mut out: Vec<Change> = truth
        .iter()
        .filter(|m| !known.contains(&*m.key))
        .map(|m| Change::Added(m.clone()))
        .collect();
    for k in known.iter().filter(|k| !truth_keys.contains(*k)) {
        if let Some(m) = data(k) {
            out.push(Change::Removed(m));
        }
    }
    out
}

/// A member known only by key (a diverged socket's list holds keys only): `user_id` is the key
/// as a JSON string, which is what pusher-js matches member_removed on.
fn placeholder(key: &str) -> Option<MemberData> {
    let id = serde_json::to_string(key).ok()?;
    let user_id = serde_json::value::RawValue::from_string(id).ok()?;
    MemberData::build(user_id, None, usize::MAX).ok()
}
