//! The last event of each cache channel (`cache-`, `private-cache-`, ...), kept for a TTL even
//! when nobody is subscribed, as Pusher documents; replayed to every new subscriber.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::protocol::outbound::{self, Frame};

/// A cached event, stored as the frame a subscriber receives plus the raw data for queries.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The event name.
    pub event: String,
    /// The event data, verbatim.
    pub data: String,
    /// When it stops being replayed.
    pub expires: Instant,
}

/// Cache channel contents of one app.
#[derive(Debug, Default)]
pub struct CacheStore {
    entries: DashMap<String, CachedEvent>,
}

impl CacheStore {
    /// Remembers the latest event of `channel` for `ttl`.
    pub fn store(&self, channel: &str, event: &str, data: &str, ttl: Duration) {
        let entry = CachedEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            expires: Instant::now() + ttl,
        };
        self.entries.insert(channel.to_owned(), entry);
    }

    /// The live cached event of `channel`, if any.
    pub fn get(&self, channel: &str) -> Option<CachedEvent> {
        let hit = self.entries.get(channel)?;
        (hit.expires > Instant::now()).then(|| hit.clone())
    }

    /// The frame a new subscriber gets: the cached event, or `pusher:cache_miss`.
    pub fn replay_frame(&self, channel: &str) -> (Frame, bool) {
        match self.get(channel) {
            Some(c) => (
                outbound::event(&c.event, channel, Some(&c.data), None),
                true,
            ),
            None => (outbound::cache_miss(channel), false),
        }
    }

    /// Drops expired entries; run periodically so unsubscribed cache channels do not pile up.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.entries.retain(|_, e| e.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_replay_expire() {
        let c = CacheStore::default();
        let (f, hit) = c.replay_frame("cache-x");
        assert!(!hit);
        assert_eq!(
            f.as_str(),
            r#"{"event":"pusher:cache_miss","channel":"cache-x"}"#
        );
        c.store("cache-x", "e", "{\"a\":1}", Duration::from_secs(60));
        let (f, hit) = c.replay_frame("cache-x");
        assert!(hit);
        assert_eq!(
            f.as_str(),
            r#"{"event":"e","channel":"cache-x","data":"{\"a\":1}"}"#
        );
        c.store("cache-y", "e", "d", Duration::ZERO);
        assert!(c.get("cache-y").is_none());
        c.sweep();
        assert!(c.entries.get("cache-y").is_none());
        assert!(c.get("cache-x").is_some());
    }
}
