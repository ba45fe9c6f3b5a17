//! Webhooks of a clustered node (`[scaling] enabled`): the occupancy and member transitions are
//! decided cluster-wide by the Redis scripts (`crate::cluster::scripts`), Pusher's delay
//! included, and each is sent by the one node Redis tells. [`ClusterSink`] is what the cluster
//! link uses for that: which apps take part (and their delay), and the sending.

use std::collections::HashMap;
use std::sync::Arc;

use super::app::AppHooks;
use super::event::Event;
use crate::config::WebhookEventType as T;

/// One app's part in the cluster-wide webhooks.
#[derive(Debug)]
struct Tracked {
    hooks: Arc<AppHooks>,
    /// Some target wants channel_occupied or channel_vacated.
    channels: bool,
    /// Some target wants member_added or member_removed.
    members: bool,
}

/// The cluster link's handle on this node's webhooks.
#[derive(Debug)]
pub struct ClusterSink {
    apps: HashMap<String, Tracked>,
}

impl ClusterSink {
    pub(super) fn new(apps: &HashMap<String, Arc<AppHooks>>) -> Self {
        let apps = apps
            .iter()
            .map(|(id, h)| {
                let t = Tracked {
                    hooks: h.clone(),
                    channels: h.wants(T::ChannelOccupied) || h.wants(T::ChannelVacated),
                    members: h.wants(T::MemberAdded) || h.wants(T::MemberRemoved),
                };
                (id.clone(), t)
            })
            .collect();
        Self { apps }
    }

    /// The vacated delay (ms) of an app whose channel occupancy is tracked cluster-wide;
    /// `None` for an app without such webhooks (its subscriptions cost no Redis work).
    pub fn channel_delay(&self, app: &str) -> Option<u64> {
        let t = self.apps.get(app).filter(|t| t.channels)?;
        Some(t.hooks.delay_ms())
    }

    /// The member_removed delay (ms) of an app whose presence members are tracked for
    /// webhooks; `None` otherwise.
    pub fn member_delay(&self, app: &str) -> Option<u64> {
        let t = self.apps.get(app).filter(|t| t.members)?;
        Some(t.hooks.delay_ms())
    }

    /// Every app with tracked transitions and its delay (for the reaper).
    pub fn delays(&self) -> Vec<(String, u64)> {
        self.apps
            .iter()
            .filter(|(_, t)| t.channels || t.members)
            .map(|(id, t)| (id.clone(), t.hooks.delay_ms()))
            .collect()
    }

    /// Sends a transition Redis decided this node is to send (its delay, if any, is over).
    pub fn fire(&self, app: &str, kind: T, channel: &str, user: Option<&str>) {
        let Some(t) = self.apps.get(app) else { return };
        let event = match (kind, user) {
            (T::MemberAdded | T::MemberRemoved, Some(u)) => Event::member(kind, channel, u),
            (T::ChannelOccupied | T::ChannelVacated, None) => Event::channel(kind, channel),
            _ => return,
        };
        t.hooks.emit_wanted(channel, &event);
    }
}
