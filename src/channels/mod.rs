//! Local channel membership of one app: channel → subscribers (their outboxes), plus presence
//! members. Joining and leaving queue the protocol frames that must go out atomically with the
//! change (subscription_succeeded to the joiner, member_added/removed to the others) and return
//! the transitions (occupied, vacated, member added/removed) for the caller to act on.

pub mod cache;
pub mod presence;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::metrics::{AppMetrics, MessageKind};
use crate::outbox::{prefetch, Clock, Outbox, SocketId};
use crate::protocol::outbound::{self, Frame};
use crate::protocol::{ChannelKind, PusherError};
use presence::snapshot_of;
pub use presence::{MemberData, Presence};
use view::{Change, View};

#[derive(Debug)]
struct Subscriber {
    outbox: Outbox,
    /// The presence identity this socket joined as (presence channels only).
    member: Option<std::sync::Arc<str>>,
    /// Clustered presence only: joined locally, waiting for the cluster's member snapshot.
    /// A pending socket gets no channel frames until [`ChannelRegistry::confirm`].
    pending: bool,
}

#[derive(Debug, Default)]
struct Channel {
    subscribers: HashMap<SocketId, Subscriber>,
    presence: Option<Presence>,
    /// Clustered presence: the member list this node's sockets know.
    view: Option<Box<View>>,
}

/// What a subscribe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Joined {
    /// The channel went from 0 to 1 subscriber.
    pub occupied: bool,
    /// A presence user got their first socket in the channel.
    pub member_added: bool,
    /// The socket was already subscribed (only subscription_succeeded was re-sent).
    pub already: bool,
    /// Clustered presence: nothing was sent yet; the cluster answers with the snapshot.
    pub pending: bool,
}

/// What an unsubscribe changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Left {
    /// The channel went from 1 to 0 subscribers.
    pub vacated: bool,
    /// A presence user's last socket (on this node) left.
    pub member_removed: bool,
    /// The presence user (string form of `user_id`) when `member_removed`.
    pub user: Option<std::sync::Arc<str>>,
}

/// Counts for one channel, as the HTTP API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelCounts {
    /// Connections subscribed.
    pub subscriptions: usize,
    /// Distinct presence users (presence channels only).
    pub users: Option<usize>,
}

/// A node's presence holdings (see [`ChannelRegistry::presence_state`]).
#[derive(Debug, Default)]
pub struct PresenceState {
    /// (channel, member) for members with a confirmed socket here.
    pub members: Vec<(String, MemberData)>,
    /// (channel, socket, member) for sockets waiting for the cluster's snapshot.
    pub pending: Vec<(String, SocketId, MemberData)>,
}

/// How many vacated channels pass between two checks whether the channel table should shrink.
const SHRINK_CHECK_EVERY: usize = 1024;

/// Every channel of one app on this node.
#[derive(Debug, Default)]
pub struct ChannelRegistry {
    channels: DashMap<String, Channel>,
    /// Channels vacated so far, to check for shrinking now and then.
    vacated: AtomicUsize,
    /// Presence is cluster-wide: joins wait for the cluster's snapshot, member events and the
    /// member limit come from the cluster, so none are produced here.
    clustered: bool,
    /// The app's metrics: subscriptions, occupied channels and members by kind, frames sent.
    metrics: AppMetrics,
}

impl ChannelRegistry {
    /// A registry whose presence channels are decided cluster-wide (see [`Joined::pending`]).
    pub fn clustered() -> Self {
        Self::new(true, AppMetrics::default())
    }

    /// A registry counting into `metrics`, clustered or not.
    pub fn new(clustered: bool, metrics: AppMetrics) -> Self {
        Self {
            channels: DashMap::new(),
            vacated: AtomicUsize::new(0),
            clustered,
            metrics,
        }
    }

    /// Counts `n` protocol frames of `len` bytes queued to sockets.
    fn protocol_sent(&self, n: usize, len: usize) {
        self.metrics.sent(MessageKind::Protocol, n, len);
    }

    /// Subscribes `outbox` to `name`. Queues subscription_succeeded (with the presence snapshot)
    /// and then `after` (a cache replay) to the joiner, and member_added to the others, all under
    /// the channel's lock so no broadcast can slip between them.
    pub fn subscribe(
        &self,
        name: &str,
        outbox: &Outbox,
        member: Option<&MemberData>,
        max_members: usize,
        after: Option<Frame>,
    ) -> Result<Joined, PusherError> {
        let mut ch = self.channels.entry(name.to_owned()).or_default();
        let id = outbox.id();
        let mut joined = Joined {
            occupied: ch.subscribers.is_empty(),
            ..Joined::default()
        };
        let clustered_presence = self.clustered && member.is_some();
        if let Some(sub) = ch.subscribers.get_mut(&id) {
            joined.already = true;
            if clustered_presence {
                // A repeated presence subscribe gets a fresh cluster snapshot.
                sub.pending = true;
                joined.pending = true;
                return Ok(joined);
            }
        } else if let Some(m) = member {
            let max_members = if self.clustered {
                usize::MAX
            } else {
                max_members
            };
            let presence = ch.presence.get_or_insert_with(Presence::default);
            match presence.join(m, max_members) {
                Ok(added) => joined.member_added = added,
                Err(e) => {
                    let empty = ch.subscribers.is_empty();
                    drop(ch);
                    if empty {
                        self.channels
                            .remove_if(name, |_, c| c.subscribers.is_empty());
                    }
                    return Err(e);
                }
            }
            ch.subscribers.insert(
                id,
                Subscriber {
                    outbox: outbox.clone(),
                    member: Some(m.key.clone()),
                    pending: self.clustered,
                },
            );
            self.metrics
                .subscribed(ChannelKind::of(name), joined.occupied);
            if joined.member_added {
                self.metrics.members(1);
            }
            if self.clustered {
                joined.pending = true;
                return Ok(joined);
            }
        } else {
            ch.subscribers.insert(
                id,
                Subscriber {
                    outbox: outbox.clone(),
                    member: None,
                    pending: false,
                },
            );
            self.metrics
                .subscribed(ChannelKind::of(name), joined.occupied);
        }
        let succeeded = match &ch.presence {
            Some(p) => outbound::presence_succeeded(name, &p.snapshot()),
            None => outbound::subscription_succeeded(name),
        };
        self.protocol_sent(1, succeeded.len());
        outbox.try_send(succeeded);
        if let Some(frame) = after {
            self.protocol_sent(1, frame.len());
            outbox.try_send(frame);
        }
        if joined.member_added {
            if let Some(m) = member {
                let frame = outbound::member_added(name, &m.user_id, &m.user_info);
                let (sent, _) = fan_out(&ch, &frame, Some(id));
                self.protocol_sent(sent, frame.len());
            }
        }
        Ok(joined)
    }

    /// Gives back the table of a spike of channels once most of them are gone: checked every
    /// [`SHRINK_CHECK_EVERY`] vacated channels, shrunk when under an eighth full.
    fn shrink_after_spike(&self) {
        let n = self.vacated.fetch_add(1, Ordering::Relaxed) + 1;
        if n % SHRINK_CHECK_EVERY != 0 {
            return;
        }
        let cap = self.channels.capacity();
        if cap > SHRINK_CHECK_EVERY && self.channels.len() < cap / 8 {
            self.channels.shrink_to_fit();
        }
    }

    /// Removes one socket from `name`; `None` if it was not subscribed.
    pub fn unsubscribe(&self, name: &str, id: SocketId) -> Option<Left> {
        let mut ch = self.channels.get_mut(name)?;
        let sub = ch.subscribers.remove(&id)?;
        if let Some(view) = ch.view.as_mut() {
            view.forget(id);
        }
        let mut left = Left {
            vacated: ch.subscribers.is_empty(),
            ..Left::default()
        };
        self.metrics
            .unsubscribed(ChannelKind::of(name), left.vacated);
        if let (Some(key), Some(presence)) = (sub.member, ch.presence.as_mut()) {
            if let Some(user_id) = presence.leave(&key) {
                left.member_removed = true;
                left.user = Some(key);
                self.metrics.members(-1);
                if !self.clustered {
                    let frame = outbound::member_removed(name, &user_id);
                    let (sent, _) = fan_out(&ch, &frame, None);
                    self.protocol_sent(sent, frame.len());
                }
            }
        }
        drop(ch);
        if left.vacated {
            self.channels
                .remove_if(name, |_, c| c.subscribers.is_empty());
            self.shrink_after_spike();
        }
        Some(left)
    }

    /// Clustered presence: queues subscription_succeeded with the cluster's `members` and then
    /// `after` (a cache replay) to a pending socket and makes it a full subscriber, under the
    /// channel's lock, so member events ordered after the snapshot reach it and earlier ones do
    /// not. Returns false when the socket is no longer pending there (it left meanwhile).
    pub fn confirm(
        &self,
        name: &str,
        id: SocketId,
        members: &[MemberData],
        after: Option<Frame>,
    ) -> bool {
        let Some(mut ch) = self.channels.get_mut(name) else {
            return false;
        };
        let first = !ch.subscribers.values().any(|s| !s.pending);
        let Some(sub) = ch.subscribers.get_mut(&id).filter(|s| s.pending) else {
            return false;
        };
        sub.pending = false;
        let snapshot = snapshot_of(members.iter());
        let succeeded = outbound::presence_succeeded(name, &snapshot);
        self.metrics.sent(MessageKind::Protocol, 1, succeeded.len());
        sub.outbox.try_send(succeeded);
        if let Some(frame) = after {
            self.metrics.sent(MessageKind::Protocol, 1, frame.len());
            sub.outbox.try_send(frame);
        }
        ch.view
            .get_or_insert_with(Box::default)
            .confirmed(id, members, first);
        true
    }

    /// Clustered presence: a user's first socket anywhere joined; tells every confirmed socket
    /// here that does not list the member yet (but `except`, the joiner).
    pub fn member_added(&self, name: &str, m: &MemberData, except: Option<SocketId>) {
        let Some(mut ch) = self.channels.get_mut(name) else {
            return;
        };
        let ch = &mut *ch;
        let Some(view) = ch.view.as_mut() else {
            return;
        };
        let (shared, also) = view.add(m);
        let frame = outbound::member_added(name, &m.user_id, &m.user_info);
        let n = send_member_event(&ch.subscribers, view, &frame, shared, &also, except);
        self.protocol_sent(n, frame.len());
    }

    /// Clustered presence: a user's last socket anywhere left; tells every confirmed socket here
    /// that still lists the member.
    pub fn member_removed(&self, name: &str, m: &MemberData) {
        let Some(mut ch) = self.channels.get_mut(name) else {
            return;
        };
        let ch = &mut *ch;
        let Some(view) = ch.view.as_mut() else {
            return;
        };
        let (shared, also) = view.remove(&m.key);
        let frame = outbound::member_removed(name, &m.user_id);
        let n = send_member_event(&ch.subscribers, view, &frame, shared, &also, None);
        self.protocol_sent(n, frame.len());
    }

    /// Clustered presence: after a failure, brings every confirmed socket's member list to the
    /// cluster's `truth`, sending each exactly the member_added / member_removed it missed.
    pub fn reconcile(&self, name: &str, truth: &[MemberData]) {
        let Some(mut ch) = self.channels.get_mut(name) else {
            return;
        };
        let ch = &mut *ch;
        let Some(view) = ch.view.as_mut() else {
            return;
        };
        let diverged: Vec<SocketId> = ch
            .subscribers
            .keys()
            .copied()
            .filter(|id| view.is_diverged(*id))
            .collect();
        let (shared, per_socket) = view.reconcile(truth);
        let frames = |changes: &[Change]| -> Vec<Frame> {
            changes
                .iter()
                .map(|c| match c {
                    Change::Added(m) => outbound::member_added(name, &m.user_id, &m.user_info),
                    Change::Removed(m) => outbound::member_removed(name, &m.user_id),
                })
                .collect()
        };
        let shared = frames(&shared);
        for (id, sub) in &ch.subscribers {
            if sub.pending || diverged.contains(id) {
                continue;
            }
            for f in &shared {
                self.metrics.sent(MessageKind::Protocol, 1, f.len());
                sub.outbox.try_send(f.clone());
            }
        }
        for (id, changes) in per_socket {
            if let Some(sub) = ch.subscribers.get(&id) {
                for f in frames(&changes) {
                    self.metrics.sent(MessageKind::Protocol, 1, f.len());
                    sub.outbox.try_send(f);
                }
            }
        }
    }

    /// Clustered presence: the presence channels with confirmed sockets here.
    pub fn viewed_channels(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| c.view.is_some())
            .map(|c| c.key().clone())
            .collect()
    }

    /// Clustered presence: the outbox of a socket still pending on `name`.
    pub fn pending_outbox(&self, name: &str, id: SocketId) -> Option<Outbox> {
        let ch = self.channels.get(name)?;
        let sub = ch.subscribers.get(&id).filter(|s| s.pending)?;
        Some(sub.outbox.clone())
    }

    /// Clustered presence: what this node holds, so it can re-register itself after Redis lost
    /// its state: the members with at least one confirmed socket, and every pending socket.
    pub fn presence_state(&self) -> PresenceState {
        let mut state = PresenceState::default();
        for ch in self.channels.iter() {
            let Some(presence) = &ch.presence else {
                continue;
            };
            let mut confirmed: Vec<&str> = Vec::new();
            for (id, sub) in &ch.subscribers {
                let Some(m) = sub.member.as_deref().and_then(|k| presence.member(k)) else {
                    continue;
                };
                if sub.pending {
                    state.pending.push((ch.key().clone(), *id, m.clone()));
                } else if !confirmed.contains(&&*m.key) {
                    confirmed.push(&m.key);
                    state.members.push((ch.key().clone(), m.clone()));
                }
            }
        }
        state
    }

    /// Queues `frame` (an event) for every subscriber of `name` except `except`; returns how
    /// many got it. Counted once per broadcast: recipients × frame length, and the drops.
    pub fn publish(&self, name: &str, frame: &Frame, except: Option<SocketId>) -> usize {
        let Some(ch) = self.channels.get(name) else {
            return 0;
        };
        let (sent, dropped) = fan_out(&ch, frame, except);
        drop(ch);
        self.metrics.sent(event_kind(frame), sent, frame.len());
        self.metrics.dropped(dropped);
        sent
    }

    /// Whether `id` is subscribed to `name` (client events require it).
    pub fn is_subscribed(&self, name: &str, id: SocketId) -> bool {
        self.channels
            .get(name)
            .is_some_and(|c| c.subscribers.contains_key(&id))
    }

    /// Counts for one channel (zero when unoccupied).
    pub fn counts(&self, name: &str) -> ChannelCounts {
        self.channels
            .get(name)
            .map(|c| counts_of(&c))
            .unwrap_or_default()
    }

    /// Occupied channels whose name starts with `prefix`, with their counts.
    pub fn list(&self, prefix: &str) -> Vec<(String, ChannelCounts)> {
        self.channels
            .iter()
            .filter(|e| e.key().starts_with(prefix) && !e.subscribers.is_empty())
            .map(|e| (e.key().clone(), counts_of(&e)))
            .collect()
    }

    /// The ids (string form) of a presence channel's distinct users.
    pub fn user_ids(&self, name: &str) -> Vec<std::sync::Arc<str>> {
        self.channels
            .get(name)
            .and_then(|c| c.presence.as_ref().map(Presence::user_ids))
            .unwrap_or_default()
    }

    /// Outboxes of every socket that joined any presence channel as user `key`.
    pub fn presence_sockets(&self, key: &str) -> Vec<Outbox> {
        let mut found = Vec::new();
        for ch in self.channels.iter() {
            if ch.presence.is_none() {
                continue;
            }
            found.extend(
                ch.subscribers
                    .values()
                    .filter(|s| s.member.as_deref() == Some(key))
                    .map(|s| s.outbox.clone()),
            );
        }
        found
    }
}

fn counts_of(c: &Channel) -> ChannelCounts {
    ChannelCounts {
        subscriptions: c.subscribers.len(),
        users: c.presence.as_ref().map(Presence::count),
    }
}

/// Sends a member event to the confirmed sockets that need it: those on the shared list when
/// `shared`, and the diverged ones named in `also`.
fn send_member_event(
    subscribers: &HashMap<SocketId, Subscriber>,
    view: &View,
    frame: &Frame,
    shared: bool,
    also: &[SocketId],
    except: Option<SocketId>,
) -> usize {
    let mut sent = 0;
    let now = Clock::now();
    for (id, sub) in subscribers {
        if sub.pending || Some(*id) == except {
            continue;
        }
        let wanted = if view.is_diverged(*id) {
            also.contains(id)
        } else {
            shared
        };
        if wanted && sub.outbox.offer_at(frame, now) {
            sent += 1;
        }
    }
    sent
}

/// Whether a published event frame is a client event (`{"event":"client-...`) or one
/// triggered over the HTTP API (or relayed from another node's API).
fn event_kind(frame: &Frame) -> MessageKind {
    if frame.as_str().starts_with(r#"{"event":"client-"#) {
        MessageKind::ClientEvent
    } else {
        MessageKind::ApiEvent
    }
}

/// How many subscribers ahead fan-out prefetches an outbox: enough for the load to land while
/// the ones before it are offered the frame (a few tens of nanoseconds each when queued).
const PREFETCH_AHEAD: usize = 4;

/// Queues `frame` for the confirmed subscribers but `except`: (queued, dropped by full outboxes).
fn fan_out(ch: &Channel, frame: &Frame, except: Option<SocketId>) -> (usize, usize) {
    let (mut sent, mut dropped) = (0, 0);
    let now = Clock::now();
    // Each table entry is loaded 2 × PREFETCH_AHEAD subscribers before its turn (finding its
    // address reads only the table's control bytes), and its outbox PREFETCH_AHEAD before.
    let mut entries = ch.subscribers.values();
    let mut outboxes = ch.subscribers.values();
    entries.by_ref().take(2 * PREFETCH_AHEAD).for_each(prefetch);
    outboxes
        .by_ref()
        .take(PREFETCH_AHEAD)
        .for_each(|s| s.outbox.prefetch());
    for (id, sub) in &ch.subscribers {
        if let Some(entry) = entries.next() {
            prefetch(entry);
        }
        if let Some(next) = outboxes.next() {
            next.outbox.prefetch();
        }
        if Some(*id) != except && !sub.pending {
            if sub.outbox.offer_at(frame, now) {
                sent += 1;
            } else {
                dropped += 1;
            }
        }
    }
    (sent, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn socket() -> Outbox {
        Outbox::new(SocketId::generate(), 64, None)
    }

    fn drain(o: &Outbox) -> Vec<String> {
        let mut buf = VecDeque::new();
        o.drain(&mut buf);
        buf.iter().map(|f| f.as_str().to_owned()).collect()
    }

    fn member(id: &str) -> MemberData {
        MemberData::from_channel_data(&format!(r#"{{"user_id":"{id}"}}"#), 1024).unwrap()
    }

    #[test]
    fn public_join_publish_leave() {
        let reg = ChannelRegistry::default();
        let (a, b) = (socket(), socket());
        assert!(reg.subscribe("c", &a, None, 100, None).unwrap().occupied);
        assert!(!reg.subscribe("c", &b, None, 100, None).unwrap().occupied);
        assert!(reg.subscribe("c", &b, None, 100, None).unwrap().already);
        drain(&a);
        drain(&b);
        let f = outbound::event("e", "c", Some("d"), None);
        assert_eq!(reg.publish("c", &f, Some(a.id())), 1);
        assert!(drain(&a).is_empty());
        assert_eq!(drain(&b).len(), 1);
        assert_eq!(reg.counts("c").subscriptions, 2);
        assert!(!reg.unsubscribe("c", a.id()).unwrap().vacated);
        assert!(reg.unsubscribe("c", a.id()).is_none());
        assert!(reg.unsubscribe("c", b.id()).unwrap().vacated);
        assert!(reg.list("").is_empty());
    }

    #[test]
    fn presence_transitions_with_two_tabs() {
        let reg = ChannelRegistry::default();
        let (tab1, tab2, other) = (socket(), socket(), socket());
        let ch = "presence-room";
        reg.subscribe(ch, &other, Some(&member("o")), 100, None)
            .unwrap();
        drain(&other);
        let j = reg
            .subscribe(ch, &tab1, Some(&member("u")), 100, None)
            .unwrap();
        assert!(j.member_added);
        assert_eq!(drain(&other).len(), 1, "member_added once");
        let j = reg
            .subscribe(ch, &tab2, Some(&member("u")), 100, None)
            .unwrap();
        assert!(!j.member_added);
        assert!(drain(&other).is_empty(), "no second member_added");
        let snap = drain(&tab2);
        assert!(snap[0].contains(r#"\"count\":2"#), "{snap:?}");
        assert_eq!(reg.counts(ch).users, Some(2));
        assert!(!reg.unsubscribe(ch, tab1.id()).unwrap().member_removed);
        assert!(drain(&other).is_empty());
        assert!(reg.unsubscribe(ch, tab2.id()).unwrap().member_removed);
        assert!(drain(&other)[0].contains("member_removed"));
        assert_eq!(reg.presence_sockets("o").len(), 1);
    }

    #[test]
    fn member_limit_leaves_no_empty_channel() {
        let reg = ChannelRegistry::default();
        let a = socket();
        let err = reg.subscribe("presence-x", &a, Some(&member("a")), 0, None);
        assert_eq!(err, Err(PusherError::MemberLimit));
        assert!(reg.channels.get("presence-x").is_none());
    }

    #[test]
    fn clustered_presence_waits_for_the_snapshot() {
        let reg = ChannelRegistry::clustered();
        let ch = "presence-room";
        let (a, b) = (socket(), socket());
        let j = reg.subscribe(ch, &a, Some(&member("u")), 1, None).unwrap();
        assert!(j.pending && j.member_added, "first local socket of u");
        assert!(drain(&a).is_empty(), "nothing before the cluster answers");
        let ev = outbound::event("e", ch, Some("d"), None);
        assert_eq!(
            reg.publish(ch, &ev, None),
            0,
            "pending sockets get no frames"
        );
        assert!(reg.confirm(ch, a.id(), &[member("u")], None));
        assert!(!reg.confirm(ch, a.id(), &[], None), "confirmed once");
        assert_eq!(drain(&a).len(), 1);
        let j = reg.subscribe(ch, &b, Some(&member("v")), 1, None).unwrap();
        assert!(
            j.pending && j.member_added,
            "the local limit is not applied"
        );
        let state = reg.presence_state();
        assert_eq!(state.members.len(), 1, "only confirmed members");
        assert_eq!(state.pending.len(), 1);
        assert_eq!(reg.publish(ch, &ev, None), 1);
        let left = reg.unsubscribe(ch, a.id()).unwrap();
        assert!(left.member_removed);
        assert_eq!(left.user.as_deref(), Some("u"));
        assert!(
            drain(&b).is_empty(),
            "no local member_removed when clustered"
        );
    }

    #[test]
    fn clustered_member_events_and_reconcile_are_exact() {
        let reg = ChannelRegistry::clustered();
        let ch = "presence-x";
        let (a, b) = (socket(), socket());
        let (m1, m2) = (member("1"), member("2"));
        reg.subscribe(ch, &a, Some(&m1), 10, None).unwrap();
        reg.subscribe(ch, &b, Some(&m2), 10, None).unwrap();
        reg.member_added(ch, &m1, Some(a.id()));
        assert!(reg.confirm(ch, a.id(), std::slice::from_ref(&m1), None));
        reg.member_added(ch, &m2, Some(b.id()));
        assert!(reg.confirm(ch, b.id(), &[m1.clone(), m2.clone()], None));
        let fa = drain(&a);
        assert_eq!(fa.len(), 2, "{fa:?}");
        assert!(fa[1].contains("member_added"));
        assert_eq!(drain(&b).len(), 1);
        reg.unsubscribe(ch, b.id());
        reg.member_removed(ch, &m2);
        reg.member_added(ch, &m1, None);
        reg.reconcile(ch, std::slice::from_ref(&m1));
        let fa = drain(&a);
        assert_eq!(fa.len(), 1, "one member_removed, no duplicate: {fa:?}");
        reg.reconcile(ch, &[m1.clone(), member("3")]);
        let fa = drain(&a);
        assert!(fa.len() == 1 && fa[0].contains("member_added"), "{fa:?}");
    }

    #[test]
    fn replay_follows_succeeded() {
        let reg = ChannelRegistry::default();
        let a = socket();
        let miss = outbound::cache_miss("cache-x");
        reg.subscribe("cache-x", &a, None, 100, Some(miss)).unwrap();
        let frames = drain(&a);
        assert!(frames[0].contains("subscription_succeeded"));
        assert!(frames[1].contains("cache_miss"));
    }
}
