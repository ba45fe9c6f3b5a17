//! Node-wide webhook counters, for the logs now and metrics later: nothing is dropped or given up
//! without being counted here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Webhook counters of this node (all apps and targets), monotonic.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events queued for a target.
    pub queued: AtomicU64,
    /// Events delivered (the receiver answered 2xx).
    pub delivered: AtomicU64,
    /// Requests answered 2xx.
    pub requests: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Events given up: a final error (a 4xx but 429), retries exhausted, or the shutdown
    /// deadline passed before they went out.
    pub given_up: AtomicU64,
    /// Events dropped because the target's queue was full (or already closed at shutdown).
    pub dropped: AtomicU64,
    /// vacated/removed events cancelled by a re-occupation or rejoin within the delay (each
    /// also suppresses the matching occupied/added).
    pub cancelled: AtomicU64,
}

/// A plain copy of [`WebhookStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`WebhookStats::queued`].
    pub queued: u64,
    /// See [`WebhookStats::delivered`].
    pub delivered: u64,
    /// See [`WebhookStats::requests`].
    pub requests: u64,
    /// See [`WebhookStats::retries`].
    pub retries: u64,
    /// See [`WebhookStats::given_up`].
    pub given_up: u64,
    /// See [`WebhookStats::dropped`].
    pub dropped: u64,
    /// See [`WebhookStats::cancelled`].
    pub cancelled: u64,
}

impl WebhookStats {
    /// Adds `n` to a counter.
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            queued: r(&self.queued),
            delivered: r(&self.delivered),
            requests: r(&self.requests),
            retries: r(&self.retries),
            given_up: r(&self.given_up),
            dropped: r(&self.dropped),
            cancelled: r(&self.cancelled),
        }
    }
}
