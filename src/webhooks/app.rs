//! One app's webhooks: its targets, and Pusher's delay. channel_vacated and member_removed wait
//! `webhook_vacated_delay_ms`; a re-occupation (or rejoin) within it cancels the pending event
//! and suppresses the matching channel_occupied (member_added) too, so a page reload sends
//! nothing at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::Event;
use super::stats::WebhookStats;
use super::target::{Shared, Target};
use crate::config::WebhookEventType;

/// A delayed event's identity: the channel, and the user for member events.
pub(super) type DelayKey = (Box<str>, Option<Box<str>>);

/// The webhooks of one app.
#[derive(Debug)]
pub(super) struct AppHooks {
    pub targets: Vec<Target>,
    /// Every event type some target receives.
    wanted: Vec<WebhookEventType>,
    delay: Duration,
    /// Delayed vacated/removed events not sent yet, with the token of the timer that owns them.
    pending: Mutex<HashMap<DelayKey, u64>>,
    next_token: AtomicU64,
    shared: Shared,
    /// Cache channels whose `cache_miss` was sent, and when: Pusher de-duplicates the webhook
    /// when several clients subscribe, so another goes out only once the cache was written or
    /// [`MISS_AGAIN_AFTER`] passed.
    misses: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a sent `cache_miss` silences the next ones for the same channel (unless the
/// channel's cache is written meanwhile).
pub(super) const MISS_AGAIN_AFTER: Duration = Duration::from_secs(60);
/// Past this many remembered misses, expired ones are forgotten.
const MISSES_PRUNE_AT: usize = 4096;

impl AppHooks {
    /// Whether a `cache_miss` for `channel` should go out now (and records that it did).
    pub fn first_miss(&self, channel: &str) -> bool {
        let now = std::time::Instant::now();
        let mut misses = self.misses.lock();
        if let Some(at) = misses.get(channel) {
            if now.duration_since(*at) < MISS_AGAIN_AFTER {
                return false;
            }
        }
        if misses.len() >= MISSES_PRUNE_AT {
            misses.retain(|_, at| now.duration_since(*at) < MISS_AGAIN_AFTER);
        }
        misses.insert(channel.to_owned(), now);
        true
    }

    /// The channel's cache was written: its next miss is news again.
    pub fn cache_filled(&self, channel: &str) {
        let mut misses = self.misses.lock();
        if !misses.is_empty() {
            misses.remove(channel);
        }
    }

    pub fn new(
        targets: Vec<Target>,
        wanted: Vec<WebhookEventType>,
        delay: Duration,
        shared: Shared,
    ) -> Self {
        Self {
            targets,
            wanted,
            delay,
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
            shared,
            misses: Mutex::new(HashMap::new()),
        }
    }

    /// Whether some target receives `kind` events.
    pub fn wants(&self, kind: WebhookEventType) -> bool {
        self.wanted.contains(&kind)
    }

    /// Queues `event` on every target that receives it for `channel`.
    pub fn emit(&self, channel: &str, event: &Event) {
        for t in &self.targets {
            if t.wants(event.kind, channel) {
                t.offer(event, &self.shared);
            }
        }
    }

    /// An occupied/added transition: sent unless it cancels a pending vacated/removed.
    pub fn arrived(&self, key: DelayKey, build: impl FnOnce() -> Event, channel: &str) {
        if self.pending.lock().remove(&key).is_some() {
            WebhookStats::add(&self.shared.stats.cancelled, 1);
            return;
        }
        self.emit_wanted(channel, &build());
    }

    /// Vacated/removed transitions (in the order to send them): sent after the delay unless
    /// cancelled meanwhile (at once when the delay is 0 or the server is shutting down, see
    /// `expedite`). One timer for all of them keeps their order.
    pub fn departed(
        self: &Arc<Self>,
        items: Vec<(DelayKey, Event)>,
        delays: &TaskTracker,
        expedite: &CancellationToken,
    ) {
        if items.is_empty() {
            return;
        }
        if self.delay.is_zero() {
            for (key, event) in &items {
                self.emit_wanted(&key.0, event);
            }
            return;
        }
        let tokens: Vec<u64> = {
            let mut pending = self.pending.lock();
            items
                .iter()
                .map(|(key, _)| {
                    let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                    pending.insert(key.clone(), token);
                    token
                })
                .collect()
        };
        let (me, expedite, delay) = (self.clone(), expedite.clone(), self.delay);
        delays.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = expedite.cancelled() => {}
            }
            let mine: Vec<bool> = {
                let mut pending = me.pending.lock();
                items
                    .iter()
                    .zip(&tokens)
                    .map(|((key, _), token)| {
                        let mine = pending.get(key) == Some(token);
                        if mine {
                            pending.remove(key);
                        }
                        mine
                    })
                    .collect()
            };
            for ((key, event), mine) in items.iter().zip(mine) {
                if mine {
                    me.emit_wanted(&key.0, event);
                }
            }
        });
    }

    /// `webhook_vacated_delay_ms`.
    pub fn delay_ms(&self) -> u64 {
        self.delay.as_millis() as u64
    }

    /// Queues `event` when some target receives its type.
    pub fn emit_wanted(&self, channel: &str, event: &Event) {
        if self.wants(event.kind) {
            self.emit(channel, event);
        }
    }
}

/// The delay key of a channel.
pub(super) fn channel_key(channel: &str) -> DelayKey {
    (channel.into(), None)
}

/// The delay key of a presence member.
pub(super) fn member_key(channel: &str, user: &str) -> DelayKey {
    (channel.into(), Some(user.into()))
}
